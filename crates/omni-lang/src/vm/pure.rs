//! The pure tier. A procedure whose body only reads, calls and builds
//! (fixnum arithmetic and comparisons, pair reads, `length`, type and
//! identity tests, locals, captures, globals and constants, `cons`, `list`
//! and closures where CTRR puts them, calls of procedures like it:
//! `pure_code.rs`), and stores only into arrays, dicts and the boxes of
//! assigned variables, needs little of
//! an activation's region work: no scratch slot, no reserved ranks, no
//! repair at its returns and tail calls. Such a call runs its register code here,
//! on the value stack. What it builds in its destination goes where the
//! general path would put it: the destination of the call the run began
//! with, passed down through calls and tail calls in `dst`, or the scratch
//! region of the caller whose scratch is the callee's destination. What it
//! builds in its own scratch goes to a region made at the first such build
//! on a new rank, and exited when the procedure returns or makes a tail
//! call, after a check that no outgoing value (result, arguments, callee)
//! is in it (else the run falls back: the general path repairs). The run's
//! value goes to the general call's return boundary, which admits it into
//! the caller's `dst` as for any call.
//!
//! Each call and tail call of a run takes a step of the step budget, as on
//! the general path. When something does not apply (an operand of another
//! kind, an overflow, an error, a callee that is not pure, the depth
//! limit, an interrupt, the end of the step budget) the run *falls back*:
//! it is abandoned, and the general path runs the call again from its
//! start. Nothing observable was changed, so the second run sees what the
//! first saw and does all the general path does, errors and their
//! backtraces included. Its scratch regions are exited.
//!
//! Stores keep that so (`Run::store`): each goes through the general
//! path's store helper and logs what it replaced, and a run that falls
//! back puts it all back, newest first, before the general path runs.
//! While anything is logged the thread holds slot-region compaction, so
//! no replaced value is freed. At a tail call made at the run's first
//! depth, once `COMMIT_AT` stores are logged, the run commits them
//! (`Run::commit`): the log goes, due compactions run, and from then on a
//! fallback hands the general path that tail call (`PureEnd::Restart`)
//! instead of the whole call, since what came before it is done for good.
//!
//! The traces a run can leave: objects it built, unreachable in the
//! destination until that region dies; a field younger
//! than the destination that a constructor's barrier moved there (a move
//! keeps identity: the rerun reads the same object); a slot region pinned
//! by a read through a moved original, as the general path's read pins it;
//! after stores put back, the copies their repairs made, unreachable in the
//! container's regions, and the slot-region counts their stores added.
//! The procedure whose code met the obstacle, or after a limit
//! (`Fallback::Limit`) the one the run started from, is tried again only
//! after calls on the general path whose number doubles with each of its
//! fallbacks (`ir::TierState`): an obstacle that recurs at every call
//! costs a few retries, one that came once (a float, an overflow, a callee
//! that fell back) costs a few calls on the general path, and a rerun of a
//! deep recursion that fell back at its limit retries at exponentially
//! spaced levels, not at every one (which would take quadratic time).

use super::eval::{fix_apply, fixop, unary_fast_path};
use super::*;
use crate::ir::FixOp;
use crate::pure_code::{Op, Site, Src, INLINE_SELF, NO_DEFAULT};

/// Why a pure run stops.
#[derive(Clone, Copy)]
enum Fallback<'a> {
    /// What the code of this procedure met does not apply here.
    Here(&'a Proto),
    /// The depth limit, the stack, an interrupt, the step budget, or a
    /// build reached where the run may not build: not the code's fault,
    /// so only the procedure the run began with waits before it is tried
    /// again.
    Limit,
}

type Pure<'a, T> = Result<T, Fallback<'a>>;

/// A pure run: the VM read-only, and the value stack taken from it for
/// the run (so register accesses are plain slice indexing, with no
/// reloads through the VM), with the counts the run adds.
/// (`BUDGET`: a step budget is counted; a run without one is an instance
/// of its own, whose calls make no budget test.)
struct Run<'a, const BUDGET: bool> {
    vm: &'a Vm,
    stack: Vec<Value>,
    depth: usize,
    calls: u64,
    tail_calls: u64,
    home: Home,
    /// The steps of the step budget (`Vm::set_fuel`) left when the run
    /// began, `u64::MAX` without one: each call and tail call takes a step,
    /// as on the general path, so `calls` may not pass it (the call the
    /// run begins with, counted in `calls`, was stepped by the general
    /// path).
    budget: u64,
    /// The scratch regions of the run's procedures that are still in use,
    /// oldest first (`Run::scratch`), and how many it made.
    scratches: Vec<Region>,
    scratches_made: u64,
    /// What the run's stores replaced, oldest first, to be put back if the
    /// run falls back (`Run::store`); and whether the run holds slot-region
    /// compaction (from its first store to its end).
    undo: Vec<Undo>,
    held: bool,
    /// Where the general path takes over if the run falls back after it
    /// committed stores (`Run::commit`): a tail call of the run's first
    /// procedure, its arguments in `restart_args`.
    restart: Option<Restart>,
    restart_args: Vec<Value>,
    /// The VM's depth when the run began: a tail call made at this depth
    /// is one of the procedure the run began with (or of those that
    /// replaced it), where the run may commit.
    root_depth: usize,
    /// The calls running in their caller's `exec` (`SelfFrame`), oldest
    /// first, and how many such calls the run made.
    frames: Vec<SelfFrame>,
    self_calls: u64,
    /// What the run's stores into pairs and builds in a pair's region
    /// (`Op::PairSet`, `Op::BuildAt`) added to the global
    /// region, by site: the VM adds it to its own count when the run ends,
    /// whether or not it fell back (what they copied there stays).
    global_growth: Vec<(Span, usize)>,
    /// The VM's limits, which the run does not change, kept at hand.
    max_depth: usize,
    stack_limit: usize,
    interrupts_seen: u64,
}

/// A call of the running procedure by itself that runs in the caller's
/// `exec` loop instead of a nested `exec` (`Run::exec`): its frame starts
/// at register `start` of the caller's, whose frame (at `base`) resumes at
/// `pc` with the result in `start`. `depth`: how much deeper it ran.
struct SelfFrame {
    base: usize,
    pc: u32,
    start: u32,
    depth: u32,
}

/// Where a run builds (`cons`, `list`): the destination of the call it
/// began with. A caller's scratch region that does not exist yet is made
/// at the first build, at the rank its activation reserved, as the general
/// path makes it, and handed to its slot when the run ends.
#[derive(Clone, Copy)]
enum Home {
    Region(Region),
    Unmade { slot: usize, rank: u64 },
    Made { slot: usize, region: Region },
}

