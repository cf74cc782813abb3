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
use std::hash::BuildHasherDefault;
use std::io::Write;
use std::rc::Rc;
use std::sync::Arc;

use omni_mem::{
    admit_into, alloc_box, alloc_closure, box_borrow, box_get, box_set, closure_capture,
    closure_code, region_create, region_create_at, region_create_process, region_exit, region_of,
    reserve_ranks, storable_below_rank, storable_in, store_region, MemError, Region, Repair, Value,
};

use crate::builtins::Prim;
use crate::compile::ConstSink;
use crate::conc::Runtime;
use crate::ir::{CapSrc, FixArg, FixOp, Node, Operand, Proto, Target};
use crate::printer;
use crate::reader::{Datum, DatumKind, Span};

mod call;
mod eval;
mod pure;

/// Hashes source positions for the retention watch's per-site table,
/// which a store-heavy loop updates on every iteration: a multiplicative
/// hash of the three words (SipHash cost such a loop 12% of its
/// instructions). Positions come from the program, not from an adversary.
#[derive(Default)]
pub(crate) struct SiteHasher(u64);

impl std::hash::Hasher for SiteHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// Closures whose code has this bit set are primitives.
pub const PRIM_BIT: u64 = 1 << 63;

/// About how many bytes of a value an error message shows (`show_brief`).
pub const SHOWN_IN_ERRORS: usize = 200;

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
    /// Calls run whole in the pure tier (`vm/pure.rs`), and runs that fell
    /// back to the general path.
    pub pure_runs: u64,
    pub pure_fallbacks: u64,
    /// Calls of a procedure by itself that runs ending with a value ran in
    /// the caller's loop (`vm/pure.rs`, `SelfFrame`), not a nested one.
    pub pure_self_calls: u64,
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
        self.pure_runs += o.pure_runs;
        self.pure_fallbacks += o.pure_fallbacks;
        self.pure_self_calls += o.pure_self_calls;
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
    /// Global names by id, and ids by name: shared (not copied) with the
    /// threads this VM spawns, which number globals the same way.
    pub(crate) global_names: Arc<Vec<String>>,
    pub(crate) global_ids: Arc<HashMap<String, u32>>,
    /// Per global: whether it holds its value in a box (a global the
    /// program assigns; decided when the global is first made).
    pub(crate) global_boxed: Vec<bool>,
    /// The names the batch being compiled `set!`s: a global made while
    /// compiling it is boxed if its name is here.
    assigned: std::collections::HashSet<String>,
    /// Escape summaries of the top-level procedures compiled so far
    /// (escape.rs), by name.
    summaries: HashMap<String, crate::escape::Summary, BuildHasherDefault<SiteHasher>>,
    pub global_region: Region,
    /// Channels, threads and the output stream, shared with every thread
    /// of the program.
    pub rt: Arc<Runtime>,
    /// Whether `compile_program` records its source for spawned threads
    /// (off in a spawned thread, which replays the recorded batches).
    pub(crate) record_batches: bool,
    /// A spawned thread's batches, whose forms it compiles when first
    /// needed (lazy_code.rs); empty on the main thread.
    pub(crate) lazy_code: Vec<Arc<crate::lazy_code::Batch>>,
    /// The first procedure id of the form being compiled lazily (else the
    /// next free one).
    pub(crate) next_proto_base: Option<usize>,
    /// The message region being built by a `send` of a fresh value.
    pub(crate) msg_region: Option<Region>,
    /// Bytes each site put into the global region (stores into global
    /// structures, global-targeted allocations, global `set!` repairs):
    /// the evidence for the retention-smell warning.
    pub(crate) global_sites: HashMap<Span, usize, BuildHasherDefault<SiteHasher>>,
    pub(crate) depth: usize,
    pub max_depth: usize,
    /// Calls may start only above this stack address (`crate::stack_limit`).
    stack_limit: usize,
    /// `interrupt::count()` when this program started: a different count
    /// means an interrupt was requested, and the next call stops it.
    interrupts_seen: u64,
    /// Calls (including tail calls) left before the program is stopped
    /// with an error; `None`: unlimited (fuzzing sets a budget).
    pub(crate) fuel: Option<u64>,
    /// What `interrupt::count()` must equal for a call to take the fast
    /// path: `interrupts_seen` without a step budget, an unreachable count
    /// with one. One compare per call covers both checks (set only by
    /// `set_fuel` and `set_interrupts_seen`).
    pub(crate) fast_gate: u64,
    /// Whether procedures with pure-tier code try it (`vm/pure.rs`); off,
    /// every call takes the general path (`Limits::pure_tier`).
    pub(crate) pure_tier: bool,
    /// Registered global procedures whose bodies later code may inline.
    inlinable: crate::pure_code::Inlinable,
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
        self.global_boxed.push(self.assigned.contains(name));
        Arc::make_mut(&mut self.global_names).push(name.to_string());
        Arc::make_mut(&mut self.global_ids).insert(name.to_string(), g);
        g
    }

    fn global_boxed(&self, g: u32) -> bool {
        self.global_boxed.get(g as usize).copied().unwrap_or(false)
    }

    fn proto_base(&self) -> usize {
        self.next_proto_base.unwrap_or(self.protos.len())
    }

    fn escapes(&self, name: &str) -> Option<crate::escape::Summary> {
        self.summaries.get(name).cloned()
    }

    fn inlinable(&self) -> &crate::pure_code::Inlinable {
        &self.inlinable
    }
}

