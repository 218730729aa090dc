//! The shuttle side of the harness (`--cfg lazymm_shuttle`): random and PCT
//! schedules of big machines, each failing execution named by a replay token.

use super::{run_machine, test_name, MachineSetup};
use crate::check::model::{MachineBug, Scenario};
use crate::lazy::LazyMm;
use crate::sync::shadow::Shadow;
use std::time::{Duration, Instant};
use std::vec::Vec;

/// The replay line of a report inside a shuttle execution, which the check
/// replaces with the execution's replay token.
const SHUTTLE_REPLAY_LATER: &str = "(the line below)";

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
    /// mms freed, over all executions.
    pub frees: u64,
    /// Of those, the ones whose final drop made no shoot-lazies call (for
    /// `rcu_mm`: through a completed grace period).
    pub frees_without_shootdown: u64,
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
        write!(
            f,
            ", {} frees ({} without a shootdown)",
            self.frees, self.frees_without_shootdown
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
    /// `Scenario::random` (with `migrate`: `Scenario::random_with_migration`)
    /// from a seed drawn from shuttle's (replayable) randomness.
    Random {
        cpus: usize,
        mms: usize,
        ops_per_cpu: usize,
        migrate: bool,
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
                migrate: true,
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

    /// A fresh random workload per execution, seeded from shuttle's
    /// randomness so that a failing schedule replays it:
    /// `Scenario::random_with_migration` (tasks preempted, migrated and
    /// woken elsewhere), the default.
    pub fn random_workload(mut self, cpus: usize, mms: usize, ops_per_cpu: usize) -> Self {
        self.workload = Workload::Random {
            cpus,
            mms,
            ops_per_cpu,
            migrate: true,
        };
        self
    }

    /// Random workloads without migrations (`Scenario::random`: every task
    /// stays on its CPU).
    pub fn without_migration(mut self) -> Self {
        if let Workload::Random { migrate, .. } = &mut self.workload {
            *migrate = false;
        }
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

    super::machine_setup_setters!();

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
        counts: std::sync::Arc<Counts>,
    ) -> impl Fn() + Send + Sync + 'static
    where
        S: LazyMm + Send + Sync + 'static,
        F: Fn() -> S + Send + Sync + 'static,
    {
        let workload = self.workload.clone();
        let setup = self.setup;
        move || {
            counts.started.add(1);
            let scenario = match &workload {
                &Workload::Random {
                    cpus,
                    mms,
                    ops_per_cpu,
                    migrate,
                } => {
                    use crate::sync::checker::rand::RngCore;
                    let seed = crate::sync::checker::rand::thread_rng().next_u64();
                    let s = if migrate {
                        Scenario::random_with_migration(seed, cpus, mms, ops_per_cpu)
                    } else {
                        Scenario::random(seed, cpus, mms, ops_per_cpu)
                    };
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
            counts.switches.add(stats.switches as usize);
            counts.deferred.add(stats.deferred_drops as usize);
            counts.frees.add(stats.frees as usize);
            counts
                .quiet_frees
                .add(stats.frees_without_shootdown as usize);
        }
    }

    /// Runs every scheduler for the configured iterations under the scheme
    /// `make` builds, one fresh scheme, workload and machine per execution.
    /// Panics with the oracle's report and a replay line (the module docs,
    /// "When a check fails") on the first failing execution. With
    /// `LAZYMM_SHUTTLE_REPLAY=<token>` set, replays that execution instead.
    pub fn run<S, F>(&self, make: F) -> Vec<ShuttleReport>
    where
        S: LazyMm + Send + Sync + 'static,
        F: Fn() -> S + Send + Sync + 'static,
    {
        if let Ok(token) = std::env::var("LAZYMM_SHUTTLE_REPLAY") {
            std::eprintln!("replaying the shuttle execution {token}");
            self.replay(make, &token);
            return Vec::new();
        }
        let make = std::sync::Arc::new(make);
        self.schedulers
            .iter()
            .map(|&scheduler| {
                let counts = std::sync::Arc::new(Counts::default());
                let exec = self.counted_execution(std::sync::Arc::clone(&make), counts.clone());
                let start = Instant::now();
                let run = quietly(|| {
                    run_scheduler(scheduler, self.iterations, self.config.clone(), exec)
                });
                let executions = run.unwrap_or_else(|payload| {
                    // The execution that failed is the last one started.
                    let token = replay_token(scheduler, counts.started.get() - 1);
                    fail_with_replay(payload, &token)
                });
                ShuttleReport {
                    scheduler,
                    executions,
                    switches: counts.switches.get() as u64,
                    deferred_drops: counts.deferred.get() as u64,
                    frees: counts.frees.get() as u64,
                    frees_without_shootdown: counts.quiet_frees.get() as u64,
                    elapsed: start.elapsed(),
                }
            })
            .collect()
    }

    /// Replays the failing execution `token` names (the replay line of a
    /// failure report: its scheduler, seed and iteration) under the scheme
    /// `make` builds and this check's workload: panics with the same report
    /// if the failure reproduces. Shuttle's schedulers are deterministic
    /// from their seed, so this reruns that scheduler up to and including
    /// the failing iteration (the earlier ones passed before and pass
    /// again).
    pub fn replay<S, F>(&self, make: F, token: &str)
    where
        S: LazyMm + Send + Sync + 'static,
        F: Fn() -> S + Send + Sync + 'static,
    {
        let (scheduler, iteration) = parse_token(token).unwrap_or_else(|| {
            panic!("lazymm: not a replay token: {token:?} (pct:<depth>:<seed>:<iteration> or random:<seed>:<iteration>)")
        });
        let exec = self.counted_execution(std::sync::Arc::new(make), std::sync::Arc::default());
        run_scheduler(scheduler, iteration + 1, self.config.clone(), exec);
    }
}

std::thread_local! {
    /// Set while this thread runs shuttle executions whose panic the
    /// harness re-raises with the replay line.
    static QUIET: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Runs `f`, catching its panic, with the panic hook silent on this thread
/// meanwhile: the oracle's report is printed once, by the re-raised panic
/// that carries the replay line, not also when the execution panics.
/// (Shuttle still prints its own schedule.)
fn quietly<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(std::boxed::Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info)
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    r
}

/// Executions started, context switches and deferred drops of one run.
#[derive(Default)]
struct Counts {
    started: Shadow,
    switches: Shadow,
    deferred: Shadow,
    frees: Shadow,
    quiet_frees: Shadow,
}

fn run_scheduler(
    scheduler: ShuttleScheduler,
    iterations: usize,
    config: crate::sync::checker::Config,
    exec: impl Fn() + Send + Sync + 'static,
) -> usize {
    use crate::sync::checker::scheduler::{PctScheduler, RandomScheduler};
    use crate::sync::checker::Runner;
    match scheduler {
        ShuttleScheduler::Pct { depth, seed } => {
            Runner::new(PctScheduler::new_from_seed(seed, depth, iterations), config).run(exec)
        }
        ShuttleScheduler::Random { seed } => {
            Runner::new(RandomScheduler::new_from_seed(seed, iterations), config).run(exec)
        }
    }
}

/// `pct:<depth>:<seed>:<iteration>` or `random:<seed>:<iteration>`.
fn replay_token(scheduler: ShuttleScheduler, iteration: usize) -> std::string::String {
    match scheduler {
        ShuttleScheduler::Pct { depth, seed } => std::format!("pct:{depth}:{seed:#x}:{iteration}"),
        ShuttleScheduler::Random { seed } => std::format!("random:{seed:#x}:{iteration}"),
    }
}

fn parse_token(token: &str) -> Option<(ShuttleScheduler, usize)> {
    let num = |s: &str| match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    };
    let parts: Vec<&str> = token.trim().split(':').collect();
    match parts.as_slice() {
        ["pct", depth, seed, it] => Some((
            ShuttleScheduler::Pct {
                depth: depth.parse().ok()?,
                seed: num(seed)?,
            },
            it.parse().ok()?,
        )),
        ["random", seed, it] => Some((
            ShuttleScheduler::Random { seed: num(seed)? },
            it.parse().ok()?,
        )),
        _ => None,
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

/// Re-raises a failing shuttle run's panic with the replay line.
fn fail_with_replay(payload: std::boxed::Box<dyn core::any::Any + Send>, token: &str) -> ! {
    let msg = payload
        .downcast_ref::<std::string::String>()
        .map(|s| s.as_str())
        .or_else(|| payload.downcast_ref::<&str>().copied());
    let Some(msg) = msg else {
        std::panic::resume_unwind(payload)
    };
    let msg = msg.replace(&std::format!("\n  replay:   {SHUTTLE_REPLAY_LATER}"), "");
    panic!(
        "{msg}\n  replay:   LAZYMM_SHUTTLE_REPLAY={token} RUSTFLAGS=\"--cfg lazymm_shuttle\" cargo test --release -- {} --exact\n            (in code: ShuttleCheck::replay(make, \"{token}\"), with the check's workload)",
        test_name(),
    )
}
