//! Cross-thread handoff (docs/REGION_THREADING_MODEL.md): message regions,
//! parcels by transfer (Option A) and by copy (Option B), adoption, and the
//! producer/consumer stress test that `.ci/run` also runs under ASan and TSan.

use std::sync::mpsc;
use std::sync::Mutex;

use omni_mem::testing::assert_no_live_regions;
use omni_mem::*;

/// `parcels_in_flight` is process-wide: tests that check it run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn fx(n: i64) -> Value {
    Value::fixnum(n).unwrap()
}

fn list_sum(mut l: Value) -> i64 {
    let mut s = 0;
    while let Some(x) = car(l) {
        s += x.as_fixnum().unwrap();
        l = cdr(l).unwrap();
    }
    s
}

fn build_list(r: Region, n: i64) -> Value {
    let mut l = Value::EMPTY;
    for i in 0..n {
        l = alloc_pair(r, fx(i), l).unwrap();
    }
    l
}

fn tree(r: Region, depth: u32) -> Value {
    if depth == 0 {
        return fx(1);
    }
    let l = tree(r, depth - 1);
    let rt = tree(r, depth - 1);
    alloc_pair(r, l, rt).unwrap()
}

fn tree_leaves(v: Value) -> i64 {
    match (car(v), cdr(v)) {
        (Some(a), Some(d)) => tree_leaves(a) + tree_leaves(d),
        _ => v.as_fixnum().unwrap(),
    }
}

#[test]
fn transfer_moves_the_message_region_without_copying() {
    let _g = serial();
    let n = if cfg!(miri) { 50 } else { 10_000 };
    let (tx, rx) = mpsc::channel::<Parcel>();
    let consumer = std::thread::spawn(move || {
        let p = rx.recv().unwrap();
        let home = region_create();
        let before = heap_stats();
        let v = p.adopt(home);
        assert_eq!(list_sum(v), n * (n - 1) / 2);
        assert!(region_of(v).unwrap().same_as(home), "adopted into home");
        let after = heap_stats();
        assert_eq!(after.transmigrated_objects, before.transmigrated_objects);
        assert_eq!(after.regions_adopted, before.regions_adopted + 1);
        region_exit(home);
        assert_no_live_regions();
    });
    let msg = region_create_message();
    let l = build_list(msg, n);
    let copied_before = heap_stats().transmigrated_objects;
    let (p, how) = Parcel::send_from(msg, l).unwrap();
    assert_eq!(how, Handoff::Transfer);
    assert_eq!(heap_stats().transmigrated_objects, copied_before, "no copy");
    assert_eq!(p.bytes(), n as usize * 24);
    assert_eq!(heap_stats().regions_sent, 1);
    // The sender has nothing left: the region left with the parcel.
    assert_no_live_regions();
    tx.send(p).unwrap();
    consumer.join().unwrap();
    assert_eq!(parcels_in_flight(), 0);
}

#[test]
fn copy_takes_the_whole_graph_and_keeps_sharing_and_cycles() {
    let _g = serial();
    let global = region_create_process();
    let local = region_create();
    let shared = alloc_str(global, "shared").unwrap();
    let inner = alloc_list(local, &[shared, shared]).unwrap();
    let cyc = alloc_pair(local, fx(1), Value::EMPTY).unwrap();
    set_cdr(cyc, cyc).unwrap();
    let root = alloc_list(local, &[inner, cyc, intern("sym")]).unwrap();
    let p = Parcel::copy(root).unwrap();
    // The sender's data is untouched and can die right away.
    assert_eq!(
        with_str(car(inner).unwrap(), |s| s.to_string()).unwrap(),
        "shared"
    );
    region_exit(local);
    region_exit(global);
    assert_no_live_regions();
    std::thread::spawn(move || {
        let home = region_create();
        let v = p.adopt(home);
        let inner = car(v).unwrap();
        let (a, b) = (car(inner).unwrap(), car(cdr(inner).unwrap()).unwrap());
        assert!(a.is(b), "sharing preserved: one copy of the string");
        assert_eq!(with_str(a, |s| s.to_string()).unwrap(), "shared");
        assert!(region_of(a).unwrap().same_as(home));
        let c = car(cdr(v).unwrap()).unwrap();
        assert!(cdr(c).unwrap().is(c), "cycle preserved");
        assert_eq!(
            symbol_name(car(cdr(cdr(v).unwrap()).unwrap()).unwrap()),
            Some("sym")
        );
        region_exit(home);
        assert_no_live_regions();
    })
    .join()
    .unwrap();
    assert_eq!(parcels_in_flight(), 0);
}

#[test]
fn transfer_is_refused_unless_the_region_is_a_lone_message() {
    let _g = serial();
    let plain = region_create();
    let v = alloc_list(plain, &[fx(1)]).unwrap();
    assert_eq!(
        Parcel::transfer(plain, v).err(),
        Some(TransferRefusal::NotClosed)
    );
    let msg = region_create_message();
    assert_eq!(
        Parcel::transfer(msg, v).err(),
        Some(TransferRefusal::ValueElsewhere)
    );
    let m = alloc_list(msg, &[fx(2)]).unwrap();
    region_retain(msg);
    assert_eq!(
        Parcel::transfer(msg, m).err(),
        Some(TransferRefusal::Counted)
    );
    region_release(msg);
    let t = tether_start(msg);
    assert_eq!(
        Parcel::transfer(msg, m).err(),
        Some(TransferRefusal::Tethered)
    );
    tether_end(t).unwrap();
    // Option B fallback: the value is copied and the region exited.
    let (p, how) = Parcel::send_from(msg, v).unwrap();
    assert_eq!(how, Handoff::Copy);
    let home = region_create();
    let got = p.adopt(home);
    assert_eq!(list_sum(got), 1);
    region_exit(home);
    region_exit(plain);
    assert_no_live_regions();
    assert_eq!(parcels_in_flight(), 0);
}

