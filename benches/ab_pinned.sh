#!/usr/bin/env bash
# Paired wall-time A/B of two builds of the transmigration harness on a
# shared, noisy 2-core machine (docs/BENCH_PROTOCOL.md): A and B run at
# the same time, one pinned to each core, then again with the cores
# swapped, so both see the same moment of the host's load. Prints, over
# PAIRS such double runs, the median and quartiles of B's time over A's
# (each run's median round), and each build's mean.
#
#   benches/ab_pinned.sh A B [WORKLOAD] [ROUNDS] [PAIRS]
#
# A and B are builds of examples/transmigrate_instructions (default
# workload tree_d15, 100 rounds, 5 pairs). Run A against A first: the
# spread of that ratio is what the machine allows one to resolve.
set -euo pipefail
a=$1 b=$2 w=${3:-tree_d15} r=${4:-100} n=${5:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median_of() { sed -E 's/.*median ([0-9.]+) ns.*/\1/' "$1"; }
for _ in $(seq "$n"); do
  for cores in "0 1" "1 0"; do
    set -- $cores
    taskset -c "$1" "$a" "$w" "$r" >"$tmp/a" &
    taskset -c "$2" "$b" "$w" "$r" >"$tmp/b"
    wait
    echo "$(median_of "$tmp/a") $(median_of "$tmp/b")"
  done
done | awk '{ print $2 / $1, $1, $2 }' | sort -n | awk -v w="$w" '
  { r[NR] = $1; sa += $2; sb += $3 }
  END {
    printf "%s: B/A median %.3f (quartiles %.3f %.3f) over %d runs; mean ns per object A %.2f, B %.2f\n",
      w, r[int((NR + 1) / 2)], r[int(NR / 4) + 1], r[int(3 * NR / 4)], NR, sa / NR, sb / NR
  }'
