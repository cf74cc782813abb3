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

/// A fresh list `(base base+1 ... base+n-1)` of fixnums in `r`.
pub fn int_list(r: crate::Region, base: i64, n: i64) -> crate::Value {
    let items: Vec<crate::Value> = (base..base + n)
        .map(|i| crate::Value::fixnum(i).expect("test fixnums are small"))
        .collect();
    crate::alloc_list(r, &items).expect("test list fits")
}

/// The fixnums of a proper list built by [`int_list`]; panics on anything
/// else.
pub fn list_ints(mut v: crate::Value) -> Vec<i64> {
    let mut out = Vec::new();
    while let Some(a) = crate::car(v) {
        out.push(crate::int_value(a).expect("a fixnum element"));
        v = crate::cdr(v).expect("a pair");
    }
    assert_eq!(v, crate::Value::EMPTY, "a proper list");
    out
}

/// A seeded xorshift generator for randomised tests: each call gives a
/// number below its argument.
pub fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}
