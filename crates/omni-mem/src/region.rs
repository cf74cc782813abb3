//! Regions: bump allocation in aligned segments, Region-RC liveness, merge.
//!
//! Layout. Every segment is `SEGMENT_SIZE`-aligned and starts with a
//! [`SegHeader`] naming its region, so `region_of(ptr)` is a mask and one
//! load (plus a forwarding hop for merged regions). A region's control block
//! ([`RegionBlock`]) is the header of its first segment: creating a region
//! pops one pooled segment and fills a few words, and a tiny region's objects
//! share the control block's segment (the "inline buffer"). Objects larger
//! than `LARGE_OBJECT` get a segment of their own whose first window holds the
//! object's start, so masking still finds the header.
//!
//! Liveness (docs/REGION_RC_MODEL.md): a region's memory may be reused only
//! when `!scope_alive && external_rc == 0 && tethers == 0`. `maybe_free` is
//! the only place that frees, and it checks exactly that.
//!
//! Order (docs/REGION_DEPENDENCY_RULES.md): each region has a rank, its
//! position in its thread's creation order. Rank 0 is reserved for regions
//! that live as long as the process. A region whose scope ended but which is
//! still pinned (counted or tethered) gets rank `RANK_RETAINED`, the youngest
//! of all, so the barrier copies out of it instead of pointing into it. The
//! thread keeps its live regions in a list ordered by rank; merge uses it to
//! prove no live region sits between the two it splices.
//!
//! Threading (docs/REGION_THREADING_MODEL.md): a region belongs to the
//! thread that created it; only `external_rc` is touched by other threads
//! (atomic, see atomic.rs). The one exception is a *closed* region (a
//! message region, see parcel.rs): nothing outside points into it and it
//! points into nothing outside, and its segments come from the process-wide
//! [`SharedPool`] rather than a thread's slabs, so it can change owner
//! thread as a whole. A thread's own slabs never leave it.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::{Cell, UnsafeCell};
use std::mem::ManuallyDrop;
use std::ptr::{self, addr_of_mut, NonNull};
use std::sync::{Mutex, MutexGuard};

use crate::atomic::{Counter32, Counter64};
use crate::error::{MemError, MemResult};
use crate::stats::{HeapStats, RegionStats};
use crate::trace::{TraceEvent, TraceKind};
use crate::value::Value;

/// Size and alignment of a standard segment.
pub const SEGMENT_SIZE: usize = 16 * 1024;
const SEG_MASK: usize = !(SEGMENT_SIZE - 1);
/// Objects above this size get a dedicated segment.
pub const LARGE_OBJECT: usize = SEGMENT_SIZE / 4;
/// Default H0 threshold: a young region with at least this many bytes is
/// merged rather than copied out of (docs/REGION_DEPENDENCY_RULES.md).
pub const DEFAULT_MERGE_THRESHOLD_BYTES: usize = 64 * 1024;
/// Rank of process-lifetime regions (oldest of all).
pub const RANK_PROCESS: u64 = 0;
/// Rank of regions whose scope ended while still pinned (youngest of all).
pub const RANK_RETAINED: u64 = u64::MAX;
/// Standard segments are carved out of slabs of this many segments (1 MiB):
/// one system allocation per slab keeps the alignment overhead at one
/// segment per slab instead of up to a segment per segment.
const SLAB_SEGMENTS: usize = 64;
const SLAB_BYTES: usize = SLAB_SEGMENTS * SEGMENT_SIZE;
/// Region control-block segments kept as such per thread in release builds
/// (the rest go back to the data pool). Debug builds keep all of them so
/// stale handles and borrows can always read the epoch they are checked
/// against.
#[cfg(not(debug_assertions))]
const HEADER_POOL_CAP: usize = 1024;

/// A segment's `state`, read only by debug builds (`debug_check_live`);
/// release builds do not keep it up to date on the hot paths (region
/// create and free): two instructions each.
const STATE_LIVE: u64 = 0x4c49_5645_5345_4721;
const STATE_FREE: u64 = 0x4652_4545_5345_4721;
#[cfg(debug_assertions)]
const POISON: u8 = 0xDB;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum SegKind {
    Header = 1,
    Data = 2,
    Large = 3,
}

#[repr(C)]
pub(crate) struct SegHeader {
    /// Region this segment was allocated for; follow `forward` from there.
    region: *mut RegionBlock,
    next: *mut SegHeader,
    /// Total bytes of this allocation.
    size: usize,
    /// `STATE_LIVE` or `STATE_FREE`: kept by debug builds only.
    state: u64,
    kind: SegKind,
    /// From the process-wide shared pool (closed regions): goes back there
    /// when freed, whatever thread frees it.
    shared: bool,
}

const SEG_HDR: usize = round_up_const(std::mem::size_of::<SegHeader>(), 16);

#[repr(C)]
pub(crate) struct RegionBlock {
    seg: SegHeader,
    cur: *mut u8,
    /// Bump limit: `seg_end`, or lower when a quota is near.
    end: *mut u8,
    seg_end: *mut u8,
    cur_seg_start: *mut u8,
    tail: *mut SegHeader,
    /// Set by merge: this region's objects now belong to `forward`.
    pub(crate) forward: *mut RegionBlock,
    id: u64,
    /// Bumped every time this control block's region dies. Survives reuse of
    /// the segment (header segments are pooled apart from data segments).
    pub(crate) epoch: u64,
    /// Lifetime rank when this region is the *target* of an edge: an
    /// object elsewhere may point here only if this rank is lower than its
    /// region's `admit_rank`.
    pub(crate) rank: u64,
    /// Rank when this region *holds* the pointer: an edge from here to a
    /// region of rank r is allowed only if `r < admit_rank`. Equal to
    /// `rank` for ordinary regions; 0 for closed regions (every outgoing
    /// edge is repaired by copying in) and 1 for retained ones.
    pub(crate) admit_rank: u64,
    /// A closed (message) region: see the module comment.
    pub(crate) closed: bool,
    pub(crate) external_rc: Counter32,
    pub(crate) tethers: u32,
    pub(crate) scope_alive: bool,
    /// Whether a *cold* field may differ from a new block's value. The
    /// cold fields are `seg.next`, `end`, `seg_end`, `cur_seg_start`,
    /// `tail` and everything from `bytes_closed` to `slot_overwrites`; every write
    /// to one sets this, and retiring a dirty control block resets them
    /// (`reset_cold`), so a block recycled from the header pool needs
    /// only its hot fields written (`new_block_in`). Also set on every
    /// block that is not of this thread's own pool (closed ones), and on
    /// one created while recording events (its free is recorded). A clean
    /// block is freed by `free_clean_region`, and `region_exit` tests this
    /// first: a clean block was never merged.
    pub(crate) dirty: bool,
    owner: u64,
    bytes_closed: usize,
    /// Bytes already folded into the thread's `live_bytes`.
    reported: usize,
    inline_used_frozen: usize,
    segments: usize,
    seg_bytes: usize,
    merges_in: u64,
    pub(crate) transmigrated_objects_in: u64,
    pub(crate) transmigrated_bytes_in: u64,
    /// The first transmigration session of the owning thread that may have
    /// left pair marks in this region's objects (`MARKS_NONE`: none may
    /// have). Only sessions of the owner mark an unclosed region's pairs,
    /// so every pair mark here is from a session numbered from this one to
    /// the thread's latest (transmigrate.rs, `marks_trusted`).
    marked_since: u64,
    quota: usize,
    /// Slot regions (slots.rs): for a slot region, the region that owns
    /// it (it lives exactly as long as that region unless compacted away);
    /// null for every other region.
    pub(crate) parent: *mut RegionBlock,
    /// The first slot region this region owns; they are linked through
    /// `slot_next` and freed with it (`free_slot_regions`).
    pub(crate) slot_head: *mut RegionBlock,
    pub(crate) slot_next: *mut RegionBlock,
    /// A slot region some read handed a pointer out of: never compacted.
    pub(crate) pinned: bool,
    /// A slot region is compacted when its bytes reach this...
    pub(crate) compact_at: usize,
    /// ...and at least half of the stores into its container since it was
    /// made replaced a value that lived in it (slots.rs).
    pub(crate) slot_stores: u64,
    pub(crate) slot_overwrites: u64,
    prev_live: *mut RegionBlock,
    next_live: *mut RegionBlock,
    /// For a slot region: the moves into it that its compaction must keep
    /// and re-point (moves.rs; a `Box`ed vector, or null). (These cold
    /// fields come last, so the live-list links keep their cache line.)
    pub(crate) moves_in: *mut Vec<crate::moves::Remembered>,
    /// For a region holding moves into slot regions: the first such slot
    /// region, and a `Box`ed vector of any others (moves.rs; null: none).
    pub(crate) pins_slot: *mut RegionBlock,
    pub(crate) pins_more: *mut Vec<*mut RegionBlock>,
}

const BLOCK_SIZE: usize = round_up_const(std::mem::size_of::<RegionBlock>(), 16);

const fn round_up_const(n: usize, to: usize) -> usize {
    (n + to - 1) & !(to - 1)
}

static NEXT_THREAD_TOKEN: Counter64 = Counter64::new(1);

/// Per-thread heap state: segment pools, rank counter, the ordered list of
/// live regions, configuration and statistics.
///
/// It has no destructor, so reaching it is a plain thread-local address
/// (a type with one makes every access check the destructor's
/// registration first: two extra branches on every region create+exit).
/// What needs freeing at thread exit is freed by [`HeapGuard`], a
/// separate thread-local armed on the cold paths that first acquire
/// memory.
struct ThreadHeap {
    /// The control block freed last, kept out of `header_pool`: the next
    /// region created takes it without touching the pool (2-3% of a
    /// create+exit, measured A/B). Null when empty.
    hot_header: Cell<*mut u8>,
    header_pool: UnsafeCell<ManuallyDrop<Vec<*mut u8>>>,
    data_pool: UnsafeCell<ManuallyDrop<Vec<*mut u8>>>,
    /// Slabs this thread allocated (sorted by address), freed at thread
    /// exit or by `trim_pools` once every segment of one is pooled.
    slabs: UnsafeCell<ManuallyDrop<Vec<*mut u8>>>,
    next_rank: Cell<u64>,
    /// The rank-ordered live list. Read it only after `flush_pending_in`.
    live_head: Cell<*mut RegionBlock>,
    live_tail: Cell<*mut RegionBlock>,
    /// The youngest live region when it is not linked yet (else null): it
    /// belongs after `live_tail`. A region created and exited with nothing
    /// created in between (every leaf scope) never touches the list.
    pending: Cell<*mut RegionBlock>,
    token: Cell<u64>,
    /// The id the next region of this thread gets: `token << 40 | n` for
    /// its n-th region (n from 1), so creating a region needs no atomic
    /// operation. Set when the token is (`first_token_in`), which every
    /// creation asks for first or, recycling a block, did before; the
    /// count of regions created is derived from it (`regions_created_in`).
    next_id: Cell<u64>,
    merge_threshold: Cell<usize>,
    /// Optional limit on this thread's live segment bytes (0: none).
    heap_limit: Cell<usize>,
    /// Region event log (`trace_start`), and its time origin.
    tracing: Cell<bool>,
    trace_origin: Cell<Option<std::time::Instant>>,
    trace: UnsafeCell<ManuallyDrop<Vec<TraceEvent>>>,
    stats: UnsafeCell<HeapStats>,
}

/// Frees the thread's slabs and pool vectors when the thread ends.
struct HeapGuard;

impl Drop for HeapGuard {
    fn drop(&mut self) {
        // HEAP has no destructor, so it is still reachable here.
        let _ = HEAP.try_with(|h| {
            // SAFETY: the thread is ending and no other reference to these
            // cells is live (omni-mem is not re-entered from here).
            unsafe {
                let live = synced_stats_in(h).derived_live_regions();
                // A region still live (a value leaked into another
                // thread-local, say) keeps every slab: leaking them is
                // safe, freeing them might not be. Pools and slabs are
                // emptied either way, so a late create takes fresh memory.
                let slabs = std::mem::take(&mut **h.slabs.get());
                if live == 0 {
                    for p in slabs {
                        // SAFETY: no region of this thread is live, so no
                        // segment of its slabs is in use.
                        os_free(p, SLAB_BYTES);
                    }
                }
                // Dropping the taken vectors frees their buffers and
                // leaves valid empty ones behind for any late use.
                h.hot_header.set(ptr::null_mut());
                drop(std::mem::take(&mut **h.header_pool.get()));
                drop(std::mem::take(&mut **h.data_pool.get()));
                drop(std::mem::take(&mut **h.trace.get()));
            }
        });
    }
}

