//! The VM: walks the IR. It allocates Lisp values only through omni-mem,
//! always in a region named by the CTRR schedule, and runs every escape
//! boundary through omni-mem's barrier (`admit_into`):
//!
//! * return: the result is admitted into the activation's `dst` before the
//!   scratch region is exited;
//! * tail call: the arguments are admitted into `dst`, then scratch exits;
//! * global definition and `set!`: admitted into the global region;
//! * capture and mutation: inside omni-mem's constructors and store helper.

use std::collections::HashMap;
use std::io::Write;
use std::rc::Rc;
use std::sync::Arc;

use omni_mem::{
    admit_into, alloc_box, alloc_closure, box_get, box_set, closure_capture, closure_code,
    region_create, region_create_at, region_create_process, region_exit, region_of, reserve_ranks,
    MemError, Region, Repair, Value,
};

use crate::builtins::Prim;
use crate::compile::ConstSink;
use crate::conc::Runtime;
use crate::ir::{CapSrc, Node, Operand, Proto, Target};
use crate::printer;
use crate::reader::{Datum, DatumKind, Span};

/// Closures whose code has this bit set are primitives.
pub const PRIM_BIT: u64 = 1 << 63;

/// A runtime error with the Lisp frames it unwound through.
#[derive(Debug, Clone)]
pub struct LispError {
    pub message: String,
    pub span: Option<Span>,
    /// (procedure name, call site), innermost first.
    pub trace: Vec<(String, Span)>,
}

impl LispError {
    /// Errors travel boxed so results stay one word wide on the VM's
    /// deeply recursive paths.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(message: impl Into<String>, span: Span) -> Box<LispError> {
        Box::new(LispError {
            message: message.into(),
            span: Some(span),
            trace: Vec::new(),
        })
    }
}

pub type VmResult<T> = Result<T, Box<LispError>>;

/// A call in tail position, left for the activation to make: the callee,
/// and how many arguments sit on top of the VM's value stack.
#[derive(Clone, Copy)]
pub(crate) struct TailCall {
    f: Value,
    argc: usize,
    span: Span,
}

/// Where a call's result goes: a region, or an activation's scratch region
/// that is created only if something is actually put there. Its rank was
/// reserved when the activation started, so creating it late keeps the
/// region order of a strict nesting.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Dst {
    Region(Region),
    Scratch(usize),
}

struct ScratchSlot {
    rank: u64,
    region: Option<Region>,
}

pub(crate) struct Frame {
    /// Index of slot 0 on the VM's value stack.
    pub(crate) base: usize,
    pub(crate) closure: Value,
    pub(crate) dst: Dst,
    /// Index of this activation's scratch slot on the VM's scratch stack.
    pub(crate) scratch: usize,
    /// Rank reserved for the next iteration's region (older than scratch).
    pub(crate) iter_rank: u64,
    /// The next iteration's region, once a tail-call argument needed it.
    pub(crate) iter_next: Option<Region>,
}

/// What `coalesce` did: global-region bytes before and after, and bytes
/// of whole slabs returned to the system allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoalesceReport {
    pub before: usize,
    pub after: usize,
    pub released: usize,
}

/// Counts of the VM's own region work, printed by `--stats`.
#[derive(Debug, Default, Clone, Copy)]
pub struct VmStats {
    pub calls: u64,
    pub tail_calls: u64,
    pub scratch_regions: u64,
    pub return_repairs_transmigrate: u64,
    pub return_repairs_merge: u64,
    pub global_repairs: u64,
    /// Next-iteration regions created for tail-call arguments.
    pub iteration_regions: u64,
    /// Messages sent by handing over their message region (Option A).
    pub sends_transfer: u64,
    /// Messages sent by copying into a fresh message region (Option B).
    pub sends_copy: u64,
    /// Messages that were immediates (no region travels).
    pub sends_immediate: u64,
    pub receives: u64,
    pub threads_spawned: u64,
    /// Heap figures of spawned threads, summed at their exit (each thread
    /// has its own heap; `--stats` checks these are zero too).
    pub thread_regions_created: u64,
    pub thread_bytes_transmigrated: u64,
    pub thread_live_regions_at_exit: u64,
    pub thread_live_bytes_at_exit: usize,
}

impl VmStats {
    /// Add another thread's counts.
    pub fn add(&mut self, o: &VmStats) {
        self.calls += o.calls;
        self.tail_calls += o.tail_calls;
        self.scratch_regions += o.scratch_regions;
        self.return_repairs_transmigrate += o.return_repairs_transmigrate;
        self.return_repairs_merge += o.return_repairs_merge;
        self.global_repairs += o.global_repairs;
        self.iteration_regions += o.iteration_regions;
        self.sends_transfer += o.sends_transfer;
        self.sends_copy += o.sends_copy;
        self.sends_immediate += o.sends_immediate;
        self.receives += o.receives;
        self.threads_spawned += o.threads_spawned;
        self.thread_regions_created += o.thread_regions_created;
        self.thread_bytes_transmigrated += o.thread_bytes_transmigrated;
        self.thread_live_regions_at_exit += o.thread_live_regions_at_exit;
        self.thread_live_bytes_at_exit += o.thread_live_bytes_at_exit;
    }

    /// Add a spawned thread's final heap figures.
    pub fn add_thread_heap(&mut self, h: &omni_mem::HeapStats) {
        self.thread_regions_created += h.regions_created;
        self.thread_bytes_transmigrated += h.transmigrated_bytes;
        self.thread_live_regions_at_exit += h.live_regions;
        self.thread_live_bytes_at_exit += h.live_bytes;
    }
}

