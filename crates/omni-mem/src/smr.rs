//! Safe memory reclamation for internal runtime tables (not heap GC: only
//! a table's own nodes are reclaimed, never Lisp values). The scheme is an
//! epoch with two reader counters, a sleepable-RCU variant chosen in
//! docs/SMR_FOR_RUNTIME_STRUCTURES.md:
//!
//! * a reader enters by reading the epoch `e`, incrementing the parity
//!   counter `e%2` of its stripe (stripes spread readers over cache lines)
//!   and checking the epoch is still `e` (else it undoes and retries); it
//!   leaves by decrementing the same counter. Entering is lock-free: a
//!   retry means a writer flipped the epoch, i.e. made progress.
//! * a writer that unpublished a node (swapped in a replacement) calls
//!   [`Smr::synchronize`]: flip the epoch, then wait until the old
//!   parity's counter drains in every stripe. Every reader that could have loaded the old
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

/// Reader counters are split into stripes on separate cache lines, so
/// readers on different threads do not contend on one line. A reader
/// picks its stripe from its stack address (threads have distinct stacks;
/// no thread-local state needed); the writer checks every stripe.
const STRIPES: usize = 8;

/// The two parity counters of one stripe, alone on their cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe {
    counts: [SyncWord; 2],
}

/// One reclamation domain (one per table).
#[derive(Debug, Default)]
pub struct Smr {
    epoch: SyncWord,
    stripes: [Stripe; STRIPES],
}

/// An active read section: pointers loaded from the protected table stay
/// valid until it is dropped.
pub struct ReadGuard<'a> {
    smr: &'a Smr,
    stripe: usize,
    parity: usize,
}

/// This thread's stripe: a hash of the MiB of its stack it runs in
/// (stable across nearby call depths; threads' stacks are far apart).
/// Any value is correct, since the guard remembers its stripe; a good
/// spread only avoids contention.
#[cfg(not(loom))]
#[inline]
fn my_stripe() -> usize {
    let marker = 0u8;
    let mib = (std::ptr::addr_of!(marker).addr() >> 20) as u64;
    (mib.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 61) as usize % STRIPES
}

/// Under loom the model must be deterministic, and stack addresses are
/// not: every reader uses stripe 1 (not 0, so a writer that checked only
/// the first stripe would be caught).
#[cfg(loom)]
fn my_stripe() -> usize {
    1
}

impl Smr {
    pub fn new() -> Smr {
        Smr::default()
    }

    /// Enter a read section.
    pub fn read(&self) -> ReadGuard<'_> {
        let stripe = my_stripe();
        let counts = &self.stripes[stripe].counts;
        loop {
            let e = self.epoch.load_acquire();
            let parity = e & 1;
            counts[parity].fetch_add_relaxed(1);
            fence_seqcst();
            if self.epoch.load_acquire() == e {
                return ReadGuard {
                    smr: self,
                    stripe,
                    parity,
                };
            }
            // A writer flipped the epoch in between: it may already have
            // checked this counter, so this reader must not count on it.
            counts[parity].fetch_sub_release(1);
        }
    }

    /// Wait until every read section that started before this call has
    /// ended. Callers must serialise calls (hold the table's writer lock)
    /// and must have unpublished what they are about to free.
    pub fn synchronize(&self) {
        let e = self.epoch.load_acquire();
        self.epoch.store_release(e.wrapping_add(1));
        fence_seqcst();
        for s in &self.stripes {
            let old = &s.counts[e & 1];
            while old.load_acquire() != 0 {
                spin_yield();
            }
        }
    }
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        self.smr.stripes[self.stripe].counts[self.parity].fetch_sub_release(1);
    }
}
