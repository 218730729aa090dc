//! Bring your own scheme: check a [`LazyMm`] written
//! outside the crate with loom and shuttle, one call each.
//!
//! A scheme is anything that implements `LazyMm` for every
//! [`Kernel`](crate::lazy::Kernel) (`impl LazyMm for
//! MyScheme`). The harness runs it on the simulated
//! [`Machine`], whose oracle panics on a use-after-free, a double
//! free, a negative count, or a leak (see the [`model`](super) docs), under
//! the same checkers and the same configuration as the crate's own schemes:
//!
//! | call | build | what it runs |
//! |---|---|---|
//! | `loom_check_standard(make)` | `RUSTFLAGS="--cfg loom"` | every interleaving of the six standard scenarios ([`standard_scenarios`]), 2-CPU ones at preemption bound [`LOOM_BOUND_2_CPUS`], the 3-CPU one at [`LOOM_BOUND_3_CPUS`] |
//! | `loom_check(bound, make, scenario)` | `RUSTFLAGS="--cfg loom"` | one scenario of your own at a bound of your choice |
//! | `shuttle_check(make)` | `RUSTFLAGS="--cfg lazymm_shuttle"` | 8 CPUs, 4 mms, fresh random workloads of 240+ operations; PCT at depths 2 and 3 and the random scheduler, 1,000 iterations each, fixed seeds |
//!
//! `LoomCheck` and `ShuttleCheck` (builders) change the defaults: the bound,
//! loom's branch limit, the workload, the iterations, the schedulers, shuttle's
//! `Config` (to persist failing schedules), or a known bug of the machine's
//! own kernel code. The checker functions and types exist only in the
//! matching checker build (`loom_*` and `LoomCheck` under `--cfg loom`,
//! `shuttle_*` and `ShuttleCheck` under `--cfg lazymm_shuttle`; `cargo doc`
//! shows both); the scenarios, the bounds and [`explore`] exist in every
//! build with the `model` feature.
//!
//! loom honours its own environment variables as in any loom test
//! (`LOOM_MAX_PREEMPTIONS` overrides the bound, `LOOM_LOG=trace` prints
//! every step of every execution, the failing one last). loom's checkpoint files are not offered: they need a
//! loom feature this crate does not enable, and loom needs none to replay —
//! it is exhaustive and deterministic, so rerunning the same test fails on
//! the same execution.
//!
//! # Your own kernel code under loom: the branch limit
//!
//! loom bounds the branches (scheduling points) of one execution: 1,000 by
//! loom's default, `LoomCheck::MAX_BRANCHES` (100,000) in `LoomCheck`,
//! whose idle CPUs wait while others work. Kernel code run under your own
//! loom model (through [`crate::lazymm_static!`]) meets the default first,
//! and a wait loop that *writes* on every round never ends within any limit
//! under loom: each `swap` or `fetch_add` is a new branch, and loom keeps
//! scheduling the spinner. The pattern that works is the kernel's own
//! test-and-test-and-set: load until the load says the write can succeed,
//! then write once; yield with [`spin_loop`](crate::check::sync::spin_loop)
//! between rounds (a loom yield). An IPI handler that serves requests in a
//! loop reads the pending word, then takes it with one `swap`. Raise the
//! limit only for executions that are long, not for spinning ones:
//! `LoomCheck::new(bound).max_branches(n)`; [`explore`] runs your own code
//! with `LoomCheck::MAX_BRANCHES` already. When loom stops
//! on the limit inside `LoomCheck::run`, the panic says so after loom's own
//! message, with this advice.
//!
//! # When a check fails
//!
//! It panics with the oracle's line first (`"use-after-free of mm0: ..."`,
//! `"leak: mm0 was never freed ..."`, so a known-bad scheme is a
//! `#[should_panic(expected = "...")]` test), then a report: the scheme's
//! `NAME`, the scenario's name, the hooks the failing CPU was inside
//! (`"on cpu0: mmdrop_lazy_tlb > final_drop"`), the mm's last events (which CPU
//! loaded it, went lazy, grabbed, dropped, freed it), and one replay line:
//!
//! * loom: the command that reruns the test (`RUSTFLAGS="--cfg loom"
//!   cargo test --release --test <target> -- <test> --exact --nocapture`);
//! * shuttle: a token naming the failing execution — its scheduler, seed
//!   and iteration, `pct:2:0x1a2b0002:137` — as `LAZYMM_SHUTTLE_REPLAY=<token>`
//!   before the same command: with that variable set, `ShuttleCheck::run`
//!   (and so `shuttle_check`) replays that execution instead of searching
//!   (shuttle's schedulers are deterministic from their seed, so it reruns
//!   that scheduler up to the failing iteration). In code,
//!   `ShuttleCheck::replay(make, token)` does the same; your crate needs no
//!   shuttle dependency for either. (Shuttle also prints its own schedule
//!   string on stderr.)
//!
//! # Your side
//!
//! A scheme of your own (here Linux's refcount, four lines of protocol) and
//! the two tests that check it; your crate needs no loom or shuttle
//! dependency of its own. In a plain build the same standard scenarios run
//! on the machine with real threads.
//!
//! ```
//! use lazymm::cpu::CpuId;
//! use lazymm::lazy::{Kernel, LazyMm};
//!
//! /// Lazy CPUs hold a reference on `mm_count`.
//! #[derive(Default)]
//! pub struct MyRefcount;
//!
//! impl LazyMm for MyRefcount {
//!     const NAME: &'static str = "my-refcount";
//!
//!     // user -> kernel thread, and exit_mm(): the CPU keeps the mm loaded.
//!     fn mmgrab_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
//!         k.mmgrab(cpu, mm);
//!     }
//!
//!     // finish_task_switch() once the CPU loaded another mm (or CPU down).
//!     fn mmdrop_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm, _next: Option<K::Mm>) {
//!         k.mmdrop(cpu, mm);
//!     }
//! }
//!
//! // tests/loom.rs: RUSTFLAGS="--cfg loom" cargo test --release --test loom
//! #[cfg(loom)]
//! #[test]
//! fn my_refcount_loom() {
//!     for (scenario, explored) in lazymm::check::model::harness::loom_check_standard(MyRefcount::default) {
//!         eprintln!("{scenario}: {explored}");
//!     }
//! }
//!
//! // tests/shuttle.rs: RUSTFLAGS="--cfg lazymm_shuttle" cargo test --release --test shuttle
//! #[cfg(lazymm_shuttle)]
//! #[test]
//! fn my_refcount_shuttle() {
//!     lazymm::check::model::harness::shuttle_check(MyRefcount::default);
//! }
//!
//! // Any build: the standard scenarios on real threads (`None` in a
//! // checker build, whose atomics only work inside a checker run).
//! fn main() {
//!     if let Some(runs) = lazymm::check::model::harness::threads_check_standard(|| MyRefcount) {
//!         for (_scenario, stats) in runs {
//!             assert!(stats.frees > 0); // and no lifetime bug: it would have panicked
//!         }
//!     }
//! }
//! ```
//!
//! A deliberately wrong scheme — say one whose `mmgrab_lazy_tlb` takes no
//! reference — makes `loom_check_standard` (and `shuttle_check`) panic with
//! the oracle's `"use-after-free of mm0: freed on cpuN while cpuM still has
//! it loaded"`;
//! `tests/loom/external.rs` and `tests/shuttle/external.rs` are both sides.
//!
//! # What the standard scenarios cover
//!
//! Every case of `context_switch()` on a CPU racing with another CPU's last
//! `mmput()`: a lazy round trip back into the same mm, an exited task lazy
//! on its own mm that then unlazies into another, a kernel → kernel
//! transfer, a CPU going down while lazy, two final drops that may each
//! need the other CPU (crossing IPIs), and three CPUs. They are the
//! scenarios every scheme of the crate passes in `tests/loom`, at the same
//! bounds (VERIFICATION.md has the execution counts and times). Schemes with
//! many atomics per switch may need lower bounds to finish in seconds (the
//! crate checks `hazard` and `loaded_mm` at 3 and 2): call `loom_check` per
//! scenario with [`standard_bound`] minus one.