impl Vm {
    /// Run pure procedure `proto` (closure `f`) on its arguments at
    /// `base..base + nparams`: its value, or after a fallback the tail call
    /// the general path makes next (`PureEnd::Restart`, after the run
    /// committed stores) or the call itself again (`PureEnd::Fallback`; the
    /// stack is as it was).
    pub(super) fn run_pure(
        &mut self,
        proto: &Rc<Proto>,
        f: Value,
        base: usize,
        dst: Dst,
    ) -> PureEnd {
        if crate::interrupt::count() != self.interrupts_seen {
            return PureEnd::Fallback;
        }
        let home = match dst {
            Dst::Region(r) => Home::Region(r),
            Dst::Scratch(i) => match self.scratch_stack.get(i) {
                Some(ScratchSlot {
                    region: Some(r), ..
                }) => Home::Region(*r),
                Some(ScratchSlot { rank, region: None }) => Home::Unmade {
                    slot: i,
                    rank: *rank,
                },
                None => return PureEnd::Fallback,
            },
        };
        let mut stack = std::mem::take(&mut self.stack);
        // The run works on a copy of the arguments: a tail call overwrites
        // its frame, and a fallback needs them as they were.
        let top = stack.len();
        for i in base..base + proto.nparams {
            let v = stack[i];
            stack.push(v);
        }
        let (r, mut stack, (calls, tail_calls, scratches, self_calls), home, growth) =
            match self.fuel {
                None => self.pure_run::<false>(proto, f, stack, top, home),
                Some(_) => self.pure_run::<true>(proto, f, stack, top, home),
            };
        stack.truncate(top);
        self.stack = stack;
        for (span, bytes) in growth {
            *self.global_sites.entry(span).or_default() += bytes;
        }
        if let Home::Made { slot, region } = home {
            self.scratch_stack[slot].region = Some(region);
        }
        self.stats.scratch_regions += scratches;
        // The steps and calls of what the run did for good: all of it, or
        // what came before its restart (after a fallback the general path
        // takes the other steps again). The first call's step was the
        // general path's.
        let (done_calls, done_tail_calls) = match &r {
            PureEnd::Value(_) => (calls, tail_calls),
            PureEnd::Restart(at, _) => (at.calls, at.tail_calls),
            PureEnd::Fallback => (0, 0),
        };
        if let Some(f) = self.fuel.as_mut() {
            *f = f.saturating_sub(done_calls.saturating_sub(1));
        }
        self.stats.calls += done_calls;
        self.stats.tail_calls += done_tail_calls;
        match r {
            PureEnd::Value(_) => {
                self.stats.pure_runs += 1;
                self.stats.pure_self_calls += self_calls;
            }
            _ => self.stats.pure_fallbacks += 1,
        }
        r
    }

    /// The run itself, on the stack taken from the VM: its result (none
    /// after a fallback, whose procedure then waits before it is tried
    /// again), the stack, what it counted, where it built.
    fn pure_run<const BUDGET: bool>(
        &self,
        proto: &Proto,
        f: Value,
        stack: Vec<Value>,
        top: usize,
        home: Home,
    ) -> (PureEnd, Vec<Value>, RunCounts, Home, Vec<(Span, usize)>) {
        let mut run = Run::<BUDGET> {
            vm: self,
            stack,
            depth: self.depth,
            calls: 0,
            tail_calls: 0,
            home,
            budget: self.fuel.unwrap_or(u64::MAX),
            scratches: Vec::new(),
            scratches_made: 0,
            undo: Vec::new(),
            held: false,
            restart: None,
            restart_args: Vec::new(),
            frames: Vec::new(),
            self_calls: 0,
            root_depth: self.depth,
            global_growth: Vec::new(),
            max_depth: self.max_depth,
            stack_limit: self.stack_limit,
            interrupts_seen: self.interrupts_seen,
        };
        let r = match run.exec(proto, f, top, Dest::Home) {
            Ok(v) => Some(v),
            Err(Fallback::Here(p)) => {
                p.tier.fell_back();
                None
            }
            Err(Fallback::Limit) => {
                proto.tier.fell_back();
                None
            }
        };
        if run.held {
            run.end_stores(r.is_some());
        }
        let end = match (r, run.restart) {
            (Some(v), _) => PureEnd::Value(v),
            (None, Some(at)) => PureEnd::Restart(at, std::mem::take(&mut run.restart_args)),
            (None, None) => PureEnd::Fallback,
        };
        // An abandoned run's scratch regions, youngest first.
        while let Some(s) = run.scratches.pop() {
            region_exit(s);
        }
        (
            end,
            run.stack,
            (
                run.calls,
                run.tail_calls,
                run.scratches_made,
                run.self_calls,
            ),
            run.home,
            run.global_growth,
        )
    }
}

/// A run's calls, tail calls, scratch regions made and calls run in their
/// caller's `exec` (`SelfFrame`).
type RunCounts = (u64, u64, u64, u64);

/// How a pure run ended (`Vm::run_pure`).
pub(super) enum PureEnd {
    /// Its value.
    Value(Value),
    /// A fallback after the run committed stores: the general path makes
    /// the run's last committed tail call (`Restart`, on these arguments)
    /// and goes on from there, as the call's own activation would.
    Restart(Restart, Vec<Value>),
    /// A fallback before any commit: the general path runs the call again.
    Fallback,
}

/// A tail call made where a run committed (`Run::commit`): the closure
/// called, the call's position, and the run's calls and tail calls before
/// it.
#[derive(Clone, Copy)]
pub(super) struct Restart {
    pub(super) f: Value,
    pub(super) span: Span,
    calls: u64,
    tail_calls: u64,
}

/// The global region's size before a build in a pair's region or a pair
/// store at `span`, for `note_growth` after it.
#[inline(always)]
fn global_bytes(vm: &Vm, span: Span) -> (Span, usize) {
    (span, vm.global_region.bytes_allocated())
}

/// Count what the global region grew by since `global_bytes` at its site
/// into `growth`, as the general path counts it (`Vm::retention_warning`).
fn note_growth(growth: &mut Vec<(Span, usize)>, vm: &Vm, (span, before): (Span, usize)) {
    let grown = vm.global_region.bytes_allocated().saturating_sub(before);
    if grown == 0 {
        return;
    }
    match growth.last_mut() {
        Some((s, n)) if *s == span => *n += grown,
        _ => growth.push((span, grown)),
    }
}

/// How many stores a run logs before it commits them at its next tail
/// call at its first depth (`Run::commit`): fewer commits cost less, and
/// more stores logged hold more replaced values until then.
const COMMIT_AT: usize = 64;

