//! Superinstructions: a small pass over a compiled body that replaces the
//! most frequent primitive calls on locals and constants by nodes the VM
//! runs without a call (`Node::FixOp2`, `Node::LocalOp1`). Each keeps the
//! original node as its general case, so behaviour (floats, overflow,
//! errors and their positions) is unchanged; `explain` prints the
//! original.

use crate::builtins::Prim;
use crate::ir::{Node, Operand};

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
            let operand = |x: &Node| match x {
                Node::Local(s) => Some(Operand::Local(*s)),
                Node::Const(v) => Some(Operand::Const(*v)),
                _ => None,
            };
            let fixop = matches!(
                op,
                Prim::Add
                    | Prim::Sub
                    | Prim::Mul
                    | Prim::Lt
                    | Prim::Gt
                    | Prim::Le
                    | Prim::Ge
                    | Prim::NumEq
            );
            let local1 = matches!(
                op,
                Prim::Car
                    | Prim::Cdr
                    | Prim::IsNull
                    | Prim::IsPair
                    | Prim::Not
                    | Prim::IsZero
                    | Prim::Cadr
                    | Prim::Cddr
                    | Prim::Caddr
            );
            let fused = match args.as_slice() {
                [x, y] if fixop => operand(x).zip(operand(y)),
                _ => None,
            };
            let slot = match args.as_slice() {
                [Node::Local(s)] if local1 => Some(*s),
                _ => None,
            };
            let general = Box::new(Node::Prim {
                op,
                args,
                target,
                span,
            });
            if let Some((a, b)) = fused {
                Node::FixOp2 { op, a, b, general }
            } else if let Some(slot) = slot {
                Node::LocalOp1 { op, slot, general }
            } else {
                *general
            }
        }
        Node::SetLocal(s, x) => Node::SetLocal(s, bx(*x)),
        Node::SetLocalBox(s, x, sp) => Node::SetLocalBox(s, bx(*x), sp),
        Node::SetCaptureBox(i, x, sp) => Node::SetCaptureBox(i, bx(*x), sp),
        Node::SetGlobal(g, x, sp) => Node::SetGlobal(g, bx(*x), sp),
        Node::DefGlobal(g, x, sp) => Node::DefGlobal(g, bx(*x), sp),
        Node::If(c, t, e) => Node::If(bx(*c), bx(*t), bx(*e)),
        Node::Seq(xs) => Node::Seq(xs.into_iter().map(fuse).collect()),
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
        // Leaves, closures (their bodies were fused when compiled) and
        // nodes fused already.
        other => other,
    }
}

fn bx(n: Node) -> Box<Node> {
    Box::new(fuse(n))
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
    fn fixnum_ops_on_locals_and_constants_fuse() {
        let one = Value::fixnum(1).unwrap();
        let n = fuse(prim(Prim::Sub, vec![Node::Local(0), Node::Const(one)]));
        assert!(matches!(
            n,
            Node::FixOp2 {
                op: Prim::Sub,
                a: Operand::Local(0),
                b: Operand::Const(_),
                ..
            }
        ));
        // Nested: the inner call fuses, the outer one (an operand that is a
        // call) keeps the general node.
        let n = fuse(prim(
            Prim::Add,
            vec![prim(Prim::Car, vec![Node::Local(1)]), Node::Local(2)],
        ));
        match n {
            Node::Prim {
                op: Prim::Add,
                args,
                ..
            } => {
                assert!(matches!(
                    args[0],
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
