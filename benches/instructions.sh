#!/usr/bin/env bash
# Instruction counts of the shortened benchmark programs under callgrind:
# deterministic, so they compare builds on a shared, noisy machine where
# wall time cannot (docs/BENCH_PROTOCOL.md). Usage:
#   benches/instructions.sh [OMNI_BINARY...]   (default: target/release/omni)
# Installs valgrind from Debian when it is missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/callgrind.sh
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  cargo build --release -q
  bins=(target/release/omni)
fi
printf '%-10s' program
for b in "${bins[@]}"; do printf ' %28s' "$b"; done
echo
for p in benches/programs/small/*.omni; do
  printf '%-10s' "$(basename "$p" .omni)"
  for b in "${bins[@]}"; do
    n=$(instructions "$b" run "$p")
    printf ' %28s' "$n"
  done
  echo
done