impl Vm {
    /// The names the next batch `set!`s (`compile::assigned_names`): the
    /// globals among them that it makes are boxed. A global that exists
    /// already keeps its representation: code compiled earlier reads it.
    pub(crate) fn set_assigned(&mut self, names: std::collections::HashSet<String>) {
        self.assigned = names;
    }

    /// A batch's escape summaries: the globals it defines or assigns
    /// (`touched`) lose the ones they had, then `new` are added.
    pub(crate) fn set_summaries(
        &mut self,
        touched: &std::collections::HashSet<String>,
        new: std::collections::HashMap<String, crate::escape::Summary>,
    ) {
        self.summaries.retain(|n, _| !touched.contains(n));
        self.summaries.extend(new);
    }

    /// Take a spawner's global table (names, ids and which globals are
    /// boxed): a spawned thread numbers globals as its spawner does. Every
    /// VM makes the primitives' globals first, in the same order, so the
    /// values already here stay where they are.
    pub(crate) fn adopt_global_table(
        &mut self,
        names: Arc<Vec<String>>,
        ids: Arc<HashMap<String, u32>>,
        boxed: Vec<bool>,
    ) {
        debug_assert!(names.starts_with(&self.global_names));
        self.globals.resize(names.len(), Value::UNDEFINED);
        self.global_names = names;
        self.global_ids = ids;
        self.global_boxed = boxed;
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
        let mut vm = Vm::bare(rt);
        let names = crate::builtins::PRIMS.iter().map(|e| (e.1, e.0));
        let aliases = crate::builtins::ALIASES.iter().copied();
        for (name, p) in names.chain(aliases) {
            let g = vm.global_id(name);
            debug_assert_eq!(crate::builtins::prim_of_global(g as usize), Some(p));
        }
        vm.install_prims();
        // Only interrupts requested from now on stop this program (one
        // read of the count: the gate is derived from it).
        vm.set_interrupts_seen(crate::interrupt::count());
        vm
    }

    /// A spawned thread's VM: its spawner's global table (names and ids
    /// shared, not copied; it begins with the primitives, in the order
    /// `with_runtime` numbers them) and the primitives installed, without
    /// numbering their names again (a spawn's cost: worker_pool.rs). The
    /// caller sets which interrupts it has seen (`set_interrupts_seen`):
    /// the spawner's, passed on.
    pub(crate) fn with_global_table(
        rt: Arc<Runtime>,
        names: Arc<Vec<String>>,
        ids: Arc<HashMap<String, u32>>,
        boxed: Vec<bool>,
    ) -> Vm {
        let mut vm = Vm::bare(rt);
        vm.adopt_global_table(names, ids, boxed);
        vm.install_prims();
        vm
    }