/// Make sure this thread's [`HeapGuard`] will run. Called on the cold
/// paths that give the heap memory to free (a new slab, tracing).
#[cold]
fn arm_heap_guard() {
    // After the guard was destroyed (a late use during thread exit) this
    // fails, and what is acquired then is leaked rather than freed.
    let _ = HEAP_GUARD.try_with(|_| {});
}

thread_local! {
    static HEAP_GUARD: HeapGuard = const { HeapGuard };
    static HEAP: ThreadHeap = const {
        ThreadHeap {
            hot_header: Cell::new(ptr::null_mut()),
            header_pool: UnsafeCell::new(ManuallyDrop::new(Vec::new())),
            data_pool: UnsafeCell::new(ManuallyDrop::new(Vec::new())),
            slabs: UnsafeCell::new(ManuallyDrop::new(Vec::new())),
            next_rank: Cell::new(1),
            live_head: Cell::new(ptr::null_mut()),
            live_tail: Cell::new(ptr::null_mut()),
            pending: Cell::new(ptr::null_mut()),
            token: Cell::new(0),
            next_id: Cell::new(0),
            merge_threshold: Cell::new(DEFAULT_MERGE_THRESHOLD_BYTES),
            heap_limit: Cell::new(0),
            tracing: Cell::new(false),
            trace_origin: Cell::new(None),
            trace: UnsafeCell::new(ManuallyDrop::new(Vec::new())),
            stats: UnsafeCell::new(HeapStats {
                regions_created: 0,
                regions_freed: 0,
                regions_merged: 0,
                live_regions: 0,
                live_bytes: 0,
                peak_live_bytes: 0,
                live_segment_bytes: 0,
                peak_segment_bytes: 0,
                segments_from_os: 0,
                merges: 0,
                merges_refused: 0,
                merge_refusals: [0; 9],
                repairs_below_merge_threshold: 0,
                transmigrations: 0,
                transmigrated_objects: 0,
                transmigrated_bytes: 0,
                peak_transmigration_side_bytes: 0,
                repairs_transmigrate: 0,
                repairs_merge: 0,
                quota_errors: 0,
                regions_sent: 0,
                regions_adopted: 0,
                slot_regions_created: 0,
                slot_compactions: 0,
                slot_bytes_reclaimed: 0,
                slot_regions_pinned: 0,
            }),
        }
    };
}

fn with_heap<R>(f: impl FnOnce(&ThreadHeap) -> R) -> R {
    HEAP.with(f)
}

/// Run `f` on this thread's statistics. `f` must not re-enter omni-mem.
pub(crate) fn with_stats<R>(f: impl FnOnce(&mut HeapStats) -> R) -> R {
    // SAFETY: the stats cell is only reached through this function, whose
    // callers pass closures that do not call back into it, so no two
    // mutable references to it exist at once; the heap is thread-local.
    with_heap(|h| f(unsafe { &mut *h.stats.get() }))
}

/// This thread's statistics, from inside a `with_heap` closure.
///
/// # Safety
/// The caller must not hold another reference to the stats cell.
#[allow(clippy::mut_from_ref)]
unsafe fn stats_in(h: &ThreadHeap) -> &mut HeapStats {
    // SAFETY: per the contract; the heap is thread-local.
    unsafe { &mut *h.stats.get() }
}

#[inline]
fn token_in(h: &ThreadHeap) -> u64 {
    let t = h.token.get();
    if t != 0 {
        return t;
    }
    first_token_in(h)
}

#[cold]
#[inline(never)]
fn first_token_in(h: &ThreadHeap) -> u64 {
    let t = NEXT_THREAD_TOKEN.fetch_add_relaxed(1);
    h.token.set(t);
    h.next_id.set((t << 40) | 1);
    t
}

/// Regions this thread has created: ids handed out (`ThreadHeap::next_id`).
fn regions_created_in(h: &ThreadHeap) -> u64 {
    match h.token.get() {
        0 => 0,
        t => h.next_id.get() - ((t << 40) | 1),
    }
}

/// The thread's stats with `regions_created` brought up to date (it is
/// derived, not counted: see `regions_created_in`). Every reader of the
/// stats outside the hot paths goes through this.
///
/// # Safety
/// As `stats_in`.
#[allow(clippy::mut_from_ref)]
unsafe fn synced_stats_in(h: &ThreadHeap) -> &mut HeapStats {
    // SAFETY: per the contract.
    let s = unsafe { stats_in(h) };
    s.regions_created = regions_created_in(h);
    s
}

pub(crate) fn thread_token() -> u64 {
    with_heap(token_in)
}

/// This thread's heap statistics (live byte figures folded in first).
pub fn heap_stats() -> HeapStats {
    // Fold every live region's pending bytes so the snapshot is exact.
    let mut r = with_heap(|h| {
        flush_pending_in(h);
        h.live_head.get()
    });
    while !r.is_null() {
        // SAFETY: regions on the live list are alive and owned by this thread.
        unsafe {
            account(r);
            r = (*r).next_live;
        }
    }
    with_heap(|h| {
        // SAFETY: no other reference to the stats is live.
        let s = unsafe { synced_stats_in(h) };
        HeapStats {
            live_regions: s.derived_live_regions(),
            ..*s
        }
    })
}

/// Set this thread's H0 merge threshold (bytes). Returns the old value.
pub fn set_merge_threshold(bytes: usize) -> usize {
    with_heap(|h| h.merge_threshold.replace(bytes))
}

pub fn merge_threshold() -> usize {
    with_heap(|h| h.merge_threshold.get())
}

/// Start recording this thread's region events (clears earlier ones).
pub fn trace_start() {
    trace_start_at(std::time::Instant::now())
}

/// Start recording with timestamps relative to `origin` (another thread's
/// origin, so several threads' events share one time axis).
pub fn trace_start_at(origin: std::time::Instant) {
    arm_heap_guard();
    with_heap(|h| {
        // SAFETY: the trace vector is only touched by this thread, never
        // re-entrantly.
        unsafe { (*h.trace.get()).clear() };
        h.trace_origin.set(Some(origin));
        h.tracing.set(true);
    })
}

/// The time origin of this thread's recording, if it is recording.
pub fn trace_origin() -> Option<std::time::Instant> {
    with_heap(|h| {
        if h.tracing.get() {
            h.trace_origin.get()
        } else {
            None
        }
    })
}

/// Stop recording and return the events, oldest first.
pub fn trace_stop() -> Vec<TraceEvent> {
    with_heap(|h| {
        h.tracing.set(false);
        // SAFETY: as in `trace_start`.
        unsafe { std::mem::take(&mut **h.trace.get()) }
    })
}

#[cold]
fn record_in(h: &ThreadHeap, region: u64, kind: TraceKind) {
    let t_ns = h
        .trace_origin
        .get()
        .map(|o| o.elapsed().as_nanos() as u64)
        .unwrap_or(0);
    // SAFETY: stats and trace are only touched by this thread, never
    // re-entrantly.
    unsafe {
        let live_segment_bytes = stats_in(h).live_segment_bytes;
        (*h.trace.get()).push(TraceEvent {
            t_ns,
            region,
            kind,
            live_segment_bytes,
        });
    }
}

/// Record an event if tracing is on (for other modules).
pub(crate) fn trace_event(region: u64, kind: TraceKind) {
    with_heap(|h| {
        if h.tracing.get() {
            record_in(h, region, kind);
        }
    })
}

/// This thread's limit on live segment bytes, if any.
pub fn heap_limit() -> Option<usize> {
    let l = with_heap(|h| h.heap_limit.get());
    (l != 0).then_some(l)
}

/// Limit this thread's live segment bytes (`None`: no limit). An
/// allocation that needs a new segment past the limit fails with
/// `MemError::HeapLimit`. Returns the old limit.
pub fn set_heap_limit(bytes: Option<usize>) -> Option<usize> {
    let old = with_heap(|h| h.heap_limit.replace(bytes.unwrap_or(0)));
    (old != 0).then_some(old)
}

// ---------------------------------------------------------------------------
// Segments

/// `size` bytes aligned to `SEGMENT_SIZE` from the system allocator.
///
/// # Safety
/// `size` must be a non-zero multiple of `SEGMENT_SIZE`.
unsafe fn os_alloc(size: usize) -> *mut u8 {
    let layout = match Layout::from_size_align(size, SEGMENT_SIZE) {
        Ok(l) => l,
        Err(_) => handle_alloc_error(Layout::new::<u8>()),
    };
    // SAFETY: layout has non-zero size.
    let p = unsafe { alloc(layout) };
    if p.is_null() {
        handle_alloc_error(layout);
    }
    p
}

/// # Safety
/// `p` must come from `os_alloc(size)` and be unused.
unsafe fn os_free(p: *mut u8, size: usize) {
    // SAFETY: same layout as the allocation, per the contract.
    unsafe { dealloc(p, Layout::from_size_align_unchecked(size, SEGMENT_SIZE)) }
}

/// A standard segment for data: from the pool, else from a new slab.
///
/// # Safety
/// The pools are only touched by this thread, never re-entrantly.
#[inline]
unsafe fn take_segment_in(h: &ThreadHeap) -> *mut u8 {
    // SAFETY: per the contract.
    unsafe {
        match (*h.data_pool.get()).pop() {
            Some(p) => p,
            None => take_new_slab_in(h),
        }
    }
}

/// `take_segment_in` when the pool is empty: one new slab.
///
/// # Safety
/// As `take_segment_in`.
#[cold]
#[inline(never)]
unsafe fn take_new_slab_in(h: &ThreadHeap) -> *mut u8 {
    arm_heap_guard();
    // SAFETY: per the contract.
    unsafe {
        let pool = &mut *h.data_pool.get();
        let slab = os_alloc(SLAB_BYTES);
        let slabs = &mut *h.slabs.get();
        let at = slabs.partition_point(|&s| s.addr() < slab.addr());
        slabs.insert(at, slab);
        // Hand out the lowest segment now, pool the rest (highest first, so
        // pops walk the slab upwards).
        for i in (1..SLAB_SEGMENTS).rev() {
            pool.push(slab.add(i * SEGMENT_SIZE));
        }
        stats_in(h).segments_from_os += SLAB_SEGMENTS as u64;
        slab
    }
}

/// Segments of closed regions, shared by all threads. Closed regions are
/// the only ones that change owner thread, so their segments must not
/// belong to a thread (a thread's slabs are freed when it exits).
pub(crate) struct SharedPool {
    /// Control-block segments, kept as such so a stale handle's epoch
    /// check reads an epoch (release builds cap them like the thread pool).
    headers: Vec<*mut u8>,
    data: Vec<*mut u8>,
    slabs: Vec<*mut u8>,
}

// SAFETY: a pooled segment belongs to the pool alone (no region and no value
// refers to it) and the pool is only reached under its mutex, so handing the
// pointers to whichever thread holds the lock hands over exclusive ownership.
unsafe impl Send for SharedPool {}

static SHARED_POOL: Mutex<SharedPool> = Mutex::new(SharedPool {
    headers: Vec::new(),
    data: Vec::new(),
    slabs: Vec::new(),
});

/// The shared pool, locked. Never held across a call back into omni-mem.
pub(crate) fn shared_pool() -> MutexGuard<'static, SharedPool> {
    // A panic while holding the lock leaves the vectors consistent (every
    // operation on them is a single push or pop), so poisoning is ignored.
    SHARED_POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A data segment from the shared pool, else from a new shared slab.
fn take_shared_segment(h: &ThreadHeap) -> *mut u8 {
    let mut pool = shared_pool();
    if let Some(p) = pool.data.pop() {
        return p;
    }
    // SAFETY: SLAB_BYTES is a non-zero multiple of SEGMENT_SIZE; the new
    // slab is carved into segments owned by the pool, the first one by us.
    unsafe {
        let slab = os_alloc(SLAB_BYTES);
        pool.slabs.push(slab);
        for i in (1..SLAB_SEGMENTS).rev() {
            pool.data.push(slab.add(i * SEGMENT_SIZE));
        }
        stats_in(h).segments_from_os += SLAB_SEGMENTS as u64;
        slab
    }
}

/// Return a shared segment to the shared pool (large ones to the system).
/// Touches no thread-local state, so any thread may call it, even while
/// its thread-locals are being torn down.
///
/// # Safety
/// `seg` must be a shared segment of a dying region.
unsafe fn release_shared_segment(seg: *mut SegHeader) {
    // SAFETY: per the contract nothing refers to the segment any more.
    if let Some((base, header)) = unsafe { retire_segment(seg) } {
        let mut pool = shared_pool();
        let pool = &mut *pool;
        pool_retired(&mut pool.headers, &mut pool.data, base, header);
    }
}