pub struct Vm {
    pub(crate) protos: Vec<Option<Rc<Proto>>>,
    pub(crate) globals: Vec<Value>,
    /// Heap constants of compiled code (all in the global region).
    consts: Vec<Value>,
    pub(crate) global_names: Vec<String>,
    global_ids: HashMap<String, u32>,
    pub global_region: Region,
    /// Channels, threads and the output stream, shared with every thread
    /// of the program.
    pub rt: Arc<Runtime>,
    /// Whether `compile_program` records its source for spawned threads
    /// (off in a spawned thread, which replays the recorded batches).
    pub(crate) record_batches: bool,
    /// The message region being built by a `send` of a fresh value.
    pub(crate) msg_region: Option<Region>,
    /// Bytes each site put into the global region (stores into global
    /// structures, global-targeted allocations, global `set!` repairs):
    /// the evidence for the retention-smell warning.
    pub(crate) global_sites: HashMap<Span, usize>,
    pub(crate) depth: usize,
    pub max_depth: usize,
    /// Calls (including tail calls) left before the program is stopped
    /// with an error; `None`: unlimited (fuzzing sets a budget).
    pub fuel: Option<u64>,
    /// Quota applied to every region the VM creates (`--region-quota`).
    region_quota: Option<usize>,
    pub args: Vec<String>,
    pub stats: VmStats,
    scratch_stack: Vec<ScratchSlot>,
    /// Frame slots and pending call arguments of every activation: one
    /// growable stack instead of an allocation per call.
    stack: Vec<Value>,
    /// Set by a call in tail position instead of calling (see `eval`);
    /// taken by the activation whose body it ends. Results stay one
    /// `Value` wide, so every `eval` returns in registers.
    tail_call: Option<TailCall>,
    closed: bool,
}

impl ConstSink for Vm {
    fn constant(&mut self, d: &Datum) -> Node {
        let v = self.datum_value(d).unwrap_or(Value::NOTHING);
        if v.is_heap() {
            self.consts.push(v);
            Node::HeapConst((self.consts.len() - 1) as u32)
        } else {
            Node::Const(v)
        }
    }

    fn global_id(&mut self, name: &str) -> u32 {
        if let Some(&g) = self.global_ids.get(name) {
            return g;
        }
        let g = self.globals.len() as u32;
        self.globals.push(Value::UNDEFINED);
        self.global_names.push(name.to_string());
        self.global_ids.insert(name.to_string(), g);
        g
    }

    fn proto_base(&self) -> usize {
        self.protos.len()
    }
}

pub(crate) fn mem_err(e: MemError, span: Span) -> Box<LispError> {
    LispError::new(e.to_string(), span)
}

impl Vm {
    pub fn new(out: Box<dyn Write + Send>) -> Vm {
        Vm::with_runtime(Runtime::new(out))
    }

    /// A VM sharing `rt` (channels, threads, output) with other threads.
    pub fn with_runtime(rt: Arc<Runtime>) -> Vm {
        let global_region = region_create_process();
        let mut vm = Vm {
            protos: Vec::new(),
            globals: Vec::new(),
            consts: Vec::new(),
            global_names: Vec::new(),
            global_ids: HashMap::new(),
            global_region,
            rt,
            record_batches: true,
            msg_region: None,
            global_sites: HashMap::new(),
            depth: 0,
            max_depth: 100_000,
            fuel: None,
            region_quota: None,
            args: Vec::new(),
            stats: VmStats::default(),
            scratch_stack: Vec::new(),
            stack: Vec::new(),
            tail_call: None,
            closed: false,
        };
        for (i, e) in crate::builtins::PRIMS.iter().enumerate() {
            let g = vm.global_id(e.1);
            // Primitive procedures are closures with no captures.
            if let Ok(c) = alloc_closure(global_region, PRIM_BIT | i as u64, &[]) {
                vm.globals[g as usize] = c;
            }
        }
        vm
    }

    /// Give every region the VM creates from now on (and the global
    /// region) a byte quota.
    pub fn set_region_quota(&mut self, quota: Option<usize>) {
        self.region_quota = quota;
        self.global_region.set_quota(quota);
    }

    pub(crate) fn new_region(&self) -> Region {
        let r = region_create();
        if self.region_quota.is_some() {
            r.set_quota(self.region_quota);
        }
        r
    }

    fn new_region_at(&self, rank: u64) -> Region {
        let r = region_create_at(rank);
        if self.region_quota.is_some() {
            r.set_quota(self.region_quota);
        }
        r
    }

    pub fn register(&mut self, protos: Vec<Rc<Proto>>) {
        for p in protos {
            if self.protos.len() <= p.id {
                self.protos.resize(p.id + 1, None);
            }
            let id = p.id;
            self.protos[id] = Some(p);
        }
    }

    /// Free the global region (every value dies). Idempotent.
    pub fn shutdown(&mut self) {
        if !self.closed {
            self.closed = true;
            self.flush();
            self.globals.clear();
            self.consts.clear();
            region_exit(self.global_region);
        }
    }

    /// Compact the global region (docs/REGION_COALESCE_POLICY.md): copy
    /// everything the globals and the compiled constants reach into a
    /// fresh region, in one transmigration session, then free the old
    /// region and return whole free slabs to the system. Only called
    /// between top-level forms, when no activation holds a value.
    pub fn coalesce(&mut self) -> Result<CoalesceReport, MemError> {
        let old = self.global_region;
        let before = old.bytes_allocated();
        let new = region_create_process();
        if self.region_quota.is_some() {
            new.set_quota(self.region_quota);
        }
        let mut roots = self.global_roots();
        if let Err(e) = omni_mem::transmigrate_roots(&mut roots, old, new) {
            region_exit(new);
            return Err(e);
        }
        let (g, c) = roots.split_at(self.globals.len());
        self.globals.copy_from_slice(g);
        self.consts.copy_from_slice(c);
        self.global_region = new;
        region_exit(old);
        let released = omni_mem::trim_pools();
        Ok(CoalesceReport {
            before,
            after: new.bytes_allocated(),
            released,
        })
    }

    /// Every reference into the global region between top-level forms:
    /// the globals, then the compiled constants.
    fn global_roots(&self) -> Vec<Value> {
        self.globals.iter().chain(&self.consts).copied().collect()
    }

    pub fn flush(&mut self) {
        let _ = self
            .rt
            .out
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .flush();
    }

    /// The region quota every region of this VM gets.
    pub fn region_quota(&self) -> Option<usize> {
        self.region_quota
    }

    pub fn proc_name(&self, code: u64) -> String {
        if code & PRIM_BIT != 0 {
            return Prim::from_index((code & !PRIM_BIT) as usize)
                .map(|p| p.name().to_string())
                .unwrap_or_else(|| "primitive".into());
        }
        self.protos
            .get(code as usize)
            .and_then(|p| p.as_ref())
            .map(|p| p.name.clone())
            .unwrap_or_else(|| "procedure".into())
    }

