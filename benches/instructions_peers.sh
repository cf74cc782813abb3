#!/usr/bin/env bash
# Instructions executed (callgrind) by the side-by-side programs on omni,
# Chez Scheme and Guile: the same programs as benches/side_by_side.sh, but a
# count that does not move with the machine's load, so the ratios between
# implementations can be compared across days (docs/BENCH_PROTOCOL.md).
# Each implementation's start-up (an empty program's count) is subtracted.
# Slow: every program runs once per implementation under valgrind (about
# ten minutes for all six). Usage:
#   benches/instructions_peers.sh [PROGRAM...]
# Installs valgrind and the peers from Debian when missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
PROGRAMS=("$@")
[ ${#PROGRAMS[@]} -eq 0 ] && PROGRAMS=(binary_trees nqueens deriv tak strings mutation)

need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v scheme >/dev/null || need+=(chezscheme)
command -v guile >/dev/null || need+=(guile-3.0)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing (${need[*]}); run as root to install them" >&2
    exit 1
  fi
fi

cargo build --release -q -p omni-cli
OMNI=target/release/omni
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

echo "# instructions_peers: $(rustc --version) | $(valgrind --version) | chez $(scheme --version 2>&1 | head -1) | $(guile --version | head -1)"
echo "# counts are instructions (callgrind Ir) minus the implementation's empty-program count"

# Instructions of one command under callgrind ("FAIL" if it does not run).
# Chez and Guile generate code at run time: --smc-check=all makes valgrind
# see it.
count() {
  local n
  n=$(valgrind --tool=callgrind --smc-check=all --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null \
      | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
  echo "${n:-FAIL}"
}

# The empty programs' counts: each implementation's start-up.
echo '(println 0)' >"$TMP/empty.omni"
cat benches/programs/prelude.chez.scm >"$TMP/empty.chez.scm"
echo '(display 0) (newline)' >>"$TMP/empty.chez.scm"
cat benches/programs/prelude.guile.scm >"$TMP/empty.guile.scm"
echo '(display 0) (newline)' >>"$TMP/empty.guile.scm"
guile "$TMP/empty.guile.scm" >/dev/null 2>&1 || true
base_omni=$(count "$OMNI" run "$TMP/empty.omni")
base_chez=$(count scheme --script "$TMP/empty.chez.scm")
base_guile=$(count guile "$TMP/empty.guile.scm")
echo "# start-up: omni $base_omni, chez $base_chez, guile $base_guile"

printf '%-14s %15s %15s %15s %10s %10s\n' program omni chez guile omni/chez omni/guile
for p in "${PROGRAMS[@]}"; do
  src=benches/programs/$p
  cat benches/programs/prelude.chez.scm "$src.scm" >"$TMP/$p.chez.scm"
  cat benches/programs/prelude.guile.scm "$src.scm" >"$TMP/$p.guile.scm"
  # Warm Guile's compilation cache so compilation is not counted.
  guile "$TMP/$p.guile.scm" >/dev/null 2>&1 || true
  o=$(count "$OMNI" run "$src.omni")
  c=$(count scheme --script "$TMP/$p.chez.scm")
  g=$(count guile "$TMP/$p.guile.scm")
  awk -v p="$p" -v o="$o" -v c="$c" -v g="$g" \
      -v bo="$base_omni" -v bc="$base_chez" -v bg="$base_guile" 'BEGIN {
    no = (o == "FAIL") ? -1 : o - bo
    nc = (c == "FAIL") ? -1 : c - bc
    ng = (g == "FAIL") ? -1 : g - bg
    printf "%-14s %15s %15s %15s %10s %10s\n", p,
      (no < 0 ? "FAIL" : sprintf("%.0f", no)), (nc < 0 ? "FAIL" : sprintf("%.0f", nc)),
      (ng < 0 ? "FAIL" : sprintf("%.0f", ng)),
      (no > 0 && nc > 0 ? sprintf("%.2f", no / nc) : "-"),
      (no > 0 && ng > 0 ? sprintf("%.2f", no / ng) : "-")
  }'
done
