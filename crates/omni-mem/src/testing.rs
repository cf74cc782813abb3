//! Helpers shared by tests of every crate.

use crate::region::{heap_stats, live_regions};

/// Assert this thread has no live region and no live byte: the check every
/// test ends with.
pub fn assert_no_live_regions() {
    let s = heap_stats();
    let live = live_regions();
    assert!(
        live.is_empty() && s.live_regions == 0 && s.live_bytes == 0 && s.live_segment_bytes == 0,
        "leaked: {} live regions ({:?}), {} live bytes, {} segment bytes",
        s.live_regions,
        live.iter().map(|r| r.stats()).collect::<Vec<_>>(),
        s.live_bytes,
        s.live_segment_bytes
    );
}

/// Run `f`, then assert it left nothing live on this thread.
pub fn leak_checked<R>(f: impl FnOnce() -> R) -> R {
    let out = f();
    assert_no_live_regions();
    out
}
