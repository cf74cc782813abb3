//! Slot regions: where the barrier copies the values a program stores into
//! an older array or dict, so that the values it later overwrites can be
//! given back without a collector (docs/REGION_COALESCE_POLICY.md).
//!
//! A store of a younger value into a container in region O is repaired by
//! copying it (policy H0's copy rung). Copied into O itself, an overwritten
//! value would stay until O dies. Instead it is copied into the
//! container's *slot region*: a region owned by O, with O's rank (the
//! barrier and transmigration see its objects exactly as O's), freed with O.
//!
//! The invariant that makes compaction safe: **while a slot region is
//! unpinned, the only pointers into it are the container's own slots and
//! pointers inside the region.** It holds because
//! * only `admit_slot` puts objects into it, as copies whose sole referrer
//!   is the slot being written, and the mutator through `store_region`,
//!   whose contract is the same: what it builds there is stored into the
//!   container before anything else is, and is referred to by nothing else;
//! * no region is ever merged into it (`MergeRefusal::SlotRegion`): a
//!   constructor's field admitted into it is copied, since the mutator may
//!   hold other objects of the field's region;
//! * every read that hands a slot's value out (`array_get`, `array_items`,
//!   `dict_get`, `dict_entries`) calls `note_read`, which pins the region
//!   if the value lies in it. A program can reach the region's objects only
//!   through such a value, so nothing else can come to point into an
//!   unpinned region (transmigration copies out of it, never shares into
//!   it: `Domain::Region` includes slot regions).
//!
//! So an unpinned slot region can be *compacted* between two stores: the
//! container's slots are the roots, their graph is transmigrated into a
//! fresh slot region in one session, and the old one is freed with every
//! value that was overwritten. It is local work (one container, one region,
//! its live subgraph; DESIGN.md rule 1), triggered deterministically when
//! the region's bytes reach twice what survived the last compaction (at
//! least `COMPACT_MIN_BYTES`), so copying is amortised to at most one copy
//! per stored byte, and at least half of the stores since then replaced a
//! value in the region: a container that only grows (pushes, new keys) is
//! not copied for nothing, which would double its peak.
//!
//! A pinned slot region is never compacted; it lives until O dies, like
//! values copied into O always did. Once it holds `DETACH_BYTES`, the next
//! store opens a fresh slot region for the container, so a program that
//! reads once does not lose compaction for good.
//!
//! A slot region costs at least a segment (16 KiB), so a container gets one
//! only once it has overwritten `SLOT_REGION_AFTER` heap values: until then
//! its stores are repaired into O as by the plain barrier (at most that many
//! replaced values stay in O), and a container filled once and never
//! overwritten (100,000 one-slot arrays) costs no segment of its own. The
//! container's slot-region word holds the count until then
//! ([`SlotWord`]).

use crate::barrier::{repair, repair_start};
use crate::error::MemResult;
use crate::obj::{for_each_container_slot, slot_region_field};
use crate::region::{
    block_of_ptr, bytes_allocated, is_slot_region_of, slot_region_dies_with, slot_region_drop, slot_region_new,
    with_stats,
    Region, RegionBlock, SEGMENT_SIZE,
};
use crate::transmigrate::{transmigrate_all, transmigrate_into, Domain};
use crate::value::Value;

use std::ptr;

/// A slot region is first compacted when it holds this many bytes. (Under
/// Miri, 2 KiB and 8 KiB, so the tests reach every path with a fraction
/// of the stores; in fuzzing builds, 1 KiB and 8 KiB, so the small
/// generated programs compact and detach often; the code is the same.)
#[cfg(not(any(miri, fuzzing)))]
pub const COMPACT_MIN_BYTES: usize = 64 * 1024;
#[cfg(miri)]
pub const COMPACT_MIN_BYTES: usize = 2 * 1024;
#[cfg(all(fuzzing, not(miri)))]
pub const COMPACT_MIN_BYTES: usize = 1024;
/// A pinned slot region stops taking new values once it holds this much:
/// big enough that the unused tail of its last segment is a small part of
/// it (a read-then-overwrite loop kept 1.45x the bytes with 8 KiB, 1.06x
/// with 64 KiB).
#[cfg(not(any(miri, fuzzing)))]
const DETACH_BYTES: usize = 4 * SEGMENT_SIZE;
#[cfg(any(miri, fuzzing))]
const DETACH_BYTES: usize = SEGMENT_SIZE / 2;

