//! Bring your own scheme: check a [`LazyMm`](crate::lazy::LazyMm) written
//! outside the crate with loom and shuttle, one call each.
//!
//! A scheme is anything that implements `LazyMm` for every
//! [`Kernel`](crate::lazy::Kernel) (`impl LazyMm for
//! MyScheme`). The harness runs it on the simulated
//! [`Machine`](super::Machine), whose oracle panics on a use-after-free, a double
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
//! matching checker build (`loom_*` under `--cfg loom`, `shuttle_*` under
//! `--cfg lazymm_shuttle`); the scenarios and bounds exist in every build
//! with the `model` feature.
//!
//! loom honours its own environment variables as in any loom test
//! (`LOOM_MAX_PREEMPTIONS` overrides the bound, `LOOM_LOG=trace` prints the
//! failing execution). loom's checkpoint files are not offered: they need a
//! loom feature this crate does not enable, and loom needs none to replay —
//! it is exhaustive and deterministic, so rerunning the same test fails on
//! the same execution.
//!
//! # When a check fails
//!
//! It panics with the oracle's line first (`"use-after-free of mm0: ..."`,
//! `"leak: mm0 was never freed ..."`, so a known-bad scheme is a
//! `#[should_panic(expected = "...")]` test), then a report: the scheme's
//! `NAME`, the scenario's name, the hooks the failing CPU was inside
//! (`"on cpu0: leave_lazy > final_drop"`), the mm's last events (which CPU
//! loaded it, went lazy, grabbed, dropped, freed it), and one replay line:
//!
//! * loom: the command that reruns the test (`RUSTFLAGS="--cfg loom"
//!   LOOM_LOG=trace cargo test --release -- <test> --exact`);
//! * shuttle: the check saves the failing schedule to a file (in
//!   `$LAZYMM_FAILURE_DIR`, default the system temp dir's
//!   `lazymm-shuttle-failures/`) and prints `LAZYMM_SHUTTLE_REPLAY=<file>`
//!   before the same command: with that variable set, `ShuttleCheck::run`
//!   (and so `shuttle_check`) replays that schedule instead of searching. In
//!   code, `ShuttleCheck::replay(make, file)` does the same; your crate needs
//!   no shuttle dependency for either.
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
//!     fn enter_lazy<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
//!         k.mmgrab(cpu, mm);
//!     }
//!
//!     // finish_task_switch() once the CPU loaded another mm (or CPU down).
//!     fn leave_lazy<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm, _next: Option<K::Mm>) {
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
//! // Any build: the standard scenarios on real threads (the checkers' atomics
//! // only work inside a checker run, hence the test of `CHECKED`).
//! fn main() {
//!     use lazymm::check::model::{harness, Machine};
//!     use lazymm::check::sync::thread::Arc;
//!     if !lazymm::check::sync::CHECKED {
//!         for (_name, scenario) in harness::standard_scenarios() {
//!             let machine = Arc::new(Machine::new(MyRefcount, scenario));
//!             Machine::run(&machine); // panics on any lifetime bug
//!             assert!(machine.stats().frees > 0);
//!         }
//!     }
//! }
//! ```
//!
//! A deliberately wrong scheme — say one whose `enter_lazy` takes no
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
//! bounds: for a refcount-sized scheme about 180,000 executions, 15 s in
//! `--release` on a 2-core machine, 12 s of it the 3-CPU model. Schemes with
//! many atomics per switch may need lower bounds to finish in seconds (the
//! crate checks `hazard` and `loaded_mm` at 3 and 2): call `loom_check` per
//! scenario with [`standard_bound`] minus one.

// The module docs show the `#[test]` functions of a user's crate.
#![allow(clippy::test_attr_in_doctest)]

use super::{MmId, Op, Scenario};
use std::vec;
use std::vec::Vec;

#[cfg(any(loom, lazymm_shuttle))]
use super::{Machine, MachineBug};
#[cfg(any(loom, lazymm_shuttle))]
use crate::lazy::LazyMm;
#[cfg(any(loom, lazymm_shuttle))]
use crate::sync::shadow::Shadow;
#[cfg(any(loom, lazymm_shuttle))]
use std::time::{Duration, Instant};

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

