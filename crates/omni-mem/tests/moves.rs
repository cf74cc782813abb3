//! Moves: a repair into an older region leaves each object it copies
//! *moved* to its copy, so the copy is the object from then on
//! (docs/CTRR_TRANSMIGRATION.md, "Moves"). These tests pin what that
//! means for reads, writes, identity, further repairs and failures.

use omni_mem::testing::{assert_no_live_regions, int_list, list_ints, xorshift};
use omni_mem::*;

/// Overwrites that compact a slot region several times (its threshold is
/// smaller under Miri).
const ROUNDS: i64 = if cfg!(miri) { 120 } else { 2_000 };

fn int(n: i64) -> Value {
    Value::fixnum(n).unwrap()
}

#[test]
fn a_repaired_value_is_moved_and_reads_and_writes_as_its_copy() {
    let old = region_create();
    let young = region_create();
    let b = alloc_box(young, int(1)).unwrap();
    let l = alloc_pair(young, b, Value::EMPTY).unwrap();
    let (copy, how) = admit_into(old, l).unwrap();
    assert_eq!(how, Repair::Transmigrate);
    assert_ne!(copy, l, "a copy was made");
    assert_eq!(region_of(copy), Some(old));
    // The original stands for its copy: same object, same contents.
    assert_eq!(resolve(l), copy);
    assert!(l.is(copy) && copy.is(l));
    assert_eq!(kind(l), Kind::Pair);
    assert!(is_pair(l));
    let b_copy = car(copy).unwrap();
    assert_eq!(car(l), Some(b_copy), "reads through the original");
    assert!(b.is(b_copy));
    // A write through the original is seen through the copy, and back.
    box_set(b, int(42)).unwrap();
    assert_eq!(box_get(b_copy), Some(int(42)));
    box_set(b_copy, int(7)).unwrap();
    assert_eq!(box_get(b), Some(int(7)));
    set_cdr(l, int(9)).unwrap();
    assert_eq!(cdr(copy), Some(int(9)));
    // Structural equality and hashing agree with identity.
    assert!(equal(l, copy) && eqv(l, copy));
    assert_eq!(hash_value(l), hash_value(copy));
    // Kinds too (a float out of the immediate range is a heap object).
    let f = alloc_float(young, 1e300).unwrap();
    let (f_copy, _) = admit_into(old, f).unwrap();
    assert_ne!(f, f_copy);
    assert!(is_number(f) && kind(f) == Kind::Float && float_value(f) == Some(1e300));
    assert!(!is_number(l));
    region_exit(young);
    assert_eq!(
        box_get(b_copy),
        Some(int(7)),
        "the copy outlives the original"
    );
    region_exit(old);
    assert_no_live_regions();
}

#[test]
fn a_second_escape_takes_the_copy_instead_of_copying_again() {
    let old = region_create();
    let young = region_create();
    let b = alloc_box(young, int(1)).unwrap();
    let (first, _) = admit_into(old, b).unwrap();
    let copied = old.stats().transmigrated_objects_in;
    let (second, how) = admit_into(old, b).unwrap();
    assert_eq!(second, first, "one copy, whatever the number of escapes");
    assert_eq!(how, Repair::None);
    assert_eq!(old.stats().transmigrated_objects_in, copied);
    // Stored into an older structure, it is the copy that is stored.
    let holder = alloc_pair(old, int(0), Value::EMPTY).unwrap();
    set_car(holder, b).unwrap();
    assert_eq!(car(holder), Some(first));
    // A young structure sharing it is copied with the same copy inside.
    let l = alloc_pair(young, b, alloc_pair(young, b, Value::EMPTY).unwrap()).unwrap();
    let (lc, _) = admit_into(old, l).unwrap();
    assert_eq!(car(lc), Some(first));
    assert_eq!(car(cdr(lc).unwrap()), Some(first));
    region_exit(young);
    region_exit(old);
    assert_no_live_regions();
}

