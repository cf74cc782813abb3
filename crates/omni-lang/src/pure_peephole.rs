//! Rewrites of a procedure's pure-tier code (`pure_code.rs`) once it is
//! generated, each removing instructions the tier would dispatch:
//!
//! - **Arguments in place** (`args_in_place`). A tail call's arguments
//!   are computed into temporaries and then slide down to the frame's
//!   base. When every argument is written by one instruction of the
//!   straight-line code before the call, and moving that write to the
//!   argument's final register clobbers nothing a later instruction
//!   reads, the writes go there directly: the slide disappears, and an
//!   argument that is the parameter already in its place costs nothing
//!   (`(loop row (+ dist 1) (cdr placed))` passes `row` for free).
//!   An inlined body's loop whose arguments cannot be computed in place
//!   moves them with one `Move` each before it (`loop_moves`): cheaper
//!   than the loop's copying them itself.
//! - **Pair reads reused** (`reuse_pair_reads`). A `car` or `cdr` of a
//!   register whose result is still in the register it wrote (neither
//!   register written since, on every path to it) is dropped: source
//!   code that says `(car placed)` three times reads it once.
//!
//! - **Small fusions.** Two register copies in a row become one
//!   instruction (`Move2`), also when a constant's copy stood between them
//!   (it goes after them); a `cons` or `+` whose result is returned next
//!   returns it itself (`ReturnCons`, `ReturnAdd`); a copy followed by a
//!   jump (an inlined body's value) jumps itself (`MoveJump`).
//! - **Known tests skipped** (`thread_known_tests`). A constant copied
//!   into a register that is tested next (an inlined predicate's `#t` or
//!   `#f`, then its caller's `if`) jumps where the test would go.
//!
//! All keep what every register holds where it is read, so the tier's
//! results, fallbacks included, are those of the code as generated: a
//! dropped read would have read the same pair, and a fallback abandons
//! the run whatever the registers hold.

use crate::pure_code::{Op, Src};

/// The rewrites, in order.
pub(crate) fn optimize(ops: &mut Vec<Op>) {
    args_in_place(ops);
    loop_moves(ops);
    reuse_pair_reads(ops);
    pair_moves(ops);
    fuse_returns(ops);
    fuse_pair_tests(ops);
    fuse_move_jumps(ops);
    thread_known_tests(ops);
}

/// The registers an instruction writes.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Writes {
    None,
    One(u32),
    Two(u32, u32),
    /// A call: its result at `start`, and its callee's frame (every
    /// register from `start` up) clobbered.
    From(u32),
}

impl Writes {
    fn covers(self, r: u32) -> bool {
        match self {
            Writes::None => false,
            Writes::One(w) => w == r,
            Writes::Two(v, w) => v == r || w == r,
            Writes::From(s) => r >= s,
        }
    }
}

impl Op {
    fn writes(&self) -> Writes {
        match *self {
            Op::Call { start, .. }
            | Op::CallGlobal { start, .. }
            | Op::Inline { start, .. }
            | Op::InlineOther { start, .. } => Writes::From(start),
            Op::Move2 { dst, dst2, .. } => Writes::Two(dst, dst2),
            mut op => match op.dst_mut() {
                Some(d) => Writes::One(*d),
                None => Writes::None,
            },
        }
    }

