//! Superinstructions: a small pass over a compiled body that replaces the
//! most frequent primitive calls on locals and constants by nodes the VM
//! runs without a call (`Node::FixOp2`, `Node::LocalOp1`). Each keeps the
//! original node as its general case, so behaviour (floats, overflow,
//! errors and their positions) is unchanged; `explain` prints the
//! original. It also turns what `or` desugars to,
//! `(let ((t a)) (if t t b))`, into `Node::Or` when nothing else reads
//! `t`: same allocations and regions, one binding less.

use crate::builtins::Prim;
use crate::ir::{FixArg, FixOp, Node, Operand};

/// Fuse every eligible primitive call in `n`, bottom-up.
pub fn fuse(n: Node) -> Node {
    match n {
        Node::Prim {
            op,
            args,
            target,
            span,
        } => {
            let args: Vec<Node> = args.into_iter().map(fuse).collect();
            let fixop = FixOp::of_prim(op);
            let local1 = op.has_unary_fast_path();
            let fused = match (fixop, args.as_slice()) {
                (Some(f), [x, y]) => operand(x).zip(operand(y)).map(|(a, b)| (f, a, b)),
                _ => None,
            };
            let fused_expr = match (fixop, args.as_slice()) {
                (Some(f), [x, y]) => fix_arg(x).zip(fix_arg(y)).map(|(a, b)| (f, a, b)),
                _ => None,
            };
            let slot = match args.as_slice() {
                [Node::Local(s)] if local1 => Some(*s),
                _ => None,
            };
            let chain = match args.as_slice() {
                [Node::LocalOp1 {
                    op: inner, slot, ..
                }] if local1 => Some((*inner, *slot)),
                _ => None,
            };
            // `(not (< a b))` on fixnums is `(>= a b)`, `(not (= a b))` is
            // "not equal": one superinstruction (the general case is still
            // the `not` of the comparison).
            let negated = match (op, args.as_slice()) {
                (Prim::Not, [Node::FixOp2 { op: cmp, a, b, .. }]) => {
                    cmp.negated().map(|n| (n, *a, *b))
                }
                _ => None,
            };
            let negated_expr = match (op, args.as_slice()) {
                (Prim::Not, [Node::FixExpr { op: cmp, a, b, .. }]) => {
                    cmp.negated().map(|n| (n, a.clone(), b.clone()))
                }
                _ => None,
            };
            let eq_const = match (op, args.as_slice()) {
                (Prim::IsEq, [x, Node::Const(k)]) | (Prim::IsEq, [Node::Const(k), x]) => match x {
                    Node::Local(s) => Some((FixArg::Local(*s), *k)),
                    Node::LocalOp1 { op, slot, .. } => Some((FixArg::Unary(*op, *slot), *k)),
                    _ => None,
                },
                _ => None,
            };
            let general = Box::new(Node::Prim {
                op,
                args,
                target,
                span,
            });
            if let Some((a, k)) = eq_const {
                Node::EqConst { a, k, general }
            } else if let Some((op, a, b)) = negated.or(fused) {
                Node::FixOp2 { op, a, b, general }
            } else if let Some((op, a, b)) = negated_expr.or(fused_expr) {
                Node::FixExpr { op, a, b, general }
            } else if let Some(slot) = slot {
                Node::LocalOp1 { op, slot, general }
            } else if let Some((inner, slot)) = chain {
                Node::LocalOp2 {
                    outer: op,
                    inner,
                    slot,
                    general,
                }
            } else {
                *general
            }
        }
        Node::SetLocal(s, x) => Node::SetLocal(s, bx(*x)),
        Node::SetLocalBox(s, x, sp) => Node::SetLocalBox(s, bx(*x), sp),
        Node::SetCaptureBox(i, x, sp) => Node::SetCaptureBox(i, bx(*x), sp),
        Node::SetGlobal(g, x, sp) => Node::SetGlobal(g, bx(*x), sp),
        Node::DefGlobal(g, x, sp) => Node::DefGlobal(g, bx(*x), sp),
        Node::SetGlobalBox(g, x, sp) => Node::SetGlobalBox(g, bx(*x), sp),
        Node::DefGlobalBox(g, x, sp) => Node::DefGlobalBox(g, bx(*x), sp),
        Node::If(c, t, e) => Node::If(bx(*c), bx(*t), bx(*e)),
        Node::Seq(xs) => or_node(xs.into_iter().map(fuse).collect()),
        Node::Or(a, b) => Node::Or(bx(*a), bx(*b)),
        Node::Bind(s, x) => Node::Bind(s, bx(*x)),
        Node::BindBox(s, x, t, sp) => Node::BindBox(s, bx(*x), t, sp),
        Node::Call {
            f,
            args,
            target,
            tail,
            span,
        } => Node::Call {
            f: bx(*f),
            args: args.into_iter().map(fuse).collect(),
            target,
            tail,
            span,
        },
        Node::SendFresh { chan, msg, span } => Node::SendFresh {
            chan: bx(*chan),
            msg: bx(*msg),
            span,
        },
        Node::Borrow(x) => Node::Borrow(bx(*x)),
        // Leaves, closures (their bodies were fused when compiled) and
        // nodes fused already.
        other => other,
    }
}

