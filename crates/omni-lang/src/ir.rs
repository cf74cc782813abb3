//! The compiled form: a tree IR with resolved variables and an explicit
//! region for every allocation site (chosen by the CTRR pass in
//! `compile.rs`). The VM walks it; `explain.rs` prints its schedule.

use std::cell::Cell;
use std::rc::Rc;

use omni_mem::Value;

use crate::builtins::Prim;
use crate::pure_code::PureCode;
use crate::reader::Span;

/// Where an allocation site puts its object (docs/CTRR.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The caller-named destination region of this activation: the value
    /// may flow into the function's result.
    Dst,
    /// This activation's scratch region (created on first use, exited at
    /// return or before a tail call): the value dies with the activation.
    Scratch,
    /// The program's global region (process lifetime).
    Global,
    /// The region of the container held in a local slot: a fresh value
    /// stored straight into an existing structure is born where it lives.
    RegionOfSlot(u32),
    /// The slot region of the array or dict held in a local slot
    /// (`omni_mem::store_region`; its own region for any other container):
    /// a fresh value about to be stored into it, built by an expression
    /// that stores nothing and calls no procedure, so that nothing can
    /// compact the slot region before the store.
    SlotsOf(u32),
    /// The next iteration's region: tail-call arguments made of fresh data.
    /// It is handed to the callee's activation with the arguments and dies
    /// when that activation returns or tail-calls again.
    Iter,
    /// The message region of the enclosing `send` (a fresh value built
    /// where it will travel; docs/REGION_THREADING_MODEL.md).
    Message,
}

impl Target {
    /// The local slot whose container this target names, if any.
    pub fn container_slot(self) -> Option<u32> {
        match self {
            Target::RegionOfSlot(k) | Target::SlotsOf(k) => Some(k),
            _ => None,
        }
    }
}

/// An operand of `Node::FixOp2`: read without evaluating anything.
#[derive(Clone, Copy, Debug)]
pub enum Operand {
    Local(u32),
    Const(Value),
}

/// An operand of `Node::FixExpr`: computed without a call, and pure, so
/// that when it does not apply (not a pair, not a fixnum, overflow) the
/// general node can evaluate it again.
#[derive(Clone, Debug)]
pub enum FixArg {
    Local(u32),
    Const(Value),
    /// A one-operand primitive on a local that cannot fail or allocate
    /// when it applies: in a `FixExpr` a pair accessor (`(car l)`,
    /// `Prim::is_pair_path`), in an `EqConst` any with a unary fast path;
    /// else the superinstruction does not apply.
    Unary(Prim, u32),
    /// A nested fixnum operation (`(+ row dist)` in `(= (car l) (+ row dist))`).
    Fix(Box<(FixOp, FixArg, FixArg)>),
}

impl FixArg {
    pub fn is_nested(&self) -> bool {
        matches!(self, FixArg::Fix(_))
    }
}

/// The operations of `Node::FixOp2` and `Node::FixExpr`: the two-operand fixnum primitives,
/// and `Ne`, which only a fused `(not (= a b))` makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixOp {
    Add,
    Sub,
    Mul,
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    Ne,
    Quotient,
    Remainder,
    Modulo,
}

impl FixOp {
    /// The superinstruction for primitive `op` with two operands, if any.
    pub fn of_prim(op: Prim) -> Option<FixOp> {
        Some(match op {
            Prim::Add => FixOp::Add,
            Prim::Sub => FixOp::Sub,
            Prim::Mul => FixOp::Mul,
            Prim::Lt => FixOp::Lt,
            Prim::Gt => FixOp::Gt,
            Prim::Le => FixOp::Le,
            Prim::Ge => FixOp::Ge,
            Prim::NumEq => FixOp::Eq,
            Prim::Quotient => FixOp::Quotient,
            Prim::Remainder => FixOp::Remainder,
            Prim::Modulo => FixOp::Modulo,
            _ => return None,
        })
    }

    /// Whether this is a comparison (a boolean result): exactly the
    /// operations `negated` answers.
    pub fn is_comparison(self) -> bool {
        self.negated().is_some()
    }

