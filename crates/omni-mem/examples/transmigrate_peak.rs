//! Peak memory of each transmigration workload (docs/BENCHMARKS.md):
//! source bytes, copied bytes, the forwarding side table (restore log, work
//! stack and destination block list), and the process's peak RSS after
//! each case.
//!
//!     cargo run --release -p omni-mem --example transmigrate_peak

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
    if depth == 0 {
        return Value::EMPTY;
    }
    let mut level: Vec<Value> = (0..1u64 << depth).map(|_| Value::EMPTY).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|c| alloc_pair(r, c[0], c[1]).unwrap())
            .collect();
    }
    level[0]
}

fn boxed_array(r: Region, n: usize) -> Value {
    let a = alloc_array(r, 0, Value::NOTHING).unwrap();
    for i in 0..n {
        array_push(a, alloc_box(r, int(i as i64)).unwrap()).unwrap();
    }
    a
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    // Each case runs in a fresh process so peak RSS is its own.
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 1 {
        println!("{}", build_info("transmigrate_peak"));
        println!(
            "{:<16} {:>10} {:>12} {:>12} {:>14} {:>12}",
            "workload", "objects", "src bytes", "copy bytes", "side bytes", "peak RSS KiB"
        );
        for name in [
            "list_1k",
            "list_100k",
            "tree_d15",
            "tree_d20",
            "boxed_array_10k",
        ] {
            let out = std::process::Command::new(&args[0])
                .arg(name)
                .output()
                .expect("re-run self");
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
        return;
    }
    type Build = Box<dyn Fn(Region) -> Value>;
    let cases: Vec<(&str, Build)> = vec![
        ("list_1k", Box::new(|r| list(r, 1_000))),
        ("list_100k", Box::new(|r| list(r, 100_000))),
        ("tree_d15", Box::new(|r| tree(r, 15))),
        ("tree_d20", Box::new(|r| tree(r, 20))),
        ("boxed_array_10k", Box::new(|r| boxed_array(r, 10_000))),
    ];
    for (name, build) in cases.into_iter().filter(|c| c.0 == args[1]) {
        let src = region_create();
        let root = build(src);
        let dst = region_create();
        transmigrate(root, src, dst).unwrap();
        let side = heap_stats().peak_transmigration_side_bytes;
        let s = dst.stats();
        println!(
            "{:<16} {:>10} {:>12} {:>12} {:>14} {:>12}",
            name,
            s.transmigrated_objects_in,
            src.bytes_allocated(),
            s.transmigrated_bytes_in,
            side,
            peak_rss_kib()
        );
        region_exit(dst);
        region_exit(src);
    }
}
