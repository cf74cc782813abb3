//! Backlog R2-auto-repair-tests: younger->older stores are repaired, both
//! H0 branches are pinned, merge refusal falls back, and no region cycle is
//! ever retained.

use omni_mem::testing::{assert_no_live_regions, int_list, list_ints};
use omni_mem::*;

fn int(n: i64) -> Value {
    Value::fixnum(n).unwrap()
}

fn list(r: Region, n: i64) -> Value {
    int_list(r, 0, n)
}

/// Run with a given H0 threshold, restoring the default afterwards.
fn with_threshold<R>(t: usize, f: impl FnOnce() -> R) -> R {
    let old = set_merge_threshold(t);
    let out = f();
    set_merge_threshold(old);
    out
}

#[test]
fn young_to_old_store_is_safe_after_young_exits() {
    let old = region_create();
    let container = alloc_box(old, Value::NOTHING).unwrap();
    let young = region_create();
    let v = list(young, 5);
    assert!(box_set(container, v).unwrap());
    region_exit(young);
    let stored = box_get(container).unwrap();
    assert!(region_of(stored).unwrap().same_as(old));
    assert_eq!(list_ints(stored), vec![0, 1, 2, 3, 4]);
    region_exit(old);
    assert_no_live_regions();
}

#[test]
fn low_threshold_forces_merge() {
    with_threshold(0, || {
        let before = heap_stats();
        let old = region_create();
        let dict = alloc_dict(old).unwrap();
        let young = region_create();
        let v = list(young, 100);
        assert!(dict_set(dict, int(1), v).unwrap());
        let after = heap_stats();
        assert_eq!(after.repairs_merge, before.repairs_merge + 1);
        assert_eq!(after.repairs_transmigrate, before.repairs_transmigrate);
        assert!(young.is_merged());
        // The value was not copied: the same object is now in `old`.
        assert_eq!(dict_get(dict, int(1)), Some(v));
        assert!(region_of(v).unwrap().same_as(old));
        region_exit(young); // no-op: merged
        assert_eq!(list_ints(dict_get(dict, int(1)).unwrap()).len(), 100);
        region_exit(old);
    });
    assert_no_live_regions();
}

#[test]
fn high_threshold_forces_transmigrate() {
    with_threshold(usize::MAX, || {
        let before = heap_stats();
        let old = region_create();
        let cell = alloc_box(old, Value::NOTHING).unwrap();
        let young = region_create();
        let v = list(young, 100);
        assert!(box_set(cell, v).unwrap());
        let after = heap_stats();
        assert_eq!(after.repairs_transmigrate, before.repairs_transmigrate + 1);
        assert_eq!(after.repairs_merge, before.repairs_merge);
        let stored = box_get(cell).unwrap();
        assert_ne!(stored, v, "a copy was stored");
        assert!(region_of(stored).unwrap().same_as(old));
        region_exit(young);
        assert_eq!(
            list_ints(box_get(cell).unwrap()),
            (0..100).collect::<Vec<_>>()
        );
        region_exit(old);
    });
    assert_no_live_regions();
}

#[test]
fn merge_not_permitted_falls_back_to_transmigrate() {
    with_threshold(0, || {
        let before = heap_stats();
        let old = region_create();
        let cell = alloc_pair(old, Value::NOTHING, Value::EMPTY).unwrap();
        let middle = region_create(); // sits between: merge must be refused
        let young = region_create();
        let v = list(young, 10);
        assert!(set_car(cell, v).unwrap());
        let after = heap_stats();
        assert_eq!(after.merges_refused, before.merges_refused + 1);
        assert_eq!(after.repairs_transmigrate, before.repairs_transmigrate + 1);
        assert!(!young.is_merged());
        region_exit(young);
        region_exit(middle);
        assert_eq!(list_ints(car(cell).unwrap()).len(), 10);
        region_exit(old);
    });
    assert_no_live_regions();
}

#[test]
fn tethered_young_region_is_not_merged() {
    with_threshold(0, || {
        let old = region_create();
        let cell = alloc_box(old, Value::NOTHING).unwrap();
        let young = region_create();
        let v = list(young, 3);
        let t = tether_start(young);
        assert!(box_set(cell, v).unwrap());
        assert!(!young.is_merged());
        assert_ne!(box_get(cell), Some(v));
        tether_end(t).unwrap();
        region_exit(young);
        region_exit(old);
    });
    assert_no_live_regions();
}