    /// The comparison that is true exactly when this one is false (on
    /// fixnums), for `(not (< a b))`.
    pub fn negated(self) -> Option<FixOp> {
        Some(match self {
            FixOp::Lt => FixOp::Ge,
            FixOp::Ge => FixOp::Lt,
            FixOp::Gt => FixOp::Le,
            FixOp::Le => FixOp::Gt,
            FixOp::Eq => FixOp::Ne,
            FixOp::Ne => FixOp::Eq,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug)]
pub enum CapSrc {
    Local(u32),
    Capture(u32),
    SelfRef,
}

/// Whether a procedure's calls try the pure tier (`Proto::tier`). A run
/// falls back where its code meets what it does not handle (an operand of
/// another kind, an overflow, a callee not pure for now, a limit); that
/// may recur at every call or never again (one float among fixnums, one
/// overflow, a callee that fell back once), so the procedure is tried
/// again after `2^(3 + n)` calls on the general path, `n` its fallbacks so
/// far, and never after `MAX_FALLBACKS` of them. A failed try costs at
/// most the run's work before its obstacle, so the retries of a procedure
/// called `N` times cost at most about `log2(N)` calls' work.
#[derive(Debug)]
pub struct TierState {
    /// Calls still to make on the general path before the next try;
    /// `u32::MAX`: never (no pure-tier code, the tier off, or
    /// `MAX_FALLBACKS` fallbacks).
    wait: Cell<u32>,
    fallbacks: Cell<u32>,
}

impl TierState {
    /// The most fallbacks after which a procedure is tried again.
    pub const MAX_FALLBACKS: u32 = 20;

    /// Tried from the first call if `enabled`, else never.
    pub fn new(enabled: bool) -> TierState {
        TierState {
            wait: Cell::new(if enabled { 0 } else { u32::MAX }),
            fallbacks: Cell::new(0),
        }
    }

    /// Whether a call made now tries the pure tier; a call that does not
    /// counts towards the next try.
    #[inline]
    pub fn try_now(&self) -> bool {
        match self.wait.get() {
            0 => true,
            u32::MAX => false,
            n => {
                self.wait.set(n - 1);
                false
            }
        }
    }

    /// Whether a call made now would try the pure tier (a run's callee,
    /// which must be tried to run in the tier: no call is counted).
    #[inline]
    pub fn ready(&self) -> bool {
        self.wait.get() == 0
    }

    /// A run of the procedure fell back: wait before the next try.
    pub fn fell_back(&self) {
        let n = self.fallbacks.get().saturating_add(1);
        self.fallbacks.set(n);
        self.wait.set(match n {
            n if n >= Self::MAX_FALLBACKS => u32::MAX,
            n => 1 << (3 + n),
        });
    }

    /// Never try the pure tier again.
    pub fn disable(&self) {
        self.wait.set(u32::MAX);
    }
}

#[derive(Debug)]
pub struct Proto {
    pub id: usize,
    pub name: String,
    pub nparams: usize,
    pub rest: bool,
    pub nslots: usize,
    pub body: Node,
    pub span: Span,
    /// The body as pure-tier code, if it only reads, calls and builds
    /// (`pure_code.rs`).
    pub pure_code: Option<PureCode>,
    /// Whether calls of this procedure try the pure tier first
    /// (`vm/pure.rs`): from the start when it has pure-tier code; after a
    /// run of it falls back, again only after a number of calls made on
    /// the general path that doubles with each fallback (`TierState`).
    pub tier: TierState,
    /// The global this procedure is defined as, if a call of that global
    /// may inline its body (it captures nothing and has pure code): once
    /// registered, `Vm::register` lists it (`pure_code::Inlinable`).
    pub inline_as: Option<u32>,
}

/// Where a variable's box is: a local slot, a capture, or a global.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoxAt {
    Local(u32),
    Capture(u32),
    Global(u32),
}

#[derive(Debug)]
pub enum Node {
    /// An immediate constant.
    Const(Value),
    /// A heap constant: index into the VM's constant table (a root the
    /// VM can update when it compacts the global region).
    HeapConst(u32),
    Local(u32),
    LocalBox(u32),
    Capture(u32),
    CaptureBox(u32),
    /// A read of a global the program assigns (it holds a box, see
    /// `SetGlobalBox`): pins, as `LocalBox` does.
    GlobalBox(u32, Span),
    /// A boxed variable read whose value dies before the box's next store
    /// (an argument of a primitive that keeps none of its arguments, with
    /// no call or store after it among them): it does not pin the box's
    /// slot region (`omni_mem::box_borrow`).
    BoxBorrow {
        at: BoxAt,
        span: Span,
    },
    /// A container read (`Node::Prim` of `array-ref`, `dict-ref` or
    /// `unbox`) whose value dies as `BoxBorrow`'s does: it does not pin the
    /// container's slot region (`omni_mem::array_borrow`, ...).
    Borrow(Box<Node>),
    SelfRef,
    Global(u32, Span),
    SetLocal(u32, Box<Node>),
    SetLocalBox(u32, Box<Node>, Span),
    SetCaptureBox(u32, Box<Node>, Span),
    SetGlobal(u32, Box<Node>, Span),
    DefGlobal(u32, Box<Node>, Span),
    /// `set!` and `define` of a boxed global: a global the program
    /// assigns holds a box in the global region, so what its `set!`s
    /// replace goes to the box's slot region and is given back
    /// (docs/REGION_COALESCE_POLICY.md).
    SetGlobalBox(u32, Box<Node>, Span),
    DefGlobalBox(u32, Box<Node>, Span),
    If(Box<Node>, Box<Node>, Box<Node>),
    Seq(Vec<Node>),
    /// slot := value
    Bind(u32, Box<Node>),
    /// slot := a new box holding value, in `Target`
    BindBox(u32, Box<Node>, Target, Span),
    Closure(Rc<Proto>, Vec<CapSrc>, Target, Span),
    Call {
        f: Box<Node>,
        args: Vec<Node>,
        target: Target,
        tail: bool,
        span: Span,
    },
    Prim {
        op: Prim,
        args: Vec<Node>,
        target: Target,
        span: Span,
    },
    /// `(or a b)`: the value of `a` if true, else of `b` (in tail
    /// position if the whole is). Made by `fuse.rs` from what `or`
    /// desugars to, `(let ((t a)) (if t t b))`, saving the binding.
    Or(Box<Node>, Box<Node>),
    /// A two-operand fixnum primitive on locals and constants (made by
    /// `fuse.rs`): no call, no region. When an operand is not a fixnum or
    /// the result does not fit, `general` (the original primitive node)
    /// runs instead, so floats, big results and errors behave as before.
    FixOp2 {
        op: FixOp,
        a: Operand,
        b: Operand,
        general: Box<Node>,
    },
    /// As `FixOp2`, on operands that are themselves computed (`car` of a
    /// local, nested fixnum operations): `(= (car l) (+ row dist))`. A
    /// node of its own so that `FixOp2`'s operands stay two plain reads.
    FixExpr {
        op: FixOp,
        a: FixArg,
        b: FixArg,
        general: Box<Node>,
    },
    /// A one-operand primitive on a local that cannot fail or allocate
    /// when it applies (`car`, `null?`, ...); else `general` runs.
    LocalOp1 {
        op: Prim,
        slot: u32,
        general: Box<Node>,
    },
    /// `(outer (inner local))` for two one-operand primitives as in
    /// `LocalOp1` (`(null? (car t))`); else `general` runs.
    LocalOp2 {
        outer: Prim,
        inner: Prim,
        slot: u32,
        general: Box<Node>,
    },
    /// `(eq? x 'k)` (or `(eq? 'k x)`) with an immediate constant `k` and
    /// `x` a local or a one-operand primitive on a local (`(car e)`):
    /// identity without a call. When `x` does not apply (`car` of a
    /// non-pair), `general` runs and reports it.
    EqConst {
        a: FixArg,
        k: Value,
        general: Box<Node>,
    },
    /// `(send chan msg)` where `msg` is a fresh constructor expression: it
    /// is built in a new message region, which is handed to the receiver
    /// whole (Option A). Other sends copy (Option B).
    SendFresh {
        chan: Box<Node>,
        msg: Box<Node>,
        span: Span,
    },
}
