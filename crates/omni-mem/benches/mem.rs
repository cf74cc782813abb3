//! omni-mem microbenchmarks (docs/BENCH_PROTOCOL.md, figures in
//! docs/BENCHMARKS.md). Workloads mirror the C runtime's own benchmark:
//! lists of 1,000 and 100,000 pairs, binary trees of depth 15 and 20, an
//! array of 10,000 boxed values, a wide structure; plus region create+exit,
//! small-object allocation, tethers, the barrier fast and repair paths, and
//! merging a 64 MiB region.

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, Criterion, Throughput};
use omni_mem::*;

fn int(n: i64) -> Value {
    Value::fixnum(n).unwrap()
}

fn list(r: Region, n: i64) -> Value {
    let mut l = Value::EMPTY;
    for i in 0..n {
        l = alloc_pair(r, int(i), l).unwrap();
    }
    l
}

fn tree(r: Region, depth: u32) -> Value {
    // Iterative bottom-up build: a level of `2^d` nodes at a time.
    let mut level: Vec<Value> = (0..1u64 << depth).map(|_| Value::EMPTY).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|c| alloc_pair(r, c[0], c[1]).unwrap())
            .collect();
    }
    alloc_pair(r, level[0], Value::EMPTY).unwrap()
}

fn boxed_array(r: Region, n: usize) -> Value {
    let a = alloc_array(r, 0, Value::NOTHING).unwrap();
    for i in 0..n {
        array_push(a, alloc_box(r, int(i as i64)).unwrap()).unwrap();
    }
    a
}

fn wide(r: Region, n: usize) -> Value {
    // One root holding many small, different objects.
    let a = alloc_array(r, 0, Value::NOTHING).unwrap();
    for i in 0..n {
        let x = match i % 4 {
            0 => alloc_str(r, "wide-structure").unwrap(),
            1 => alloc_float(r, i as f64).unwrap(),
            2 => alloc_pair(r, int(i as i64), Value::EMPTY).unwrap(),
            _ => alloc_closure(r, 1, &[int(1), int(2)]).unwrap(),
        };
        array_push(a, x).unwrap();
    }
    a
}

fn count_objects(v: Value) -> u64 {
    let dst = region_create();
    let src = region_of(v).unwrap();
    transmigrate(v, src, dst).unwrap();
    let n = dst.stats().transmigrated_objects_in;
    region_exit(dst);
    n
}

/// The time `f` takes, `iters` times, each in a region created before and
/// exited after the timed part (BENCH_PROTOCOL.md: setup and recycling
/// are not timed).
fn time_in_fresh_regions(iters: u64, mut f: impl FnMut(Region)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let r = region_create();
        let t = Instant::now();
        f(r);
        total += t.elapsed();
        region_exit(r);
    }
    total
}

fn bench_transmigrate(c: &mut Criterion) {
    let mut g = c.benchmark_group("transmigrate");
    type Build = Box<dyn Fn(Region) -> Value>;
    let cases: Vec<(&str, Build)> = vec![
        ("list_1k", Box::new(|r| list(r, 1_000))),
        ("list_100k", Box::new(|r| list(r, 100_000))),
        ("tree_d15", Box::new(|r| tree(r, 15))),
        ("tree_d20", Box::new(|r| tree(r, 20))),
        ("boxed_array_10k", Box::new(|r| boxed_array(r, 10_000))),
        ("wide_10k", Box::new(|r| wide(r, 10_000))),
    ];
    for (name, build) in cases {
        let src = region_create();
        let root = build(src);
        let objects = count_objects(root);
        g.throughput(Throughput::Elements(objects));
        if objects > 1_000_000 {
            g.sample_size(10);
        } else {
            g.sample_size(30);
        }
        // Only the transmigration is timed (until the twenty-first
        // session the destination's exit was timed too).
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                time_in_fresh_regions(iters, |dst| {
                    black_box(transmigrate(root, src, dst).unwrap());
                })
            })
        });
        region_exit(src);
    }
    g.finish();
}

/// The memcpy bound: copying the same number of bytes the list_100k and
/// tree_d20 transmigrations copy (2.4 MB and 25.2 MB).
fn bench_memcpy(c: &mut Criterion) {
    let mut g = c.benchmark_group("memcpy");
    for (name, bytes) in [
        ("bytes_of_list_100k", 2_400_000usize),
        ("bytes_of_tree_d20", 25_165_800),
    ] {
        let src = vec![7u8; bytes];
        let mut dst = vec![0u8; bytes];
        g.throughput(Throughput::Bytes(bytes as u64));
        g.sample_size(20);
        g.bench_function(name, |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&src));
                black_box(&dst);
            })
        });
    }
    g.finish();
}

