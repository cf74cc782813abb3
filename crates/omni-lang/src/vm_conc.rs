//! The VM side of threads and channels: the primitives, the fresh-message
//! send (Option A) and the body of a spawned thread. The shared tables are
//! in `conc.rs`; the handoff itself is omni-mem's `Parcel`.

use std::sync::Arc;

use omni_mem::{
    alloc_array_from, array_items, closure_code, heap_stats, region_create_message, region_exit,
    Handoff, Parcel, Region, Value,
};

use crate::conc::{ConcError, Runtime, HANDLE_CHAN, HANDLE_THREAD};
use crate::ir::Node;
use crate::lazy_code::Batch;
use crate::reader::Span;
use crate::vm::{mem_err, Dst, Frame, LispError, Vm, VmResult, PRIM_BIT};

impl Vm {
    /// The error of a failed channel or thread operation. A deadlock that
    /// an interrupt or an exit caused (a peer thread stopped by it while
    /// this one waited) is reported as that stop, which it is.
    fn conc_err(&self, e: ConcError, op: &str, span: Span) -> Box<LispError> {
        let requests = crate::interrupt::count();
        if e == ConcError::Deadlock && requests != self.interrupts_seen() {
            if let Some(why) = self.stop_reason(requests) {
                return LispError::new(why, span);
            }
        }
        LispError::new(e.message(op), span)
    }

    fn handle_arg(&self, op: &str, kind: u8, v: Value, span: Span) -> VmResult<u32> {
        match v.as_handle() {
            Some((k, i)) if k == kind => Ok(i),
            _ => Err(LispError::new(
                format!(
                    "{op}: expected a {}, got {}",
                    if kind == HANDLE_CHAN {
                        "channel"
                    } else {
                        "thread"
                    },
                    self.show_brief(v)
                ),
                span,
            )),
        }
    }

    fn note_handoff(&mut self, how: Handoff) {
        match how {
            Handoff::Transfer => self.stats.sends_transfer += 1,
            Handoff::Copy => self.stats.sends_copy += 1,
            Handoff::Immediate => self.stats.sends_immediate += 1,
        }
    }

    /// `(chan)` / `(chan n)`.
    pub(crate) fn prim_chan(&mut self, a: &[Value], span: Span) -> VmResult<Value> {
        let cap = match a.first() {
            None => 0,
            Some(&n) => match n.as_fixnum() {
                Some(n) if n >= 0 => n as usize,
                _ => {
                    return Err(LispError::new(
                        format!(
                            "chan: capacity must be a non-negative integer, got {}",
                            self.show_brief(n)
                        ),
                        span,
                    ))
                }
            },
        };
        Ok(Value::handle(HANDLE_CHAN, self.rt.chan_new(cap)))
    }

    /// `(send c v)` of any value: Option B, copy into a fresh message region.
    pub(crate) fn prim_send(&mut self, c: Value, v: Value, span: Span) -> VmResult<Value> {
        let id = self.handle_arg("send", HANDLE_CHAN, c, span)?;
        let p = Parcel::copy(v).map_err(|e| mem_err(e, span))?;
        self.note_handoff(if v.is_heap() {
            Handoff::Copy
        } else {
            Handoff::Immediate
        });
        self.rt
            .send(id, p)
            .map_err(|e| self.conc_err(e, "send", span))?;
        Ok(Value::NOTHING)
    }

    /// `(send c <fresh expression>)`: the message is built in a message
    /// region that travels whole (Option A; omni-mem verifies it and falls
    /// back to a copy otherwise).
    pub(crate) fn send_fresh(
        &mut self,
        chan: &Node,
        msg: &Node,
        span: Span,
        fr: &mut Frame,
    ) -> VmResult<Value> {
        let c = self.eval(chan, fr)?;
        let id = self.handle_arg("send", HANDLE_CHAN, c, span)?;
        let r = region_create_message();
        if self.region_quota().is_some() {
            r.set_quota(self.region_quota());
        }
        let saved = self.msg_region.replace(r);
        let v = self.eval(msg, fr);
        self.msg_region = saved;
        let v = match v {
            Ok(v) => v,
            Err(e) => {
                region_exit(r);
                return Err(e);
            }
        };
        let (p, how) = Parcel::send_from(r, v).map_err(|e| mem_err(e, span))?;
        self.note_handoff(how);
        self.rt
            .send(id, p)
            .map_err(|e| self.conc_err(e, "send", span))?;
        Ok(Value::NOTHING)
    }

    /// `(recv c)`: the message's region is spliced into `dst`.
    pub(crate) fn prim_recv(&mut self, c: Value, dst: Region, span: Span) -> VmResult<Value> {
        let id = self.handle_arg("recv", HANDLE_CHAN, c, span)?;
        match self
            .rt
            .recv(id)
            .map_err(|e| self.conc_err(e, "recv", span))?
        {
            Some(p) => {
                self.stats.receives += 1;
                Ok(p.adopt(dst))
            }
            None => Ok(Value::NOTHING),
        }
    }

