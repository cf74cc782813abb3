//! The atomic policy layer: the only module in the workspace that names an
//! `Ordering`. Every shared word goes through one of these named
//! operations, so a reviewer (or TSan) can audit orderings in one place.
//! `tests/atomic_policy.rs` fails if any other file names an atomic
//! ordering or an atomic type. See docs/ATOMIC_POLICY.md.
//!
//! Under `--cfg loom` the same wrappers sit on loom's atomics, so the loom
//! models (`tests/loom.rs`) check the real orderings.

#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};
use std::sync::atomic::Ordering;
#[cfg(not(loom))]
use std::sync::atomic::{fence, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize};

/// A 32-bit counter with named operations.
#[derive(Debug, Default)]
pub struct Counter32(AtomicU32);

impl Counter32 {
    #[cfg(not(loom))]
    pub const fn new(v: u32) -> Self {
        Counter32(AtomicU32::new(v))
    }

    #[cfg(loom)]
    pub fn new(v: u32) -> Self {
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
    #[cfg(not(loom))]
    pub const fn new(v: u64) -> Self {
        Counter64(AtomicU64::new(v))
    }

    #[cfg(loom)]
    pub fn new(v: u64) -> Self {
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

/// A word for the safe-memory-reclamation handshake (smr.rs). The
/// handshake is a store-then-load on each side (Dekker): a reader
/// increments its counter then re-reads the epoch; the writer flips the
/// epoch then reads the counter. A [`fence_seqcst`] sits between the store
/// and the load on both sides; by the fence rule of the C++ memory model at
/// least one side then sees the other's store, which is the whole
/// correctness argument of smr.rs. Acquire and release alone would let both
/// loads miss. (Fences rather than SeqCst accesses: loom models SeqCst
/// fences exactly but not SeqCst loads and stores.)
#[derive(Debug, Default)]
pub struct SyncWord(AtomicUsize);

impl SyncWord {
    #[cfg(not(loom))]
    pub const fn new(v: usize) -> Self {
        SyncWord(AtomicUsize::new(v))
    }

    #[cfg(loom)]
    pub fn new(v: usize) -> Self {
        SyncWord(AtomicUsize::new(v))
    }

    /// Read the epoch (pairs with `store_release`: a reader that sees a new
    /// epoch sees everything the writer published before flipping it), or
    /// a reader count (pairs with `fetch_sub_release`: a writer that sees
    /// the count drop sees the reader's accesses as finished).
    #[inline]
    pub fn load_acquire(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// The writer's epoch flip; a fence follows it (see the type's comment).
    #[inline]
    pub fn store_release(&self, v: usize) {
        self.0.store(v, Ordering::Release)
    }

    /// A reader announcing itself; a fence follows it (see the type's
    /// comment), so the increment itself needs no ordering.
    #[inline]
    pub fn fetch_add_relaxed(&self, v: usize) -> usize {
        self.0.fetch_add(v, Ordering::Relaxed)
    }

    /// A reader leaving: release, so its reads of the protected data
    /// happen-before the writer's acquire load that sees the count drop,
    /// and thus before the writer frees what it read.
    #[inline]
    pub fn fetch_sub_release(&self, v: usize) -> usize {
        self.0.fetch_sub(v, Ordering::Release)
    }
}

/// A sequentially consistent fence: the middle of each side of a Dekker
/// handshake (see [`SyncWord`]).
#[inline]
pub fn fence_seqcst() {
    fence(Ordering::SeqCst)
}

/// A published pointer: written once (or replaced) by a writer after the
/// pointee is fully initialised, read by any thread.
#[derive(Debug)]
pub struct Published<T>(AtomicPtr<T>);

impl<T> Published<T> {
    #[cfg(not(loom))]
    pub const fn null() -> Self {
        Published(AtomicPtr::new(std::ptr::null_mut()))
    }

    #[cfg(loom)]
    pub fn null() -> Self {
        Published(AtomicPtr::new(std::ptr::null_mut()))
    }

    pub fn new(p: *mut T) -> Self {
        Published(AtomicPtr::new(p))
    }

    /// Read the pointer and see the pointee as it was when published.
    #[inline]
    pub fn load_acquire(&self) -> *mut T {
        self.0.load(Ordering::Acquire)
    }

    /// Publish `p`: every write to the pointee made before this call is
    /// visible to a thread whose `load_acquire` returns `p`.
    #[inline]
    pub fn store_release(&self, p: *mut T) {
        self.0.store(p, Ordering::Release)
    }

    /// The writer's own view, under the writer's lock (no other thread
    /// stores this pointer).
    #[inline]
    pub fn load_relaxed(&self) -> *mut T {
        self.0.load(Ordering::Relaxed)
    }
}

/// Let other threads run while spinning on a [`SyncWord`] (loom needs to
/// be told, or it reports the spin as a livelock).
#[inline]
pub fn spin_yield() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}

#[cfg(all(test, not(loom)))]
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
        assert_eq!(c.fetch_sub_relaxed(3), 15);
        assert_eq!(c.load_relaxed(), 12);
        c.store_release(1);
        assert_eq!(c.load_acquire(), 1);
    }

    #[test]
    fn sync_word_and_published_single_thread_sanity() {
        let w = SyncWord::new(0);
        assert_eq!(w.fetch_add_relaxed(2), 0);
        assert_eq!(w.fetch_sub_release(1), 2);
        assert_eq!(w.load_acquire(), 1);
        w.store_release(9);
        fence_seqcst();
        assert_eq!(w.load_acquire(), 9);
        let mut x = 5u8;
        let p: Published<u8> = Published::null();
        assert!(p.load_acquire().is_null());
        p.store_release(&mut x);
        assert_eq!(p.load_relaxed(), &mut x as *mut u8);
    }
}
