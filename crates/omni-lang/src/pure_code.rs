//! The pure tier's code (run by `vm/pure.rs`): a procedure body that only
//! reads, calls, builds and stores into arrays, dicts and pairs,
//! translated from the IR into a flat register code.
//!
//! A body qualifies when every node reads (locals, captures, globals,
//! constants), tests, computes on fixnums through a primitive's fast path
//! (`pure_prim`) or takes a `length`, branches, binds a local, calls, or
//! builds a pair, a list or a closure where CTRR sends it: in the
//! activation's destination or its scratch region, or (a value about to be
//! stored) the container's slot region or the pair's region; or stores
//! into an array, a dict, a pair or the box of an assigned global or
//! captured variable (`array-set!`, `dict-set!`, `set-car!`, `set-cdr!`,
//! `set!`, through the store helper, logged so that a
//! fallback can put them back: vm/pure.rs) and reads them (`array-ref`,
//! `dict-ref`, the variable). A box made in the body (`BindBox`) is not:
//! a run makes no box, array or dict, so every one its log names outlives
//! it (a pair it made is logged only outside its scratch regions). A call whose callee builds
//! in the caller's destination (CTRR's `callee dst = dst`, and every tail
//! call) passes the region on; a call whose callee's destination is the
//! caller's scratch gives it that region (made when the callee builds).
//! `(error ...)` is an instruction that falls back (the general path
//! raises the error). Anything else (another store, a boxed variable,
//! another allocating primitive, a region other than these) leaves the
//! procedure to the general path alone.
//!
//! Registers are the procedure's local slots, then temporaries above
//! them. A call's arguments go to consecutive registers at the top, where
//! the callee's frame then begins: they are passed without a copy.

use omni_mem::Value;

use crate::builtins::Prim;
use crate::ir::{BoxAt, CapSrc, FixArg, FixOp, Node, Operand, Target};
use crate::reader::Span;

/// A register of the running frame, or a constant.
#[derive(Clone, Copy, Debug)]
pub enum Src {
    Reg(u32),
    Val(Value),
}

/// One instruction. Every fast path that does not apply (an operand of
/// another kind, an overflow, a callee that is not pure) makes the run
/// fall back to the general path.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    Move {
        dst: u32,
        a: Src,
    },
    /// Two register copies, in order (`pure_peephole`).
    Move2 {
        dst: u32,
        a: u32,
        dst2: u32,
        a2: u32,
    },
    /// A two-operand fixnum operation (`fixop`).
    Fix {
        op: FixOp,
        dst: u32,
        a: Src,
        b: Src,
    },
    /// `Fix` of a register and a fixnum constant.
    FixK {
        op: FixOp,
        dst: u32,
        a: u32,
        k: i64,
    },
    /// A register plus a fixnum constant `k` (`(- n 1)` adds -1), added
    /// as tagged words (`Value::fixnum_add`).
    AddK {
        dst: u32,
        a: u32,
        k: Value,
    },
    /// The most frequent operations on registers, each an instruction of
    /// its own (no second dispatch on the operation).
    Add {
        dst: u32,
        a: u32,
        b: u32,
    },
    Sub {
        dst: u32,
        a: u32,
        b: u32,
    },
    Car {
        dst: u32,
        a: u32,
    },
    Cdr {
        dst: u32,
        a: u32,
    },
    /// A one-operand primitive's fast path (`unary_fast_path`).
    Unary {
        op: Prim,
        dst: u32,
        a: Src,
    },
    /// `eq?`.
    Eq {
        dst: u32,
        a: Src,
        b: Src,
    },
    Global {
        dst: u32,
        g: u32,
    },
    HeapConst {
        dst: u32,
        i: u32,
    },
    Capture {
        dst: u32,
        i: u32,
    },
    SelfRef {
        dst: u32,
    },
    Jump {
        to: u32,
    },
    /// A register copy, then a jump (`pure_peephole`: an inlined body's
    /// value and its jump to the end).
    MoveJump {
        dst: u32,
        a: Src,
        to: u32,
    },
    /// Jump when `a` is false.
    JumpUnless {
        a: Src,
        to: u32,
    },
    /// Jump when `a` is true.
    JumpIf {
        a: Src,
        to: u32,
    },
    /// Jump when fixnum comparison `op` is false.
    BranchUnless {
        op: FixOp,
        a: Src,
        b: Src,
        to: u32,
    },
    /// Jump unless one-operand primitive `op`'s fast path (`Unary`) gives
    /// a true value for register `a`: a type test as a branch.
    BranchUnlessUnary {
        op: Prim,
        a: u32,
        to: u32,
    },
    /// Jump unless register `a` holds constant `k` (`eq?`).
    BranchUnlessIs {
        a: u32,
        k: Value,
        to: u32,
    },
    /// Jump unless register `a` holds the empty list.
    BranchUnlessNull {
        a: u32,
        to: u32,
    },
    /// `Car` (`Cdr` if `cdr`) into `dst`, then `BranchUnlessNull` of `dst`
    /// (`pure_peephole`: `(null? (car t))`).
    PairBranchUnlessNull {
        dst: u32,
        a: u32,
        cdr: bool,
        to: u32,
    },
    /// Jump unless fixnum register `a` is less than register `b` (or equal
    /// to it, `or_equal`): `>` and `>=` swap the operands.
    BranchUnlessLess {
        a: u32,
        b: u32,
        or_equal: bool,
        to: u32,
    },
    /// Jump unless fixnum registers `a` and `b` are equal (`eq`) or differ.
    BranchUnlessSame {
        a: u32,
        b: u32,
        eq: bool,
        to: u32,
    },
    /// Jump unless register `a` holds a fixnum in `lo..=hi`: a comparison
    /// with a fixnum constant (`(< n 2)` is `n` in `MIN..=1`).
    BranchUnlessIn {
        a: u32,
        lo: i64,
        hi: i64,
        to: u32,
    },
    /// Jump unless register `a` holds a fixnum outside `lo..=hi` (`(not
    /// (= n k))`: `n` outside `k..=k`).
    BranchUnlessOut {
        a: u32,
        lo: i64,
        hi: i64,
        to: u32,
    },
    /// A pair of `a` and `b`, in the destination region.
    Cons {
        dst: u32,
        a: Src,
        b: Src,
    },
    /// `Cons` then `Return` of the pair (`pure_peephole`).
    ReturnCons {
        a: Src,
        b: Src,
    },
    /// `Add` then `Return` of the sum (`pure_peephole`).
    ReturnAdd {
        a: u32,
        b: u32,
    },
    /// A pair of `a` and `b` in the running procedure's own scratch
    /// region, made at its first use and exited when the procedure returns
    /// or makes a tail call (CTRR's `scratch` target).
    ConsScratch {
        dst: u32,
        a: Src,
        b: Src,
    },
    /// A closure of procedure `id` over the registers `start..start + n`,
    /// in the destination region, or the scratch region (`scratch`).
    Closure {
        dst: u32,
        id: u32,
        start: u32,
        n: u32,
        scratch: bool,
    },
    /// `Cons` in the slot region of the container in register `c`
    /// (`omni_mem::store_region`: CTRR's `SlotsOf`), for the store next.
    ConsIn {
        dst: u32,
        a: u32,
        b: u32,
        c: u32,
    },
    /// `List` likewise.
    ListIn {
        dst: u32,
        start: u32,
        n: u32,
        c: u32,
    },
    /// `Cons` of registers `a` and `b` (`list`: `List` of the `b`
    /// registers from `a`) in the region of the pair in register `c`
    /// (CTRR's `RegionOfSlot`), for the `set-car!` or `set-cdr!` next;
    /// what it adds to the global region is counted at `span`, as the
    /// general path counts it (`Vm::retention_warning`).
    BuildAt {
        dst: u32,
        list: bool,
        a: u32,
        b: u32,
        c: u32,
        span: Span,
    },
    /// `array-set!` of the array in register `c` at the fixnum in register
    /// `i` to `x`, through the store helper; what it replaces is logged, to
    /// be put back if the run falls back (vm/pure.rs). Not an array, or an
    /// index out of range, falls back before the store.
    ArraySet {
        c: u32,
        i: u32,
        x: Src,
    },
    /// `dict-set!` of the dict in register `c`, key in register `k`, to
    /// `x`, logged likewise.
    DictSet {
        c: u32,
        k: u32,
        x: Src,
    },
    /// `set-car!` (`cdr` false) or `set-cdr!` of the pair in register
    /// `p` to `x`, through the store helper, logged as `ArraySet` is
    /// unless the pair lies in a scratch region of the run (which may end
    /// before the run does, and is gone after a fallback: nothing could
    /// read such a pair again). Growth of the global region is counted at
    /// `span`. Not a pair falls back before the store.
    PairSet {
        p: u32,
        x: Src,
        cdr: bool,
        span: Span,
    },
    /// A boxed variable's value (a global the program assigns, or a
    /// captured variable it `set!`s): the box in register `b`, read
    /// through `box_get` (`pin`) or `box_borrow`; a variable used before
    /// its definition falls back.
    BoxGet {
        dst: u32,
        b: u32,
        pin: bool,
    },
    /// `set!` of such a variable: the box in register `b` set to `x`
    /// through the store helper, logged as `ArraySet` is.
    BoxSet {
        b: u32,
        x: Src,
    },
    /// `array-ref` (`pin`: a read that pins the slot region, as the general
    /// path's `array_get`; else a borrow, CTRR's `Node::Borrow`).
    ArrayRef {
        dst: u32,
        c: u32,
        i: u32,
        pin: bool,
    },
    /// `dict-ref`, with the value of register `default` for a missing key
    /// if given (`NO_DEFAULT`: a missing key falls back, and the general
    /// path raises the error).
    DictRef {
        dst: u32,
        c: u32,
        k: u32,
        default: u32,
        pin: bool,
    },
    /// `length` of a proper list (anything else falls back).
    Length {
        dst: u32,
        a: u32,
    },
    /// A list of registers `start..start + n`, in the destination region
    /// or the scratch region (`scratch`).
    List {
        dst: u32,
        start: u32,
        n: u32,
        scratch: bool,
    },
    /// Fall back (`(error ...)`: the general path raises it).
    Fail,
    /// Call the procedure in register `f` (or global `g`) on registers
    /// `start..start + argc`; the result goes to `start`. `in_dst`: the
    /// callee builds in this code's destination (else in this code's
    /// scratch region, made if the callee builds). `site`: whose call it
    /// is, the procedure's or an inlined body's.
    Call {
        f: u32,
        start: u32,
        argc: u32,
        in_dst: bool,
        site: Site,
    },
    CallGlobal {
        g: u32,
        start: u32,
        argc: u32,
        in_dst: bool,
        site: Site,
    },
    /// An inlined body's tail call of the procedure whose body it is: its
    /// `argc` arguments, at `start`, move to the body's parameters at
    /// `off` (in place already when `start == off`: `pure_peephole`); the
    /// call's step and interrupt check, as a tail call's; and a jump back
    /// to the body's first instruction `to`.
    InlineLoop {
        to: u32,
        off: u32,
        start: u32,
        argc: u32,
    },
    /// The tail call of a named-`let` loop of procedure `proto` that runs
    /// in the running procedure's frame (`Compiler::named_loop`): as
    /// `InlineLoop`, and the iteration ends as the loop procedure's tail
    /// call of itself would: the scratch region is exited (after the check
    /// that no argument is in it), and at the run's first depth, once
    /// `COMMIT_AT` stores are logged, the run commits with a closure of
    /// `proto` made from the loop's `ncaps` captures (at `off +
    /// proto.nslots`) as its restart, the tail call at `span`.
    LetLoop {
        to: u32,
        off: u32,
        start: u32,
        argc: u32,
        proto: u32,
        ncaps: u32,
        span: Span,
    },
    /// The start of the procedure's own body inlined at a call of itself
    /// on registers `start..start + argc` (`Compiler::inline`), `level`
    /// levels below the running procedure: if global `g` (`INLINE_SELF`:
    /// the running closure) is not the running closure, or the call's
    /// entry would meet a limit, the call, its result to `start`, and a
    /// jump to `to`, past the body; else the call's step, and the body
    /// next.
    Inline {
        g: u32,
        start: u32,
        argc: u32,
        in_dst: bool,
        level: u8,
        to: u32,
    },
    /// The same for the body of procedure `code`, a global one that
    /// captures nothing (`pure_code::Inlinable`), at a call of global `g`:
    /// the body is the callee's if `g` holds a closure of `code`.
    InlineOther {
        g: u32,
        code: u32,
        start: u32,
        argc: u32,
        in_dst: bool,
        level: u8,
        to: u32,
    },
    /// The same, in tail position: the arguments replace the frame.
    /// (`span`: the call's position, where the general path's backtrace
    /// puts the procedure it calls, should it run there from this call:
    /// `vm/pure.rs`, a run's restart.)
    TailCall {
        f: u32,
        start: u32,
        argc: u32,
        span: Span,
    },
    TailCallGlobal {
        g: u32,
        start: u32,
        argc: u32,
        span: Span,
    },
    Return {
        a: Src,
    },
}