    pub fn show(&self, v: Value, readable: bool) -> String {
        let mut s = String::new();
        printer::print(v, readable, &mut s, &|c| self.proc_name(c));
        s
    }

    /// A quoted datum as a value in the global region.
    pub fn datum_value(&mut self, d: &Datum) -> Result<Value, MemError> {
        let r = self.global_region;
        Ok(match &d.kind {
            DatumKind::Int(n) => omni_mem::make_int(r, *n)?,
            DatumKind::Float(x) => omni_mem::alloc_float(r, *x)?,
            DatumKind::Str(s) => omni_mem::alloc_str(r, s)?,
            DatumKind::Char(c) => Value::char(*c),
            DatumKind::Sym(s) => omni_mem::intern(s),
            DatumKind::Bool(b) => Value::bool(*b),
            DatumKind::Nothing => Value::NOTHING,
            DatumKind::List(items, tail) => {
                let mut out = match tail {
                    Some(t) => self.datum_value(t)?,
                    None => Value::EMPTY,
                };
                for x in items.iter().rev() {
                    let v = self.datum_value(x)?;
                    out = omni_mem::alloc_pair(r, v, out)?;
                }
                out
            }
            DatumKind::Array(items) => {
                let vs = items
                    .iter()
                    .map(|x| self.datum_value(x))
                    .collect::<Result<Vec<_>, _>>()?;
                omni_mem::alloc_array_from(r, &vs)?
            }
            DatumKind::Dict(items) => {
                let d = omni_mem::alloc_dict(r)?;
                for kv in items.chunks(2) {
                    let k = self.datum_value(&kv[0])?;
                    let v = self.datum_value(&kv[1])?;
                    omni_mem::dict_set(d, k, v)?;
                }
                d
            }
        })
    }

    /// Run a compiled top-level form. Definitions land in the global
    /// region; any other result lives in a temporary region that is exited
    /// once `keep` has seen the value.
    pub fn run_toplevel(
        &mut self,
        proto: &Rc<Proto>,
        defines: bool,
        keep: &mut dyn FnMut(&Vm, Value),
    ) -> VmResult<()> {
        let dst = if defines {
            self.global_region
        } else {
            self.new_region()
        };
        let base = self.stack.len();
        self.stack.resize(base + proto.nslots, Value::UNDEFINED);
        let (iter_rank, scratch) = self.push_activation();
        let mut fr = Frame {
            base,
            closure: Value::NOTHING,
            dst: Dst::Region(dst),
            scratch,
            iter_rank,
            iter_next: None,
        };
        let r = self.eval(&proto.body, &mut fr);
        let r = match (r, self.tail_call.take()) {
            (Ok(_), Some(t)) => {
                let iter = fr.iter_next.take();
                self.call_owning(t.f, t.argc, Dst::Region(dst), t.span, iter)
            }
            (r, _) => r,
        };
        if let Some(r) = fr.iter_next.take() {
            region_exit(r);
        }
        self.stack.truncate(base);
        let r = r.and_then(|v| {
            let (v, _) = admit_into(dst, v).map_err(|e| mem_err(e, proto.span))?;
            keep(self, v);
            Ok(())
        });
        self.pop_scratch(scratch);
        if !defines {
            region_exit(dst);
        }
        r
    }

    /// Reserve an activation's two ranks (next-iteration region, then
    /// scratch: the iteration region is the older) and its scratch slot.
    fn push_activation(&mut self) -> (u64, usize) {
        let iter_rank = reserve_ranks(2);
        self.scratch_stack.push(ScratchSlot {
            rank: iter_rank + 1,
            region: None,
        });
        (iter_rank, self.scratch_stack.len() - 1)
    }

    /// End an activation's scratch slot (and region, if it was created).
    fn pop_scratch(&mut self, idx: usize) {
        debug_assert_eq!(idx + 1, self.scratch_stack.len(), "scratch slots nest");
        if let Some(slot) = self.scratch_stack.pop() {
            if let Some(r) = slot.region {
                self.stats.scratch_regions += 1;
                region_exit(r);
            }
        }
    }

    fn scratch_region(&mut self, idx: usize) -> Region {
        let slot = &self.scratch_stack[idx];
        match slot.region {
            Some(r) => r,
            None => {
                let r = self.new_region_at(slot.rank);
                self.scratch_stack[idx].region = Some(r);
                r
            }
        }
    }

    pub(crate) fn dst_region(&mut self, d: Dst) -> Region {
        match d {
            Dst::Region(r) => r,
            Dst::Scratch(i) => self.scratch_region(i),
        }
    }

    /// Admit `v` into destination `d`; immediates never create a region
    /// (and are handled in line: most results are).
    #[inline(always)]
    fn admit_dst(&mut self, d: Dst, v: Value) -> Result<(Value, Repair), MemError> {
        if !v.is_heap() {
            return Ok((v, Repair::None));
        }
        self.admit_dst_heap(d, v)
    }

    #[inline(never)]
    fn admit_dst_heap(&mut self, d: Dst, v: Value) -> Result<(Value, Repair), MemError> {
        let r = self.dst_region(d);
        admit_into(r, v)
    }

    /// The region allocation target `t` names in this activation. The
    /// usual case, a destination that is already a region, is in line.
    #[inline]
    fn target(&mut self, t: Target, fr: &mut Frame) -> Region {
        if let (Target::Dst, Dst::Region(r)) = (t, fr.dst) {
            return r;
        }
        self.target_slow(t, fr)
    }

    #[inline(never)]
    fn target_slow(&mut self, t: Target, fr: &mut Frame) -> Region {
        match t {
            Target::Dst => self.dst_region(fr.dst),
            Target::Scratch => self.scratch_region(fr.scratch),
            Target::Global => self.global_region,
            Target::RegionOfSlot(k) => match region_of(self.stack[fr.base + k as usize]) {
                Some(r) => r,
                None => self.scratch_region(fr.scratch),
            },
            Target::Message => match self.msg_region {
                Some(r) => r,
                None => self.scratch_region(fr.scratch),
            },
            Target::Iter => match fr.iter_next {
                Some(r) => r,
                None => {
                    let r = self.new_region_at(fr.iter_rank);
                    fr.iter_next = Some(r);
                    self.stats.iteration_regions += 1;
                    r
                }
            },
        }
    }

