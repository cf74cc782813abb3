//! Slot regions (docs/REGION_COALESCE_POLICY.md): values stored into an
//! older array or dict are copied into the container's slot region, which
//! is compacted as they are overwritten, pinned by any read that hands one
//! out, moved by merge, copied out by transmigration, and freed with its
//! owner. Every test ends with nothing live.

use omni_mem::testing::{assert_no_live_regions, int_list, leak_checked, list_ints, xorshift};
use omni_mem::*;

fn int(n: i64) -> Value {
    Value::fixnum(n).unwrap()
}

fn list(r: Region, base: i64, n: i64) -> Value {
    int_list(r, base, n)
}

fn expect_list(v: Value, base: i64, n: i64) {
    assert_eq!(list_ints(v), (base..base + n).collect::<Vec<_>>());
}

/// Make `store` (a store into one slot of a container) overwrite heap
/// values until the container is given a slot region, which happens at its
/// `SLOT_REGION_AFTER`-th overwrite; the slot holds `NOTHING` again after.
/// The values are pairs of the container's own region, so nothing is
/// copied.
fn warm_up(container: Value, mut store: impl FnMut(Value)) {
    let own = region_of(container).unwrap();
    for _ in 0..=SLOT_REGION_AFTER {
        store(alloc_pair(own, int(0), Value::EMPTY).unwrap());
    }
    store(Value::NOTHING);
}

fn warm_up_array(arr: Value) {
    warm_up(arr, |v| assert!(array_set(arr, 0, v).unwrap()));
}

/// Warm up a dict through a key no test uses, then remove it.
fn warm_up_dict(d: Value) {
    warm_up(d, |v| assert!(dict_set(d, int(-1), v).unwrap()));
    assert!(dict_remove(d, int(-1)));
}

/// Store a fresh 10-element list (240 bytes) built in a young region.
fn store_fresh(arr: Value, i: usize, base: i64) {
    let young = region_create();
    assert!(array_set(arr, i, list(young, base, 10)).unwrap());
    region_exit(young);
}

/// Enough 240-byte stores to pass the first compaction threshold twice.
const ROUNDS: i64 = (2 * COMPACT_MIN_BYTES / 240 + 50) as i64;

#[test]
fn overwritten_values_are_given_back_by_compaction() {
    leak_checked(|| {
        let before = heap_stats();
        let old = region_create();
        let arr = alloc_array(old, 4, Value::NOTHING).unwrap();
        warm_up_array(arr);
        let old_bytes = old.bytes_allocated();
        for r in 0..ROUNDS {
            store_fresh(arr, (r % 4) as usize, r);
        }
        let after = heap_stats();
        // Nothing went into the array's own region: the copies are in its
        // slot region, and compaction kept that near the four live lists.
        assert_eq!(old.bytes_allocated(), old_bytes);
        assert!(after.slot_compactions >= before.slot_compactions + 2);
        assert!(after.slot_bytes_reclaimed > before.slot_bytes_reclaimed);
        assert!(
            after.live_bytes < old_bytes + 2 * COMPACT_MIN_BYTES,
            "{} live bytes",
            after.live_bytes
        );
        for i in 0..4 {
            let last = (ROUNDS - 1) - ((ROUNDS - 1 - i) % 4);
            expect_list(array_get(arr, i as usize).unwrap(), last, 10);
        }
        region_exit(old);
    });
}

/// While compaction is held (the language's pure tier holds it while it
/// may put replaced values back), a value a store replaces stays readable
/// where it was, however far past its threshold the slot region grows;
/// `compact_if_due` after the release does what the held stores did not.
#[test]
fn a_held_compaction_waits_for_compact_if_due() {
    leak_checked(|| {
        let before = heap_stats();
        let old = region_create();
        let arr = alloc_array(old, 4, Value::NOTHING).unwrap();
        warm_up_array(arr);
        hold_compaction();
        // The values each store replaced, read without a pin, as the tier
        // logs them.
        let mut replaced = Vec::new();
        for r in 0..ROUNDS {
            let i = (r % 4) as usize;
            replaced.push((array_borrow(arr, i).unwrap(), r - 4));
            store_fresh(arr, i, r);
        }
        assert_eq!(heap_stats().slot_compactions, before.slot_compactions);
        for &(v, base) in &replaced[4..] {
            expect_list(v, base, 10);
        }
        // Nothing compacts while held, even when asked.
        compact_if_due(arr).unwrap();
        assert_eq!(heap_stats().slot_compactions, before.slot_compactions);
        release_compaction();
        compact_if_due(arr).unwrap();
        let after = heap_stats();
        assert_eq!(after.slot_compactions, before.slot_compactions + 1);
        assert!(after.slot_bytes_reclaimed > before.slot_bytes_reclaimed);
        for i in 0..4 {
            let last = (ROUNDS - 1) - ((ROUNDS - 1 - i) % 4);
            expect_list(array_get(arr, i as usize).unwrap(), last, 10);
        }
        // Not due again: nothing more to do.
        compact_if_due(arr).unwrap();
        assert_eq!(heap_stats().slot_compactions, after.slot_compactions);
        region_exit(old);
    });
}

