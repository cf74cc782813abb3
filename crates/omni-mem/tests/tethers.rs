//! Backlog R5: tethers pin regions; stale borrows are detected (debug).

use omni_mem::testing::assert_no_live_regions;
use omni_mem::*;

#[test]
fn tether_keeps_region_alive_past_scope_exit() {
    let r = region_create();
    let v = alloc_str(r, "pinned").unwrap();
    let t = tether_start(r);
    let b = t.borrow(v);
    region_exit(r);
    assert!(r.is_alive(), "tethered region survives its scope");
    assert_eq!(
        with_str(b.get().unwrap(), str::to_owned).as_deref(),
        Some("pinned")
    );
    tether_end(t).unwrap();
    assert!(!r.is_alive(), "freed at tether end");
    assert_no_live_regions();
}

#[test]
#[cfg(debug_assertions)]
fn borrow_after_region_death_is_detected() {
    let r = region_create();
    let v = alloc_str(r, "x").unwrap();
    let t = tether_start(r);
    let b = t.borrow(v);
    tether_end(t).unwrap();
    region_exit(r);
    let err = b.get().unwrap_err();
    assert!(matches!(err, MemError::StaleBorrow { .. }));
    assert!(err.to_string().contains("freed"), "{err}");
    assert_no_live_regions();
}

#[test]
#[cfg(debug_assertions)]
fn borrow_across_tether_end_is_detected() {
    let r = region_create();
    let v = alloc_str(r, "x").unwrap();
    let t = tether_start(r);
    let b = t.borrow(v);
    assert!(b.get().is_ok());
    tether_end(t).unwrap();
    // Region still alive (scope open), but the borrow window is over.
    let err = b.get().unwrap_err();
    assert!(
        err.to_string()
            .contains("tether it was borrowed under has ended"),
        "{err}"
    );
    region_exit(r);
    assert_no_live_regions();
}

#[test]
#[cfg(debug_assertions)]
fn tethers_must_nest() {
    let r = region_create();
    let outer = tether_start(r);
    let inner = tether_start(r);
    assert_eq!(tether_end(outer), Err(MemError::TetherOrder));
    tether_end(inner).unwrap();
    region_exit(r);
    assert_no_live_regions();
}

#[test]
fn nested_tethers_free_at_the_last_end() {
    let r = region_create();
    let a = tether_start(r);
    let b = tether_start(r);
    region_exit(r);
    tether_end(b).unwrap();
    assert!(r.is_alive());
    tether_end(a).unwrap();
    assert!(!r.is_alive());
    assert_no_live_regions();
}

#[test]
fn liveness_is_exactly_scope_or_rc_or_tether() {
    // Every order of ending the three pins frees at the last one.
    let orders: [[u8; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let r = region_create();
        region_retain(r);
        let mut t = Some(tether_start(r));
        for (i, step) in order.iter().enumerate() {
            assert!(r.is_alive());
            match step {
                0 => region_exit(r),
                1 => {
                    region_release(r);
                }
                _ => tether_end(t.take().unwrap()).unwrap(),
            }
            assert_eq!(r.is_alive(), i < 2, "order {order:?} step {i}");
        }
    }
    assert_no_live_regions();
}