    /// Call `f` on each register the instruction reads.
    fn reads(&self, mut f: impl FnMut(u32)) {
        let mut src = |s: Src| {
            if let Src::Reg(r) = s {
                f(r)
            }
        };
        match *self {
            Op::Move { a, .. }
            | Op::MoveJump { a, .. }
            | Op::Unary { a, .. }
            | Op::JumpUnless { a, .. }
            | Op::JumpIf { a, .. }
            | Op::Return { a } => src(a),
            Op::Fix { a, b, .. }
            | Op::Eq { a, b, .. }
            | Op::BranchUnless { a, b, .. }
            | Op::Cons { a, b, .. }
            | Op::ConsScratch { a, b, .. }
            | Op::ReturnCons { a, b } => {
                src(a);
                src(b);
            }
            Op::FixK { a, .. }
            | Op::AddK { a, .. }
            | Op::Car { a, .. }
            | Op::Cdr { a, .. }
            | Op::Length { a, .. }
            | Op::BranchUnlessNull { a, .. }
            | Op::PairBranchUnlessNull { a, .. }
            | Op::BranchUnlessUnary { a, .. }
            | Op::BranchUnlessIs { a, .. }
            | Op::BranchUnlessIn { a, .. }
            | Op::BranchUnlessOut { a, .. } => src(Src::Reg(a)),
            Op::Add { a, b, .. }
            | Op::Sub { a, b, .. }
            | Op::Move2 { a, a2: b, .. }
            | Op::ReturnAdd { a, b }
            | Op::BranchUnlessSame { a, b, .. }
            | Op::BranchUnlessLess { a, b, .. } => {
                src(Src::Reg(a));
                src(Src::Reg(b));
            }
            Op::List { start, n, .. } | Op::Closure { start, n, .. } => {
                (start..start + n).for_each(|r| src(Src::Reg(r)))
            }
            Op::ListIn { start, n, c, .. } => {
                (start..start + n).for_each(|r| src(Src::Reg(r)));
                src(Src::Reg(c));
            }
            Op::ConsIn { a, b, c, .. }
            | Op::BuildAt {
                list: false,
                a,
                b,
                c,
                ..
            } => {
                src(Src::Reg(a));
                src(Src::Reg(b));
                src(Src::Reg(c));
            }
            Op::BuildAt {
                list: true,
                a: start,
                b: n,
                c,
                ..
            } => {
                (start..start + n).for_each(|r| src(Src::Reg(r)));
                src(Src::Reg(c));
            }
            Op::ArraySet { c, i: k, x } | Op::DictSet { c, k, x } => {
                src(Src::Reg(c));
                src(Src::Reg(k));
                src(x);
            }
            Op::BoxGet { b, .. } => src(Src::Reg(b)),
            Op::BoxSet { b: p, x } | Op::PairSet { p, x, .. } => {
                src(Src::Reg(p));
                src(x);
            }
            Op::ArrayRef { c, i: k, .. } => {
                src(Src::Reg(c));
                src(Src::Reg(k));
            }
            Op::DictRef { c, k, default, .. } => {
                src(Src::Reg(c));
                src(Src::Reg(k));
                if default != crate::pure_code::NO_DEFAULT {
                    src(Src::Reg(default));
                }
            }
            Op::Call {
                f: g, start, argc, ..
            }
            | Op::TailCall {
                f: g, start, argc, ..
            } => {
                src(Src::Reg(g));
                (start..start + argc).for_each(|r| src(Src::Reg(r)));
            }
            Op::CallGlobal { start, argc, .. }
            | Op::TailCallGlobal { start, argc, .. }
            | Op::Inline { start, argc, .. }
            | Op::InlineOther { start, argc, .. }
            | Op::InlineLoop { start, argc, .. }
            // (A named loop's commit reads its captures too: they are
            // never written in the loop.)
            | Op::LetLoop { start, argc, .. } => {
                (start..start + argc).for_each(|r| src(Src::Reg(r)))
            }
            Op::Global { .. }
            | Op::HeapConst { .. }
            | Op::Capture { .. }
            | Op::SelfRef { .. }
            | Op::Jump { .. }
            | Op::Fail => {}
        }
    }

    /// Whether the next instruction can run after this one.
    fn falls_through(&self) -> bool {
        !matches!(
            self,
            Op::Jump { .. }
                | Op::MoveJump { .. }
                | Op::Return { .. }
                | Op::ReturnCons { .. }
                | Op::ReturnAdd { .. }
                | Op::TailCall { .. }
                | Op::TailCallGlobal { .. }
                | Op::InlineLoop { .. }
                | Op::LetLoop { .. }
                | Op::Fail
        )
    }

    fn reads_reg(&self, r: u32) -> bool {
        let mut found = false;
        self.reads(|x| found |= x == r);
        found
    }
}

/// Which instructions a jump goes to.
fn labels(ops: &[Op]) -> Vec<bool> {
    let mut at = vec![false; ops.len() + 1];
    for op in ops {
        if let Some(to) = op.jump_target() {
            if let Some(l) = at.get_mut(to as usize) {
                *l = true;
            }
        }
    }
    at
}

/// Compute each tail call's arguments in their final registers where that
/// changes nothing any instruction reads (module comment): the frame's
/// base for a tail call, the inlined body's parameters for its loop.
fn args_in_place(ops: &mut Vec<Op>) {
    let labels = labels(ops);
    let mut dead = vec![false; ops.len()];
    for t in 0..ops.len() {
        let (base, start, argc) = match ops[t] {
            Op::TailCall { start, argc, .. } | Op::TailCallGlobal { start, argc, .. } => {
                (0, start, argc)
            }
            Op::InlineLoop {
                off, start, argc, ..
            }
            | Op::LetLoop {
                off, start, argc, ..
            } => (off, start, argc),
            _ => continue,
        };
        if start == base || argc == 0 {
            continue;
        }
        let Some(plan) = in_place_plan(ops, &labels, t, (base, start, argc)) else {
            continue;
        };
        for (i, &p) in plan.iter().enumerate() {
            let to = base + i as u32;
            if matches!(ops[p], Op::Move { a: Src::Reg(r), .. } if r == to) {
                dead[p] = true;
            } else if let Some(d) = ops[p].dst_mut() {
                *d = to;
            }
        }
        match &mut ops[t] {
            Op::TailCall { start, .. }
            | Op::TailCallGlobal { start, .. }
            | Op::InlineLoop { start, .. }
            | Op::LetLoop { start, .. } => *start = base,
            _ => {}
        }
    }
    remove(ops, &dead);
}

