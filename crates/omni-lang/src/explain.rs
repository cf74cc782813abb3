//! `omni explain`: the region schedule of a compiled program, one line per
//! decision: region create/exit points, each allocation site's region,
//! each repair point and each barrier.

use std::fmt::Write as _;

use crate::builtins::Prim;
use crate::ir::{CapSrc, Node, Proto, Target};
use crate::pure_code::{Op, Scratch};

fn target_name(t: Target) -> String {
    match t {
        Target::Dst => "dst".into(),
        Target::Scratch => "scratch".into(),
        Target::Global => "global".into(),
        Target::RegionOfSlot(s) => format!("region-of(slot {s})"),
        Target::SlotsOf(s) => format!("slot-region-of(slot {s})"),
        Target::Iter => "next-iteration".into(),
        Target::Message => "message".into(),
    }
}

/// Explain one procedure (and, nested, every procedure it creates).
pub fn explain_proto(p: &Proto, out: &mut String, indent: usize) {
    let pad = "  ".repeat(indent);
    let _ = writeln!(
        out,
        "{pad}procedure {} @{} params={}{} slots={}",
        p.name,
        p.span,
        p.nparams,
        if p.rest { "+rest" } else { "" },
        p.nslots
    );
    if let Some(code) = &p.pure_code {
        let inlined = |own: bool| {
            code.ops
                .iter()
                .filter(|op| match op {
                    Op::Inline { .. } => own,
                    Op::InlineOther { .. } => !own,
                    _ => false,
                })
                .count()
        };
        // Named-`let` loops run in this frame: one per loop procedure.
        let mut loops: Vec<u32> = code
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::LetLoop { proto, .. } => Some(*proto),
                _ => None,
            })
            .collect();
        loops.sort_unstable();
        loops.dedup();
        let _ = writeln!(
            out,
            "{pad}  pure tier: tried first ({}, {}; no activation, {}{}{}{}{}{})",
            count(code.ops.len(), "instruction"),
            count(code.nregs as usize, "register"),
            match code.scratch {
                Scratch::None => "no scratch region",
                Scratch::Callees => "a scratch region if a callee builds there",
                Scratch::Builds => "scratch region made at first use",
            },
            if code.builds { "; builds in dst" } else { "" },
            if code.stores {
                "; stores logged, put back if the run falls back"
            } else {
                ""
            },
            match inlined(true) {
                0 => String::new(),
                n => format!("; its body inlined at {} of itself", count(n, "call")),
            },
            match inlined(false) {
                0 => String::new(),
                n => format!(
                    "; a global procedure's body inlined at {}",
                    count(n, "call")
                ),
            },
            match loops.len() {
                0 => String::new(),
                n => format!(
                    "; {} run in its frame, with no closure",
                    count(n, "named-let loop")
                ),
            }
        );
    }
    let mut lines = Vec::new();
    let mut nested = Vec::new();
    walk(&p.body, &mut lines, &mut nested);
    // An allocation site or a call whose result is built there.
    let uses_scratch = lines
        .iter()
        .any(|l: &String| l.contains("-> scratch") || l.contains("callee dst = scratch"));
    if uses_scratch {
        let _ = writeln!(
            out,
            "{pad}  region scratch: created at first use; exited at return and before each tail call"
        );
    } else {
        let _ = writeln!(out, "{pad}  region scratch: none (no allocation dies here)");
    }
    for l in &lines {
        let _ = writeln!(out, "{pad}  {l}");
    }
    let _ = writeln!(
        out,
        "{pad}  repair return: result admitted into dst (reuse if already there or older, else merge/transmigrate by H0)"
    );
    for n in nested {
        explain_proto(n, out, indent + 1);
    }
}

/// The schedule line of a variable store (`n` is one).
fn store_line(n: &Node, span: crate::reader::Span) -> String {
    const INTO_SLOTS: &str = "(box store helper: into the box's slot region once it overwrites)";
    match n {
        Node::SetGlobal(g, ..) => {
            format!("repair global set! (global #{g}) @{span}: admitted into global region")
        }
        Node::SetGlobalBox(g, ..) => {
            format!("barrier global set! (global #{g}, assigned: boxed) @{span} {INTO_SLOTS}")
        }
        Node::DefGlobal(g, ..) => {
            format!("repair define (global #{g}) @{span}: admitted into global region")
        }
        Node::DefGlobalBox(g, ..) => format!(
            "repair define (global #{g}, assigned: boxed) @{span}: admitted into global region, in a box"
        ),
        _ => format!("barrier set! of captured variable @{span} {INTO_SLOTS}"),
    }
}