    /// A callee's destination: passed on lazily where possible.
    fn call_dst(&mut self, t: Target, fr: &mut Frame) -> Dst {
        match t {
            Target::Dst => fr.dst,
            Target::Scratch => Dst::Scratch(fr.scratch),
            other => Dst::Region(self.target(other, fr)),
        }
    }

    /// Evaluate a node. A call the compiler marked as a tail call (only
    /// ever in tail position of a procedure body, through `if`, `begin`
    /// and `let` bodies) is not made here: its callee and arguments are
    /// left in `tail_call` and on the stack for the activation, and the
    /// value returned is a placeholder.
    ///
    /// The most frequent leaves and primitive calls are handled in line;
    /// the rest goes through `eval_node`.
    #[inline(always)]
    pub(crate) fn eval(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        match n {
            Node::Const(v) => Ok(*v),
            Node::Local(s) => Ok(self.stack[fr.base + *s as usize]),
            Node::FixOp2 { .. } => self.eval_fixop2(n, fr),
            Node::LocalOp1 { .. } => self.eval_localop1(n, fr),
            Node::LocalOp2 { .. } => self.eval_localop2(n, fr),
            Node::Prim { .. } => self.eval_prim(n, fr),
            _ => self.eval_node(n, fr),
        }
    }

    /// `Node::FixOp2`: out of line but lean (no call on the fast path).
    /// (Nodes are passed whole: three register arguments.)
    #[inline(never)]
    fn eval_fixop2(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        let Node::FixOp2 { op, a, b, general } = n else {
            return self.eval_node(n, fr);
        };
        let (x, y) = (self.operand(*a, fr), self.operand(*b, fr));
        match fixnum_op2(*op, x, y) {
            Some(v) => Ok(v),
            None => self.eval_node(general, fr),
        }
    }

    /// `Node::LocalOp1`: as `eval_fixop2`.
    #[inline(never)]
    fn eval_localop1(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        let Node::LocalOp1 { op, slot, general } = n else {
            return self.eval_node(n, fr);
        };
        match unary_fast_path(*op, self.stack[fr.base + *slot as usize]) {
            Some(v) => Ok(v),
            None => self.eval_node(general, fr),
        }
    }

    /// `Node::LocalOp2`: as `eval_localop1`, two operations.
    #[inline(never)]
    fn eval_localop2(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        let Node::LocalOp2 {
            outer,
            inner,
            slot,
            general,
        } = n
        else {
            return self.eval_node(n, fr);
        };
        let x = self.stack[fr.base + *slot as usize];
        match unary_fast_path(*inner, x).and_then(|y| unary_fast_path(*outer, y)) {
            Some(v) => Ok(v),
            None => self.eval_node(general, fr),
        }
    }

    #[inline(always)]
    fn operand(&self, o: Operand, fr: &Frame) -> Value {
        match o {
            Operand::Local(s) => self.stack[fr.base + s as usize],
            Operand::Const(v) => v,
        }
    }

    /// The nodes `eval` does not handle in line. A thin dispatcher: the
    /// frequent kinds go to small functions of their own (called in tail
    /// position, so this one needs no frame of its own), the rest to
    /// `eval_misc`.
    fn eval_node(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        match n {
            Node::If(c, t, e) => self.eval_if(c, t, e, fr),
            Node::Call { .. } => self.eval_call(n, fr),
            Node::Global(g, span) => self.eval_global(*g, *span),
            _ => self.eval_misc(n, fr),
        }
    }

    #[inline(never)]
    fn eval_if(&mut self, c: &Node, t: &Node, e: &Node, fr: &mut Frame) -> VmResult<Value> {
        // A fixnum comparison as the test is decided here, without a call.
        let fast = match c {
            Node::FixOp2 { op, a, b, .. } => {
                fixnum_op2(*op, self.operand(*a, fr), self.operand(*b, fr))
            }
            _ => None,
        };
        let c = match fast {
            Some(v) => v,
            None => self.eval(c, fr)?,
        };
        debug_assert!(self.tail_call.is_none(), "tail call in a condition");
        self.eval(if c.is_truthy() { t } else { e }, fr)
    }

    /// `(or a b)`: `b` is in tail position if the whole is.
    #[inline(never)]
    fn eval_or(&mut self, a: &Node, b: &Node, fr: &mut Frame) -> VmResult<Value> {
        let v = self.eval(a, fr)?;
        debug_assert!(self.tail_call.is_none(), "tail call in an or's test");
        if v.is_truthy() {
            Ok(v)
        } else {
            self.eval(b, fr)
        }
    }

    #[inline(never)]
    fn eval_global(&mut self, g: u32, span: Span) -> VmResult<Value> {
        let v = self.globals[g as usize];
        if v == Value::UNDEFINED {
            return Err(LispError::new(
                format!("unbound variable '{}'", self.global_names[g as usize]),
                span,
            ));
        }
        Ok(v)
    }

    /// A call: callee, then arguments straight onto the value stack (on
    /// an error the enclosing activation truncates the stack). A tail
    /// call is left in `tail_call` for the activation (see `eval`).
    /// (It takes the whole node, so `eval_node` reaches it by a jump.)
    #[inline(never)]
    fn eval_call(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        let Node::Call {
            f,
            args,
            target,
            tail,
            span,
        } = n
        else {
            return Err(LispError::new("internal: not a call", Span::default()));
        };
        let (target, tail, span) = (*target, *tail, *span);
        // Most callees are globals: read them here rather than through
        // two dispatches.
        let fv = match &**f {
            Node::Global(g, gspan) => match self.globals[*g as usize] {
                v if v == Value::UNDEFINED => return self.eval_global(*g, *gspan),
                v => v,
            },
            f => self.eval(f, fr)?,
        };
        for a in args {
            let v = self.eval(a, fr)?;
            self.stack.push(v);
        }
        if tail {
            self.tail_call = Some(TailCall {
                f: fv,
                argc: args.len(),
                span,
            });
            return Ok(Value::NOTHING);
        }
        let dst = self.call_dst(target, fr);
        self.call_owning(fv, args.len(), dst, span, None)
    }