/// cpu0's task exits and stays lazy on its own mm, then unlazies into
/// another mm, while cpu1 runs the exit that may make the final drop.
pub fn exit_lazy_vs_final_drop() -> Scenario {
    Scenario::new(
        2,
        vec![vec![User(A), Exit, User(B), Exit], vec![User(A), Exit]],
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

/// Runs `scenario` on a fresh machine with the scheme `make` builds: the
/// body of one checker execution.
#[cfg(any(loom, lazymm_shuttle))]
fn run_machine<S>(scheme: S, scenario: Scenario, bug: Option<MachineBug>, replay: &str) -> u64
where
    S: LazyMm + Send + Sync + 'static,
{
    use crate::sync::thread::Arc;
    let mut m = Machine::new(scheme, scenario).with_replay(replay);
    if let Some(bug) = bug {
        m = m.with_bug(bug);
    }
    let m = Arc::new(m);
    Machine::run(&m);
    m.stats().switches
}

/// The running test's name (libtest names each test's thread after it).
#[cfg(any(loom, lazymm_shuttle))]
fn test_name() -> std::string::String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("<your test>")
        .into()
}

// ---------------------------------------------------------------- loom ----

/// What a loom check explored (it returns only if every execution passed).
#[cfg(loom)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoomReport {
    /// The preemption bound explored (`None`: unbounded, from the environment).
    pub preemption_bound: Option<usize>,
    /// Executions (interleavings) explored.
    pub executions: usize,
    /// Wall-clock time.
    pub elapsed: Duration,
}

#[cfg(loom)]
impl core::fmt::Display for LoomReport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "bound {:?}, {} executions, {:.2?}",
            self.preemption_bound, self.executions, self.elapsed
        )
    }
}

/// A loom check with its settings (`LoomCheck::new(bound).run(make, scenario)`).
#[cfg(loom)]
#[derive(Clone, Debug)]
pub struct LoomCheck {
    preemption_bound: usize,
    max_branches: usize,
    machine_bug: Option<MachineBug>,
    progress: Option<std::string::String>,
}

#[cfg(loom)]
impl LoomCheck {
    /// Branches loom allows per execution: idle CPUs wait (yielding) while
    /// others work, so paths are long.
    pub const MAX_BRANCHES: usize = 100_000;

    /// A check at `preemption_bound` (unless `LOOM_MAX_PREEMPTIONS` is set).
    pub fn new(preemption_bound: usize) -> Self {
        Self {
            preemption_bound,
            max_branches: Self::MAX_BRANCHES,
            machine_bug: None,
            progress: None,
        }
    }

    /// loom's limit on branches per execution (default [`Self::MAX_BRANCHES`]).
    pub fn max_branches(mut self, n: usize) -> Self {
        self.max_branches = n;
        self
    }

    /// Switches on a known bug of the machine's own kernel code.
    pub fn machine_bug(mut self, bug: MachineBug) -> Self {
        self.machine_bug = Some(bug);
        self
    }

    /// Prints `label` and the count every 5,000 executions (to stderr).
    pub fn progress(mut self, label: impl Into<std::string::String>) -> Self {
        self.progress = Some(label.into());
        self
    }

    /// Explores every interleaving of `scenario` (within the bound) under
    /// the scheme `make` builds, one fresh scheme and machine per
    /// execution. Panics with the oracle's message on the first failing
    /// execution.
    pub fn run<S, F>(&self, make: F, scenario: Scenario) -> LoomReport
    where
        S: LazyMm + Send + Sync + 'static,
        F: Fn() -> S + Send + Sync + 'static,
    {
        let mut b = crate::sync::checker::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(self.preemption_bound);
        }
        b.max_branches = self.max_branches;
        let preemption_bound = b.preemption_bound;
        let executions = std::sync::Arc::new(Shadow::new(0));
        let counter = std::sync::Arc::clone(&executions);
        let bug = self.machine_bug;
        let progress = self.progress.clone();
        let replay = std::format!(
            "RUSTFLAGS=\"--cfg loom\" LOOM_LOG=trace cargo test --release -- {} --exact\n            (loom is exhaustive and deterministic: the rerun fails on the same execution)",
            test_name()
        );
        let start = Instant::now();
        b.check(move || {
            let n = counter.add(1) + 1;
            if let Some(label) = &progress {
                if n % 5000 == 0 {
                    std::eprintln!("  {label}: {n} executions...");
                }
            }
            run_machine(make(), scenario.clone(), bug, &replay);
        });
        LoomReport {
            preemption_bound,
            executions: executions.get(),
            elapsed: start.elapsed(),
        }
    }
}

