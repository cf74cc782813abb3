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
//!   (`slots::compact`, then `compacted`);
//! * a region freed forgets its entries (`region_freed`), so a slot region
//!   holds entries only for originals that can still be read;
//! * a region merged hands its entries on (`region_merged`): its originals
//!   are the elder's objects now.
//!
//! The records hang off the control blocks (`RegionBlock::moves_in` of a
//! slot region; `pins_slot`, then `pins_more`, of a region holding
//! originals), so nothing is looked up by address. They are touched only
//! by copies into slot regions, compactions that find entries, and the
//! death or merge of a region that holds such moves: a plain region exit
//! only tests two fields that share the line it already reads.

use std::ptr;

use crate::region::RegionBlock;

/// An original (in region `from`) moved into a slot region.
#[derive(Clone, Copy)]
pub(crate) struct Remembered {
    pub(crate) original: *mut u8,
    pub(crate) from: *mut RegionBlock,
}

/// Run `f` on each slot region `y` holds moves into.
///
/// # Safety
/// `y` is a live block of this thread; `f` does not change `y`'s pins.
unsafe fn for_each_pinned(y: *mut RegionBlock, mut f: impl FnMut(*mut RegionBlock)) {
    // SAFETY: per the contract; `pins_more` is null or a boxed vector.
    unsafe {
        if !(*y).pins_slot.is_null() {
            f((*y).pins_slot);
        }
        if let Some(more) = (*y).pins_more.as_ref() {
            more.iter().for_each(|&s| f(s));
        }
    }
}

/// Record that `y` holds moves into slot region `s` (each pair once).
///
/// # Safety
/// Both are live blocks of this thread.
unsafe fn pin(y: *mut RegionBlock, s: *mut RegionBlock) {
    // SAFETY: per the contract; `pins_more` is null or ours to box.
    unsafe {
        if (*y).pins_slot == s {
            return;
        }
        (*y).dirty = true;
        if (*y).pins_slot.is_null() {
            (*y).pins_slot = s;
            return;
        }
        if (*y).pins_more.is_null() {
            (*y).pins_more = Box::into_raw(Box::default());
        }
        let more = &mut *(*y).pins_more;
        if !more.contains(&s) {
            more.push(s);
        }
    }
}

/// Forget every slot region `y` pins.
///
/// # Safety
/// `y` is a block of this thread.
unsafe fn unpin_all(y: *mut RegionBlock) {
    // SAFETY: per the contract.
    unsafe {
        (*y).pins_slot = ptr::null_mut();
        unpin_more(y);
    }
}

/// Free `y`'s vector of further pinned slot regions, if any.
///
/// # Safety
/// `y` is a block of this thread.
unsafe fn unpin_more(y: *mut RegionBlock) {
    // SAFETY: per the contract; `pins_more` came from `Box::into_raw`.
    unsafe {
        if !(*y).pins_more.is_null() {
            drop(Box::from_raw((*y).pins_more));
            (*y).pins_more = ptr::null_mut();
        }
    }
}

/// Remember that `moved` (originals, each with its region) now name
/// copies in slot region `s`.
///
/// # Safety
/// `s` is a live slot region of this thread; each `from` is a live region
/// of this thread holding its `original`.
pub(crate) unsafe fn remember(s: *mut RegionBlock, moved: &[Remembered]) {
    // SAFETY: per the contract; `moves_in` is null or a boxed vector.
    unsafe {
        if (*s).moves_in.is_null() {
            (*s).moves_in = Box::into_raw(Box::default());
            (*s).dirty = true;
        }
        (*(*s).moves_in).extend_from_slice(moved);
        // A session's originals usually share one region.
        let mut last = ptr::null_mut();
        for m in moved {
            if m.from != last {
                last = m.from;
                pin(m.from, s);
            }
        }
    }
}

/// The moves into slot region `s`, taken out (for its compaction).
///
/// # Safety
/// `s` is a live slot region of this thread.
pub(crate) unsafe fn take_into(s: *mut RegionBlock) -> Vec<Remembered> {
    // SAFETY: per the contract.
    unsafe {
        match (*s).moves_in.as_mut() {
            Some(v) => std::mem::take(v),
            None => Vec::new(),
        }
    }
}

/// `s` was compacted into `n`: the moves taken from `s` (their originals
/// now name copies in `n`) are `n`'s, and their regions pin `n`.
///
/// # Safety
/// `s` and `n` are live slot regions of this thread; `s` is about to be
/// freed; every `from` is live.
pub(crate) unsafe fn compacted(s: *mut RegionBlock, n: *mut RegionBlock, moved: Vec<Remembered>) {
    // SAFETY: per the contract.
    unsafe {
        let mut last = ptr::null_mut();
        for m in &moved {
            if m.from == last {
                continue;
            }
            last = m.from;
            let y = m.from;
            if (*y).pins_slot == s {
                (*y).pins_slot = n;
            } else if let Some(more) = (*y).pins_more.as_mut() {
                for x in more.iter_mut().filter(|x| **x == s) {
                    *x = n;
                }
            }
        }
        if !moved.is_empty() {
            remember(n, &moved);
        }
        if !(*s).moves_in.is_null() {
            drop(Box::from_raw((*s).moves_in));
            (*s).moves_in = ptr::null_mut();
        }
    }
}

/// `b` is being freed: forget the moves it holds, and (if it is a slot
/// region that still has entries: its owner died before a region holding
/// moves into it, which only a counted or tethered region can outlive)
/// the moves into it.
///
/// # Safety
/// `b` is a block of this thread being freed; every slot region it pins,
/// and every region holding a move into it, is live.
#[cold]
pub(crate) unsafe fn region_freed(b: *mut RegionBlock) {
    // SAFETY: per the contract; the vectors came from `Box::into_raw`.
    unsafe {
        for_each_pinned(b, |s| {
            if let Some(list) = (*s).moves_in.as_mut() {
                list.retain(|m| m.from != b);
            }
        });
        unpin_all(b);
        if !(*b).moves_in.is_null() {
            let list = Box::from_raw((*b).moves_in);
            (*b).moves_in = ptr::null_mut();
            for m in list.iter() {
                let y = m.from;
                if (*y).pins_slot == b {
                    (*y).pins_slot = ptr::null_mut();
                } else if let Some(more) = (*y).pins_more.as_mut() {
                    more.retain(|&x| x != b);
                }
                // Keep the first slot region in `pins_slot`, and no empty
                // vector (`pin` and `unpin_all` rely on both).
                if let Some(more) = (*y).pins_more.as_mut() {
                    if (*y).pins_slot.is_null() {
                        (*y).pins_slot = more.pop().unwrap_or(ptr::null_mut());
                    }
                    if more.is_empty() {
                        unpin_more(y);
                    }
                }
            }
        }
    }
}

/// `y` is being merged into `o`: its originals are `o`'s objects now.
///
/// # Safety
/// Both are live blocks of this thread; so is every slot region `y` pins.
#[cold]
pub(crate) unsafe fn region_merged(y: *mut RegionBlock, o: *mut RegionBlock) {
    // SAFETY: per the contract.
    unsafe {
        let mut pinned = Vec::new();
        for_each_pinned(y, |s| pinned.push(s));
        for s in pinned {
            if let Some(list) = (*s).moves_in.as_mut() {
                for m in list.iter_mut().filter(|m| m.from == y) {
                    m.from = o;
                }
            }
            pin(o, s);
        }
        unpin_all(y);
    }
}