impl Op {
    /// The register this instruction writes, if it writes one (a call's
    /// result register is not: its callee's frame begins there).
    pub(crate) fn dst_mut(&mut self) -> Option<&mut u32> {
        match self {
            Op::Move { dst, .. }
            | Op::MoveJump { dst, .. }
            | Op::Fix { dst, .. }
            | Op::FixK { dst, .. }
            | Op::AddK { dst, .. }
            | Op::Add { dst, .. }
            | Op::Sub { dst, .. }
            | Op::Car { dst, .. }
            | Op::Cdr { dst, .. }
            | Op::PairBranchUnlessNull { dst, .. }
            | Op::Unary { dst, .. }
            | Op::Eq { dst, .. }
            | Op::Global { dst, .. }
            | Op::HeapConst { dst, .. }
            | Op::Capture { dst, .. }
            | Op::SelfRef { dst }
            | Op::Cons { dst, .. }
            | Op::ConsScratch { dst, .. }
            | Op::Closure { dst, .. }
            | Op::Length { dst, .. }
            | Op::ConsIn { dst, .. }
            | Op::ListIn { dst, .. }
            | Op::BuildAt { dst, .. }
            | Op::ArrayRef { dst, .. }
            | Op::DictRef { dst, .. }
            | Op::BoxGet { dst, .. }
            | Op::List { dst, .. } => Some(dst),
            _ => None,
        }
    }

    /// Whether this instruction builds in the running procedure's scratch
    /// region.
    fn builds_in_scratch(&self) -> bool {
        matches!(
            self,
            Op::ConsScratch { .. }
                | Op::List { scratch: true, .. }
                | Op::Closure { scratch: true, .. }
        )
    }

    /// Whether this instruction calls a callee whose destination is the
    /// running procedure's scratch region (made if the callee builds).
    fn calls_into_scratch(&self) -> bool {
        matches!(
            self,
            Op::Call { in_dst: false, .. } | Op::CallGlobal { in_dst: false, .. }
        )
    }

    /// Whether this instruction may make the running procedure's scratch
    /// region: it builds there, calls a callee whose destination it is, or
    /// begins a body inlined with it as its destination.
    pub(crate) fn may_make_scratch(&self) -> bool {
        self.builds_in_scratch()
            || self.calls_into_scratch()
            || matches!(
                self,
                Op::Inline { in_dst: false, .. } | Op::InlineOther { in_dst: false, .. }
            )
    }

    /// Whether this instruction stores into a container (logged, and put
    /// back if the run falls back).
    fn is_store(&self) -> bool {
        matches!(
            self,
            Op::ArraySet { .. } | Op::DictSet { .. } | Op::BoxSet { .. } | Op::PairSet { .. }
        )
    }

    /// Where this instruction may jump to.
    pub(crate) fn jump_target_mut(&mut self) -> Option<&mut u32> {
        match self {
            Op::Jump { to }
            | Op::MoveJump { to, .. }
            | Op::JumpUnless { to, .. }
            | Op::JumpIf { to, .. }
            | Op::BranchUnless { to, .. }
            | Op::BranchUnlessIn { to, .. }
            | Op::BranchUnlessNull { to, .. }
            | Op::PairBranchUnlessNull { to, .. }
            | Op::BranchUnlessSame { to, .. }
            | Op::BranchUnlessLess { to, .. }
            | Op::BranchUnlessUnary { to, .. }
            | Op::BranchUnlessIs { to, .. }
            | Op::BranchUnlessOut { to, .. }
            | Op::Inline { to, .. }
            | Op::InlineOther { to, .. }
            | Op::InlineLoop { to, .. }
            | Op::LetLoop { to, .. } => Some(to),
            _ => None,
        }
    }

    pub(crate) fn jump_target(&self) -> Option<u32> {
        let mut op = *self;
        op.jump_target_mut().copied()
    }
}

/// Whose call a call instruction makes: the procedure's own (`levels`
/// 0), or one in a body inlined `levels` deep (`Op::Inline`), whose callee
/// runs that many levels deeper; an inlined body's tail call (`tail`)
/// counts as a tail call, and its callee takes the level of the inlined
/// call it ends, as on the general path.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Site {
    pub levels: u8,
    pub tail: bool,
}