/// Explores every interleaving of `scenario`, up to `preemption_bound`
/// preemptions, under the scheme `make` builds; panics with the oracle's
/// message if one fails.
#[cfg(loom)]
pub fn loom_check<S, F>(preemption_bound: usize, make: F, scenario: Scenario) -> LoomReport
where
    S: LazyMm + Send + Sync + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    LoomCheck::new(preemption_bound).run(make, scenario)
}

/// [`loom_check`] on every standard scenario at its [`standard_bound`], in
/// the order of [`standard_scenarios`]; panics on the first failure.
#[cfg(loom)]
pub fn loom_check_standard<S, F>(make: F) -> Vec<(&'static str, LoomReport)>
where
    S: LazyMm + Send + Sync + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    let make = std::sync::Arc::new(make);
    standard_scenarios()
        .into_iter()
        .map(|(name, scenario)| {
            let make = std::sync::Arc::clone(&make);
            let bound = standard_bound(&scenario);
            (name, loom_check(bound, move || make(), scenario))
        })
        .collect()
}

// ------------------------------------------------------------- shuttle ----

/// The replay line of a report inside a shuttle execution, which the check
/// replaces with the schedule file once shuttle has saved it.
#[cfg(lazymm_shuttle)]
const SHUTTLE_REPLAY_LATER: &str = "(the line below, once shuttle has saved the schedule)";

/// A shuttle scheduler with a fixed seed.
#[cfg(lazymm_shuttle)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShuttleScheduler {
    /// PCT (probabilistic concurrency testing) finding bugs of `depth`
    /// ordering constraints with good probability.
    Pct {
        /// Bug depth.
        depth: usize,
        /// Seed.
        seed: u64,
    },
    /// A uniformly random choice at every step.
    Random {
        /// Seed.
        seed: u64,
    },
}

#[cfg(lazymm_shuttle)]
impl core::fmt::Display for ShuttleScheduler {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Pct { depth, .. } => write!(f, "pct depth {depth}"),
            Self::Random { .. } => f.write_str("random"),
        }
    }
}

/// What one scheduler of a shuttle check ran (it returns only if every
/// execution passed).
#[cfg(lazymm_shuttle)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShuttleReport {
    /// The scheduler.
    pub scheduler: ShuttleScheduler,
    /// Executions run.
    pub executions: usize,
    /// Context switches over all executions.
    pub switches: u64,
    /// Wall-clock time.
    pub elapsed: Duration,
}

#[cfg(lazymm_shuttle)]
impl core::fmt::Display for ShuttleReport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}, {} executions, {} context switches, {:.2?}",
            self.scheduler, self.executions, self.switches, self.elapsed
        )
    }
}

/// The workload of each shuttle execution.
#[cfg(lazymm_shuttle)]
#[derive(Clone, Debug)]
enum Workload {
    /// `Scenario::random` from a seed drawn from shuttle's (replayable)
    /// randomness.
    Random {
        cpus: usize,
        mms: usize,
        ops_per_cpu: usize,
    },
    /// The same scenario every time.
    Fixed(Scenario),
}

/// A shuttle check with its settings (`ShuttleCheck::new().run(make)`).
#[cfg(lazymm_shuttle)]
#[derive(Clone, Debug)]
pub struct ShuttleCheck {
    workload: Workload,
    iterations: usize,
    schedulers: Vec<ShuttleScheduler>,
    machine_bug: Option<MachineBug>,
    config: crate::sync::checker::Config,
}

#[cfg(lazymm_shuttle)]
impl Default for ShuttleCheck {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(lazymm_shuttle)]
impl ShuttleCheck {
    /// CPUs of the default random workload.
    pub const CPUS: usize = 8;
    /// mms of the default random workload.
    pub const MMS: usize = 4;
    /// Operations per CPU of the default random workload, before the final
    /// exits (8 x 30 = 240 at least).
    pub const OPS_PER_CPU: usize = 30;
    /// Iterations per scheduler.
    pub const ITERATIONS: usize = 1000;
    /// PCT at depths 2 and 3, then the random scheduler, each with a fixed seed.
    pub const SCHEDULERS: [ShuttleScheduler; 3] = [
        ShuttleScheduler::Pct {
            depth: 2,
            seed: 0x1a2b_0002,
        },
        ShuttleScheduler::Pct {
            depth: 3,
            seed: 0x1a2b_0003,
        },
        ShuttleScheduler::Random { seed: 0x5eed },
    ];

