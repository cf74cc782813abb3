//! Optional per-thread event log of region lifetimes (for
//! `omni --trace-regions` and `--plot`). Off by default; when off the only
//! cost on the region paths is one thread-local flag test.

/// What happened to a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceKind {
    Create,
    /// The region's memory was reused; `bytes` it held.
    Free {
        bytes: usize,
    },
    /// Spliced into region `into` (ids), carrying `bytes`.
    Merge {
        into: u64,
        bytes: usize,
    },
    /// A transmigration copied `objects` objects, `bytes` bytes into it.
    Transmigrate {
        objects: u64,
        bytes: u64,
    },
    /// Handed to another thread (a parcel left this thread).
    Send,
    /// A received parcel was spliced into region `into`, carrying `bytes`.
    Adopt {
        into: u64,
        bytes: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceEvent {
    /// Nanoseconds since `trace_start`.
    pub t_ns: u64,
    pub region: u64,
    pub kind: TraceKind,
    /// The thread's live segment bytes just after the event.
    pub live_segment_bytes: usize,
}