impl Site {
    pub const OWN: Site = Site {
        levels: 0,
        tail: false,
    };

    /// How many levels deeper than the running procedure's the callee runs.
    pub fn depth(self) -> usize {
        usize::from(self.levels) + 1 - usize::from(self.tail)
    }
}

/// Whether a procedure's pure code has a scratch region (`PureCode`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scratch {
    None,
    Callees,
    Builds,
}

/// A procedure's pure-tier code and its frame size in registers.
#[derive(Debug)]
pub struct PureCode {
    pub ops: Vec<Op>,
    pub nregs: u32,
    /// Whether the code itself builds in its destination (`Cons`,
    /// `List`, a `Closure` there).
    pub builds: bool,
    /// Whether the code stores (`ArraySet`, `DictSet`, `BoxSet`,
    /// `PairSet`).
    pub stores: bool,
    /// Whether the code has a scratch region of its own: it builds there
    /// (`ConsScratch`, a `List` or `Closure` there), or (`Callees`) calls procedures
    /// whose destination it is, which may build there.
    pub scratch: Scratch,
    /// Where a tail call of the running closure itself starts again: past
    /// the prologue that loads the closure's captures (and the closure)
    /// into registers of their own, which no instruction writes again.
    pub head: u32,
}

/// The pure-tier code of a procedure body with `nslots` local slots,
/// `nparams` parameters and `ncaps` captures, if the body qualifies.
/// `own_global`: the global a top-level `define` binds the procedure to,
/// whose calls in the body may be inlined (`Compiler::inline`).
pub fn compile(
    body: &Node,
    (nslots, nparams, ncaps): (usize, usize, usize),
    own_global: Option<u32>,
    inlinable: &Inlinable,
) -> Option<PureCode> {
    let nslots = u32::try_from(nslots).ok()?;
    // The captures' registers, and the closure's, follow the slots.
    let ncaps = u32::try_from(ncaps).ok()?;
    let temps = nslots.checked_add(ncaps)?.checked_add(1)?;
    let own = Own {
        body,
        nslots,
        nparams,
        global: own_global,
        code: INLINE_OWN,
    };
    let generate = |inline_levels| {
        let mut c = Compiler {
            ops: Vec::new(),
            next: temps,
            max: temps,
            join: 0,
            own,
            inlinable,
            inlining: Vec::new(),
            inline_levels,
            calls_inlinable: false,
            loaded: vec![false; ncaps as usize + 1],
            named: None,
        };
        c.ret(body).map(|()| c)
    };
    // A body longer than an inlined body may be is not inlined anywhere:
    // only a short one that calls itself or an inlinable procedure is
    // generated again with those calls inlined (which bounds the work of
    // trying each of them).
    let mut c = generate(0)?;
    if c.calls_inlinable && c.ops.len() <= INLINE_LIMIT {
        c = generate(INLINE_LEVELS)?;
    }
    crate::pure_peephole::optimize(&mut c.ops);
    let head = load_captures(&mut c.ops, nslots, &c.loaded)?;
    let builds = c.ops.iter().any(|op| {
        matches!(
            op,
            Op::Cons { .. }
                | Op::ReturnCons { .. }
                | Op::List { scratch: false, .. }
                | Op::Closure { scratch: false, .. }
        )
    });
    let has = |f: fn(&Op) -> bool| c.ops.iter().any(f);
    // (An inlined body's entry with the scratch region as its destination
    // calls the procedure there when its test fails: `may_make_scratch`.)
    let scratch = if has(Op::builds_in_scratch) {
        Scratch::Builds
    } else if has(Op::may_make_scratch) {
        Scratch::Callees
    } else {
        Scratch::None
    };
    let stores = has(Op::is_store);
    Some(PureCode {
        ops: c.ops,
        scratch,
        nregs: c.max,
        builds,
        stores,
        head,
    })
}

/// Put before `ops` the prologue that loads each capture the code reads
/// (`loaded[i]`) into register `base + i`, and the closure itself
/// (`loaded`'s last) into the one after them; the jumps move with the
/// code. Returns the prologue's length.
fn load_captures(ops: &mut Vec<Op>, base: u32, loaded: &[bool]) -> Option<u32> {
    let n = u32::try_from(loaded.len()).ok()?.checked_sub(1)?;
    let prologue: Vec<Op> = (0..=n)
        .filter(|&i| loaded[i as usize])
        .map(|i| match i == n {
            false => Op::Capture { dst: base + i, i },
            true => Op::SelfRef { dst: base + n },
        })
        .collect();
    let head = u32::try_from(prologue.len()).ok()?;
    if head > 0 {
        for op in ops.iter_mut() {
            if let Some(to) = op.jump_target_mut() {
                *to += head;
            }
        }
        ops.splice(0..0, prologue);
    }
    Some(head)
}

/// Primitives whose fast paths answer without allocating or failing, or
/// else decline, with `argc` operands.
fn pure_prim(op: Prim, argc: usize) -> bool {
    match argc {
        1 => op.has_unary_fast_path() || matches!(op, Prim::Add | Prim::Mul),
        2 => op == Prim::IsEq || FixOp::of_prim(op).is_some(),
        _ => matches!(op, Prim::Add | Prim::Mul),
    }
}

/// Whether `n`'s value is `#t` or `#f` (a comparison, a type test, `eq?`
/// with a constant) whenever it has one.
fn is_boolean_test(n: &Node) -> bool {
    match n {
        Node::FixOp2 { op, .. } | Node::FixExpr { op, .. } => op.is_comparison(),
        Node::LocalOp1 { op, .. } | Node::LocalOp2 { outer: op, .. } => !op.is_pair_path(),
        Node::EqConst { .. } => true,
        _ => false,
    }
}

/// A procedure whose body a call may inline: the one being compiled (its
/// calls of itself), or a global one (`Inlinable`).
#[derive(Clone, Copy)]
struct Own<'a> {
    body: &'a Node,
    nslots: u32,
    nparams: usize,
    /// The global it is defined as, if any.
    global: Option<u32>,
    /// `INLINE_OWN` for the procedure being compiled, else the code
    /// (proto id) of the global procedure whose body this is.
    code: u32,
}

/// The body being inlined at a call of the procedure itself: its local
/// slots are the registers from `off` (its parameters are the call's
/// arguments, in place), its value goes to register `off`, and each
/// place it returns from jumps to the end (`exits`). `dst_is_scratch`:
/// the call's destination is the caller's scratch region, so what the
/// body builds in its destination goes there. Its tail calls of the
/// procedure itself jump back to its first instruction (`head`) with the
/// new arguments in its parameters: a loop, as such a tail call is on the
/// general path.
struct Inlining<'a> {
    off: u32,
    head: usize,
    exits: Vec<usize>,
    dst_is_scratch: bool,
    /// Whose body it is.
    own: Own<'a>,
}

/// The most instructions an inlined body may take.
const INLINE_LIMIT: usize = 80;

/// How deep bodies are inlined in bodies inlined.
const INLINE_LEVELS: usize = 2;

impl PureCode {
    /// Whether the code calls global `g` (the procedure itself) other than
    /// in tail position, or inlines such a call of itself: a recursion
    /// that is not a loop. Its calls are best entered through its own code,
    /// which inlines that recursion from its first level; a caller that
    /// inlined its body instead would only shift where the inlined levels
    /// start (`Proto::inline_as`).
    pub fn recurses(&self, g: u32) -> bool {
        self.ops.iter().any(|op| match *op {
            Op::Inline { .. } => true,
            Op::CallGlobal { g: callee, .. } => callee == g,
            _ => false,
        })
    }
}

/// `Op::DictRef` without a default.
pub const NO_DEFAULT: u32 = u32::MAX;

/// `Op::Inline`'s callee that is the running closure itself (`SelfRef`),
/// not a global.
pub const INLINE_SELF: u32 = u32::MAX;

/// `Own::code` of the running procedure (inlined by `Op::Inline`).
pub const INLINE_OWN: u32 = u32::MAX;

/// The global procedures whose bodies a call may inline (`compile.rs`
/// keeps them: defined at top level, capturing nothing, with pure code),
/// by global.
pub type Inlinable = std::collections::HashMap<u32, std::rc::Rc<crate::ir::Proto>>;

