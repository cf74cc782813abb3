#!/usr/bin/env bash
# Side-by-side benchmark: the same programs on omni, Chez Scheme, Guile and
# SBCL, in one run; wall time and peak RSS (median of N runs) and ratios.
# Protocol: docs/BENCH_PROTOCOL.md. Usage:
#   benches/side_by_side.sh [REPS] [PROGRAM...]
# Installs missing peers from Debian's packages when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-3}
shift || true
PROGRAMS=("$@")
[ ${#PROGRAMS[@]} -eq 0 ] && PROGRAMS=(binary_trees nqueens deriv tak strings mutation)

need=()
command -v scheme >/dev/null || need+=(chezscheme)
command -v guile >/dev/null || need+=(guile-3.0)
command -v sbcl >/dev/null || need+=(sbcl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing peers (${need[*]}); run as root to install them" >&2
  fi
fi

cargo build --release -q -p omni-cli
OMNI=target/release/omni
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

echo "# side_by_side: $(rustc --version) | profile=release (lto=$(sed -n 's/^lto = "\(.*\)"/\1/p' Cargo.toml), codegen-units=1) | RUSTFLAGS=\"${RUSTFLAGS:-}\" | cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) | cores=$(nproc) | mode=side-by-side reps=$REPS"
echo "# peers: chez $(scheme --version 2>&1 | head -1) | $(guile --version | head -1) | $(sbcl --version)"
echo "# machine is shared and noisy: compare ratios within this run, not across runs"

# median of REPS runs of a command: prints "seconds max_rss_kib"
measure() {
  local out="$TMP/out" times=() rss=()
  for _ in $(seq "$REPS"); do
    /usr/bin/time -f "%e %M" -o "$TMP/time" "$@" >"$out" 2>"$TMP/err" || { echo "FAIL"; cat "$TMP/err" >&2; return 0; }
    read -r t m <"$TMP/time"
    times+=("$t"); rss+=("$m")
  done
  local mt mr
  mt=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  mr=$(printf '%s\n' "${rss[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  echo "$mt $mr"
}

printf '%-14s %-6s %9s %11s %9s %9s\n' program impl "time(s)" "rss(KiB)" "t/omni" "rss/omni"
for p in "${PROGRAMS[@]}"; do
  src=benches/programs/$p
  cat benches/programs/prelude.chez.scm "$src.scm" >"$TMP/$p.chez.scm"
  cat benches/programs/prelude.guile.scm "$src.scm" >"$TMP/$p.guile.scm"
  # Warm Guile's compilation cache so compilation is not timed.
  guile "$TMP/$p.guile.scm" >/dev/null 2>&1 || true
  read -r ot orss < <(measure "$OMNI" run "$src.omni")
  printf '%-14s %-6s %9s %11s %9s %9s\n' "$p" omni "$ot" "$orss" 1.00 1.00
  for impl in chez guile sbcl; do
    case $impl in
      chez) r=$(measure scheme --script "$TMP/$p.chez.scm") ;;
      guile) r=$(measure guile "$TMP/$p.guile.scm") ;;
      sbcl) r=$(measure sbcl --script "$src.lisp") ;;
    esac
    if [ "$r" = FAIL ]; then
      printf '%-14s %-6s %9s\n' "$p" "$impl" FAIL
      continue
    fi
    read -r t m <<<"$r"
    printf '%-14s %-6s %9s %11s %9s %9s\n' "$p" "$impl" "$t" "$m" \
      "$(awk -v a="$t" -v b="$ot" 'BEGIN{printf "%.2f", (b>0? a/b : 0)}')" \
      "$(awk -v a="$m" -v b="$orss" 'BEGIN{printf "%.2f", (b>0? a/b : 0)}')"
  done
done