/// A slot region costs a segment: a container is given one only at its
/// `SLOT_REGION_AFTER`-th overwrite of a heap value. Until then its stores
/// are repaired into its own region, and a container stored into once
/// costs no segment (100,000 one-slot arrays took 1.6 GB of segments
/// before the ninth session).
#[test]
fn a_container_is_given_a_slot_region_only_once_it_overwrites() {
    leak_checked(|| {
        let before = heap_stats();
        let old = region_create();
        let n = if cfg!(miri) { 50 } else { 5_000 };
        let arrays: Vec<Value> = (0..n)
            .map(|i| {
                let a = alloc_array(old, 1, int(0)).unwrap();
                store_fresh(a, 0, i);
                a
            })
            .collect();
        let mid = heap_stats();
        assert_eq!(mid.slot_regions_created, before.slot_regions_created);
        // The copies are in the arrays' region: a few segments, not one
        // per array.
        assert!(
            old.bytes_allocated() < n as usize * 400,
            "{} bytes",
            old.bytes_allocated()
        );
        for (i, &a) in arrays.iter().enumerate() {
            expect_list(array_get(a, 0).unwrap(), i as i64, 10);
        }
        // One array overwritten again and again: its overwrites before the
        // slot region stay in `old`, then it gets one.
        let a = arrays[0];
        for r in 0..SLOT_REGION_AFTER as i64 {
            store_fresh(a, 0, r);
            assert_eq!(
                heap_stats().slot_regions_created,
                before.slot_regions_created
            );
        }
        store_fresh(a, 0, 77);
        assert_eq!(
            heap_stats().slot_regions_created,
            before.slot_regions_created + 1
        );
        let slot = region_of(array_get(a, 0).unwrap()).unwrap();
        assert!(!slot.same_as(old) && slot.rank() == old.rank());
        expect_list(array_get(a, 0).unwrap(), 77, 10);
        region_exit(old);
    });
}

#[test]
fn a_container_that_only_grows_is_not_compacted() {
    leak_checked(|| {
        let before = heap_stats();
        let old = region_create();
        let arr = alloc_array(old, 0, Value::NOTHING).unwrap();
        let d = alloc_dict(old).unwrap();
        for r in 0..ROUNDS {
            let young = region_create();
            assert!(array_push(arr, list(young, r, 10)).unwrap());
            assert!(dict_set(d, int(r), list(young, r, 10)).unwrap());
            region_exit(young);
        }
        // Every byte in the slot regions is live: copying them would only
        // double the peak.
        assert_eq!(heap_stats().slot_compactions, before.slot_compactions);
        for r in [0, ROUNDS / 2, ROUNDS - 1] {
            expect_list(array_get(arr, r as usize).unwrap(), r, 10);
            expect_list(dict_get(d, int(r)).unwrap(), r, 10);
        }
        region_exit(old);
    });
}

#[test]
fn a_read_value_survives_later_stores() {
    leak_checked(|| {
        let old = region_create();
        let arr = alloc_array(old, 2, Value::NOTHING).unwrap();
        warm_up_array(arr);
        let before = heap_stats();
        store_fresh(arr, 0, 1000);
        let held = array_get(arr, 0).unwrap();
        assert_eq!(
            heap_stats().slot_regions_pinned,
            before.slot_regions_pinned + 1
        );
        // The slot that held it is overwritten many times over: the pinned
        // region is never compacted, so `held` stays valid (Miri and the
        // debug use-after-free check would see otherwise).
        for r in 0..ROUNDS {
            store_fresh(arr, 0, r);
        }
        expect_list(held, 1000, 10);
        // Once the pinned region was full, a fresh slot region took over
        // and was compacted as usual.
        assert!(heap_stats().slot_compactions > before.slot_compactions);
        expect_list(array_get(arr, 0).unwrap(), ROUNDS - 1, 10);
        region_exit(old);
    });
}

