//! Backlog R6: per-region and per-thread accounting, quota diagnostics.

use omni_mem::testing::{assert_no_live_regions, int_list};
use omni_mem::*;

#[test]
fn bytes_peak_and_regions_are_counted() {
    let before = heap_stats();
    let r = region_create();
    for i in 0..1000 {
        alloc_pair(r, Value::fixnum(i).unwrap(), Value::EMPTY).unwrap();
    }
    let s = r.stats();
    assert_eq!(s.bytes_allocated, 1000 * 24);
    assert!(s.segments >= 2);
    assert!(s.inline_used > 0 && s.inline_used < SEGMENT_SIZE);
    let h = heap_stats();
    assert_eq!(h.live_bytes, before.live_bytes + 24_000);
    assert_eq!(h.live_regions, before.live_regions + 1);
    assert!(h.peak_live_bytes >= h.live_bytes);
    region_exit(r);
    let after = heap_stats();
    assert_eq!(after.regions_freed, before.regions_freed + 1);
    assert!(after.peak_live_bytes >= 24_000);
    assert_no_live_regions();
}

/// `regions_created` is derived from the ids a thread has handed out, so
/// every way a region is created counts: a new segment, the hot header,
/// the header pool, a message region, a slot region. A new thread starts
/// from zero, before and after its first region.
#[test]
fn every_kind_of_region_creation_is_counted() {
    std::thread::spawn(|| {
        assert_eq!(heap_stats().regions_created, 0);
        let a = region_create(); // a new segment
        let b = region_create(); // a new segment
        region_exit(b);
        let c = region_create(); // the hot header
        let d = region_create(); // a new segment
        region_exit(d);
        region_exit(c); // into the header pool: the hot slot is taken
        let e = region_create(); // the hot header
        let f = region_create(); // the header pool
        let msg = region_create_message();
        let arr = alloc_array(a, 1, Value::NOTHING).unwrap();
        let young = region_create();
        // Overwrites of a heap value in an array: the last one gets the
        // array a slot region (slots.rs).
        for i in 0..=SLOT_REGION_AFTER as i64 + 1 {
            assert!(array_set(arr, 0, int_list(young, i, 3)).unwrap());
        }
        let s = heap_stats();
        assert_eq!(s.slot_regions_created, 1);
        assert_eq!(s.regions_created, 8 + s.slot_regions_created);
        assert_eq!(s.live_regions, 5 + s.slot_regions_created);
        for r in [young, msg, f, e, a] {
            region_exit(r);
        }
        let s = heap_stats();
        assert_eq!(s.regions_created, 9);
        assert_eq!(s.regions_freed, 9);
        assert_no_live_regions();
    })
    .join()
    .unwrap();
}

#[test]
fn tiny_region_uses_only_its_inline_buffer() {
    let r = region_create();
    alloc_str(r, "tiny").unwrap();
    let s = r.stats();
    assert_eq!(s.segments, 1);
    assert_eq!(s.inline_used, s.bytes_allocated);
    region_exit(r);
    assert_no_live_regions();
}

#[test]
fn transmigration_and_merge_are_counted_per_region_and_thread() {
    let before = heap_stats();
    let old = region_create();
    let young = region_create();
    let l = alloc_list(young, &[Value::TRUE, Value::FALSE]).unwrap();
    let copy = transmigrate(l, young, old).unwrap();
    assert_eq!(old.stats().transmigrated_objects_in, 2);
    assert_eq!(old.stats().transmigrated_bytes_in, 48);
    assert_eq!(car(copy), Some(Value::TRUE));
    merge(young, old).unwrap();
    assert_eq!(old.stats().merges_in, 1);
    let after = heap_stats();
    assert_eq!(
        after.transmigrated_objects,
        before.transmigrated_objects + 2
    );
    assert_eq!(after.merges, before.merges + 1);
    region_exit(young);
    region_exit(old);
    assert_no_live_regions();
}