/// A container gets a slot region at its `SLOT_REGION_AFTER`-th overwrite
/// of a heap value (see the module comment).
pub const SLOT_REGION_AFTER: u64 = 4;

/// What a container's slot-region word holds: a slot region, or (low bit
/// set; 0 when the container is new) how many heap values it overwrote
/// while it had none. Region blocks are aligned, so the two never clash.
#[derive(Clone, Copy)]
enum SlotWord {
    Region(*mut RegionBlock),
    Overwrites(u64),
}

/// # Safety
/// `field` is a live container's slot-region word.
#[inline]
unsafe fn slot_word(field: *mut *mut RegionBlock) -> SlotWord {
    // SAFETY: per the contract.
    let w = unsafe { field.read() };
    if w.is_null() {
        SlotWord::Overwrites(0)
    } else if w.addr() & 1 != 0 {
        SlotWord::Overwrites((w.addr() >> 1) as u64)
    } else {
        SlotWord::Region(w)
    }
}

/// The container's slot region, if it has one.
///
/// # Safety
/// As [`slot_word`].
#[inline]
unsafe fn slot_region_in(field: *mut *mut RegionBlock) -> Option<*mut RegionBlock> {
    // SAFETY: per the contract.
    match unsafe { slot_word(field) } {
        SlotWord::Region(c) => Some(c),
        SlotWord::Overwrites(_) => None,
    }
}

/// Whether new values for this container go to a slot region: it has one,
/// or it has overwritten enough values to be given one.
///
/// # Safety
/// As [`slot_word`].
#[inline]
unsafe fn wants_slot_region(field: *mut *mut RegionBlock) -> bool {
    // SAFETY: per the contract.
    match unsafe { slot_word(field) } {
        SlotWord::Region(_) => true,
        SlotWord::Overwrites(n) => n >= SLOT_REGION_AFTER,
    }
}

/// Make `v` storable in a slot of container `p` (an array, dict or box):
/// `v` itself when the edge is allowed; before the container has a slot
/// region, what the plain barrier makes of it (H0: a merge into the
/// container's region, or a copy there); after, a copy in the container's
/// slot region.
///
/// # Safety
/// `p` must be a live array, dict or box of this thread; `v` immediate or
/// in a live region of this thread (or a process region).
#[inline]
pub(crate) unsafe fn admit_slot(p: *mut u8, v: Value) -> MemResult<Value> {
    if !v.is_heap() {
        return Ok(v);
    }
    // SAFETY: per the contract.
    unsafe {
        let o = block_of_ptr(p);
        let rv = block_of_ptr(v.heap_ptr());
        // (A value built in the container's slot region, `store_region`,
        // is stored as it is: the slow path's answer for it, in line.)
        if rv == o || (*rv).rank < (*o).admit_rank || is_slot_region_of(rv, o) {
            return Ok(v);
        }
        admit_slot_slow(p, o, rv, v)
    }
}

