//! The store barrier: the one helper every mutation and every constructor
//! uses to put a value into a region (DESIGN.md rule 6,
//! docs/REGION_DEPENDENCY_RULES.md).
//!
//! Rule: an object in region O may point into region V only if V == O or V
//! is strictly older (`V.rank < O.admit_rank`; the admit rank is the rank
//! itself except for closed and retained regions, see region.rs). Anything
//! else is repaired before the store, never refused:
//!
//! * policy H0: if `bytes_allocated(V) >= merge_threshold()` and the merge is
//!   permitted, V is spliced into O (the value stays where it is);
//! * otherwise the value is transmigrated into O, copying every object that
//!   lives in a region younger than O (every object outside O when O is a
//!   closed message region, which never merges).

use crate::error::MemResult;
use crate::region::{
    block_of_ptr, bytes_allocated, in_current_segment, merge, merge_threshold, merged_into, segment_region, slot_region_dies_with, with_stats, Region,
    RegionBlock,
};
use crate::transmigrate::{transmigrate_into, Domain};
use crate::value::Value;

/// How the last repair was done (for tests and `--stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// No repair needed: immediate, same region, or older region.
    None,
    Merge,
    Transmigrate,
}

/// Make `v` storable in region `dst`: returns `v` itself when the edge is
/// allowed, or after merging its region into `dst`, or a copy in `dst`.
///
/// # Safety
/// `dst` must be a live control block owned by this thread; `v` must be
/// immediate or point into a live region of this thread (or a process region).
#[inline]
pub(crate) unsafe fn admit(dst: *mut RegionBlock, v: Value) -> MemResult<Value> {
    // SAFETY: per the contract.
    unsafe {
        if admits_as_is(dst, v) {
            return Ok(v);
        }
        repair(dst, block_of_ptr(v.heap_ptr()), v).map(|(v, _)| v)
    }
}

/// The barrier's fast test: `v` may be stored in `dst` as it is (an
/// immediate, or an object of `dst` or of a region that outlives it).
///
/// # Safety
/// As `admit`.
#[inline(always)]
pub(crate) unsafe fn admits_as_is(dst: *mut RegionBlock, v: Value) -> bool {
    if !v.has_heap_tag() {
        return true;
    }
    // SAFETY: per the contract.
    unsafe {
        let rv = block_of_ptr(v.heap_ptr());
        rv == dst || (*rv).rank < (*dst).admit_rank
    }
}

/// `admits_as_is` for a value that was probably just built in `dst` (a
/// constructor's fields, a result at the return boundary): a value in the
/// part of `dst`'s current segment bumped so far is `dst`'s, found by two
/// compares before the segment lookup. Not used by stores, whose values
/// usually come from elsewhere (the two compares cost the store barrier's
/// fast path more than they save there).
///
/// # Safety
/// As `admit`.
#[inline(always)]
pub(crate) unsafe fn admits_fresh_as_is(dst: *mut RegionBlock, v: Value) -> bool {
    if !v.has_heap_tag() {
        return true;
    }
    // SAFETY: per the contract.
    unsafe {
        if in_current_segment(dst, v.heap_ptr()) {
            return true;
        }
        let rv = block_of_ptr(v.heap_ptr());
        rv == dst || (*rv).rank < (*dst).admit_rank
    }
}

/// The barrier's slow path: make `v`, which lies in region `rv` and may
/// not be stored in `dst` as it is, storable there (H0: merge `rv` into
/// `dst`, or copy `v` into it).
///
/// # Safety
/// As `admit`; `rv` is the live control block of the region `v` points
/// into.
#[cold]
pub(crate) unsafe fn repair(
    dst: *mut RegionBlock,
    rv: *mut RegionBlock,
    v: Value,
) -> MemResult<(Value, Repair)> {
    // SAFETY: per `admit`'s contract.
    unsafe {
        let (v, rv) = match repair_start(dst, v, rv) {
            Ok(start) => start,
            Err(copy) => return Ok((copy, Repair::None)),
        };
        if slot_region_dies_with(rv, dst) {
            // A (pinned) slot region that dies with `dst`: one of `dst`'s,
            // or a sibling when `dst` is a slot region itself.
            return Ok((v, Repair::None));
        }
        // The repair ladder: reuse (the caller's fast path) -> merge the
        // young region whole -> copy. Which rung failed and why is counted
        // (`repairs_below_merge_threshold`, `merge_refusals`).
        if (*dst).closed {
            // A message region takes copies of everything outside it.
            let copy = transmigrate_into(v, dst, Domain::AllBut)?;
            with_stats(|s| s.repairs_transmigrate += 1);
            return Ok((copy, Repair::Transmigrate));
        }
        if merge_rung(dst, rv) {
            return Ok((v, Repair::Merge));
        }
        let copy = transmigrate_into(v, dst, Domain::YoungerThan((*dst).rank))?;
        with_stats(|s| s.repairs_transmigrate += 1);
        Ok((copy, Repair::Transmigrate))
    }
}