#[test]
fn would_be_region_cycle_is_repaired_and_everything_is_freed() {
    // Without repair: old.box -> young.pair and young.pair -> old.box would
    // make old and young keep each other alive (a region cycle).
    with_threshold(usize::MAX, || {
        let old = region_create();
        let obox = alloc_box(old, Value::NOTHING).unwrap();
        let young = region_create();
        let ypair = alloc_pair(young, obox, Value::EMPTY).unwrap(); // young -> old: fine
        assert!(box_set(obox, ypair).unwrap()); // old -> young: repaired
        let stored = box_get(obox).unwrap();
        assert!(region_of(stored).unwrap().same_as(old));
        // The copy's car is the old box itself (external root, not copied).
        assert_eq!(car(stored), Some(obox));
        region_exit(young);
        assert!(!young.is_alive());
        region_exit(old);
    });
    assert_no_live_regions();
}

#[test]
fn cycle_through_merge_path_also_frees_everything() {
    with_threshold(0, || {
        let old = region_create();
        let obox = alloc_box(old, Value::NOTHING).unwrap();
        let young = region_create();
        let ypair = alloc_pair(young, obox, Value::EMPTY).unwrap();
        assert!(box_set(obox, ypair).unwrap());
        assert!(young.is_merged());
        assert_eq!(box_get(obox), Some(ypair));
        region_exit(young);
        region_exit(old);
    });
    assert_no_live_regions();
}

#[test]
fn constructors_repair_their_fields_too() {
    let old = region_create();
    let young = region_create();
    let v = alloc_str(young, "young").unwrap();
    let p = alloc_pair(old, v, Value::EMPTY).unwrap();
    let a = alloc_array_from(old, &[v]).unwrap();
    let c = alloc_closure(old, 7, &[v]).unwrap();
    region_exit(young);
    for stored in [
        car(p).unwrap(),
        array_get(a, 0).unwrap(),
        closure_capture(c, 0).unwrap(),
    ] {
        assert!(region_of(stored).unwrap().same_as(old));
        assert_eq!(with_str(stored, str::to_owned).as_deref(), Some("young"));
    }
    region_exit(old);
    assert_no_live_regions();
}

#[test]
fn a_closure_keeps_captures_storable_as_they_are_and_repairs_the_rest() {
    let older = region_create();
    let own = region_create();
    let young = region_create();
    let o = alloc_str(older, "older").unwrap();
    let s = alloc_str(own, "own").unwrap();
    let y = alloc_str(young, "young").unwrap();
    let imm = Value::fixnum(7).unwrap();
    // Every capture storable as it is: kept, identical.
    let c = alloc_closure(own, 9, &[imm, o, s]).unwrap();
    assert_eq!(closure_code(c), Some(9));
    assert_eq!(closure_len(c), Some(3));
    assert_eq!(closure_capture(c, 0), Some(imm));
    assert_eq!(closure_capture(c, 1), Some(o));
    assert_eq!(closure_capture(c, 2), Some(s));
    // One younger capture among them: that one is repaired, the others kept.
    let d = alloc_closure(own, 10, &[o, y, s]).unwrap();
    assert_eq!(closure_code(d), Some(10));
    assert_eq!(closure_capture(d, 0), Some(o));
    assert_eq!(closure_capture(d, 2), Some(s));
    let repaired = closure_capture(d, 1).unwrap();
    region_exit(young);
    assert!(region_of(repaired).unwrap().same_as(own));
    assert_eq!(with_str(repaired, str::to_owned).as_deref(), Some("young"));
    region_exit(own);
    region_exit(older);
    assert_no_live_regions();
}

#[test]
fn older_and_same_region_stores_take_the_fast_path() {
    let before = heap_stats();
    let old = region_create();
    let young = region_create();
    let ov = alloc_str(old, "old").unwrap();
    let ybox = alloc_box(young, Value::NOTHING).unwrap();
    assert!(box_set(ybox, ov).unwrap());
    assert_eq!(box_get(ybox), Some(ov));
    let yv = alloc_str(young, "y").unwrap();
    assert!(box_set(ybox, yv).unwrap());
    assert_eq!(box_get(ybox), Some(yv));
    let after = heap_stats();
    assert_eq!(
        after.repairs_merge + after.repairs_transmigrate,
        before.repairs_merge + before.repairs_transmigrate
    );
    region_exit(young);
    region_exit(old);
    assert_no_live_regions();
}

