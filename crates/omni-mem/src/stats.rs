//! Accounting (backlog R6): per-thread heap counters and per-region figures.
//! See docs/REGION_ACCOUNTING.md.

/// Counters for one thread's heap. Byte figures are exact at region
/// granularity: a region's bytes are folded into `live_bytes` whenever it
/// takes a new segment, when its stats are read, and when it is freed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    pub regions_created: u64,
    pub regions_freed: u64,
    /// Regions spliced into an older region by `merge` (never freed on their own).
    pub regions_merged: u64,
    /// Regions created on this thread and not yet freed, merged or sent:
    /// derived when the stats are read (`heap_stats`), so creating and
    /// freeing a region keep one counter fewer. Zero in the thread's
    /// running counters.
    pub live_regions: u64,
    /// Object bytes in live regions.
    pub live_bytes: usize,
    pub peak_live_bytes: usize,
    /// Segment bytes (reserved memory) held by live regions.
    pub live_segment_bytes: usize,
    pub peak_segment_bytes: usize,
    /// Segments obtained from the system allocator (pool misses).
    pub segments_from_os: u64,
    pub merges: u64,
    pub merges_refused: u64,
    /// Merge refusals by reason, indexed by `MergeRefusal as usize`.
    pub merge_refusals: [u64; 9],
    /// Barrier repairs that did not try a merge because the young region
    /// was below the H0 threshold (the first rung that failed).
    pub repairs_below_merge_threshold: u64,
    pub transmigrations: u64,
    pub transmigrated_objects: u64,
    pub transmigrated_bytes: u64,
    /// Largest side memory one transmigration used (restore log + work
    /// stack, in bytes): the forwarding table's overhead.
    pub peak_transmigration_side_bytes: usize,
    /// Barrier repairs by kind.
    pub repairs_transmigrate: u64,
    pub repairs_merge: u64,
    pub quota_errors: u64,
    /// Closed regions this thread handed off (`Parcel::transfer` and
    /// `Parcel::copy`; docs/REGION_THREADING_MODEL.md).
    pub regions_sent: u64,
    /// Parcels this thread spliced into one of its regions.
    pub regions_adopted: u64,
    /// Slot regions created for containers (docs/REGION_COALESCE_POLICY.md).
    pub slot_regions_created: u64,
    /// Slot-region compactions, and the bytes they gave back (what the
    /// overwritten values had occupied).
    pub slot_compactions: u64,
    pub slot_bytes_reclaimed: usize,
    /// Slot regions pinned because a read handed out a pointer into them.
    pub slot_regions_pinned: u64,
}

impl HeapStats {
    /// `live_regions` from the running counters: every region counted
    /// in `regions_created` leaves the live set exactly once, freed,
    /// merged into an older region or sent to another thread.
    pub(crate) fn derived_live_regions(&self) -> u64 {
        self.regions_created - self.regions_freed - self.regions_merged - self.regions_sent
    }
}

/// A snapshot of one region's accounting.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RegionStats {
    pub id: u64,
    pub rank: u64,
    pub bytes_allocated: usize,
    /// Bytes served from the region's first segment, which also holds the
    /// region's control block (the "inline buffer").
    pub inline_used: usize,
    pub segments: usize,
    pub segment_bytes: usize,
    pub merges_in: u64,
    pub transmigrated_objects_in: u64,
    pub transmigrated_bytes_in: u64,
    pub quota: Option<usize>,
    pub scope_alive: bool,
    pub external_rc: u32,
    pub tethers: u32,
}