/// A store a run makes (`Run::store`).
#[derive(Clone, Copy)]
enum Store {
    Array { arr: Value, i: usize, x: Value },
    Dict { d: Value, key: Value, x: Value },
    Box { b: Value, x: Value },
}

/// What a run's store replaced, to put back: an array element, a dict
/// entry's value, (`old: None`) a dict entry the store added, a box's
/// value, or a pair's car or cdr. Every
/// value here outlives the run: arrays, dicts and boxes are never made by
/// a run (its code builds only pairs, lists and closures), a pair is
/// logged only outside the run's scratch regions (`Run::store_pair`:
/// every other region it can lie in was made before the run or is the
/// run's home, which outlives it), `old` was held by the
/// container, and `key` is the dict's own copy of the key; and nothing
/// here is freed while the run holds compaction.
#[derive(Clone, Copy)]
enum Undo {
    Array {
        arr: Value,
        i: usize,
        old: Value,
    },
    Dict {
        d: Value,
        key: Value,
        old: Option<Value>,
    },
    Box {
        b: Value,
        old: Value,
    },
    Pair {
        p: Value,
        cdr: bool,
        old: Value,
    },
}

impl Undo {
    fn container(self) -> Value {
        match self {
            Undo::Array { arr, .. } => arr,
            Undo::Dict { d, .. } => d,
            Undo::Box { b, .. } => b,
            Undo::Pair { p, .. } => p,
        }
    }
}

/// The most stores a run logs: a run that would make more falls back
/// (`Fallback::Limit`), so the procedure it began with runs on the general
/// path, and the stores are made by the runs of its callees, each its own.
const MAX_UNDO: usize = 4096;

/// Where a procedure's code builds what CTRR sends to its destination.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dest {
    /// The run's home: the destination of the call the run began with.
    Home,
    /// Its caller's scratch region: `Run::scratches[i]`.
    Scratch(u32),
    /// Nowhere: called where its destination would be its caller's
    /// scratch region, by code that made none (the callee was not to
    /// build); building there is the general path's work.
    None,
}

