//! The TLB scenarios go on after the race, and play their roles mirrored.
//!
//! **Tails.** Each race of `tlb.rs` with a tail: the CPUs the race touched
//! keep running — they use the mm again, go lazy and come back, flush it
//! themselves — so a bug in what a CPU *remembers* after a flush (its
//! flushed generation, its cached page tables, its LDT) fails as a stale
//! entry. `tlb.rs` has the first two (`unlazy_vs_flush_tail`,
//! `shot_while_lazy_then_back`) and `TlbMachineBug::ShotRecordsGen`, which
//! only a tail rejects. The 2-CPU tails run one preemption below their
//! race's bound (a tail doubles a script; `ci/deep.sh` adds one to every
//! bound, which brings them to the race's own).
//!
//! Each tail is written to meet another CPU: loom's partial-order reduction
//! explores a step only against the steps it conflicts with, so a tail
//! that touches nothing another CPU reads adds no interleaving (the first
//! three-CPU tail, the flusher alone going lazy and back after its flush,
//! explored the same 9,579 executions as the race). `bug_no_unlazy_mb_in_switch_back_tail`
//! shows a tail's own interaction explored: its victim is the CPU running
//! the tail, in a race that passes the same variant without it.
//!
//! **Mirrors.** In `tlb.rs`'s flush races (unlazy, switch back, freed
//! tables, LDT, three CPUs) the flusher is the highest CPU, so a flush path
//! that mishandles a target below itself is only half explored. The
//! mirrored races swap the roles (the flusher is cpu0); the tlbgen bugs of
//! each race are rejected mirrored too. (The reclaim races already flush
//! from both sides: the reclaimer is cpu0, the mprotecting CPU cpu1.)

use crate::tlb::{
    check, correct, lazy_vs_freed_tables, machine_bug, reclaim_vs_madvise, reclaim_vs_mprotect,
    split_ptl, switch_back_vs_flush, three_cpus, tlb_bug, unlazy_vs_flush, unlazy_vs_ldt,
    BATCHED_BOUND, TLB_BOUND, TLB_THREE_CPU_BOUND,
};
use lazymm::check::model::tlb::{TlbMachineBug, TlbOp, TlbScenario};
use lazymm::tlb::tlbgen::Bug;
use TlbOp::*;

/// Preemptions below the race's own bound the tails run at.
const TAIL_BELOW: usize = 1;

/// cpu0, back in the mm after its switch away, mprotects a page itself and
/// uses memory; the flusher caches it, goes lazy, comes back and uses it.
fn switch_back_vs_flush_tail() -> TlbScenario {
    switch_back_vs_flush().then(vec![vec![Mprotect(1), Use], vec![Use, Kthread, User, Use]])
}

/// The flusher of the freed tables mprotects and uses memory; the lazy CPU
/// (shot down or not) runs the mm again.
fn lazy_vs_freed_tables_tail() -> TlbScenario {
    lazy_vs_freed_tables().then(vec![vec![User, Use], vec![Mprotect(1), Use]])
}

/// The unlazied CPU changes the LDT itself; the first changer goes lazy and
/// comes back (its LDT must be the new one).
fn unlazy_vs_ldt_tail() -> TlbScenario {
    unlazy_vs_ldt().then(vec![vec![Ldt, Use], vec![Use, Kthread, User, Use]])
}

/// The reclaimer runs the mm after its batch flushed, caches the page it
/// did not reclaim (PTE 1), goes lazy and comes back, while the other CPU
/// mprotects that page: its unlazy must catch up with that flush.
fn reclaim_vs_mprotect_tail() -> TlbScenario {
    reclaim_vs_mprotect().then(vec![
        vec![User, Use, Kthread, User, Use],
        vec![Mprotect(1), Use],
    ])
}

/// As above, the other CPU madvising PTE 1.
fn reclaim_vs_madvise_tail() -> TlbScenario {
    reclaim_vs_madvise().then(vec![
        vec![User, Use, Kthread, User, Use],
        vec![Madvise(1), Use],
    ])
}

/// Split PTLs: both PTEs are reclaimed (not present: no translation can go
/// stale), so the tail frees page tables — the reclaimer goes lazy and
/// comes back while the other CPU's freed-tables flush must shoot it.
fn split_ptl_tail() -> TlbScenario {
    split_ptl().then(vec![
        vec![Kthread, User, Use],
        vec![Flush { freed_tables: true }, Use],
    ])
}

/// Three CPUs: the unlazied CPU mprotects a page itself (IPIing the
/// others), while the flusher caches it, goes lazy and comes back.
fn three_cpus_tail() -> TlbScenario {
    three_cpus().then(vec![
        vec![Mprotect(1), Use],
        vec![],
        vec![Use, Kthread, User, Use],
    ])
}

#[test]
fn switch_back_vs_flush_tail_passes() {
    check(
        "switch_back_vs_flush_tail",
        TLB_BOUND - TAIL_BELOW,
        correct(switch_back_vs_flush_tail),
    );
}

#[test]
fn lazy_vs_freed_tables_tail_passes() {
    check(
        "lazy_vs_freed_tables_tail",
        TLB_BOUND - TAIL_BELOW,
        correct(lazy_vs_freed_tables_tail),
    );
}

#[test]
fn unlazy_vs_ldt_tail_passes() {
    check(
        "unlazy_vs_ldt_tail",
        TLB_BOUND - TAIL_BELOW,
        correct(unlazy_vs_ldt_tail),
    );
}

