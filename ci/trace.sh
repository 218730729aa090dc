#!/usr/bin/env bash
# Real workloads in CI. Root or not: the main job prices every scheme on a
# committed trace (compare --trace). Where tracefs is usable (root, mounted
# or mountable, the events present): records the ground-truth workload now,
# checks the story against it (record synthetic exits 1 on a difference),
# and replays the fresh trace through every scheme (tests/trace.rs with
# LAZYMM_TRACE). Elsewhere that part prints SKIP: and the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example record --example compare
target/release/examples/compare --trace tests/traces/synthetic.trace.gz \
  | grep -E '^(workload|\| [a-z_]+ \||winner|replayed)'
# The skip path: not root, the recorder says so and exits 3.
if [ "$(id -u)" = 0 ] && command -v runuser > /dev/null; then
  rc=0
  msg=$(runuser -u nobody -- target/release/examples/record -o /dev/null --seconds 0.1) || rc=$?
  echo "as nobody: $msg (exit $rc)"
  [ "$rc" = 3 ] && [[ "$msg" == "SKIP: record: not root"* ]] \
    || { echo "ci/trace.sh: the recorder did not skip as a non-root user"; exit 1; }
fi
out=$(mktemp -d)/synthetic.trace
rc=0
target/release/examples/record -o "$out" synthetic || rc=$?
case $rc in
  0) LAZYMM_TRACE=$out cargo test --release --test trace -- --nocapture 2>&1 \
       | grep -E "^$out|test result|panicked|SKIP" ;;
  3) echo "(the recorder skipped: its SKIP line is above)" ;;
  *) echo "ci/trace.sh: record synthetic failed (exit $rc)"; exit "$rc" ;;
esac
