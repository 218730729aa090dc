//! A recorded workload on the machine: the per-CPU stream a
//! [`Story`](crate::check::trace::Story) reconstructed from a Linux trace,
//! replayed step by step through a scheme under the machine's oracle, and
//! counted by the scheme's own logic.
//!
//! # The mapping
//!
//! The machine has one user task per (CPU, mm); a real thread of an mm that
//! runs on three CPUs is, here, the mm's task on each of the three. So:
//!
//! * a switch to a task with mm `M` is [`Op::User`]`(M)` (nothing when the
//!   CPU already runs `M`: a user → user switch within one mm touches no
//!   mm state); a switch to a task without an mm is [`Op::Kthread`];
//! * a thread's exit is [`Op::Kthread`] (the lazy entry of `exit_mm()`),
//!   unless it is the last time this CPU runs `M` and `M` dies in the trace:
//!   then [`Op::Exit`], so that the machine's last task of `M` exits where
//!   and when the real last thread did, and `M`'s final drop meets the CPUs
//!   that really were lazy on it. A CPU that runs `M` for the last time
//!   without its thread exiting there (the thread moves away or sleeps) exits
//!   its machine task of `M` as it leaves: an exit, then the switch to the
//!   next task;
//! * an exec is the exit of the old mm's task (as above), then
//!   [`Op::User`] of the new mm's;
//! * mms alive at the end of the trace are torn down after it: each CPU runs
//!   its live tasks once and exits them, then goes down. The counters are
//!   read before this teardown, so they cover the trace alone.
//!
//! The mapping adds, once per (CPU, mm) whose mm dies in the trace, an exit
//! (a lazy grab and an `mm_users` decrement) that the real thread made
//! elsewhere, and drops the `mm_users` decrements of threads whose CPU goes
//! on running their mm; neither changes which CPUs hold an mm when it dies.

use super::{Machine, MmId, Op, Scenario, Stats};
use crate::check::trace::{StepKind, Story};
use crate::cpu::CpuId;
use crate::lazy::LazyMm;
use std::collections::HashMap;
use std::vec::Vec;

/// A story as machine operations.
#[derive(Clone, Debug)]
pub struct ReplayPlan {
    /// `(cpu, op)` in trace order, the teardown after `trace_ops`.
    pub ops: Vec<(usize, Op)>,
    /// How many of `ops` are the trace (the rest tear down).
    pub trace_ops: usize,
    /// The machine's scenario (`None` when no user mm ever ran).
    pub scenario: Option<Scenario>,
}

impl ReplayPlan {
    /// Maps `story` onto the machine (see the module docs). `None` when
    /// the trace has more CPUs than the machine ([`super::MAX_CPUS`]).
    pub fn new(story: &Story) -> Option<ReplayPlan> {
        let nr_cpus = story.cpus as usize;
        if nr_cpus == 0 || nr_cpus > super::MAX_CPUS {
            return None;
        }
        let dies = |m: u32| story.mms[m as usize].death.is_some();
        // The last step of each CPU that makes mm M current.
        let mut last: HashMap<(u32, u32), usize> = HashMap::new();
        for (i, s) in story.steps.iter().enumerate() {
            if let StepKind::User(m) | StepKind::Exec(m) = s.kind {
                last.insert((s.cpu, m), i);
            }
        }
        // Machine mm ids, in order of first use.
        let mut ids: HashMap<u32, MmId> = HashMap::new();
        let mut id = |m: u32| {
            let n = ids.len();
            *ids.entry(m).or_insert(MmId::new(n))
        };
        let mut curr: Vec<Option<u32>> = std::vec![None; nr_cpus];
        let mut live: Vec<Vec<u32>> = std::vec![Vec::new(); nr_cpus];
        let mut ops = Vec::new();
        // Leave `c`'s current task: exit it if this was its last run and
        // its mm dies in the trace; else, when `lazy`, enter lazy mode.
        let leave = |c: usize,
                     i: usize,
                     lazy: bool,
                     curr: &mut Vec<Option<u32>>,
                     live: &mut Vec<Vec<u32>>,
                     ops: &mut Vec<(usize, Op)>| {
            if let Some(m) = curr[c].take() {
                if dies(m) && last.get(&(c as u32, m)).is_none_or(|&l| l <= i) {
                    ops.push((c, Op::Exit));
                    live[c].retain(|&x| x != m);
                } else if lazy {
                    ops.push((c, Op::Kthread));
                }
            }
        };
        for (i, s) in story.steps.iter().enumerate() {
            let c = s.cpu as usize;
            match s.kind {
                StepKind::User(m) => {
                    if curr[c] == Some(m) {
                        continue;
                    }
                    // A last run ends with a switch: exit, then switch.
                    leave(c, i, false, &mut curr, &mut live, &mut ops);
                    ops.push((c, Op::User(id(m))));
                    if !live[c].contains(&m) {
                        live[c].push(m);
                    }
                    curr[c] = Some(m);
                }
                StepKind::Kernel => {
                    leave(c, i, false, &mut curr, &mut live, &mut ops);
                    ops.push((c, Op::Kthread));
                }
                StepKind::Exit => leave(c, i, true, &mut curr, &mut live, &mut ops),
                StepKind::Exec(n) => {
                    leave(c, i, true, &mut curr, &mut live, &mut ops);
                    ops.push((c, Op::User(id(n))));
                    live[c].push(n);
                    curr[c] = Some(n);
                }
            }
        }
        let trace_ops = ops.len();
        for c in 0..nr_cpus {
            if let Some(m) = curr[c].take() {
                ops.push((c, Op::Exit));
                live[c].retain(|&x| x != m);
            }
            for &m in &live[c] {
                ops.extend([(c, Op::User(id(m))), (c, Op::Exit)]);
            }
        }
        let scenario = (!ids.is_empty()).then(|| {
            let mut scripts = std::vec![Vec::new(); nr_cpus];
            for &(c, op) in &ops {
                scripts[c].push(op);
            }
            Scenario::new(ids.len(), scripts).named("recorded workload")
        });
        Some(ReplayPlan {
            ops,
            trace_ops,
            scenario,
        })
    }

    /// Replays the plan through `scheme` on a machine with inline IPIs; the
    /// counters of the trace's part. Panics with the oracle's report when
    /// the scheme misbehaves.
    pub fn run<S: LazyMm + Send + Sync + 'static>(&self, scheme: S) -> Stats {
        let Some(scenario) = &self.scenario else {
            return Stats::default();
        };
        let m = Machine::new(scheme, scenario.clone()).with_inline_ipis();
        let (trace, teardown) = self.ops.split_at(self.trace_ops);
        for &(c, op) in trace {
            m.step(CpuId::new(c), op);
        }
        let at_end = m.stats();
        for &(c, op) in teardown {
            m.step(CpuId::new(c), op);
        }
        for c in 0..m.nr_cpus() {
            m.cpu_down(CpuId::new(c));
        }
        m.finish();
        at_end
    }
}
