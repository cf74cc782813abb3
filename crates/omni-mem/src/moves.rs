//! Moves into slot regions: what their compaction must know.
//!
//! A repair into an older region leaves each source object it copies
//! *moved*: its header names its copy for good (transmigrate.rs). A copy
//! into a slot region is also a move, but a slot region may be compacted
//! while the moved original still lives (usually in the scratch region of
//! the activation that made it), and compaction frees the copy the move
//! names. So every move into a slot region is remembered here, with the
//! region holding the original, until that region is freed:
//!
//! * compaction keeps the remembered copies (they are roots, like the
//!   container's slots) and points each original at its copy's new place
//!   (`slots::compact`);
//! * a region freed forgets its entries (`region_freed`), so a slot region
//!   holds entries only for originals that can still be read;
//! * a region merged hands its entries on (`region_merged`): its originals
//!   are the elder's objects now.
//!
//! The records are per thread (regions have one owner) and are touched
//! only by copies into slot regions, compactions that find entries, and
//! the death or merge of a region flagged as holding such moves
//! (`RegionBlock::pins_slots`): never on a plain region exit.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::region::RegionBlock;

/// An original (in region `from`) moved into a slot region.
#[derive(Clone, Copy)]
pub(crate) struct Remembered {
    pub(crate) original: *mut u8,
    pub(crate) from: *mut RegionBlock,
}

#[derive(Default)]
struct Records {
    /// Per slot region (by address): the moves into it.
    into: HashMap<usize, Vec<Remembered>>,
    /// Per region holding originals (by address): the slot regions it has
    /// entries in, each once.
    from: HashMap<usize, Vec<*mut RegionBlock>>,
}

thread_local! {
    static RECORDS: RefCell<Records> = RefCell::new(Records::default());
}

/// Remember that `moved` (originals, each with its region) now name
/// copies in slot region `s`.
///
/// # Safety
/// `s` is a live slot region of this thread; each `from` is a live region
/// of this thread holding its `original`.
pub(crate) unsafe fn remember(s: *mut RegionBlock, moved: &[Remembered]) {
    RECORDS.with(|r| {
        let mut r = r.borrow_mut();
        let r = &mut *r;
        r.into.entry(s.addr()).or_default().extend_from_slice(moved);
        for m in moved {
            let list = r.from.entry(m.from.addr()).or_default();
            if !list.contains(&s) {
                list.push(s);
                // SAFETY: per the contract.
                unsafe {
                    (*s).move_pins += 1;
                    (*s).dirty = true;
                    (*m.from).pins_slots = true;
                    (*m.from).dirty = true;
                }
            }
        }
    });
}

/// The moves into slot region `s`, taken out (for its compaction).
pub(crate) fn take_into(s: *mut RegionBlock) -> Vec<Remembered> {
    RECORDS.with(|r| r.borrow_mut().into.remove(&s.addr()).unwrap_or_default())
}

/// `s` was compacted into `n`: the moves taken from `s` (their originals
/// now name copies in `n`) are `n`'s.
///
/// # Safety
/// `s` and `n` are live slot regions of this thread; `s` is about to be
/// freed.
pub(crate) unsafe fn compacted(s: *mut RegionBlock, n: *mut RegionBlock, moved: Vec<Remembered>) {
    RECORDS.with(|r| {
        let mut r = r.borrow_mut();
        let r = &mut *r;
        for list in r.from.values_mut() {
            for x in list.iter_mut() {
                if *x == s {
                    *x = n;
                }
            }
        }
        if !moved.is_empty() {
            r.into.entry(n.addr()).or_default().extend(moved);
        }
        // SAFETY: per the contract.
        unsafe {
            (*n).move_pins += (*s).move_pins;
            (*n).dirty = true;
            (*s).move_pins = 0;
        }
    });
}

/// `b` is being freed: forget the moves it holds, and (if it is a slot
/// region that still has entries: its owner died before a region holding
/// moves into it, which only a counted or tethered region can outlive)
/// the moves into it.
///
/// # Safety
/// `b` is a block of this thread being freed; every slot region listed
/// for it is live.
#[cold]
pub(crate) unsafe fn region_freed(b: *mut RegionBlock) {
    RECORDS.with(|r| {
        let mut r = r.borrow_mut();
        let r = &mut *r;
        // SAFETY: per the contract.
        unsafe {
            if (*b).pins_slots {
                for s in r.from.remove(&b.addr()).unwrap_or_default() {
                    (*s).move_pins -= 1;
                    if let Some(list) = r.into.get_mut(&s.addr()) {
                        list.retain(|m| m.from != b);
                        if list.is_empty() {
                            r.into.remove(&s.addr());
                        }
                    }
                }
                (*b).pins_slots = false;
            }
            if (*b).move_pins > 0 {
                r.into.remove(&b.addr());
                for list in r.from.values_mut() {
                    list.retain(|&s| s != b);
                }
                (*b).move_pins = 0;
            }
        }
    });
}

/// `y` is being merged into `o`: its originals are `o`'s objects now.
///
/// # Safety
/// Both are live blocks of this thread.
#[cold]
pub(crate) unsafe fn region_merged(y: *mut RegionBlock, o: *mut RegionBlock) {
    RECORDS.with(|r| {
        let mut r = r.borrow_mut();
        let r = &mut *r;
        let taken = r.from.remove(&y.addr()).unwrap_or_default();
        // SAFETY: per the contract; listed slot regions are live.
        unsafe {
            (*y).pins_slots = false;
            for s in taken {
                if let Some(list) = r.into.get_mut(&s.addr()) {
                    for m in list.iter_mut().filter(|m| m.from == y) {
                        m.from = o;
                    }
                }
                let mine = r.from.entry(o.addr()).or_default();
                if mine.contains(&s) {
                    (*s).move_pins -= 1;
                } else {
                    mine.push(s);
                    (*o).pins_slots = true;
                    (*o).dirty = true;
                }
            }
        }
    });
}