    /// Each primitive's closure in its global (the first ids, in
    /// `builtins::prim_of_global`'s order). Primitive procedures are
    /// closures with no captures.
    fn install_prims(&mut self) {
        let n = crate::builtins::PRIMS.len() + crate::builtins::ALIASES.len();
        for g in 0..n.min(self.globals.len()) {
            if let Some(p) = crate::builtins::prim_of_global(g) {
                if let Ok(c) = alloc_closure(self.global_region, PRIM_BIT | p as u64, &[]) {
                    self.globals[g] = c;
                }
            }
        }
    }

    /// A VM with no globals yet.
    fn bare(rt: Arc<Runtime>) -> Vm {
        let global_region = region_create_process();
        Vm {
            protos: Vec::new(),
            globals: Vec::new(),
            consts: Vec::new(),
            global_names: Arc::new(Vec::new()),
            global_ids: Arc::new(HashMap::new()),
            global_boxed: Vec::new(),
            assigned: Default::default(),
            summaries: HashMap::default(),
            global_region,
            rt,
            record_batches: true,
            lazy_code: Vec::new(),
            next_proto_base: None,
            msg_region: None,
            global_sites: HashMap::default(),
            depth: 0,
            max_depth: crate::depth_cap(crate::MAX_DEPTH),
            stack_limit: crate::stack_limit(),
            interrupts_seen: 0,
            fuel: None,
            fast_gate: 0,
            pure_tier: true,
            inlinable: Default::default(),
            region_quota: None,
            args: Vec::new(),
            stats: VmStats::default(),
            scratch_stack: Vec::new(),
            stack: Vec::new(),
            tail_call: None,
            closed: false,
        }
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

    /// Limit the calls (tail calls included) this VM may still make.
    pub fn set_fuel(&mut self, fuel: Option<u64>) {
        self.fuel = fuel;
        self.update_gate();
    }

    /// Take `steps` from the step budget: false, and the budget spent,
    /// when fewer are left (always true without a budget).
    pub(crate) fn spend_fuel(&mut self, steps: u64) -> bool {
        let Some(f) = self.fuel.as_mut() else {
            return true;
        };
        if *f < steps {
            *f = 0;
            return false;
        }
        *f -= steps;
        true
    }

    /// Give back steps taken from the step budget and not used: a spawned
    /// thread's share (`prim_spawn`), when it is joined or never ran.
    pub(crate) fn give_back_fuel(&mut self, steps: u64) {
        if let Some(f) = self.fuel.as_mut() {
            *f = f.saturating_add(steps);
        }
    }

    /// Stop at the next call once `interrupt::count()` differs from `n`.
    pub fn set_interrupts_seen(&mut self, n: u64) {
        self.interrupts_seen = n;
        self.update_gate();
    }

    pub fn interrupts_seen(&self) -> u64 {
        self.interrupts_seen
    }

    /// Whether the stop requests counted up to `now` (`interrupt::count()`,
    /// which differs from `interrupts_seen`) stop this program, and with
    /// what error: a signal stops every program (and is acknowledged
    /// here), an exit only the program whose runtime recorded it. `None`:
    /// another program of the process exited.
    pub(crate) fn stop_reason(&self, now: u64) -> Option<&'static str> {
        if crate::interrupt::signalled_between(self.interrupts_seen, now) {
            crate::interrupt::acknowledge(now);
            return Some("interrupted");
        }
        self.rt.exit_status().map(|_| "exit")
    }