impl<'a, const BUDGET: bool> Run<'a, BUDGET> {
    /// The region code with destination `dest` builds in: the run's home
    /// in line, the rest out of line (the run's loop keeps its registers).
    #[inline(always)]
    fn dst(&mut self, dest: Dest) -> Pure<'a, Region> {
        match (dest, self.home) {
            (Dest::Home, Home::Region(region) | Home::Made { region, .. }) => Ok(region),
            _ => self.dst_slow(dest),
        }
    }

    #[inline(never)]
    fn dst_slow(&mut self, dest: Dest) -> Pure<'a, Region> {
        match (dest, self.home) {
            (Dest::Home, Home::Unmade { slot, rank }) => {
                let region = self.vm.new_region_at(rank);
                self.home = Home::Made { slot, region };
                Ok(region)
            }
            (Dest::Home, Home::Region(region) | Home::Made { region, .. }) => Ok(region),
            (Dest::Scratch(i), _) => self
                .scratches
                .get(i as usize)
                .copied()
                .ok_or(Fallback::Limit),
            (Dest::None, _) => Err(Fallback::Limit),
        }
    }

    /// The running procedure's scratch region (`slot`), made at its first
    /// use on a new rank: younger than every region the run reads, older
    /// than any its callees make.
    /// (`slot` holds its index in `scratches`, where it stays until the
    /// procedure leaves it: its callees' end before.)
    #[inline(never)]
    fn scratch(&mut self, slot: &mut Option<u32>) -> Pure<'a, u32> {
        match *slot {
            Some(i) => Ok(i),
            None => {
                let i = u32::try_from(self.scratches.len()).map_err(|_| Fallback::Limit)?;
                self.scratches
                    .push(self.vm.new_region_at(omni_mem::reserve_rank()));
                self.scratches_made += 1;
                *slot = Some(i);
                Ok(i)
            }
        }
    }

    /// The running procedure's scratch region, made if need be.
    fn scratch_region(&mut self, slot: &mut Option<u32>) -> Pure<'a, Region> {
        let i = self.scratch(slot)?;
        self.dst(Dest::Scratch(i))
    }

    /// Where an object goes: the running procedure's scratch region
    /// (`slot`, `in_scratch`), else its destination `dest`.
    fn built_in(
        &mut self,
        in_scratch: bool,
        dest: Dest,
        slot: &mut Option<u32>,
    ) -> Pure<'a, Region> {
        match in_scratch {
            true => self.scratch_region(slot),
            false => self.dst(dest),
        }
    }

    /// Exit the running procedure's scratch region (`slot`), if it made
    /// one, as it returns `out` or makes a tail call of `out` on the
    /// `argc` arguments at `base`: none of them may be in it (else the run
    /// falls back, and the general path repairs).
    #[inline(always)]
    fn leave(
        &mut self,
        slot: &mut Option<u32>,
        (base, argc): (usize, u32),
        out: Value,
    ) -> Pure<'a, ()> {
        match slot.take() {
            None => Ok(()),
            Some(_) => self.exit_scratch((base, argc), out),
        }
    }

    #[inline(never)]
    fn exit_scratch(&mut self, (base, argc): (usize, u32), out: Value) -> Pure<'a, ()> {
        // Scratch regions end youngest first: it is the last.
        let Some(&r) = self.scratches.last() else {
            return Err(Fallback::Limit);
        };
        // (Nothing younger is alive: a callee's scratch region ends
        // before it returns.)
        let rank = r.rank();
        let Some(args) = self.stack.get(base..base + argc as usize) else {
            return Err(Fallback::Limit);
        };
        if !(storable_below_rank(out, rank) && args.iter().all(|&v| storable_below_rank(v, rank))) {
            // (Still in `scratches`: the run's end exits it.)
            return Err(Fallback::Limit);
        }
        self.scratches.pop();
        region_exit(r);
        Ok(())
    }

    /// Make store `s` through the store helper (the general path's
    /// `array_set` and `dict_set`, barrier and repairs included), logging
    /// what it replaces. The first store of a run holds slot-region
    /// compaction until the run ends (`end_stores`), so that what a store
    /// replaced stays where it is and can be put back. Not an array or a
    /// dict, an index out of range, or an error of the store helper falls
    /// back with nothing stored (the general path reports it).
    #[inline(never)]
    fn store(&mut self, s: Store, here: Fallback<'a>) -> Pure<'a, ()> {
        self.before_store()?;
        let entry = match s {
            Store::Array { arr, i, x } => {
                let old = omni_mem::array_borrow(arr, i).ok_or(here)?;
                match omni_mem::array_set(arr, i, x) {
                    Ok(true) => Undo::Array { arr, i, old },
                    _ => return Err(here),
                }
            }
            Store::Dict { d, key, x } => {
                // (Not a dict: `dict_set` says so, and nothing is stored.)
                let old = omni_mem::dict_borrow(d, key);
                if !matches!(omni_mem::dict_set(d, key, x), Ok(true)) {
                    return Err(here);
                }
                let key = omni_mem::dict_stored_key(d, key).ok_or(here)?;
                Undo::Dict { d, key, old }
            }
            Store::Box { b, x } => {
                let old = omni_mem::box_borrow(b).ok_or(here)?;
                match omni_mem::box_set(b, x) {
                    Ok(true) => Undo::Box { b, old },
                    _ => return Err(here),
                }
            }
        };
        self.undo.push(entry);
        Ok(())
    }

    /// `Op::BuildAt` in the frame at `base`: the pair or list built in
    /// the region of the pair in register `c` (`store_region`, which for
    /// a pair is the region it lies in, after any move), and what it adds
    /// to the global region counted at its site. Out of the run's loop.
    #[inline(never)]
    fn build_at(&mut self, op: &Op, base: usize) -> Option<Value> {
        let Op::BuildAt {
            list,
            a,
            b,
            c,
            span,
            ..
        } = *op
        else {
            return None;
        };
        let reg = |i: u32| self.stack.get(base + i as usize).copied();
        let r = omni_mem::store_region(reg(c)?)?;
        let before = global_bytes(self.vm, span);
        let v = match list {
            false => omni_mem::alloc_pair(r, reg(a)?, reg(b)?).ok(),
            true => {
                let items = base + a as usize..base + (a + b) as usize;
                omni_mem::alloc_list(r, self.stack.get(items)?).ok()
            }
        };
        note_growth(&mut self.global_growth, self.vm, before);
        v
    }

    /// What every store does first: a run with a full log falls back (a
    /// limit), and the first store holds slot-region compaction.
    #[inline(always)]
    fn before_store(&mut self) -> Pure<'a, ()> {
        if self.undo.len() >= MAX_UNDO {
            return Err(Fallback::Limit);
        }
        if !self.held {
            omni_mem::hold_compaction();
            self.held = true;
        }
        Ok(())
    }

    /// `set-car!` (`cdr` false) or `set-cdr!` of `p` to `x` at `span`, as
    /// `store` makes the others (apart from it, so that theirs keeps its
    /// code): through the store helper, logged unless the pair lies in
    /// one of the run's scratch regions, and what it adds to the global
    /// region counted at its site. Not a pair falls back with nothing
    /// stored.
    #[inline(never)]
    fn store_pair(
        &mut self,
        (p, cdr, x): (Value, bool, Value),
        span: Span,
        here: Fallback<'a>,
    ) -> Pure<'a, ()> {
        self.before_store()?;
        let before = global_bytes(self.vm, span);
        let (old, stored) = match cdr {
            false => (omni_mem::car(p), omni_mem::set_car(p, x)),
            true => (omni_mem::cdr(p), omni_mem::set_cdr(p, x)),
        };
        let (Some(old), Ok(true)) = (old, stored) else {
            return Err(here);
        };
        note_growth(&mut self.global_growth, self.vm, before);
        // A pair in one of the run's scratch regions is not logged: the
        // region may end before the run does (a put-back would write into
        // freed memory), and after a fallback nothing reaches it (a store
        // of it elsewhere copied it out).
        let home = omni_mem::region_of(omni_mem::resolve(p));
        if !home.is_some_and(|r| self.scratches.contains(&r)) {
            self.undo.push(Undo::Pair { p, cdr, old });
        }
        Ok(())
    }

    /// The end of a run that stored: put back what its stores replaced,
    /// newest first, if it fell back (`ok` false), so that the general
    /// path's rerun finds every container as the run did; release
    /// compaction; and if it did not fall back, compact each container it
    /// stored into that is due, as its last store would have. (A
    /// compaction that fails leaves the slot region as it was: the next
    /// store tries again.)
    #[cold]
    fn end_stores(&mut self, ok: bool) {
        if !ok {
            while let Some(u) = self.undo.pop() {
                // Each put-back stores a value the container held, which
                // the barrier admits as it is.
                let _ = match u {
                    Undo::Array { arr, i, old } => omni_mem::array_set(arr, i, old),
                    Undo::Dict {
                        d,
                        key,
                        old: Some(old),
                    } => omni_mem::dict_set(d, key, old),
                    Undo::Dict { d, key, old: None } => Ok(omni_mem::dict_remove(d, key)),
                    Undo::Box { b, old } => omni_mem::box_set(b, old),
                    Undo::Pair { p, cdr: false, old } => omni_mem::set_car(p, old),
                    Undo::Pair { p, cdr: true, old } => omni_mem::set_cdr(p, old),
                };
            }
        }
        omni_mem::release_compaction();
        self.held = false;
        let mut last = Value::NOTHING;
        for u in self.undo.drain(..) {
            let c = u.container();
            if !c.is(last) {
                let _ = omni_mem::compact_if_due(c);
                last = c;
            }
        }
    }

    /// Commit the stores logged so far, at a tail call of `f` made at the
    /// run's first depth, its `argc` arguments at `base`: they are not put
    /// back any more, so a later fallback may not run the run's first call
    /// again; the general path makes this tail call instead
    /// (`PureEnd::Restart`), which is what the call's activation does next
    /// on either path. (At that depth no register of the run is live but
    /// the arguments, and none of them points into a slot region the
    /// compactions may free: a value built there was stored at once, and a
    /// read that hands one out pins its region.)
    #[cold]
    #[inline(never)]
    fn commit(&mut self, f: Value, (base, argc): (usize, u32), span: Span) {
        self.end_stores(true);
        self.restart_args.clear();
        let args = self.stack.get(base..base + argc as usize).unwrap_or(&[]);
        self.restart_args.extend_from_slice(args);
        self.restart = Some(Restart {
            f,
            span,
            calls: self.calls,
            tail_calls: self.tail_calls,
        });
    }

    /// The end of an iteration of a named-`let` loop that runs in its
    /// caller's frame (`Op::LetLoop`, its arguments in place at `off`),
    /// as the loop procedure's tail call of itself ends one: its scratch
    /// region (the frame's, which no code before the loop's arguments
    /// made: `pure_code::Compiler::named_loop`) exited,
    /// and at the run's first depth, once `COMMIT_AT` stores are logged, a
    /// commit whose restart's callee is a closure of the loop, made from
    /// its captures (after its slots) in the destination, where the loop's
    /// closure would have been built (else the run falls back).
    #[inline(never)]
    fn loop_end(
        &mut self,
        op: &Op,
        base: usize,
        scratch: &mut Option<u32>,
        dest: Dest,
    ) -> Pure<'a, ()> {
        let Op::LetLoop {
            off,
            argc,
            proto: id,
            ncaps,
            span,
            ..
        } = *op
        else {
            return Err(Fallback::Limit);
        };
        let at = base + off as usize;
        self.leave(scratch, (at, argc), Value::NOTHING)?;
        if self.undo.len() < COMMIT_AT || self.depth != self.root_depth {
            return Ok(());
        }
        let p = match self.vm.protos.get(id as usize) {
            Some(Some(p)) => p,
            _ => return Err(Fallback::Limit),
        };
        let r = self.dst(dest)?;
        let caps_at = at + p.nslots;
        let caps = self
            .stack
            .get(caps_at..caps_at + ncaps as usize)
            .ok_or(Fallback::Limit)?;
        let f = alloc_closure(r, u64::from(id), caps).map_err(|_| Fallback::Limit)?;
        self.commit(f, (at, argc), span);
        Ok(())
    }

    /// A call that `running` (the closure and its code) makes of `f` on
    /// the `argc` arguments at `base`: in its destination `dest`
    /// (`in_dst`), else in its scratch region (`scratch`); `site` says how
    /// much deeper the callee runs and whether the call counts as a tail
    /// call.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn nested(
        &mut self,
        f: Value,
        (argc, site): (u32, Site),
        running: (Value, &'a Proto),
        base: usize,
        (in_dst, dest): (bool, Dest),
        scratch: &mut Option<u32>,
    ) -> Pure<'a, Value> {
        let may_build = !in_dst || !matches!(dest, Dest::None);
        let p = callee(self.vm, f, argc, running, may_build)?;
        let dest = match in_dst {
            true => dest,
            false if p.pure_code.as_ref().is_some_and(|c| c.builds) => {
                Dest::Scratch(self.scratch(scratch)?)
            }
            false => Dest::None,
        };
        self.tail_calls += u64::from(site.tail);
        self.depth += site.depth();
        let v = self.exec(p, f, base, dest)?;
        self.depth -= site.depth();
        Ok(v)
    }

    /// A call: `f`'s code (`proto`) on the arguments at `base`, building
    /// in `dest`, its tail calls made in place. The stack is not shortened
    /// on return: the caller's registers may lie above `base` (`run_pure`
    /// cuts it back at the end).
    fn exec(
        &mut self,
        mut proto: &'a Proto,
        mut closure: Value,
        mut base: usize,
        dest: Dest,
    ) -> Pure<'a, Value> {
        // The self-calls above this many frames are this `exec`'s.
        let floor = self.frames.len();
        // Each pass is the entry of a procedure: the call's, then each
        // tail call's.
        loop {
            let here = Fallback::Here(proto);
            let Some(code) = proto.pure_code.as_ref() else {
                return Err(here);
            };
            if self.depth >= self.max_depth
                || crate::stack_here() <= self.stack_limit
                // (A stop request since the ones the VM has seen.)
                || crate::interrupt::count() != self.interrupts_seen
                || (BUDGET && self.calls > self.budget)
            {
                return Err(Fallback::Limit);
            }
            let nregs = code.nregs as usize;
            if self.stack.len() < base + nregs {
                self.stack.resize(base + nregs, Value::UNDEFINED);
            }
            self.calls += 1;
            let ops = &code.ops[..];
            let mut pc = 0;
            // This procedure's scratch region, once made.
            let mut scratch: Option<u32> = None;
            let mut regs = &mut self.stack[base..base + nregs];
            macro_rules! src {
                ($s:expr) => {
                    match $s {
                        Src::Reg(r) => regs[r as usize],
                        Src::Val(v) => v,
                    }
                };
            }
            // An inlined body's entry: if `is_callee` (the body is the
            // callee `f`'s) and the entry's limits, as a call's (`exec`),
            // allow it, the call's step, and the body next (its calls are a
            // level deeper: `Site`); else the call, its result to `start`,
            // and a jump past the body.
            // (The call's operands are read only where it is made.)
            macro_rules! inline_entry {
                ($is_callee:expr, $f:expr, $level:expr, $op:expr) => {
                    if $is_callee
                        && self.depth + usize::from($level) < self.max_depth
                        && crate::interrupt::count() == self.interrupts_seen
                        && (!BUDGET || self.calls <= self.budget)
                    {
                        self.calls += 1;
                    } else {
                        let (Op::Inline {
                            start,
                            argc,
                            in_dst,
                            to,
                            ..
                        }
                        | Op::InlineOther {
                            start,
                            argc,
                            in_dst,
                            to,
                            ..
                        }) = *$op
                        else {
                            return Err(here);
                        };
                        let at = base + start as usize;
                        let d = (in_dst, dest);
                        let site = Site {
                            levels: $level - 1,
                            tail: false,
                        };
                        let v =
                            self.nested($f, (argc, site), (closure, proto), at, d, &mut scratch)?;
                        regs = &mut self.stack[base..base + nregs];
                        regs[start as usize] = v;
                        pc = to as usize;
                    }
                };
            }
            // A loop's jump back (`InlineLoop`, `LetLoop`): the interrupt
            // check and the step budget, as a tail call's; and its
            // arguments in place (`pure_peephole::loop_moves`): code that
            // had them elsewhere would be the general path's to run.
            macro_rules! loop_check {
                ($off:expr, $start:expr) => {
                    if crate::interrupt::count() != self.interrupts_seen
                        || (BUDGET && self.calls > self.budget)
                    {
                        return Err(Fallback::Limit);
                    }
                    if $start != $off {
                        return Err(here);
                    }
                };
            }
            // Whether a call of `f` on `argc` arguments (`in_dst`: with
            // the caller's destination as its own) may run in this loop
            // (`self_call!`): `f` is the running procedure, the call's
            // destination is the caller's own (as `nested` would pass it),
            // and the caller has no scratch region (the callee's frame has
            // its own).
            macro_rules! self_call_here {
                ($f:expr, $argc:expr, $in_dst:expr) => {
                    $f == closure
                        && $argc as usize == proto.nparams
                        && scratch.is_none()
                        && ($in_dst || (!code.builds && dest == Dest::None))
                };
            }
            // A call of the running procedure by itself (`self_call_here!`)
            // at the call site `site`: its frame at `start` runs in this
            // loop, the limits checked and the steps counted as `nested`
            // and `exec` do.
            macro_rules! self_call {
                ($start:expr, $site:expr) => {
                    self.depth += $site.depth();
                    if self.depth >= self.max_depth
                        || crate::interrupt::count() != self.interrupts_seen
                        || (BUDGET && self.calls > self.budget)
                    {
                        return Err(Fallback::Limit);
                    }
                    self.tail_calls += u64::from($site.tail);
                    self.frames.push(SelfFrame {
                        base,
                        pc: pc as u32,
                        start: $start,
                        depth: $site.depth() as u32,
                    });
                    base += $start as usize;
                    if self.stack.len() < base + nregs {
                        self.stack.resize(base + nregs, Value::UNDEFINED);
                    }
                    regs = &mut self.stack[base..base + nregs];
                    self.calls += 1;
                    self.self_calls += 1;
                    pc = 0;
                };
            }
            // The running procedure returns `v`: to its caller's frame in
            // this loop, if it runs here (`self_call!`), else from `exec`.
            macro_rules! ret {
                ($v:expr) => {
                    let v = $v;
                    if self.frames.len() <= floor {
                        return Ok(v);
                    }
                    let Some(fr) = self.frames.pop() else {
                        return Err(here);
                    };
                    self.depth -= fr.depth as usize;
                    base = fr.base;
                    regs = &mut self.stack[base..base + nregs];
                    regs[fr.start as usize] = v;
                    pc = fr.pc as usize;
                };
            }
            let next = loop {
                let Some(op) = ops.get(pc) else {
                    return Err(here);
                };
                pc += 1;
                match *op {
                    Op::FixK { op, dst, a, k } => {
                        let x = regs[a as usize].as_fixnum().ok_or(here)?;
                        regs[dst as usize] = fix_k(op, x, k).ok_or(here)?;
                    }
                    Op::AddK { dst, a, k } => {
                        regs[dst as usize] = Value::fixnum_add(regs[a as usize], k).ok_or(here)?;
                    }
                    Op::Add { dst, a, b } => {
                        let (x, y) = (regs[a as usize], regs[b as usize]);
                        regs[dst as usize] = Value::fixnum_add(x, y).ok_or(here)?;
                    }
                    Op::Sub { dst, a, b } => {
                        let (x, y) = (regs[a as usize], regs[b as usize]);
                        regs[dst as usize] = Value::fixnum_sub(x, y).ok_or(here)?;
                    }
                    Op::Car { dst, a } => {
                        regs[dst as usize] = omni_mem::car(regs[a as usize]).ok_or(here)?
                    }
                    Op::Cdr { dst, a } => {
                        regs[dst as usize] = omni_mem::cdr(regs[a as usize]).ok_or(here)?
                    }
                    Op::PairBranchUnlessNull { dst, a, cdr, to } => {
                        let p = regs[a as usize];
                        let v = match cdr {
                            false => omni_mem::car(p),
                            true => omni_mem::cdr(p),
                        }
                        .ok_or(here)?;
                        regs[dst as usize] = v;
                        if v != Value::EMPTY {
                            pc = to as usize;
                        }
                    }
                    Op::BranchUnlessNull { a, to } => {
                        if regs[a as usize] != Value::EMPTY {
                            pc = to as usize;
                        }
                    }
                    Op::BranchUnlessUnary { op, a, to } => {
                        if !unary_fast_path(op, regs[a as usize])
                            .ok_or(here)?
                            .is_truthy()
                        {
                            pc = to as usize;
                        }
                    }
                    Op::BranchUnlessIs { a, k, to } => {
                        if !regs[a as usize].is(k) {
                            pc = to as usize;
                        }
                    }
                    Op::BranchUnlessSame { a, b, eq, to } => {
                        let (x, y) = (regs[a as usize], regs[b as usize]);
                        // Two fixnums are `=` exactly when their words are.
                        if !Value::both_fixnums(x, y) {
                            return Err(here);
                        }
                        if (x == y) != eq {
                            pc = to as usize;
                        }
                    }
                    Op::BranchUnlessLess { a, b, or_equal, to } => {
                        let (x, y) = (regs[a as usize], regs[b as usize]);
                        if !Value::fixnum_less(x, y, or_equal).ok_or(here)? {
                            pc = to as usize;
                        }
                    }
                    Op::BranchUnlessIn { a, lo, hi, to } => {
                        let x = regs[a as usize].as_fixnum().ok_or(here)?;
                        if !(lo..=hi).contains(&x) {
                            pc = to as usize;
                        }
                    }
                    Op::BranchUnlessOut { a, lo, hi, to } => {
                        let x = regs[a as usize].as_fixnum().ok_or(here)?;
                        if (lo..=hi).contains(&x) {
                            pc = to as usize;
                        }
                    }
                    Op::Fix { op, dst, a, b } => {
                        regs[dst as usize] = fix2(op, src!(a), src!(b)).ok_or(here)?;
                    }
                    Op::BranchUnless { op, a, b, to } => {
                        if !fix2(op, src!(a), src!(b)).ok_or(here)?.is_truthy() {
                            pc = to as usize;
                        }
                    }
                    Op::CallGlobal {
                        g,
                        start,
                        argc,
                        in_dst,
                        site,
                    } => {
                        let f = global(self.vm, g).ok_or(here)?;
                        if self_call_here!(f, argc, in_dst) {
                            self_call!(start, site);
                            continue;
                        }
                        let at = base + start as usize;
                        let d = (in_dst, dest);
                        let v =
                            self.nested(f, (argc, site), (closure, proto), at, d, &mut scratch)?;
                        regs = &mut self.stack[base..base + nregs];
                        regs[start as usize] = v;
                    }
                    Op::Inline { g, level, .. } => {
                        let f = match g {
                            INLINE_SELF => closure,
                            g => global(self.vm, g).ok_or(here)?,
                        };
                        inline_entry!(f == closure, f, level, op);
                    }
                    Op::InlineOther { g, code, level, .. } => {
                        // (The body captures nothing: it is the body of
                        // any closure of its code.)
                        let f = global(self.vm, g).ok_or(here)?;
                        let is_callee = closure_code(f) == Some(u64::from(code));
                        inline_entry!(is_callee, f, level, op);
                    }
                    Op::Return { a } => {
                        let v = src!(a);
                        self.leave(&mut scratch, (base, 0), v)?;
                        ret!(v);
                    }
                    Op::Move { dst, a } => regs[dst as usize] = src!(a),
                    Op::Move2 { dst, a, dst2, a2 } => {
                        regs[dst as usize] = regs[a as usize];
                        regs[dst2 as usize] = regs[a2 as usize];
                    }
                    Op::Unary { op, dst, a } => {
                        regs[dst as usize] = unary_fast_path(op, src!(a)).ok_or(here)?;
                    }
                    op @ (Op::TailCall { start, argc, .. }
                    | Op::TailCallGlobal { start, argc, .. }) => {
                        let f = match op {
                            Op::TailCall { f, .. } => regs[f as usize],
                            Op::TailCallGlobal { g, .. } => global(self.vm, g).ok_or(here)?,
                            _ => return Err(here),
                        };
                        // A loop: the running procedure again, in place (the
                        // interrupt check and the step every iteration, as
                        // a call makes them at every entry).
                        let again = f == closure
                            && argc as usize == proto.nparams
                            && crate::interrupt::count() == self.interrupts_seen
                            && (!BUDGET || self.calls <= self.budget);
                        let next = match again {
                            true => proto,
                            false => {
                                let may_build = !matches!(dest, Dest::None);
                                callee(self.vm, f, argc, (closure, proto), may_build)?
                            }
                        };
                        slide(regs, start, argc);
                        self.leave(&mut scratch, (base, argc), f)?;
                        if self.undo.len() >= COMMIT_AT && self.depth == self.root_depth {
                            let span = match op {
                                Op::TailCall { span, .. } | Op::TailCallGlobal { span, .. } => span,
                                _ => Span::default(),
                            };
                            self.commit(f, (base, argc), span);
                        }
                        if !again {
                            if self.frames.len() <= floor {
                                break (next, f);
                            }
                            // In a frame of `self_call!`: the tail call is
                            // made as a call whose value the frame returns.
                            self.tail_calls += 1;
                            let v = self.exec(next, f, base, dest)?;
                            ret!(v);
                            continue;
                        }
                        regs = &mut self.stack[base..base + nregs];
                        self.calls += 1;
                        self.tail_calls += 1;
                        // (The same closure: its captures are loaded.)
                        pc = code.head as usize;
                    }
                    Op::JumpUnless { a, to } => {
                        if !src!(a).is_truthy() {
                            pc = to as usize;
                        }
                    }
                    Op::JumpIf { a, to } => {
                        if src!(a).is_truthy() {
                            pc = to as usize;
                        }
                    }
                    Op::Jump { to } => pc = to as usize,
                    Op::MoveJump { dst, a, to } => {
                        regs[dst as usize] = src!(a);
                        pc = to as usize;
                    }
                    Op::InlineLoop { to, off, start, .. } => {
                        loop_check!(off, start);
                        self.calls += 1;
                        self.tail_calls += 1;
                        pc = to as usize;
                    }
                    Op::LetLoop { to, off, start, .. } => {
                        loop_check!(off, start);
                        // The iteration ends as the loop procedure's tail
                        // call of itself would (`loop_end`).
                        if scratch.is_some() || self.undo.len() >= COMMIT_AT {
                            self.loop_end(op, base, &mut scratch, dest)?;
                            regs = &mut self.stack[base..base + nregs];
                        }
                        self.calls += 1;
                        self.tail_calls += 1;
                        pc = to as usize;
                    }
                    Op::Eq { dst, a, b } => regs[dst as usize] = Value::bool(src!(a).is(src!(b))),
                    Op::Global { dst, g } => {
                        let v = global(self.vm, g).ok_or(here)?;
                        regs[dst as usize] = v;
                    }
                    Op::HeapConst { dst, i } => regs[dst as usize] = self.vm.consts[i as usize],
                    Op::Capture { dst, i } => {
                        regs[dst as usize] =
                            closure_capture(closure, i as usize).unwrap_or(Value::NOTHING);
                    }
                    Op::SelfRef { dst } => regs[dst as usize] = closure,
                    Op::Call {
                        f,
                        start,
                        argc,
                        in_dst,
                        site,
                    } => {
                        let f = regs[f as usize];
                        if self_call_here!(f, argc, in_dst) {
                            self_call!(start, site);
                            continue;
                        }
                        let at = base + start as usize;
                        let d = (in_dst, dest);
                        let v =
                            self.nested(f, (argc, site), (closure, proto), at, d, &mut scratch)?;
                        regs = &mut self.stack[base..base + nregs];
                        regs[start as usize] = v;
                    }
                    Op::Cons { dst, a, b } => {
                        let (a, b) = (src!(a), src!(b));
                        let r = self.dst(dest)?;
                        let v = omni_mem::alloc_pair(r, a, b).map_err(|_| here)?;
                        regs = &mut self.stack[base..base + nregs];
                        regs[dst as usize] = v;
                    }
                    Op::ConsScratch { dst, a, b } => {
                        let (a, b) = (src!(a), src!(b));
                        let r = self.scratch_region(&mut scratch)?;
                        let v = omni_mem::alloc_pair(r, a, b).map_err(|_| here)?;
                        regs = &mut self.stack[base..base + nregs];
                        regs[dst as usize] = v;
                    }
                    Op::Closure {
                        dst,
                        id,
                        start,
                        n,
                        scratch: in_scratch,
                    } => {
                        let r = self.built_in(in_scratch, dest, &mut scratch)?;
                        regs = &mut self.stack[base..base + nregs];
                        let captures = &regs[start as usize..(start + n) as usize];
                        let v = alloc_closure(r, u64::from(id), captures).map_err(|_| here)?;
                        regs[dst as usize] = v;
                    }
                    Op::Length { dst, a } => {
                        regs[dst as usize] = list_length(regs[a as usize]).ok_or(here)?;
                    }
                    Op::ReturnCons { a, b } => {
                        let (a, b) = (src!(a), src!(b));
                        let r = self.dst(dest)?;
                        let v = omni_mem::alloc_pair(r, a, b).map_err(|_| here)?;
                        self.leave(&mut scratch, (base, 0), v)?;
                        ret!(v);
                    }
                    Op::ReturnAdd { a, b } => {
                        let x = regs[a as usize].as_fixnum().ok_or(here)?;
                        let y = regs[b as usize].as_fixnum().ok_or(here)?;
                        let v = Value::fixnum(x + y).ok_or(here)?;
                        self.leave(&mut scratch, (base, 0), v)?;
                        ret!(v);
                    }
                    Op::List {
                        dst,
                        start,
                        n,
                        scratch: in_scratch,
                    } => {
                        let r = self.built_in(in_scratch, dest, &mut scratch)?;
                        let items = base + start as usize..base + (start + n) as usize;
                        let items = self.stack.get(items).ok_or(here)?;
                        let l = omni_mem::alloc_list(r, items).map_err(|_| here)?;
                        regs = &mut self.stack[base..base + nregs];
                        regs[dst as usize] = l;
                    }
                    Op::ConsIn { dst, a, b, c } => {
                        let (a, b) = (regs[a as usize], regs[b as usize]);
                        let r = omni_mem::store_region(regs[c as usize]).ok_or(here)?;
                        let v = omni_mem::alloc_pair(r, a, b).map_err(|_| here)?;
                        regs[dst as usize] = v;
                    }
                    Op::ListIn { dst, start, n, c } => {
                        let r = omni_mem::store_region(regs[c as usize]).ok_or(here)?;
                        let items = base + start as usize..base + (start + n) as usize;
                        let items = self.stack.get(items).ok_or(here)?;
                        let l = omni_mem::alloc_list(r, items).map_err(|_| here)?;
                        regs = &mut self.stack[base..base + nregs];
                        regs[dst as usize] = l;
                    }
                    op @ Op::BuildAt { dst, .. } => {
                        let v = self.build_at(&op, base).ok_or(here)?;
                        regs = &mut self.stack[base..base + nregs];
                        regs[dst as usize] = v;
                    }
                    Op::ArraySet { c, i, x } => {
                        let (arr, x) = (regs[c as usize], src!(x));
                        let i = index(regs[i as usize]).ok_or(here)?;
                        self.store(Store::Array { arr, i, x }, here)?;
                        regs = &mut self.stack[base..base + nregs];
                    }
                    Op::DictSet { c, k, x } => {
                        let (d, key, x) = (regs[c as usize], regs[k as usize], src!(x));
                        self.store(Store::Dict { d, key, x }, here)?;
                        regs = &mut self.stack[base..base + nregs];
                    }
                    Op::BoxSet { b, x } => {
                        let (b, x) = (regs[b as usize], src!(x));
                        self.store(Store::Box { b, x }, here)?;
                        regs = &mut self.stack[base..base + nregs];
                    }
                    Op::PairSet { p, x, cdr, span } => {
                        let (p, x) = (regs[p as usize], src!(x));
                        self.store_pair((p, cdr, x), span, here)?;
                        regs = &mut self.stack[base..base + nregs];
                    }
                    Op::BoxGet { dst, b, pin } => {
                        let b = regs[b as usize];
                        let v = match pin {
                            true => omni_mem::box_get(b),
                            false => omni_mem::box_borrow(b),
                        };
                        regs[dst as usize] = v.filter(|&v| v != Value::UNDEFINED).ok_or(here)?;
                    }
                    Op::ArrayRef { dst, c, i, pin } => {
                        let (arr, i) = (regs[c as usize], index(regs[i as usize]).ok_or(here)?);
                        regs[dst as usize] = match pin {
                            true => omni_mem::array_get(arr, i),
                            false => omni_mem::array_borrow(arr, i),
                        }
                        .ok_or(here)?;
                    }
                    Op::DictRef {
                        dst,
                        c,
                        k,
                        default,
                        pin,
                    } => {
                        let (d, key) = (regs[c as usize], regs[k as usize]);
                        omni_mem::dict_count(d).ok_or(here)?;
                        let got = match pin {
                            true => omni_mem::dict_get(d, key),
                            false => omni_mem::dict_borrow(d, key),
                        };
                        regs[dst as usize] = match got {
                            Some(v) => v,
                            None if default != NO_DEFAULT => regs[default as usize],
                            None => return Err(here),
                        };
                    }
                    Op::Fail => return Err(here),
                }
            };
            self.tail_calls += 1;
            (proto, closure) = next;
        }
    }
}