#[test]
fn dict_keys_and_values_use_the_slot_region() {
    leak_checked(|| {
        let old = region_create();
        let d = alloc_dict(old).unwrap();
        warm_up_dict(d);
        let old_bytes = old.bytes_allocated();
        for r in 0..ROUNDS {
            let young = region_create();
            let key = alloc_str(young, &format!("k{}", r % 3)).unwrap();
            assert!(dict_set(d, key, list(young, r, 10)).unwrap());
            region_exit(young);
        }
        assert!(heap_stats().slot_compactions > 0);
        let entries = dict_entries(d).unwrap();
        assert_eq!(entries.len(), 3);
        for (k, v) in entries {
            let name = with_str(k, str::to_owned).unwrap();
            let idx: i64 = name[1..].parse().unwrap();
            let last = (ROUNDS - 1) - ((ROUNDS - 1 - idx) % 3);
            expect_list(v, last, 10);
        }
        // The dict's own region grew only by its entry storage.
        assert!(old.bytes_allocated() < old_bytes + 1024);
        region_exit(old);
    });
}

#[test]
fn values_already_old_enough_are_stored_as_they_are() {
    leak_checked(|| {
        let before = heap_stats();
        let old = region_create();
        let shared = list(old, 0, 3);
        let arr = alloc_array(old, 2, Value::NOTHING).unwrap();
        assert!(array_set(arr, 0, shared).unwrap());
        assert!(array_push(arr, int(7)).unwrap());
        assert_eq!(array_get(arr, 0), Some(shared));
        assert_eq!(
            heap_stats().slot_regions_created,
            before.slot_regions_created
        );
        // A value read out of another container of the same region (its
        // slot region, now pinned, dies with `old`) is stored as it is:
        // into a container, a box, or a pair in a sibling slot region.
        let other = alloc_array(old, 1, Value::NOTHING).unwrap();
        let third = alloc_array(old, 1, Value::NOTHING).unwrap();
        warm_up_array(other);
        warm_up_array(third);
        store_fresh(other, 0, 40);
        store_fresh(third, 0, 60);
        let read = array_get(other, 0).unwrap();
        let sibling = array_get(third, 0).unwrap();
        let mid = heap_stats();
        assert!(array_set(arr, 1, read).unwrap());
        let cell = alloc_box(old, Value::NOTHING).unwrap();
        assert!(box_set(cell, read).unwrap());
        assert!(set_car(sibling, read).unwrap());
        assert_eq!(array_get(arr, 1), Some(read));
        assert_eq!(box_get(cell), Some(read));
        assert_eq!(car(sibling), Some(read));
        let after = heap_stats();
        assert_eq!(after.repairs_transmigrate, mid.repairs_transmigrate);
        assert_eq!(after.merges_refused, mid.merges_refused);
        region_exit(old);
    });
}

#[test]
fn values_built_in_the_store_region_are_stored_without_a_copy() {
    leak_checked(|| {
        let old = region_create();
        let arr = alloc_array(old, 2, Value::NOTHING).unwrap();
        let cell = alloc_pair(old, Value::NOTHING, Value::NOTHING).unwrap();
        // Before its slot region is due: the array's own region.
        assert!(store_region(arr).unwrap().same_as(old));
        warm_up_array(arr);
        // Any other container: its own region. An immediate: none.
        assert!(store_region(cell).unwrap().same_as(old));
        assert_eq!(store_region(int(3)), None);
        let before = heap_stats();
        for r in 0..ROUNDS {
            let slot = store_region(arr).unwrap();
            assert!(!slot.same_as(old) && slot.rank() == old.rank());
            assert!(array_set(arr, (r % 2) as usize, list(slot, r, 10)).unwrap());
        }
        let after = heap_stats();
        assert_eq!(after.repairs_transmigrate, before.repairs_transmigrate);
        assert!(after.slot_compactions > before.slot_compactions);
        expect_list(array_get(arr, 0).unwrap(), ROUNDS - 2 + ROUNDS % 2, 10);
        region_exit(old);
    });
}

