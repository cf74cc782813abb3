//! Calls: activations, the return and tail-call boundaries (escape
//! repair into `dst`), and procedure values that are primitives. The hot
//! path, a closure of exact arity, stays in `call_loop`; everything else
//! is out of line.

use super::pure::PureEnd;
use super::*;

impl Vm {
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
    pub(super) fn call_owning(
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
        // Where the running procedure was called: after a tail call, the
        // tail call's position (its errors, and the backtrace line of the
        // procedure that replaced the caller, point there).
        let mut span = span;
        // A tail call of the running closure itself (a loop) keeps its
        // code here instead of looking the callee up again.
        let mut again: Option<Rc<Proto>> = None;
        loop {
            let proto = match again.take() {
                Some(p) => p,
                // The hot path is a closure of exact arity: everything else
                // (primitives, rest lists, errors, limits) is out of line.
                None => match self.callee_proto(f, argc, span)? {
                    Ok(p) => {
                        if p.rest {
                            self.collect_rest(&p, argc, base, dst, span)?;
                        }
                        p
                    }
                    Err(op) => return self.call_prim_on_stack(op, argc, base, dst, span),
                },
            };
            // A procedure that only reads, calls and builds needs no
            // activation (vm/pure.rs).
            if proto.tier.try_now() {
                match self.run_pure(&proto, f, base, dst) {
                    PureEnd::Value(v) => return self.return_boundary(dst, v, span),
                    // The run's last committed tail call, made here as the
                    // activation would make it: through the tail-call
                    // boundary (no scratch slot: a run has none here).
                    PureEnd::Restart(at, args) => {
                        self.stack.truncate(base);
                        self.stack.extend_from_slice(&args);
                        let t = TailCall {
                            f: at.f,
                            argc: args.len(),
                            span: at.span,
                        };
                        f = self.tail_boundary(t, dst, base, None, None, iter_cur)?;
                        (argc, span) = (t.argc, t.span);
                        continue;
                    }
                    PureEnd::Fallback => {}
                }
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
                        // The result must live in dst before the scratch
                        // region goes away.
                        let out = self.return_boundary(dst, v, span);
                        self.pop_scratch(scratch);
                        if let Some(r) = fr.iter_next.take() {
                            region_exit(r);
                        }
                        return out;
                    }
                    Some(t) => {
                        let next = fr.iter_next.take();
                        if self.same_callee(&t, f, &proto, iter_cur) {
                            let end = IterEnd {
                                dst,
                                base,
                                scratch: Some(scratch),
                                next,
                            };
                            self.pass_arguments(t, end, iter_cur, None)?;
                            again = Some(proto);
                        } else {
                            f = self.tail_boundary(t, dst, base, Some(scratch), next, iter_cur)?;
                            argc = t.argc;
                        }
                        span = t.span;
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

    /// Whether tail call `t` calls `f`, the running closure (with `proto`),
    /// again with every check `callee_proto` makes passing as before: the
    /// arity is exact, the depth does not change, and no interrupt or step
    /// budget asks for the slow path. `f` needs no admission then: it was
    /// live before this activation began, so it is not in the scratch
    /// region the boundary exits; it must not be in this iteration's
    /// region either (a closure passed as loop state).
    #[inline(always)]
    fn same_callee(
        &self,
        t: &TailCall,
        f: Value,
        proto: &Proto,
        iter_cur: &Option<Region>,
    ) -> bool {
        t.f == f
            && t.argc == proto.nparams
            && !proto.rest
            && crate::interrupt::count() == self.fast_gate
            && !in_region(*iter_cur, f)
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
                    && self.depth < self.max_depth
                    && crate::stack_here() > self.stack_limit
                    && crate::interrupt::count() == self.fast_gate =>
            {
                Ok(Ok(p.clone()))
            }
            _ => self.callee_slow(code, argc, span).map(Ok),
        }
    }

    #[cold]
    #[inline(never)]
    fn stack_full(&self, span: Span) -> Box<LispError> {
        LispError::new(
            format!(
                "stack overflow: the stack is full after {} nested calls (their expressions nest deeply)",
                self.depth
            ),
            span,
        )
    }

    #[cold]
    #[inline(never)]
    fn not_a_procedure(&self, f: Value, span: Span) -> Box<LispError> {
        LispError::new(format!("not a procedure: {}", self.show_brief(f)), span)
    }

    /// `callee_proto` for procedure `code` when a check may fail (or a
    /// step budget is set, or an interrupt was requested): the checks, in
    /// order, with their errors.
    #[cold]
    #[inline(never)]
    fn callee_slow(&mut self, code: u64, argc: usize, span: Span) -> VmResult<Rc<Proto>> {
        let proto = match self.protos.get(code as usize).and_then(|p| p.clone()) {
            Some(p) => p,
            // A spawned thread compiles its spawner's code when first
            // called (lazy_code.rs).
            None => match self.compile_lazily(code as usize) {
                Ok(p) => p,
                Err(crate::lazy_code::LazyError::BudgetExhausted) => {
                    return Err(LispError::new("step budget exhausted", span))
                }
                Err(crate::lazy_code::LazyError::Unknown) => {
                    return Err(LispError::new("internal: unknown procedure", span))
                }
            },
        };
        let requests = crate::interrupt::count();
        if requests != self.interrupts_seen() {
            if let Some(why) = self.stop_reason(requests) {
                return Err(LispError::new(why, span));
            }
            // Another program of this process exited: this one goes on.
            self.set_interrupts_seen(requests);
        }
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
        if !self.spend_fuel(1) {
            return Err(LispError::new("step budget exhausted", span));
        }
        if self.depth >= self.max_depth {
            return Err(LispError::new(
                format!("stack overflow: more than {} nested calls", self.max_depth),
                span,
            ));
        }
        if crate::stack_here() <= self.stack_limit {
            return Err(self.stack_full(span));
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
            let rest = &self.stack[base + proto.nparams..base + argc];
            l = omni_mem::alloc_list(r, rest).map_err(|e| mem_err(e, span))?;
        }
        self.stack.truncate(base + proto.nparams);
        self.stack.push(l);
        Ok(())
    }

    /// Return boundary: a heap result not already storable in `dst` is
    /// admitted into it (`admit_return`).
    #[inline(always)]
    fn return_boundary(&mut self, dst: Dst, v: Value, span: Span) -> VmResult<Value> {
        if v.is_heap() && !self.dst_holds(dst, v) {
            self.admit_return(dst, v, span)
        } else {
            Ok(v)
        }
    }

    /// Return boundary for a heap result: admit it into `dst`, counting
    /// the repair.
    #[inline(never)]
    fn admit_return(&mut self, dst: Dst, v: Value, span: Span) -> VmResult<Value> {
        let (v, how) = self.admit_dst_heap(dst, v).map_err(|e| mem_err(e, span))?;
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
    /// new arguments slide down to `base` (`pass_arguments`). Returns the
    /// callee. A loop's call of itself takes `pass_arguments` alone
    /// (`same_callee`).
    ///
    /// Immediates (most loop arguments) are skipped before anything else
    /// and the slide is a plain loop (no `memmove` call for a few words).
    #[inline(never)]
    fn tail_boundary(
        &mut self,
        t: TailCall,
        dst: Dst,
        base: usize,
        scratch: Option<usize>,
        next: Option<Region>,
        iter_cur: &mut Option<Region>,
    ) -> VmResult<Value> {
        let end = IterEnd {
            dst,
            base,
            scratch,
            next,
        };
        let mut g = t.f;
        let mut failed = None;
        if g.is_heap() && !in_region(next, g) && !self.dst_holds(dst, g) {
            match self.admit_dst_heap(dst, g) {
                Ok((v, _)) => g = v,
                Err(e) => failed = Some(mem_err(e, t.span)),
            }
        }
        self.pass_arguments(t, end, iter_cur, failed)?;
        Ok(g)
    }

    /// The tail-call boundary's work on the arguments: each moves to dst
    /// (except one already in the next iteration's region `next`), then
    /// scratch and this iteration's region are exited and the new
    /// arguments slide down to `base`. `failed` is an admission error
    /// already met (reported once the regions are exited).
    #[inline(always)]
    fn pass_arguments(
        &mut self,
        t: TailCall,
        end: IterEnd,
        iter_cur: &mut Option<Region>,
        mut failed: Option<Box<LispError>>,
    ) -> VmResult<()> {
        let TailCall { argc, span, .. } = t;
        let IterEnd {
            dst,
            base,
            scratch,
            next,
        } = end;
        let top = self.stack.len();
        let first = top - argc;
        if failed.is_none() {
            for i in first..top {
                let x = self.stack[i];
                if !x.is_heap() || in_region(next, x) || self.dst_holds(dst, x) {
                    continue;
                }
                match self.admit_dst_heap(dst, x) {
                    Ok((v, _)) => self.stack[i] = v,
                    Err(e) => {
                        failed = Some(mem_err(e, span));
                        break;
                    }
                }
            }
        }
        if let Some(scratch) = scratch {
            self.pop_scratch(scratch);
        }
        if let Some(r) = iter_cur.take() {
            region_exit(r);
        }
        *iter_cur = next;
        if let Some(e) = failed {
            return Err(e);
        }
        for i in 0..argc {
            self.stack[base + i] = self.stack[first + i];
        }
        self.stack.truncate(base + argc);
        self.stats.tail_calls += 1;
        Ok(())
    }
}

/// An iteration's end, as the tail-call boundary needs it: the
/// activation's destination, its frame's base, its scratch slot (none for
/// a pure run's restart, which has no activation here), and the next
/// iteration's region (if a tail-call argument made it).
#[derive(Clone, Copy)]
struct IterEnd {
    dst: Dst,
    base: usize,
    scratch: Option<usize>,
    next: Option<Region>,
}

/// Whether heap value `x` lies in region `r` (if there is one).
#[inline(always)]
fn in_region(r: Option<Region>, x: Value) -> bool {
    match r {
        Some(r) => region_of(x).is_some_and(|q| q.same_as(r)),
        None => false,
    }
}