    #[inline(never)]
    fn eval_misc(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        Ok(match n {
            Node::Const(v) => *v,
            Node::HeapConst(i) => self.consts[*i as usize],
            Node::Local(s) => self.stack[fr.base + *s as usize],
            Node::LocalBox(s) => {
                self.unbox_var(self.stack[fr.base + *s as usize], Span::default())?
            }
            Node::Capture(i) => closure_capture(fr.closure, *i as usize).unwrap_or(Value::NOTHING),
            Node::CaptureBox(i) => {
                let b = closure_capture(fr.closure, *i as usize).unwrap_or(Value::NOTHING);
                self.unbox_var(b, Span::default())?
            }
            Node::SelfRef => fr.closure,
            Node::SetLocal(s, x) => {
                let v = self.eval(x, fr)?;
                self.stack[fr.base + *s as usize] = v;
                Value::NOTHING
            }
            Node::SetLocalBox(s, x, span) => {
                let v = self.eval(x, fr)?;
                box_set(self.stack[fr.base + *s as usize], v).map_err(|e| mem_err(e, *span))?;
                Value::NOTHING
            }
            Node::SetCaptureBox(i, x, span) => {
                let v = self.eval(x, fr)?;
                let b = closure_capture(fr.closure, *i as usize).unwrap_or(Value::NOTHING);
                box_set(b, v).map_err(|e| mem_err(e, *span))?;
                Value::NOTHING
            }
            Node::SetGlobal(g, x, span) => {
                if self.globals[*g as usize] == Value::UNDEFINED {
                    return Err(LispError::new(
                        format!(
                            "set! of undefined variable '{}'",
                            self.global_names[*g as usize]
                        ),
                        *span,
                    ));
                }
                let v = self.eval(x, fr)?;
                self.globals[*g as usize] = self.admit_global(v, *span)?;
                Value::NOTHING
            }
            Node::DefGlobal(g, x, span) => {
                let v = self.eval(x, fr)?;
                self.globals[*g as usize] = self.admit_global(v, *span)?;
                Value::NOTHING
            }
            Node::Seq(items) => {
                let Some((last, init)) = items.split_last() else {
                    return Ok(Value::NOTHING);
                };
                for x in init {
                    self.eval(x, fr)?;
                }
                return self.eval(last, fr);
            }
            Node::Bind(s, x) => {
                let v = self.eval(x, fr)?;
                self.stack[fr.base + *s as usize] = v;
                Value::NOTHING
            }
            Node::BindBox(s, x, t, span) => {
                let v = self.eval(x, fr)?;
                let r = self.target(*t, fr);
                self.stack[fr.base + *s as usize] =
                    alloc_box(r, v).map_err(|e| mem_err(e, *span))?;
                Value::NOTHING
            }
            Node::Closure(proto, caps, t, span) => self.make_closure(proto, caps, *t, *span, fr)?,
            Node::SendFresh { chan, msg, span } => self.send_fresh(chan, msg, *span, fr)?,
            Node::FixOp2 { general, .. }
            | Node::LocalOp1 { general, .. }
            | Node::LocalOp2 { general, .. } => {
                // Reached only through `eval`'s general case of these
                // nodes: run the primitive itself.
                self.eval(general, fr)?
            }
            Node::If(..) | Node::Call { .. } | Node::Global(..) => self.eval_node(n, fr)?,
            Node::Or(a, b) => return self.eval_or(a, b, fr),
            Node::Prim { .. } => self.eval_prim(n, fr)?,
        })
    }

    #[inline(never)]
    fn make_closure(
        &mut self,
        proto: &Rc<Proto>,
        caps: &[CapSrc],
        t: Target,
        span: Span,
        fr: &mut Frame,
    ) -> VmResult<Value> {
        let mut vals = Vec::with_capacity(caps.len());
        for c in caps {
            vals.push(match c {
                CapSrc::Local(s) => self.stack[fr.base + *s as usize],
                CapSrc::Capture(i) => {
                    closure_capture(fr.closure, *i as usize).unwrap_or(Value::NOTHING)
                }
                CapSrc::SelfRef => fr.closure,
            });
        }
        let r = self.target(t, fr);
        alloc_closure(r, proto.id as u64, &vals).map_err(|e| mem_err(e, span))
    }

    /// Primitive calls: arguments, the fast paths, then the general
    /// implementation with the region the schedule named. (It takes the
    /// whole node, so it is reached by a jump and its frame stays small:
    /// the general case is out of line.)
    #[inline(never)]
    fn eval_prim(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        let Node::Prim {
            op, args, target, ..
        } = n
        else {
            return Err(LispError::new("internal: not a primitive", Span::default()));
        };
        let op = *op;
        // One- and two-argument calls: the common list and fixnum
        // operations need neither an argument buffer nor a region.
        match args.as_slice() {
            [a] => {
                let x = self.eval(a, fr)?;
                if let Some(v) = unary_fast_path(op, x) {
                    return Ok(v);
                }
                self.prim_general(n, &[x], fr)
            }
            [a, b] => {
                let x = self.eval(a, fr)?;
                let y = self.eval(b, fr)?;
                if let Some(v) = fixnum_op2(op, x, y) {
                    return Ok(v);
                }
                if let Some(v) = binary_fast_path(op, x, y) {
                    return Ok(v);
                }
                if op == Prim::Cons && !watched(op, *target) {
                    let r = self.target(*target, fr);
                    if let Ok(v) = omni_mem::alloc_pair(r, x, y) {
                        return Ok(v);
                    }
                }
                self.prim_general(n, &[x, y], fr)
            }
            _ => self.eval_prim_n(n, fr),
        }
    }