/// Each inlined loop whose arguments are not in place yet gets a `Move`
/// per argument before it (which `pair_moves` pairs), and finds them in
/// place. A jump to the loop goes to the first move.
fn loop_moves(ops: &mut Vec<Op>) {
    if !ops.iter().any(|op| {
        matches!(op, Op::InlineLoop { off, start, .. } | Op::LetLoop { off, start, .. }
            if off != start)
    }) {
        return;
    }
    let mut out = Vec::with_capacity(ops.len() + 8);
    // new_index[k]: where instruction k's code now starts.
    let mut new_index = Vec::with_capacity(ops.len() + 1);
    for &op in ops.iter() {
        new_index.push(out.len() as u32);
        match op {
            Op::InlineLoop {
                off, start, argc, ..
            }
            | Op::LetLoop {
                off, start, argc, ..
            } if off != start => {
                out.extend((0..argc).map(|i| Op::Move {
                    dst: off + i,
                    a: Src::Reg(start + i),
                }));
                let mut moved = op;
                if let Op::InlineLoop { start, .. } | Op::LetLoop { start, .. } = &mut moved {
                    *start = off;
                }
                out.push(moved);
            }
            op => out.push(op),
        }
    }
    new_index.push(out.len() as u32);
    remap_jumps(&mut out, &new_index);
    *ops = out;
}

/// For the tail call (or inlined loop) at `t` with arguments at `start..
/// start + argc` that go to `base..base + argc`: the instruction that
/// writes each argument, if all of them can write it in place instead.
fn in_place_plan(
    ops: &[Op],
    labels: &[bool],
    t: usize,
    (base, start, argc): (u32, u32, u32),
) -> Option<Vec<usize>> {
    // The straight-line code before the call: no jump into it after its
    // first instruction, none out of it.
    let mut w = t;
    while w > 0 && !labels[w] && ops[w - 1].jump_target().is_none() && ops[w - 1].falls_through() {
        w -= 1;
    }
    if let Op::TailCall { f, .. } = ops[t] {
        // The callee's register must survive the arguments' writes.
        if (base..base + argc).contains(&f) {
            return None;
        }
    }
    let mut plan = Vec::with_capacity(argc as usize);
    for i in 0..argc {
        let s = start + i;
        let to = base + i;
        let p = (w..t).rev().find(|&k| ops[k].writes().covers(s))?;
        // (`One` is a register an instruction names as its `dst`.)
        if ops[p].writes() != Writes::One(s) {
            return None;
        }
        // Between the write and the call: nothing reads the argument's
        // register or the one it moves to, nothing else writes them.
        for op in &ops[p + 1..t] {
            if op.reads_reg(s) || op.reads_reg(to) || op.writes().covers(to) {
                return None;
            }
        }
        plan.push(p);
    }
    Some(plan)
}

/// Drop each `car` or `cdr` whose result its register still holds (module
/// comment). One pass in order sees every path into an instruction before
/// it, but for the jumps back (an inlined body's loop): at an instruction
/// one goes to, its facts are not known yet, so they count as none, and
/// nothing holds there.
fn reuse_pair_reads(ops: &mut Vec<Op>) {
    /// `dst` holds the `car` (or `cdr`) of `src`.
    #[derive(Clone, Copy, PartialEq)]
    struct Read {
        cdr: bool,
        dst: u32,
        src: u32,
    }
    let labels = labels(ops);
    // What holds at each instruction a jump goes to, from its jumps.
    let mut at_label: Vec<Option<Vec<Read>>> = vec![None; ops.len() + 1];
    let meet = |a: Option<Vec<Read>>, b: &[Read]| -> Vec<Read> {
        match a {
            None => b.to_vec(),
            Some(a) => a.into_iter().filter(|r| b.contains(r)).collect(),
        }
    };
    let mut dead = vec![false; ops.len()];
    // `None`: no path falls into the next instruction.
    let mut holds: Option<Vec<Read>> = Some(Vec::new());
    for k in 0..ops.len() {
        if labels[k] {
            let from_jumps = at_label[k].take().unwrap_or_default();
            holds = Some(match holds {
                Some(h) => meet(Some(h), &from_jumps),
                None => from_jumps,
            });
        }
        let mut facts = holds.take().unwrap_or_default();
        let op = ops[k];
        let read = match op {
            Op::Car { dst, a } => Some(Read {
                cdr: false,
                dst,
                src: a,
            }),
            Op::Cdr { dst, a } => Some(Read {
                cdr: true,
                dst,
                src: a,
            }),
            _ => None,
        };
        if read.is_some_and(|r| facts.contains(&r)) {
            dead[k] = true;
        } else {
            let w = op.writes();
            facts.retain(|r| !w.covers(r.dst) && !w.covers(r.src));
            if let Some(r) = read.filter(|r| r.dst != r.src) {
                facts.push(r);
            }
        }
        if let Some(to) = op.jump_target() {
            let slot = &mut at_label[to as usize];
            *slot = Some(meet(slot.take(), &facts));
        }
        holds = op.falls_through().then_some(facts);
    }
    remove(ops, &dead);
}

