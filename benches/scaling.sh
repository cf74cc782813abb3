#!/usr/bin/env bash
# Scaling and retention checks: programs where a quadratic cost or a
# retained round once hid (docs/BENCHMARKS.md, "Scaling checks"). Prints
# each program's wall time and peak RSS under every binary given, one run
# each, so an old build and a new one compare in the same run. Usage:
#   benches/scaling.sh [OMNI_BINARY...]   (default: target/release/omni)
# Installs GNU time from Debian when it is missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/time ]; then
  apt-get install -y -qq time >/dev/null
fi
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  cargo build --release -q
  bins=(target/release/omni)
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# 20,000 small top-level definitions: compiling must stay linear.
awk 'BEGIN { for (i = 0; i < 20000; i++) printf "(define (f%d x) (if (< x 0) (f%d (+ x 1)) (list x %d)))\n", i, i, i;
             print "(println (f19999 -5))" }' >"$tmp/many_definitions.omni"
# Spawns in a big program: a spawned thread compiles only what it calls
# (REGION_THREADING_MODEL.md): 100 spawns in a program of 2,000 definitions.
awk 'BEGIN { for (i = 0; i < 2000; i++) printf "(define (f%d x) (if (< x 0) (f%d (+ x 1)) (list x %d)))\n", i, i, i;
             print "(define (go n acc) (if (= n 0) acc (go (- n 1) (+ acc (join (spawn (fn [] 1)))))))";
             print "(println (go 100 0))" }' >"$tmp/spawn_in_big_program.omni"
printf '%-22s' program
for b in "${bins[@]}"; do printf ' %30s' "$b"; done
echo
for p in benches/programs/scaling/*.omni "$tmp/many_definitions.omni" "$tmp/spawn_in_big_program.omni"; do
  printf '%-22s' "$(basename "$p" .omni)"
  for b in "${bins[@]}"; do
    /usr/bin/time -o "$tmp/time" -f '%e s %M KB' "$b" run "$p" >/dev/null 2>&1 || true
    printf ' %30s' "$(tail -1 "$tmp/time")"
  done
  echo
done