/// Mark a dying region's segment free: a control block gets its epoch
/// bumped and its forward link cleared, debug builds poison the contents,
/// and a large segment goes back to the system. Returns the segment for a
/// pool, with whether it is a control block, or `None` if it was freed.
///
/// # Safety
/// `seg` must be a segment of a dying region that nothing refers to.
#[inline]
unsafe fn retire_segment(seg: *mut SegHeader) -> Option<(*mut u8, bool)> {
    // SAFETY: per the contract.
    unsafe {
        if cfg!(debug_assertions) {
            (*seg).state = STATE_FREE;
        }
        let base: *mut u8 = seg.cast();
        match (*seg).kind {
            SegKind::Header => {
                let blk: *mut RegionBlock = seg.cast();
                (*blk).epoch += 1;
                (*blk).forward = ptr::null_mut();
                if (*blk).dirty {
                    reset_cold(blk);
                }
                #[cfg(debug_assertions)]
                ptr::write_bytes(base.add(BLOCK_SIZE), POISON, SEGMENT_SIZE - BLOCK_SIZE);
                Some((base, true))
            }
            SegKind::Data => {
                #[cfg(debug_assertions)]
                ptr::write_bytes(base.add(SEG_HDR), POISON, SEGMENT_SIZE - SEG_HDR);
                Some((base, false))
            }
            SegKind::Large => {
                os_free(base, (*seg).size);
                None
            }
        }
    }
}

/// Put a retired segment in its pool: control blocks stay control blocks
/// (release builds keep at most `HEADER_POOL_CAP` of them; the rest become
/// data segments), data segments go to the data pool.
#[inline]
fn pool_retired(headers: &mut Vec<*mut u8>, data: &mut Vec<*mut u8>, base: *mut u8, header: bool) {
    if header {
        #[cfg(not(debug_assertions))]
        if headers.len() >= HEADER_POOL_CAP {
            data.push(base);
            return;
        }
        headers.push(base);
    } else {
        data.push(base);
    }
}

/// The address of the segment holding `p` (an object start): objects with
/// the same segment address are in the same region.
#[inline]
pub(crate) fn segment_addr(p: *mut u8) -> usize {
    p.addr() & SEG_MASK
}

/// The segment header of the segment holding `p` (an object start).
#[inline]
fn seg_of(p: *mut u8) -> *mut SegHeader {
    p.map_addr(|a| a & SEG_MASK).cast()
}

/// The region the segment holding the object at `p` was allocated for, not
/// resolved through merges (`block_of_ptr` resolves it): a key that stays
/// the same for every object of the segment while nothing merges.
///
/// # Safety
/// `p` must point to an object start in a segment owned by a live region.
#[inline]
pub(crate) unsafe fn segment_region(p: *mut u8) -> *mut RegionBlock {
    // SAFETY: per the contract the masked address is a live segment header.
    unsafe { (*seg_of(p)).region }
}

/// The (forwarding-resolved) region holding the object at `p`.
///
/// # Safety
/// `p` must point to an object start in a segment owned by a live region.
#[inline]
pub(crate) unsafe fn block_of_ptr(p: *mut u8) -> *mut RegionBlock {
    // SAFETY: per the contract the masked address is a live segment header.
    unsafe { merged_into((*seg_of(p)).region) }
}

/// The block that holds `b`'s objects: `b`, or the end of its chain of
/// merge forwardings.
///
/// The common case, a region not merged into another, returns before the
/// loop: entered on every call, the loop (in line at every barrier test
/// and every allocation) was padded to a 64-byte boundary
/// (`-align-loops=64`) with no-ops that ran on every call (BENCHMARKS.md,
/// twenty-second session).
///
/// # Safety
/// `b` is a live control block or a merge stub inside a live region.
#[inline(always)]
pub(crate) unsafe fn merged_into(mut b: *mut RegionBlock) -> *mut RegionBlock {
    // SAFETY: per the contract; a chain ends at a live block.
    unsafe {
        if (*b).forward.is_null() {
            return b;
        }
        while !(*b).forward.is_null() {
            b = (*b).forward;
        }
        b
    }
}

/// Debug tripwire: panics if `p` lies in a segment that has been freed.
#[inline]
pub(crate) fn debug_check_live(p: *mut u8) {
    #[cfg(debug_assertions)]
    {
        // SAFETY: debug builds never return header segments to the system and only dereference
        // values the mutator holds; a freed data segment is either pooled (readable, marked FREE)
        // or a bug that this very check exists to report.
        let state = unsafe { (*seg_of(p)).state };
        assert!(
            state == STATE_LIVE,
            "omni-mem: use after free: object {p:p} lies in a freed segment"
        );
    }
    #[cfg(not(debug_assertions))]
    let _ = p;
}

// ---------------------------------------------------------------------------
// Region handles

/// A handle to a region. Copyable; checked against the region's epoch in
/// debug builds so a handle used after its region died is reported.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Region {
    block: NonNull<RegionBlock>,
    epoch: u64,
}

impl Region {
    /// The control block this handle names, without following merges.
    #[inline]
    fn raw(self) -> *mut RegionBlock {
        self.block.as_ptr()
    }

    /// The control block that now holds this region's objects.
    #[inline]
    pub(crate) fn block(self) -> *mut RegionBlock {
        // SAFETY: as in `bump_block`; a chain of merges ends at a live block.
        unsafe { merged_into(self.bump_block()) }
    }

    /// The block to try a bump allocation in, without following merges:
    /// `merge` closes the merged block's bump window (`end == cur`), so a
    /// bump that succeeds in the block this returns proves it is the live
    /// block holding the region's objects, and the common case reads no
    /// forwarding. Anything but `try_bump` and the barrier's admission test
    /// before it (whose answer is only used if the bump succeeds) must use
    /// [`Region::block`].
    #[inline(always)]
    pub(crate) fn bump_block(self) -> *mut RegionBlock {
        let b = self.raw();
        // SAFETY: handles name control blocks that are live, merged stubs
        // inside a live region, or (bug) pooled header segments, which debug
        // builds never free; the epoch check below reports the last case.
        unsafe {
            debug_assert!(
                (*b).epoch == self.epoch,
                "omni-mem: region #{} handle used after the region was freed",
                (*b).id
            );
        }
        b
    }

    pub(crate) fn from_block(b: *mut RegionBlock) -> Region {
        debug_assert!(!b.is_null(), "region block is never null");
        // SAFETY: callers pass live control blocks, hence non-null ones.
        unsafe {
            Region {
                epoch: (*b).epoch,
                block: NonNull::new_unchecked(b),
            }
        }
    }

    /// The region's id (unique for the process lifetime).
    pub fn id(self) -> u64 {
        // SAFETY: see `block`.
        unsafe { (*self.block()).id }
    }

    /// Whether this handle's region has been merged into another one.
    pub fn is_merged(self) -> bool {
        // SAFETY: see `block`.
        unsafe { !(*self.raw()).forward.is_null() }
    }

    /// Whether two handles now denote the same storage (after merges).
    pub fn same_as(self, other: Region) -> bool {
        self.block() == other.block()
    }

    pub fn rank(self) -> u64 {
        // SAFETY: see `block`.
        unsafe { (*self.block()).rank }
    }

    /// Whether the region's memory is still in use: its epoch is unchanged.
    pub fn is_alive(self) -> bool {
        // SAFETY: see `block`; reading the epoch of a pooled header is fine.
        unsafe { (*self.raw()).epoch == self.epoch }
    }

    pub fn bytes_allocated(self) -> usize {
        // SAFETY: see `block`.
        unsafe { bytes_allocated(self.block()) }
    }

    /// Bytes allocated in the slot regions this region owns, nested ones
    /// included (docs/REGION_COALESCE_POLICY.md). Walks them all: for
    /// diagnostics, not hot paths.
    pub fn slot_region_bytes(self) -> usize {
        // SAFETY: see `block`; slot regions on a live owner's list are live.
        unsafe {
            let mut total = 0;
            let mut work = vec![(*self.block()).slot_head];
            while let Some(mut c) = work.pop() {
                while !c.is_null() {
                    total += bytes_allocated(c);
                    if !(*c).slot_head.is_null() {
                        work.push((*c).slot_head);
                    }
                    c = (*c).slot_next;
                }
            }
            total
        }
    }

    /// Set (or clear, with `None`) the region's byte quota.
    pub fn set_quota(self, quota: Option<usize>) {
        let b = self.block();
        // SAFETY: owner-thread access to a live block.
        unsafe {
            (*b).quota = quota.unwrap_or(0);
            (*b).dirty = true;
            clamp_end(b);
        }
    }

    pub fn stats(self) -> RegionStats {
        let b = self.block();
        // SAFETY: owner-thread access to a live block.
        unsafe {
            RegionStats {
                id: (*b).id,
                rank: (*b).rank,
                bytes_allocated: bytes_allocated(b),
                inline_used: inline_used(b),
                segments: (*b).segments,
                segment_bytes: (*b).seg_bytes,
                merges_in: (*b).merges_in,
                transmigrated_objects_in: (*b).transmigrated_objects_in,
                transmigrated_bytes_in: (*b).transmigrated_bytes_in,
                quota: if (*b).quota == 0 {
                    None
                } else {
                    Some((*b).quota)
                },
                scope_alive: (*b).scope_alive,
                external_rc: (*b).external_rc.load_relaxed(),
                tethers: (*b).tethers,
            }
        }
    }
}

