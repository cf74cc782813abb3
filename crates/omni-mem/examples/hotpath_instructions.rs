//! Instructions per operation of omni-mem's hot paths, for comparing
//! builds on a machine too noisy for wall time (docs/BENCH_PROTOCOL.md).
//! Runs one path N times, in the shape of the criterion benchmark of the
//! same name (benches/mem.rs); `benches/hotpath_instructions.sh` runs each
//! under callgrind with N = 0 and N = 1,000,000 and prints the difference
//! divided by N:
//!
//!     benches/hotpath_instructions.sh [BINARY...]
//!
//! Paths: tether_start_end, alloc_pair (a pair of immediates, 1,000 per region, the region's
//! create and exit included), barrier_same_region and barrier_young_to_old
//! (`set-car!` of a string, the store barrier's fast path). The loop and
//! `black_box` add a few instructions to each. Region create and exit
//! have their own loop, `examples/create_exit_loop.rs`, which the script
//! counts too.

use std::hint::black_box;

use omni_mem::*;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_default();
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    match path.as_str() {
        "tether_start_end" => {
            let r = region_create();
            for _ in 0..n {
                tether_end(tether_start(black_box(r))).expect("tether");
            }
            region_exit(r);
        }
        "alloc_pair" => {
            for _ in 0..n / 1000 {
                let r = region_create();
                for i in 0..1000 {
                    let car = Value::fixnum(i).expect("small");
                    black_box(alloc_pair(r, car, Value::EMPTY).expect("alloc"));
                }
                region_exit(r);
            }
        }
        "barrier_same_region" | "barrier_young_to_old" => {
            let old = region_create();
            let young = region_create();
            let p = alloc_pair(young, Value::EMPTY, Value::EMPTY).expect("alloc");
            let home = if path == "barrier_same_region" {
                young
            } else {
                old
            };
            let x = alloc_str(home, "x").expect("alloc");
            for _ in 0..n {
                set_car(black_box(p), black_box(x)).expect("store");
            }
            region_exit(young);
            region_exit(old);
        }
        other => {
            eprintln!("unknown path {other:?}: tether_start_end, alloc_pair, barrier_same_region, barrier_young_to_old");
            std::process::exit(2);
        }
    }
}