struct Compiler<'a> {
    ops: Vec<Op>,
    /// The next free temporary register.
    next: u32,
    /// The frame size so far.
    max: u32,
    /// The latest place a jump goes to: an instruction before it may be
    /// jumped over, so it is not the only one that wrote its result.
    join: usize,
    own: Own<'a>,
    /// Other procedures' bodies a call may inline.
    inlinable: &'a Inlinable,
    /// The bodies being inlined, outermost first, and how many may be.
    inlining: Vec<Inlining<'a>>,
    inline_levels: usize,
    /// Whether the body makes a non-tail call that `inline` may inline
    /// (of the procedure itself, or of an inlinable one).
    calls_inlinable: bool,
    /// Which captures the code reads (and, last, whether it reads the
    /// closure itself): the prologue loads them (`load_captures`).
    loaded: Vec<bool>,
    /// The named-`let` loop whose body is being compiled in this frame,
    /// if any (`named_loop`).
    named: Option<NamedLoop>,
}

/// A named-`let` loop run in the frame of the procedure it is the tail
/// call of, without its closure (`Compiler::named_loop`): its slots are
/// the registers from `off`, as its own frame's would be from 0, and its
/// captures the `ncaps` after them, copied there at its entry; its tail
/// calls of itself jump back to `head` (`Op::LetLoop`).
#[derive(Clone, Copy)]
struct NamedLoop {
    off: u32,
    head: usize,
    nparams: usize,
    caps_at: u32,
    ncaps: u32,
    proto: u32,
}

impl<'a> Compiler<'a> {
    /// The register of local slot `s` of the body being compiled.
    fn slot(&self, s: u32) -> u32 {
        s + match (self.inlining.last(), self.named) {
            (Some(i), _) => i.off,
            (None, Some(l)) => l.off,
            (None, None) => 0,
        }
    }

    /// The named-`let` loop whose body is being compiled, unless the code
    /// is a body inlined in it.
    fn in_loop(&self) -> Option<NamedLoop> {
        self.named.filter(|_| self.inlining.is_empty())
    }

    fn operand(&self, o: Operand) -> Src {
        match o {
            Operand::Local(s) => Src::Reg(self.slot(s)),
            Operand::Const(v) => Src::Val(v),
        }
    }

    /// Whether a value CTRR sends to `target` goes to the scratch region
    /// (`Some(true)`) or the destination (`Some(false)`); `None` for any
    /// other region, and for the scratch region of an inlined body (which
    /// would outlive the call there: not inlined).
    fn in_scratch(&self, target: Target) -> Option<bool> {
        match (target, self.inlining.last()) {
            (Target::Dst, None) => Some(false),
            (Target::Dst, Some(i)) => Some(i.dst_is_scratch),
            (Target::Scratch, None) => Some(true),
            _ => None,
        }
    }

    /// Whether a callee whose value CTRR sends to `target` builds in this
    /// code's destination (else in its scratch region; in an inlined body,
    /// the caller's, which outlives the call there); `None` for any other
    /// region.
    fn callee_in_dst(&self, target: Target) -> Option<bool> {
        match (target, self.inlining.last()) {
            (Target::Dst, None) => Some(true),
            (Target::Dst, Some(i)) => Some(!i.dst_is_scratch),
            (Target::Scratch, _) => Some(false),
            _ => None,
        }
    }

    /// Leave the body with value `a`: return it, or in an inlined body
    /// put it in the call's result register and jump to the end.
    fn exit_with(&mut self, a: Src) {
        let Some(off) = self.inlining.last().map(|i| i.off) else {
            self.ops.push(Op::Return { a });
            return;
        };
        if !matches!(a, Src::Reg(r) if r == off) {
            self.ops.push(Op::Move { dst: off, a });
        }
        self.exit();
    }

    /// An inlined body's jump to its end (patched there).
    fn exit(&mut self) {
        let at = self.ops.len();
        self.ops.push(Op::Jump { to: 0 });
        if let Some(i) = self.inlining.last_mut() {
            i.exits.push(at);
        }
    }

    /// Whether the code being compiled is another procedure's inlined
    /// body, in which `SelfRef` (the running closure) is not its closure.
    fn in_other_body(&self) -> bool {
        self.inlining.iter().any(|i| i.own.code != INLINE_OWN)
    }

    /// The register that holds capture `i` of the running closure, loaded
    /// by the prologue. `None` in another procedure's inlined body, which
    /// has none (and for a capture the closure does not have).
    fn capture_reg(&mut self, i: u32) -> Option<u32> {
        if let Some(l) = self.in_loop() {
            return (i < l.ncaps).then_some(l.caps_at + i);
        }
        let n = u32::try_from(self.loaded.len()).ok()?.checked_sub(1)?;
        if i >= n {
            return None;
        }
        self.loaded_reg(i)
    }

    /// The register that holds the running closure (after its captures').
    /// `None` in a named-`let` loop's body: the loop has no closure there.
    fn self_reg(&mut self) -> Option<u32> {
        if self.in_loop().is_some() {
            return None;
        }
        let n = u32::try_from(self.loaded.len()).ok()?.checked_sub(1)?;
        self.loaded_reg(n)
    }

    fn loaded_reg(&mut self, i: u32) -> Option<u32> {
        if self.in_other_body() {
            return None;
        }
        *self.loaded.get_mut(i as usize)? = true;
        Some(self.own.nslots + i)
    }

    /// If a call of `f` on `args` may have its callee's body inlined, of
    /// its arity: the callee's global (or `INLINE_SELF` for the
    /// procedure's own name) and body. The procedure itself, or a global
    /// one that captures nothing.
    fn inlinable_callee(&self, f: &Node, args: &[Node]) -> Option<(u32, Own<'a>)> {
        let own = self.own;
        match f {
            Node::Global(g, _) if Some(*g) == own.global => {
                (args.len() == own.nparams).then_some((*g, own))
            }
            Node::SelfRef if !self.in_other_body() && self.in_loop().is_none() => {
                (args.len() == own.nparams).then_some((INLINE_SELF, own))
            }
            Node::Global(g, _) => {
                let p = self.inlinable.get(g)?;
                let has_loop = p
                    .pure_code
                    .as_ref()
                    .is_some_and(|c| c.ops.iter().any(|op| matches!(op, Op::LetLoop { .. })));
                if has_loop {
                    return None;
                }
                let body = Own {
                    body: &p.body,
                    nslots: u32::try_from(p.nslots).ok()?,
                    nparams: p.nparams,
                    global: Some(*g),
                    code: u32::try_from(p.id).ok().filter(|&c| c != INLINE_OWN)?,
                };
                (args.len() == p.nparams).then_some((*g, body))
            }
            _ => None,
        }
    }

    /// Whether a tail call of `f` on `args` in an inlined body is one of
    /// the procedure whose body it is, which loops back to the body's
    /// start.
    fn loops_back(&self, f: &Node, args: &[Node]) -> bool {
        if let Some(l) = self.in_loop() {
            return matches!(f, Node::SelfRef) && args.len() == l.nparams;
        }
        match (self.inlining.last(), self.inlinable_callee(f, args)) {
            (Some(i), Some((_, callee))) => callee.code == i.own.code,
            _ => false,
        }
    }

    /// A call of `f` on `args` (not in tail position) whose result goes
    /// to `target`: the procedure's own body inlined if `f` is the
    /// procedure itself, else a call. Returns the result's register.
    fn call_here(&mut self, f: &Node, args: &[Node], target: Target) -> Option<u32> {
        match self.inline(f, args, target)? {
            Some(start) => Some(start),
            None => self.call(f, args, (target, Span::default()), false),
        }
    }

    /// The procedure's own body in place of a call of itself (a global
    /// self-call or a `SelfRef` one, of its arity, in its destination or
    /// scratch region, in at most `INLINE_LEVELS - 1` bodies inlined, of
    /// at most `INLINE_LIMIT` instructions, building nothing in its own
    /// scratch region):
    /// `Some(Some(start))`, the result's register; `Some(None)` when the
    /// call is not inlined (nothing emitted).
    ///
    /// The code: the arguments at `start`; `Inline`, which makes the call
    /// instead if the global is no longer this closure or a limit applies
    /// (and jumps past the body), else takes the call's step; the body,
    /// with its slots from `start` and its temporaries above, each return
    /// a move of its value to `start` and a jump past the body; a tail
    /// call in it, an ordinary call (`Site::tail` set, so that it counts
    /// as one). A body whose own inlined calls make it too long is
    /// inlined without them.
    fn inline(&mut self, f: &Node, args: &[Node], target: Target) -> Option<Option<u32>> {
        let r = self.inline_once(f, args, target)?;
        let level = self.inlining.len() + 1;
        if r.is_some() || self.inline_levels <= level {
            return Some(r);
        }
        let levels = self.inline_levels;
        self.inline_levels = level;
        let r = self.inline_once(f, args, target);
        self.inline_levels = levels;
        r
    }