/// `n` as an operand of `Node::FixOp2`: a local or a constant.
fn operand(n: &Node) -> Option<Operand> {
    match n {
        Node::Local(s) => Some(Operand::Local(*s)),
        Node::Const(v) => Some(Operand::Const(*v)),
        _ => None,
    }
}

/// `n` as an operand of `Node::FixExpr`: a local, a constant, a
/// one-operand primitive on a local (`(car l)`), or a fixnum
/// superinstruction itself. All of them are pure, which the general case
/// relies on when it evaluates the operands again.
fn fix_arg(n: &Node) -> Option<FixArg> {
    Some(match n {
        Node::Local(s) => FixArg::Local(*s),
        Node::Const(v) => FixArg::Const(*v),
        Node::LocalOp1 { op, slot, .. } if op.is_pair_path() => FixArg::Unary(*op, *slot),
        Node::FixOp2 { op, a, b, .. } => FixArg::Fix(Box::new((*op, arg_of(*a), arg_of(*b)))),
        Node::FixExpr { op, a, b, .. } => FixArg::Fix(Box::new((*op, a.clone(), b.clone()))),
        _ => return None,
    })
}

fn arg_of(o: Operand) -> FixArg {
    match o {
        Operand::Local(s) => FixArg::Local(s),
        Operand::Const(v) => FixArg::Const(v),
    }
}

fn bx(n: Node) -> Box<Node> {
    Box::new(fuse(n))
}

/// `[Bind(s, a), If(Local(s), Local(s), b)]` with `b` not touching slot
/// `s` is `Or(a, b)`; anything else stays a sequence.
fn or_node(mut xs: Vec<Node>) -> Node {
    let is_or = match xs.as_slice() {
        [Node::Bind(s, _), Node::If(c, t, b)] => {
            matches!(**c, Node::Local(x) if x == *s)
                && matches!(**t, Node::Local(x) if x == *s)
                && !touches(b, *s)
        }
        _ => false,
    };
    if !is_or {
        return Node::Seq(xs);
    }
    match (xs.pop(), xs.pop()) {
        (Some(Node::If(_, _, b)), Some(Node::Bind(_, a))) => Node::Or(a, b),
        // Unreachable: the shape was just checked.
        (Some(last), Some(first)) => Node::Seq(vec![first, last]),
        _ => Node::Seq(Vec::new()),
    }
}