// The module docs show the `#[test]` functions of a user's crate.
#![allow(clippy::test_attr_in_doctest)]

use super::{MmId, Op, Scenario};
use std::vec;
use std::vec::Vec;

#[cfg(any(loom, lazymm_shuttle, doc))]
use super::{Machine, MachineBug};
#[cfg(any(loom, lazymm_shuttle, doc))]
use crate::lazy::LazyMm;

// The checker sides: each in its checker's build, and both in a plain
// documentation build (on stand-in drivers), so that `cargo doc` shows them.
#[cfg(any(loom, all(doc, not(lazymm_shuttle))))]
mod exhaustive;
#[cfg(any(loom, all(doc, not(lazymm_shuttle))))]
pub use exhaustive::*;
#[cfg(any(lazymm_shuttle, all(doc, not(loom))))]
mod sampled;
#[cfg(any(lazymm_shuttle, all(doc, not(loom))))]
pub use sampled::*;

const A: MmId = MmId::new(0);
const B: MmId = MmId::new(1);
use Op::{Exit, Kthread, User};

/// loom's preemption bound for the standard 2-CPU scenarios.
pub const LOOM_BOUND_2_CPUS: usize = 4;

/// loom's preemption bound for the standard 3-CPU scenario.
pub const LOOM_BOUND_3_CPUS: usize = 3;

