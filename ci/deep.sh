#!/usr/bin/env bash
# The deep, slow runs: higher loom preemption bounds and 100x the shuttle
# iterations. Not part of .ci/run; results are recorded in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "=== loom, every model at preemption bound ${DEEP_LOOM_BOUND:-5}"
LOOM_MAX_PREEMPTIONS=${DEEP_LOOM_BOUND:-5} RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test --release --test loom -- --nocapture --test-threads=1 2>&1 | grep -E 'loom |test result'
echo "=== shuttle, ${DEEP_SHUTTLE_ITERS:-100000} iterations per scheduler"
LAZYMM_SHUTTLE_ITERS=${DEEP_SHUTTLE_ITERS:-100000} RUSTFLAGS="--cfg lazymm_shuttle" CARGO_TARGET_DIR=target/shuttle \
  cargo test --release --test shuttle -- --nocapture --test-threads=1 2>&1 | grep -E 'shuttle |test result'