/// `admit_slot`'s slow path: `v`, in region `rv`, may not be stored in
/// container `p` (region `o`) as it is.
///
/// # Safety
/// As `admit_slot`; `o` is `p`'s region and `rv` the live control block
/// of the region `v` points into.
#[cold]
unsafe fn admit_slot_slow(
    p: *mut u8,
    o: *mut RegionBlock,
    rv: *mut RegionBlock,
    v: Value,
) -> MemResult<Value> {
    // SAFETY: per `admit_slot`'s contract.
    unsafe {
        let (v, rv) = match repair_start(o, v, rv) {
            Ok(start) => start,
            Err(copy) => return Ok(copy),
        };
        if slot_region_dies_with(rv, o) {
            // Built straight in a slot region of `o` (`store_region`), or
            // in another (pinned) slot region that dies with `o`.
            return Ok(v);
        }
        if (*o).closed || !(*o).scope_alive {
            // Message regions take copies of everything; a region whose
            // scope ended gets no new slot regions (nothing would compact
            // them). The plain barrier does both.
            return repair(o, rv, v).map(|(v, _)| v);
        }
        // No slot region (yet): the plain barrier, into `o`.
        let Some(field) = slot_region_field(p).filter(|&f| wants_slot_region(f)) else {
            return repair(o, rv, v).map(|(v, _)| v);
        };
        // No merge (H0's first rung) for a container that has overwritten
        // values: a young region merged into `o` stays until `o` dies with
        // every value it held, which is the retention slot regions exist to
        // end (a captured variable `set!` to fresh 100 KB strings kept all
        // of them). The copy costs what compaction costs anyway. (Slot
        // regions themselves never merge either way:
        // `MergeRefusal::SlotRegion`.)
        let c = current_slot_region(o, field);
        let copy = transmigrate_into(v, c, Domain::YoungerThan((*c).rank))?;
        with_stats(|s| s.repairs_transmigrate += 1);
        Ok(copy)
    }
}

/// The slot region new values for the container whose slot-region word
/// is `field` go to: the current one, or a new one if there is none or the
/// current one is pinned and full (see the module comment).
///
/// # Safety
/// `o` is the container's live region, scope open, not closed; the
/// container `wants_slot_region`.
unsafe fn current_slot_region(
    o: *mut RegionBlock,
    field: *mut *mut RegionBlock,
) -> *mut RegionBlock {
    // SAFETY: per the contract.
    unsafe {
        match slot_word(field) {
            SlotWord::Region(c) if !((*c).pinned && bytes_allocated(c) >= DETACH_BYTES) => c,
            _ => {
                let c = slot_region_new(o);
                (*c).compact_at = COMPACT_MIN_BYTES;
                *field = c;
                c
            }
        }
    }
}

/// The region in which to build a fresh value that is about to be stored
/// into `container`: an array's or dict's slot region (created on
/// demand), so the store needs no copy; the container's own region for
/// any other object, or for a container whose region is closed or whose
/// scope has ended; `None` for an immediate.
///
/// Contract (what keeps the slot-region invariant): the value must be
/// stored into `container` before anything else is stored into it, and no
/// pointer to what was built there may be kept elsewhere. The compiler
/// uses this only for values made by primitives alone, with no call and
/// no store (`Target::SlotsOf`).
pub fn store_region(container: Value) -> Option<Region> {
    let container = crate::obj::resolve(container);
    if !container.is_heap() {
        return None;
    }
    let p = container.heap_ptr();
    // SAFETY: a heap value the mutator holds is a live object of this
    // thread (or of a process region).
    unsafe {
        let o = block_of_ptr(p);
        let c = match slot_region_field(p) {
            Some(field) if !(*o).closed && (*o).scope_alive && wants_slot_region(field) => {
                current_slot_region(o, field)
            }
            _ => o,
        };
        Some(Region::from_block(c))
    }
}

/// Write `x`, admitted by `admit_slot(p, ..)`, into existing value slot
/// `slot` of container `p`, then check compaction with the value it
/// replaces.
///
/// # Safety
/// `slot` is a value slot of the live array or dict `p`, and nothing was
/// stored into `p` since `x` was admitted.
#[inline]
pub(crate) unsafe fn write_slot(p: *mut u8, slot: *mut Value, x: Value) -> MemResult<()> {
    // SAFETY: per the contract.
    unsafe {
        let replaced = slot.read();
        slot.write(x);
        after_slot_store(p, replaced)
    }
}