    /// A primitive call with any number of arguments.
    #[inline(never)]
    fn eval_prim_n(&mut self, n: &Node, fr: &mut Frame) -> VmResult<Value> {
        let Node::Prim { op, args, .. } = n else {
            return Err(LispError::new("internal: not a primitive", Span::default()));
        };
        // Three-operand sums and products (`(+ 1 (f l) (f r))`) without
        // the argument buffer.
        if let ([a, b, c], Prim::Add | Prim::Mul) = (args.as_slice(), *op) {
            let x = self.eval(a, fr)?;
            let y = self.eval(b, fr)?;
            let z = self.eval(c, fr)?;
            return match fixnum_fast_path(*op, &[x, y, z]) {
                Some(v) => Ok(v),
                None => self.prim_general(n, &[x, y, z], fr),
            };
        }
        let mut av: smallvec_like::Args = smallvec_like::Args::new();
        for a in args {
            av.push(self.eval(a, fr)?);
        }
        // `list` straight into its region (an allocation error takes the
        // general path, which reports it).
        if let (Prim::List, Node::Prim { target, .. }) = (*op, n) {
            if !watched(Prim::List, *target) {
                let r = self.target(*target, fr);
                let mut l = Value::EMPTY;
                for &x in av.as_slice().iter().rev() {
                    match omni_mem::alloc_pair(r, x, l) {
                        Ok(p) => l = p,
                        Err(_) => return self.prim_general(n, av.as_slice(), fr),
                    }
                }
                return Ok(l);
            }
        }
        self.prim_general(n, av.as_slice(), fr)
    }

    /// The general case of primitive node `n` on evaluated arguments:
    /// n-ary fixnum sums and products, else the primitive itself in the
    /// region the schedule named (watched for the retention warning).
    #[inline(never)]
    fn prim_general(&mut self, n: &Node, a: &[Value], fr: &mut Frame) -> VmResult<Value> {
        let Node::Prim {
            op, target, span, ..
        } = n
        else {
            return Err(LispError::new("internal: not a primitive", Span::default()));
        };
        let (op, target, span) = (*op, *target, *span);
        if let Some(v) = fixnum_fast_path(op, a) {
            return Ok(v);
        }
        let dst = if op.allocates() {
            Some(self.target(target, fr))
        } else {
            None
        };
        self.call_prim_watched(op, a, dst, target, span)
    }

    /// `call_prim`, measuring what a store or a global-targeted allocation
    /// adds to the global region (arguments are already evaluated, so
    /// nested sites are not counted twice).
    #[inline]
    fn call_prim_watched(
        &mut self,
        op: Prim,
        a: &[Value],
        dst: Option<Region>,
        target: Target,
        span: Span,
    ) -> VmResult<Value> {
        if !watched(op, target) {
            return self.call_prim(op, a, dst, span);
        }
        let before = self.global_region.bytes_allocated();
        let r = self.call_prim(op, a, dst, span);
        self.note_global_growth(span, before);
        r
    }

    #[cold]
    fn note_global_growth(&mut self, span: Span, before: usize) {
        let now = self.global_region.bytes_allocated();
        if now > before {
            *self.global_sites.entry(span).or_default() += now - before;
        }
    }