    fn update_gate(&mut self) {
        self.fast_gate = if self.fuel.is_some() {
            u64::MAX
        } else {
            self.interrupts_seen
        };
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
            if !self.pure_tier {
                p.tier.disable();
            }
            if let Some(g) = p.inline_as {
                self.inlinable.insert(g, p.clone());
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
        match self.protos.get(code as usize).and_then(|p| p.as_ref()) {
            Some(p) => p.name.clone(),
            None => self
                .lazy_info(code as usize)
                .map_or_else(|| "procedure".into(), |p| p.name.clone()),
        }
    }

    pub fn show(&self, v: Value, readable: bool) -> String {
        let mut s = String::new();
        printer::print(v, readable, &mut s, &|c| self.proc_name(c));
        s
    }

    /// A value as an error message names it: `write` form, cut with `...`
    /// past about `SHOWN_IN_ERRORS` bytes.
    pub fn show_brief(&self, v: Value) -> String {
        let mut s = String::new();
        printer::print_brief(v, true, &mut s, &|c| self.proc_name(c), SHOWN_IN_ERRORS);
        s
    }

    /// A quoted datum as a value in the global region.
    pub fn datum_value(&mut self, d: &Datum) -> Result<Value, MemError> {
        self.datum_value_in(self.global_region, d)
    }

    /// The value of datum `d`, built in region `r` (`read`).
    pub fn datum_value_in(&mut self, r: Region, d: &Datum) -> Result<Value, MemError> {
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
                    Some(t) => self.datum_value_in(r, t)?,
                    None => Value::EMPTY,
                };
                for x in items.iter().rev() {
                    let v = self.datum_value_in(r, x)?;
                    out = omni_mem::alloc_pair(r, v, out)?;
                }
                out
            }
            DatumKind::Array(items) => {
                let vs = items
                    .iter()
                    .map(|x| self.datum_value_in(r, x))
                    .collect::<Result<Vec<_>, _>>()?;
                omni_mem::alloc_array_from(r, &vs)?
            }
            DatumKind::Dict(items) => {
                let d = omni_mem::alloc_dict(r)?;
                for kv in items.chunks(2) {
                    let k = self.datum_value_in(r, &kv[0])?;
                    let v = self.datum_value_in(r, &kv[1])?;
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

    /// Admit heap value `v` into destination `d` (the return and tail-call
    /// boundaries). A caller's scratch region that does not exist yet is
    /// not created for a value that may stay where it is (a global
    /// procedure passed on by a tail call, say): the barrier's decision is
    /// made on the rank reserved for it.
    #[inline(always)]
    fn admit_dst_heap(&mut self, d: Dst, v: Value) -> Result<(Value, Repair), MemError> {
        let r = match d {
            Dst::Region(r) => r,
            Dst::Scratch(i) => match self.scratch_stack.get(i) {
                Some(ScratchSlot {
                    region: Some(r), ..
                }) => *r,
                Some(ScratchSlot { rank, region: None }) if storable_below_rank(v, *rank) => {
                    return Ok((v, Repair::None));
                }
                _ => self.scratch_region(i),
            },
        };
        admit_into(r, v)
    }

    /// Whether heap value `v` may be returned into `d` as it is (built
    /// there, or in an older region): the return boundary's common case,
    /// decided in line; `admit_dst_heap` makes the same decision.
    #[inline(always)]
    fn dst_holds(&self, d: Dst, v: Value) -> bool {
        match d {
            Dst::Region(r) => storable_in(r, v),
            Dst::Scratch(i) => match self.scratch_stack.get(i) {
                Some(ScratchSlot {
                    region: Some(r), ..
                }) => storable_in(*r, v),
                Some(ScratchSlot { rank, region: None }) => storable_below_rank(v, *rank),
                None => false,
            },
        }
    }

    /// The region allocation target `t` names in this activation. The
    /// usual case, a destination that is already a region, is in line.
    #[inline]
    fn target(&mut self, t: Target, fr: &mut Frame) -> Region {
        match (t, fr.dst) {
            (Target::Dst, Dst::Region(r)) => return r,
            // A caller's scratch passed on as this call's destination,
            // once the caller has created it.
            (Target::Dst, Dst::Scratch(i)) => {
                if let Some(ScratchSlot {
                    region: Some(r), ..
                }) = self.scratch_stack.get(i)
                {
                    return *r;
                }
            }
            _ => {}
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
            Target::SlotsOf(k) => match store_region(self.stack[fr.base + k as usize]) {
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

    #[cold]
    fn note_global_growth(&mut self, span: Span, before: usize) {
        let now = self.global_region.bytes_allocated();
        if now > before {
            *self.global_sites.entry(span).or_default() += now - before;
        }
    }

    /// The retention-smell warning (docs/REGION_COALESCE_POLICY.md): the
    /// global region (with the slot regions of its arrays and dicts) holds
    /// at least 1 MiB, of which under a quarter is still reachable from
    /// globals and constants. Names the sites that put the most bytes in
    /// the global region itself.
    pub fn retention_warning(&self) -> Option<crate::Diagnostic> {
        const MIN: usize = 1 << 20;
        let in_slots = self.global_region.slot_region_bytes();
        let total = self.global_region.bytes_allocated() + in_slots;
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
        // Values in slot regions stay only if a read pinned them.
        let pinned = if in_slots * 100 >= total {
            format!(
                " ({} of it in slot regions of arrays, dicts and boxes, kept because values were read out of them before being replaced)",
                mib(in_slots)
            )
        } else {
            String::new()
        };
        let mut d = crate::Diagnostic {
            kind: "warning",
            message: format!(
                "retention smell: the global region holds {}{pinned} at exit but only {} of it is still reachable; \
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

    /// An assigned variable's value, read from its box (pinning the box's
    /// slot region if the value lies in it).
    fn unbox_var(&self, b: Value, span: Span) -> VmResult<Value> {
        var_value(box_get(b), span)
    }

    /// An assigned variable's value for a read that dies before the box's
    /// next store (`Node::BoxBorrow`): no pin.
    fn borrow_var(&self, b: Value, span: Span) -> VmResult<Value> {
        var_value(box_borrow(b), span)
    }

    /// The `define` boundary. A definition's value is built in its form's
    /// scratch region (compile.rs), which may also hold what computing it
    /// left behind. When H0 would merge that region into the global region
    /// (it holds `merge_threshold` bytes or more) but under half of it is
    /// reachable from the value, the value is copied instead, and the rest
    /// dies with the scratch: merged, it would stay until the program
    /// ends. Finding what is reachable is a walk of the value, once per
    /// definition, no dearer than the copy it may save.
    pub(crate) fn admit_define(&mut self, v: Value, span: Span, fr: &Frame) -> VmResult<Value> {
        let scratch = self.scratch_stack.get(fr.scratch).and_then(|s| s.region);
        if let (Some(r), true) = (scratch, v.is_heap()) {
            let total = r.bytes_allocated() + r.slot_region_bytes();
            if region_of(v).is_some_and(|q| q.same_as(r))
                && total >= omni_mem::merge_threshold()
                && omni_mem::reachable_bytes(&[v], r).saturating_mul(2) < total
            {
                let before = self.global_region.bytes_allocated();
                let v = omni_mem::transmigrate_younger(v, self.global_region)
                    .map_err(|e| mem_err(e, span))?;
                self.stats.global_repairs += 1;
                self.note_global_growth(span, before);
                return Ok(v);
            }
        }
        self.admit_global(v, span)
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
}

/// What a variable box held, or the error for a variable read before its
/// definition (`letrec`).
fn var_value(v: Option<Value>, span: Span) -> VmResult<Value> {
    match v {
        Some(v) if v != Value::UNDEFINED => Ok(v),
        Some(_) => Err(LispError::new("variable used before its definition", span)),
        None => Err(LispError::new("internal: variable box missing", span)),
    }
}