/// The machine's effective clock at the time of the run: a chain of 1,000
/// dependent register adds, one cycle each. On a shared VM whose speed
/// moves from one minute to the next (docs/BENCHMARKS.md), an operation's
/// time divided by this one's per add is its cost in effective cycles,
/// which compares runs made at different moments. (x86-64 only.)
#[cfg(target_arch = "x86_64")]
fn bench_clock(c: &mut Criterion) {
    let mut g = c.benchmark_group("clock");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("dependent_add_x1000", |b| {
        b.iter(|| {
            let mut x = black_box(0u64);
            for _ in 0..1000 {
                // SAFETY: one add to a register the asm owns; it touches
                // no memory and no flag the compiler relies on.
                unsafe { std::arch::asm!("add {0}, 1", inout(reg) x, options(nomem, nostack)) };
            }
            black_box(x)
        })
    });
    g.finish();
}

#[cfg(not(target_arch = "x86_64"))]
fn bench_clock(_: &mut Criterion) {}

fn bench_regions(c: &mut Criterion) {
    let mut g = c.benchmark_group("region");
    g.bench_function("create_exit", |b| {
        b.iter(|| region_exit(black_box(region_create())))
    });
    g.bench_function("tether_start_end", |b| {
        let r = region_create();
        b.iter(|| tether_end(tether_start(black_box(r))).unwrap());
        region_exit(r);
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("alloc_pair_x1000", |b| {
        // Only the 1000 allocations are timed (segment refills included).
        b.iter_custom(|iters| {
            time_in_fresh_regions(iters, |r| {
                for i in 0..1000 {
                    black_box(alloc_pair(r, int(i), Value::EMPTY).unwrap());
                }
            })
        })
    });
    g.finish();
}

fn bench_barrier(c: &mut Criterion) {
    let mut g = c.benchmark_group("barrier");
    g.bench_function("fast_path_same_region", |b| {
        let r = region_create();
        let p = alloc_pair(r, Value::EMPTY, Value::EMPTY).unwrap();
        let x = alloc_str(r, "x").unwrap();
        b.iter(|| set_car(black_box(p), black_box(x)).unwrap());
        region_exit(r);
    });
    g.bench_function("fast_path_young_to_old", |b| {
        let old = region_create();
        let young = region_create();
        let p = alloc_pair(young, Value::EMPTY, Value::EMPTY).unwrap();
        let x = alloc_str(old, "x").unwrap();
        b.iter(|| set_car(black_box(p), black_box(x)).unwrap());
        region_exit(young);
        region_exit(old);
    });
    g.bench_function("repair_transmigrate_list10", |b| {
        let old_t = set_merge_threshold(usize::MAX);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                // A fresh (old, young) pair every 1000 stores keeps `old`
                // from growing without bound; only the stores are timed.
                // Each store is of a list of its own: a list stored again
                // has moved to its first copy, which is taken as it is.
                let old = region_create();
                let cell = alloc_box(old, Value::NOTHING).unwrap();
                let young = region_create();
                let n = left.min(1000);
                let vs: Vec<Value> = (0..n).map(|_| list(young, 10)).collect();
                let t = Instant::now();
                for &v in &vs {
                    box_set(black_box(cell), black_box(v)).unwrap();
                }
                total += t.elapsed();
                left -= n;
                region_exit(young);
                region_exit(old);
            }
            total
        });
        set_merge_threshold(old_t);
    });
    // The usual shape: each value is made in a young region (an
    // activation's scratch) that dies right after the store, so nothing
    // the store moved can be read again. Timed whole: region create and
    // exit, the list, the store.
    g.bench_function("repair_list10_from_a_dying_region", |b| {
        let old_t = set_merge_threshold(usize::MAX);
        let old = region_create();
        let cell = alloc_box(old, Value::NOTHING).unwrap();
        b.iter(|| {
            let young = region_create();
            let v = list(young, 10);
            box_set(black_box(cell), black_box(v)).unwrap();
            region_exit(young);
        });
        region_exit(old);
        set_merge_threshold(old_t);
    });
    g.finish();
}