/// Two register copies in a row (no jump to the second) become one
/// instruction that makes both, in the same order. A constant copied
/// between two register copies (arguments `(f a 1 b)`) goes after the
/// second first, when neither reads or writes its register.
fn pair_moves(ops: &mut Vec<Op>) {
    let labels = labels(ops);
    for k in 0..ops.len().saturating_sub(1) {
        if let (
            Op::Move {
                dst: c,
                a: Src::Val(_),
            },
            Op::Move {
                dst,
                a: Src::Reg(a),
            },
            false,
        ) = (ops[k], ops[k + 1], labels[k + 1])
        {
            if c != dst && c != a {
                ops.swap(k, k + 1);
            }
        }
    }
    let mut dead = vec![false; ops.len()];
    let mut k = 0;
    while k + 1 < ops.len() {
        if let (
            Op::Move {
                dst,
                a: Src::Reg(a),
            },
            Op::Move {
                dst: dst2,
                a: Src::Reg(a2),
            },
            false,
        ) = (ops[k], ops[k + 1], labels[k + 1])
        {
            ops[k] = Op::Move2 { dst, a, dst2, a2 };
            dead[k + 1] = true;
            k += 2;
        } else {
            k += 1;
        }
    }
    remove(ops, &dead);
}

/// A register copy followed by a jump makes the jump itself (the jump
/// stays for the jumps that go to it).
fn fuse_move_jumps(ops: &mut Vec<Op>) {
    let labels = labels(ops);
    let mut dead = vec![false; ops.len()];
    for k in 0..ops.len().saturating_sub(1) {
        if let (Op::Move { dst, a }, Op::Jump { to }) = (ops[k], ops[k + 1]) {
            ops[k] = Op::MoveJump { dst, a, to };
            dead[k + 1] = !labels[k + 1];
        }
    }
    remove(ops, &dead);
}

/// A constant copied into a register, then tested (`JumpUnless`,
/// `JumpIf` of that register, jumped or fallen to next): the copy goes
/// where the test would send it, and the test is not made. (An inlined
/// predicate's exits, each a constant and a jump to its caller's `if`.)
fn thread_known_tests(ops: &mut Vec<Op>) {
    let labels = labels(ops);
    let mut dead = vec![false; ops.len()];
    for k in 0..ops.len() {
        let (dst, v, t) = match ops[k] {
            Op::MoveJump {
                dst,
                a: Src::Val(v),
                to,
            } => (dst, v, to as usize),
            Op::Move {
                dst,
                a: Src::Val(v),
            } => (dst, v, k + 1),
            _ => continue,
        };
        let to = match ops.get(t) {
            Some(&Op::JumpUnless { a: Src::Reg(r), to }) if r == dst => match v.is_truthy() {
                true => t + 1,
                false => to as usize,
            },
            Some(&Op::JumpIf { a: Src::Reg(r), to }) if r == dst => match v.is_truthy() {
                true => to as usize,
                false => t + 1,
            },
            _ => continue,
        };
        let Ok(to) = u32::try_from(to) else { continue };
        if t == k + 1 {
            // (The test stays for the jumps that go to it.)
            dead[t] = !labels[t];
        }
        ops[k] = Op::MoveJump {
            dst,
            a: Src::Val(v),
            to,
        };
    }
    remove(ops, &dead);
}

/// A `cons` or `+` whose result the next instruction returns returns it
/// itself (the `return` stays for the jumps that go to it).
fn fuse_returns(ops: &mut Vec<Op>) {
    let labels = labels(ops);
    let mut dead = vec![false; ops.len()];
    for k in 0..ops.len().saturating_sub(1) {
        let Op::Return { a: Src::Reg(r) } = ops[k + 1] else {
            continue;
        };
        let fused = match ops[k] {
            Op::Cons { dst, a, b } if dst == r => Op::ReturnCons { a, b },
            Op::Add { dst, a, b } if dst == r => Op::ReturnAdd { a, b },
            _ => continue,
        };
        ops[k] = fused;
        dead[k + 1] = !labels[k + 1];
    }
    remove(ops, &dead);
}

/// A `car` or `cdr` whose result the next instruction (no jump to it)
/// tests for the empty list makes the test itself, still writing its
/// result (read again later: `(check (car t))` after `(null? (car t))`).
fn fuse_pair_tests(ops: &mut Vec<Op>) {
    let labels = labels(ops);
    let mut dead = vec![false; ops.len()];
    for k in 0..ops.len().saturating_sub(1) {
        let Op::BranchUnlessNull { a: r, to } = ops[k + 1] else {
            continue;
        };
        let (dst, a, cdr) = match ops[k] {
            Op::Car { dst, a } => (dst, a, false),
            Op::Cdr { dst, a } => (dst, a, true),
            _ => continue,
        };
        if dst != r || labels[k + 1] {
            continue;
        }
        ops[k] = Op::PairBranchUnlessNull { dst, a, cdr, to };
        dead[k + 1] = true;
    }
    remove(ops, &dead);
}

