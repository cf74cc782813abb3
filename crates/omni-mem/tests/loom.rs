//! Loom model tests (exhaustive interleavings under the C11 memory model).
//! Run with:
//!
//!   RUSTFLAGS="--cfg loom" cargo test -p omni-mem --test loom --release \
//!       --target-dir target/loom
//!
//! The SMR scheme and the intern table are tested as they are: under
//! `--cfg loom` omni-mem's atomic policy layer sits on loom's atomics.
//! Region ownership transfer, Region-RC's decrement-to-zero and the channel
//! protocol are tested as models: the same protocol over a payload in a
//! `loom::cell::UnsafeCell`, so loom reports any access not ordered by the
//! protocol as a data race (freeing is modelled as a final write).
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

use omni_mem::atomic::{Counter32, Published};
use omni_mem::intern::SymbolTable;
use omni_mem::smr::Smr;

const DEAD: u64 = 0xdead;

struct Node {
    val: UnsafeCell<u64>,
}

/// A reader inside a read section never sees a node the writer reclaimed,
/// and its read is ordered before the reclamation (no race).
#[test]
fn smr_reclaims_only_after_readers_leave() {
    loom::model(|| {
        let smr = Arc::new(Smr::new());
        let first = Box::into_raw(Box::new(Node {
            val: UnsafeCell::new(1),
        }));
        let slot = Arc::new(Published::new(first));
        let reader = {
            let (smr, slot) = (smr.clone(), slot.clone());
            thread::spawn(move || {
                let _g = smr.read();
                let p = slot.load_acquire();
                // SAFETY (test): p is protected by the read section.
                let v = unsafe { (*p).val.with(|v| *v) };
                assert_ne!(v, DEAD, "read a reclaimed node");
            })
        };
        let second = Box::into_raw(Box::new(Node {
            val: UnsafeCell::new(2),
        }));
        slot.store_release(second);
        smr.synchronize();
        // "Free" the old node: a write that races with any unordered read.
        // SAFETY (test): `first` came from Box::into_raw and is freed only
        // below; the grace period ended every read section that saw it.
        unsafe { (*first).val.with_mut(|v| *v = DEAD) };
        reader.join().unwrap();
        // SAFETY (test): both nodes came from Box::into_raw, each is freed
        // once, and the reader thread has been joined.
        unsafe {
            drop(Box::from_raw(first));
            drop(Box::from_raw(second));
        }
    });
}

/// A writer interns a name that makes the index grow (2 slots: the second
/// name forces a resize and a grace period) while the main thread interns
/// the same name and a reader looks up the first one. Everyone agrees on
/// ids and names, and the reader never touches a reclaimed index.
/// (Preemptions are bounded: the writer lock and the grace-period spin
/// make the full state space too large for a test run.)
#[test]
fn intern_table_concurrent_interning_and_growth() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let t = Arc::new(SymbolTable::with_index_slots(2));
        let ia = t.intern("a");
        let w = {
            let t = t.clone();
            thread::spawn(move || t.intern("b"))
        };
        let r = {
            let t = t.clone();
            thread::spawn(move || {
                assert_eq!(t.lookup("a"), Some(ia));
                assert_eq!(t.name(ia), Some("a"));
            })
        };
        let ib = t.intern("b");
        // Right away, before any join: the id may have come from the
        // writer's slot while `len` still lags.
        assert_eq!(t.name(ib), Some("b"));
        assert_eq!(w.join().unwrap(), ib, "one id per name");
        r.join().unwrap();
        assert_ne!(ia, ib);
        assert_eq!(t.name(ib), Some("b"));
        assert_eq!(t.len(), 2);
    });
}