// The general fixnum operations, out of line: inlined, they would take
// registers the run's loop keeps its state in (`unary_fast_path` stays
// inlined: type tests and `cadr` are frequent).

#[inline(never)]
fn fix2(op: FixOp, x: Value, y: Value) -> Option<Value> {
    fixop(op, x, y)
}

#[inline(never)]
fn fix_k(op: FixOp, x: i64, k: i64) -> Option<Value> {
    fix_apply(op, x, k)
}

/// The length of proper list `l` (`None` for anything else, a cycle
/// included: a second cursor at half speed meets the first in a cycle).
fn list_length(l: Value) -> Option<Value> {
    let (mut fast, mut slow, mut n) = (l, l, 0i64);
    loop {
        for _ in 0..2 {
            if fast == Value::EMPTY {
                return Value::fixnum(n);
            }
            fast = omni_mem::cdr(fast)?;
            n += 1;
        }
        slow = omni_mem::cdr(slow)?;
        // The words, not `is`: each cursor's next word is a function of
        // its word, so in a cycle both run through the same words and
        // meet (as the general path's `CycleCheck`).
        if fast == slow {
            return None;
        }
    }
}

/// An array index: a non-negative fixnum.
#[inline]
fn index(v: Value) -> Option<usize> {
    v.as_fixnum().and_then(|i| usize::try_from(i).ok())
}