    fn inline_once(&mut self, f: &Node, args: &[Node], target: Target) -> Option<Option<u32>> {
        let Some((g, own)) = self.inlinable_callee(f, args) else {
            return Some(None);
        };
        self.calls_inlinable = true;
        // A procedure whose named `let` runs in its frame (`named_loop`)
        // is called, not inlined: an inlined body would make the loop's
        // closure and call it. (Its own calls of itself in that loop
        // included.)
        if own.code == INLINE_OWN && self.named.is_some() {
            return Some(None);
        }
        if self.inlining.len() >= self.inline_levels {
            return Some(None);
        }
        let Some(in_dst) = self.callee_in_dst(target) else {
            return Some(None);
        };
        let snapshot = (self.ops.len(), self.next, self.max, self.join);
        let start = self.args(args)?;
        let argc = u32::try_from(args.len()).ok()?;
        let guard = self.ops.len();
        let level = u8::try_from(self.inlining.len() + 1).ok()?;
        self.ops.push(match own.code {
            INLINE_OWN => Op::Inline {
                g,
                start,
                argc,
                in_dst,
                level,
                to: 0,
            },
            code => Op::InlineOther {
                g,
                code,
                start,
                argc,
                in_dst,
                level,
                to: 0,
            },
        });
        self.next = start + own.nslots;
        self.max = self.max.max(self.next);
        self.inlining.push(Inlining {
            off: start,
            head: self.ops.len(),
            exits: Vec::new(),
            dst_is_scratch: !in_dst,
            own,
        });
        let body = self.ret(own.body);
        let inlining = self.inlining.pop();
        let inlined = match (body, inlining) {
            (Some(()), Some(i)) if self.ops.len() - guard <= INLINE_LIMIT => Some(i),
            _ => None,
        };
        let Some(mut inlining) = inlined else {
            // (The call is compiled instead, from its arguments.)
            self.ops.truncate(snapshot.0);
            (self.next, self.max, self.join) = (snapshot.1, snapshot.2, snapshot.3);
            return Some(None);
        };
        // The last exit needs no jump: the end follows.
        if inlining.exits.last() == Some(&(self.ops.len() - 1)) {
            self.ops.pop();
            inlining.exits.pop();
        }
        for at in inlining.exits.into_iter().chain([guard]) {
            self.patch(at);
        }
        self.next = start + 1;
        self.max = self.max.max(self.next);
        Some(Some(start))
    }

    /// A named `let` in tail position, `((letrec ((loop (lambda ...)))
    /// loop) args...)`, run in this frame, with no closure made: its
    /// arguments go to its parameters at the first free register `off`,
    /// its captures are copied after its slots, and its body follows,
    /// compiled as the loop procedure's own (its tail calls of itself
    /// jump back to the body's start: `Op::LetLoop`; its returns are this
    /// procedure's, since the call was in tail position). `None` (nothing
    /// emitted) where it does not apply:
    /// - not in the procedure's own body (an inlined one, or another
    ///   loop's);
    /// - a loop with a rest parameter, or called with another arity;
    /// - code before it may have made the scratch region (the loop's
    ///   iterations exit it, as the loop procedure's tail calls exit its
    ///   own, and a region made before would die with the first; what the
    ///   loop's arguments build there is checked at that exit, as any
    ///   argument is);
    /// - a body that names the loop other than in a tail call of it (its
    ///   closure would be needed), that stores (its restart needs a
    ///   closure at each commit: the tier makes one only at the loop's
    ///   own tail calls), or that the tier cannot run.
    fn named_loop(&mut self, f: &Node, args: &[Node]) -> Option<()> {
        let Node::Seq(items) = f else { return None };
        let [Node::Bind(s, init), Node::Local(t)] = &items[..] else {
            return None;
        };
        let Node::Closure(proto, caps, _, _) = &**init else {
            return None;
        };
        if s != t
            || !self.inlining.is_empty()
            || self.named.is_some()
            || proto.rest
            || args.len() != proto.nparams
            || self.ops.iter().any(Op::may_make_scratch)
        {
            return None;
        }
        let snapshot = (self.ops.len(), self.next, self.max, self.join);
        let loaded = self.loaded.clone();
        let compiled = self.named_loop_body(proto, caps, args);
        let stores = self.ops[snapshot.0..].iter().any(Op::is_store);
        self.named = None;
        if compiled.is_none() || stores {
            self.ops.truncate(snapshot.0);
            (self.next, self.max, self.join) = (snapshot.1, snapshot.2, snapshot.3);
            self.loaded = loaded;
            return None;
        }
        Some(())
    }

    fn named_loop_body(
        &mut self,
        proto: &crate::ir::Proto,
        caps: &[CapSrc],
        args: &[Node],
    ) -> Option<()> {
        let off = self.next;
        let start = self.args(args)?;
        if start != off {
            return None;
        }
        let nslots = u32::try_from(proto.nslots).ok()?;
        let ncaps = u32::try_from(caps.len()).ok()?;
        let caps_at = off.checked_add(nslots)?;
        self.next = caps_at.checked_add(ncaps)?.max(self.next);
        self.max = self.max.max(self.next);
        for (i, c) in (0..).zip(caps) {
            let a = match c {
                CapSrc::Local(s) => self.slot(*s),
                CapSrc::Capture(j) => self.capture_reg(*j)?,
                CapSrc::SelfRef => self.self_reg()?,
            };
            self.ops.push(Op::Move {
                dst: caps_at + i,
                a: Src::Reg(a),
            });
        }
        // The loop's entry is the procedure's tail call of the loop: its
        // step and interrupt check, where the general path takes them (a
        // loop's jump to the next instruction).
        let entry = u32::try_from(self.ops.len()).ok()?;
        self.ops.push(Op::InlineLoop {
            to: entry.checked_add(1)?,
            off,
            start: off,
            argc: u32::try_from(args.len()).ok()?,
        });
        self.named = Some(NamedLoop {
            off,
            head: self.ops.len(),
            nparams: proto.nparams,
            caps_at,
            ncaps,
            proto: u32::try_from(proto.id).ok()?,
        });
        // (The body's first instruction is a jump's target.)
        self.join = self.ops.len();
        self.ret(&proto.body)
    }

    fn temp(&mut self) -> u32 {
        let r = self.next;
        self.next += 1;
        self.max = self.max.max(self.next);
        r
    }

    /// Point the jump at `at` to the current end of the code.
    fn patch(&mut self, at: usize) {
        self.join = self.ops.len();
        let end = self.join as u32;
        if let Some(to) = self.ops[at].jump_target_mut() {
            *to = end;
        }
    }

    /// `n` in tail position: its value is the procedure's result.
    fn ret(&mut self, n: &Node) -> Option<()> {
        match n {
            Node::If(c, t, e) => {
                let skip = self.branch_unless(c)?;
                self.ret(t)?;
                self.patch(skip);
                self.ret(e)
            }
            Node::Seq(items) => match items.split_last() {
                Some((last, init)) => {
                    for x in init {
                        self.effect(x)?;
                    }
                    self.ret(last)
                }
                None => {
                    self.exit_with(Src::Val(Value::NOTHING));
                    Some(())
                }
            },
            // A test whose value is a boolean: `(or (null? l) ...)` returns
            // true when it holds, so it compiles as a branch.
            Node::Or(a, b) if is_boolean_test(a) => {
                let skip = self.branch_unless(a)?;
                self.exit_with(Src::Val(Value::TRUE));
                self.patch(skip);
                self.ret(b)
            }
            Node::Or(a, b) => {
                let r = self.temp();
                self.into(a, r)?;
                let skip = self.ops.len();
                self.ops.push(Op::JumpUnless {
                    a: Src::Reg(r),
                    to: 0,
                });
                self.exit_with(Src::Reg(r));
                self.patch(skip);
                self.next = r;
                self.ret(b)
            }
            // (In an inlined body, a loop if the callee is the procedure
            // itself, else an ordinary call that counts as a tail call.)
            Node::Call {
                f,
                args,
                tail: true,
                span,
                ..
            } if self.loops_back(f, args) => {
                let mark = self.next;
                let start = self.args(args)?;
                let argc = u32::try_from(args.len()).ok()?;
                self.ops.push(match self.in_loop() {
                    Some(l) => Op::LetLoop {
                        to: u32::try_from(l.head).ok()?,
                        off: l.off,
                        start,
                        argc,
                        proto: l.proto,
                        ncaps: l.ncaps,
                        span: *span,
                    },
                    None => {
                        let (off, head) = self.inlining.last().map(|i| (i.off, i.head))?;
                        Op::InlineLoop {
                            to: u32::try_from(head).ok()?,
                            off,
                            start,
                            argc,
                        }
                    }
                });
                self.next = mark;
                Some(())
            }
            Node::Call {
                f,
                args,
                tail: true,
                span,
                ..
            } => {
                if self.named_loop(f, args).is_some() {
                    return Some(());
                }
                let mark = self.next;
                let inlined = !self.inlining.is_empty();
                let start = self.call(f, args, (Target::Dst, *span), !inlined)?;
                if inlined {
                    if let Some(Op::Call { site, .. } | Op::CallGlobal { site, .. }) =
                        self.ops.last_mut()
                    {
                        site.tail = true;
                    }
                    self.exit_with(Src::Reg(start));
                }
                self.next = mark;
                Some(())
            }
            _ => {
                let mark = self.next;
                match self.inlining.last().map(|i| i.off) {
                    Some(off) => {
                        self.into(n, off)?;
                        self.exit();
                    }
                    None => {
                        let a = self.value(n)?;
                        self.ops.push(Op::Return { a });
                    }
                }
                self.next = mark;
                Some(())
            }
        }
    }

