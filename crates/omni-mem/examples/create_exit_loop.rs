//! Region create + exit in a plain loop, for instruction counts and wall
//! time outside criterion's harness, whose code layout moves the
//! `region/create_exit` figure between builds that run the same
//! instructions (docs/BENCHMARKS.md):
//!
//!     cargo build --release -p omni-mem --example create_exit_loop
//!     /usr/bin/time target/release/examples/create_exit_loop 100000000
//!     valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!         target/release/examples/create_exit_loop 100000
//!
//! (run the last one with 0 too and divide the difference by the count).

use omni_mem::{region_create, region_exit};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for _ in 0..n {
        region_exit(std::hint::black_box(region_create()));
    }
}