#[test]
fn quota_reports_escape_or_retention() {
    let r = region_create();
    r.set_quota(Some(1000));
    let mut err = None;
    for i in 0..100 {
        match alloc_pair(r, Value::fixnum(i).unwrap(), Value::EMPTY) {
            Ok(_) => {}
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let err = err.expect("quota must trip");
    assert!(err
        .to_string()
        .starts_with("region exceeded quota; likely escape/retention"));
    assert!(r.bytes_allocated() <= 1000);
    r.set_quota(None);
    alloc_pair(r, Value::TRUE, Value::EMPTY).unwrap();
    region_exit(r);
    assert_no_live_regions();
}

#[test]
fn large_objects_are_accounted() {
    let r = region_create();
    let a = alloc_array(r, 10_000, Value::NOTHING).unwrap();
    assert_eq!(array_len(a), Some(10_000));
    assert!(r.bytes_allocated() >= 80_000);
    assert!(r.stats().segment_bytes >= 80_000);
    region_exit(r);
    assert_no_live_regions();
}

/// Fill a region with `mib` MiB of 4000-byte strings (below the
/// large-object size, so they fill ordinary segments: at least `mib - 1`
/// whole 1 MiB slabs) and exit it.
fn fill_and_exit(mib: usize) {
    // Not ASCII from its first byte, so `alloc_str`'s ASCII test stops at
    // once: with "x"s that test was most of these tests' time under Miri.
    let text = "é".repeat(2000);
    assert_eq!(text.len(), 4000, "two bytes per character");
    let r = region_create();
    for _ in 0..(mib << 20) / text.len() {
        alloc_str(r, &text).unwrap();
    }
    region_exit(r);
}

/// Allocation still works after a trim, and nothing is left live.
fn allocate_after_trim() {
    let r = region_create();
    alloc_pair(r, Value::TRUE, Value::EMPTY).unwrap();
    region_exit(r);
    assert_no_live_regions();
}

#[test]
fn trim_returns_fully_free_slabs() {
    fill_and_exit(3);
    let released = trim_pools();
    assert!(released >= 1 << 20, "released only {released} bytes");
    allocate_after_trim();
}

#[test]
fn a_thread_trim_keeps_the_slabs_it_is_asked_to_keep() {
    fill_and_exit(3);
    let first = trim_thread_pool(1);
    assert!(first >= 1 << 20, "released only {first} bytes");
    assert_eq!(trim_thread_pool(1), 0, "the kept slab stays pooled");
    assert_eq!(trim_thread_pool(0), 1 << 20, "then it goes too");
    allocate_after_trim();
}

#[test]
fn heap_limit_is_an_error_value() {
    let old = set_heap_limit(Some(64 * 1024));
    let r = region_create();
    let mut err = None;
    for i in 0..100_000 {
        if let Err(e) = alloc_pair(r, Value::fixnum(i).unwrap(), Value::EMPTY) {
            err = Some(e);
            break;
        }
    }
    set_heap_limit(old);
    let err = err.expect("the limit must trip");
    assert!(matches!(err, MemError::HeapLimit { .. }));
    assert!(err.to_string().starts_with("heap limit exceeded"));
    region_exit(r);
    assert_no_live_regions();
}

#[test]
fn trace_records_region_lifetimes_and_repairs() {
    trace_start();
    let old = region_create();
    let young = region_create();
    let l = alloc_list(young, &[Value::TRUE]).unwrap();
    let copy = transmigrate(l, young, old).unwrap();
    assert_eq!(car(copy), Some(Value::TRUE));
    merge(young, old).unwrap();
    region_exit(young);
    region_exit(old);
    let events = trace_stop();
    let (oid, yid) = (old_id(&events, 0), old_id(&events, 1));
    let kinds: Vec<(u64, TraceKind)> = events.iter().map(|e| (e.region, e.kind)).collect();
    assert_eq!(kinds[0], (oid, TraceKind::Create));
    assert_eq!(kinds[1], (yid, TraceKind::Create));
    assert!(kinds.contains(&(
        oid,
        TraceKind::Transmigrate {
            objects: 1,
            bytes: 24
        }
    )));
    assert!(kinds
        .iter()
        .any(|k| matches!(k, (id, TraceKind::Merge { into, .. }) if *id == yid && *into == oid)));
    assert!(matches!(kinds.last(), Some((id, TraceKind::Free { .. })) if *id == oid));
    assert!(events.windows(2).all(|w| w[0].t_ns <= w[1].t_ns));
    assert_eq!(events.last().unwrap().live_segment_bytes, 0);
    // Off again: nothing more is recorded.
    region_exit(region_create());
    assert!(trace_stop().is_empty());
    assert_no_live_regions();
}

/// A region that allocates nothing is freed by the clean path, which
/// tests no recording flag: one created while recording is freed by the
/// general path and so has both events; one created before has neither.
#[test]
fn trace_pairs_every_recorded_create_with_its_free() {
    let before = region_create();
    trace_start();
    let during = region_create();
    region_exit(during);
    region_exit(before);
    let events = trace_stop();
    let kinds: Vec<TraceKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds.len(), 2, "{events:?}");
    assert_eq!(kinds[0], TraceKind::Create);
    assert!(matches!(kinds[1], TraceKind::Free { bytes: 0 }));
    assert!(events.iter().all(|e| e.region == events[0].region));
    // The next region reuses the block, clean again: no events when off.
    region_exit(region_create());
    assert!(trace_stop().is_empty());
    assert_no_live_regions();
}

fn old_id(events: &[TraceEvent], i: usize) -> u64 {
    events[i].region
}