/// A constructor built in the slot region (`store_region`) whose field
/// lives in a young region past the merge threshold: the field is copied
/// into the slot region, and the young region is not merged into it, so
/// the compactions that follow free nothing the mutator still holds (they
/// freed the whole young region before the seventh session). The
/// threshold is 1 KiB here: every compaction copies the young list again,
/// and at the default 64 KiB this one test took two minutes of the Miri
/// gate.
#[test]
fn a_big_young_region_is_copied_into_a_slot_region_not_merged() {
    leak_checked(|| {
        let old_threshold = set_merge_threshold(1024);
        let old = region_create();
        let arr = alloc_array(old, 2, Value::NOTHING).unwrap();
        warm_up_array(arr);
        let young = region_create();
        let n = (merge_threshold() / 24 + 100) as i64;
        let big = list(young, 0, n);
        assert!(young.bytes_allocated() >= merge_threshold());
        let before = heap_stats();
        let slot = store_region(arr).unwrap();
        let cell = alloc_pair(slot, big, Value::EMPTY).unwrap();
        assert!(array_set(arr, 0, cell).unwrap());
        let mid = heap_stats();
        assert_eq!(
            mid.merges, before.merges,
            "nothing merged into the slot region"
        );
        assert!(mid.merges_refused > before.merges_refused);
        assert!(mid.repairs_transmigrate > before.repairs_transmigrate);
        assert_eq!(merge(young, slot), Err(MergeRefusal::SlotRegion));
        // Overwrite both slots until the slot region has been compacted.
        for r in 0..ROUNDS {
            store_fresh(arr, (r % 2) as usize, r);
        }
        assert!(heap_stats().slot_compactions > mid.slot_compactions);
        // The mutator's list is whole (debug builds trip on freed memory).
        expect_list(big, 0, n);
        region_exit(young);
        region_exit(old);
        set_merge_threshold(old_threshold);
    });
}

#[test]
fn reachability_and_bytes_count_the_slot_regions() {
    leak_checked(|| {
        let old = region_create();
        let arr = alloc_array(old, 2, Value::NOTHING).unwrap();
        warm_up_array(arr);
        store_fresh(arr, 0, 1);
        store_fresh(arr, 1, 2);
        // Two 10-pair lists in the slot region, reached through the array.
        assert!(old.slot_region_bytes() >= 2 * 10 * 24);
        let own = reachable_bytes(&[arr], old);
        assert!(own >= 2 * 10 * 24, "{own}");
        // Overwritten while a read pinned the region: still allocated, no
        // longer reachable.
        let held = array_get(arr, 0).unwrap();
        let before = old.slot_region_bytes();
        store_fresh(arr, 0, 3);
        assert!(old.slot_region_bytes() > before);
        assert_eq!(reachable_bytes(&[arr], old), own);
        expect_list(held, 1, 10);
        region_exit(old);
    });
}

#[test]
fn merge_hands_slot_regions_to_the_elder() {
    leak_checked(|| {
        let outer = region_create();
        let outer_arr = alloc_array(outer, 1, Value::NOTHING).unwrap();
        warm_up_array(outer_arr);
        store_fresh(outer_arr, 0, 1);
        let inner = region_create();
        let arr = alloc_array(inner, 1, Value::NOTHING).unwrap();
        warm_up_array(arr);
        store_fresh(arr, 0, 5);
        // `outer`'s slot region sits between `outer` and `inner` in the
        // live list, but dies with `outer`: it is not a region in between.
        assert_eq!(merge_permitted(inner, outer), Ok(()));
        merge(inner, outer).unwrap();
        let slot = region_of(array_get(arr, 0).unwrap()).unwrap();
        assert_eq!(slot.rank(), outer.rank());
        assert!(!slot.same_as(outer));
        // A slot region itself never merges.
        assert_eq!(merge_permitted(slot, outer), Err(MergeRefusal::SlotRegion));
        region_exit(inner); // merged: no-op
        expect_list(array_get(arr, 0).unwrap(), 5, 10);
        expect_list(array_get(outer_arr, 0).unwrap(), 1, 10);
        region_exit(outer);
    });
}

#[test]
fn transmigration_out_of_the_owner_copies_its_slot_regions() {
    leak_checked(|| {
        let dst = region_create();
        let src = region_create();
        let arr = alloc_array(src, 2, Value::NOTHING).unwrap();
        warm_up_array(arr);
        store_fresh(arr, 0, 10);
        store_fresh(arr, 1, 20);
        let copy = transmigrate(arr, src, dst).unwrap();
        region_exit(src); // frees the slot region too
        for (i, base) in [(0usize, 10i64), (1, 20)] {
            let x = array_get(copy, i).unwrap();
            assert!(region_of(x).unwrap().same_as(dst));
            expect_list(x, base, 10);
        }
        region_exit(dst);
    });
}