#[test]
fn the_barrier_keeps_message_regions_closed() {
    let _g = serial();
    let global = region_create_process();
    let local = region_create();
    let outside = alloc_list(local, &[fx(7)]).unwrap();
    let konst = alloc_str(global, "k").unwrap();
    let msg = region_create_message();
    // Out-edges are copied in, even to the process region.
    let m = alloc_list(msg, &[outside, konst]).unwrap();
    assert!(region_of(car(m).unwrap()).unwrap().same_as(msg));
    assert!(region_of(car(cdr(m).unwrap()).unwrap())
        .unwrap()
        .same_as(msg));
    // In-edges are copied out: `local` never points into the message.
    let holder = alloc_box(local, Value::NOTHING).unwrap();
    box_set(holder, m).unwrap();
    assert!(region_of(box_get(holder).unwrap()).unwrap().same_as(local));
    // Nothing merges into or out of a message region.
    assert_eq!(merge(msg, local), Err(MergeRefusal::Closed));
    let (p, how) = Parcel::send_from(msg, m).unwrap();
    assert_eq!(how, Handoff::Transfer);
    region_exit(local);
    region_exit(global);
    drop(p); // unreceived: freed here
    assert_no_live_regions();
    assert_eq!(parcels_in_flight(), 0);
}

#[test]
fn an_unreceived_parcel_is_freed_on_whatever_thread_drops_it() {
    let _g = serial();
    let r = region_create();
    let v = tree(r, 6);
    let p = Parcel::copy(v).unwrap();
    region_exit(r);
    std::thread::spawn(move || drop(p)).join().unwrap();
    assert_eq!(parcels_in_flight(), 0);
    assert_no_live_regions();
    // Immediates travel without a region.
    let p = Parcel::copy(fx(5)).unwrap();
    let home = region_create();
    assert_eq!(p.adopt(home), fx(5));
    region_exit(home);
    assert_no_live_regions();
}

/// N producers send lists, trees and closures to M consumers; consumers
/// keep some in a long-lived dict (the barrier repairs those stores).
/// Zero live bytes everywhere at the end. Also run under ASan and TSan.
#[test]
fn producers_and_consumers_stress() {
    let _g = serial();
    let producers = if cfg!(miri) { 2 } else { 3 };
    let consumers = 2;
    let per_producer: i64 = if cfg!(miri) { 30 } else { 10_000 };
    let (tx, rx) = mpsc::sync_channel::<(i64, Parcel)>(64);
    let rx = std::sync::Arc::new(Mutex::new(rx));
    let mut handles = Vec::new();
    for p in 0..producers {
        let tx = tx.clone();
        handles.push(std::thread::spawn(move || {
            let global = region_create_process();
            let keep = alloc_str(global, "producer data").unwrap();
            for i in 0..per_producer {
                let kind = i % 3;
                let parcel = if kind == 0 {
                    // Option A: built in a message region.
                    let msg = region_create_message();
                    let l = alloc_list(msg, &[fx(p), fx(i), keep]).unwrap();
                    Parcel::send_from(msg, l).unwrap().0
                } else if kind == 1 {
                    // Option B: a tree in a scratch region.
                    let scratch = region_create();
                    let t = tree(scratch, 4);
                    let pc = Parcel::copy(t).unwrap();
                    region_exit(scratch);
                    pc
                } else {
                    // A closure capturing a list.
                    let scratch = region_create();
                    let l = alloc_list(scratch, &[fx(i), keep]).unwrap();
                    let c = alloc_closure(scratch, 42, &[l]).unwrap();
                    let pc = Parcel::copy(c).unwrap();
                    region_exit(scratch);
                    pc
                };
                tx.send((kind, parcel)).unwrap();
            }
            region_exit(global);
            assert_no_live_regions();
        }));
    }
    drop(tx);
    let mut consumer_handles = Vec::new();
    for _ in 0..consumers {
        let rx = rx.clone();
        consumer_handles.push(std::thread::spawn(move || {
            let long_lived = region_create();
            let kept = alloc_dict(long_lived).unwrap();
            let mut got = 0u64;
            loop {
                let msg = rx.lock().unwrap().recv();
                let Ok((kind, p)) = msg else { break };
                let scratch = region_create();
                let v = p.adopt(scratch);
                match kind {
                    0 => {
                        assert_eq!(
                            with_str(car(cdr(cdr(v).unwrap()).unwrap()).unwrap(), |s| s.len()),
                            Some(13)
                        );
                    }
                    1 => assert_eq!(tree_leaves(v), 16),
                    _ => {
                        assert_eq!(closure_code(v), Some(42));
                        let l = closure_capture(v, 0).unwrap();
                        assert!(car(l).unwrap().is_fixnum());
                    }
                }
                if got.is_multiple_of(7) {
                    // Older structure, younger value: the barrier repairs.
                    dict_set(kept, fx((got % 16) as i64), v).unwrap();
                }
                region_exit(scratch);
                got += 1;
            }
            assert!(dict_count(kept).unwrap() <= 16);
            region_exit(long_lived);
            assert_no_live_regions();
            got
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let total: u64 = consumer_handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    assert_eq!(total, (producers * per_producer) as u64);
    assert_eq!(parcels_in_flight(), 0);
}
