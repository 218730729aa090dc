#!/usr/bin/env bash
# The mutation matrix: which checker kills which known-bad variant.
#
# Runs every loom test named bug_* (plus the tests that pin checker blindness,
# loom_blind_* and hazard's lazy_without_fences_still_safe) and every shuttle
# test named bug_*, and, where Miri is installed, the bug-variants probes of
# tests/miri_smoke.rs under Miri; writes the matrix to target/mutants.md and
# prints it; each run's full log is kept under target/mutants-logs/.
#
# A bug_ test is #[should_panic(expected = ...)]: `ok` means the checker
# KILLED the variant, `FAILED` means the variant survived (or the oracle's
# message changed). The script exits non-zero if any loom or shuttle test it
# ran FAILED (including a blindness pin: the docs then need updating), or if a
# suite did not run. The Miri column is informational and never fails it.
#
#   MUTANTS_MIRI=0            skip the Miri column
#   MUTANTS_MIRI_SEEDS=a..b   Miri seeds per probe (default 0..32)
#   MUTANTS_MIRI_TIMEOUT=s    wall-clock limit per probe (default 300)
#   LAZYMM_SHUTTLE_ITERS      shuttle iterations per scheduler (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
step() { printf '\n=== %s (t=%ss)\n' "$*" "$((SECONDS - start))"; }
out=target/mutants.md
logdir=target/mutants-logs   # every run's full log, kept for inspection
rm -rf "$logdir"
mkdir -p "$logdir"