/// Where a repair into `dst` of `v`, which lies in region `rv`, starts:
/// a moved original stands for its copy (transmigrate.rs). `Err(copy)`
/// when that copy may be stored in `dst` as it is (the second escape of a
/// value takes no second copy); else the value to repair and its region.
///
/// # Safety
/// As `admit`; `rv` is `v`'s region.
#[inline]
pub(crate) unsafe fn repair_start(
    dst: *mut RegionBlock,
    v: Value,
    rv: *mut RegionBlock,
) -> Result<(Value, *mut RegionBlock), Value> {
    let w = crate::obj::resolve(v);
    if w == v {
        return Ok((v, rv));
    }
    // SAFETY: per the contract; `w` is a live copy.
    unsafe {
        if admits_as_is(dst, w) {
            return Err(w);
        }
        Ok((w, block_of_ptr(w.heap_ptr())))
    }
}

/// The merge rung of policy H0: splice `rv` into `dst` if it holds at
/// least `merge_threshold()` bytes and the merge is permitted. Counts the
/// merge, or why the rung was skipped.
///
/// # Safety
/// As `admit`; `rv` is the region of the value being admitted.
unsafe fn merge_rung(dst: *mut RegionBlock, rv: *mut RegionBlock) -> bool {
    // SAFETY: per the contract.
    unsafe {
        if bytes_allocated(rv) < merge_threshold() {
            with_stats(|s| s.repairs_below_merge_threshold += 1);
            return false;
        }
        if merge(Region::from_block(rv), Region::from_block(dst)).is_ok() {
            with_stats(|s| s.repairs_merge += 1);
            return true;
        }
        false
    }
}

/// Store `v` into `slot`, which belongs to the object at `obj`.
///
/// # Safety
/// `obj` must be a live object of this thread and `slot` one of its value
/// slots (or a slot of its private buffer).
#[inline]
pub(crate) unsafe fn store(obj: *mut u8, slot: *mut Value, v: Value) -> MemResult<()> {
    // SAFETY: per the contract.
    unsafe {
        // Cheapest first: an immediate needs no region at all, and two
        // objects whose segments were allocated for the same region are in
        // one region whatever it was merged into, so neither side's merge
        // forwarding is looked at unless the segments' regions differ.
        if !v.has_heap_tag() {
            slot.write(v);
            return Ok(());
        }
        // `admits_as_is` on the regions the two segments were allocated
        // for, not resolved through merges: a merge stub has rank
        // `RANK_RETAINED` and admit rank 0 (`region::forward_to`), so on a
        // stub this fails and the slow path decides on the resolved
        // regions.
        let home = segment_region(obj);
        let there = segment_region(v.heap_ptr());
        if there == home || (*there).rank < (*home).admit_rank {
            slot.write(v);
            return Ok(());
        }
        store_slow(home, slot, v)
    }
}

/// `store` when the test on the segments' regions failed: `admit` into
/// the region `home` was merged into, which decides again on the resolved
/// regions and repairs `v` if it still may not be stored as it is. Out of
/// line, so that the fast path, in line at every mutation primitive,
/// needs no stack frame and saves no register for a call it does not
/// make.
///
/// # Safety
/// As `store`; `home` is the region `slot`'s object's segment was
/// allocated for.
#[cold]
#[inline(never)]
unsafe fn store_slow(home: *mut RegionBlock, slot: *mut Value, v: Value) -> MemResult<()> {
    // SAFETY: per the contract; repairing never moves `slot`.
    unsafe {
        let v = admit(merged_into(home), v)?;
        slot.write(v);
    }
    Ok(())
}

/// Whether `v` may be stored, as it is, in a region of rank `rank` that
/// does not exist yet (an activation's scratch region, created on first
/// use): `v` is an immediate or lives in an older region. `admit_into`
/// would make the same decision once the region exists (its admit rank is
/// its rank), so a caller can skip creating the region when this holds.
#[inline]
pub fn storable_below_rank(v: Value, rank: u64) -> bool {
    if !v.has_heap_tag() {
        return true;
    }
    // SAFETY: `v` is held by the mutator, hence in a live region.
    unsafe { (*block_of_ptr(v.heap_ptr())).rank < rank }
}

/// Whether `v` may be stored in `dst` as it is: `admit_into(dst, v)`
/// would return it unchanged with no repair. The VM's return boundary
/// asks this first, in line.
#[inline]
pub fn storable_in(dst: Region, v: Value) -> bool {
    // SAFETY: `dst` is live and ours; `v` is held by the mutator, hence in
    // a live region.
    unsafe { admits_fresh_as_is(dst.block(), v) }
}

/// Make `v` storable in region `dst` and say which repair, if any, was used.
/// This is the barrier the VM calls for escape boundaries it handles itself
/// (global stores, returns into a destination region).
pub fn admit_into(dst: Region, v: Value) -> MemResult<(Value, Repair)> {
    let b = dst.block();
    if !v.is_heap() {
        return Ok((v, Repair::None));
    }
    // SAFETY: `b` is live and ours; `v` is held by the mutator, hence live.
    unsafe {
        let rv = block_of_ptr(v.heap_ptr());
        if rv == b || (*rv).rank < (*b).admit_rank {
            return Ok((v, Repair::None));
        }
        repair(b, rv, v)
    }
}
