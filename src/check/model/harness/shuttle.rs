//! The shuttle side of the harness (`--cfg lazymm_shuttle`): random and PCT
//! schedules of big machines, failing schedules saved for replay.

use super::{run_machine, test_name, MachineSetup};
use crate::check::model::{MachineBug, Scenario};
use crate::lazy::LazyMm;
use crate::sync::shadow::Shadow;
use std::time::{Duration, Instant};
use std::vec::Vec;

/// The replay line of a report inside a shuttle execution, which the check
/// replaces with the schedule file once shuttle has saved it.
const SHUTTLE_REPLAY_LATER: &str = "(the line below, once shuttle has saved the schedule)";

/// A shuttle scheduler with a fixed seed.
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShuttleReport {
    /// The scheduler.
    pub scheduler: ShuttleScheduler,
    /// Executions run.
    pub executions: usize,
    /// Context switches over all executions.
    pub switches: u64,
    /// Final drops deferred out of interrupts-off hooks, over all
    /// executions (0 unless [`ShuttleCheck::deferred_drops`]).
    pub deferred_drops: u64,
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl core::fmt::Display for ShuttleReport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}, {} executions, {} context switches, {:.2?}",
            self.scheduler, self.executions, self.switches, self.elapsed
        )?;
        if self.deferred_drops > 0 {
            write!(f, ", {} deferred final drops", self.deferred_drops)?;
        }
        Ok(())
    }
}

/// The workload of each shuttle execution.
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
#[derive(Clone, Debug)]
pub struct ShuttleCheck {
    workload: Workload,
    iterations: usize,
    schedulers: Vec<ShuttleScheduler>,
    setup: MachineSetup,
    config: crate::sync::checker::Config,
}

impl Default for ShuttleCheck {
    fn default() -> Self {
        Self::new()
    }
}

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
            setup: MachineSetup::default(),
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
        self.setup.bug = Some(bug);
        self
    }

    /// Final drops reached in an interrupts-off hook wait for the CPU's next
    /// interrupts-enabled point (`Machine::with_deferred_drops`).
    pub fn deferred_drops(mut self) -> Self {
        self.setup.deferred_drops = true;
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
        self.counted_execution(std::sync::Arc::new(make), std::sync::Arc::default())
    }

    fn counted_execution<S, F>(
        &self,
        make: std::sync::Arc<F>,
        counts: std::sync::Arc<(Shadow, Shadow)>,
    ) -> impl Fn() + Send + Sync + 'static
    where
        S: LazyMm + Send + Sync + 'static,
        F: Fn() -> S + Send + Sync + 'static,
    {
        let workload = self.workload.clone();
        let setup = self.setup;
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
            let stats = run_machine(make(), scenario, setup, SHUTTLE_REPLAY_LATER);
            counts.0.add(stats.switches as usize);
            counts.1.add(stats.deferred_drops as usize);
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
                let counts = std::sync::Arc::new((Shadow::new(0), Shadow::new(0)));
                let exec = self.counted_execution(std::sync::Arc::clone(&make), counts.clone());
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
                    switches: counts.0.get() as u64,
                    deferred_drops: counts.1.get() as u64,
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
pub fn shuttle_check<S, F>(make: F) -> Vec<ShuttleReport>
where
    S: LazyMm + Send + Sync + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    ShuttleCheck::new().run(make)
}

/// Re-raises a failing shuttle run's panic with the replay line: the first
/// schedule file shuttle saved in `dir`.
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
fn first_new_file(
    dir: &std::path::Path,
    before: &[std::path::PathBuf],
) -> Option<std::path::PathBuf> {
    schedule_files(dir)
        .into_iter()
        .find(|p| !before.contains(p))
}