/// Called after every slot write of container `p`, with the value the
/// write replaced (`NOTHING` for a new slot): compacts its slot region when
/// it is due (see the module comment).
///
/// # Safety
/// `p` must be a live array, dict or box of this thread, with no admitted
/// value waiting to be written (it would not be a root); `replaced` was
/// read from the slot just before the write.
#[inline]
pub(crate) unsafe fn after_slot_store(p: *mut u8, replaced: Value) -> MemResult<()> {
    // SAFETY: per the contract; `replaced` still points into live memory
    // (nothing is freed between the write and this check).
    unsafe {
        let Some(field) = slot_region_field(p) else {
            return Ok(());
        };
        let Some(c) = count_overwrite(field, replaced) else {
            return Ok(());
        };
        (*c).slot_stores += 1;
        if !compaction_due(c) || compaction_held() {
            return Ok(());
        }
        compact(p, field, c)
    }
}

/// Whether slot region `c` is due for compaction (see the module comment).
///
/// # Safety
/// `c` is a live slot region.
#[inline]
unsafe fn compaction_due(c: *mut RegionBlock) -> bool {
    // SAFETY: per the contract.
    unsafe {
        !(*c).pinned
            && bytes_allocated(c) >= (*c).compact_at
            && (*c).slot_overwrites * 2 >= (*c).slot_stores
    }
}