    /// `n` for its effects only (a fast path that does not apply still
    /// falls back, as the general path would report it).
    fn effect(&mut self, n: &Node) -> Option<()> {
        let mark = self.next;
        self.value(n)?;
        self.next = mark;
        Some(())
    }

    /// Code that jumps (to a place patched later, at the returned index)
    /// when test `c` is false.
    fn branch_unless(&mut self, c: &Node) -> Option<usize> {
        let mark = self.next;
        let op = match c {
            Node::FixOp2 { op, a, b, .. } if op.is_comparison() => {
                compare_branch(*op, self.operand(*a), self.operand(*b))
            }
            Node::FixExpr { op, a, b, .. } if op.is_comparison() => {
                let a = self.fix_arg(a)?;
                let b = self.fix_arg(b)?;
                compare_branch(*op, a, b)
            }
            // A comparison of two values that are not both locals or
            // constants (`(> r n)` with `n` captured).
            Node::Prim { op, args, .. }
                if args.len() == 2 && FixOp::of_prim(*op).is_some_and(FixOp::is_comparison) =>
            {
                let fop = FixOp::of_prim(*op)?;
                let a = self.value(&args[0])?;
                let b = self.value(&args[1])?;
                compare_branch(fop, a, b)
            }
            Node::LocalOp1 {
                op: Prim::IsNull,
                slot,
                ..
            } => Op::BranchUnlessNull {
                a: self.slot(*slot),
                to: 0,
            },
            Node::LocalOp2 {
                outer: Prim::IsNull,
                inner,
                slot,
                ..
            } => match self.unary(*inner, Src::Reg(self.slot(*slot))) {
                Src::Reg(a) => Op::BranchUnlessNull { a, to: 0 },
                a => Op::JumpUnless { a, to: 0 },
            },
            Node::LocalOp1 { op, slot, .. } => Op::BranchUnlessUnary {
                op: *op,
                a: self.slot(*slot),
                to: 0,
            },
            Node::LocalOp2 {
                outer, inner, slot, ..
            } => match self.unary(*inner, Src::Reg(self.slot(*slot))) {
                Src::Reg(a) => Op::BranchUnlessUnary {
                    op: *outer,
                    a,
                    to: 0,
                },
                a => Op::JumpUnless { a, to: 0 },
            },
            Node::EqConst { a, k, .. } => match self.fix_arg(a)? {
                Src::Reg(a) => Op::BranchUnlessIs { a, k: *k, to: 0 },
                a => Op::JumpUnless {
                    a: Src::Val(Value::bool(a.is_value(*k))),
                    to: 0,
                },
            },
            _ => Op::JumpUnless {
                a: self.value(c)?,
                to: 0,
            },
        };
        self.next = mark;
        self.ops.push(op);
        Some(self.ops.len() - 1)
    }

    /// `n`'s value into register `dst`.
    fn into(&mut self, n: &Node, dst: u32) -> Option<()> {
        let mark = self.next;
        match n {
            Node::If(c, t, e) => {
                let skip = self.branch_unless(c)?;
                self.into(t, dst)?;
                let end = self.ops.len();
                self.ops.push(Op::Jump { to: 0 });
                self.patch(skip);
                self.into(e, dst)?;
                self.patch(end);
            }
            Node::Or(a, b) => {
                self.into(a, dst)?;
                let end = self.ops.len();
                self.ops.push(Op::JumpIf {
                    a: Src::Reg(dst),
                    to: 0,
                });
                self.into(b, dst)?;
                self.patch(end);
            }
            _ => {
                let a = self.value(n)?;
                // An instruction that just wrote a new temporary writes
                // `dst` instead, if no jump goes past it (the value of an
                // `if` is written on each branch).
                let last_only = self.join < self.ops.len();
                let mut retargeted = false;
                if let (Src::Reg(t), Some(d)) = (a, self.ops.last_mut().and_then(Op::dst_mut)) {
                    if t >= mark && last_only && *d == t {
                        *d = dst;
                        retargeted = true;
                    }
                }
                if !retargeted && !matches!(a, Src::Reg(r) if r == dst) {
                    self.ops.push(Op::Move { dst, a });
                }
            }
        }
        self.next = mark;
        Some(())
    }