#[test]
fn a_copy_that_moves_on_is_followed_to_the_end() {
    let oldest = region_create();
    let mid = region_create();
    let young = region_create();
    let l = int_list(young, 0, 3);
    let (in_mid, _) = admit_into(mid, l).unwrap();
    let (in_oldest, how) = admit_into(oldest, l).unwrap();
    assert_eq!(
        how,
        Repair::Transmigrate,
        "the copy in mid is younger: copied on"
    );
    assert_eq!(region_of(in_oldest), Some(oldest));
    assert_eq!(resolve(l), in_oldest);
    assert_eq!(resolve(in_mid), in_oldest);
    assert!(l.is(in_mid) && in_mid.is(in_oldest));
    assert_eq!(list_ints(l), vec![0, 1, 2]);
    set_car(in_mid, int(5)).unwrap();
    assert_eq!(car(in_oldest), Some(int(5)));
    region_exit(young);
    region_exit(mid);
    assert_eq!(list_ints(in_oldest), vec![5, 1, 2]);
    region_exit(oldest);
    assert_no_live_regions();
}

#[test]
fn a_failed_repair_moves_nothing() {
    let old = region_create();
    old.set_quota(Some(256));
    let young = region_create();
    let l = int_list(young, 0, 100);
    let err = admit_into(old, l).unwrap_err();
    assert!(matches!(err, MemError::QuotaExceeded { .. }));
    assert_eq!(resolve(l), l, "the unfinished copies are not the objects");
    assert_eq!(list_ints(l), (0..100).collect::<Vec<_>>());
    let mut v = l;
    while let Some(d) = cdr(v) {
        assert_eq!(resolve(v), v);
        v = d;
    }
    region_exit(young);
    region_exit(old);
    assert_no_live_regions();
}

#[test]
fn copies_between_two_given_regions_leave_no_moves() {
    // `transmigrate` may copy into a region that dies before the source
    // (a benchmark copies into a fresh region each round), so the source
    // stays as it was.
    let src = region_create();
    let l = int_list(src, 0, 10);
    let b = alloc_box(src, l).unwrap();
    for _ in 0..2 {
        let dst = region_create();
        let c = transmigrate(b, src, dst).unwrap();
        assert_eq!(resolve(b), b);
        assert!(!c.is(b), "a copy, not the object");
        region_exit(dst);
    }
    assert_eq!(list_ints(box_get(b).unwrap()), (0..10).collect::<Vec<_>>());
    region_exit(src);
    assert_no_live_regions();
}

#[test]
fn a_message_is_never_left_moved_and_a_copy_sent_points_nowhere_else() {
    let old = region_create();
    // An object of a message region stored into an older structure is
    // copied, but the message keeps its own object: it may travel to
    // another thread whole.
    let msg = region_create_message();
    let m = int_list(msg, 0, 3);
    let (c, how) = admit_into(old, m).unwrap();
    assert_eq!(how, Repair::Transmigrate);
    assert_eq!(resolve(m), m);
    assert!(!c.is(m));
    let parcel = Parcel::transfer(msg, m).unwrap();
    // A moved original sent by copy: the message holds a copy of what it
    // stands for, made in the message region.
    let young = region_create();
    let b = alloc_box(young, int(1)).unwrap();
    let (b_old, _) = admit_into(old, b).unwrap();
    box_set(b, int(2)).unwrap();
    let sent = Parcel::copy(b).unwrap();
    let into = region_create();
    let got = sent.adopt(into);
    assert_eq!(region_of(got), Some(into));
    assert_eq!(box_get(got), Some(int(2)));
    assert!(!got.is(b_old), "the receiver has its own copy");
    let back = parcel.adopt(into);
    assert_eq!(list_ints(back), vec![0, 1, 2]);
    region_exit(young);
    region_exit(into);
    region_exit(old);
    assert_no_live_regions();
}

#[test]
fn reachable_bytes_follow_a_move() {
    let old = region_create();
    let young = region_create();
    let l = int_list(young, 0, 4);
    let holder = alloc_pair(young, l, Value::EMPTY).unwrap();
    admit_into(old, l).unwrap();
    // From `holder`, `l` is reached through its move: its copy is in
    // `old`, so of `young` only `holder` is reachable.
    assert_eq!(reachable_bytes(&[holder], young), 24);
    assert_eq!(reachable_bytes(&[l], young), 0);
    assert_eq!(reachable_bytes(&[l], old), 4 * 24);
    region_exit(young);
    region_exit(old);
    assert_no_live_regions();
}

