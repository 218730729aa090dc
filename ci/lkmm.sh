#!/usr/bin/env bash
# The LKMM litmus tests (lkmm/*.litmus) under herd7 and the Linux-kernel
# memory model: each test's "Result:" header must be herd7's verdict.
#
#   HERD7     the herd7 binary (default: herd7 on PATH)
#   LKMM_DIR  a directory with linux-kernel.cfg, linux-kernel.cat,
#             linux-kernel.bell, linux-kernel.def and lock.cat: the
#             kernel's tools/memory-model/, or herdtools7's model files
#             gathered in one place (see lkmm/README.md)
#   HERD7_LIBDIR  herd7's own libdir (cos.cat...), when herd7 is run from a
#             build tree rather than installed
#
# Prints SKIP: with the reason, and exits 0, when either is missing: herd7
# is in no package registry. Prints one line per test and exits 1 on any
# mismatch.
set -euo pipefail
cd "$(dirname "$0")/.."

herd=${HERD7:-$(command -v herd7 || true)}
if [ -z "$herd" ] || [ ! -x "$herd" ]; then
  echo "SKIP: LKMM litmus tests: no herd7 (set HERD7=/path/to/herd7; herdtools7 7.57 builds with Debian's ocaml, ocaml-dune, menhir; see lkmm/README.md)"
  exit 0
fi
dir=${LKMM_DIR:-}
if [ -z "$dir" ] || [ ! -f "$dir/linux-kernel.cfg" ]; then
  echo "SKIP: LKMM litmus tests: no model files (set LKMM_DIR to a directory with linux-kernel.cfg, .cat, .bell, .def and lock.cat)"
  exit 0
fi
includes=(-I "$dir")
[ -n "${HERD7_LIBDIR:-}" ] && includes+=(-I "$HERD7_LIBDIR")

fail=0
n=0
printf '%-62s %-9s %-9s %s\n' test expected herd7 states
for t in lkmm/*.litmus; do
  name=$(basename "$t" .litmus)
  want=$(sed -n 's/^ \* Result: \([A-Za-z]*\).*/\1/p' "$t" | head -n1)
  out=$(cd "$(dirname "$t")" && "$herd" "${includes[@]}" -conf "$dir/linux-kernel.cfg" "$(basename "$t")" 2>&1) || true
  got=$(printf '%s\n' "$out" | awk '/^Observation/ {print $3}')
  states=$(printf '%s\n' "$out" | awk '/^Observation/ {print $4 "/" $4+$5}')
  [ -z "$got" ] && got="error"
  n=$((n + 1))
  if [ "$got" = "$want" ]; then
    printf '%-62s %-9s %-9s %s\n' "$name" "$want" "$got" "$states"
  else
    printf '%-62s %-9s %-9s %s   MISMATCH\n' "$name" "$want" "$got" "$states"
    printf '%s\n' "$out" | tail -n 5 | sed 's/^/    /'
    fail=1
  fi
done
if [ "$fail" -ne 0 ]; then
  echo "LKMM: verdict mismatch (above)"
  exit 1
fi
echo "LKMM: all $n verdicts as stated"