/// The preemption bound the harness uses for `scenario`:
/// [`LOOM_BOUND_2_CPUS`] up to 2 CPUs, [`LOOM_BOUND_3_CPUS`] for 3, and 2
/// beyond (loom allows at most 4 CPU threads).
pub fn standard_bound(scenario: &Scenario) -> usize {
    match scenario.nr_cpus() {
        0..=2 => LOOM_BOUND_2_CPUS,
        3 => LOOM_BOUND_3_CPUS,
        _ => 2,
    }
}

/// user → kernel → user (same mm) on cpu0 while cpu1 runs an exit that may
/// be the last `mmput`.
pub fn round_trip_vs_exit() -> Scenario {
    Scenario::new(
        1,
        vec![vec![User(A), Kthread, User(A), Exit], vec![User(A), Exit]],
    )
    .named("round_trip_vs_exit")
}

/// cpu0's task exits and stays lazy on its own mm, passes it to a kernel
/// thread (kernel → kernel), then unlazies into another mm, while cpu1
/// runs the exit that may make the final drop. (The kernel thread is the
/// second standard scenario with a transfer, beside `kthread_transfer`:
/// a scheme that mishandles kernel → kernel fails both.)
pub fn exit_lazy_vs_final_drop() -> Scenario {
    Scenario::new(
        2,
        vec![
            vec![User(A), Exit, Kthread, User(B), Exit],
            vec![User(A), Exit],
        ],
    )
    .named("exit_lazy_vs_final_drop")
}

/// cpu0's dead task hands its lazy mm to a kernel thread (kernel → kernel)
/// while cpu1 runs the exit that may make the final drop.
pub fn kthread_transfer() -> Scenario {
    Scenario::new(1, vec![vec![User(A), Exit, Kthread], vec![User(A), Exit]])
        .named("kthread_transfer")
}

/// cpu0 is lazy on its mm at the end of its script (it goes down lazy)
/// while cpu1 runs the exit that may make the final drop.
pub fn down_while_lazy() -> Scenario {
    Scenario::new(1, vec![vec![User(A), Exit], vec![User(A), Exit]]).named("down_while_lazy")
}

/// Two CPUs that may each make a final drop needing the other: IPIs cross.
pub fn crossing_drops() -> Scenario {
    Scenario::new(
        2,
        vec![
            vec![User(A), Exit, User(B), Exit],
            vec![User(B), Exit, User(A), Exit],
        ],
    )
    .named("crossing_drops")
}

/// Three CPUs: cpu0 round-trips through a kernel thread, cpu1 and cpu2
/// race to the last `mmput`.
pub fn three_cpus() -> Scenario {
    Scenario::new(
        1,
        vec![
            vec![User(A), Kthread, User(A), Exit],
            vec![User(A), Exit],
            vec![User(A), Exit],
        ],
    )
    .named("three_cpus")
}

/// Both CPUs' tasks exit and each CPU idles lazily on the dead mm until the
/// last exit finished ([`Op::IdleUntilExited`]): the final drop always
/// finds the other CPU still lazy on the mm (Piggin's "left a lazy mm on
/// another CPU"), so schemes that IPI lazy CPUs always send one. Not one of
/// the standard six.
pub fn exit_meets_idle_lazy() -> Scenario {
    Scenario::new(
        1,
        vec![
            vec![User(A), Exit, Op::IdleUntilExited(A)],
            vec![User(A), Exit, Op::IdleUntilExited(A)],
        ],
    )
    .named("exit_meets_idle_lazy")
}

/// cpu0's only task of mm0 exits and cpu0 moves on to mm1, while a kernel
/// thread on cpu1 — which never loaded mm0 and sits on the kernel's own mm
/// (for RCU, an extended quiescent state) — drops the `mm_count` reference
/// it held ([`Op::MmDrop`]). When that is the last reference, the final
/// drop runs on a CPU that is not lazy on the mm, possibly after every CPU
/// that used it moved on: `rcu_mm` then frees through a completed grace
/// period instead of its IPI fallback. Not one of the standard six.
pub fn final_drop_elsewhere() -> Scenario {
    Scenario::new(
        2,
        vec![
            vec![User(A), Exit, User(B), Exit],
            vec![Kthread, Op::MmDrop(A)],
        ],
    )
    .named("final_drop_elsewhere")
}