#[test]
fn transitive_middle_region_edges_are_copied_too() {
    // young value points into `middle`; storing it into `old` must copy the
    // middle object as well, or old would point into a younger region.
    with_threshold(usize::MAX, || {
        let old = region_create();
        let obox = alloc_box(old, Value::NOTHING).unwrap();
        let middle = region_create();
        let m = alloc_str(middle, "middle").unwrap();
        let young = region_create();
        let y = alloc_pair(young, m, Value::EMPTY).unwrap();
        assert!(box_set(obox, y).unwrap());
        region_exit(young);
        region_exit(middle);
        let stored = box_get(obox).unwrap();
        let inner = car(stored).unwrap();
        assert!(region_of(inner).unwrap().same_as(old));
        assert_eq!(with_str(inner, str::to_owned).as_deref(), Some("middle"));
        region_exit(old);
    });
    assert_no_live_regions();
}

#[test]
fn dict_operations_with_repair() {
    let old = region_create();
    let d = alloc_dict(old).unwrap();
    let young = region_create();
    for i in 0..200 {
        let k = alloc_str(young, &format!("k{i}")).unwrap();
        let v = list(young, i % 5);
        assert!(dict_set(d, k, v).unwrap());
    }
    for i in (0..200).step_by(2) {
        let k = alloc_str(young, &format!("k{i}")).unwrap();
        assert!(dict_remove(d, k));
    }
    region_exit(young);
    assert_eq!(dict_count(d), Some(100));
    let probe = region_create();
    for i in 0..200 {
        let k = alloc_str(probe, &format!("k{i}")).unwrap();
        let got = dict_get(d, k);
        if i % 2 == 0 {
            assert_eq!(got, None);
        } else {
            assert_eq!(list_ints(got.unwrap()).len() as i64, i % 5);
        }
    }
    region_exit(probe);
    let keys: Vec<String> = dict_entries(d)
        .unwrap()
        .into_iter()
        .map(|(k, _)| with_str(k, str::to_owned).unwrap())
        .collect();
    assert_eq!(keys.first().map(String::as_str), Some("k1"));
    assert_eq!(keys.len(), 100);
    region_exit(old);
    assert_no_live_regions();
}

/// Fuzzer regression (fuzz/corpus/mem_api/regression-dict-own-key): a dict
/// used as its own key made `equal?` recurse through the dict's index
/// until the stack overflowed.
#[test]
fn dict_that_is_its_own_key_compares_without_recursion() {
    let r = region_create();
    let d = alloc_dict(r).unwrap();
    dict_set(d, d, Value::TRUE).unwrap();
    let e = alloc_dict(r).unwrap();
    dict_set(e, d, Value::TRUE).unwrap();
    assert!(equal(d, d));
    assert!(equal(d, e), "same entries in the same order");
    // (Looking `d` up in itself misses: its hash changed when it gained an
    // entry, as with any mutated key.)
    dict_set(e, Value::fixnum(1).unwrap(), Value::FALSE).unwrap();
    assert!(!equal(d, e));
    region_exit(r);
    assert_no_live_regions();
}

#[test]
fn the_repair_ladder_records_why_cheaper_rungs_failed() {
    let before = heap_stats();
    with_threshold(0, || {
        let old = region_create();
        let cell = alloc_box(old, Value::NOTHING).unwrap();
        let _between = region_create();
        let young = region_create();
        box_set(cell, list(young, 3)).unwrap();
        region_exit(young);
        region_exit(_between);
        region_exit(old);
    });
    with_threshold(usize::MAX, || {
        let old = region_create();
        let cell = alloc_box(old, Value::NOTHING).unwrap();
        let young = region_create();
        box_set(cell, list(young, 3)).unwrap();
        region_exit(young);
        region_exit(old);
    });
    let after = heap_stats();
    let between = MergeRefusal::RegionBetween as usize;
    assert_eq!(
        after.merge_refusals[between],
        before.merge_refusals[between] + 1
    );
    assert_eq!(
        after.repairs_below_merge_threshold,
        before.repairs_below_merge_threshold + 1
    );
    assert_eq!(after.repairs_transmigrate, before.repairs_transmigrate + 2);
    assert_eq!(
        MergeRefusal::RegionBetween.reason(),
        "a live region in between"
    );
    assert_no_live_regions();
}