    /// `n`'s value: where it is (a local, a constant) or a new temporary.
    fn value(&mut self, n: &Node) -> Option<Src> {
        Some(match n {
            Node::Const(v) => Src::Val(*v),
            Node::Local(s) => Src::Reg(self.slot(*s)),
            Node::HeapConst(i) => self.emit(|dst| Op::HeapConst { dst, i: *i }),
            Node::Global(g, _) => self.emit(|dst| Op::Global { dst, g: *g }),
            // (Another procedure's inlined body names its own closure's
            // captures: there are none, as `inlinable_callee` takes only
            // procedures that capture nothing; not inlined if it did.)
            Node::Capture(i) => Src::Reg(self.capture_reg(*i)?),
            Node::SelfRef => Src::Reg(self.self_reg()?),
            Node::FixOp2 { op, a, b, .. } => {
                let (a, b) = (self.operand(*a), self.operand(*b));
                self.fix(*op, a, b)
            }
            Node::FixExpr { op, a, b, .. } => {
                let a = self.fix_arg(a)?;
                let b = self.fix_arg(b)?;
                self.fix(*op, a, b)
            }
            Node::LocalOp1 { op, slot, .. } => self.unary(*op, Src::Reg(self.slot(*slot))),
            Node::LocalOp2 {
                outer, inner, slot, ..
            } => {
                let x = self.unary(*inner, Src::Reg(self.slot(*slot)));
                self.unary(*outer, x)
            }
            Node::EqConst { a, k, .. } => {
                let a = self.fix_arg(a)?;
                let b = Src::Val(*k);
                self.emit(|dst| Op::Eq { dst, a, b })
            }
            Node::Prim { op, args, .. } if pure_prim(*op, args.len()) => self.prim(*op, args)?,
            // A fresh value built in the slot region of the container it is
            // about to be stored into.
            // (Or in the region of the pair it is about to be stored into,
            // where the general path counts the global region's growth at
            // the build: `BuildAt`.)
            Node::Prim {
                op: op @ (Prim::Cons | Prim::List),
                args,
                target: target @ (Target::SlotsOf(k) | Target::RegionOfSlot(k)),
                span,
            } => {
                let c = self.slot(*k);
                let at_pair = matches!(target, Target::RegionOfSlot(_));
                match (op, &args[..]) {
                    (Prim::Cons, [a, b]) => {
                        let a = self.value(a)?;
                        let a = self.in_reg(a);
                        let b = self.value(b)?;
                        let b = self.in_reg(b);
                        self.emit(|dst| match at_pair {
                            false => Op::ConsIn { dst, a, b, c },
                            true => Op::BuildAt {
                                dst,
                                list: false,
                                a,
                                b,
                                c,
                                span: *span,
                            },
                        })
                    }
                    (Prim::List, _) => {
                        let start = self.args(args)?;
                        let n = u32::try_from(args.len()).ok()?;
                        self.ops.push(match at_pair {
                            false => Op::ListIn {
                                dst: start,
                                start,
                                n,
                                c,
                            },
                            true => Op::BuildAt {
                                dst: start,
                                list: true,
                                a: start,
                                b: n,
                                c,
                                span: *span,
                            },
                        });
                        self.next = start + 1;
                        Src::Reg(start)
                    }
                    _ => return None,
                }
            }
            Node::Prim {
                op: op @ (Prim::ArraySet | Prim::DictSet),
                args,
                ..
            } => match &args[..] {
                [c, k, x] => {
                    let c = self.value(c)?;
                    let c = self.in_reg(c);
                    let k = self.value(k)?;
                    let k = self.in_reg(k);
                    let x = self.value(x)?;
                    self.ops.push(match op {
                        Prim::ArraySet => Op::ArraySet { c, i: k, x },
                        _ => Op::DictSet { c, k, x },
                    });
                    Src::Val(Value::NOTHING)
                }
                _ => return None,
            },
            Node::Prim {
                op: op @ (Prim::SetCar | Prim::SetCdr),
                args,
                span,
                ..
            } => match &args[..] {
                [p, x] => {
                    let p = self.value(p)?;
                    let p = self.in_reg(p);
                    let x = self.value(x)?;
                    self.ops.push(Op::PairSet {
                        p,
                        x,
                        cdr: *op == Prim::SetCdr,
                        span: *span,
                    });
                    Src::Val(Value::NOTHING)
                }
                _ => return None,
            },
            Node::Prim {
                op: op @ (Prim::ArrayRef | Prim::DictRef),
                args,
                ..
            } => self.read(*op, args, true)?,
            // Boxes made before the run (a run makes none: `BindBox` is
            // not pure), read and set.
            Node::CaptureBox(i) => {
                let b = Src::Reg(self.capture_reg(*i)?);
                self.box_get(b, true)
            }
            Node::GlobalBox(g, _) => {
                let b = self.emit(|dst| Op::Global { dst, g: *g });
                self.box_get(b, true)
            }
            Node::BoxBorrow {
                at: at @ (BoxAt::Capture(_) | BoxAt::Global(_)),
                ..
            } => {
                let b = match *at {
                    BoxAt::Capture(i) => Src::Reg(self.capture_reg(i)?),
                    BoxAt::Global(g) => self.emit(|dst| Op::Global { dst, g }),
                    BoxAt::Local(_) => return None,
                };
                self.box_get(b, false)
            }
            Node::SetCaptureBox(i, x, _) | Node::SetGlobalBox(i, x, _) => {
                let b = match n {
                    Node::SetCaptureBox(..) => Src::Reg(self.capture_reg(*i)?),
                    _ => self.emit(|dst| Op::Global { dst, g: *i }),
                };
                let b = self.in_reg(b);
                let x = self.value(x)?;
                self.ops.push(Op::BoxSet { b, x });
                Src::Val(Value::NOTHING)
            }
            Node::Borrow(x) => match &**x {
                Node::Prim {
                    op: op @ (Prim::ArrayRef | Prim::DictRef),
                    args,
                    ..
                } => self.read(*op, args, false)?,
                _ => return None,
            },
            Node::Prim {
                op: Prim::Cons,
                args,
                target,
                ..
            } => match (&args[..], self.in_scratch(*target)?) {
                ([a, b], scratch) => {
                    let a = self.value(a)?;
                    let b = self.value(b)?;
                    match scratch {
                        false => self.emit(|dst| Op::Cons { dst, a, b }),
                        true => self.emit(|dst| Op::ConsScratch { dst, a, b }),
                    }
                }
                _ => return None,
            },
            Node::Prim {
                op: Prim::Length,
                args,
                ..
            } => match &args[..] {
                [a] => {
                    let a = self.value(a)?;
                    let a = self.in_reg(a);
                    self.emit(|dst| Op::Length { dst, a })
                }
                _ => return None,
            },
            // (Only a closure whose own code is pure: the code that makes
            // one usually calls it, and a call of any other falls back.)
            Node::Closure(proto, caps, target, _) if proto.pure_code.is_some() => {
                let scratch = self.in_scratch(*target)?;
                let id = u32::try_from(proto.id).ok()?;
                let n = u32::try_from(caps.len()).ok()?;
                let start = self.next;
                for c in caps {
                    let t = self.temp();
                    let a = match c {
                        CapSrc::Local(s) => self.slot(*s),
                        CapSrc::Capture(i) => self.capture_reg(*i)?,
                        CapSrc::SelfRef => self.self_reg()?,
                    };
                    self.ops.push(Op::Move {
                        dst: t,
                        a: Src::Reg(a),
                    });
                }
                self.ops.push(Op::Closure {
                    dst: start,
                    id,
                    start,
                    n,
                    scratch,
                });
                self.next = start + 1;
                self.max = self.max.max(self.next);
                Src::Reg(start)
            }
            Node::Prim {
                op: Prim::List,
                args,
                target,
                ..
            } => {
                let scratch = self.in_scratch(*target)?;
                let start = self.args(args)?;
                let n = u32::try_from(args.len()).ok()?;
                self.ops.push(Op::List {
                    dst: start,
                    start,
                    n,
                    scratch,
                });
                self.next = start + 1;
                Src::Reg(start)
            }
            Node::Prim {
                op: Prim::Error, ..
            } => {
                self.ops.push(Op::Fail);
                Src::Val(Value::NOTHING)
            }
            Node::If(..) | Node::Or(..) => {
                let t = self.temp();
                self.into(n, t)?;
                Src::Reg(t)
            }
            Node::Seq(items) => match items.split_last() {
                Some((last, init)) => {
                    for x in init {
                        self.effect(x)?;
                    }
                    self.value(last)?
                }
                None => Src::Val(Value::NOTHING),
            },
            Node::Bind(s, x) => {
                self.into(x, self.slot(*s))?;
                Src::Val(Value::NOTHING)
            }
            Node::Call {
                f,
                args,
                tail: false,
                target,
                ..
            } => {
                let start = self.call_here(f, args, *target)?;
                // The result is at `start`; the arguments' registers are free.
                self.next = start + 1;
                Src::Reg(start)
            }
            _ => return None,
        })
    }

    /// A one-operand primitive into a new temporary.
    fn unary(&mut self, op: Prim, a: Src) -> Src {
        let dst = self.temp();
        self.ops.push(match (op, a) {
            (Prim::Car, Src::Reg(a)) => Op::Car { dst, a },
            (Prim::Cdr, Src::Reg(a)) => Op::Cdr { dst, a },
            _ => Op::Unary { op, dst, a },
        });
        Src::Reg(dst)
    }

    /// A fixnum operation into a new temporary.
    fn fix(&mut self, op: FixOp, a: Src, b: Src) -> Src {
        // A constant first operand of `+` or `*` goes second.
        let (a, b) = match (op, a) {
            (FixOp::Add | FixOp::Mul, Src::Val(_)) => (b, a),
            _ => (a, b),
        };
        let dst = self.temp();
        self.ops.push(match (a, b.as_fixnum()) {
            (Src::Reg(a), Some(k)) => {
                // What `+` adds (`-` adds `-k`, a fixnum but for the
                // least one's negation: that stays a `FixK`).
                let delta = match op {
                    FixOp::Add => Some(k),
                    FixOp::Sub => k.checked_neg(),
                    _ => None,
                };
                match delta.and_then(Value::fixnum) {
                    Some(k) => Op::AddK { dst, a, k },
                    None => Op::FixK { op, dst, a, k },
                }
            }
            (Src::Reg(a), _) => match (op, b) {
                (FixOp::Add, Src::Reg(b)) => Op::Add { dst, a, b },
                (FixOp::Sub, Src::Reg(b)) => Op::Sub { dst, a, b },
                _ => Op::Fix {
                    op,
                    dst,
                    a: Src::Reg(a),
                    b,
                },
            },
            _ => Op::Fix { op, dst, a, b },
        });
        Src::Reg(dst)
    }

    /// `a` in a register: a constant is moved to a new temporary.
    fn in_reg(&mut self, a: Src) -> u32 {
        match a {
            Src::Reg(r) => r,
            Src::Val(_) => {
                let t = self.temp();
                self.ops.push(Op::Move { dst: t, a });
                t
            }
        }
    }

    /// The value of the box in `b` (a register), pinning (`pin`) or
    /// borrowing as the general path's read does.
    fn box_get(&mut self, b: Src, pin: bool) -> Src {
        let b = self.in_reg(b);
        self.emit(|dst| Op::BoxGet { dst, b, pin })
    }