/// Preemption that stays, and migration: cpu0's task of mm0 goes lazy and
/// back (a kept reference or slot stays with it), is preempted by cpu0's
/// task of mm1 (user → user, no kernel thread in between: the most common
/// switch in a kernel), and migrates to cpu1, which runs it and exits it:
/// the final drop of mm0 runs on cpu1 while cpu0 stays in user mode in
/// mm1's task until mm0 is gone ([`Op::UserUntilExited`]). A scheme that
/// leaves state behind on the switch away and only gives it up at the
/// CPU's next lazy entry makes that final drop wait forever: the machine
/// fails it as a livelock. Not one of the standard six.
///
/// (A task preempted by another task of the *same* mm is not a separate
/// case: the library's switch sequence loads nothing and calls no hook
/// for it, [`crate::lazy::switch`].)
pub fn preempt_migrate_stay_user() -> Scenario {
    Scenario::new(
        2,
        vec![
            vec![
                User(A),
                Kthread,
                User(A),
                User(B),
                Op::Migrate(A),
                Op::UserUntilExited(A),
                Exit,
            ],
            vec![Op::Adopt(A, 0), User(A), Exit],
        ],
    )
    .named("preempt_migrate_stay_user")
}

/// Migration while lazy: cpu0's task of mm0 switches to a kernel thread
/// (cpu0 stays lazy on mm0) and is woken on cpu1, which runs and exits it:
/// the final drop runs on cpu1 while cpu0 idles lazily on mm0 until the
/// exit finished. The task's references travel with it; the lazy use
/// stays with cpu0. Not one of the standard six.
pub fn migrate_while_lazy() -> Scenario {
    Scenario::new(
        1,
        vec![
            vec![User(A), Kthread, Op::Migrate(A), Op::IdleUntilExited(A)],
            vec![Op::Adopt(A, 0), User(A), Exit],
        ],
    )
    .named("migrate_while_lazy")
}

/// The kernel's world beyond the standard six, named as in the loom suite
/// (`tests/loom/world.rs`): preemption that stays, migration.
pub fn world_scenarios() -> Vec<(&'static str, Scenario)> {
    [
        ("preempt_migrate_stay_user", preempt_migrate_stay_user()),
        ("migrate_while_lazy", migrate_while_lazy()),
    ]
    .into_iter()
    .collect()
}

/// The six standard scenarios, named as in the crate's loom suite.
pub fn standard_scenarios() -> Vec<(&'static str, Scenario)> {
    [
        ("round_trip_vs_exit", round_trip_vs_exit()),
        ("exit_lazy_vs_final_drop", exit_lazy_vs_final_drop()),
        ("kthread_transfer", kthread_transfer()),
        ("down_while_lazy", down_while_lazy()),
        ("crossing_drops", crossing_drops()),
        ("three_cpus", three_cpus()),
    ]
    .into_iter()
    .collect()
}

/// The standard scenarios on real threads, one machine each, in a plain
/// build (the same scenarios as [`loom_check_standard`](self#your-side), run
/// once with whatever interleaving the threads take): panics with the
/// oracle's report on a lifetime bug, and returns each scenario's counters.
/// `None` in a checker build (`--cfg loom` / `--cfg lazymm_shuttle`), whose
/// atomics only work inside a checker run.
pub fn threads_check_standard<S, F>(make: F) -> Option<Vec<(&'static str, super::Stats)>>
where
    S: crate::lazy::LazyMm + Send + Sync + 'static,
    F: Fn() -> S,
{
    if crate::sync::CHECKED {
        return None;
    }
    let runs = standard_scenarios()
        .into_iter()
        .map(|(name, scenario)| {
            let m = crate::sync::thread::Arc::new(super::Machine::new(make(), scenario));
            super::Machine::run(&m);
            (name, m.stats())
        })
        .collect();
    Some(runs)
}

/// Runs `f` — your own kernel code, with its statics in
/// [`crate::lazymm_static!`] — under the build's checker, without a loom or
/// shuttle dependency of your own: every interleaving up to `loom_bound`
/// preemptions under `--cfg loom` (loom's branch limit raised to
/// `LoomCheck::MAX_BRANCHES`); `shuttle_schedules` PCT schedules at depth 2
/// (fixed seed) under `--cfg lazymm_shuttle`; once on real threads
/// otherwise. Returns the executions run; panics with the first failing
/// one's panic. What the crate's own checks use for schemes is
/// `LoomCheck` / `ShuttleCheck` (the simulated machine and its oracle);
/// this is for code that has its own checks.
pub fn explore<F>(loom_bound: usize, shuttle_schedules: usize, f: F) -> usize
where
    F: Fn() + Send + Sync + 'static,
{
    #[cfg(loom)]
    {
        let _ = shuttle_schedules;
        let executions = std::sync::Arc::new(crate::sync::shadow::Shadow::new(0));
        let n = std::sync::Arc::clone(&executions);
        let mut b = crate::sync::checker::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(loom_bound);
        }
        b.max_branches = LoomCheck::MAX_BRANCHES;
        b.check(move || {
            n.add(1);
            f()
        });
        executions.get()
    }
    #[cfg(all(lazymm_shuttle, not(loom)))]
    {
        let _ = loom_bound;
        use crate::sync::checker::{scheduler::PctScheduler, Config, Runner};
        Runner::new(
            PctScheduler::new_from_seed(0xad07, 2, shuttle_schedules),
            Config::default(),
        )
        .run(f);
        shuttle_schedules
    }
    #[cfg(not(any(loom, lazymm_shuttle)))]
    {
        let _ = (loom_bound, shuttle_schedules);
        f();
        1
    }
}