# --- why a survivor survives (hand-maintained, keyed by variant name) -------
# Shown for every row where some checker does not kill the variant.
declare -A why=(
  [haphazard::no_wait]="shuttle: haphazard keeps std atomics under shuttle, which shuttle does not schedule, so the backend has no shuttle test (src/lazy/haphazard.rs); loom kills it with the library's internals on loom's atomics. Miri: no probe written for the library backends."
  [haphazard::trust_reclaim_count]="shuttle: haphazard keeps std atomics under shuttle (no shuttle test); loom kills it on crossing final drops, the library's internals included. Miri: no probe written for the library backends."
  [epoch::idle_is_quiescent]="shuttle: crossbeam-epoch keeps std atomics under shuttle (no shuttle test); loom kills it through crossbeam-epoch's own loom support (--cfg crossbeam_loom). Miri: no probe written for the library backends."
  [drop_before_last_use]=""
  [transfer_grabs]=""
  [hotplug_clears_cpumask]=""
  [rfc_v2_deposit_race]="shuttle: no shuttle test written for TaggedV2 (a rejected design, kept as a loom regression). Miri: a probabilistic kill (about 4 seeds in 32): one CPU's fixup must stall between its check and its deposit while the other leaves the mm, goes lazy on another and runs that mm's exit and fixup, a long stall for Miri's random preemption of real threads; loom finds it exhaustively at bound 4."
  [enter_store_relaxed]="shuttle: an ordering bug; shuttle treats every atomic as SeqCst and cannot see it, so there is no shuttle test."
  [unlazy_xchg_no_release]="shuttle: an ordering bug; shuttle treats every atomic as SeqCst and cannot see it, so there is no shuttle test."
  [cmpxchg_failure_relaxed]="shuttle: an ordering bug; shuttle treats every atomic as SeqCst and cannot see it, so there is no shuttle test."
  [check_relaxed]="shuttle: an ordering bug; shuttle treats every atomic as SeqCst and cannot see it, so there is no shuttle test."
  [no_drop_on_failed_cmpxchg]="shuttle: needs a preemption inside a two-instruction window (check..cmpxchg) that 1,000 PCT runs of 240-step workloads do not hit (tests/shuttle/tagged.rs); loom kills it."
  [unlazy_store_if_users]="shuttle: needs a preemption inside a two-instruction window (load..store) that 1,000 PCT runs of 240-step workloads do not hit (tests/shuttle/tagged.rs); loom kills it."
  [drop_on_successful_cmpxchg]=""
  [cmpxchg_success_relaxed]="loom: orders RMWs on one location by execution order, so the relaxed-success message-passing bug is invisible to it (src/lazy/tagged.rs docs; pinned by loom_blind_cmpxchg_success_relaxed). shuttle: an ordering bug, invisible to SeqCst atomics. Miri: the same limit as loom: its modification order is the execution order and an RMW reads the last store, so the remote drop never precedes the grab it pairs with."
  [drop_on_leave]=""
  [forget_on_init_mm]=""
  [switching_window]=""
  [no_publish_fence]="shuttle: a store-buffering fence bug; ordering, invisible to shuttle's SeqCst atomics. Killed only in the domain models (loom's, and the Miri probe's): in the lazy-mm use the owner's mm_users drop already orders the publish (see the next row)."
  [no_scan_fence]="shuttle: a store-buffering fence bug; ordering, invisible to shuttle's SeqCst atomics. Killed only in the domain models (loom's, and the Miri probe's): in the lazy-mm use the owner's mm_users drop already orders the publish (see the next row)."
  [no_revalidate]="shuttle: the domain variants are modelled only in the domain models (loom's, and the Miri probe's); tests/shuttle/hazard.rs runs the lazy-mm scheme only."
  [scan_no_wait]="shuttle: the domain variants are modelled only in the domain models (loom's, and the Miri probe's); tests/shuttle/hazard.rs runs the lazy-mm scheme only."
  [idle::rcu_mm_idle_is_quiescent]="Miri: no probe written for the idle-wait scenario; loom (tests/loom/idle.rs) and shuttle PCT (tests/shuttle/idle.rs) kill it."
  [nofence_relaxed_clear]="shuttle: an ordering bug (a release store weakened to relaxed); shuttle treats every atomic as SeqCst and cannot see it. Miri: no probe written for the fence-free scheme; loom kills it in exit_lazy_vs_final_drop."
  [nofence_relaxed_publish]="shuttle: an ordering bug (a release store weakened to relaxed); shuttle treats every atomic as SeqCst and cannot see it. Miri: no probe written for the fence-free scheme; loom kills it in exit_lazy_vs_final_drop."
  [lazy_without_fences]="Not a bug in this use, pinned as such: the publish happens before the owner's mm_users drop (a release RMW), so the fences are not what keeps the mm alive (src/lazy/hazard.rs docs). Pinned by loom's lazy_without_fences_still_safe; the Miri probe agrees."
  [sync_rmb]="shuttle: an ordering bug (a missing full barrier in a store-buffering pair); shuttle treats every atomic as SeqCst and cannot see it, so there is no shuttle test."
  [no_walker_fence]="shuttle: an ordering bug (a missing full barrier in a store-buffering pair); shuttle treats every atomic as SeqCst and cannot see it, so there is no shuttle test."
  [no_walker_fence_xchg]="shuttle: an ordering bug (a missing full barrier in a store-buffering pair); shuttle treats every atomic as SeqCst and cannot see it, so there is no shuttle test."
  [no_mb_when_bit_set]="shuttle: an ordering bug (a missing full barrier in a store-buffering pair); shuttle treats every atomic as SeqCst and cannot see it, so there is no shuttle test."
  [no_unlazy_mb]="shuttle: an ordering bug (a missing full barrier in a store-buffering pair); shuttle treats every atomic as SeqCst and cannot see it, so there is no shuttle test."
  [switching_not_flushed]="shuttle: PCT (depth 3, 1,000 runs of the 8-CPU TLB workload) does not hit the window between the switch's generation read and its loaded_mm store, so no shuttle test is kept; loom kills it exhaustively."
  [rcu_gp_one_short]="shuttle: no shuttle test written for this variant yet (the 8-CPU workloads run the correct protocol); loom kills it exhaustively. It needs a grace period running when the collapser takes its cookie."
  [gp_one_short]="shuttle: no shuttle test written for this variant yet (the 8-CPU workloads run the correct protocol); loom kills it exhaustively. It needs two final drops whose grace periods overlap."
  [no_wait]="shuttle: no shuttle test written for this variant yet (the 8-CPU workloads run the correct protocol); loom kills it exhaustively."
  [bool_flag]="shuttle: PCT (depth 3, 1,000 runs of the 8-CPU TLB workload) does not make a flush_pending on one PTL straddle a reclaim on another and then use the stale entry, so no shuttle test is kept; loom kills it exhaustively."
  [unlazy_ignores_gen]="shuttle: no shuttle test written for this variant yet (the 8-CPU workloads run the correct protocol); loom kills it exhaustively, and the QEMU kernel catches it on emulated hardware (ci/qemu.sh, bug=tlb_unlazy_ignores_gen)."
  [freed_tables_skips_lazy]="shuttle: no shuttle test written for this variant yet (the 8-CPU workloads run the correct protocol); loom kills it exhaustively."
  [ldt_skips_lazy]="shuttle: no shuttle test written for this variant yet (the 8-CPU workloads run the correct protocol); loom kills it exhaustively."
  [quiescent_before_load]="shuttle: 1,000 PCT runs of the 8-CPU grace-period workload do not preempt a CPU between its early quiescent state and its CR3 load while another CPU ends the grace period; loom kills it on harness::final_drop_elsewhere with visible_loads. Miri: no probe written."
  [rcu_callback_gp_one_short]="shuttle: no shuttle test written for this variant (the callback workload runs the correct protocol and no_wait); loom kills it exhaustively."
  [no_recheck_on_relock]="shuttle: PCT (depth 3, 1,000 runs of the 8-CPU TLB workload) does not place a reclaim inside madvise's dropped-PTL window, so no shuttle test is kept; loom kills it exhaustively."
)
# The LKMM litmus twin of each ordering variant (lkmm/, ci/lkmm.sh): herd7's
# verdict on it is the LKMM column when HERD7 and LKMM_DIR are set.
declare -A lkmm_twin=(
  [check_relaxed]=tagged-check-acquire+bug-check-relaxed
  [cmpxchg_failure_relaxed]=tagged-failed-cmpxchg-ordered+bug-cmpxchg-failure-relaxed
  [enter_store_relaxed]=tagged-enter-store+bug-enter-store-relaxed
  [unlazy_xchg_no_release]=tagged-unlazy-release+bug-unlazy-xchg-no-release
  [cmpxchg_success_relaxed]=tagged-cmpxchg-success-release+bug-cmpxchg-success-relaxed
  [no_publish_fence]=hazard-protect-vs-scan+bug-no-publish-fence
  [no_scan_fence]=hazard-protect-vs-scan+bug-no-scan-fence
  [nofence_relaxed_clear]=hazard-clear-vs-scan+bug-relaxed-clear
  [nofence_relaxed_publish]=hazard-nofence-republish+bug-relaxed-publish
  [lazy_without_fences]=hazard-lazy-publish-seen
  [switching_window]=loaded-mm-switch-release+bug-switching-window
  [no_walker_fence]=walk-begin-vs-sync+bug-no-walker-fence
  [no_walker_fence_xchg]=walk-begin-xchg-vs-sync+bug-no-walker-fence
  [sync_rmb]=walk-begin-vs-sync+bug-sync-rmb
  [no_mb_when_bit_set]=tlbgen-switch-bit-set+bug-no-mb-when-bit-set
  [no_unlazy_mb]=tlbgen-unlazy-vs-flush+bug-no-unlazy-mb
  [bool_flag]=batched-counter-keeps-set+bug-bool-flag
  [idle_is_quiescent]=rcu-mm-idle-enter-release+bug-idle-is-quiescent
  [rcu_mm_idle_is_quiescent]=rcu-mm-idle-enter-release+bug-idle-is-quiescent
)
# lkmm_cell VARIANT: the LKMM column (informational: never fails the run).
lkmm_cell() {
  local t=${lkmm_twin[$1]:-}
  [ -n "$t" ] || { echo "no twin (not an ordering bug)"; return; }
  if [ -z "${HERD7:-}" ] || [ -z "${LKMM_DIR:-}" ]; then
    echo "\`lkmm/$t\` (herd7 not run)"; return
  fi
  local inc=(-I "$LKMM_DIR") v
  [ -n "${HERD7_LIBDIR:-}" ] && inc+=(-I "$HERD7_LIBDIR")
  v=$(cd lkmm && "$HERD7" "${inc[@]}" -conf "$LKMM_DIR/linux-kernel.cfg" "$t.litmus" 2>&1 | awk '/^Observation/ {print $3}')
  case $v in
    Sometimes) echo "killed (\`$t\`: Sometimes)" ;;
    Never) echo "not killed (\`$t\`: Never)" ;;
    *) echo "herd7 failed on \`$t\`" ;;
  esac
}