    /// `array-ref` or `dict-ref` (`op`) of `args`, pinning (`pin`) as the
    /// general path's read does, or borrowing.
    fn read(&mut self, op: Prim, args: &[Node], pin: bool) -> Option<Src> {
        let (c, k, default) = match (op, args) {
            (Prim::ArrayRef, [c, i]) => (c, i, None),
            (Prim::DictRef, [c, k]) => (c, k, None),
            (Prim::DictRef, [c, k, d]) => (c, k, Some(d)),
            _ => return None,
        };
        let c = self.value(c)?;
        let c = self.in_reg(c);
        let k = self.value(k)?;
        let k = self.in_reg(k);
        let default = match default {
            Some(d) => {
                let d = self.value(d)?;
                self.in_reg(d)
            }
            None => NO_DEFAULT,
        };
        Some(match op {
            Prim::ArrayRef => self.emit(|dst| Op::ArrayRef { dst, c, i: k, pin }),
            _ => self.emit(|dst| Op::DictRef {
                dst,
                c,
                k,
                default,
                pin,
            }),
        })
    }

    /// Push the instruction `make(dst)` for a new temporary `dst`.
    fn emit(&mut self, make: impl FnOnce(u32) -> Op) -> Src {
        let t = self.temp();
        self.ops.push(make(t));
        Src::Reg(t)
    }

    fn prim(&mut self, op: Prim, args: &[Node]) -> Option<Src> {
        // The value of `+` and `*` of no operands.
        let unit = Value::fixnum(i64::from(op == Prim::Mul))?;
        Some(match args {
            [] => Src::Val(unit),
            // `(+ x)` and `(* x)`: x, if it is a fixnum.
            [a] if matches!(op, Prim::Add | Prim::Mul) => {
                let a = self.value(a)?;
                self.fix(FixOp::of_prim(op)?, a, Src::Val(unit))
            }
            [a] => {
                let a = self.value(a)?;
                self.unary(op, a)
            }
            [a, b] => {
                let a = self.value(a)?;
                let b = self.value(b)?;
                match FixOp::of_prim(op) {
                    Some(op) => self.fix(op, a, b),
                    None => self.emit(|dst| Op::Eq { dst, a, b }),
                }
            }
            // Three or more operands of `+` or `*`: a chain of two-operand
            // operations (an intermediate result that is not a fixnum
            // falls back, and the general path computes the whole).
            [a, b, rest @ ..] => {
                let fop = FixOp::of_prim(op)?;
                let a = self.value(a)?;
                let b = self.value(b)?;
                let mut acc = self.fix(fop, a, b);
                for x in rest {
                    let x = self.value(x)?;
                    acc = self.fix(fop, acc, x);
                }
                acc
            }
        })
    }

    /// A call of `f` on `args` whose result goes to `target`, in tail
    /// position or not; returns the register of the first argument (where
    /// a result is left).
    fn call(
        &mut self,
        f: &Node,
        args: &[Node],
        (target, span): (Target, Span),
        tail: bool,
    ) -> Option<u32> {
        // The callee's destination: this code's (a tail call's always is),
        // or what would be a scratch region.
        let in_dst = match tail {
            true => true,
            false => self.callee_in_dst(target)?,
        };
        let site = Site {
            levels: u8::try_from(self.inlining.len()).ok()?,
            tail: false,
        };
        let callee = self.callee(f)?;
        let start = self.args(args)?;
        let argc = u32::try_from(args.len()).ok()?;
        self.ops.push(match (callee, tail) {
            (Callee::Global(g), false) => Op::CallGlobal {
                g,
                start,
                argc,
                in_dst,
                site,
            },
            (Callee::Reg(f), false) => Op::Call {
                f,
                start,
                argc,
                in_dst,
                site,
            },
            (Callee::Global(g), true) => Op::TailCallGlobal {
                g,
                start,
                argc,
                span,
            },
            (Callee::Reg(f), true) => Op::TailCall {
                f,
                start,
                argc,
                span,
            },
        });
        Some(start)
    }

    /// A call's callee: a global read at the call, or a register holding
    /// the procedure (below the arguments, which the callee's frame takes).
    fn callee(&mut self, f: &Node) -> Option<Callee> {
        match f {
            Node::Global(g, _) => return Some(Callee::Global(*g)),
            // (A capture's register is never written after the prologue.)
            Node::SelfRef => return Some(Callee::Reg(self.self_reg()?)),
            Node::Capture(i) => return Some(Callee::Reg(self.capture_reg(*i)?)),
            _ => {}
        }
        let t = self.temp();
        self.into(f, t)?;
        Some(Callee::Reg(t))
    }

    /// Each argument into the next register; returns the first.
    fn args(&mut self, args: &[Node]) -> Option<u32> {
        let start = self.next;
        for a in args {
            let t = self.next;
            match a {
                // A call leaves its result where its own arguments began:
                // here, when its callee is a global.
                Node::Call {
                    f,
                    args,
                    tail: false,
                    target,
                    ..
                } => {
                    let s = self.call_here(f, args, *target)?;
                    if s != t {
                        self.ops.push(Op::Move {
                            dst: t,
                            a: Src::Reg(s),
                        });
                    }
                }
                _ => {
                    let t = self.temp();
                    self.into(a, t)?;
                }
            }
            self.next = t + 1;
            self.max = self.max.max(self.next);
        }
        // A call without arguments still leaves its result at `start`.
        self.max = self.max.max(start + 1);
        Some(start)
    }

    /// A `FixExpr` or `EqConst` operand: leaves as they are, a pair path
    /// or a nested operation into a temporary.
    fn fix_arg(&mut self, a: &FixArg) -> Option<Src> {
        Some(match a {
            FixArg::Local(s) => Src::Reg(self.slot(*s)),
            FixArg::Const(v) => Src::Val(*v),
            FixArg::Unary(op, s) => self.unary(*op, Src::Reg(self.slot(*s))),
            FixArg::Fix(n) => {
                let (op, x, y) = &**n;
                let a = self.fix_arg(x)?;
                let b = self.fix_arg(y)?;
                self.fix(*op, a, b)
            }
        })
    }
}

enum Callee {
    Global(u32),
    Reg(u32),
}

/// The fixnums `x` for which `x op k` holds, as a range or the outside of
/// one (every comparison with a constant is one of the two).
enum Range {
    In(i64, i64),
    Out(i64, i64),
    Not,
}

fn range(op: FixOp, k: i64) -> Range {
    let (min, max) = (i64::MIN, i64::MAX);
    match op {
        FixOp::Lt => Range::In(min, k - 1),
        FixOp::Le => Range::In(min, k),
        FixOp::Gt => Range::In(k + 1, max),
        FixOp::Ge => Range::In(k, max),
        FixOp::Eq => Range::In(k, k),
        FixOp::Ne => Range::Out(k, k),
        _ => Range::Not,
    }
}

/// The branch (its target patched later) taken when fixnum comparison
/// `op` of `a` and `b` is false: against a constant a range test, between
/// two registers for `=` a word test and for an order a less-than test,
/// else the comparison itself.
fn compare_branch(op: FixOp, a: Src, b: Src) -> Op {
    let to = 0;
    match (a, b, b.as_fixnum().map(|k| range(op, k))) {
        (Src::Reg(a), _, Some(Range::In(lo, hi))) => Op::BranchUnlessIn { a, lo, hi, to },
        (Src::Reg(a), _, Some(Range::Out(lo, hi))) => Op::BranchUnlessOut { a, lo, hi, to },
        (Src::Reg(a), Src::Reg(b), _) if matches!(op, FixOp::Eq | FixOp::Ne) => {
            Op::BranchUnlessSame {
                a,
                b,
                eq: op == FixOp::Eq,
                to,
            }
        }
        (Src::Reg(a), Src::Reg(b), _) if matches!(op, FixOp::Lt | FixOp::Le) => {
            Op::BranchUnlessLess {
                a,
                b,
                or_equal: op == FixOp::Le,
                to,
            }
        }
        (Src::Reg(a), Src::Reg(b), _) if matches!(op, FixOp::Gt | FixOp::Ge) => {
            Op::BranchUnlessLess {
                a: b,
                b: a,
                or_equal: op == FixOp::Ge,
                to,
            }
        }
        _ => Op::BranchUnless { op, a, b, to },
    }
}

impl Src {
    /// Whether this is constant `k` (`eq?`).
    fn is_value(self, k: Value) -> bool {
        matches!(self, Src::Val(v) if v.is(k))
    }

    /// The constant's fixnum, if it is a fixnum constant.
    fn as_fixnum(self) -> Option<i64> {
        match self {
            Src::Val(v) => v.as_fixnum(),
            Src::Reg(_) => None,
        }
    }
}

#[cfg(test)]
mod size {
    /// An instruction stays five words: the run's loop indexes its code by
    /// the size (a bigger one costs every dispatch a multiply).
    #[test]
    fn an_instruction_is_five_words() {
        assert_eq!(std::mem::size_of::<super::Op>(), 40);
    }
}