fn walk<'a>(n: &'a Node, lines: &mut Vec<String>, nested: &mut Vec<&'a Proto>) {
    match n {
        Node::Const(_)
        | Node::HeapConst(_)
        | Node::Local(_)
        | Node::LocalBox(_)
        | Node::Capture(_)
        | Node::CaptureBox(_)
        | Node::SelfRef
        | Node::Global(..)
        | Node::GlobalBox(..) => {}
        Node::BoxBorrow { span, .. } => lines.push(format!(
            "read of assigned variable @{span} without pin (dies before the box's next store)"
        )),
        Node::Borrow(x) => {
            walk(x, lines, nested);
            if let Node::Prim { op, span, .. } = &**x {
                lines.push(format!(
                    "read {} @{span} without pin (dies before the container's next store)",
                    op.name()
                ));
            }
        }
        Node::SetLocal(_, x) | Node::Bind(_, x) => walk(x, lines, nested),
        Node::SetLocalBox(_, x, span)
        | Node::SetCaptureBox(_, x, span)
        | Node::SetGlobal(_, x, span)
        | Node::SetGlobalBox(_, x, span)
        | Node::DefGlobal(_, x, span)
        | Node::DefGlobalBox(_, x, span) => {
            walk(x, lines, nested);
            lines.push(store_line(n, *span));
        }
        Node::If(c, t, e) => {
            walk(c, lines, nested);
            walk(t, lines, nested);
            walk(e, lines, nested);
        }
        Node::Seq(xs) => xs.iter().for_each(|x| walk(x, lines, nested)),
        Node::Or(a, b) => {
            walk(a, lines, nested);
            walk(b, lines, nested);
        }
        Node::BindBox(slot, x, t, span) => {
            walk(x, lines, nested);
            let at = if span.line == 0 {
                format!("for slot {slot}")
            } else {
                format!("@{span}")
            };
            lines.push(format!(
                "alloc box (captured and assigned variable) {at} -> {}",
                target_name(*t)
            ));
        }
        Node::Closure(p, caps, t, span) => {
            let self_refs = caps.iter().filter(|c| matches!(c, CapSrc::SelfRef)).count();
            lines.push(format!(
                "alloc closure {} @{span} -> {} (captures {}, admitted by the barrier{})",
                p.name,
                target_name(*t),
                caps.len(),
                if self_refs > 0 {
                    ", self by reference"
                } else {
                    ""
                }
            ));
            nested.push(p);
        }
        Node::Call {
            f,
            args,
            target,
            tail,
            span,
        } => {
            walk(f, lines, nested);
            args.iter().for_each(|a| walk(a, lines, nested));
            if *tail {
                lines.push(format!(
                    "tail call @{span}: arguments admitted into dst (one built in the next-iteration region stays there), scratch and this iteration's region exited, frame reused"
                ));
            } else {
                lines.push(format!(
                    "call @{span} -> callee dst = {}",
                    target_name(*target)
                ));
            }
        }
        Node::Prim {
            op,
            args,
            target,
            span,
        } => {
            args.iter().for_each(|a| walk(a, lines, nested));
            if op.is_store() {
                let repair = if op.has_slot_region() {
                    "else repair into the container's slot region"
                } else {
                    "else repair"
                };
                lines.push(format!(
                    "barrier {} @{span} (store helper: same/older fast path, {repair})",
                    op.name()
                ));
            } else if *op == Prim::Send {
                lines.push(format!(
                    "handoff send @{span}: option B (message copied into a fresh message region, which the receiver adopts)"
                ));
            } else if *op == Prim::Spawn {
                lines.push(format!(
                    "handoff spawn @{span}: option B (thunk and globals copied into a message region for the new thread)"
                ));
            } else if matches!(op, Prim::Recv | Prim::Join) {
                lines.push(format!(
                    "adopt {} @{span} -> {} (received region spliced in, O(1))",
                    op.name(),
                    target_name(*target)
                ));
            } else if op.allocates() {
                lines.push(format!(
                    "alloc {} @{span} -> {}",
                    op.name(),
                    target_name(*target)
                ));
            }
        }
        // Superinstructions print as the primitive call they stand for.
        Node::FixOp2 { general, .. }
        | Node::FixExpr { general, .. }
        | Node::EqConst { general, .. }
        | Node::LocalOp1 { general, .. }
        | Node::LocalOp2 { general, .. } => walk(general, lines, nested),
        Node::SendFresh { chan, msg, span } => {
            walk(chan, lines, nested);
            lines.push(format!(
                "region message @{span}: created for a fresh message"
            ));
            walk(msg, lines, nested);
            lines.push(format!(
                "handoff send @{span}: option A (message region handed over whole, O(1); falls back to copy if the check fails)"
            ));
        }
    }
}

/// `n` things, the noun plural unless `n` is 1.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