# Protocols in the README's order; others follow in the order seen.
order=(refcount shootdown tagged cached hazard loaded)

# --- run the suites ----------------------------------------------------------
failed=0
declare -A loom shuttle miri seen_proto
rows=()     # "proto::key" in first-seen order
other=()    # matched tests that are neither bug_ tests nor pins

add_row() {
  local key=$1 proto=${1%%::*}
  if [ -z "${seen_row[$key]:-}" ]; then
    seen_row[$key]=1
    rows+=("$key")
  fi
  seen_proto[$proto]=1
}
declare -A seen_row

# parse TOOL LOG: fills the tool's cells from `test <path> ... ok|FAILED` lines.
parse() {
  local tool=$1 log=$2 n=0 path res name proto key cell
  while read -r path res; do
    n=$((n + 1))
    name=${path##*::}
    proto=${path%::*}
    proto=${proto##*::}
    case $name in
      bug_*)
        key="$proto::${name#bug_}"
        if [ "$res" = ok ]; then cell=killed; else cell="NOT KILLED (test FAILED)"; failed=1; fi
        ;;
      loom_blind_*)
        key="$proto::${name#loom_blind_}"
        if [ "$res" = ok ]; then
          cell="not killed (blindness pinned by $name)"
        else
          cell="$name FAILED (loom now kills it? update the docs)"; failed=1
        fi
        ;;
      lazy_without_fences_still_safe)
        key="$proto::lazy_without_fences"
        if [ "$res" = ok ]; then
          cell="not killed (safe in this use; pinned by $name)"
        else
          cell="$name FAILED (update src/lazy/hazard.rs docs)"; failed=1
        fi
        ;;
      *)
        other+=("$tool: $path ... $res")
        [ "$res" = ok ] || failed=1
        continue
        ;;
    esac
    add_row "$key"
    if [ "$tool" = loom ]; then loom[$key]=$cell; else shuttle[$key]=$cell; fi
  done < <(sed -nE 's/^test ([^ ]+)( - should panic)? \.\.\. (ok|FAILED)$/\1 \3/p' "$log")
  if [ "$n" -eq 0 ]; then
    echo "ERROR: the $tool run reported no tests; last lines of its log:"
    tail -n 40 "$log"
    failed=1
  fi
}

