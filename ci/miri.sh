#!/usr/bin/env bash
# Miri on the std build's tests: the library's unit tests, tests/machine.rs
# (the simulated machine driven sequentially) and tests/miri_smoke.rs (every
# scheme on a 2-CPU machine with real threads, so that Miri's data-race
# detector and weak-memory emulation see real concurrency), each under
# several Miri seeds (the seed drives Miri's thread scheduler and its
# weak-memory choices).
#
# The bug_ switches are compiled out of this build (src/check/bugs.rs); ci/mutants.sh
# runs them under loom, shuttle and (with the bug-variants feature) Miri.
#
#   MIRI_SEEDS             seeds to loop over (default "0 1 2 3")
#   MIRI_SMOKE_SEEDS       extra seeds for miri_smoke only, as a Miri range
#                          a..b (default 4..32; empty to skip)
#   MIRI_MACHINE_PROPTESTS=1  also run tests/machine.rs's proptests again (seed 0
#                          only; ~6 min *each* under Miri, see below)
#
# Needs the nightly toolchain's miri component; installs it if it can, and
# prints SKIP (exit 0) if it cannot. Uses its own target dir, target/miri.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
step() { printf '\n=== %s (t=%ss)\n' "$*" "$((SECONDS - start))"; }

skip() {
  echo "SKIP: miri is not installed and could not be installed: $*"
  exit 0
}

step "toolchain"
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  out=$(rustup toolchain install nightly --profile minimal --component miri,rust-src 2>&1) \
    || skip "no nightly toolchain, and 'rustup toolchain install nightly' failed: $(tail -n 1 <<<"$out")"
fi
installed=$(rustup +nightly component list --installed 2>/dev/null || true)
if ! grep -q '^miri' <<<"$installed" || ! grep -q '^rust-src' <<<"$installed"; then
  out=$(rustup +nightly component add miri rust-src 2>&1) \
    || skip "'rustup +nightly component add miri rust-src' failed: $(tail -n 1 <<<"$out")"
fi
cargo +nightly miri --version
out=$(cargo +nightly miri setup 2>&1) \
  || skip "'cargo +nightly miri setup' failed: $(tail -n 3 <<<"$out")"

export CARGO_TARGET_DIR=target/miri
# machine.rs's proptests hard-code ProptestConfig::with_cases(300), which
# overrides PROPTEST_CASES; the variable is set anyway for when they honour it.
export PROPTEST_CASES=${PROPTEST_CASES:-4}
seeds=${MIRI_SEEDS:-0 1 2 3}
smoke_seeds=${MIRI_SMOKE_SEEDS-4..32}

# tests/machine.rs's *_matches_reference proptests run 4 cases each under
# Miri (cfg!(miri) in their ProptestConfig; 300 natively, ~330 s per test
# under Miri). MIRI_MACHINE_PROPTESTS=1 adds a run with PROPTEST_CASES cases.
machine_skip=()

# Miri flags common to every run. Isolation stays on; proptest's failure
# persistence calls getcwd(), which isolation refuses: make that an error
# return (proptest then persists nothing) instead of a Miri abort.
common="-Zmiri-strict-provenance -Zmiri-isolation-error=warn-nobacktrace"

logdir=$(mktemp -d)
summary=()
failed=0

# run NAME MIRIFLAGS CARGO-ARGS... -- TEST-ARGS...: one cargo miri test run;
# on a strict-provenance failure, retries with permissive provenance and says why.
run() {
  local name=$1 flags=$2; shift 2
  local log="$logdir/run.log" rc=0 t0=$SECONDS note=""
  step "miri: $name (MIRIFLAGS=\"$flags\")"
  MIRIFLAGS="$flags" cargo +nightly miri test "$@" >"$log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ] && grep -q -e 'strict provenance' -e 'with_exposed_provenance' \
    -e 'expose_provenance' -e 'integer-to-pointer cast' "$log"; then
    echo "strict provenance rejected an integer-to-pointer cast; retrying with -Zmiri-permissive-provenance:"
    grep -m 3 -e 'strict provenance' -e 'exposed_provenance' -e 'integer-to-pointer' "$log" || true
    flags=${flags/-Zmiri-strict-provenance/-Zmiri-permissive-provenance}
    note=" (permissive provenance: strict provenance failed, see above)"
    rc=0
    MIRIFLAGS="$flags" cargo +nightly miri test "$@" >"$log" 2>&1 || rc=$?
  fi
  local passed
  if [[ $flags == *many-seeds* ]]; then
    # The seeds run in parallel and their output interleaves: no counts.
    grep -E '^     Running|Undefined Behavior|FAILING SEED|^error' "$log" || true
    passed="every seed's tests passed"
  else
    grep -E '^test result|^     Running|Undefined Behavior|^error' "$log" || true
    passed="$(awk '/^test result/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^passed/) n += $i } END { print n + 0 }' "$log") tests passed"
  fi
  if [ "$rc" -eq 0 ]; then
    summary+=("PASS  $name: $passed, $((SECONDS - t0)) s$note")
  else
    echo "--- FAILED (exit $rc); last lines:"
    tail -n 60 "$log"
    summary+=("FAIL  $name: exit $rc, $((SECONDS - t0)) s$note")
    failed=1
  fi
}

step "build (cargo miri test --no-run)"
cargo +nightly miri test --lib --test machine --test miri_smoke --no-run 2>&1 | tail -n 2

for seed in $seeds; do
  flags="-Zmiri-seed=$seed $common"
  run "lib unit tests, seed $seed" "$flags" --lib
  run "machine (incl. 4-case proptests), seed $seed" "$flags" --test machine -- "${machine_skip[@]}"
  run "miri_smoke (7 schemes x 5 scenarios, 2 CPUs, real threads; hazard domain; TLB and walker machines), seed $seed" "$flags" --test miri_smoke
done

if [ -n "$smoke_seeds" ]; then
  # -Zmiri-many-seeds reruns the test binary once per seed in one Miri process.
  run "miri_smoke, seeds $smoke_seeds" "-Zmiri-many-seeds=$smoke_seeds $common" --test miri_smoke
fi

if [ "${MIRI_MACHINE_PROPTESTS:-0}" = 1 ]; then
  run "machine proptests (PROPTEST_CASES=$PROPTEST_CASES), seed 0" "-Zmiri-seed=0 $common" \
    --test machine -- _matches_reference
fi

step "summary (total $((SECONDS - start)) s)"
printf '%s\n' "${summary[@]}"
exit "$failed"