/// How a check sets up each execution's machine.
#[cfg(any(loom, lazymm_shuttle, doc))]
#[derive(Clone, Copy, Debug, Default)]
struct MachineSetup {
    bug: Option<MachineBug>,
    deferred_drops: bool,
    visible_loads: bool,
}

/// The setters of a check's [`MachineSetup`] (a `setup` field), written
/// once for `LoomCheck` and `ShuttleCheck`.
#[cfg(any(loom, lazymm_shuttle, doc))]
macro_rules! machine_setup_setters {
    () => {
        /// Switches on a known bug of the machine's own kernel code.
        pub fn machine_bug(mut self, bug: MachineBug) -> Self {
            self.setup.bug = Some(bug);
            self
        }

        /// Final drops reached in an interrupts-off hook wait for the CPU's
        /// next interrupts-enabled point (`Machine::with_deferred_drops`,
        /// the `mmdrop_sched()` shape of [`crate::lazy::deferred`]).
        pub fn deferred_drops(mut self) -> Self {
            self.setup.deferred_drops = true;
            self
        }

        /// The oracle's copy of each CPU's page-table base is a checker
        /// atomic (`Machine::with_visible_loads`): the checker then also
        /// preempts a CPU between a scheme hook and its page-table load.
        pub fn visible_loads(mut self) -> Self {
            self.setup.visible_loads = true;
            self
        }
    };
}
#[cfg(any(loom, lazymm_shuttle, doc))]
use machine_setup_setters;

/// Runs `scenario` on a fresh machine with the scheme `make` builds: the
/// body of one checker execution. Returns the machine's counters.
#[cfg(any(loom, lazymm_shuttle, doc))]
fn run_machine<S>(scheme: S, scenario: Scenario, setup: MachineSetup, replay: &str) -> super::Stats
where
    S: LazyMm + Send + Sync + 'static,
{
    use crate::sync::thread::Arc;
    let mut m = Machine::new(scheme, scenario).with_replay(replay);
    // (Every checker build has the bug switches; a documentation build
    // only type-checks this.)
    #[cfg(lazymm_bugs)]
    if let Some(bug) = setup.bug {
        m = m.with_bug(bug);
    }
    if setup.deferred_drops {
        m = m.with_deferred_drops();
    }
    if setup.visible_loads {
        m = m.with_visible_loads();
    }
    let m = Arc::new(m);
    Machine::run(&m);
    m.stats()
}

/// The integration-test target the running test belongs to (`cargo test
/// --test <target>`): the test binary's name without cargo's `-<hash>`.
/// `None` for a unit test of a library (`src/...`), whose binary is named
/// after the crate.
#[cfg(any(loom, all(doc, not(lazymm_shuttle))))]
fn test_target() -> Option<std::string::String> {
    let exe = std::env::current_exe().ok()?;
    if exe.parent()?.file_name()? != "deps" {
        return None;
    }
    let stem = exe.file_stem()?.to_str()?;
    let (name, hash) = stem.rsplit_once('-')?;
    (hash.chars().all(|c| c.is_ascii_hexdigit()) && name != env!("CARGO_CRATE_NAME"))
        .then(|| name.into())
}

/// The running test's name (libtest names each test's thread after it).
#[cfg(any(loom, lazymm_shuttle, doc))]
fn test_name() -> std::string::String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("<your test>")
        .into()
}