#[test]
fn nested_slot_regions_are_freed_without_recursion() {
    // Each level is an array stored into the previous one's slot region,
    // read back (pinning it) and stored into in turn: a chain of slot
    // regions as deep as the chain of arrays.
    let depth = if cfg!(miri) { 40 } else { 5_000 };
    let old = region_create();
    let root = alloc_array(old, 1, Value::NOTHING).unwrap();
    let mut cur = root;
    for _ in 0..depth {
        warm_up_array(cur);
        let young = region_create();
        let next = alloc_array(young, 1, Value::NOTHING).unwrap();
        assert!(array_set(cur, 0, next).unwrap());
        region_exit(young);
        cur = array_get(cur, 0).unwrap();
    }
    assert!(heap_stats().live_regions > depth as u64);
    region_exit(old);
    assert_no_live_regions();
}

#[test]
fn random_stores_reads_and_pushes_agree_with_a_model() {
    leak_checked(|| {
        let steps = if cfg!(miri) { 400 } else { 20_000 };
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
        let old = region_create();
        let arr = alloc_array(old, 8, Value::NOTHING).unwrap();
        let d = alloc_dict(old).unwrap();
        warm_up_array(arr);
        warm_up_dict(d);
        let mut model_arr: Vec<Option<(i64, i64)>> = vec![None; 8];
        let mut model_dict: Vec<Option<(i64, i64)>> = vec![None; 5];
        // Values handed out by reads, with what they must still hold.
        let mut held: Vec<(Value, i64, i64)> = Vec::new();
        for step in 0..steps {
            let base = step as i64 * 100;
            let len = 1 + next(12) as i64;
            match next(7) {
                0..=2 => {
                    let i = next(model_arr.len() as u64) as usize;
                    let young = region_create();
                    assert!(array_set(arr, i, list(young, base, len)).unwrap());
                    region_exit(young);
                    model_arr[i] = Some((base, len));
                }
                3 => {
                    let young = region_create();
                    assert!(array_push(arr, list(young, base, len)).unwrap());
                    region_exit(young);
                    model_arr.push(Some((base, len)));
                }
                4 => {
                    let k = next(model_dict.len() as u64) as i64;
                    let young = region_create();
                    assert!(dict_set(d, int(k), list(young, base, len)).unwrap());
                    region_exit(young);
                    model_dict[k as usize] = Some((base, len));
                }
                5 => {
                    let i = next(model_arr.len() as u64) as usize;
                    if let Some((b, n)) = model_arr[i] {
                        held.push((array_get(arr, i).unwrap(), b, n));
                    }
                }
                _ => {
                    let k = next(model_dict.len() as u64) as i64;
                    if let Some((b, n)) = model_dict[k as usize] {
                        held.push((dict_get(d, int(k)).unwrap(), b, n));
                    }
                }
            }
            if !held.is_empty() {
                let (v, b, n) = held[next(held.len() as u64) as usize];
                expect_list(v, b, n);
            }
            if held.len() > 64 {
                held.drain(..32);
            }
        }
        for &(v, b, n) in &held {
            expect_list(v, b, n);
        }
        for (i, m) in model_arr.iter().enumerate() {
            match m {
                Some((b, n)) => expect_list(array_get(arr, i).unwrap(), *b, *n),
                None => assert_eq!(array_get(arr, i), Some(Value::NOTHING)),
            }
        }
        for (k, m) in model_dict.iter().enumerate() {
            let got = dict_get(d, int(k as i64));
            match m {
                Some((b, n)) => expect_list(got.unwrap(), *b, *n),
                None => assert_eq!(got, None),
            }
        }
        region_exit(old);
    });
}