/// Remove the instructions marked `dead`, pointing each jump at the
/// instruction that followed its target.
fn remove(ops: &mut Vec<Op>, dead: &[bool]) {
    if !dead.contains(&true) {
        return;
    }
    // new_index[k]: where instruction k (or, if it goes, the next kept one) ends up.
    let mut new_index = Vec::with_capacity(ops.len() + 1);
    let mut n = 0u32;
    for &d in dead {
        new_index.push(n);
        n += u32::from(!d);
    }
    new_index.push(n);
    let mut k = 0;
    ops.retain(|_| {
        k += 1;
        !dead[k - 1]
    });
    remap_jumps(ops, &new_index);
}

/// Point each jump at where the instruction it went to now starts
/// (`new_index[k]`, for each old index `k` and the end).
fn remap_jumps(ops: &mut [Op], new_index: &[u32]) {
    for op in ops.iter_mut() {
        if let Some(to) = op.jump_target_mut() {
            *to = new_index[*to as usize];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure_code::Site;
    use crate::reader::Span;
    use omni_mem::Value;

    fn one() -> Value {
        Value::fixnum(1).expect("a fixnum")
    }

    fn k(n: i64) -> Src {
        Src::Val(Value::fixnum(n).unwrap_or(Value::NOTHING))
    }

    /// `ops` as the rewrites leave them.
    fn optimized(mut ops: Vec<Op>) -> String {
        optimize(&mut ops);
        format!("{ops:?}")
    }

    fn assert_unchanged(ops: Vec<Op>) {
        let before = format!("{ops:?}");
        assert_eq!(optimized(ops), before);
    }

    #[test]
    fn a_pair_read_tested_next_for_the_empty_list_makes_the_test_and_keeps_its_result() {
        // (if (null? (car t)) 1 (+ 1 (check (car t)))): the call reads the
        // `car` from the register the fused test still writes.
        let ops = vec![
            Op::Car { dst: 1, a: 0 },
            Op::BranchUnlessNull { a: 1, to: 3 },
            Op::Return { a: k(1) },
            Op::CallGlobal {
                g: 7,
                start: 1,
                argc: 1,
                in_dst: false,
                site: Site::OWN,
            },
            Op::AddK {
                dst: 2,
                a: 1,
                k: one(),
            },
            Op::Return { a: Src::Reg(2) },
        ];
        let want = "[PairBranchUnlessNull { dst: 1, a: 0, cdr: false, to: 2 }, \
                    Return { a: Val(1) }, \
                    CallGlobal { g: 7, start: 1, argc: 1, in_dst: false, site: Site { levels: 0, tail: false } }, \
                    AddK { dst: 2, a: 1, k: 1 }, Return { a: Reg(2) }]";
        assert_eq!(optimized(ops), want);
        // A test of another register, or one a jump goes to, stays apart.
        assert_unchanged(vec![
            Op::Cdr { dst: 1, a: 0 },
            Op::BranchUnlessNull { a: 0, to: 3 },
            Op::Return { a: Src::Reg(1) },
            Op::Return { a: k(0) },
        ]);
        assert_unchanged(vec![
            Op::BranchUnlessIn {
                a: 0,
                lo: 0,
                hi: 0,
                to: 2,
            },
            Op::Cdr { dst: 1, a: 0 },
            Op::BranchUnlessNull { a: 1, to: 4 },
            Op::Return { a: Src::Reg(1) },
            Op::Return { a: k(0) },
        ]);
    }

    #[test]
    fn a_tail_calls_arguments_are_written_in_place_and_a_parameter_in_place_costs_nothing() {
        // (loop row (+ dist 1) (cdr placed)) with row, dist, placed in 0..3.
        let ops = vec![
            Op::BranchUnlessNull { a: 2, to: 2 },
            Op::Return { a: k(1) },
            Op::Move {
                dst: 4,
                a: Src::Reg(0),
            },
            Op::AddK {
                dst: 5,
                a: 1,
                k: one(),
            },
            Op::Cdr { dst: 6, a: 2 },
            Op::TailCallGlobal {
                g: 7,
                start: 4,
                argc: 3,
                span: Span::default(),
            },
        ];
        let ops = optimized(ops);
        let want = "[BranchUnlessNull { a: 2, to: 2 }, Return { a: Val(1) }, \
                    AddK { dst: 1, a: 1, k: 1 }, Cdr { dst: 2, a: 2 }, \
                    TailCallGlobal { g: 7, start: 0, argc: 3, span: Span { line: 0, col: 0, offset: 0 } }]";
        assert_eq!(ops, want);
    }

    /// An inlined body at 4..7 (parameters `row dist placed`) whose loop
    /// (its arguments at `args`) follows `before`.
    fn inlined_loop(before: Vec<Op>, args: u32) -> Vec<Op> {
        let end = before.len() as u32 + 5;
        let mut ops = vec![
            Op::Inline {
                g: 7,
                start: 4,
                argc: 3,
                in_dst: false,
                level: 1,
                to: end,
            },
            Op::BranchUnlessNull { a: 6, to: end },
            Op::Car { dst: 8, a: 6 },
            Op::BranchUnlessSame {
                a: 8,
                b: 4,
                eq: false,
                to: end,
            },
        ];
        ops.extend(before);
        ops.push(Op::InlineLoop {
            to: 1,
            off: 4,
            start: args,
            argc: 3,
        });
        ops.push(Op::Return { a: Src::Reg(4) });
        ops
    }

    #[test]
    fn an_inlined_loops_arguments_are_written_in_its_parameters() {
        // (loop row (+ dist 1) (cdr placed)) in an inlined body: written
        // where the loop finds them.
        let ops = inlined_loop(
            vec![
                Op::Move {
                    dst: 9,
                    a: Src::Reg(4),
                },
                Op::AddK {
                    dst: 10,
                    a: 5,
                    k: one(),
                },
                Op::Cdr { dst: 11, a: 6 },
            ],
            9,
        );
        let want = "[Inline { g: 7, start: 4, argc: 3, in_dst: false, level: 1, to: 7 }, \
                    BranchUnlessNull { a: 6, to: 7 }, Car { dst: 8, a: 6 }, \
                    BranchUnlessSame { a: 8, b: 4, eq: false, to: 7 }, \
                    AddK { dst: 5, a: 5, k: 1 }, Cdr { dst: 6, a: 6 }, \
                    InlineLoop { to: 1, off: 4, start: 4, argc: 3 }, Return { a: Reg(4) }]";
        assert_eq!(optimized(ops), want);
    }

    #[test]
    fn an_inlined_loop_that_swaps_its_parameters_moves_them_before_it() {
        // (loop placed row dist), and a jump to the loop: each argument
        // reads a parameter another one overwrites, so they stay where
        // computed and move before the loop, where the jump now goes.
        let mut ops = inlined_loop(
            vec![
                Op::Move {
                    dst: 9,
                    a: Src::Reg(6),
                },
                Op::Move {
                    dst: 10,
                    a: Src::Reg(4),
                },
                Op::Move {
                    dst: 11,
                    a: Src::Reg(5),
                },
                Op::Jump { to: 8 },
            ],
            9,
        );
        ops[7] = Op::BranchUnlessNull { a: 5, to: 8 };
        let want = "[Inline { g: 7, start: 4, argc: 3, in_dst: false, level: 1, to: 10 }, \
                    BranchUnlessNull { a: 6, to: 10 }, Car { dst: 8, a: 6 }, \
                    BranchUnlessSame { a: 8, b: 4, eq: false, to: 10 }, \
                    Move2 { dst: 9, a: 6, dst2: 10, a2: 4 }, Move { dst: 11, a: Reg(5) }, \
                    BranchUnlessNull { a: 5, to: 7 }, \
                    Move2 { dst: 4, a: 9, dst2: 5, a2: 10 }, Move { dst: 6, a: Reg(11) }, \
                    InlineLoop { to: 1, off: 4, start: 4, argc: 3 }, Return { a: Reg(4) }]";
        assert_eq!(optimized(ops), want);
    }

    fn named_loop(start: u32) -> Op {
        Op::LetLoop {
            to: 0,
            off: 2,
            start,
            argc: 2,
            proto: 9,
            ncaps: 1,
            span: crate::reader::Span::default(),
        }
    }

    #[test]
    fn a_named_loops_arguments_are_written_in_its_parameters_or_moved_there() {
        // (loop (+ i 1) (cdr l)): each argument written where the loop
        // finds it.
        let ops = vec![
            Op::AddK {
                dst: 5,
                a: 2,
                k: one(),
            },
            Op::Cdr { dst: 6, a: 3 },
            named_loop(5),
        ];
        let mut want = vec![
            Op::AddK {
                dst: 2,
                a: 2,
                k: one(),
            },
            Op::Cdr { dst: 3, a: 3 },
            named_loop(2),
        ];
        assert_eq!(optimized(ops), format!("{want:?}"));
        // (loop b a): they swap the parameters, so they move there before
        // the loop.
        let ops = vec![
            Op::Move {
                dst: 5,
                a: Src::Reg(3),
            },
            Op::Move {
                dst: 6,
                a: Src::Reg(2),
            },
            named_loop(5),
        ];
        want = vec![
            Op::Move2 {
                dst: 5,
                a: 3,
                dst2: 6,
                a2: 2,
            },
            Op::Move2 {
                dst: 2,
                a: 5,
                dst2: 3,
                a2: 6,
            },
            named_loop(2),
        ];
        assert_eq!(optimized(ops), format!("{want:?}"));
    }

    #[test]
    fn a_constant_copied_before_a_test_of_it_goes_where_the_test_would() {
        // (if (p l) 1 0) with `p`, (or (null? l) (f l)), inlined: its exits
        // copy #t or #f into its result and jump (or fall) to the `if`'s
        // test, which they now skip; a copy of #f that falls into a test
        // no jump reaches replaces it.
        let ops = vec![
            Op::BranchUnlessNull { a: 1, to: 2 },
            Op::MoveJump {
                dst: 3,
                a: Src::Val(Value::TRUE),
                to: 4,
            },
            Op::Car { dst: 5, a: 1 },
            Op::Move {
                dst: 3,
                a: Src::Val(Value::FALSE),
            },
            Op::JumpUnless {
                a: Src::Reg(3),
                to: 6,
            },
            Op::Return { a: k(1) },
            Op::Return { a: k(0) },
        ];
        let want = vec![
            Op::BranchUnlessNull { a: 1, to: 2 },
            Op::MoveJump {
                dst: 3,
                a: Src::Val(Value::TRUE),
                to: 5,
            },
            Op::Car { dst: 5, a: 1 },
            Op::MoveJump {
                dst: 3,
                a: Src::Val(Value::FALSE),
                to: 6,
            },
            // (Still jumped to when the rewrite began.)
            Op::JumpUnless {
                a: Src::Reg(3),
                to: 6,
            },
            Op::Return { a: k(1) },
            Op::Return { a: k(0) },
        ];
        assert_eq!(optimized(ops), format!("{want:?}"));
        // A copy of something else, or a test of another register: left.
        assert_unchanged(vec![
            Op::Move {
                dst: 3,
                a: Src::Reg(2),
            },
            Op::JumpUnless {
                a: Src::Reg(3),
                to: 3,
            },
            Op::Move {
                dst: 4,
                a: Src::Val(Value::FALSE),
            },
            Op::JumpIf {
                a: Src::Reg(3),
                to: 0,
            },
            Op::Return { a: k(0) },
        ]);
    }

    #[test]
    fn a_constant_copied_between_two_register_copies_goes_after_them() {
        // (f a 1 b): the two register copies become one instruction.
        let ops = vec![
            Op::Move {
                dst: 4,
                a: Src::Reg(1),
            },
            Op::Move { dst: 5, a: k(1) },
            Op::Move {
                dst: 6,
                a: Src::Reg(2),
            },
            Op::Return { a: Src::Reg(4) },
        ];
        let want = vec![
            Op::Move2 {
                dst: 4,
                a: 1,
                dst2: 6,
                a2: 2,
            },
            Op::Move { dst: 5, a: k(1) },
            Op::Return { a: Src::Reg(4) },
        ];
        assert_eq!(optimized(ops), format!("{want:?}"));
        // Not past a copy that reads the constant's register, nor one a
        // jump goes to.
        for (read, jumped_to) in [(5, false), (2, true)] {
            assert_unchanged(vec![
                Op::BranchUnlessNull {
                    a: 1,
                    to: if jumped_to { 2 } else { 3 },
                },
                Op::Move { dst: 5, a: k(1) },
                Op::Move {
                    dst: 6,
                    a: Src::Reg(read),
                },
                Op::Return { a: Src::Reg(6) },
            ]);
        }
    }

    #[test]
    fn nothing_is_known_where_a_loop_jumps_back() {
        // The second `car` is the first of each round: after the first, the
        // round overwrote its register.
        assert_unchanged(vec![
            Op::Car { dst: 2, a: 3 },
            Op::Car { dst: 2, a: 3 },
            Op::AddK {
                dst: 2,
                a: 2,
                k: one(),
            },
            Op::BranchUnlessNull { a: 2, to: 5 },
            Op::InlineLoop {
                to: 1,
                off: 4,
                start: 4,
                argc: 0,
            },
            Op::Return { a: Src::Reg(2) },
        ]);
    }

    #[test]
    fn arguments_that_swap_parameters_stay_in_temporaries() {
        // (f b a): writing a's register first would lose it.
        let ops = vec![
            Op::Move {
                dst: 2,
                a: Src::Reg(1),
            },
            Op::Move {
                dst: 3,
                a: Src::Reg(0),
            },
            Op::TailCallGlobal {
                g: 7,
                start: 2,
                argc: 2,
                span: Span::default(),
            },
        ];
        let ops = optimized(ops);
        // (The two copies become one instruction.)
        let want = "[Move2 { dst: 2, a: 1, dst2: 3, a2: 0 }, \
                    TailCallGlobal { g: 7, start: 2, argc: 2, span: Span { line: 0, col: 0, offset: 0 } }]";
        assert_eq!(ops, want);
    }

    #[test]
    fn an_argument_computed_by_a_call_or_after_a_branch_stays_in_its_temporary() {
        let call = vec![
            Op::CallGlobal {
                g: 7,
                start: 1,
                argc: 0,
                in_dst: true,
                site: Site::OWN,
            },
            Op::TailCallGlobal {
                g: 7,
                start: 1,
                argc: 1,
                span: Span::default(),
            },
        ];
        assert_unchanged(call);
        // (f (if c 1 2)): the argument is written on two paths.
        let branchy = vec![
            Op::JumpUnless {
                a: Src::Reg(0),
                to: 3,
            },
            Op::Move { dst: 1, a: k(1) },
            Op::Jump { to: 4 },
            Op::Move { dst: 1, a: k(2) },
            Op::TailCallGlobal {
                g: 7,
                start: 1,
                argc: 1,
                span: Span::default(),
            },
        ];
        // (The copy and its jump fuse.)
        let want = "[JumpUnless { a: Reg(0), to: 2 }, MoveJump { dst: 1, a: Val(1), to: 3 }, \
                    Move { dst: 1, a: Val(2) }, \
                    TailCallGlobal { g: 7, start: 1, argc: 1, span: Span { line: 0, col: 0, offset: 0 } }]";
        assert_eq!(optimized(branchy), want);
    }

    #[test]
    fn a_copy_and_the_jump_after_it_fuse_and_a_jump_others_reach_stays() {
        // An inlined body's two exits: the first jump is also the target
        // of the test's jump, so it stays for it.
        let ops = vec![
            Op::BranchUnlessNull { a: 0, to: 2 },
            Op::Move { dst: 4, a: k(1) },
            Op::Jump { to: 5 },
            Op::Move {
                dst: 4,
                a: Src::Reg(0),
            },
            Op::Jump { to: 5 },
            Op::Return { a: Src::Reg(4) },
        ];
        let want = "[BranchUnlessNull { a: 0, to: 2 }, MoveJump { dst: 4, a: Val(1), to: 4 }, \
                    Jump { to: 4 }, MoveJump { dst: 4, a: Reg(0), to: 4 }, Return { a: Reg(4) }]";
        assert_eq!(optimized(ops), want);
    }

    #[test]
    fn a_register_callee_is_not_overwritten_by_an_argument() {
        // (g x) with g in register 0 read at the call.
        assert_unchanged(vec![
            Op::Move {
                dst: 2,
                a: Src::Reg(1),
            },
            Op::TailCall {
                f: 0,
                start: 2,
                argc: 1,
                span: Span::default(),
            },
        ]);
    }

    #[test]
    fn a_returned_pair_or_sum_is_returned_by_the_instruction_that_makes_it() {
        let ops = vec![
            Op::BranchUnlessNull { a: 0, to: 3 },
            Op::Cons {
                dst: 1,
                a: k(1),
                b: Src::Reg(0),
            },
            Op::Return { a: Src::Reg(1) },
            Op::Add { dst: 2, a: 0, b: 1 },
            // (A jump goes to this return: it stays.)
            Op::Return { a: Src::Reg(2) },
            Op::JumpIf {
                a: Src::Reg(0),
                to: 4,
            },
            Op::Return { a: k(0) },
        ];
        let want = "[BranchUnlessNull { a: 0, to: 2 }, \
                    ReturnCons { a: Val(1), b: Reg(0) }, \
                    ReturnAdd { a: 0, b: 1 }, Return { a: Reg(2) }, \
                    JumpIf { a: Reg(0), to: 3 }, Return { a: Val(0) }]";
        assert_eq!(optimized(ops), want);
        // A sum returned from another register is not the one returned.
        assert_unchanged(vec![
            Op::Add { dst: 2, a: 0, b: 1 },
            Op::Return { a: Src::Reg(1) },
        ]);
    }

    #[test]
    fn a_repeated_pair_read_is_dropped_while_its_registers_hold() {
        let ops = vec![
            Op::Car { dst: 4, a: 2 },
            Op::Add { dst: 5, a: 0, b: 1 },
            Op::BranchUnlessSame {
                a: 4,
                b: 5,
                eq: false,
                to: 6,
            },
            Op::Car { dst: 4, a: 2 },
            Op::BranchUnlessSame {
                a: 4,
                b: 0,
                eq: false,
                to: 6,
            },
            Op::Return { a: k(1) },
            Op::Return { a: k(0) },
        ];
        let ops = optimized(ops);
        let want = "[Car { dst: 4, a: 2 }, Add { dst: 5, a: 0, b: 1 }, \
                    BranchUnlessSame { a: 4, b: 5, eq: false, to: 5 }, \
                    BranchUnlessSame { a: 4, b: 0, eq: false, to: 5 }, \
                    Return { a: Val(1) }, Return { a: Val(0) }]";
        assert_eq!(ops, want);
    }

    #[test]
    fn a_pair_read_is_kept_after_its_register_or_source_is_written_or_on_a_join() {
        let written = vec![
            Op::Car { dst: 1, a: 0 },
            Op::AddK {
                dst: 1,
                a: 1,
                k: one(),
            },
            Op::Car { dst: 1, a: 0 },
            Op::Return { a: Src::Reg(1) },
        ];
        assert_unchanged(written);
        // A call clobbers every register from its start up.
        let called = vec![
            Op::Car { dst: 2, a: 0 },
            Op::CallGlobal {
                g: 7,
                start: 1,
                argc: 0,
                in_dst: true,
                site: Site::OWN,
            },
            Op::Car { dst: 2, a: 0 },
            Op::Return { a: Src::Reg(2) },
        ];
        assert_unchanged(called);
        // Two paths meet: only one of them read the pair.
        let joined = vec![
            Op::JumpUnless {
                a: Src::Reg(1),
                to: 2,
            },
            Op::Car { dst: 2, a: 0 },
            Op::Car { dst: 2, a: 0 },
            Op::Return { a: Src::Reg(2) },
        ];
        assert_unchanged(joined);
    }
}