/// A global's value (an unbound one is the general path's error).
#[inline]
fn global(vm: &Vm, g: u32) -> Option<Value> {
    match vm.globals[g as usize] {
        v if v == Value::UNDEFINED => None,
        v => Some(v),
    }
}

/// The code of `g` called with `argc` arguments, if it is a pure
/// procedure of that exact arity (`may_build`: the callee may build), where
/// `running` (the closure and its code) calls it; a recursive call needs
/// no look-up. Any other callee is the running code's obstacle.
#[inline]
fn callee<'a>(
    vm: &'a Vm,
    g: Value,
    argc: u32,
    running: (Value, &'a Proto),
    may_build: bool,
) -> Pure<'a, &'a Proto> {
    let (closure, proto) = running;
    if g == closure && proto.nparams == argc as usize {
        return Ok(proto);
    }
    let here = Fallback::Here(proto);
    let code = closure_code(g).ok_or(here)?;
    if code & PRIM_BIT != 0 {
        return Err(here);
    }
    match vm.protos.get(code as usize) {
        // A callee that builds, called where it may not: this call site
        // needs the general path.
        Some(Some(p))
            if p.tier.ready()
                && p.nparams == argc as usize
                && !p.rest
                && (may_build || p.pure_code.as_ref().is_some_and(|c| !c.builds)) =>
        {
            Ok(p)
        }
        _ => Err(here),
    }
}

/// Move the `argc` registers at `start` down to register 0 (a plain loop:
/// a few words, no `memmove` call). Arguments computed in place
/// (`pure_peephole`) start at 0 and stay.
#[inline(always)]
fn slide(regs: &mut [Value], start: u32, argc: u32) {
    if start == 0 {
        return;
    }
    for i in 0..argc as usize {
        regs[i] = regs[start as usize + i];
    }
}
