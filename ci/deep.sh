#!/usr/bin/env bash
# The deep, slow runs, outside .ci/run: every loom model one preemption
# above its recorded bound (LAZYMM_LOOM_EXTRA, default 1) and 100x the
# shuttle iterations (DEEP_SHUTTLE_ITERS, default 100000). Results go to
# VERIFICATION.md. DEEP_JOBS (default 1) loom models run side by side.
# Expect hours on 2 cores: the 3-CPU models at bound + 1 take 3-40 min each
# and the TLB tail with three CPUs longer (VERIFICATION.md, "Deep runs").
set -euo pipefail
cd "$(dirname "$0")/.."
extra=${LAZYMM_LOOM_EXTRA:-1}
iters=${DEEP_SHUTTLE_ITERS:-100000}
jobs=${DEEP_JOBS:-1}
echo "=== shuttle, $iters iterations per scheduler"
LAZYMM_SHUTTLE_ITERS=$iters RUSTFLAGS="--cfg lazymm_shuttle" CARGO_TARGET_DIR=target/shuttle \
  cargo test --release --test shuttle -- --nocapture --test-threads=1 2>&1 | grep --line-buffered -E 'shuttle |test result'
echo "=== loom, every model at its recorded bound + $extra"
LAZYMM_LOOM_EXTRA=$extra RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test --release --test loom -- --nocapture --test-threads="$jobs" "${@}" 2>&1 | grep --line-buffered -E 'loom |test result'
echo "=== loom, epoch_mm on crossbeam-epoch's loom support, at its recorded bound + $extra"
LAZYMM_LOOM_EXTRA=$extra RUSTFLAGS="--cfg loom --cfg crossbeam_loom" CARGO_TARGET_DIR=target/loom-epoch \
  cargo test --release --features epoch-loom --test loom epoch -- --nocapture --test-threads=1 2>&1 | grep --line-buffered -E 'loom |test result'
echo "=== loom, the slow pins CI skips (#[ignore]: e.g. rcu_mm's bug_quiescent_before_load on the standard scenarios)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test --release --test loom -- --ignored --nocapture --test-threads=1 2>&1 | grep --line-buffered -E 'loom |test result'
echo "=== deep run done in ${SECONDS} s"