/// The region holding a heap value (after merges), or `None` for immediates.
#[inline]
pub fn region_of(v: Value) -> Option<Region> {
    if v.is_heap() {
        debug_check_live(v.heap_ptr());
        // SAFETY: a heap value the mutator holds lies in a live region.
        Some(Region::from_block(unsafe { block_of_ptr(v.heap_ptr()) }))
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
// Creation, liveness, freeing

/// Create a region whose scope is open, younger than every live region of
/// this thread. Inlined: the slow paths (a new slab, the thread's first
/// token, tracing) are out of line, and the rest is a pool pop and the
/// control block's stores.
#[inline]
pub fn region_create() -> Region {
    // One thread-local access for the whole operation: this is on the path
    // of every function activation that allocates.
    let b = with_heap(|h| {
        let rank = h.next_rank.get();
        h.next_rank.set(rank + 1);
        // SAFETY: `new_block_in` initialises every field.
        let b = unsafe { new_block_in(h, rank, false) };
        make_pending_in(h, b);
        b
    });
    Region::from_block(b)
}

/// Reserve a rank now for a region that may be created later with
/// [`region_create_at`]. Costs one counter increment. A reserved rank keeps
/// its place in the order: regions created after the reservation are
/// younger even if the reserved region is created after them.
pub fn reserve_rank() -> u64 {
    reserve_ranks(1)
}

/// Reserve `n` consecutive ranks at once; returns the first (oldest).
pub fn reserve_ranks(n: u64) -> u64 {
    with_heap(|h| {
        let r = h.next_rank.get();
        h.next_rank.set(r + n);
        r
    })
}

/// Create a region with a rank from [`reserve_rank`]. It is placed in the
/// thread's rank-ordered live list behind every younger live region, so
/// the order, merge checks and the barrier see it exactly as if it had been
/// created when the rank was reserved.
///
/// The caller must only do this while no live object could hold a pointer
/// that the new region's rank would make illegal: regions are born empty,
/// so that holds as long as the rank came from `reserve_rank` on this
/// thread.
pub fn region_create_at(rank: u64) -> Region {
    // SAFETY: `new_block` initialises every field.
    let b = unsafe { new_block(rank) };
    with_heap(|h| {
        flush_pending_in(h);
        // Walk back from the youngest region to the first one older than `b`.
        let mut after = h.live_tail.get();
        // SAFETY: blocks on the live list are live and owned by this thread.
        unsafe {
            if after.is_null() || (*after).rank < rank {
                // The youngest: the usual case (a scope's region created
                // after its callees' regions were exited).
                h.pending.set(b);
                return;
            }
            while !after.is_null() && (*after).rank > rank {
                after = (*after).prev_live;
            }
        }
        link_live_after_in(h, b, after);
    });
    Region::from_block(b)
}

/// Create a region that lives as long as the process (rank 0): the oldest
/// region, into which anything may point. Its scope is open until
/// `region_exit` is called on it at shutdown.
pub fn region_create_process() -> Region {
    // SAFETY: as in `region_create`.
    let b = unsafe { new_block(RANK_PROCESS) };
    link_live_head(b);
    Region::from_block(b)
}

/// # Safety
/// Returns a fully initialised, unlinked control block.
unsafe fn new_block(rank: u64) -> *mut RegionBlock {
    // SAFETY: forwarded contract.
    with_heap(|h| unsafe { new_block_in(h, rank, false) })
}

/// # Safety
/// Returns a fully initialised, unlinked control block. A `closed` block
/// gets rank `RANK_RETAINED`, admit rank 0 and a shared-pool segment.
/// Always inlined: every caller passes a constant `closed`, so the hot
/// path (`region_create`) carries none of the closed-region branches, and
/// a block from this thread's own pools (the hot header first) gets only
/// its hot fields written; a new segment or a closed block is set up out
/// of line.
#[inline(always)]
unsafe fn new_block_in(h: &ThreadHeap, rank: u64, closed: bool) -> *mut RegionBlock {
    if !closed {
        let hot = h.hot_header.replace(ptr::null_mut());
        let pooled = if hot.is_null() {
            // SAFETY: pools are only touched by this thread, never
            // re-entrantly.
            unsafe { (*h.header_pool.get()).pop() }.unwrap_or(ptr::null_mut())
        } else {
            hot
        };
        if !pooled.is_null() {
            let b = pooled.cast::<RegionBlock>();
            // SAFETY: a pooled control block of this thread keeps every
            // field but the hot ones as a new block has it (its `owner`
            // is this thread's token: `debug_assert_recycled`).
            unsafe {
                if cfg!(debug_assertions) {
                    debug_assert_recycled(b, token_in(h));
                    addr_of_mut!((*b).seg.state).write(STATE_LIVE);
                }
                debug_assert!(h.token.get() != 0, "a pooled block was made after the token");
                let id = next_id_in(h);
                init_hot_in(h, b, id, rank, false);
            }
            return b;
        }
    }
    // SAFETY: forwarded contract.
    unsafe { new_segment_block_in(h, rank, closed) }
}

/// `new_block_in` for a block that does not come from this thread's
/// header pools: a new segment of this thread's, or (`closed`) a shared
/// pool's header or segment, every field written.
///
/// # Safety
/// As `new_block_in`.
#[inline(never)]
unsafe fn new_segment_block_in(h: &ThreadHeap, rank: u64, closed: bool) -> *mut RegionBlock {
    let owner = token_in(h);
    let id = next_id_in(h);
    let pooled = if closed {
        shared_pool().headers.pop()
    } else {
        None
    };
    // SAFETY: `p` is a SEGMENT_SIZE-aligned segment of SEGMENT_SIZE bytes we own exclusively;
    // every field is written before the block is used.
    unsafe {
        let (p, epoch) = match pooled {
            Some(p) => (p, (*p.cast::<RegionBlock>()).epoch),
            None if closed => (take_shared_segment(h), 0),
            None => (take_segment_in(h), 0),
        };
        let b = p.cast::<RegionBlock>();
        addr_of_mut!((*b).seg).write(SegHeader {
            region: b,
            next: ptr::null_mut(),
            size: SEGMENT_SIZE,
            state: STATE_LIVE,
            kind: SegKind::Header,
            shared: closed,
        });
        addr_of_mut!((*b).forward).write(ptr::null_mut());
        addr_of_mut!((*b).epoch).write(epoch);
        addr_of_mut!((*b).closed).write(closed);
        addr_of_mut!((*b).external_rc).write(Counter32::new(0));
        addr_of_mut!((*b).tethers).write(0);
        addr_of_mut!((*b).owner).write(owner);
        reset_cold(b);
        if closed {
            // Its segment is the shared pool's: freeing it takes
            // the general path (`free_clean_region` is for the
            // thread's own blocks).
            addr_of_mut!((*b).dirty).write(true);
        }
        init_hot_in(h, b, id, rank, closed);
        b
    }
}

/// The next region id (`ThreadHeap::next_id`); the token is set.
#[inline(always)]
fn next_id_in(h: &ThreadHeap) -> u64 {
    let id = h.next_id.get();
    h.next_id.set(id + 1);
    id
}

/// Write the hot fields of a block being created, what every region's
/// life changes (`prev_live` and `next_live` are written by the caller,
/// which links the block), and count it.
///
/// # Safety
/// `b` is a control block of this thread being created, every other field
/// written.
#[inline(always)]
unsafe fn init_hot_in(h: &ThreadHeap, b: *mut RegionBlock, id: u64, rank: u64, closed: bool) {
    // SAFETY: per the contract; raw writes, as the block may be new.
    unsafe {
        addr_of_mut!((*b).cur).write(b.cast::<u8>().add(BLOCK_SIZE));
        addr_of_mut!((*b).id).write(id);
        addr_of_mut!((*b).rank).write(if closed { RANK_RETAINED } else { rank });
        addr_of_mut!((*b).admit_rank).write(if closed { 0 } else { rank });
        addr_of_mut!((*b).scope_alive).write(true);
        // `regions_created` is derived from the id just taken.
        let s = stats_in(h);
        s.live_segment_bytes += SEGMENT_SIZE;
        s.peak_segment_bytes = s.peak_segment_bytes.max(s.live_segment_bytes);
        if h.tracing.get() {
            record_in(h, id, TraceKind::Create);
            // Frees are recorded by `free_region`'s general path only, so
            // the clean path tests no flag: a region created while
            // recording is dirty. (One created before recording started
            // has no event at all, its free included.)
            addr_of_mut!((*b).dirty).write(true);
        }
    }
}

/// What a control block from this thread's header pool must look like:
/// the fields `new_block_in` does not rewrite for it.
///
/// # Safety
/// `b` is a pooled control block of this thread.
#[inline(always)]
unsafe fn debug_assert_recycled(b: *mut RegionBlock, owner: u64) {
    // SAFETY: per the contract; the block is initialised from its last life.
    unsafe {
        debug_assert!((*b).seg.region == b && (*b).seg.size == SEGMENT_SIZE);
        debug_assert!((*b).seg.kind == SegKind::Header && !(*b).seg.shared);
        debug_assert!((*b).forward.is_null() && !(*b).closed);
        debug_assert!((*b).external_rc.load_relaxed() == 0 && (*b).tethers == 0);
        debug_assert!((*b).owner == owner);
        debug_assert!(!(*b).dirty, "recycled control block not reset");
        let start = b.cast::<u8>().add(BLOCK_SIZE);
        let end = b.cast::<u8>().add(SEGMENT_SIZE);
        debug_assert!((*b).seg.next.is_null() && (*b).tail == b.cast());
        debug_assert!((*b).end == end && (*b).seg_end == end && (*b).cur_seg_start == start);
        debug_assert!((*b).bytes_closed == 0 && (*b).reported == 0 && (*b).quota == 0);
        debug_assert!((*b).inline_used_frozen == usize::MAX);
        debug_assert!((*b).segments == 1 && (*b).seg_bytes == SEGMENT_SIZE);
        debug_assert!((*b).merges_in == 0);
        debug_assert!((*b).transmigrated_objects_in == 0 && (*b).transmigrated_bytes_in == 0);
        debug_assert!((*b).marked_since == MARKS_NONE);
        debug_assert!((*b).parent.is_null() && (*b).slot_head.is_null());
        debug_assert!((*b).slot_next.is_null() && !(*b).pinned && (*b).compact_at == 0);
        debug_assert!((*b).slot_stores == 0 && (*b).slot_overwrites == 0);
        debug_assert!((*b).moves_in.is_null() && (*b).pins_slot.is_null());
        debug_assert!((*b).pins_more.is_null());
    }
    let _ = (b, owner);
}

/// Give the cold fields (see `RegionBlock::dirty`) a new block's values.
///
/// # Safety
/// `b` is a control block being created or retired.
unsafe fn reset_cold(b: *mut RegionBlock) {
    // SAFETY: per the contract; raw writes, as the block may be new.
    unsafe {
        let start = b.cast::<u8>().add(BLOCK_SIZE);
        let end = b.cast::<u8>().add(SEGMENT_SIZE);
        addr_of_mut!((*b).seg.next).write(ptr::null_mut());
        addr_of_mut!((*b).end).write(end);
        addr_of_mut!((*b).seg_end).write(end);
        addr_of_mut!((*b).cur_seg_start).write(start);
        addr_of_mut!((*b).tail).write(b.cast());
        addr_of_mut!((*b).bytes_closed).write(0);
        addr_of_mut!((*b).reported).write(0);
        addr_of_mut!((*b).inline_used_frozen).write(usize::MAX);
        addr_of_mut!((*b).segments).write(1);
        addr_of_mut!((*b).seg_bytes).write(SEGMENT_SIZE);
        addr_of_mut!((*b).merges_in).write(0);
        addr_of_mut!((*b).transmigrated_objects_in).write(0);
        addr_of_mut!((*b).transmigrated_bytes_in).write(0);
        addr_of_mut!((*b).marked_since).write(MARKS_NONE);
        addr_of_mut!((*b).quota).write(0);
        addr_of_mut!((*b).parent).write(ptr::null_mut());
        addr_of_mut!((*b).slot_head).write(ptr::null_mut());
        addr_of_mut!((*b).slot_next).write(ptr::null_mut());
        addr_of_mut!((*b).pinned).write(false);
        addr_of_mut!((*b).compact_at).write(0);
        addr_of_mut!((*b).slot_stores).write(0);
        addr_of_mut!((*b).slot_overwrites).write(0);
        addr_of_mut!((*b).moves_in).write(ptr::null_mut());
        addr_of_mut!((*b).pins_slot).write(ptr::null_mut());
        addr_of_mut!((*b).pins_more).write(ptr::null_mut());
        addr_of_mut!((*b).dirty).write(false);
    }
}

fn link_live_tail(b: *mut RegionBlock) {
    with_heap(|h| link_live_tail_in(h, b))
}

/// Make `b`, a new region younger than every live one, the pending tail,
/// linking the previous pending region first.
#[inline]
fn make_pending_in(h: &ThreadHeap, b: *mut RegionBlock) {
    let prev = h.pending.replace(b);
    if !prev.is_null() {
        append_live_in(h, prev);
    }
}

/// Link the pending region, if any, so the live list is complete.
#[inline]
fn flush_pending_in(h: &ThreadHeap) {
    let p = h.pending.replace(ptr::null_mut());
    if !p.is_null() {
        append_live_in(h, p);
    }
}

/// Link `b` as the youngest live region.
fn link_live_tail_in(h: &ThreadHeap, b: *mut RegionBlock) {
    flush_pending_in(h);
    append_live_in(h, b);
}

/// `link_live_after_in(h, b, tail)` spelled out (the tail has no
/// successor to fix up), for callers that flushed or are flushing.
#[inline]
fn append_live_in(h: &ThreadHeap, b: *mut RegionBlock) {
    let tail = h.live_tail.get();
    // SAFETY: b and the tail are live blocks of this thread.
    unsafe {
        (*b).prev_live = tail;
        (*b).next_live = ptr::null_mut();
        if tail.is_null() {
            h.live_head.set(b);
        } else {
            (*tail).next_live = b;
        }
    }
    h.live_tail.set(b);
}

fn link_live_head(b: *mut RegionBlock) {
    with_heap(|h| link_live_after_in(h, b, ptr::null_mut()))
}

/// Insert `b` into the live list right after `after` (at the head when
/// `after` is null). The one place that links a region in.
fn link_live_after_in(h: &ThreadHeap, b: *mut RegionBlock, after: *mut RegionBlock) {
    flush_pending_in(h);
    // SAFETY: b, after and its successor are live blocks of this thread.
    unsafe {
        let next = if after.is_null() {
            h.live_head.get()
        } else {
            (*after).next_live
        };
        (*b).prev_live = after;
        (*b).next_live = next;
        if after.is_null() {
            h.live_head.set(b);
        } else {
            (*after).next_live = b;
        }
        if next.is_null() {
            h.live_tail.set(b);
        } else {
            (*next).prev_live = b;
        }
    }
}

fn unlink_live(b: *mut RegionBlock) {
    with_heap(|h| unlink_live_in(h, b))
}

#[inline]
fn unlink_live_in(h: &ThreadHeap, b: *mut RegionBlock) {
    if h.pending.get() == b {
        h.pending.set(ptr::null_mut());
        return;
    }
    flush_pending_in(h);
    // SAFETY: b is on this thread's live list.
    unsafe {
        let (p, n) = ((*b).prev_live, (*b).next_live);
        if p.is_null() {
            h.live_head.set(n);
        } else {
            (*p).next_live = n;
        }
        if n.is_null() {
            h.live_tail.set(p);
        } else {
            (*n).prev_live = p;
        }
        // `b`'s own links are stale now; whoever links it again (or
        // reuses the block) writes both.
    }
}

/// End the region's scope. It is freed now unless it is still counted or
/// tethered; then it becomes the youngest region (rank `RANK_RETAINED`) so
/// that nothing older is ever made to point into it, and is freed by the
/// last `region_release` / `tether_end`.
///
/// Exiting a region that was merged into an older one does nothing: its
/// objects live on in the older region's scope.
#[inline]
pub fn region_exit(r: Region) {
    let raw = r.raw();
    // SAFETY: owner-thread access; see `Region::block`.
    unsafe {
        debug_assert!((*raw).epoch == r.epoch, "region exited after it was freed");
        if !(*raw).dirty {
            // The common case, tested first: a clean block was never
            // merged (`merge` makes both blocks dirty), so its forwarding
            // is not read, and it is freed by `free_clean_region`.
            debug_assert!((*raw).forward.is_null() && (*raw).scope_alive);
            (*raw).scope_alive = false;
            if is_dead(raw) {
                free_clean_region(raw);
            } else {
                retain_exited(raw);
            }
            return;
        }
        exit_dirty(raw);
    }
}

/// `region_exit` of a dirty block: possibly merged, grown, with slot
/// regions or moves. Out of line, so that the clean path in line at
/// every scope's end carries one copy of the free.
///
/// # Safety
/// `b` is a control block of this thread (live, or a merge stub) whose
/// handle's scope is ending.
#[inline(never)]
unsafe fn exit_dirty(b: *mut RegionBlock) {
    // SAFETY: per the contract.
    unsafe {
        if !(*b).forward.is_null() {
            return;
        }
        debug_assert!((*b).scope_alive, "region scope exited twice");
        (*b).scope_alive = false;
        if !maybe_free(b) {
            retain_exited(b);
        }
    }
}

/// A region whose scope ended while it is still counted or tethered
/// becomes the youngest of all (see `region_exit`).
///
/// # Safety
/// `b` is a live, unmerged block of this thread whose scope just ended.
#[cold]
unsafe fn retain_exited(b: *mut RegionBlock) {
    // SAFETY: per the contract.
    unsafe {
        (*b).rank = RANK_RETAINED;
        // A retained region may die at any release: it may keep pointing
        // only into process regions (rank 0). Edges already stored stay;
        // new ones are copied in by the barrier.
        (*b).admit_rank = (*b).admit_rank.min(RANK_PROCESS + 1);
        unlink_live(b);
        link_live_tail(b);
    }
}

/// Count one external reference to the region (Region-RC).
pub fn region_retain(r: Region) {
    // SAFETY: the caller holds the scope or another reference, so the block
    // is live while we increment (hence relaxed, see atomic.rs).
    unsafe {
        (*r.block()).external_rc.fetch_add_relaxed(1);
    }
}

/// Drop one external reference; frees the region if that was the last thing
/// keeping it alive. Returns whether it was freed.
pub fn region_release(r: Region) -> bool {
    let b = r.block();
    // SAFETY: the reference being released keeps the block live until the decrement; only the
    // thread that takes the count to zero may free, and acquire/release on the decrement orders
    // every other thread's uses before that free (atomic.rs).
    unsafe {
        let before = (*b).external_rc.fetch_sub_acqrel(1);
        assert!(
            before > 0,
            "omni-mem: region_release without a matching retain"
        );
        before == 1 && maybe_free(b)
    }
}

/// Free the region iff `!scope_alive && external_rc == 0 && tethers == 0`.
///
/// # Safety
/// `b` must be a live, unmerged control block owned by this thread.
#[inline]
pub(crate) unsafe fn maybe_free(b: *mut RegionBlock) -> bool {
    // SAFETY: per the contract.
    unsafe {
        if !is_dead(b) {
            return false;
        }
        free_region(b);
        true
    }
}

/// The liveness rule: `!scope_alive && external_rc == 0 && tethers == 0`.
/// Nothing frees a region unless this holds (`maybe_free`, and
/// `region_exit`'s clean path, which frees a clean block directly).
///
/// # Safety
/// `b` must be a live, unmerged control block owned by this thread.
#[inline(always)]
unsafe fn is_dead(b: *mut RegionBlock) -> bool {
    // SAFETY: per the contract.
    unsafe { !(*b).scope_alive && (*b).external_rc.load_acquire() == 0 && (*b).tethers == 0 }
}

/// # Safety
/// `b` must be dead by the liveness rule; no value may point into it.
#[inline]
unsafe fn free_region(b: *mut RegionBlock) {
    // SAFETY: per the contract; the slot regions die with their owner.
    // Owning one makes a block dirty, and `dirty` shares a cache line with
    // the liveness fields just read, so a clean block costs no extra line.
    unsafe {
        if !(*b).dirty {
            free_clean_region(b);
            return;
        }
        if !(*b).slot_head.is_null() {
            free_slot_regions(b);
        }
        if !(*b).pins_slot.is_null() || !(*b).pins_more.is_null() || !(*b).moves_in.is_null() {
            crate::moves::region_freed(b);
        }
    }
    // One thread-local access for the whole free.
    with_heap(|h| {
        // SAFETY: per the contract, every segment on the list is ours to
        // recycle; no other reference to the stats is live.
        unsafe {
            unlink_live_in(h, b);
            // Fold the region's last bytes into the peak and drop them, with
            // one read and one write per counter (a separate `account` first
            // made the compiler reload just-stored counters: a store-forwarding
            // stall on every region exit).
            let s = stats_in(h);
            let now = bytes_allocated(b);
            let live = s.live_bytes + (now - (*b).reported);
            if live > s.peak_live_bytes {
                s.peak_live_bytes = live;
            }
            s.live_bytes = live - now;
            s.live_segment_bytes -= (*b).seg_bytes;
            s.regions_freed += 1;
            if h.tracing.get() {
                record_in(h, (*b).id, TraceKind::Free { bytes: now });
            }
            let mut seg: *mut SegHeader = b.cast();
            while !seg.is_null() {
                let next = (*seg).next;
                release_segment_in(h, seg);
                seg = next;
            }
        }
    })
}

/// `free_region` for a clean block (`RegionBlock::dirty`), the common
/// case: every cold field has a new block's value, so the region is its
/// control block's segment alone (`seg.next` is null), of the thread's
/// own pool (closed blocks are created dirty), with nothing folded into
/// the thread's `live_bytes` yet (`reported` is 0) and its bytes counted
/// from the block's own start; and it was never merged (`forward` is
/// null); and it was not created while recording events (such a block is
/// dirty, so the general path records its free). What the general path
/// would compute from those fields is written here with their known
/// values, and the segment goes straight back to the header pool, as
/// `retire_segment` would send it.
///
/// # Safety
/// As `free_region`, and `b` is clean.
#[inline(always)]
unsafe fn free_clean_region(b: *mut RegionBlock) {
    // SAFETY: per the contract; the pools are only touched by this thread,
    // never re-entrantly.
    with_heap(|h| unsafe {
        debug_assert!((*b).seg.next.is_null() && !(*b).seg.shared && !(*b).closed);
        debug_assert!((*b).reported == 0 && (*b).seg_bytes == SEGMENT_SIZE);
        debug_assert!((*b).forward.is_null() && (*b).seg.kind == SegKind::Header);
        unlink_live_in(h, b);
        let s = stats_in(h);
        let now = (*b).cur.addr() - b.addr() - BLOCK_SIZE;
        debug_assert_eq!(now, bytes_allocated(b));
        // `live_bytes` never held these bytes (`reported` is 0): only the
        // peak sees them.
        s.peak_live_bytes = s.peak_live_bytes.max(s.live_bytes + now);
        s.live_segment_bytes -= SEGMENT_SIZE;
        s.regions_freed += 1;
        // No `Free` event: a region created while recording is dirty.
        if cfg!(debug_assertions) {
            (*b).seg.state = STATE_FREE;
        }
        (*b).epoch += 1;
        #[cfg(debug_assertions)]
        ptr::write_bytes(
            b.cast::<u8>().add(BLOCK_SIZE),
            POISON,
            SEGMENT_SIZE - BLOCK_SIZE,
        );
        pool_header_in(h, b.cast());
    })
}

/// Pool a retired control block's segment: kept as the thread's hot
/// header (the next `region_create` takes it first) when that is free,
/// else in the header pool.
///
/// # Safety
/// `base` is a retired control block of this thread's pool; the pools
/// are only touched by this thread, never re-entrantly.
#[inline(always)]
unsafe fn pool_header_in(h: &ThreadHeap, base: *mut u8) {
    if h.hot_header.get().is_null() {
        h.hot_header.set(base);
        return;
    }
    // SAFETY: per the contract, no other reference to the pools is live.
    unsafe { pool_retired(&mut *h.header_pool.get(), &mut *h.data_pool.get(), base, true) }
}

/// # Safety
/// `seg` must be a segment of a dying region.
#[inline]
unsafe fn release_segment_in(h: &ThreadHeap, seg: *mut SegHeader) {
    // SAFETY: the segment is no longer reachable from any live value; the
    // pools are only touched by this thread, never re-entrantly.
    unsafe {
        if (*seg).shared {
            release_shared_segment(seg);
        } else if let Some((base, header)) = retire_segment(seg) {
            if header {
                pool_header_in(h, base);
            } else {
                pool_retired(&mut *h.header_pool.get(), &mut *h.data_pool.get(), base, false);
            }
        }
    }
}

/// Return every slab whose segments are all pooled as data segments to the
/// system allocator (e.g. after a peak), this thread's and the shared
/// pool's. Returns the bytes released.
pub fn trim_pools() -> usize {
    let own = trim_thread_pool(0);
    let mut shared = shared_pool();
    let shared = &mut *shared;
    // SAFETY: the shared pool is locked.
    own + unsafe { trim_slabs(&mut shared.slabs, &mut shared.data, 0) }
}

/// Return this thread's wholly pooled slabs to the system allocator but
/// `keep` of them (the next allocations reuse those): for a thread that
/// lives on between jobs (omni-lang's worker pool), so that one job's
/// peak is not held for the next. Returns the bytes released.
pub fn trim_thread_pool(keep: usize) -> usize {
    with_heap(|h| {
        // SAFETY: pools and slabs are only touched by this thread, never
        // re-entrantly.
        unsafe { trim_slabs(&mut *h.slabs.get(), &mut *h.data_pool.get(), keep) }
    })
}

/// Free the slabs (sorted by address) all of whose segments sit in `pool`,
/// but the first `keep_free` of them (lowest addresses), whose segments
/// stay pooled.
///
/// # Safety
/// `pool` must hold only unused segments; a slab all of whose segments are
/// in it belongs to no region.
unsafe fn trim_slabs(slabs: &mut Vec<*mut u8>, pool: &mut Vec<*mut u8>, keep_free: usize) -> usize {
    slabs.sort_by_key(|s| s.addr());
    let mut free_count = vec![0usize; slabs.len()];
    let slab_of = |p: *mut u8, slabs: &[*mut u8]| {
        let i = slabs.partition_point(|&s| s.addr() <= p.addr());
        i.checked_sub(1)
            .filter(|&i| p.addr() < slabs[i].addr() + SLAB_BYTES)
    };
    for &p in pool.iter() {
        if let Some(i) = slab_of(p, slabs) {
            free_count[i] += 1;
        }
    }
    // Which wholly pooled slabs go: all but the first `keep_free`.
    let mut kept = 0;
    let goes: Vec<bool> = free_count
        .iter()
        .map(|&n| {
            let whole = n == SLAB_SEGMENTS;
            if whole && kept < keep_free {
                kept += 1;
                return false;
            }
            whole
        })
        .collect();
    pool.retain(|&p| slab_of(p, slabs).is_none_or(|i| !goes[i]));
    let mut released = 0;
    let mut keep = Vec::with_capacity(slabs.len());
    for (i, &s) in slabs.iter().enumerate() {
        if goes[i] {
            // SAFETY: per the contract, every segment of the slab is unused.
            unsafe { os_free(s, SLAB_BYTES) };
            released += SLAB_BYTES;
        } else {
            keep.push(s);
        }
    }
    *slabs = keep;
    released
}

// ---------------------------------------------------------------------------
// Allocation

/// # Safety
/// `b` must be a live control block owned by this thread.
#[inline]
pub(crate) unsafe fn bytes_allocated(b: *mut RegionBlock) -> usize {
    // SAFETY: per the contract.
    unsafe { (*b).bytes_closed + ((*b).cur.addr() - (*b).cur_seg_start.addr()) }
}

/// Bytes of the region's inline buffer in use.
///
/// # Safety
/// `b` must be a live control block owned by this thread.
unsafe fn inline_used(b: *mut RegionBlock) -> usize {
    // SAFETY: live block.
    unsafe {
        if (*b).inline_used_frozen != usize::MAX {
            (*b).inline_used_frozen
        } else {
            (*b).cur.addr() - (*b).cur_seg_start.addr()
        }
    }
}

/// Fold the region's new bytes into the thread's live-byte count.
///
/// # Safety
/// `b` must be a live control block owned by this thread.
unsafe fn account(b: *mut RegionBlock) {
    // SAFETY: forwarded contract.
    with_heap(|h| unsafe { account_in(h, b) })
}

/// # Safety
/// As `account`; no other reference to the stats may be live.
unsafe fn account_in(h: &ThreadHeap, b: *mut RegionBlock) {
    // SAFETY: per the contract.
    unsafe {
        let now = bytes_allocated(b);
        let delta = now - (*b).reported;
        if delta == 0 {
            return;
        }
        (*b).reported = now;
        (*b).dirty = true;
        let s = stats_in(h);
        s.live_bytes += delta;
        s.peak_live_bytes = s.peak_live_bytes.max(s.live_bytes);
    }
}

/// Lower `end` so the fast path stops exactly at the quota.
///
/// # Safety
/// `b` must be a live control block owned by this thread.
unsafe fn clamp_end(b: *mut RegionBlock) {
    // SAFETY: live block.
    unsafe {
        (*b).dirty = true;
        let quota = (*b).quota;
        if quota == 0 {
            (*b).end = (*b).seg_end;
            return;
        }
        let remaining = quota.saturating_sub(bytes_allocated(b));
        let room = (*b).seg_end.addr() - (*b).cur.addr();
        (*b).end = (*b).cur.add(remaining.min(room));
    }
}

/// The region's bump window `(cur, end)`, for loops that allocate many
/// objects and keep the window in registers (transmigration's pair
/// kernel). Hand the new `cur` back with [`set_bump_cur`] before anything
/// else allocates in `b`.
///
/// # Safety
/// `b` must be a live, unmerged control block owned by this thread.
#[inline]
pub(crate) unsafe fn bump_window(b: *mut RegionBlock) -> (*mut u8, *mut u8) {
    // SAFETY: per the contract.
    unsafe { ((*b).cur, (*b).end) }
}

/// # Safety
/// `cur` must lie in `b`'s current window, at or after the window's start
/// as last returned by [`bump_window`], with everything below it allocated.
#[inline]
pub(crate) unsafe fn set_bump_cur(b: *mut RegionBlock, cur: *mut u8) {
    // SAFETY: per the contract.
    unsafe { (*b).cur = cur }
}

/// `RegionBlock::marked_since` of a region no pair mark may be in.
const MARKS_NONE: u64 = u64::MAX;

/// Whether a pair mark in `b` carrying the epoch of this thread's session
/// `now` can only have been written by that session, given that sessions
/// whose numbers differ by less than `window` have different epochs. True
/// when `b` belongs to this thread (`owner`), is not closed (a message
/// region may move to another thread, whose sessions are numbered apart)
/// and every session that may have marked in it is less than `window`
/// sessions old. Records `now` as `b`'s first marking session if it had
/// none, since the caller may mark in `b` from now on; a caller that gets
/// `false` marks no pair of `b` (it forwards them like other objects).
///
/// # Safety
/// `b` is a live, unmerged control block (of this thread, or of a process
/// region).
#[inline]
pub(crate) unsafe fn marks_trusted(b: *mut RegionBlock, owner: u64, now: u64, window: u64) -> bool {
    // SAFETY: per the contract; `owner` is only ever written by the owning
    // thread (or by `adopt`, for a detached block no other thread holds).
    unsafe {
        if (*b).owner != owner || (*b).closed {
            return false;
        }
        let since = (*b).marked_since;
        if since == MARKS_NONE {
            (*b).marked_since = now;
            (*b).dirty = true;
            return true;
        }
        now.wrapping_sub(since) < window
    }
}

/// Allocate `size` bytes (a multiple of 8) in region `b`.
///
/// # Safety
/// `b` must be a live, unmerged control block owned by this thread.
#[inline]
pub(crate) unsafe fn alloc_raw(b: *mut RegionBlock, size: usize) -> MemResult<*mut u8> {
    // SAFETY: per the contract.
    unsafe {
        match try_bump(b, size) {
            Some(p) => Ok(p),
            None => alloc_slow(b, size),
        }
    }
}

/// Whether `p` was bumped from `b`'s current segment (`b` itself, not a
/// region merged into it): then it is `b`'s, with no segment lookup. A
/// `false` says nothing.
///
/// # Safety
/// `b` must be a live control block.
#[inline(always)]
pub(crate) unsafe fn in_current_segment(b: *mut RegionBlock, p: *mut u8) -> bool {
    // SAFETY: per the contract. `cur_seg_start..cur` is the part of the
    // current segment bumped so far, which only `b` allocates from.
    unsafe { (*b).cur_seg_start.addr() <= p.addr() && p.addr() < (*b).cur.addr() }
}

/// `alloc_raw`'s fast path alone: `size` bytes from the current segment,
/// or `None` when it has no room (then `alloc_raw` takes a new one).
///
/// # Safety
/// As `alloc_raw`.
#[inline(always)]
pub(crate) unsafe fn try_bump(b: *mut RegionBlock, size: usize) -> Option<*mut u8> {
    debug_assert!(size.is_multiple_of(8) && size > 0);
    // SAFETY: per the contract; cur..end lies inside the current segment.
    unsafe {
        let cur = (*b).cur;
        if size <= (*b).end.addr() - cur.addr() {
            (*b).cur = cur.add(size);
            return Some(cur);
        }
        None
    }
}

/// `alloc_raw` past the current segment's end: a new segment (or the
/// quota error).
///
/// # Safety
/// As `alloc_raw`.
#[cold]
unsafe fn alloc_slow(b: *mut RegionBlock, size: usize) -> MemResult<*mut u8> {
    // SAFETY: per `alloc_raw`'s contract; new segments are exclusively ours.
    unsafe {
        let allocated = bytes_allocated(b);
        let quota = (*b).quota;
        if quota != 0 && allocated.saturating_add(size) > quota {
            with_stats(|s| s.quota_errors += 1);
            return Err(MemError::QuotaExceeded {
                region_id: (*b).id,
                quota,
                requested: size,
                allocated,
            });
        }
        let needed = if size > LARGE_OBJECT {
            size.saturating_add(SEG_HDR)
        } else {
            SEGMENT_SIZE
        };
        let (limit, live) = with_heap(|h| (h.heap_limit.get(), stats_in(h).live_segment_bytes));
        if limit != 0 && live.saturating_add(needed) > limit {
            return Err(MemError::HeapLimit { limit, live });
        }
        // Everything below writes cold fields (a new segment).
        (*b).dirty = true;
        if size > LARGE_OBJECT {
            let total = size
                .checked_add(SEG_HDR + SEGMENT_SIZE - 1)
                .filter(|t| *t <= isize::MAX as usize / 2)
                .ok_or(MemError::TooLarge { requested: size })?
                & SEG_MASK;
            let p = os_alloc(total);
            with_stats(|s| s.segments_from_os += (total / SEGMENT_SIZE) as u64);
            let seg: *mut SegHeader = p.cast();
            seg.write(SegHeader {
                region: b,
                next: (*b).seg.next,
                size: total,
                state: STATE_LIVE,
                kind: SegKind::Large,
                shared: false,
            });
            (*b).seg.next = seg;
            if (*b).tail == b.cast() {
                (*b).tail = seg;
            }
            (*b).bytes_closed += size;
            note_segment(b, total);
            clamp_end(b);
            return Ok(p.add(SEG_HDR));
        }
        // Retire the current segment and continue in a fresh one.
        let used = (*b).cur.addr() - (*b).cur_seg_start.addr();
        if (*b).inline_used_frozen == usize::MAX {
            (*b).inline_used_frozen = used;
        }
        (*b).bytes_closed += used;
        let closed = (*b).closed;
        let p = with_heap(|h| {
            if closed {
                take_shared_segment(h)
            } else {
                take_segment_in(h)
            }
        });
        let seg: *mut SegHeader = p.cast();
        seg.write(SegHeader {
            region: b,
            next: ptr::null_mut(),
            size: SEGMENT_SIZE,
            state: STATE_LIVE,
            kind: SegKind::Data,
            shared: closed,
        });
        (*(*b).tail).next = seg;
        (*b).tail = seg;
        let start = p.add(SEG_HDR);
        (*b).cur_seg_start = start;
        (*b).cur = start;
        (*b).seg_end = p.add(SEGMENT_SIZE);
        note_segment(b, SEGMENT_SIZE);
        clamp_end(b);
        let out = (*b).cur;
        (*b).cur = out.add(size);
        Ok(out)
    }
}

/// Count a new segment of `bytes` against the region and the thread.
///
/// # Safety
/// `b` must be a live control block owned by this thread.
unsafe fn note_segment(b: *mut RegionBlock, bytes: usize) {
    // SAFETY: live block.
    unsafe {
        (*b).segments += 1;
        (*b).seg_bytes += bytes;
        account(b);
    }
    with_stats(|s| {
        s.live_segment_bytes += bytes;
        s.peak_segment_bytes = s.peak_segment_bytes.max(s.live_segment_bytes);
    });
}

// ---------------------------------------------------------------------------
// Merge

/// Why a merge was refused (the caller falls back to transmigration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum MergeRefusal {
    SameRegion,
    NotYounger,
    /// A live region sits between the two in rank order; merging could make
    /// the older region point into it.
    RegionBetween,
    Tethered,
    Counted,
    ScopeEnded,
    OtherThread,
    /// The older region is closed (a message region): it takes copies only,
    /// so it never holds a thread's own segments.
    Closed,
    /// Either region is a slot region (slots.rs). A slot region lives and
    /// dies with the region that owns it, so it is never spliced into
    /// another; and it is compacted, which is safe only while the
    /// container's slots (and pinning reads) are the only ways into it, so
    /// no region is spliced into it either: the mutator may hold that
    /// region's objects, and a compaction would free them.
    SlotRegion,
}

impl MergeRefusal {
    pub const ALL: [MergeRefusal; 9] = [
        MergeRefusal::SameRegion,
        MergeRefusal::NotYounger,
        MergeRefusal::RegionBetween,
        MergeRefusal::Tethered,
        MergeRefusal::Counted,
        MergeRefusal::ScopeEnded,
        MergeRefusal::OtherThread,
        MergeRefusal::Closed,
        MergeRefusal::SlotRegion,
    ];

    /// A short reason, for statistics and `omni --stats`.
    pub fn reason(self) -> &'static str {
        match self {
            MergeRefusal::SameRegion => "same region",
            MergeRefusal::NotYounger => "not younger",
            MergeRefusal::RegionBetween => "a live region in between",
            MergeRefusal::Tethered => "tethered",
            MergeRefusal::Counted => "externally counted",
            MergeRefusal::ScopeEnded => "scope ended",
            MergeRefusal::OtherThread => "other thread",
            MergeRefusal::Closed => "closed message region",
            MergeRefusal::SlotRegion => "slot region",
        }
    }
}