/// An array that has overwritten enough values to have a slot region
/// (slots.rs), in `r`.
fn array_with_slot_region(r: Region) -> Value {
    let a = alloc_array(r, 1, int(0)).unwrap();
    for i in 0..=SLOT_REGION_AFTER as i64 + 1 {
        let y = region_create();
        array_set(a, 0, int_list(y, i, 2)).unwrap();
        region_exit(y);
    }
    assert!(store_region(a) != Some(r), "the array has a slot region");
    a
}

#[test]
fn a_move_into_a_slot_region_survives_its_compactions() {
    let old = region_create();
    let a = array_with_slot_region(old);
    let young = region_create();
    let b = alloc_box(young, int(1)).unwrap();
    array_set(a, 0, b).unwrap();
    // (`is` and `array_borrow` hand nothing out: they pin nothing.)
    assert!(b.is(array_borrow(a, 0).unwrap()), "stored as one object");
    // Overwrites compact the slot region again and again while `b`'s
    // original lives: its copy is kept and the move follows it.
    let before = heap_stats().slot_compactions;
    for i in 0..ROUNDS {
        let y = region_create();
        array_set(a, 0, int_list(y, i, 8)).unwrap();
        region_exit(y);
    }
    assert!(
        heap_stats().slot_compactions > before,
        "compacted meanwhile"
    );
    assert_eq!(box_get(b), Some(int(1)));
    box_set(b, int(5)).unwrap();
    assert_eq!(box_get(resolve(b)), Some(int(5)));
    region_exit(young);
    // Once the original's region is gone its copy is garbage like any
    // overwritten value, and compaction gives it back.
    let before = heap_stats().slot_compactions;
    for i in 0..ROUNDS {
        let y = region_create();
        array_set(a, 0, int_list(y, i, 8)).unwrap();
        region_exit(y);
    }
    assert!(heap_stats().slot_compactions > before);
    region_exit(old);
    assert_no_live_regions();
}

#[test]
fn a_value_stored_twice_into_slot_regions_stays_one_object() {
    let old = region_create();
    let a = array_with_slot_region(old);
    let d = alloc_array(old, 1, int(0)).unwrap();
    let young = region_create();
    let l = int_list(young, 0, 3);
    array_set(a, 0, l).unwrap();
    array_set(d, 0, l).unwrap();
    let (x, y) = (array_get(a, 0).unwrap(), array_get(d, 0).unwrap());
    assert!(x.is(y) && x.is(l));
    set_car(l, int(9)).unwrap();
    assert_eq!(car(x), Some(int(9)));
    assert_eq!(car(y), Some(int(9)));
    region_exit(young);
    assert_eq!(list_ints(x), vec![9, 1, 2]);
    region_exit(old);
    assert_no_live_regions();
}

#[test]
fn a_merged_region_hands_its_moves_on() {
    let old = region_create();
    let a = array_with_slot_region(old);
    let mid = region_create();
    let young = region_create();
    let b = alloc_box(young, int(1)).unwrap();
    array_set(a, 0, b).unwrap();
    merge(young, mid).unwrap();
    for i in 0..ROUNDS {
        let y = region_create();
        array_set(a, 0, int_list(y, i, 8)).unwrap();
        region_exit(y);
    }
    assert_eq!(
        box_get(b),
        Some(int(1)),
        "the original, now mid's, still reads"
    );
    region_exit(mid);
    region_exit(old);
    assert_no_live_regions();
}

#[test]
fn reading_through_a_move_into_a_slot_region_pins_it_as_a_read_does() {
    let old = region_create();
    let a = array_with_slot_region(old);
    let young = region_create();
    let l = alloc_pair(young, alloc_box(young, int(1)).unwrap(), Value::EMPTY).unwrap();
    array_set(a, 0, l).unwrap();
    // `inner` is the copy's car, in the slot region, reached through the
    // move without a read of the array: the region must not be compacted
    // away under it.
    let inner = car(l).unwrap();
    let pinned = heap_stats().slot_regions_pinned;
    for i in 0..ROUNDS {
        let y = region_create();
        array_set(a, 0, int_list(y, i, 8)).unwrap();
        region_exit(y);
    }
    region_exit(young);
    assert_eq!(box_get(inner), Some(int(1)));
    assert!(heap_stats().slot_regions_pinned >= pinned);
    region_exit(old);
    assert_no_live_regions();
}