fn bench_merge(c: &mut Criterion) {
    let mut g = c.benchmark_group("merge");
    g.sample_size(10);
    g.bench_function("merge_64MiB", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let old = region_create();
                let young = region_create();
                while young.bytes_allocated() < 64 << 20 {
                    alloc_array(young, 1000, Value::NOTHING).unwrap();
                }
                let t = Instant::now();
                merge(black_box(young), old).unwrap();
                total += t.elapsed();
                region_exit(young);
                region_exit(old);
            }
            total
        })
    });
    g.finish();
}

/// Handoff (docs/REGION_THREADING_MODEL.md): the runtime's own cost of
/// moving a value to another thread, sender and receiver halves, timed
/// with `iter_custom` so building the message and freeing it afterwards
/// are not counted. Option A (transfer) must not depend on the size.
fn bench_handoff(c: &mut Criterion) {
    let mut g = c.benchmark_group("handoff");
    for n in [10i64, 100_000] {
        g.bench_function(format!("transfer_adopt_list_{n}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let msg = region_create_message();
                    let l = list(msg, n);
                    let home = region_create();
                    let t = Instant::now();
                    let p = Parcel::transfer(msg, l).unwrap();
                    let v = black_box(p).adopt(home);
                    total += t.elapsed();
                    black_box(v);
                    region_exit(home);
                }
                total
            })
        });
        g.bench_function(format!("copy_adopt_list_{n}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let src = region_create();
                    let l = list(src, n);
                    let home = region_create();
                    let t = Instant::now();
                    let p = Parcel::copy(l).unwrap();
                    let v = black_box(p).adopt(home);
                    total += t.elapsed();
                    black_box(v);
                    region_exit(home);
                    region_exit(src);
                }
                total
            })
        });
    }
    g.finish();
}

/// Small-message throughput between two threads over the same std channel:
/// a baseline sending owned `Vec<u64>`s of 10 numbers, against parcels of a
/// 10-element list built in a message region (Option A) or copied (B).
/// The consumer sums every message and frees it.
fn bench_channel_throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("channel");
    g.sample_size(20);
    // Small messages (10 numbers), then large ones (100,000).
    for (msgs, len) in [(10_000u64, 10u64), (50, 100_000)] {
        channel_throughput(&mut g, msgs, len);
    }
    pingpong(&mut g);
    g.finish();
}

fn channel_throughput(
    g: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>,
    msgs: u64,
    len: u64,
) {
    g.throughput(Throughput::Elements(msgs));
    g.bench_function(format!("mpsc_vec_baseline_{len}"), |b| {
        b.iter(|| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u64>>(64);
            let consumer = std::thread::spawn(move || {
                let mut sum = 0;
                while let Ok(v) = rx.recv() {
                    sum += v.iter().sum::<u64>();
                }
                sum
            });
            for i in 0..msgs {
                tx.send((i..i + len).collect()).unwrap();
            }
            drop(tx);
            black_box(consumer.join().unwrap())
        })
    });
    for option_a in [true, false] {
        let name = if option_a {
            format!("parcel_transfer_list_{len}")
        } else {
            format!("parcel_copy_list_{len}")
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Parcel>(64);
                let consumer = std::thread::spawn(move || {
                    let mut sum = 0;
                    while let Ok(p) = rx.recv() {
                        let home = region_create();
                        let mut l = p.adopt(home);
                        while let Some(x) = car(l) {
                            sum += x.as_fixnum().unwrap() as u64;
                            l = cdr(l).unwrap();
                        }
                        region_exit(home);
                    }
                    sum
                });
                for i in 0..msgs as i64 {
                    let p = if option_a {
                        let msg = region_create_message();
                        let mut l = Value::EMPTY;
                        for k in (i..i + len as i64).rev() {
                            l = alloc_pair(msg, int(k), l).unwrap();
                        }
                        Parcel::transfer(msg, l).unwrap()
                    } else {
                        let r = region_create();
                        let mut l = Value::EMPTY;
                        for k in (i..i + len as i64).rev() {
                            l = alloc_pair(r, int(k), l).unwrap();
                        }
                        let p = Parcel::copy(l).unwrap();
                        region_exit(r);
                        p
                    };
                    tx.send(p).unwrap();
                }
                drop(tx);
                black_box(consumer.join().unwrap())
            })
        });
    }
}