/// Whether `young` may be spliced into `old`.
pub fn merge_permitted(young: Region, old: Region) -> Result<(), MergeRefusal> {
    // SAFETY: both handles name live blocks (checked in debug by `block`).
    unsafe { merge_check(young.block(), old.block()) }
}

/// `merge_permitted` on control blocks.
///
/// # Safety
/// `y` and `o` must be live control blocks owned by this thread.
unsafe fn merge_check(y: *mut RegionBlock, o: *mut RegionBlock) -> Result<(), MergeRefusal> {
    // SAFETY: live blocks.
    unsafe {
        if y == o {
            return Err(MergeRefusal::SameRegion);
        }
        let me = thread_token();
        if (*y).owner != me || (*o).owner != me {
            return Err(MergeRefusal::OtherThread);
        }
        if !(*y).scope_alive || !(*o).scope_alive {
            return Err(MergeRefusal::ScopeEnded);
        }
        if (*o).closed || (*y).closed {
            return Err(MergeRefusal::Closed);
        }
        if !(*y).parent.is_null() || !(*o).parent.is_null() {
            return Err(MergeRefusal::SlotRegion);
        }
        if (*y).rank <= (*o).rank {
            return Err(MergeRefusal::NotYounger);
        }
        if (*y).tethers > 0 {
            return Err(MergeRefusal::Tethered);
        }
        if (*y).external_rc.load_acquire() > 0 {
            return Err(MergeRefusal::Counted);
        }
        // Live list is in rank order: `o` must be `y`'s immediate elder,
        // but for slot regions of `o`'s rank, which sit right behind their
        // owner and die with it, so they are not in between.
        with_heap(flush_pending_in);
        let mut p = (*y).prev_live;
        while !p.is_null() && p != o && !(*p).parent.is_null() && (*p).rank == (*o).rank {
            p = (*p).prev_live;
        }
        if p != o {
            return Err(MergeRefusal::RegionBetween);
        }
        Ok(())
    }
}