/// `storable_below_rank` makes `admit_into`'s decision for a region that
/// does not exist yet, on the rank reserved for it.
#[test]
fn storable_below_rank_agrees_with_admit_into() {
    let old = region_create();
    let rank = reserve_rank();
    let young = region_create();
    let (in_old, in_young) = (list(old, 3), list(young, 3));
    assert!(
        storable_below_rank(int(7), rank),
        "immediates never need repair"
    );
    assert!(storable_below_rank(in_old, rank));
    assert!(!storable_below_rank(in_young, rank));
    // The region made with that rank later decides the same way.
    let later = region_create_at(rank);
    assert_eq!(admit_into(later, in_old).unwrap().1, Repair::None);
    let (copy, how) = admit_into(later, in_young).unwrap();
    assert_ne!(how, Repair::None);
    assert_eq!(list_ints(copy), vec![0, 1, 2]);
    region_exit(young);
    region_exit(later);
    region_exit(old);
    assert_no_live_regions();
}

/// `storable_in` (the VM's in-line return test) says yes exactly when
/// `admit_into` would keep the value as it is.
#[test]
fn storable_in_agrees_with_admit_into() {
    let old = region_create();
    let mid = region_create();
    let young = region_create();
    let values = [int(7), list(old, 3), list(mid, 3), list(young, 3)];
    for dst in [old, mid, young] {
        for &v in &values {
            let as_is = storable_in(dst, v);
            let (w, how) = admit_into(dst, v).unwrap();
            if as_is {
                assert_eq!(how, Repair::None, "storable_in disagrees");
                assert_eq!(w, v, "a value storable as it is stays itself");
            } else {
                // Repaired, or moved by an earlier repair of this loop:
                // then its copy is taken as it is.
                assert!(
                    how != Repair::None || resolve(v) != v,
                    "storable_in disagrees"
                );
                assert!(w.is(v), "the copy stands for the value");
            }
        }
    }
    region_exit(young);
    region_exit(mid);
    region_exit(old);
    assert_no_live_regions();
}

/// A pair built with fields from its own and from older regions is built
/// in place; a field from a younger region is repaired first (the slow
/// path), so the pair never points into a region that dies before it.
#[test]
fn alloc_pair_fast_and_slow_paths_keep_the_region_order() {
    let old = region_create();
    let young = region_create();
    let in_old = list(old, 2);
    let in_young = list(young, 2);
    let p = alloc_pair(old, int(1), in_old).unwrap();
    assert!(cdr(p).unwrap().is(in_old), "an own-region field is kept");
    let q = alloc_pair(old, in_young, int(2)).unwrap();
    let copied = car(q).unwrap();
    assert_ne!(copied, in_young, "a younger field is repaired");
    assert_eq!(region_of(copied), Some(old));
    assert!(copied.is(in_young), "and the original moved: one object");
    region_exit(young);
    assert_eq!(list_ints(copied), vec![0, 1]);
    region_exit(old);
    assert_no_live_regions();
}

/// After a merge, values built in the merged region are the older one's
/// without being in its current segment: the in-line test finds them by
/// the segment lookup, and values bumped since are found in the segment.
#[test]
fn storable_in_sees_merged_and_freshly_bumped_values() {
    let old = region_create();
    let young = region_create();
    let from_young = list(young, 3);
    merge(young, old).expect("adjacent, unshared: merge is permitted");
    let fresh = list(old, 2);
    for v in [from_young, fresh] {
        assert!(storable_in(old, v));
        assert_eq!(admit_into(old, v).unwrap().1, Repair::None);
    }
    // Consing onto a merged list and onto a fresh one needs no repair.
    let p = alloc_pair(old, from_young, fresh).unwrap();
    assert!(car(p).unwrap().is(from_young) && cdr(p).unwrap().is(fresh));
    region_exit(young);
    region_exit(old);
    assert_no_live_regions();
}

