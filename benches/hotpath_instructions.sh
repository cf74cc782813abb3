#!/usr/bin/env bash
# Instructions per operation of omni-mem's hot paths under callgrind
# (examples/hotpath_instructions.rs, and examples/create_exit_loop.rs, built
# beside it, for region create and exit): deterministic, so they compare builds
# on a shared, noisy machine where wall time cannot (docs/BENCH_PROTOCOL.md).
# Usage: benches/hotpath_instructions.sh [BINARY...]
#   (default: builds and uses target/release/examples/hotpath_instructions)
# Installs valgrind from Debian when it is missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/callgrind.sh
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  cargo build --release -q -p omni-mem --example hotpath_instructions --example create_exit_loop
  bins=(target/release/examples/hotpath_instructions)
fi
n=1000000
printf '%-22s' path
for b in "${bins[@]}"; do printf ' %14s' "$(basename "$(dirname "$(dirname "$b")")")"; done
echo
for p in create_exit tether_start_end alloc_pair barrier_same_region barrier_young_to_old; do
  printf '%-22s' "$p"
  for b in "${bins[@]}"; do
    cmd=("$b" "$p")
    [ "$p" = create_exit ] && cmd=("$(dirname "$b")/create_exit_loop")
    base=$(instructions "${cmd[@]}" 0)
    runs=$(instructions "${cmd[@]}" "$n")
    awk -v a="$base" -v b="$runs" -v n="$n" 'BEGIN { printf " %14.2f", (b - a) / n }'
  done
  echo
done