fn pingpong(g: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>) {
    // Ping-pong latency: one small message there and back.
    g.throughput(Throughput::Elements(1));
    g.bench_function("pingpong_mpsc_vec", |b| {
        let (to, from_main) = std::sync::mpsc::sync_channel::<Vec<u64>>(0);
        let (back, from_echo) = std::sync::mpsc::sync_channel::<Vec<u64>>(0);
        let echo = std::thread::spawn(move || {
            while let Ok(v) = from_main.recv() {
                if back.send(v).is_err() {
                    break;
                }
            }
        });
        b.iter(|| {
            to.send(vec![1, 2, 3]).unwrap();
            black_box(from_echo.recv().unwrap())
        });
        drop(to);
        echo.join().unwrap();
    });
    g.bench_function("pingpong_parcel", |b| {
        let (to, from_main) = std::sync::mpsc::sync_channel::<Parcel>(0);
        let (back, from_echo) = std::sync::mpsc::sync_channel::<Parcel>(0);
        let echo = std::thread::spawn(move || {
            while let Ok(p) = from_main.recv() {
                // Receive into a message region and send it straight back.
                let msg = region_create_message();
                let v = p.adopt(msg);
                if back.send(Parcel::transfer(msg, v).unwrap()).is_err() {
                    break;
                }
            }
        });
        b.iter(|| {
            let msg = region_create_message();
            let l = alloc_list(msg, &[int(1), int(2), int(3)]).unwrap();
            to.send(Parcel::transfer(msg, l).unwrap()).unwrap();
            let home = region_create();
            black_box(from_echo.recv().unwrap().adopt(home));
            region_exit(home);
        });
        drop(to);
        echo.join().unwrap();
    });
}

/// The intern table (docs/SMR_FOR_RUNTIME_STRUCTURES.md): lookups of an
/// existing name, against an `RwLock<HashMap>` baseline (the table's
/// former design), on one thread and on two threads at once.
fn bench_intern(c: &mut Criterion) {
    use std::collections::HashMap;
    use std::sync::{Arc, RwLock};
    const LOOKUPS: u64 = 100_000;
    let names: Vec<String> = (0..1000).map(|i| format!("symbol-{i}")).collect();
    let table = Arc::new(omni_mem::intern::SymbolTable::default());
    let baseline: Arc<RwLock<HashMap<String, u32>>> = Arc::new(RwLock::new(HashMap::new()));
    for n in &names {
        let id = table.intern(n);
        baseline.write().unwrap().insert(n.clone(), id);
    }
    let names = Arc::new(names);
    // `threads` threads share `iters * LOOKUPS` lookups through `find`.
    fn run<F: Fn(&str) -> u32 + Send + Sync + 'static>(
        threads: usize,
        iters: u64,
        names: &Arc<Vec<String>>,
        find: Arc<F>,
    ) -> Duration {
        let start = Instant::now();
        let hs: Vec<_> = (0..threads)
            .map(|k| {
                let (n, find) = (names.clone(), find.clone());
                std::thread::spawn(move || {
                    let mut acc = 0u64;
                    for i in 0..iters * LOOKUPS / threads as u64 {
                        acc += find(&n[(i as usize * 7 + k) % n.len()]) as u64;
                    }
                    acc
                })
            })
            .collect();
        for h in hs {
            black_box(h.join().unwrap());
        }
        start.elapsed()
    }
    let mut g = c.benchmark_group("intern");
    g.throughput(Throughput::Elements(LOOKUPS));
    for threads in [1usize, 2] {
        let t = table.clone();
        let lockfree = Arc::new(move |name: &str| t.lookup(name).unwrap());
        g.bench_function(format!("hit_lockfree_{threads}_threads"), |b| {
            b.iter_custom(|iters| run(threads, iters, &names, lockfree.clone()))
        });
        let t = baseline.clone();
        let locked = Arc::new(move |name: &str| *t.read().unwrap().get(name).unwrap());
        g.bench_function(format!("hit_rwlock_baseline_{threads}_threads"), |b| {
            b.iter_custom(|iters| run(threads, iters, &names, locked.clone()))
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_clock,
    bench_regions,
    bench_barrier,
    bench_transmigrate,
    bench_memcpy,
    bench_merge,
    bench_handoff,
    bench_channel_throughput,
    bench_intern
);

fn main() {
    println!("{}", build_info("criterion omni-mem"));
    benches();
    Criterion::default().configure_from_args().final_summary();
}