thread_local! {
    /// How many holds on compaction this thread has taken (`hold_compaction`).
    static HELD: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

fn compaction_held() -> bool {
    HELD.get() != 0
}

/// Hold this thread's slot-region compactions: until the matching
/// [`release_compaction`], a store that makes a compaction due does not
/// run it, so a value a store replaced stays where it was. The language's
/// pure tier holds compaction while it keeps the values its stores
/// replaced, to put them back if its run is abandoned (the slot-region
/// invariant allows no other pointer into an unpinned slot region while
/// it may be compacted); then it calls [`compact_if_due`] for the
/// containers it stored into.
pub fn hold_compaction() {
    HELD.set(HELD.get() + 1);
}

/// Release a hold taken by [`hold_compaction`].
pub fn release_compaction() {
    HELD.set(HELD.get().saturating_sub(1));
}

/// Compact `container`'s slot region if it is due and no hold is on: what
/// its last store would have done without a hold. Anything but an array,
/// dict or box with a slot region is left alone.
pub fn compact_if_due(container: Value) -> MemResult<()> {
    let container = crate::obj::resolve(container);
    if !container.is_heap() || compaction_held() {
        return Ok(());
    }
    let p = container.heap_ptr();
    // SAFETY: a heap value the mutator holds is a live object of this
    // thread; between two stores no admitted value waits to be written.
    unsafe {
        let Some(field) = slot_region_field(p) else {
            return Ok(());
        };
        match slot_word(field) {
            SlotWord::Region(c) if compaction_due(c) => compact(p, field, c),
            _ => Ok(()),
        }
    }
}

/// Called when a removal (`dict-remove!`) drops an entry whose key and
/// value were `key` and `val`: that counts as an overwrite, so a dict whose
/// entries are removed and added again is given a slot region and
/// compacted like one whose values are replaced. (The next store checks
/// compaction.)
///
/// # Safety
/// `p` must be a live dict of this thread; `key` and `val` were read from
/// the entry just before it was cleared.
pub(crate) unsafe fn note_removed(p: *mut u8, key: Value, val: Value) {
    // SAFETY: per the contract.
    unsafe {
        if let Some(field) = slot_region_field(p) {
            let dropped = if val.is_heap() { val } else { key };
            count_overwrite(field, dropped);
        }
    }
}

/// Count `replaced`, a value a container no longer holds, against the
/// container whose slot-region word is `field`: towards its slot region if
/// it has none yet (a heap value), or as an overwrite of its slot region
/// if the value lay there. Returns the slot region, if any.
///
/// # Safety
/// `field` is a live container's slot-region word; `replaced` points into
/// live memory or is immediate.
#[inline]
unsafe fn count_overwrite(field: *mut *mut RegionBlock, replaced: Value) -> Option<*mut RegionBlock> {
    // SAFETY: per the contract.
    unsafe {
        match slot_word(field) {
            SlotWord::Region(c) => {
                if replaced.is_heap() && block_of_ptr(replaced.heap_ptr()) == c {
                    (*c).slot_overwrites += 1;
                }
                Some(c)
            }
            SlotWord::Overwrites(n) => {
                if replaced.is_heap() && n < SLOT_REGION_AFTER {
                    *field = ptr::without_provenance_mut(((n + 1) as usize) << 1 | 1);
                }
                None
            }
        }
    }
}

/// Move what container `p`'s slots reach in slot region `c` into a fresh
/// slot region, and free `c`.
///
/// # Safety
/// As `after_slot_store`; `c` is `p`'s unpinned slot region, `*field`.
#[cold]
unsafe fn compact(p: *mut u8, field: *mut *mut RegionBlock, c: *mut RegionBlock) -> MemResult<()> {
    // SAFETY: per the contract. By the module invariant only `p`'s slots, the moves remembered
    // into `c` (moves.rs) and `c` itself point into `c`, so once they are rewritten to the
    // copies, `c` is unreachable and may be freed.
    unsafe {
        let mut slots = Vec::new();
        for_each_container_slot(p, |s| slots.push(s));
        let mut roots: Vec<Value> = slots.iter().map(|&s| s.read()).collect();
        // A remembered original's copy is kept: the original may still be
        // read, through its move.
        let moved = crate::moves::take_into(c);
        // (One step of each move: the compaction follows the rest. A
        // remembered original stays moved until its region dies.)
        roots.extend(moved.iter().map(|m| {
            let c = crate::obj::moved_to(m.original);
            debug_assert!(c.is_some(), "a remembered original is moved");
            Value::from_heap(c.unwrap_or(m.original))
        }));
        let n = slot_region_new((*c).parent);
        if let Err(e) = transmigrate_all(&mut roots, n, Domain::Region(c)) {
            // Nothing points into the partial copy: drop it, keep `c`.
            crate::moves::remember(c, &moved);
            slot_region_drop(n);
            return Err(e);
        }
        for (&s, &v) in slots.iter().zip(&roots) {
            s.write(v);
        }
        for (m, &v) in moved.iter().zip(&roots[slots.len()..]) {
            m.original
                .cast::<*mut u8>()
                .write(v.heap_ptr().map_addr(|a| a | crate::obj::MOVED));
        }
        crate::moves::compacted(c, n, moved);
        let (before, after) = (bytes_allocated(c), bytes_allocated(n));
        (*n).compact_at = COMPACT_MIN_BYTES.max(after.saturating_mul(2));
        *field = n;
        slot_region_drop(c);
        with_stats(|s| {
            s.slot_compactions += 1;
            s.slot_bytes_reclaimed += before.saturating_sub(after);
        });
        Ok(())
    }
}

/// A move (transmigrate.rs) was followed to `p`, which the program may now
/// hold without having read it out of a container: if `p` lies in a slot
/// region, pin that region, as `note_read` does for a read.
///
/// # Safety
/// `p` is a live object of this thread.
#[cold]
pub(crate) unsafe fn note_moved_to(p: *mut u8) {
    // SAFETY: per the contract.
    unsafe {
        let c = block_of_ptr(p);
        if !(*c).parent.is_null() {
            pin(c);
        }
    }
}

/// A read is handing `x`, the value of one of container `p`'s slots, to
/// the program: if it points into the container's unpinned slot region,
/// pin that region (see the module comment).
///
/// # Safety
/// `p` must be a live array or dict; `x` one of its slot values.
#[inline]
pub(crate) unsafe fn note_read(p: *mut u8, x: Value) {
    // SAFETY: per the contract.
    unsafe {
        // Immediates (counters, flags) are the common case: no look-up.
        if !x.is_heap() {
            return;
        }
        let Some(c) = slot_region_field(p).and_then(|f| slot_region_in(f)) else {
            return;
        };
        if !(*c).pinned && block_of_ptr(x.heap_ptr()) == c {
            pin(c);
        }
    }
}

/// Pin slot region `c` for good (counted once).
///
/// # Safety
/// `c` is a live slot region of this thread.
unsafe fn pin(c: *mut RegionBlock) {
    // SAFETY: per the contract.
    unsafe {
        if !(*c).pinned {
            (*c).pinned = true;
            with_stats(|s| s.slot_regions_pinned += 1);
        }
    }
}