/// The store barrier compares the regions two objects' segments were
/// allocated for before it resolves merges (`barrier::store`). These are
/// the stores where the two answers differ: one region in two segments,
/// a merged region's objects against its elder's, and a younger value
/// stored into a merged region's object, which must still be repaired.
#[test]
fn stores_are_decided_by_regions_not_by_segments() {
    with_threshold(usize::MAX, || {
        let before = heap_stats();
        let old = region_create();
        let in_old = alloc_pair(old, Value::NOTHING, Value::EMPTY).unwrap();
        let young = region_create();
        let first = alloc_pair(young, Value::NOTHING, Value::EMPTY).unwrap();
        let text = alloc_str(young, "young").unwrap();
        // More than a segment's bytes later: `far` lies in another
        // segment of the same region.
        let mut far = first;
        for i in 0..(SEGMENT_SIZE / 24 + 1) as i64 {
            far = alloc_pair(young, int(i), Value::EMPTY).unwrap();
        }
        assert!(set_car(far, first).unwrap());
        assert!(car(far).unwrap().is(first), "one region: stored as it is");

        merge(young, old).expect("adjacent, unshared: merge is permitted");
        // `first` and `text` lie in `young`'s own segment, whose region
        // is the merge stub; `in_old` in `old`'s. One region now.
        assert!(set_car(first, in_old).unwrap());
        assert!(car(first).unwrap().is(in_old));
        assert!(set_car(in_old, text).unwrap());
        assert!(car(in_old).unwrap().is(text));
        assert_eq!(
            heap_stats().repairs_transmigrate,
            before.repairs_transmigrate
        );

        // A merged region's object is older than a region created since:
        // stored into it as it is.
        let newer = region_create();
        let in_newer = alloc_pair(newer, Value::NOTHING, Value::EMPTY).unwrap();
        assert!(set_car(in_newer, text).unwrap());
        assert!(car(in_newer).unwrap().is(text));
        assert_eq!(
            heap_stats().repairs_transmigrate,
            before.repairs_transmigrate
        );
        // A region younger than `old` is not admitted by `young`'s merged
        // objects, though it is younger than `young` was too.
        let v = list(newer, 3);
        assert!(set_cdr(first, v).unwrap());
        let stored = cdr(first).unwrap();
        assert_ne!(stored, v, "repaired: a copy was stored");
        assert!(region_of(stored).unwrap().same_as(old));
        assert_eq!(
            heap_stats().repairs_transmigrate,
            before.repairs_transmigrate + 1
        );
        // Immediates need no region at all.
        assert!(set_car(far, int(7)).unwrap());
        assert_eq!(car(far), Some(int(7)));
        region_exit(newer);
        assert_eq!(list_ints(cdr(first).unwrap()), vec![0, 1, 2]);
        region_exit(young);
        region_exit(old);
    });
    assert_no_live_regions();
}

/// The barrier's first test reads the ranks of the regions segments were
/// allocated for (`barrier::store`). A merged region's stub must not
/// answer it with its old ranks: its region may since have been retained
/// (and may die before the holder), or a region may have been created
/// since with a rank between the two (`reserve_rank`). Both stores must be
/// repaired; with the stub's old ranks they would be stored as they are
/// (the first into memory that is freed below).
#[test]
fn a_merged_regions_old_ranks_admit_nothing() {
    with_threshold(usize::MAX, || {
        // Its region retained since.
        let old = region_create();
        let young = region_create();
        let text = alloc_str(young, "young").unwrap();
        merge(young, old).expect("adjacent, unshared: merge is permitted");
        let holder = region_create();
        let cell = alloc_pair(holder, Value::NOTHING, Value::EMPTY).unwrap();
        region_retain(old);
        region_exit(young); // merged: no-op
        region_exit(old); // retained: the youngest of all now
        let before = heap_stats().repairs_transmigrate;
        assert!(set_car(cell, text).unwrap());
        assert_eq!(heap_stats().repairs_transmigrate, before + 1);
        let stored = car(cell).unwrap();
        assert!(region_of(stored).unwrap().same_as(holder));
        assert!(region_release(old), "the last reference frees it");
        assert_eq!(with_str(stored, str::to_owned).as_deref(), Some("young"));
        region_exit(holder);

        // A region created since, between the two.
        let old = region_create();
        let between = reserve_rank();
        let young = region_create();
        let first = alloc_pair(young, Value::NOTHING, Value::EMPTY).unwrap();
        merge(young, old).expect("no region lies between yet");
        let mid = region_create_at(between);
        let v = list(mid, 3);
        let before = heap_stats().repairs_transmigrate;
        assert!(set_car(first, v).unwrap());
        assert_eq!(heap_stats().repairs_transmigrate, before + 1);
        assert!(region_of(car(first).unwrap()).unwrap().same_as(old));
        region_exit(mid);
        assert_eq!(list_ints(car(first).unwrap()), vec![0, 1, 2]);
        region_exit(young);
        region_exit(old);
    });
    assert_no_live_regions();
}