# suite TOOL CMD...: runs a suite, prints its test lines and timing, parses it.
suite() {
  local tool=$1; shift
  local log="$logdir/$tool.log" rc=0 t0=$SECONDS
  "$@" >"$log" 2>&1 || rc=$?
  grep -E '^test |^test result' "$log" || true
  echo "($tool: exit $rc, $((SECONDS - t0)) s)"
  times+=("$tool: $((SECONDS - t0)) s (exit $rc)")
  parse "$tool" "$log"
}
times=()

step "loom: bug_ variants and blindness pins"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom suite loom \
  cargo test --release --test loom -- bug_ loom_blind lazy_without_fences --test-threads=1

step "loom: epoch_mm's bug_ variants through crossbeam-epoch's loom support"
RUSTFLAGS="--cfg loom --cfg crossbeam_loom" CARGO_TARGET_DIR=target/loom-epoch suite loom \
  cargo test --release --features epoch-loom --test loom -- epoch::bug_ --test-threads=1

step "shuttle: bug_ variants (LAZYMM_SHUTTLE_ITERS=${LAZYMM_SHUTTLE_ITERS:-1000})"
RUSTFLAGS="--cfg lazymm_shuttle" CARGO_TARGET_DIR=target/shuttle suite shuttle \
  cargo test --release --test shuttle -- bug_ --test-threads=1