    pub(crate) fn prim_close(&mut self, c: Value, span: Span) -> VmResult<Value> {
        let id = self.handle_arg("close", HANDLE_CHAN, c, span)?;
        self.rt
            .close(id)
            .map_err(|e| self.conc_err(e, "close", span))?;
        Ok(Value::NOTHING)
    }

    /// `(join h)`: the thread's result is spliced into `dst`; its error is
    /// raised here, with its own backtrace.
    pub(crate) fn prim_join(&mut self, h: Value, dst: Region, span: Span) -> VmResult<Value> {
        let id = self.handle_arg("join", HANDLE_THREAD, h, span)?;
        let (outcome, fuel_left) = self
            .rt
            .join(id)
            .map_err(|e| self.conc_err(e, "join", span))?;
        self.give_back_fuel(fuel_left);
        match outcome {
            Ok(p) => Ok(p.adopt(dst)),
            Err(e) => {
                let at = match e.span {
                    Some(s) if s.line > 0 => {
                        format!(" (raised at line {}, column {})", s.line, s.col)
                    }
                    _ => String::new(),
                };
                let mut err =
                    LispError::new(format!("thread {id} failed: {}{at}", e.message), span);
                err.trace = e.trace;
                Err(err)
            }
        }
    }

    /// `(spawn thunk)`: copy the thunk and this thread's globals into one
    /// message region and start a thread that runs the thunk with those
    /// globals (compiling the program's code as it calls it).
    pub(crate) fn prim_spawn(&mut self, f: Value, span: Span) -> VmResult<Value> {
        let Some(code) = closure_code(f) else {
            return Err(LispError::new(
                format!("spawn: expected a procedure, got {}", self.show_brief(f)),
                span,
            ));
        };
        // The thunk is called with no arguments: say so here, not later
        // on the other thread.
        let takes_none = if code & PRIM_BIT != 0 {
            crate::builtins::Prim::from_index((code & !PRIM_BIT) as usize)
                .is_some_and(|p| p.arity().0 == 0)
        } else {
            match self.protos.get(code as usize).and_then(|p| p.as_ref()) {
                Some(p) => p.nparams == 0,
                None => self
                    .lazy_info(code as usize)
                    .is_some_and(|p| p.nparams == 0),
            }
        };
        if !takes_none {
            return Err(LispError::new(
                format!("spawn: {} must take no arguments", self.show_brief(f)),
                span,
            ));
        }
        // [thunk, gid, value, gid, value, ...]: globals a new VM would not
        // already hold (primitives it makes itself).
        let mut items = vec![f];
        for (g, &v) in self.globals.iter().enumerate() {
            if v == Value::UNDEFINED {
                continue;
            }
            let builtin = crate::builtins::prim_of_global(g)
                .is_some_and(|p| closure_code(v) == Some(PRIM_BIT | p as u64));
            if !builtin {
                items.push(Value::fixnum(g as i64).unwrap_or(Value::NOTHING));
                items.push(v);
            }
        }
        let r = region_create_message();
        let snapshot = match alloc_array_from(r, &items) {
            Ok(a) => a,
            Err(e) => {
                region_exit(r);
                return Err(mem_err(e, span));
            }
        };
        let (parcel, _) = Parcel::send_from(r, snapshot).map_err(|e| mem_err(e, span))?;
        // A spawned thread's own spawns pass on the batches it was given.
        let batches = if self.lazy_code.is_empty() {
            self.rt.batches()
        } else {
            self.lazy_code.clone()
        };
        let names = GlobalTable {
            names: self.global_names.clone(),
            ids: self.global_ids.clone(),
            boxed: self.global_boxed.clone(),
        };
        let rt = self.rt.clone();
        // The step budget bounds the program's calls on all its threads
        // together: the new thread takes half the steps this one has left,
        // and `join` gives back what it did not use (so a spawn followed by
        // a join costs the spawner only the steps the thread took). Halves
        // are decided here, at the spawn, so the split is deterministic.
        let fuel_share = self.fuel.map(|f| f / 2);
        // Half of what is left is always there to take.
        self.spend_fuel(fuel_share.unwrap_or(0));
        // The new thread gets the same other limits (the heap limit is per
        // thread in omni-mem, so it is passed on explicitly).
        let limits = (
            self.max_depth,
            fuel_share,
            self.region_quota(),
            omni_mem::heap_limit(),
            self.interrupts_seen(),
            self.pure_tier,
        );
        // A traced program traces its threads too, on one time axis.
        let trace_origin = omni_mem::trace_origin();
        let id = self
            .rt
            .spawn(move |id| {
                crate::worker_pool::run(Box::new(move || {
                    child_main(
                        rt,
                        id,
                        (batches, names),
                        parcel,
                        limits,
                        (span, trace_origin),
                    )
                }))
            })
            .map_err(|m| {
                // No thread ran: its share comes back.
                self.give_back_fuel(fuel_share.unwrap_or(0));
                LispError::new(m, span)
            })?;
        self.stats.threads_spawned += 1;
        Ok(Value::handle(HANDLE_THREAD, id))
    }
}