/// Splice `young`'s segments into `old` in O(1): `young`'s handle becomes a
/// forwarding stub, its bytes and counts move to `old`, and its objects die
/// with `old`. Refused (nothing changes) when not permitted.
pub fn merge(young: Region, old: Region) -> Result<(), MergeRefusal> {
    let (y, o) = (young.block(), old.block());
    // SAFETY: live blocks owned by this thread (checked by merge_check).
    unsafe {
        if let Err(e) = merge_check(y, o) {
            with_stats(|s| {
                s.merges_refused += 1;
                s.merge_refusals[e as usize] += 1;
            });
            return Err(e);
        }
        account(y);
        let ybytes = bytes_allocated(y);
        (*(*o).tail).next = y.cast();
        (*o).tail = (*y).tail;
        // Both blocks' cold fields change: `o` takes `y`'s chain, and
        // `y`'s header links on into its own segments.
        (*o).dirty = true;
        (*y).dirty = true;
        (*o).bytes_closed += ybytes;
        (*o).reported += (*y).reported;
        (*o).segments += (*y).segments;
        (*o).seg_bytes += (*y).seg_bytes;
        (*o).merges_in += 1 + (*y).merges_in;
        (*o).transmigrated_objects_in += (*y).transmigrated_objects_in;
        (*o).transmigrated_bytes_in += (*y).transmigrated_bytes_in;
        // `y`'s objects keep their pair marks: `o`'s window starts at the
        // older of the two (both count this thread's sessions).
        (*o).marked_since = (*o).marked_since.min((*y).marked_since);
        (*y).scope_alive = false;
        forward_to(y, o);
        if !(*y).slot_head.is_null() {
            adopt_slot_regions(y, o);
        }
        if !(*y).pins_slot.is_null() || !(*y).pins_more.is_null() {
            crate::moves::region_merged(y, o);
        }
        unlink_live(y);
        clamp_end(o);
        with_stats(|s| {
            s.merges += 1;
            s.regions_merged += 1;
        });
        trace_event(
            (*y).id,
            TraceKind::Merge {
                into: (*o).id,
                bytes: ybytes,
            },
        );
    }
    Ok(())
}