#[test]
fn reclaim_vs_mprotect_tail_passes() {
    check(
        "reclaim_vs_mprotect_tail",
        BATCHED_BOUND - TAIL_BELOW,
        correct(reclaim_vs_mprotect_tail),
    );
}

#[test]
fn reclaim_vs_madvise_tail_passes() {
    check(
        "reclaim_vs_madvise_tail",
        BATCHED_BOUND - TAIL_BELOW,
        correct(reclaim_vs_madvise_tail),
    );
}

#[test]
fn split_ptl_tail_passes() {
    check(
        "split_ptl_tail",
        BATCHED_BOUND - TAIL_BELOW,
        correct(split_ptl_tail),
    );
}

#[test]
fn three_cpus_tail_passes() {
    check(
        "three_cpus_tail",
        TLB_THREE_CPU_BOUND,
        correct(three_cpus_tail),
    );
}

fn unlazy_vs_flush_mirrored() -> TlbScenario {
    unlazy_vs_flush().swap_cpus(0, 1)
}
fn switch_back_vs_flush_mirrored() -> TlbScenario {
    switch_back_vs_flush().swap_cpus(0, 1)
}
fn lazy_vs_freed_tables_mirrored() -> TlbScenario {
    lazy_vs_freed_tables().swap_cpus(0, 1)
}
fn unlazy_vs_ldt_mirrored() -> TlbScenario {
    unlazy_vs_ldt().swap_cpus(0, 1)
}
/// Three CPUs with the flusher on cpu0.
fn three_cpus_flusher_first() -> TlbScenario {
    three_cpus().swap_cpus(0, 2)
}

#[test]
fn mirrored_races_pass() {
    for (name, s) in [
        (
            "unlazy_vs_flush",
            unlazy_vs_flush_mirrored as fn() -> TlbScenario,
        ),
        ("switch_back_vs_flush", switch_back_vs_flush_mirrored),
        ("lazy_vs_freed_tables", lazy_vs_freed_tables_mirrored),
        ("unlazy_vs_ldt", unlazy_vs_ldt_mirrored),
    ] {
        check(&format!("{name}_mirrored"), TLB_BOUND, correct(s));
    }
    check(
        "three_cpus_flusher_first",
        TLB_THREE_CPU_BOUND,
        correct(three_cpus_flusher_first),
    );
}

/// Each tlbgen bug is rejected with its race mirrored (the mirrors can
/// fail).
#[test]
fn mirrored_races_reject_the_tlbgen_bugs() {
    for (s, bug, expect) in [
        (
            switch_back_vs_flush_mirrored as fn() -> TlbScenario,
            Bug::NoMbWhenBitSet,
            "stale TLB entry",
        ),
        (unlazy_vs_flush_mirrored, Bug::NoUnlazyMb, "stale TLB entry"),
        (
            unlazy_vs_flush_mirrored,
            Bug::UnlazyIgnoresGen,
            "stale TLB entry",
        ),
        (
            switch_back_vs_flush_mirrored,
            Bug::SwitchingNotFlushed,
            "stale TLB entry",
        ),
        (
            lazy_vs_freed_tables_mirrored,
            Bug::FreedTablesSkipsLazy,
            "stale TLB entry",
        ),
        (unlazy_vs_ldt_mirrored, Bug::LdtSkipsLazy, "stale LDT"),
    ] {
        let r = std::panic::catch_unwind(|| {
            check(&format!("{bug:?}_mirrored"), TLB_BOUND, tlb_bug(s, bug))
        });
        let msg = match r {
            Ok(()) => panic!("tlbgen::Bug::{bug:?} passed its mirrored race"),
            Err(e) => e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        };
        assert!(msg.contains(expect), "{bug:?}: {msg}");
    }
}

/// The freed-tables race with its tail rejects the machine bug that
/// `tlb.rs`'s race without a tail lets through.
#[test]
#[should_panic(expected = "stale TLB entry")]
fn bug_shot_records_gen_in_freed_tables_tail() {
    check(
        "bug_shot_records_gen/lazy_vs_freed_tables_tail",
        TLB_BOUND - TAIL_BELOW,
        machine_bug(lazy_vs_freed_tables_tail, TlbMachineBug::ShotRecordsGen),
    );
}

/// A tail's own race: `switch_back_vs_flush` never unlazies (cpu0 switches
/// away to another process, not to a kernel thread), so a missing unlazy
/// barrier passes it; its tail has cpu1 unlazy while cpu0 mprotects, and
/// cpu1 — the CPU running the tail — keeps the stale entry.
#[test]
#[should_panic(expected = "stale TLB entry: cpu1")]
fn bug_no_unlazy_mb_in_switch_back_tail() {
    check(
        "bug_no_unlazy_mb/switch_back_vs_flush_tail",
        TLB_BOUND - TAIL_BELOW,
        tlb_bug(switch_back_vs_flush_tail, Bug::NoUnlazyMb),
    );
}

/// The pin for the test above: the race without its tail passes, at the
/// same bound (and at the race's own, bound 3: 102,046 executions).
#[test]
fn bug_no_unlazy_mb_passes_switch_back_without_tail() {
    check(
        "bug_no_unlazy_mb/switch_back_vs_flush",
        TLB_BOUND - TAIL_BELOW,
        tlb_bug(switch_back_vs_flush, Bug::NoUnlazyMb),
    );
}