/// Whether `n` reads, writes or captures local slot `s`.
fn touches(n: &Node, s: u32) -> bool {
    use crate::ir::CapSrc;
    match n {
        Node::Local(x) | Node::LocalBox(x) => *x == s,
        Node::BoxBorrow { at, .. } => *at == crate::ir::BoxAt::Local(s),
        Node::SetLocal(x, v) | Node::Bind(x, v) | Node::SetLocalBox(x, v, _) => {
            *x == s || touches(v, s)
        }
        Node::BindBox(x, v, t, _) => *x == s || t.container_slot() == Some(s) || touches(v, s),
        Node::Const(_)
        | Node::HeapConst(_)
        | Node::Capture(_)
        | Node::CaptureBox(_)
        | Node::SelfRef
        | Node::Global(..)
        | Node::GlobalBox(..) => false,
        Node::SetCaptureBox(_, v, _)
        | Node::SetGlobal(_, v, _)
        | Node::DefGlobal(_, v, _)
        | Node::SetGlobalBox(_, v, _)
        | Node::DefGlobalBox(_, v, _) => touches(v, s),
        Node::If(c, t, e) => touches(c, s) || touches(t, s) || touches(e, s),
        Node::Seq(xs) => xs.iter().any(|x| touches(x, s)),
        Node::Or(a, b) => touches(a, s) || touches(b, s),
        Node::Closure(_, caps, t, _) => {
            caps.iter()
                .any(|c| matches!(c, CapSrc::Local(y) if *y == s))
                || t.container_slot() == Some(s)
        }
        Node::Call {
            f, args, target, ..
        } => {
            touches(f, s)
                || args.iter().any(|x| touches(x, s))
                || target.container_slot() == Some(s)
        }
        Node::Prim { args, target, .. } => {
            args.iter().any(|x| touches(x, s)) || target.container_slot() == Some(s)
        }
        Node::FixOp2 { general, .. }
        | Node::FixExpr { general, .. }
        | Node::EqConst { general, .. }
        | Node::LocalOp1 { general, .. }
        | Node::LocalOp2 { general, .. } => touches(general, s),
        Node::SendFresh { chan, msg, .. } => touches(chan, s) || touches(msg, s),
        Node::Borrow(x) => touches(x, s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Target;
    use crate::reader::Span;
    use omni_mem::Value;

    fn prim(op: Prim, args: Vec<Node>) -> Node {
        Node::Prim {
            op,
            args,
            target: Target::Dst,
            span: Span::default(),
        }
    }

    #[test]
    fn eq_with_an_immediate_constant_fuses_on_a_local_or_its_car() {
        let k = Value::fixnum(7).unwrap();
        let on_car = fuse(prim(
            Prim::IsEq,
            vec![prim(Prim::Car, vec![Node::Local(2)]), Node::Const(k)],
        ));
        assert!(matches!(
            on_car,
            Node::EqConst {
                a: FixArg::Unary(Prim::Car, 2),
                ..
            }
        ));
        let reversed = fuse(prim(Prim::IsEq, vec![Node::Const(k), Node::Local(1)]));
        assert!(matches!(
            reversed,
            Node::EqConst {
                a: FixArg::Local(1),
                ..
            }
        ));
        // Two locals: nothing to fuse on (the general `eq?` stays).
        let two = fuse(prim(Prim::IsEq, vec![Node::Local(0), Node::Local(1)]));
        assert!(matches!(two, Node::Prim { op: Prim::IsEq, .. }));
    }

    #[test]
    fn fixnum_ops_on_locals_and_constants_fuse() {
        let one = Value::fixnum(1).unwrap();
        let n = fuse(prim(Prim::Sub, vec![Node::Local(0), Node::Const(one)]));
        assert!(matches!(
            n,
            Node::FixOp2 {
                op: FixOp::Sub,
                a: Operand::Local(0),
                b: Operand::Const(_),
                ..
            }
        ));
        // Nested: an operand that is a call keeps the general node, with
        // its inner calls fused.
        let call = Node::Call {
            f: Box::new(Node::Local(0)),
            args: vec![],
            target: Target::Dst,
            tail: false,
            span: Span::default(),
        };
        let n = fuse(prim(
            Prim::Add,
            vec![call, prim(Prim::Car, vec![Node::Local(1)])],
        ));
        match n {
            Node::Prim {
                op: Prim::Add,
                args,
                ..
            } => {
                assert!(matches!(
                    args[1],
                    Node::LocalOp1 {
                        op: Prim::Car,
                        slot: 1,
                        ..
                    }
                ))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn fixnum_ops_on_pure_operands_fuse_into_one_expression() {
        // `(= (car l) (+ row dist))`: one node, whose general case is the
        // original call (with its own fused arguments).
        let n = fuse(prim(
            Prim::NumEq,
            vec![
                prim(Prim::Car, vec![Node::Local(2)]),
                prim(Prim::Add, vec![Node::Local(0), Node::Local(1)]),
            ],
        ));
        match n {
            Node::FixExpr {
                op: FixOp::Eq,
                a: FixArg::Unary(Prim::Car, 2),
                b: FixArg::Fix(inner),
                general,
            } => {
                assert!(matches!(
                    *inner,
                    (FixOp::Add, FixArg::Local(0), FixArg::Local(1))
                ));
                assert!(matches!(
                    *general,
                    Node::Prim {
                        op: Prim::NumEq,
                        ..
                    }
                ));
            }
            other => panic!("unexpected {other:?}"),
        }
        // Its negation is one node too.
        let eq = prim(
            Prim::NumEq,
            vec![prim(Prim::Car, vec![Node::Local(2)]), Node::Local(0)],
        );
        assert!(matches!(
            fuse(prim(Prim::Not, vec![eq])),
            Node::FixExpr { op: FixOp::Ne, .. }
        ));
        // An operand that may allocate or fail in its own way does not fuse.
        let n = fuse(prim(
            Prim::Add,
            vec![prim(Prim::Length, vec![Node::Local(0)]), Node::Local(1)],
        ));
        assert!(matches!(n, Node::Prim { op: Prim::Add, .. }));
    }

    #[test]
    fn or_pattern_becomes_an_or_node_unless_the_temporary_is_used() {
        let or_shape = |rest: Node| {
            Node::Seq(vec![
                Node::Bind(3, Box::new(Node::Global(0, Span::default()))),
                Node::If(
                    Box::new(Node::Local(3)),
                    Box::new(Node::Local(3)),
                    Box::new(rest),
                ),
            ])
        };
        assert!(matches!(fuse(or_shape(Node::Local(1))), Node::Or(_, _)));
        // The rest reads the temporary (a user's let): kept as written.
        let rest = prim(Prim::Car, vec![Node::Local(3)]);
        assert!(matches!(fuse(or_shape(rest)), Node::Seq(_)));
        // Or writes it.
        let rest = Node::SetLocal(3, Box::new(Node::Local(1)));
        assert!(matches!(fuse(or_shape(rest)), Node::Seq(_)));
        // Other slots are fine.
        let rest = prim(Prim::Cons, vec![Node::Local(2), Node::Local(2)]);
        assert!(matches!(fuse(or_shape(rest)), Node::Or(_, _)));
    }

    #[test]
    fn negated_comparisons_fuse_into_the_opposite_comparison() {
        let lt = prim(Prim::Lt, vec![Node::Local(0), Node::Local(1)]);
        match fuse(prim(Prim::Not, vec![lt])) {
            Node::FixOp2 {
                op: FixOp::Ge,
                general,
                ..
            } => assert!(matches!(*general, Node::Prim { op: Prim::Not, .. })),
            other => panic!("unexpected {other:?}"),
        }
        // `(not (= a b))` is "not equal", a comparison only fusion makes.
        let eq = prim(Prim::NumEq, vec![Node::Local(0), Node::Local(1)]);
        match fuse(prim(Prim::Not, vec![eq])) {
            Node::FixOp2 {
                op: FixOp::Ne,
                general,
                ..
            } => assert!(matches!(*general, Node::Prim { op: Prim::Not, .. })),
            other => panic!("unexpected {other:?}"),
        }
        // `(not (+ a b))` has no opposite: the `not` stays.
        let sum = prim(Prim::Add, vec![Node::Local(0), Node::Local(1)]);
        assert!(matches!(
            fuse(prim(Prim::Not, vec![sum])),
            Node::Prim { op: Prim::Not, .. }
        ));
    }

    #[test]
    fn two_one_operand_ops_on_a_local_fuse() {
        let car = prim(Prim::Car, vec![Node::Local(4)]);
        assert!(matches!(
            fuse(prim(Prim::IsNull, vec![car])),
            Node::LocalOp2 {
                outer: Prim::IsNull,
                inner: Prim::Car,
                slot: 4,
                ..
            }
        ));
    }

    #[test]
    fn other_shapes_are_left_alone() {
        let n = fuse(prim(Prim::Cons, vec![Node::Local(0), Node::Local(1)]));
        assert!(matches!(n, Node::Prim { op: Prim::Cons, .. }));
        let n = fuse(prim(
            Prim::Add,
            vec![Node::Local(0), Node::Local(1), Node::Local(2)],
        ));
        assert!(matches!(n, Node::Prim { op: Prim::Add, .. }));
    }
}
