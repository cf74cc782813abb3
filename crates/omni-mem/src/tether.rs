//! Tethers and borrowed references (backlog R5, docs/REGION_TETHERING.md).
//!
//! A tether pins a region for a borrow window: while any tether is active
//! the region is alive even if its scope ends. Tethers nest (end in reverse
//! order of start). A [`BorrowedRef`] records the region, the region's epoch
//! and the serial of the tether it was taken under; in debug builds every
//! use checks that the region's epoch is unchanged and that the tether is
//! still active, and reports a stale borrow as an error.

use std::cell::{Cell, RefCell};

use crate::error::{MemError, MemResult};
use crate::region::{maybe_free, region_of, Region};
use crate::value::Value;

thread_local! {
    static NEXT_SERIAL: Cell<u64> = const { Cell::new(1) };
    /// Serials of this thread's active tethers, innermost last.
    static ACTIVE: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// An active borrow window on a region. Not `Send`: tethers are per thread.
#[derive(Debug)]
#[must_use = "a tether pins its region until tether_end"]
pub struct Tether {
    region: Region,
    serial: u64,
}

/// Pin `r` until [`tether_end`].
pub fn tether_start(r: Region) -> Tether {
    let b = r.block();
    // SAFETY: the caller holds `r`'s scope or a reference, so it is live.
    unsafe { (*b).tethers += 1 };
    let serial = NEXT_SERIAL.with(|s| {
        let v = s.get();
        s.set(v + 1);
        v
    });
    if cfg!(debug_assertions) {
        ACTIVE.with(|a| a.borrow_mut().push(serial));
    }
    Tether { region: r, serial }
}

/// End a borrow window. Frees the region if its scope already ended and no
/// counted reference or other tether remains. Tethers must end innermost
/// first; in debug builds a wrong order is reported (the tether still ends).
pub fn tether_end(t: Tether) -> MemResult<()> {
    let mut order = Ok(());
    if cfg!(debug_assertions) {
        ACTIVE.with(|a| {
            let mut a = a.borrow_mut();
            match a.iter().rposition(|&s| s == t.serial) {
                Some(i) if i + 1 == a.len() => {
                    a.pop();
                }
                Some(i) => {
                    a.remove(i);
                    order = Err(MemError::TetherOrder);
                }
                None => order = Err(MemError::TetherOrder),
            }
        });
    }
    let b = t.region.block();
    // SAFETY: the tether kept the region alive until now.
    unsafe {
        (*b).tethers -= 1;
        if (*b).tethers == 0 && !(*b).scope_alive {
            maybe_free(b);
        }
    }
    order
}

impl Tether {
    pub fn region(&self) -> Region {
        self.region
    }

    /// Borrow a value that lives in the tethered region.
    pub fn borrow(&self, v: Value) -> BorrowedRef {
        debug_assert!(
            region_of(v).is_none_or(|r| r.same_as(self.region)),
            "borrowed value does not live in the tethered region"
        );
        BorrowedRef {
            region: self.region,
            region_id: self.region.id(),
            serial: self.serial,
            value: v,
        }
    }
}

/// A value borrowed under a tether: (region, epoch, tether serial, value).
#[derive(Debug, Clone, Copy)]
pub struct BorrowedRef {
    region: Region,
    region_id: u64,
    serial: u64,
    value: Value,
}

impl BorrowedRef {
    /// The borrowed value, validated in debug builds: fails if the region
    /// died (epoch changed) or the tether it was taken under has ended.
    pub fn get(&self) -> MemResult<Value> {
        if cfg!(debug_assertions) {
            if !self.region.is_alive() {
                return Err(MemError::StaleBorrow {
                    region_id: self.region_id,
                    reason: "the region was freed (epoch changed)",
                });
            }
            let active = ACTIVE.with(|a| a.borrow().contains(&self.serial));
            if !active {
                return Err(MemError::StaleBorrow {
                    region_id: self.region_id,
                    reason: "the tether it was borrowed under has ended",
                });
            }
        }
        Ok(self.value)
    }
}