/// The spawner's global table: names by id, ids by name (both shared),
/// and which globals are boxed.
struct GlobalTable {
    names: Arc<Vec<String>>,
    ids: Arc<std::collections::HashMap<String, u32>>,
    boxed: Vec<bool>,
}

/// The body of a spawned thread: a VM of its own with the spawner's
/// global table, the program's code compiled form by form when first
/// called (lazy_code.rs), the spawner's globals adopted, the thunk run, its
/// result handed back as a parcel. Everything the thread allocated is
/// freed before it reports; its region events (when `trace_origin` is
/// given) are handed over before it is done. Runs as a `worker_pool` job:
/// true if the thread's heap is left clean for another job.
fn child_main(
    rt: Arc<Runtime>,
    id: u32,
    code: (Vec<Arc<Batch>>, GlobalTable),
    snapshot: Parcel,
    limits: (usize, Option<u64>, Option<usize>, Option<usize>, u64, bool),
    (spawn_site, trace_origin): (Span, Option<std::time::Instant>),
) -> bool {
    if let Some(origin) = trace_origin {
        omni_mem::trace_start_at(origin);
    }
    // The worker may have run other jobs: this job's counts are the
    // difference.
    let before = heap_stats();
    let run = std::panic::AssertUnwindSafe(|| {
        let (batches, table) = code;
        let mut vm = Vm::with_global_table(rt.clone(), table.names, table.ids, table.boxed);
        vm.record_batches = false;
        vm.max_depth = crate::depth_cap(limits.0);
        vm.set_fuel(limits.1);
        vm.set_region_quota(limits.2);
        omni_mem::set_heap_limit(limits.3);
        // An interrupt requested since the program started stops this
        // thread too.
        vm.set_interrupts_seen(limits.4);
        vm.pure_tier = limits.5;
        vm.lazy_code = batches;
        let outcome = run_thunk(&mut vm, snapshot, spawn_site);
        let stats = vm.stats;
        let fuel_left = vm.fuel.unwrap_or(0);
        vm.shutdown();
        (outcome, stats, fuel_left)
    });
    let (outcome, stats, fuel_left, panicked) = match std::panic::catch_unwind(run) {
        Ok((o, s, f)) => (o, s, f, false),
        Err(_) => (
            Err(Box::new(LispError {
                message: "internal error: the thread panicked".into(),
                span: None,
                trace: Vec::new(),
            })),
            Default::default(),
            0,
            true,
        ),
    };
    let after = heap_stats();
    let clean = !panicked && after.live_regions == 0 && after.live_bytes == 0;
    if clean {
        // The thread may wait for another job: what this one's peak
        // pooled goes back to the system, but a few slabs (thread exit
        // used to give back everything).
        omni_mem::trim_thread_pool(KEEP_SLABS);
    }
    // The counters `VmStats::add_thread_heap` sums are this job's; the
    // live figures are the thread's now, which are this job's leftovers
    // (a job starts only on a clean thread).
    let job = omni_mem::HeapStats {
        regions_created: after.regions_created - before.regions_created,
        transmigrated_bytes: after.transmigrated_bytes - before.transmigrated_bytes,
        ..after
    };
    rt.thread_stats(stats, job);
    if trace_origin.is_some() {
        rt.thread_trace(id, omni_mem::trace_stop());
    }
    rt.thread_done(id, outcome, fuel_left);
    clean
}

/// Wholly free 1 MiB slabs a spawned thread's worker keeps pooled for
/// its next job.
const KEEP_SLABS: usize = 4;

fn run_thunk(vm: &mut Vm, snapshot: Parcel, spawn_site: Span) -> crate::conc::Outcome {
    let items = array_items(snapshot.adopt(vm.global_region)).unwrap_or_default();
    let Some((&thunk, globals)) = items.split_first() else {
        return Err(LispError::new(
            "internal: empty spawn snapshot",
            Span::default(),
        ));
    };
    for pair in globals.chunks(2) {
        if let [g, v] = pair {
            if let Some(slot) = g
                .as_fixnum()
                .and_then(|g| usize::try_from(g).ok())
                .and_then(|g| vm.globals.get_mut(g))
            {
                *slot = *v;
            }
        }
    }
    // The result is built straight in a message region (destination
    // passing), so handing it back is usually a transfer.
    let out = region_create_message();
    let r = vm.apply(thunk, vec![], Dst::Region(out), spawn_site);
    match r {
        Ok(v) => Parcel::send_from(out, v)
            .map(|(p, _)| p)
            .map_err(|e| LispError::new(e.to_string(), Span::default())),
        Err(e) => {
            region_exit(out);
            Err(e)
        }
    }
}