/// Boxes have slot regions too (the box of a variable a loop `set!`s):
/// what a box replaces is given back by compaction.
#[test]
fn a_box_set_again_and_again_gives_back_what_it_replaced() {
    leak_checked(|| {
        let before = heap_stats();
        let old = region_create();
        let cell = alloc_box(old, Value::NOTHING).unwrap();
        warm_up(cell, |v| assert!(box_set(cell, v).unwrap()));
        let old_bytes = old.bytes_allocated();
        for r in 0..ROUNDS {
            let young = region_create();
            assert!(box_set(cell, list(young, r, 10)).unwrap());
            region_exit(young);
            // A borrow reads without pinning.
            expect_list(box_borrow(cell).unwrap(), r, 10);
        }
        let after = heap_stats();
        assert_eq!(old.bytes_allocated(), old_bytes);
        assert!(after.slot_compactions >= before.slot_compactions + 2);
        assert_eq!(after.slot_regions_pinned, before.slot_regions_pinned);
        assert!(
            after.live_bytes < old_bytes + 2 * COMPACT_MIN_BYTES,
            "{} live bytes",
            after.live_bytes
        );
        expect_list(box_get(cell).unwrap(), ROUNDS - 1, 10);
        region_exit(old);
    });
}

/// `box_get` hands the value out: it pins, and what it handed out stays
/// valid however often the box is set afterwards.
#[test]
fn a_box_read_pins_its_slot_region() {
    leak_checked(|| {
        let old = region_create();
        let cell = alloc_box(old, Value::NOTHING).unwrap();
        warm_up(cell, |v| assert!(box_set(cell, v).unwrap()));
        let before = heap_stats();
        let young = region_create();
        assert!(box_set(cell, list(young, 500, 10)).unwrap());
        region_exit(young);
        let held = box_get(cell).unwrap();
        assert_eq!(
            heap_stats().slot_regions_pinned,
            before.slot_regions_pinned + 1
        );
        for r in 0..ROUNDS {
            let young = region_create();
            assert!(box_set(cell, list(young, r, 10)).unwrap());
            region_exit(young);
        }
        expect_list(held, 500, 10);
        expect_list(box_get(cell).unwrap(), ROUNDS - 1, 10);
        region_exit(old);
    });
}

/// A box copied out of its region starts with no slot region of its own;
/// its value comes along into the destination.
#[test]
fn a_transmigrated_box_leaves_its_slot_region_behind() {
    leak_checked(|| {
        let dst = region_create();
        let src = region_create();
        let cell = alloc_box(src, Value::NOTHING).unwrap();
        warm_up(cell, |v| assert!(box_set(cell, v).unwrap()));
        store_fresh_box(cell, 30);
        let copy = transmigrate(cell, src, dst).unwrap();
        region_exit(src);
        let x = box_get(copy).unwrap();
        assert!(region_of(x).unwrap().same_as(dst));
        expect_list(x, 30, 10);
        // The copy is set as any box: first into its own region.
        store_fresh_box(copy, 40);
        expect_list(box_get(copy).unwrap(), 40, 10);
        assert!(region_of(box_get(copy).unwrap()).unwrap().same_as(dst));
        region_exit(dst);
    });
}

fn store_fresh_box(cell: Value, base: i64) {
    let young = region_create();
    assert!(box_set(cell, list(young, base, 10)).unwrap());
    region_exit(young);
}

/// A container that overwrites values takes copies into its slot region
/// even from young regions past the merge threshold: merged into the
/// container's region, each replaced value would stay until that region
/// dies (a captured variable set to fresh 100 KB strings kept all of them
/// before the ninth session).
#[test]
fn big_young_values_are_copied_into_the_slot_region_not_merged() {
    leak_checked(|| {
        let old_threshold = set_merge_threshold(100);
        let old = region_create();
        let arr = alloc_array(old, 1, Value::NOTHING).unwrap();
        let cell = alloc_box(old, Value::NOTHING).unwrap();
        warm_up_array(arr);
        warm_up(cell, |v| assert!(box_set(cell, v).unwrap()));
        let (before, old_bytes) = (heap_stats(), old.bytes_allocated());
        for r in 0..ROUNDS {
            // 240-byte lists: past the 100-byte threshold.
            store_fresh(arr, 0, r);
            store_fresh_box(cell, r);
        }
        let after = heap_stats();
        assert_eq!(after.merges, before.merges, "nothing merged into `old`");
        assert_eq!(old.bytes_allocated(), old_bytes);
        assert!(after.slot_compactions >= before.slot_compactions + 2);
        expect_list(array_get(arr, 0).unwrap(), ROUNDS - 1, 10);
        expect_list(box_get(cell).unwrap(), ROUNDS - 1, 10);
        region_exit(old);
        set_merge_threshold(old_threshold);
    });
}
