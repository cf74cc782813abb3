#!/usr/bin/env bash
# Paired wall-time A/B of two builds of omni-mem's hot paths on a shared,
# noisy 2-core machine (docs/BENCH_PROTOCOL.md): A and B run the same
# path at the same time, one pinned to each core, then again with the
# cores swapped, so both see the same moment of the host's load. Prints
# each build's mean time per operation and the median, min and max of
# B's time over A's.
#
#   benches/ab_hotpaths.sh A B PATH [N] [PAIRS]
#
# A and B are builds of examples/hotpath_instructions (their directories
# must also hold examples/create_exit_loop, built beside it); PATH is
# create_exit, tether_start_end, alloc_pair, barrier_same_region or
# barrier_young_to_old; N operations per run (default 100,000,000), PAIRS
# double runs (default 3). Run A against A first: the spread of that ratio
# is what the machine allows one to resolve.
set -euo pipefail
a=$1 b=$2 path=$3 n=${4:-100000000} pairs=${5:-3}
cmd() {
  if [ "$path" = create_exit ]; then
    echo "$(dirname "$1")/create_exit_loop $n"
  else
    echo "$1 $path $n"
  fi
}
ns() {
  local s
  s=$(date +%s%N)
  taskset -c "$1" $2 >/dev/null
  echo $(($(date +%s%N) - s))
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for _ in $(seq "$pairs"); do
  for cores in "0 1" "1 0"; do
    set -- $cores
    ns "$1" "$(cmd "$a")" >"$tmp/a" &
    ns "$2" "$(cmd "$b")" >"$tmp/b"
    wait
    echo "$(cat "$tmp/a") $(cat "$tmp/b")"
  done
done | awk -v n="$n" -v p="$path" '
  { r[NR] = $2 / $1; sa += $1; sb += $2 }
  END {
    for (i = 2; i <= NR; i++) for (j = i; j > 1 && r[j - 1] > r[j]; j--) { t = r[j]; r[j] = r[j - 1]; r[j - 1] = t }
    m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
    printf "%-22s A %.2f ns  B %.2f ns  B/A median %.3f [%.3f, %.3f] over %d runs\n",
      p, sa / NR / n, sb / NR / n, m, r[1], r[NR], NR
  }'