# --- Miri: the probes of tests/miri_smoke.rs ---------------------------------
# The std build compiles the bug_ switches out; the test-only `bug-variants`
# feature compiles them in, and tests/miri_smoke.rs's `probe` module runs each
# variant on the 2-CPU machine with real threads. A probe that trips the
# oracle (panic) or Miri (data race, UB) kills the variant; one that passes
# every seed does not.
miri_col="n/a"
miri_seeds=${MUTANTS_MIRI_SEEDS:-0..32}
miri_timeout=${MUTANTS_MIRI_TIMEOUT:-300}
if [ "${MUTANTS_MIRI:-1}" = 0 ]; then
  miri_col="n/a (MUTANTS_MIRI=0)"
elif ! rustup +nightly component list --installed 2>/dev/null | grep -q '^miri'; then
  miri_col="n/a (miri is not installed; ci/miri.sh installs it)"
  echo "SKIP Miri column: the nightly miri component is not installed (ci/miri.sh installs it)"
else
  step "miri: bug-variants probes (seeds $miri_seeds, ${miri_timeout} s limit each)"
  t0=$SECONDS
  export CARGO_TARGET_DIR=target/miri
  cargo +nightly miri setup >/dev/null 2>&1
  mflags="-Zmiri-strict-provenance -Zmiri-isolation-error=warn-nobacktrace"
  if ! cargo +nightly miri test --features bug-variants --test miri_smoke --no-run \
    >"$logdir/miri-build.log" 2>&1; then
    tail -n 30 "$logdir/miri-build.log"
    miri_col="n/a (the bug-variants build failed under Miri; see above)"
  else
    mapfile -t probes < <(MIRIFLAGS="$mflags" cargo +nightly miri test --features bug-variants \
      --test miri_smoke -- --ignored --list 2>/dev/null | sed -nE 's/^(probe::[^:]+::[a-z0-9_]+): test$/\1/p')
    for p in "${probes[@]}"; do
      name=${p##*::}
      proto=${p#probe::}; proto=${proto%%::*}
      case $name in
        bug_*) key="$proto::${name#bug_}" ;;
        lazy_without_fences_still_safe) key="$proto::lazy_without_fences" ;;
        *) continue ;;
      esac
      log="$logdir/miri-$proto-$name.log"; rc=0; t1=$SECONDS
      timeout "$miri_timeout" env MIRIFLAGS="-Zmiri-many-seeds=$miri_seeds $mflags" \
        cargo +nightly miri test --features bug-variants --test miri_smoke -- \
        --ignored --exact "$p" --nocapture >"$log" 2>&1 || rc=$?
      seed=$(sed -nE 's/^FAILING SEED: ([0-9]+).*/\1/p' "$log" | head -n 1)
      if [ "$rc" -eq 0 ]; then
        cell="not killed (seeds $miri_seeds)"
      elif [ "$rc" -eq 124 ]; then
        cell="inconclusive (timed out after ${miri_timeout} s)"
      elif grep -q 'Undefined Behavior: Data race' "$log"; then
        cell="killed (Miri: data race, seed ${seed:-?})"
      elif ub=$(grep -m 1 -oE 'Undefined Behavior: .{0,50}' "$log"); then
        ub=${ub//|/\\|}
        cell="killed (Miri: ${ub#Undefined Behavior: }, seed ${seed:-?})"
      elif msg=$(grep -m 1 -A 1 'panicked at' "$log" | tail -n 1); [ -n "$msg" ]; then
        msg=${msg//|/\\|}
        cell="killed (panic: ${msg:0:90}, seed ${seed:-?})"
      elif grep -q 'deadlock' "$log"; then
        cell="killed (Miri: deadlock, seed ${seed:-?})"
      else
        cell="failed (exit $rc; see the log)"
        tail -n 20 "$log"
      fi
      miri[$key]=$cell
      add_row "$key"
      printf '%-55s %-60s %3s s\n' "$p" "$cell" "$((SECONDS - t1))"
    done
    miri_col=""
  fi
  times+=("miri: $((SECONDS - t0)) s")
  unset CARGO_TARGET_DIR
fi

# --- the matrix ---------------------------------------------------------------
protos=("${order[@]}")
for p in "${!seen_proto[@]}"; do
  [[ " ${order[*]} " == *" $p "* ]] || protos+=("$p")
done

{
  echo "# Mutation matrix"
  echo
  echo "Generated by \`ci/mutants.sh\`. killed: the checker fails the variant;"
  echo "not killed: it survives; no test: no test of that checker exists."
  echo "loom: \`--test loom -- bug_ loom_blind lazy_without_fences\`; shuttle:"
  echo "\`--test shuttle -- bug_\` (LAZYMM_SHUTTLE_ITERS=${LAZYMM_SHUTTLE_ITERS:-1000});"
  if [ -z "$miri_col" ]; then
    echo "Miri: the \`probe\` tests of \`tests/miri_smoke.rs\` (std build with the"
    echo "\`bug-variants\` feature, real threads, 2 CPUs), seeds $miri_seeds."
  fi
  echo
  echo "LKMM: herd7 on the variant's litmus twin in \`lkmm/\` (ci/lkmm.sh; informational,"
  echo "not counted in the survivor column: some orderings are C11-only, see lkmm/README.md)."
  echo
  echo "| protocol | variant | loom | shuttle | Miri | LKMM | why a survivor survives |"
  echo "|---|---|---|---|---|---|---|"
  for proto in "${protos[@]}"; do
    for key in "${rows[@]}"; do
      [ "${key%%::*}" = "$proto" ] || continue
      v=${key#*::}
      l=${loom[$key]:-no test}
      s=${shuttle[$key]:-no test}
      m=${miri_col:-${miri[$key]:-no probe}}
      # A survivor: some checker that ran does not kill it (or has no test).
      w="" survivor=0
      for c in "$l" "$s" "$m"; do
        [[ $c == killed* || $c == n/a* ]] || survivor=1
      done
      if [ "$survivor" = 1 ]; then
        w=${why[$key]:-${why[$v]:-"(no entry in ci/mutants.sh's why table)"}}
      fi
      name=$v
      [ "$v" = lazy_without_fences ] && name="no_publish_fence + no_scan_fence, lazy-mm use (HazardLazy)"
      echo "| $proto | \`$name\` | $l | $s | $m | $(lkmm_cell "$v") | $w |"
    done
  done
  if [ "${#other[@]}" -gt 0 ]; then
    echo
    echo "Other tests the filters matched:"
    echo
    for o in "${other[@]}"; do echo "* \`${o%% ... *}\` ... ${o##* ... }"; done
  fi
} >"$out"

step "matrix ($out)"
cat "$out"

# One summary line per checker: rows it kills, out of the rows it has a test for.
summary() {
  local tool=$1 k=0 t=0 key c; shift
  local -n cells=$1
  for key in "${rows[@]}"; do
    c=${cells[$key]:-}
    [ -n "$c" ] || continue
    t=$((t + 1))
    [[ $c == killed* ]] && k=$((k + 1))
  done
  echo "$tool: kills $k of the $t rows it has a test for (${#rows[@]} rows)"
}
echo
summary loom loom
summary shuttle shuttle
if [ -z "$miri_col" ]; then summary Miri miri; else echo "Miri: $miri_col"; fi

step "done (total $((SECONDS - start)) s)"
printf '%s\n' "${times[@]}"
if [ "$failed" -ne 0 ]; then
  echo "FAILED: see above: a loom or shuttle test FAILED (a variant survived, its message changed, or a pin broke), or a suite did not run"
fi
exit "$failed"
