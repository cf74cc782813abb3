//! Parcels: a value and the closed region holding all of it, detached from
//! every thread so it can be moved to another one (channel send, spawn's
//! thunk, join's result). docs/REGION_THREADING_MODEL.md.
//!
//! Two ways to make one, one way to receive it:
//!
//! * Option A, [`Parcel::transfer`]: the value was built in a message
//!   region ([`crate::region_create_message`]) that holds nothing else
//!   live; the region itself changes owner in O(1), whatever its size.
//! * Option B, [`Parcel::copy`]: the value's whole graph is transmigrated
//!   into a fresh message region, which is then transferred.
//! * [`Parcel::adopt`]: the receiver splices the region into one of its own
//!   regions in O(1); its objects then die on the receiver's schedule.
//!
//! A parcel that is dropped unreceived frees its region, on any thread.

use std::ptr::NonNull;

use crate::atomic::Counter64;
use crate::error::MemResult;
use crate::region::{
    adopt, detach, free_detached, region_create_message, region_exit, transfer_check, Region,
    RegionBlock, TransferRefusal,
};
use crate::transmigrate::transmigrate_everything;
use crate::value::Value;

/// Parcels made and not yet adopted or dropped, process-wide.
static IN_FLIGHT: Counter64 = Counter64::new(0);

/// How a parcel was made (reported by `omni explain` and `--stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handoff {
    /// The message region changed owner (Option A).
    Transfer,
    /// The value was copied into a fresh region (Option B).
    Copy,
    /// An immediate: nothing to move.
    Immediate,
}

/// A value together with the detached closed region that holds its whole
/// graph. Owning a `Parcel` means owning every byte it can reach.
pub struct Parcel {
    block: Option<NonNull<RegionBlock>>,
    root: Value,
    bytes: usize,
    /// Adopted: the region belongs to a thread now; nothing left to drop.
    adopted: bool,
}

// SAFETY: a parcel's region is detached (on no thread's live list, no scope,
// no counts, no tethers) and closed: the barrier copies anything stored into
// it (admit rank 0) and copies out anything another region tries to point at
// in it (rank RANK_RETAINED), so its objects point only into itself and
// nothing outside points into it. `transfer_check` verified that `root` is in
// it and `detach` took it off the sending thread. Its segments come from the
// shared pool (or the system allocator), never from a thread's slabs. So the
// `Parcel` is the sole owner of everything `root` reaches, and moving it to
// another thread moves that ownership; no two threads ever access the
// region's memory concurrently.
unsafe impl Send for Parcel {}

impl Parcel {
    /// Option A: hand over `region` (a message region of this thread) with
    /// `root`, which must live in it. Refused, with nothing changed, when
    /// the region is not a message region, `root` is elsewhere, or the
    /// region is counted, tethered, merged or already exited; the caller
    /// then copies (`Parcel::copy`) and exits the region itself.
    ///
    /// The caller must hold no other pointer into `region` afterwards (the
    /// compiler uses message regions only for constructor expressions whose
    /// intermediate values are stored nowhere else).
    pub fn transfer(region: Region, root: Value) -> Result<Parcel, TransferRefusal> {
        let b = region.block();
        // SAFETY: `block()` names a live or merged control block; the check
        // runs before anything changes.
        unsafe {
            transfer_check(b, root)?;
            let bytes = detach(b);
            IN_FLIGHT.fetch_add_relaxed(1);
            Ok(Parcel {
                block: NonNull::new(b),
                root,
                bytes,
                adopted: false,
            })
        }
    }

    /// Option B: copy `root`'s whole graph into a fresh message region and
    /// hand that over. Immediates need no region.
    pub fn copy(root: Value) -> MemResult<Parcel> {
        if !root.is_heap() {
            IN_FLIGHT.fetch_add_relaxed(1);
            return Ok(Parcel {
                block: None,
                root,
                bytes: 0,
                adopted: false,
            });
        }
        let r = region_create_message();
        // SAFETY: `r` is a live closed region of this thread; `root` is held
        // by the caller, so its graph is live.
        let copy = unsafe { transmigrate_everything(root, r.block()) };
        match copy {
            // A fresh message region of this thread holding only the copy
            // passes every check; a refusal here is a bug in omni-mem.
            Ok(v) => Ok(Parcel::transfer(r, v)
                .expect("a fresh message region holding only the copy is transferable")),
            Err(e) => {
                region_exit(r);
                Err(e)
            }
        }
    }

    /// Option A when `region` permits it, else Option B (and `region` is
    /// exited). Returns how it was done.
    pub fn send_from(region: Region, root: Value) -> MemResult<(Parcel, Handoff)> {
        if !root.is_heap() {
            region_exit(region);
            return Parcel::copy(root).map(|p| (p, Handoff::Immediate));
        }
        match Parcel::transfer(region, root) {
            Ok(p) => Ok((p, Handoff::Transfer)),
            Err(_) => {
                let p = Parcel::copy(root);
                region_exit(region);
                p.map(|p| (p, Handoff::Copy))
            }
        }
    }

    /// Object bytes the parcel carries.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Receive: splice the parcel's region into `into` (a live region of
    /// this thread) in O(1) and return the value, now living in `into`.
    pub fn adopt(mut self, into: Region) -> Value {
        if let Some(b) = self.block.take() {
            // SAFETY: the parcel owns a detached closed region (see the Send
            // argument above); `into` is a live region of this thread.
            unsafe { adopt(b.as_ptr(), into) };
        }
        self.adopted = true;
        IN_FLIGHT.fetch_sub_relaxed(1);
        self.root
    }
}

impl Drop for Parcel {
    fn drop(&mut self) {
        if self.adopted {
            return;
        }
        if let Some(b) = self.block.take() {
            // SAFETY: the parcel owns a detached closed region that nothing
            // else refers to.
            unsafe { free_detached(b.as_ptr()) };
        }
        IN_FLIGHT.fetch_sub_relaxed(1);
    }
}

/// Parcels made and neither adopted nor dropped yet (process-wide). Zero
/// once every message has been received or discarded.
pub fn parcels_in_flight() -> u64 {
    IN_FLIGHT.load_acquire()
}
