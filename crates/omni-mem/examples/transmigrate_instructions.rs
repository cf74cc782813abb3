//! Instructions per transmigrated object, for A/B runs of the
//! transmigration kernel on a machine too noisy for wall time
//! (docs/BENCHMARKS.md). Builds one workload (the criterion benchmark's
//! shapes) and transmigrates it ROUNDS times; run it under callgrind with
//! ROUNDS = 0 and ROUNDS = 20 and divide the difference by 20 × objects:
//!
//!     cargo build --release -p omni-mem --example transmigrate_instructions
//!     valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!         target/release/examples/transmigrate_instructions tree_d15 20
//!
//! Workloads: list_10 (a repair's size: the fixed cost shows), list_100k,
//! tree_d15, tree_d20. It also prints the best and the median round's
//! wall time per object (rough figures on a noisy machine: compare builds
//! in alternating runs).

use omni_mem::*;

fn list(r: Region, n: i64) -> Value {
    let mut l = Value::EMPTY;
    for i in 0..n {
        l = alloc_pair(r, Value::fixnum(i).expect("small"), l).expect("alloc");
    }
    l
}

/// Bottom-up, a level at a time, as in benches/mem.rs.
fn tree(r: Region, depth: u32) -> Value {
    let mut level: Vec<Value> = (0..1u64 << depth).map(|_| Value::EMPTY).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|c| alloc_pair(r, c[0], c[1]).expect("alloc"))
            .collect();
    }
    alloc_pair(r, level[0], Value::EMPTY).expect("alloc")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let workload = args.next().unwrap_or_else(|| "tree_d15".into());
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let src = region_create();
    let root = match workload.as_str() {
        "list_100k" => list(src, 100_000),
        "list_10" => list(src, 10),
        "tree_d20" => tree(src, 20),
        _ => tree(src, 15),
    };
    let mut objects = 0;
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let dst = region_create();
        let t = std::time::Instant::now();
        std::hint::black_box(transmigrate(root, src, dst).expect("transmigrate"));
        times.push(t.elapsed());
        objects = dst.stats().transmigrated_objects_in;
        region_exit(dst);
    }
    // (Not a sort: its cost per round would show in the instruction counts.)
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e9 / objects.max(1) as f64;
    let best = times.iter().min().copied().unwrap_or_default();
    let half = times.len() / 2;
    let median = match times.is_empty() {
        true => std::time::Duration::ZERO,
        false => *times.select_nth_unstable(half).1,
    };
    println!(
        "{workload}: {rounds} rounds of {objects} objects; best round {best:?} ({:.2} ns per object), median {:.2} ns",
        per(best),
        per(median)
    );
    region_exit(src);
}
