//! Safe memory reclamation for internal runtime tables (not heap GC: only
//! a table's own nodes are reclaimed, never Lisp values). The scheme is an
//! epoch with two reader counters, a sleepable-RCU variant chosen in
//! docs/SMR_FOR_RUNTIME_STRUCTURES.md:
//!
//! * a reader enters by reading the epoch `e`, incrementing `readers[e%2]`
//!   and checking the epoch is still `e` (else it undoes and retries); it
//!   leaves by decrementing the same counter. Entering is lock-free: a
//!   retry means a writer flipped the epoch, i.e. made progress.
//! * a writer that unpublished a node (swapped in a replacement) calls
//!   [`Smr::synchronize`]: flip the epoch, then wait until the old
//!   parity's counter drains. Every reader that could have loaded the old
//!   pointer is counted there (see `SyncWord` in atomic.rs for the
//!   Dekker argument: a SeqCst fence between increment and re-check, and
//!   between flip and count check), so afterwards the node can be freed.
//!   A reader whose re-check saw the new epoch read the flip (release), so
//!   it sees the replacement, never the old node.
//!
//! Grace periods are synchronous and writers are serialised by the table's
//! own lock; readers never wait. Read sections must be short and must not
//! block (they cover one table lookup).

use crate::atomic::{fence_seqcst, spin_yield, SyncWord};

/// One reclamation domain (one per table).
#[derive(Debug, Default)]
pub struct Smr {
    epoch: SyncWord,
    readers: [SyncWord; 2],
}

/// An active read section: pointers loaded from the protected table stay
/// valid until it is dropped.
pub struct ReadGuard<'a> {
    smr: &'a Smr,
    parity: usize,
}

impl Smr {
    #[cfg(not(loom))]
    pub const fn new() -> Smr {
        Smr {
            epoch: SyncWord::new(0),
            readers: [SyncWord::new(0), SyncWord::new(0)],
        }
    }

    #[cfg(loom)]
    pub fn new() -> Smr {
        Smr {
            epoch: SyncWord::new(0),
            readers: [SyncWord::new(0), SyncWord::new(0)],
        }
    }

    /// Enter a read section.
    pub fn read(&self) -> ReadGuard<'_> {
        loop {
            let e = self.epoch.load_acquire();
            let parity = e & 1;
            self.readers[parity].fetch_add_relaxed(1);
            fence_seqcst();
            if self.epoch.load_acquire() == e {
                return ReadGuard { smr: self, parity };
            }
            // A writer flipped the epoch in between: it may already have
            // checked this counter, so this reader must not count on it.
            self.readers[parity].fetch_sub_release(1);
        }
    }

    /// Wait until every read section that started before this call has
    /// ended. Callers must serialise calls (hold the table's writer lock)
    /// and must have unpublished what they are about to free.
    pub fn synchronize(&self) {
        let e = self.epoch.load_acquire();
        self.epoch.store_release(e.wrapping_add(1));
        fence_seqcst();
        let old = &self.readers[e & 1];
        while old.load_acquire() != 0 {
            spin_yield();
        }
    }
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        self.smr.readers[self.parity].fetch_sub_release(1);
    }
}
