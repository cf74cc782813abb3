//! omni-mem microbenchmarks (docs/BENCH_PROTOCOL.md, figures in
//! docs/BENCHMARKS.md). Workloads mirror the C runtime's own benchmark:
//! lists of 1,000 and 100,000 pairs, binary trees of depth 15 and 20, an
//! array of 10,000 boxed values, a wide structure; plus region create+exit,
//! small-object allocation, tethers, the barrier fast and repair paths, and
//! merging a 64 MiB region.

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, BatchSize, Criterion, Throughput};
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
        g.bench_function(name, |b| {
            b.iter_batched(
                region_create,
                |dst| {
                    black_box(transmigrate(root, src, dst).unwrap());
                    region_exit(dst);
                },
                BatchSize::PerIteration,
            )
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
        // Only the 1000 allocations are timed (segment refills included);
        // the region is recycled outside the timed part.
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let r = region_create();
                let t = Instant::now();
                for i in 0..1000 {
                    black_box(alloc_pair(r, int(i), Value::EMPTY).unwrap());
                }
                total += t.elapsed();
                region_exit(r);
            }
            total
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
                let old = region_create();
                let cell = alloc_box(old, Value::NOTHING).unwrap();
                let young = region_create();
                let v = list(young, 10);
                let n = left.min(1000);
                let t = Instant::now();
                for _ in 0..n {
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

criterion_group!(
    benches,
    bench_regions,
    bench_barrier,
    bench_transmigrate,
    bench_memcpy,
    bench_merge
);

fn main() {
    println!("{}", build_info("criterion omni-mem"));
    benches();
    Criterion::default().configure_from_args().final_summary();
}