/// Make `y` a stub forwarding to `o`, which now holds its objects
/// (`merge`, `adopt`), such that the in-line tests that do not read the
/// forwarding fail on it and take their slow paths, which resolve it:
/// * its bump window is closed, so a bump tried in `y` through an old
///   handle (`Region::bump_block`) fails (`cur` stays, so `y`'s byte
///   count does not change);
/// * its rank is `RANK_RETAINED` and its admit rank 0, so the barrier's
///   test on the regions segments were allocated for (`barrier::store`)
///   admits nothing into a stub and nothing of one (every rank is below
///   `RANK_RETAINED` or is it, and none is below 0).
///
/// # Safety
/// `y` and `o` are control blocks of this thread; `y`'s segments were just
/// spliced into `o`'s.
unsafe fn forward_to(y: *mut RegionBlock, o: *mut RegionBlock) {
    // SAFETY: per the contract.
    unsafe {
        (*y).forward = o;
        (*y).end = (*y).cur;
        (*y).rank = RANK_RETAINED;
        (*y).admit_rank = 0;
    }
}

// ---------------------------------------------------------------------------
// Slot regions (the lifetime side; what they hold and when they are
// compacted is slots.rs)

/// Create a slot region owned by `o`: same rank and admit rank as `o`, so
/// the barrier and transmigration treat its objects exactly as `o`'s; its
/// scope stays open until `o` is freed (or until compaction replaces it).
///
/// # Safety
/// `o` must be a live, unmerged, unclosed block of this thread whose scope
/// is open.
pub(crate) unsafe fn slot_region_new(o: *mut RegionBlock) -> *mut RegionBlock {
    // SAFETY: per the contract; `region_create_at` places the new block
    // behind `o` (and `o`'s other slot regions) in the rank-ordered list.
    unsafe {
        let c = region_create_at((*o).rank).block();
        (*c).admit_rank = (*o).admit_rank;
        // "A quota for every region": the owner's applies to each of its
        // slot regions too.
        (*c).quota = (*o).quota;
        clamp_end(c);
        (*c).parent = o;
        (*c).slot_next = (*o).slot_head;
        (*c).dirty = true;
        (*o).slot_head = c;
        (*o).dirty = true;
        with_stats(|s| s.slot_regions_created += 1);
        c
    }
}

/// Whether `b` is a slot region of `o`, directly or through other slot
/// regions.
///
/// # Safety
/// `b` is a live block.
#[inline]
pub(crate) unsafe fn owned_by(b: *mut RegionBlock, o: *mut RegionBlock) -> bool {
    // SAFETY: parents of live slot regions are live.
    unsafe {
        let mut p = (*b).parent;
        while !p.is_null() {
            if p == o {
                return true;
            }
            p = (*p).parent;
        }
        false
    }
}

/// The region whose life bounds `b`'s: `b` itself, or for a slot region
/// the first region up its parent chain that is not one.
///
/// # Safety
/// `b` is a live block.
#[inline]
pub(crate) unsafe fn lifetime_owner(mut b: *mut RegionBlock) -> *mut RegionBlock {
    // SAFETY: parents of live slot regions are live.
    unsafe {
        while !(*b).parent.is_null() {
            b = (*b).parent;
        }
        b
    }
}

/// Whether `b` is one of `o`'s own slot regions: the common case of
/// `slot_region_dies_with`, one compare.
///
/// # Safety
/// `b` is a live control block.
#[inline(always)]
pub(crate) unsafe fn is_slot_region_of(b: *mut RegionBlock, o: *mut RegionBlock) -> bool {
    // SAFETY: per the contract.
    unsafe { (*b).parent == o }
}

/// Whether `b` is a slot region that dies with `o`: the same region bounds
/// both lives (`o` itself, or `o`'s owner when `o` is a slot region too).
///
/// # Safety
/// Both are live blocks.
#[inline]
pub(crate) unsafe fn slot_region_dies_with(b: *mut RegionBlock, o: *mut RegionBlock) -> bool {
    // SAFETY: per the contract.
    unsafe { !(*b).parent.is_null() && lifetime_owner(b) == lifetime_owner(o) }
}

/// Unlink slot region `c` from its owner's list and end its scope: it is
/// freed now (nothing may point into it: the caller has moved every
/// survivor out of it).
///
/// # Safety
/// `c` is a live, unpinned slot region of this thread with no slot regions
/// of its own, and no value points into it.
pub(crate) unsafe fn slot_region_drop(c: *mut RegionBlock) {
    // SAFETY: per the contract.
    unsafe {
        debug_assert!(!(*c).pinned && (*c).slot_head.is_null());
        let o = (*c).parent;
        let mut link: *mut *mut RegionBlock = &raw mut (*o).slot_head;
        while *link != c {
            link = &raw mut (**link).slot_next;
        }
        *link = (*c).slot_next;
        (*c).slot_next = ptr::null_mut();
        (*c).parent = ptr::null_mut();
        (*c).scope_alive = false;
        let freed = maybe_free(c);
        debug_assert!(freed, "an unpinned slot region is never counted or tethered");
    }
}

/// `y` is being spliced into `o`: its slot regions become `o`'s, with
/// `o`'s rank (they now die with `o`).
///
/// # Safety
/// Both blocks are live and this thread's; `y` is being merged into `o`.
#[cold]
unsafe fn adopt_slot_regions(y: *mut RegionBlock, o: *mut RegionBlock) {
    // SAFETY: per the contract.
    unsafe {
        let mut c = (*y).slot_head;
        let mut last = c;
        while !c.is_null() {
            (*c).parent = o;
            (*c).rank = (*o).rank;
            (*c).admit_rank = (*o).admit_rank;
            last = c;
            c = (*c).slot_next;
        }
        (*last).slot_next = (*o).slot_head;
        (*o).slot_head = (*y).slot_head;
        (*y).slot_head = ptr::null_mut();
        (*o).dirty = true;
    }
}