    /// The defaults above, shuttle's default `Config`, no machine bug.
    pub fn new() -> Self {
        Self {
            workload: Workload::Random {
                cpus: Self::CPUS,
                mms: Self::MMS,
                ops_per_cpu: Self::OPS_PER_CPU,
            },
            iterations: Self::ITERATIONS,
            schedulers: Self::SCHEDULERS.to_vec(),
            machine_bug: None,
            config: crate::sync::checker::Config::default(),
        }
    }

    /// Iterations per scheduler.
    pub fn iterations(mut self, n: usize) -> Self {
        self.iterations = n;
        self
    }

    /// A fresh random workload per execution (`Scenario::random`, seeded
    /// from shuttle's randomness so that a failing schedule replays it).
    pub fn random_workload(mut self, cpus: usize, mms: usize, ops_per_cpu: usize) -> Self {
        self.workload = Workload::Random {
            cpus,
            mms,
            ops_per_cpu,
        };
        self
    }

    /// The same `scenario` in every execution instead of random workloads.
    pub fn scenario(mut self, scenario: Scenario) -> Self {
        self.workload = Workload::Fixed(scenario);
        self
    }

    /// The schedulers to run, in order.
    pub fn schedulers(mut self, schedulers: &[ShuttleScheduler]) -> Self {
        self.schedulers = schedulers.to_vec();
        self
    }

    /// Switches on a known bug of the machine's own kernel code.
    pub fn machine_bug(mut self, bug: MachineBug) -> Self {
        self.machine_bug = Some(bug);
        self
    }

    /// shuttle's `Config` (e.g. `failure_persistence` to write failing
    /// schedules to files).
    pub fn config(mut self, config: crate::sync::checker::Config) -> Self {
        self.config = config;
        self
    }

    /// One execution as shuttle runs it: for shuttle's `replay` and
    /// `replay_from_file` of a failing schedule.
    pub fn execution<S, F>(&self, make: F) -> impl Fn() + Send + Sync + 'static
    where
        S: LazyMm + Send + Sync + 'static,
        F: Fn() -> S + Send + Sync + 'static,
    {
        self.counted_execution(
            std::sync::Arc::new(make),
            std::sync::Arc::new(Shadow::new(0)),
        )
    }

    fn counted_execution<S, F>(
        &self,
        make: std::sync::Arc<F>,
        switches: std::sync::Arc<Shadow>,
    ) -> impl Fn() + Send + Sync + 'static
    where
        S: LazyMm + Send + Sync + 'static,
        F: Fn() -> S + Send + Sync + 'static,
    {
        let workload = self.workload.clone();
        let bug = self.machine_bug;
        move || {
            let scenario = match &workload {
                &Workload::Random {
                    cpus,
                    mms,
                    ops_per_cpu,
                } => {
                    use crate::sync::checker::rand::RngCore;
                    let seed = crate::sync::checker::rand::thread_rng().next_u64();
                    let s = Scenario::random(seed, cpus, mms, ops_per_cpu);
                    assert!(
                        s.len() >= cpus * ops_per_cpu,
                        "workload too short: {} operations",
                        s.len()
                    );
                    s
                }
                Workload::Fixed(s) => s.clone(),
            };
            let n = run_machine(make(), scenario, bug, SHUTTLE_REPLAY_LATER);
            switches.add(n as usize);
        }
    }