/// Seeded random escapes against a model where each box is one object:
/// boxes made in nested young regions are stored into an old array with a
/// slot region (compacted as its slots are overwritten), an old array
/// without one, an old pair and an old box; they are changed through any
/// handle or container; and every reference to a box must see its one
/// value, and be `eq?` to the others, until its original's region exits.
#[test]
fn random_escapes_keep_one_object_per_box() {
    let steps = if cfg!(miri) { 200 } else { 20_000 };
    let mut next = xorshift(0x2545_F491_4F6C_DD1D);
    let old = region_create();
    let slotted = alloc_array(old, 4, int(0)).unwrap();
    for i in 0..=SLOT_REGION_AFTER as i64 + 1 {
        let y = region_create();
        array_set(slotted, 0, int_list(y, i, 2)).unwrap();
        region_exit(y);
    }
    let plain = alloc_array(old, 4, int(0)).unwrap();
    let cell = alloc_pair(old, int(0), Value::EMPTY).unwrap();
    let holder = alloc_box(old, int(0)).unwrap();
    // The model: each box's value; what each container place holds.
    let mut value: Vec<i64> = Vec::new();
    let mut places: Vec<Option<usize>> = vec![None; 10];
    // Young regions, oldest first; handles: (value, box, region depth).
    let mut young: Vec<Region> = Vec::new();
    let mut handles: Vec<(Value, usize, usize)> = Vec::new();
    let place_value = |k: usize| -> Value {
        match k {
            0..=3 => array_borrow(slotted, k).unwrap(),
            4..=7 => array_borrow(plain, k - 4).unwrap(),
            8 => car(cell).unwrap(),
            _ => box_borrow(holder).unwrap(),
        }
    };
    let store = |k: usize, v: Value| match k {
        0..=3 => assert!(array_set(slotted, k, v).unwrap()),
        4..=7 => assert!(array_set(plain, k - 4, v).unwrap()),
        8 => assert!(set_car(cell, v).unwrap()),
        _ => assert!(box_set(holder, v).unwrap()),
    };
    for step in 0..steps {
        match next(9) {
            0 if young.len() < 4 => young.push(region_create()),
            1 => {
                if let Some(r) = young.pop() {
                    let depth = young.len() + 1;
                    handles.retain(|h| h.2 != depth);
                    region_exit(r);
                }
            }
            2 => {
                let r = young.last().copied().unwrap_or(old);
                value.push(step);
                handles.push((
                    alloc_box(r, int(step)).unwrap(),
                    value.len() - 1,
                    young.len(),
                ));
            }
            3 | 4 if !handles.is_empty() => {
                let (h, id, _) = handles[next(handles.len() as u64) as usize];
                let k = next(10) as usize;
                store(k, h);
                places[k] = Some(id);
            }
            5 if !handles.is_empty() => {
                let (h, id, _) = handles[next(handles.len() as u64) as usize];
                box_set(h, int(step)).unwrap();
                value[id] = step;
            }
            6 => {
                let k = next(10) as usize;
                if let Some(id) = places[k] {
                    box_set(place_value(k), int(step)).unwrap();
                    value[id] = step;
                }
            }
            7 => {
                // Overwrite a slotted place with a fresh list (drives
                // compaction of the slot region).
                let k = next(4) as usize;
                let y = region_create();
                store(k, int_list(y, step, 200));
                region_exit(y);
                places[k] = None;
            }
            _ => {}
        }
        // Every reference agrees with the model. (Now and then: reading
        // through a move into the slot region pins it, and the stores in
        // between should see compactions re-point the moves.)
        if step % 256 != 255 && step + 1 != steps {
            continue;
        }
        for &(h, id, _) in &handles {
            assert_eq!(
                box_borrow(h),
                Some(int(value[id])),
                "step {step}: handle of box {id}"
            );
        }
        for (k, p) in places.iter().enumerate() {
            if let Some(id) = *p {
                let v = place_value(k);
                assert_eq!(
                    box_borrow(v),
                    Some(int(value[id])),
                    "step {step}: place {k}"
                );
                for &(h, hid, _) in &handles {
                    assert_eq!(h.is(v), hid == id, "step {step}: identity of place {k}");
                }
            }
        }
    }
    while let Some(r) = young.pop() {
        region_exit(r);
    }
    region_exit(old);
    assert_no_live_regions();
}