/// `b` is being freed: end the scope of every slot region it owns, and of
/// theirs, without recursion (slot regions may nest as deep as the
/// program's containers). A slot region still counted or tethered is
/// retained like any region whose scope ended, and keeps its own.
///
/// # Safety
/// `b` is dead by the liveness rule and about to be freed.
#[cold]
unsafe fn free_slot_regions(b: *mut RegionBlock) {
    // SAFETY: per the contract; every block on a slot list is live.
    unsafe {
        let mut work = vec![(*b).slot_head];
        (*b).slot_head = ptr::null_mut();
        while let Some(mut c) = work.pop() {
            while !c.is_null() {
                let next = (*c).slot_next;
                (*c).slot_next = ptr::null_mut();
                (*c).parent = ptr::null_mut();
                (*c).scope_alive = false;
                if (*c).external_rc.load_acquire() == 0 && (*c).tethers == 0 {
                    if !(*c).slot_head.is_null() {
                        work.push((*c).slot_head);
                        (*c).slot_head = ptr::null_mut();
                    }
                    free_region(c);
                } else {
                    retain_exited(c);
                }
                c = next;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Closed regions and ownership transfer (used by parcel.rs)

/// Create a closed region (a *message region*) on this thread: its scope
/// is open like any region's, but nothing outside may point into it (its
/// rank is the youngest) and it may point into nothing outside (its admit
/// rank is 0: the barrier copies in whatever is stored into it), and its
/// segments come from the shared pool. Such a region can be handed to
/// another thread whole: see [`crate::Parcel::transfer`].
pub fn region_create_message() -> Region {
    let b = with_heap(|h| {
        // SAFETY: `new_block_in` initialises every field.
        let b = unsafe { new_block_in(h, RANK_RETAINED, true) };
        link_live_tail_in(h, b);
        b
    });
    Region::from_block(b)
}

/// Why a region cannot be handed to another thread as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferRefusal {
    /// Not a message region: other regions may point into it or it into them.
    NotClosed,
    /// The value does not live in the region.
    ValueElsewhere,
    /// The region was merged away, or its scope already ended.
    NotOpen,
    Counted,
    Tethered,
    OtherThread,
}

/// Check that `b` can leave this thread with `root` as its only entry.
///
/// # Safety
/// `b` must be a live or merged control block.
pub(crate) unsafe fn transfer_check(
    b: *mut RegionBlock,
    root: Value,
) -> Result<(), TransferRefusal> {
    // SAFETY: per the contract.
    unsafe {
        if !(*b).closed {
            return Err(TransferRefusal::NotClosed);
        }
        if !(*b).forward.is_null() || !(*b).scope_alive {
            return Err(TransferRefusal::NotOpen);
        }
        if (*b).owner != thread_token() {
            return Err(TransferRefusal::OtherThread);
        }
        if root.is_heap() && block_of_ptr(root.heap_ptr()) != b {
            return Err(TransferRefusal::ValueElsewhere);
        }
        if (*b).external_rc.load_acquire() > 0 {
            return Err(TransferRefusal::Counted);
        }
        if (*b).tethers > 0 {
            return Err(TransferRefusal::Tethered);
        }
        Ok(())
    }
}

/// Take a checked closed region off this thread: off the live list and out
/// of the thread's accounting. Returns its object bytes.
///
/// # Safety
/// `transfer_check(b, _)` must have succeeded, and the caller must hold no
/// pointer into `b` other than the one it hands over with it.
pub(crate) unsafe fn detach(b: *mut RegionBlock) -> usize {
    with_heap(|h| {
        // SAFETY: per the contract `b` is live, ours and unmerged.
        unsafe {
            account_in(h, b);
            unlink_live_in(h, b);
            let s = stats_in(h);
            s.live_bytes -= (*b).reported;
            s.live_segment_bytes -= (*b).seg_bytes;
            s.regions_sent += 1;
            (*b).reported = 0;
            (*b).dirty = true;
            (*b).owner = 0;
            if h.tracing.get() {
                record_in(h, (*b).id, TraceKind::Send);
            }
            bytes_allocated(b)
        }
    })
}

/// Splice a detached closed region into `into` (a region of this thread)
/// in O(1), like a merge: its objects now live and die with `into`.
///
/// No ordering check is needed, unlike `merge`: a closed region points
/// into no other region, so its objects may join a region of any rank.
///
/// # Safety
/// `y` must be a detached closed region (from `detach`) that nothing
/// else refers to; `into` must be live and owned by this thread.
pub(crate) unsafe fn adopt(y: *mut RegionBlock, into: Region) {
    let o = into.block();
    // SAFETY: per the contract.
    unsafe {
        debug_assert!((*y).closed && (*y).forward.is_null() && (*y).owner == 0);
        // A closed region's pairs are never marked (`marks_trusted`), so
        // no other thread's marks join `o`.
        debug_assert!((*y).marked_since == MARKS_NONE);
        let ybytes = bytes_allocated(y);
        (*(*o).tail).next = y.cast();
        (*o).tail = (*y).tail;
        (*o).dirty = true;
        (*y).dirty = true;
        (*o).bytes_closed += ybytes;
        (*o).segments += (*y).segments;
        (*o).seg_bytes += (*y).seg_bytes;
        (*o).transmigrated_objects_in += (*y).transmigrated_objects_in;
        (*o).transmigrated_bytes_in += (*y).transmigrated_bytes_in;
        (*y).scope_alive = false;
        forward_to(y, o);
        (*y).owner = (*o).owner;
        clamp_end(o);
        let seg_bytes = (*y).seg_bytes;
        with_heap(|h| {
            let s = stats_in(h);
            s.live_segment_bytes += seg_bytes;
            s.peak_segment_bytes = s.peak_segment_bytes.max(s.live_segment_bytes);
            s.regions_adopted += 1;
            if h.tracing.get() {
                record_in(
                    h,
                    (*y).id,
                    TraceKind::Adopt {
                        into: (*o).id,
                        bytes: ybytes,
                    },
                );
            }
            account_in(h, o);
        });
    }
}

/// Free a detached closed region that nobody adopted (a message left in a
/// channel nobody reads). Any thread may call this; it touches no
/// thread-local state.
///
/// # Safety
/// `y` must be a detached closed region that nothing refers to.
pub(crate) unsafe fn free_detached(y: *mut RegionBlock) {
    // SAFETY: per the contract; every segment of a closed region is shared
    // or large, which `release_shared_segment` handles.
    unsafe {
        debug_assert!((*y).closed && (*y).owner == 0);
        let mut seg: *mut SegHeader = y.cast();
        while !seg.is_null() {
            let next = (*seg).next;
            release_shared_segment(seg);
            seg = next;
        }
    }
}

// ---------------------------------------------------------------------------
// Introspection used by tests and tools

/// Live regions of this thread, oldest first.
pub fn live_regions() -> Vec<Region> {
    let mut out = Vec::new();
    let mut r = with_heap(|h| {
        flush_pending_in(h);
        h.live_head.get()
    });
    while !r.is_null() {
        out.push(Region::from_block(r));
        // SAFETY: blocks on the live list are live.
        r = unsafe { (*r).next_live };
    }
    out
}

/// The id of a live control block.
///
/// # Safety
/// `b` must be a live control block.
pub(crate) unsafe fn block_id(b: *mut RegionBlock) -> u64 {
    // SAFETY: per the contract.
    unsafe { (*b).id }
}

/// Record transmigration totals against the destination region.
///
/// # Safety
/// `b` must be a live control block owned by this thread.
pub(crate) unsafe fn note_transmigrated(b: *mut RegionBlock, objects: u64, bytes: u64) {
    // SAFETY: live block.
    unsafe {
        (*b).transmigrated_objects_in += objects;
        (*b).transmigrated_bytes_in += bytes;
        (*b).dirty = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_no_live_regions;

    #[test]
    fn create_exit_frees_and_counts() {
        let r = region_create();
        assert_eq!(r.bytes_allocated(), 0);
        // SAFETY: live block owned by this thread.
        let p = unsafe { alloc_raw(r.block(), 64) }.unwrap();
        assert_eq!(p.addr() % 8, 0);
        assert_eq!(r.bytes_allocated(), 64);
        assert!(r.is_alive());
        region_exit(r);
        assert!(!r.is_alive());
        assert_no_live_regions();
    }

    /// `free_clean_region` writes what the general path computes from
    /// a clean block's fields: the same counts, the bytes reaching the
    /// peak but not the live total, the block back in the pool.
    #[test]
    fn a_clean_region_is_freed_with_the_general_paths_accounting() {
        let before = heap_stats();
        let r = region_create();
        let b = r.block();
        // SAFETY: live block owned by this thread.
        unsafe { alloc_raw(b, 4000) }.unwrap();
        // SAFETY: as above.
        assert!(!unsafe { (*b).dirty }, "bump allocation in the first segment keeps it clean");
        let peak_floor = before.live_bytes + 4000;
        region_exit(r);
        let after = heap_stats();
        assert!(!r.is_alive());
        assert!(after.peak_live_bytes >= peak_floor);
        assert_eq!(after.live_bytes, before.live_bytes);
        assert_eq!(after.live_regions, before.live_regions);
        assert_eq!(after.live_segment_bytes, before.live_segment_bytes);
        assert_eq!(after.regions_freed, before.regions_freed + 1);
        // The next region reuses the block, clean.
        let again = region_create();
        assert_eq!(again.block(), b);
        assert_eq!(again.bytes_allocated(), 0);
        region_exit(again);
        assert_no_live_regions();
    }

    /// A message region's control block comes from the shared pool, so it
    /// is created dirty and freed by the general path, which gives its
    /// segment back to that pool.
    #[test]
    fn a_message_region_is_created_dirty() {
        let m = region_create_message();
        // SAFETY: live block owned by this thread.
        assert!(unsafe { (*m.block()).dirty && (*m.block()).seg.shared });
        region_exit(m);
        assert!(!m.is_alive());
        assert_no_live_regions();
    }

    #[test]
    fn ranks_are_ordered_by_creation() {
        let a = region_create();
        let b = region_create();
        assert!(a.rank() < b.rank());
        let p = region_create_process();
        assert_eq!(p.rank(), RANK_PROCESS);
        region_exit(b);
        region_exit(a);
        region_exit(p);
        assert_no_live_regions();
    }

    #[test]
    fn many_segments_and_large_objects_map_back_to_their_region() {
        let r = region_create();
        let b = r.block();
        let mut ptrs = Vec::new();
        for i in 0..2000 {
            let size = if i % 97 == 0 { 3 * SEGMENT_SIZE } else { 24 };
            // SAFETY: live block owned by this thread.
            let p = unsafe { alloc_raw(b, size) }.unwrap();
            ptrs.push(p);
        }
        for p in ptrs {
            // SAFETY: p is an allocation start in a live region.
            assert_eq!(unsafe { block_of_ptr(p) }, b);
        }
        assert!(r.stats().segments > 2);
        region_exit(r);
        assert_no_live_regions();
    }

    #[test]
    fn reserved_rank_keeps_creation_order() {
        let old = region_create();
        let reserved = reserve_rank();
        let young = region_create();
        let mid = region_create_at(reserved);
        assert!(old.rank() < mid.rank() && mid.rank() < young.rank());
        let order: Vec<u64> = live_regions().iter().map(|r| r.rank()).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "live list stays in rank order");
        // `old` is not mid's immediate elder... it is: nothing in between.
        assert!(merge_permitted(mid, old).is_ok());
        assert_eq!(
            merge_permitted(young, old),
            Err(MergeRefusal::RegionBetween)
        );
        region_exit(young);
        region_exit(mid);
        region_exit(old);
        assert_no_live_regions();
    }

    #[test]
    fn pending_tail_keeps_the_live_list_exact() {
        // The youngest region stays unlinked until something needs the
        // list; every reader must still see it in rank order.
        let a = region_create();
        assert_eq!(live_regions(), vec![a]);
        let b = region_create();
        let reserved = reserve_rank();
        let c = region_create();
        region_exit(c); // pending: never linked
        let d = region_create_at(reserved); // youngest again: pending
        assert_eq!(live_regions(), vec![a, b, d]);
        let reserved2 = reserve_rank();
        let e = region_create();
        let f = region_create_at(reserved2); // older than e: linked by a walk
        assert_eq!(live_regions(), vec![a, b, d, f, e]);
        let ranks: Vec<u64> = live_regions().iter().map(|r| r.rank()).collect();
        let mut sorted = ranks.clone();
        sorted.sort();
        assert_eq!(ranks, sorted);
        assert!(merge_permitted(b, a).is_ok());
        assert_eq!(merge_permitted(e, b), Err(MergeRefusal::RegionBetween));
        for r in [e, f, d, b, a] {
            region_exit(r);
        }
        assert_no_live_regions();
    }

    #[test]
    fn recycled_control_blocks_start_clean() {
        // A region that grew, was merged into, got a quota and took
        // transmigrated objects dirties its cold fields; the next region
        // built on the same control block must look brand new (debug
        // builds also check every cold field on reuse).
        let old = region_create();
        old.set_quota(Some(1 << 20));
        let young = region_create();
        // SAFETY: live blocks owned by this thread.
        unsafe {
            alloc_raw(young.block(), 3 * SEGMENT_SIZE).unwrap();
            alloc_raw(old.block(), SEGMENT_SIZE / 2).unwrap();
            alloc_raw(old.block(), SEGMENT_SIZE / 2).unwrap();
        }
        merge(young, old).unwrap();
        let _ = heap_stats();
        region_exit(old);
        // Two at a time: `old`'s control block and the merged stub's.
        for _ in 0..4 {
            let rs = [region_create(), region_create()];
            for r in rs {
                let st = r.stats();
                assert_eq!(st.bytes_allocated, 0);
                assert_eq!((st.segments, st.segment_bytes), (1, SEGMENT_SIZE));
                assert_eq!((st.merges_in, st.transmigrated_objects_in), (0, 0));
                assert_eq!(st.quota, None);
                // SAFETY: live block owned by this thread.
                unsafe { alloc_raw(r.block(), 64).unwrap() };
                assert_eq!(r.bytes_allocated(), 64);
            }
            for r in rs.into_iter().rev() {
                region_exit(r);
            }
        }
        assert_no_live_regions();
    }

    #[test]
    fn retained_region_outlives_scope_until_release() {
        let r = region_create();
        region_retain(r);
        region_exit(r);
        assert!(r.is_alive());
        assert_eq!(r.rank(), RANK_RETAINED);
        assert!(region_release(r));
        assert!(!r.is_alive());
        assert_no_live_regions();
    }

    #[test]
    fn quota_is_an_error_value_with_the_diagnostic() {
        let r = region_create();
        r.set_quota(Some(100));
        // SAFETY: live block owned by this thread.
        unsafe {
            assert!(alloc_raw(r.block(), 96).is_ok());
            let e = alloc_raw(r.block(), 8).unwrap_err();
            assert!(e
                .to_string()
                .contains("region exceeded quota; likely escape/retention"));
        }
        assert_eq!(r.bytes_allocated(), 96);
        region_exit(r);
        assert_no_live_regions();
    }

    #[test]
    fn merge_splices_and_forwards() {
        let old = region_create();
        let young = region_create();
        // SAFETY: live blocks owned by this thread.
        let p = unsafe { alloc_raw(young.block(), 3 * SEGMENT_SIZE) }.unwrap();
        let before = old.bytes_allocated();
        merge(young, old).unwrap();
        assert!(young.is_merged());
        assert!(young.same_as(old));
        // SAFETY: p is an object start in a live (merged) region.
        assert_eq!(unsafe { block_of_ptr(p) }, old.block());
        assert_eq!(old.bytes_allocated(), before + 3 * SEGMENT_SIZE);
        region_exit(young); // no-op: merged
        assert!(old.is_alive());
        region_exit(old);
        assert_no_live_regions();
    }

    /// `alloc_pair` bumps in the handle's own block without reading its
    /// merge forwarding (`Region::bump_block`): a merged block's window is
    /// closed, so a handle of the merged region allocates in its elder,
    /// counted there, and never in the stub's old window.
    #[test]
    fn a_merged_regions_handle_allocates_in_its_elder() {
        let old = region_create();
        let young = region_create();
        let first = crate::alloc_pair(young, Value::EMPTY, Value::EMPTY).unwrap();
        merge(young, old).unwrap();
        // SAFETY: `young` is a merge stub inside the live `old`.
        let stub = young.raw();
        let stub_cur = unsafe { (*stub).cur };
        let before = old.bytes_allocated();
        let mut last = first;
        for _ in 0..10 {
            last = crate::alloc_pair(young, Value::EMPTY, last).unwrap();
            assert!(region_of(last).unwrap().same_as(old));
        }
        assert_eq!(old.bytes_allocated(), before + 10 * 24, "counted in the elder");
        // SAFETY: as above.
        assert_eq!(unsafe { (*stub).cur }, stub_cur, "nothing bumped in the stub");
        let (mut n, mut l) = (0, last);
        while let Some(rest) = crate::cdr(l) {
            (n, l) = (n + 1, rest);
        }
        assert_eq!(n, 11);
        region_exit(young);
        region_exit(old);
        assert_no_live_regions();
    }

    #[test]
    fn merge_refusals() {
        let old = region_create();
        let mid = region_create();
        let young = region_create();
        assert_eq!(merge(young, old), Err(MergeRefusal::RegionBetween));
        assert_eq!(merge(old, young), Err(MergeRefusal::NotYounger));
        assert_eq!(merge(young, young), Err(MergeRefusal::SameRegion));
        region_retain(young);
        assert_eq!(merge(young, mid), Err(MergeRefusal::Counted));
        region_release(young);
        region_exit(young);
        region_exit(mid);
        region_exit(old);
        assert_no_live_regions();
    }
}
