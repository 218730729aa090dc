//! Lazy TLB generations and batched flush pending on the TLB machine under
//! shuttle at 8 CPUs: two reclaimers, two CPUs mprotecting and madvising,
//! four CPUs switching between the mm, kernel threads and other processes
//! while flushing, freeing page tables and changing the LDT.

use crate::common::{run_bug, run_schedulers};
use lazymm::check::model::tlb::{TlbMachine, TlbOp, TlbScenario};
use lazymm::check::sync::thread::Arc;
use lazymm::tlb::batched::{self, FlushBatched};
use lazymm::tlb::tlbgen::{Bug, LazyTlb};
use TlbOp::*;

const CPUS: usize = 8;

fn scenario() -> TlbScenario {
    let reclaimer = |i: usize| {
        vec![
            Reclaim(i),
            Reclaim(1 - i),
            UnmapFlush,
            Reclaim(i),
            UnmapFlush,
        ]
    };
    let changer = |i: usize| {
        vec![
            User,
            Use,
            Mprotect(i),
            Use,
            Madvise(1 - i),
            Use,
            Kthread,
            User,
            Use,
            Mprotect(1 - i),
            Use,
        ]
    };
    let switcher = |k: usize| {
        let mut s = vec![User, Use, Kthread, User, Use, Away, User, Use];
        s.push(match k {
            0 => Flush {
                freed_tables: false,
            },
            1 => Flush { freed_tables: true },
            2 => Ldt,
            _ => Flush { freed_tables: true },
        });
        // Lazy, perhaps shot down by another switcher's freed-tables
        // flush, then back in the mm, twice.
        s.extend([Kthread, Kthread, User, Use, Kthread, Kthread, User, Use]);
        s
    };
    TlbScenario::new(vec![
        reclaimer(0),
        reclaimer(1),
        changer(0),
        changer(1),
        switcher(0),
        switcher(1),
        switcher(2),
        switcher(3),
    ])
}

fn run(name: &str, make: fn() -> TlbMachine<CPUS>) {
    run_schedulers(&format!("tlb/{name}"), move || {
        let m = Arc::new(make());
        TlbMachine::run(&m);
        assert!(m.stats().flushes > 0, "the workload flushes");
    });
}

#[test]
fn tlb_8_cpus() {
    run("correct", || TlbMachine::correct(scenario()));
}

/// A known-bad variant under PCT (depth 3) on the 8-CPU workload.
fn bug(lazy: fn() -> LazyTlb<CPUS>, batched: fn() -> FlushBatched) {
    run_bug(move || {
        TlbMachine::run(&Arc::new(TlbMachine::<CPUS>::new(
            scenario(),
            lazy(),
            batched(),
        )))
    });
}

#[test]
#[should_panic(expected = "stale TLB entry")]
fn bug_freed_tables_skips_lazy() {
    bug(
        || LazyTlb::with_bug(Bug::FreedTablesSkipsLazy),
        FlushBatched::new,
    );
}

#[test]
#[should_panic(expected = "stale LDT")]
fn bug_ldt_skips_lazy() {
    bug(|| LazyTlb::with_bug(Bug::LdtSkipsLazy), FlushBatched::new);
}

/// Gorman's race at scale: PCT finds the missing `flush_tlb_batched_pending()`.
#[test]
#[should_panic(expected = "stale TLB entry")]
fn bug_no_flush_pending() {
    bug(LazyTlb::new, || {
        FlushBatched::with_bug(batched::Bug::NoFlushPending)
    });
}

/// What a shot-down CPU remembers: the workload's switchers return to the
/// mm after other switchers' freed-tables flushes, so PCT finds a handler
/// that records the flush as done for the lazy CPU's context.
#[test]
#[should_panic(expected = "stale TLB entry")]
fn bug_shot_records_gen() {
    run_bug(|| {
        TlbMachine::run(&Arc::new(
            TlbMachine::<CPUS>::correct(scenario())
                .with_machine_bug(lazymm::check::model::tlb::TlbMachineBug::ShotRecordsGen),
        ))
    });
}

/// Three flushers of the same mm, twice each, while a fourth CPU runs the
/// mm and uses it: enough increments for a lost one to take the
/// generation *back* below what a CPU already flushed to, so a later flush
/// finds that CPU "up to date" and skips it. Beyond loom's bound here (a
/// three-CPU scenario at bound 2 did not finish in 15 minutes); PCT finds
/// it at once.
fn racing_flushers() -> TlbScenario {
    let flusher = || {
        vec![
            User,
            Flush {
                freed_tables: false,
            },
            Use,
            Flush {
                freed_tables: false,
            },
            Use,
        ]
    };
    TlbScenario::new(vec![
        flusher(),
        flusher(),
        flusher(),
        vec![User, Use, Use, Use, Use, Use, Use],
    ])
}

/// PCT as `bug_gen_inc_lost` runs it (depth 3, the suite's seed, 20,000
/// schedules).
fn racing_flushers_pct(make: fn() -> TlbMachine<4>) {
    use shuttle::scheduler::PctScheduler;
    let pct = PctScheduler::new_from_seed(0xbad, 3, 20_000);
    shuttle::Runner::new(pct, crate::common::config()).run(move || {
        TlbMachine::run(&Arc::new(make()));
    });
}

#[test]
fn racing_flushers_passes() {
    run_schedulers("tlb/racing_flushers", || {
        TlbMachine::run(&Arc::new(TlbMachine::<4>::correct(racing_flushers())));
    });
    // The schedules that reject `GenIncLost` below, with the correct generation.
    racing_flushers_pct(|| TlbMachine::correct(racing_flushers()));
}

/// A generation bumped by a load and a store (`tlbgen::Bug::GenIncLost`):
/// PCT (depth 3, the suite's seed) needs about 2,400 schedules, so this
/// one runs up to 20,000 whatever `LAZYMM_SHUTTLE_ITERS` says.
#[test]
#[should_panic(expected = "stale TLB entry")]
fn bug_gen_inc_lost() {
    racing_flushers_pct(|| {
        TlbMachine::correct(racing_flushers())
            .with_gen(lazymm::tlb::tlbgen::TlbGen::with_bug(Bug::GenIncLost))
    });
}
