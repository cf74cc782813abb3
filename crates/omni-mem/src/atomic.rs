//! The atomic policy layer: the only module in the workspace that names an
//! `Ordering`. Every shared counter goes through one of these named
//! operations, so a reviewer (or TSan) can audit orderings in one place.
//! See docs/ATOMIC_POLICY.md.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A 32-bit counter with named operations.
#[derive(Debug, Default)]
pub struct Counter32(AtomicU32);

impl Counter32 {
    pub const fn new(v: u32) -> Self {
        Counter32(AtomicU32::new(v))
    }

    /// Plain observation where no other memory is published with the value
    /// (statistics, debug assertions).
    #[inline]
    pub fn load_relaxed(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// Observe a value that another thread published with `store_release`
    /// or with the release half of `fetch_sub_acqrel`.
    #[inline]
    pub fn load_acquire(&self) -> u32 {
        self.0.load(Ordering::Acquire)
    }

    /// Publish a value together with every write made before it.
    #[inline]
    pub fn store_release(&self, v: u32) {
        self.0.store(v, Ordering::Release)
    }

    /// Reference-count increments: the caller already holds a reference (or
    /// the owning scope), so the object cannot be freed concurrently and no
    /// ordering is needed beyond atomicity (the Boost/`Arc` argument).
    #[inline]
    pub fn fetch_add_relaxed(&self, v: u32) -> u32 {
        self.0.fetch_add(v, Ordering::Relaxed)
    }

    /// Reference-count decrements. Release: every use of the region by this
    /// thread happens-before the decrement. Acquire: the thread that takes
    /// the count to zero sees every other thread's uses before it frees.
    #[inline]
    pub fn fetch_sub_acqrel(&self, v: u32) -> u32 {
        self.0.fetch_sub(v, Ordering::AcqRel)
    }
}

/// A 64-bit counter with named operations (ids, epochs, global statistics).
#[derive(Debug, Default)]
pub struct Counter64(AtomicU64);

impl Counter64 {
    pub const fn new(v: u64) -> Self {
        Counter64(AtomicU64::new(v))
    }

    /// Unique-id generation and statistics: only atomicity matters.
    #[inline]
    pub fn fetch_add_relaxed(&self, v: u64) -> u64 {
        self.0.fetch_add(v, Ordering::Relaxed)
    }

    /// Statistics that go down as well as up (parcels in flight): only
    /// atomicity matters; nothing is published with the value.
    #[inline]
    pub fn fetch_sub_relaxed(&self, v: u64) -> u64 {
        self.0.fetch_sub(v, Ordering::Relaxed)
    }

    #[inline]
    pub fn load_relaxed(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    #[inline]
    pub fn load_acquire(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    #[inline]
    pub fn store_release(&self, v: u64) {
        self.0.store(v, Ordering::Release)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter32_single_thread_sanity() {
        let c = Counter32::new(1);
        assert_eq!(c.fetch_add_relaxed(2), 1);
        assert_eq!(c.load_relaxed(), 3);
        assert_eq!(c.fetch_sub_acqrel(3), 3);
        assert_eq!(c.load_acquire(), 0);
        c.store_release(7);
        assert_eq!(c.load_acquire(), 7);
    }

    #[test]
    fn counter64_single_thread_sanity() {
        let c = Counter64::new(10);
        assert_eq!(c.fetch_add_relaxed(5), 10);
        assert_eq!(c.load_relaxed(), 15);
        c.store_release(1);
        assert_eq!(c.load_acquire(), 1);
    }
}