/// Region-RC across threads: each holder uses the region, then releases
/// with `fetch_sub_acqrel`; the one that takes the count to zero frees.
/// Every use is ordered before the free.
#[test]
fn external_rc_decrement_to_zero_orders_uses_before_free() {
    loom::model(|| {
        struct Region {
            rc: Counter32,
            bytes: UnsafeCell<u64>,
        }
        let r = Arc::new(Region {
            rc: Counter32::new(2),
            bytes: UnsafeCell::new(0),
        });
        let release = |r: &Region, id: u64| {
            // A use of the region's memory by this holder.
            // SAFETY (test): `b` points into the live Arc'd cell; loom
            // reports any access racing with the free below.
            r.bytes.with(|b| assert_ne!(unsafe { *b }, DEAD));
            let _ = id;
            if r.rc.fetch_sub_acqrel(1) == 1 {
                // SAFETY (test): as above; this thread took the count to zero.
                r.bytes.with_mut(|b| unsafe { *b = DEAD });
            }
        };
        let other = {
            let r = r.clone();
            thread::spawn(move || release(&r, 1))
        };
        release(&r, 0);
        other.join().unwrap();
        assert_eq!(r.rc.load_acquire(), 0);
    });
}

/// Ownership transfer: the sender fills a region, hands it over through a
/// channel slot and never touches it again; the receiver adopts, uses and
/// frees it. The handoff orders the sender's writes before the receiver's
/// accesses.
#[test]
fn region_ownership_transfer_is_ordered_by_the_handoff() {
    loom::model(|| {
        struct Parcel {
            bytes: UnsafeCell<u64>,
        }
        // Box<Parcel> crosses threads only through the slot.
        let slot: Arc<(Mutex<Option<Box<Parcel>>>, Condvar)> =
            Arc::new((Mutex::new(None), Condvar::new()));
        let rx = {
            let slot = slot.clone();
            thread::spawn(move || {
                let (m, cv) = &*slot;
                let mut g = m.lock().unwrap();
                let p = loop {
                    if let Some(p) = g.take() {
                        break p;
                    }
                    g = cv.wait(g).unwrap();
                };
                drop(g);
                // SAFETY (test): this thread owns the Box it took from the
                // slot; loom reports an access racing with the sender's.
                p.bytes.with(|b| assert_eq!(unsafe { *b }, 42));
                // SAFETY (test): as above. Freed by its new owner.
                p.bytes.with_mut(|b| unsafe { *b = DEAD });
            })
        };
        let p = Box::new(Parcel {
            bytes: UnsafeCell::new(0),
        });
        // SAFETY (test): the sender owns the Box until it puts it in the slot.
        p.bytes.with_mut(|b| unsafe { *b = 42 });
        let (m, cv) = &*slot;
        *m.lock().unwrap() = Some(p);
        cv.notify_one();
        rx.join().unwrap();
    });
}

/// The channel protocol of omni-lang's runtime (conc.rs), reduced to one
/// buffered channel: messages sent before `close` are all received, in
/// order, then `recv` returns `None`; nothing is lost or duplicated.
#[test]
fn channel_send_recv_close_model() {
    struct Chan {
        queue: std::collections::VecDeque<u64>,
        closed: bool,
    }
    fn send(c: &(Mutex<Chan>, Condvar), v: u64) -> bool {
        let mut g = c.0.lock().unwrap();
        if g.closed {
            return false;
        }
        g.queue.push_back(v);
        c.1.notify_all();
        true
    }
    fn recv(c: &(Mutex<Chan>, Condvar)) -> Option<u64> {
        let mut g = c.0.lock().unwrap();
        loop {
            if let Some(v) = g.queue.pop_front() {
                return Some(v);
            }
            if g.closed {
                return None;
            }
            g = c.1.wait(g).unwrap();
        }
    }
    fn close(c: &(Mutex<Chan>, Condvar)) {
        c.0.lock().unwrap().closed = true;
        c.1.notify_all();
    }
    loom::model(|| {
        let c = Arc::new((
            Mutex::new(Chan {
                queue: Default::default(),
                closed: false,
            }),
            Condvar::new(),
        ));
        let producer = {
            let c = c.clone();
            thread::spawn(move || {
                assert!(send(&c, 1));
                assert!(send(&c, 2));
                close(&c);
                assert!(!send(&c, 3), "send after close is refused");
            })
        };
        let mut got = Vec::new();
        while let Some(v) = recv(&c) {
            got.push(v);
        }
        producer.join().unwrap();
        assert_eq!(got, vec![1, 2]);
    });
}