    /// The retention-smell warning (docs/REGION_COALESCE_POLICY.md): the
    /// global region holds at least 1 MiB, of which under a quarter is
    /// still reachable from globals and constants. Names the sites that
    /// put the most bytes there.
    pub fn retention_warning(&self) -> Option<crate::Diagnostic> {
        const MIN: usize = 1 << 20;
        let total = self.global_region.bytes_allocated();
        if total < MIN {
            return None;
        }
        let reachable = omni_mem::reachable_bytes(&self.global_roots(), self.global_region);
        if reachable.saturating_mul(4) > total {
            return None;
        }
        let mut sites: Vec<(Span, usize)> =
            self.global_sites.iter().map(|(s, b)| (*s, *b)).collect();
        sites.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.offset.cmp(&b.0.offset)));
        let mib = |b: usize| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
        let mut d = crate::Diagnostic {
            kind: "warning",
            message: format!(
                "retention smell: the global region holds {} at exit but only {} of it is still reachable; \
                 values stored into long-lived structures and later replaced stay allocated until the program ends",
                mib(total),
                mib(reachable)
            ),
            span: None,
            trace: Vec::new(),
            notes: Vec::new(),
        };
        // Sites that put at least 1% of the region there, the largest 3.
        let sites = sites.iter().filter(|(_, b)| *b * 100 >= total);
        for (i, (span, bytes)) in sites.take(3).enumerate() {
            if i == 0 {
                d.span = Some(*span);
                d.message
                    .push_str(&format!("; this site put {} there", mib(*bytes)));
            } else {
                d.notes.push((format!("{} put there", mib(*bytes)), *span));
            }
        }
        Some(d)
    }

    fn unbox_var(&self, b: Value, span: Span) -> VmResult<Value> {
        match box_get(b) {
            Some(v) if v != Value::UNDEFINED => Ok(v),
            Some(_) => Err(LispError::new("variable used before its definition", span)),
            None => Err(LispError::new("internal: variable box missing", span)),
        }
    }

    fn admit_global(&mut self, v: Value, span: Span) -> VmResult<Value> {
        let before = self.global_region.bytes_allocated();
        let (v, how) = admit_into(self.global_region, v).map_err(|e| mem_err(e, span))?;
        if how != Repair::None {
            self.stats.global_repairs += 1;
            // A copy (or merge) into the global region: attribute it to
            // this `define`/`set!`.
            self.note_global_growth(span, before);
        }
        Ok(v)
    }

    /// Call procedure `f` with `args`; its result is built in (or repaired
    /// into) `dst`.
    pub(crate) fn apply(
        &mut self,
        f: Value,
        args: Vec<Value>,
        dst: Dst,
        span: Span,
    ) -> VmResult<Value> {
        let argc = args.len();
        self.stack.extend(args);
        self.call_owning(f, argc, dst, span, None)
    }

    /// Call `f` with the top `argc` values of the stack as arguments (they
    /// are consumed). `iter` (if any) is a region holding some of the
    /// arguments that this call now owns: it is exited when the activation
    /// chain started here returns, or at its next tail call.
    #[inline]
    fn call_owning(
        &mut self,
        f: Value,
        argc: usize,
        dst: Dst,
        span: Span,
        iter: Option<Region>,
    ) -> VmResult<Value> {
        let base = self.stack.len() - argc;
        let mut iter_cur = iter;
        let r = self.call_loop(f, argc, base, dst, span, &mut iter_cur);
        if let Some(r) = iter_cur.take() {
            region_exit(r);
        }
        self.stack.truncate(base);
        r
    }

    fn call_loop(
        &mut self,
        f: Value,
        argc: usize,
        base: usize,
        dst: Dst,
        span: Span,
        iter_cur: &mut Option<Region>,
    ) -> VmResult<Value> {
        let mut f = f;
        let mut argc = argc;
        loop {
            // The hot path is a closure of exact arity: everything else
            // (primitives, rest lists, errors, limits) is out of line.
            let proto = match self.callee_proto(f, argc, span)? {
                Ok(p) => p,
                Err(op) => return self.call_prim_on_stack(op, argc, base, dst, span),
            };
            if proto.rest {
                self.collect_rest(&proto, argc, base, dst, span)?;
            }
            if self.stack.len() < base + proto.nslots {
                self.stack.resize(base + proto.nslots, Value::UNDEFINED);
            }
            // The next iteration's region is older than this scratch, so
            // the barrier repairs any pointer from it into the scratch.
            let (iter_rank, scratch) = self.push_activation();
            let mut fr = Frame {
                base,
                closure: f,
                dst,
                scratch,
                iter_rank,
                iter_next: None,
            };
            self.stats.calls += 1;
            self.depth += 1;
            let r = self.eval(&proto.body, &mut fr);
            self.depth -= 1;
            match r {
                Ok(v) => match self.tail_call.take() {
                    None => {
                        // Return boundary: the result must live in dst
                        // before the scratch region goes away.
                        let out = if v.is_heap() {
                            self.admit_return(dst, v, span)
                        } else {
                            Ok(v)
                        };
                        self.pop_scratch(scratch);
                        if let Some(r) = fr.iter_next.take() {
                            region_exit(r);
                        }
                        return out;
                    }
                    Some(t) => {
                        let next = fr.iter_next.take();
                        f = self.tail_boundary(t, dst, base, scratch, next, iter_cur)?;
                        argc = t.argc;
                    }
                },
                Err(mut e) => {
                    // An error may have left a tail call half set up.
                    self.tail_call = None;
                    self.pop_scratch(scratch);
                    if let Some(r) = fr.iter_next.take() {
                        region_exit(r);
                    }
                    e.trace.push((proto.name.clone(), span));
                    return Err(e);
                }
            }
        }
    }

    /// What `f` called with `argc` arguments runs: a procedure's code
    /// (`Ok(Ok(proto))`, arity, fuel and depth checked) or a primitive
    /// (`Ok(Err(op))`). Errors for anything else.
    #[inline]
    fn callee_proto(
        &mut self,
        f: Value,
        argc: usize,
        span: Span,
    ) -> VmResult<Result<Rc<Proto>, Prim>> {
        let Some(code) = closure_code(f) else {
            return Err(self.not_a_procedure(f, span));
        };
        if code & PRIM_BIT != 0 {
            return Prim::from_index((code & !PRIM_BIT) as usize)
                .map(Err)
                .ok_or_else(|| LispError::new("internal: bad primitive", span));
        }
        match self.protos.get(code as usize) {
            Some(Some(p))
                if (argc == p.nparams || (p.rest && argc > p.nparams))
                    && self.fuel.is_none()
                    && self.depth < self.max_depth =>
            {
                Ok(Ok(p.clone()))
            }
            _ => self.callee_slow(code, argc, span).map(Ok),
        }
    }

    #[cold]
    #[inline(never)]
    fn not_a_procedure(&self, f: Value, span: Span) -> Box<LispError> {
        LispError::new(format!("not a procedure: {}", self.show(f, true)), span)
    }

    /// `callee_proto` for procedure `code` when a check may fail (or a
    /// step budget is set): the checks, in order, with their errors.
    #[cold]
    #[inline(never)]
    fn callee_slow(&mut self, code: u64, argc: usize, span: Span) -> VmResult<Rc<Proto>> {
        let proto = match self.protos.get(code as usize).and_then(|p| p.clone()) {
            Some(p) => p,
            None => return Err(LispError::new("internal: unknown procedure", span)),
        };
        if argc < proto.nparams || (!proto.rest && argc > proto.nparams) {
            return Err(LispError::new(
                format!(
                    "{}: expected {}{} argument(s), got {argc}",
                    proto.name,
                    if proto.rest { "at least " } else { "" },
                    proto.nparams,
                ),
                span,
            ));
        }
        if let Some(fuel) = self.fuel.as_mut() {
            if *fuel == 0 {
                return Err(LispError::new("step budget exhausted", span));
            }
            *fuel -= 1;
        }
        if self.depth >= self.max_depth {
            return Err(LispError::new(
                format!("stack overflow: more than {} nested calls", self.max_depth),
                span,
            ));
        }
        Ok(proto)
    }

    /// A primitive called as a procedure value, on the top `argc` values.
    #[inline(never)]
    fn call_prim_on_stack(
        &mut self,
        op: Prim,
        argc: usize,
        base: usize,
        dst: Dst,
        span: Span,
    ) -> VmResult<Value> {
        let (min, max) = op.arity();
        if argc < min || argc > max {
            return Err(LispError::new(
                format!("{}: wrong number of arguments ({argc})", op.name()),
                span,
            ));
        }
        let r = if op.allocates() {
            Some(self.dst_region(dst))
        } else {
            None
        };
        let args: Vec<Value> = self.stack[base..base + argc].to_vec();
        self.call_prim(op, &args, r, span)
    }

    /// Replace the arguments past a rest procedure's fixed ones by their
    /// list, built in `dst`.
    #[inline(never)]
    fn collect_rest(
        &mut self,
        proto: &Proto,
        argc: usize,
        base: usize,
        dst: Dst,
        span: Span,
    ) -> VmResult<()> {
        let mut l = Value::EMPTY;
        if argc > proto.nparams {
            let r = self.dst_region(dst);
            for i in (proto.nparams..argc).rev() {
                let x = self.stack[base + i];
                l = omni_mem::alloc_pair(r, x, l).map_err(|e| mem_err(e, span))?;
            }
        }
        self.stack.truncate(base + proto.nparams);
        self.stack.push(l);
        Ok(())
    }

    /// Return boundary for a heap result: admit it into `dst`, counting
    /// the repair.
    #[inline(never)]
    fn admit_return(&mut self, dst: Dst, v: Value, span: Span) -> VmResult<Value> {
        let (v, how) = self.admit_dst(dst, v).map_err(|e| mem_err(e, span))?;
        match how {
            Repair::Transmigrate => self.stats.return_repairs_transmigrate += 1,
            Repair::Merge => self.stats.return_repairs_merge += 1,
            Repair::None => {}
        }
        Ok(v)
    }

    /// Tail-call boundary: callee and arguments move to dst (except those
    /// already in the next iteration's region `next`), then scratch and
    /// this iteration's region are exited and the frame is reused: the
    /// new arguments slide down to `base`. Returns the callee.
    #[inline(never)]
    fn tail_boundary(
        &mut self,
        t: TailCall,
        dst: Dst,
        base: usize,
        scratch: usize,
        next: Option<Region>,
        iter_cur: &mut Option<Region>,
    ) -> VmResult<Value> {
        let TailCall {
            f: mut g,
            argc,
            span,
        } = t;
        let top = self.stack.len();
        let mut failed = None;
        for i in 0..=argc {
            let x = if i == 0 {
                g
            } else {
                self.stack[top - argc + i - 1]
            };
            let in_next = match (next, region_of(x)) {
                (Some(n), Some(r)) => r.same_as(n),
                _ => false,
            };
            if in_next {
                continue;
            }
            match self.admit_dst(dst, x) {
                Ok((v, _)) => {
                    if i == 0 {
                        g = v;
                    } else {
                        self.stack[top - argc + i - 1] = v;
                    }
                }
                Err(e) => {
                    failed = Some(mem_err(e, span));
                    break;
                }
            }
        }
        self.pop_scratch(scratch);
        if let Some(r) = iter_cur.take() {
            region_exit(r);
        }
        *iter_cur = next;
        if let Some(e) = failed {
            return Err(e);
        }
        self.stack.copy_within(top - argc..top, base);
        self.stack.truncate(base + argc);
        self.stats.tail_calls += 1;
        Ok(g)
    }
}