    /// Runs every scheduler for the configured iterations under the scheme
    /// `make` builds, one fresh scheme, workload and machine per execution.
    /// Panics with the oracle's report and a replay line (the module docs,
    /// "When a check fails") on the first failing execution. With
    /// `LAZYMM_SHUTTLE_REPLAY=<file>` set, replays that schedule instead.
    pub fn run<S, F>(&self, make: F) -> Vec<ShuttleReport>
    where
        S: LazyMm + Send + Sync + 'static,
        F: Fn() -> S + Send + Sync + 'static,
    {
        use crate::sync::checker::scheduler::{PctScheduler, RandomScheduler};
        use crate::sync::checker::{FailurePersistence, Runner};
        if let Ok(file) = std::env::var("LAZYMM_SHUTTLE_REPLAY") {
            std::eprintln!("replaying the shuttle schedule in {file}");
            self.replay(make, &file);
            return Vec::new();
        }
        let dir = std::env::var_os("LAZYMM_FAILURE_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("lazymm-shuttle-failures"));
        let mut config = self.config.clone();
        if matches!(config.failure_persistence, FailurePersistence::Print)
            && std::fs::create_dir_all(&dir).is_ok()
        {
            config.failure_persistence = FailurePersistence::File(Some(dir.clone()));
        }
        let make = std::sync::Arc::new(make);
        let before = schedule_files(&dir);
        self.schedulers
            .iter()
            .map(|&scheduler| {
                let switches = std::sync::Arc::new(Shadow::new(0));
                let exec = self.counted_execution(std::sync::Arc::clone(&make), switches.clone());
                let config = config.clone();
                let start = Instant::now();
                let run =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match scheduler {
                        ShuttleScheduler::Pct { depth, seed } => Runner::new(
                            PctScheduler::new_from_seed(seed, depth, self.iterations),
                            config,
                        )
                        .run(exec),
                        ShuttleScheduler::Random { seed } => Runner::new(
                            RandomScheduler::new_from_seed(seed, self.iterations),
                            config,
                        )
                        .run(exec),
                    }));
                let executions =
                    run.unwrap_or_else(|payload| fail_with_replay(payload, &dir, &before));
                ShuttleReport {
                    scheduler,
                    executions,
                    switches: switches.get() as u64,
                    elapsed: start.elapsed(),
                }
            })
            .collect()
    }

    /// Replays the failing schedule shuttle saved in `file` (the replay line
    /// of a failure report) under the scheme `make` builds and this check's
    /// workload: panics with the same report if the failure reproduces.
    pub fn replay<S, F>(&self, make: F, file: &str)
    where
        S: LazyMm + Send + Sync + 'static,
        F: Fn() -> S + Send + Sync + 'static,
    {
        use crate::sync::checker::scheduler::ReplayScheduler;
        use crate::sync::checker::{Config, FailurePersistence, Runner};
        let scheduler = ReplayScheduler::new_from_file(file)
            .unwrap_or_else(|e| panic!("lazymm: cannot read the shuttle schedule {file}: {e}"));
        let mut config = Config::default();
        config.failure_persistence = FailurePersistence::None;
        Runner::new(scheduler, config).run(self.execution(make));
    }
}

/// Checks the scheme `make` builds with the default shuttle configuration
/// (`ShuttleCheck::new()`: 8 CPUs, 4 mms, random workloads of 240+
/// operations, PCT depths 2 and 3 and the random scheduler, 1,000 iterations
/// each); panics with the oracle's message if an execution fails.
#[cfg(lazymm_shuttle)]
pub fn shuttle_check<S, F>(make: F) -> Vec<ShuttleReport>
where
    S: LazyMm + Send + Sync + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    ShuttleCheck::new().run(make)
}

/// Re-raises a failing shuttle run's panic with the replay line: the first
/// schedule file shuttle saved in `dir`.
#[cfg(lazymm_shuttle)]
fn fail_with_replay(
    payload: std::boxed::Box<dyn core::any::Any + Send>,
    dir: &std::path::Path,
    before: &[std::path::PathBuf],
) -> ! {
    let msg = payload
        .downcast_ref::<std::string::String>()
        .map(|s| s.as_str())
        .or_else(|| payload.downcast_ref::<&str>().copied());
    let (Some(msg), Some(file)) = (msg, first_new_file(dir, before)) else {
        std::panic::resume_unwind(payload)
    };
    let msg = msg.replace(&std::format!("\n  replay:   {SHUTTLE_REPLAY_LATER}"), "");
    panic!(
        "{msg}\n  replay:   LAZYMM_SHUTTLE_REPLAY={file} RUSTFLAGS=\"--cfg lazymm_shuttle\" cargo test --release -- {} --exact\n            (in code: ShuttleCheck::replay(make, \"{file}\"))",
        test_name(),
        file = file.display()
    )
}

/// The schedule files in `dir`, sorted by name (shuttle numbers them).
#[cfg(lazymm_shuttle)]
fn schedule_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The first schedule file that was not in `before`: the one shuttle saved
/// at the failing execution's first panic (later panics of the same
/// unwinding save shorter copies).
#[cfg(lazymm_shuttle)]
fn first_new_file(
    dir: &std::path::Path,
    before: &[std::path::PathBuf],
) -> Option<std::path::PathBuf> {
    schedule_files(dir)
        .into_iter()
        .find(|p| !before.contains(p))
}
