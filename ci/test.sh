#!/usr/bin/env bash
# Every test of the crate: the README's second quick-start command, and what
# CI runs (.ci/run). Each checker build has its own target directory so the
# cfgs do not thrash each other's caches.
#
#   LAZYMM_SHUTTLE_ITERS   shuttle iterations per scheduler (default 1000)
#   LOOM_MAX_PREEMPTIONS   override every loom model's recorded bound
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS

# CI builds carry line tables only (backtraces keep file:line): full debug
# info at opt-level 3 is most of the codegen time of every build below.
# Users' own builds keep Cargo.toml's profiles.
export CARGO_PROFILE_DEV_DEBUG=${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}
export CARGO_PROFILE_RELEASE_DEBUG=${CARGO_PROFILE_RELEASE_DEBUG:-line-tables-only}
# loom and shuttle models are independent tests: one per core.
jobs=${LAZYMM_TEST_THREADS:-$(nproc 2>/dev/null || echo 2)}
step() { printf '\n=== %s (t=%ss)\n' "$*" "$((SECONDS - start))"; }

# run_summarized PATTERN CMD...: runs CMD with its output in a log, prints the
# lines matching PATTERN (the per-model counts and times), and on failure the
# log's tail and CMD's exit status.
logdir=$(mktemp -d)
run_summarized() {
  local pattern=$1; shift
  local log="$logdir/run.log" rc=0
  "$@" >"$log" 2>&1 || rc=$?
  grep -E "$pattern" "$log" || true
  if [ "$rc" -ne 0 ]; then
    echo "--- FAILED (exit $rc); last lines:"; tail -n 60 "$log"; exit "$rc"
  fi
}

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy (std build, all targets)"
cargo clippy --all-targets -- -D warnings

step "clippy (loom build)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo clippy --release --all-targets -- -D warnings

step "clippy (shuttle build)"
RUSTFLAGS="--cfg lazymm_shuttle" CARGO_TARGET_DIR=target/shuttle cargo clippy --release --all-targets -- -D warnings

step "cargo test (std build: unit tests, proptest of the machine, doc tests)"
# --lib --tests, then --doc: the examples are left out here (clippy
# --all-targets above checks them, and the loom step below, the users'
# plain `cargo test`, builds them), which saves ~45 s of opt-level-3 builds.
cargo test --lib --tests
cargo test --doc

step "a user's kernel crate: cargo check fails at its own line with lazymm::assert_fits! (ci/user_check.sh)"
ci/user_check.sh

step "CPU ids at word boundaries, and a recorded workload, with the bug variants compiled in (tests/wide_cpus.rs, tests/wide_tlb.rs, tests/trace.rs)"
cargo test --features bug-variants --test wide_cpus --test wide_tlb --test trace

step "loom: the users' command, RUSTFLAGS=\"--cfg loom\" cargo test --release"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom run_summarized '(^|\.\.\. )loom |test result' \
  cargo test --release -- --nocapture --test-threads="$jobs"

step "loom: epoch_mm through crossbeam-epoch's loom support (--cfg crossbeam_loom, feature epoch-loom)"
RUSTFLAGS="--cfg loom --cfg crossbeam_loom" CARGO_TARGET_DIR=target/loom-epoch run_summarized '(^|\.\.\. )loom |test result' \
  cargo test --release --features epoch-loom --test loom epoch -- --nocapture --test-threads=1

step "shuttle: 8 CPUs, 4 mms (LAZYMM_SHUTTLE_ITERS=${LAZYMM_SHUTTLE_ITERS:-1000} per scheduler)"
RUSTFLAGS="--cfg lazymm_shuttle" CARGO_TARGET_DIR=target/shuttle run_summarized '(^|\.\.\. )shuttle |test result' \
  cargo test --release --test shuttle -- --nocapture --test-threads="$jobs"

step "cargo doc (warnings denied): default features, and a kernel's --no-default-features build (no broken link, no Bug type)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps
test -f target/doc/lazymm/check/model/harness/struct.LoomCheck.html \
  && test -f target/doc/lazymm/check/model/harness/struct.ShuttleCheck.html \
  || { echo "cargo doc does not show LoomCheck and ShuttleCheck"; exit 1; }
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --no-default-features --target-dir target/doc-kernel
if find target/doc-kernel/doc/lazymm -name 'enum.Bug.html' | grep .; then
  echo "a Bug type is in the kernel-facing docs (above)"; exit 1
fi

# `cargo bench --no-run` is not repeated here: clippy --all-targets above
# type-checks every bench, and the benches' own runs are BENCHMARKS.md's.

step "MSRV (Cargo.toml rust-version): the library on the oldest supported Rust"
ci/msrv.sh

step "API compatibility with the last release tag (ci/semver.sh; SKIP before the first tag)"
ci/semver.sh

step "no_std build for x86_64-unknown-none"
if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-none \
  || rustup target add x86_64-unknown-none; then
  cargo build --no-default-features --target x86_64-unknown-none --target-dir target/nostd
else
  echo "SKIP: the x86_64-unknown-none target is not installed and 'rustup target add' failed (offline?)"
fi

step "real workloads: compare --trace on a committed trace; record and check the ground-truth workload where tracefs is usable (ci/trace.sh)"
ci/trace.sh

step "LKMM litmus tests under herd7 (ci/lkmm.sh; SKIP without herd7)"
ci/lkmm.sh

step "QEMU kernel: boot kernels/qemu on qemu-system-x86_64 -smp 4 (ci/qemu.sh)"
ci/qemu.sh

step "all passed"