/// Whether a primitive call may grow the global region in a way worth
/// attributing to its site: stores (into a structure that may be global)
/// and allocations aimed at the global region or at a container's region.
#[inline(always)]
fn watched(op: Prim, target: Target) -> bool {
    (matches!(target, Target::Global | Target::RegionOfSlot(_)) && op.allocates()) || op.is_store()
}

/// Type tests and pair accessors that cannot fail or allocate; errors and
/// everything else take the general path.
#[inline(always)]
fn unary_fast_path(op: Prim, x: Value) -> Option<Value> {
    match op {
        Prim::Car => omni_mem::car(x),
        Prim::Cdr => omni_mem::cdr(x),
        Prim::IsNull => Some(Value::bool(x == Value::EMPTY)),
        Prim::IsPair => Some(Value::bool(omni_mem::is_pair(x))),
        Prim::Not => Some(Value::bool(!x.is_truthy())),
        Prim::IsZero => x.as_fixnum().map(|n| Value::bool(n == 0)),
        Prim::Cadr => omni_mem::cdr(x).and_then(omni_mem::car),
        Prim::Cddr => omni_mem::cdr(x).and_then(omni_mem::cdr),
        Prim::Caddr => omni_mem::cdr(x)
            .and_then(omni_mem::cdr)
            .and_then(omni_mem::car),
        Prim::IsSymbol => Some(Value::bool(x.as_symbol().is_some())),
        // Fixnums answer here; other values take the general path.
        Prim::IsNumber | Prim::IsInteger if x.is_fixnum() => Some(Value::TRUE),
        _ => None,
    }
}

/// Identity and type tests of two values that cannot fail or allocate.
#[inline]
fn binary_fast_path(op: Prim, x: Value, y: Value) -> Option<Value> {
    match op {
        Prim::IsEq => Some(Value::bool(x.is(y))),
        _ => None,
    }
}

/// `fixnum_fast_path` for exactly two values.
#[inline(always)]
fn fixnum_op2(op: Prim, x: Value, y: Value) -> Option<Value> {
    let (x, y) = (x.as_fixnum()?, y.as_fixnum()?);
    match op {
        Prim::Add => Value::fixnum(x + y),
        Prim::Sub => Value::fixnum(x - y),
        Prim::Mul => x.checked_mul(y).and_then(Value::fixnum),
        Prim::Lt => Some(Value::bool(x < y)),
        Prim::Gt => Some(Value::bool(x > y)),
        Prim::Le => Some(Value::bool(x <= y)),
        Prim::Ge => Some(Value::bool(x >= y)),
        Prim::NumEq => Some(Value::bool(x == y)),
        _ => None,
    }
}

/// Arithmetic and comparison on two fixnums need no region; everything
/// else (overflow, floats, errors) takes the general path.
#[inline]
fn fixnum_fast_path(op: Prim, a: &[Value]) -> Option<Value> {
    if let [x, y] = a {
        return fixnum_op2(op, *x, *y);
    }
    // n-ary sums and products of fixnums (overflow takes the general path,
    // which reports it or boxes the result).
    let mut acc: i64 = match op {
        Prim::Add => 0,
        Prim::Mul => 1,
        _ => return None,
    };
    for v in a {
        let n = v.as_fixnum()?;
        acc = if op == Prim::Add {
            acc.checked_add(n)?
        } else {
            acc.checked_mul(n)?
        };
    }
    Value::fixnum(acc)
}

/// A tiny inline argument buffer (no heap allocation for up to 4 args).
mod smallvec_like {
    use omni_mem::Value;

    pub struct Args {
        inline: [Value; 4],
        len: usize,
        heap: Vec<Value>,
    }

    impl Args {
        pub fn new() -> Self {
            Args {
                inline: [Value::NOTHING; 4],
                len: 0,
                heap: Vec::new(),
            }
        }

        pub fn push(&mut self, v: Value) {
            if self.len < 4 && self.heap.is_empty() {
                self.inline[self.len] = v;
                self.len += 1;
            } else {
                if self.heap.is_empty() {
                    self.heap.extend_from_slice(&self.inline[..self.len]);
                }
                self.heap.push(v);
            }
        }

        pub fn as_slice(&self) -> &[Value] {
            if self.heap.is_empty() {
                &self.inline[..self.len]
            } else {
                &self.heap
            }
        }
    }
}
