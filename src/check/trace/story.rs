//! The lazy-mm story of a trace: which mm each CPU has loaded, lazily or
//! not, at every event, and what each mm's birth and death met.
//!
//! # The rules
//!
//! * **Tasks and mms.** A task alive when recording started (the header's
//!   `# task` lines) is a kernel thread (no mm) or shares the mm of its thread
//!   group. A new task (`task_newtask`, created by the record's task) has no
//!   mm if its parent has none (kernel threads, and user-mode helpers before
//!   their exec); else the parent's mm with `CLONE_VM` (a thread, or a vfork
//!   child), else a new mm (a fork: a **birth**). An exec gives the task a
//!   new mm (a birth) and drops its old one.
//! * **Users.** An mm's users are its live tasks. A thread's exit
//!   (`sched_process_exit`, traced just after `exit_mm()`) or an exec drops
//!   one; the last one is the mm's **death** (`__mmput()`: Linux's
//!   `mm_users` also counts `mmget()` users such as `/proc` readers, which
//!   the trace cannot see).
//! * **CPUs.** `sched_switch` to a task with an mm loads it: from a lazy CPU
//!   that is an **unlazy**, to the same mm or another; from a user task of
//!   another mm a user → user switch. A switch to a task without an mm (a
//!   kernel thread, idle, a dead task) keeps the loaded mm: from a user mm a
//!   **lazy entry**, from a lazy CPU a kernel → kernel switch. A thread's
//!   exit leaves its CPU lazy on its mm (a lazy entry, as in Linux); an exec
//!   loads the new mm.
//! * **At a death**, the CPUs other than the exiting one that still have the
//!   mm loaded are **lazy CPUs at death**: the IPIs a shootdown scheme sends.
//!   The last CPU to load another mm is where x86 Linux's own final
//!   `__mmdrop()` ran (`finish_task_switch()` dropping the lazy reference):
//!   derived from the switches, since the function tracer's filter is not
//!   always usable.
//! * **Before the first event** of a CPU, its lazy state is unknown: the
//!   CPU starts with no mm loaded, and its first switch's `prev` tells what
//!   ran.
//! * **A switch the trace lacks**: a `prev_pid` that is not the task the
//!   story has on that CPU means the CPU switched to `prev_pid` unseen; the
//!   story takes that switch (counted in [`Counts::mismatches`]) before
//!   this one. Lost events cause them; so, on the development VM, do
//!   switches away from the threads of the sandbox's own init (pid 1),
//!   a few per second, which tracefs never reports although it reports
//!   the switches to them.

use super::parse::{Event, Parsed, Record, CLONE_THREAD, CLONE_VM, TLB_REASONS};
use std::collections::HashMap;
use std::string::String;
use std::vec::Vec;

/// An mm of the story (an index into [`Story::mms`]).
pub type MmKey = u32;

/// What one step of a CPU does, for the replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// A task with mm `.0` runs (it was switched to, or it is the CPU's
    /// first known task).
    User(MmKey),
    /// A task without an mm runs.
    Kernel,
    /// The running task exits (`exit_mm()`; the CPU is lazy on its mm).
    Exit,
    /// The running task execs into a new mm.
    Exec(MmKey),
}

/// One step of the per-CPU stream, in trace order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// The CPU.
    pub cpu: u32,
    /// What it does.
    pub kind: StepKind,
}

/// Everything the story counts over the whole trace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    /// `sched_switch` events (plus inferred ones, [`Counts::mismatches`]).
    pub switches: u64,
    /// User mm → no-mm task switches, plus exits.
    pub lazy_entries: u64,
    /// Switches from a lazy CPU to a task of the mm it has loaded.
    pub unlazy_same: u64,
    /// Switches from a lazy CPU to a task of another mm.
    pub unlazy_other: u64,
    /// User → user switches between threads of one mm (no mm switch).
    pub user_user_same: u64,
    /// User → user switches between mms.
    pub user_user_other: u64,
    /// Switches between tasks without an mm on a lazy CPU.
    pub kernel_kernel: u64,
    /// Tasks created without `CLONE_VM` by a task with an mm: forks (each a
    /// new mm).
    pub forks: u64,
    /// `CLONE_VM | CLONE_THREAD` children.
    pub threads: u64,
    /// `CLONE_VM` children outside the thread group.
    pub vforks: u64,
    /// Children of tasks without an mm.
    pub kthreads: u64,
    /// `sched_process_exec` events.
    pub execs: u64,
    /// `sched_process_exit` events.
    pub exits: u64,
    /// mms born (forks and execs).
    pub births: u64,
    /// mms whose last task exited or exec'd away.
    pub deaths: u64,
    /// Sum and maximum over deaths of the other CPUs still lazy on the mm.
    pub lazy_at_death: u64,
    /// The most at one death.
    pub lazy_at_death_max: u64,
    /// Deaths whose last lazy CPU (where x86 Linux's final `__mmdrop()`
    /// ran) was not the exiting CPU.
    pub final_drop_elsewhere: u64,
    /// `tlb_flush` events by reason ([`TLB_REASONS`]).
    pub tlb_flushes: [u64; 6],
    /// IPIs sent for TLB flushes (callback `flush_tlb_func`, or sent from
    /// `on_each_cpu_cond_mask()`, x86's `native_flush_tlb_multi()`), and
    /// their targets.
    pub tlb_ipis: u64,
    /// CPUs those reached.
    pub tlb_ipi_targets: u64,
    /// Every other IPI sent.
    pub other_ipis: u64,
    /// Switches the trace lacks: `prev_pid` differed from the story's task
    /// on that CPU, and the story inferred the switch.
    pub mismatches: u64,
    /// Events about tasks the story does not know (created before the
    /// snapshot and never seen, or lost events).
    pub unknown_tasks: u64,
}

#[derive(Clone, Copy, Debug)]
struct TaskInfo {
    tgid: i32,
    mm: Option<MmKey>,
}

/// One mm of the story.
#[derive(Clone, Debug, Default)]
pub struct MmInfo {
    /// Live tasks.
    pub users: u32,
    /// Born in the trace (fork or exec), not alive at its start.
    pub born: bool,
    /// Died in the trace: (timestamp, CPU of the last exit).
    pub death: Option<(u64, u32)>,
    /// Other CPUs lazy on it at its death.
    pub lazy_at_death: u32,
    /// The task whose fork or exec made it (0 if alive at the start), and when.
    pub born_by: i32,
    /// The birth's timestamp (ns).
    pub born_at: u64,
    /// The task whose exit or exec was its death (0 while alive).
    pub died_by: i32,
}

#[derive(Clone, Copy, Debug, Default)]
struct CpuSt {
    curr: Option<i32>,
    loaded: Option<MmKey>,
    lazy: bool,
}

/// The reconstruction of one trace.
#[derive(Clone, Debug, Default)]
pub struct Story {
    /// CPUs of the recorded machine.
    pub cpus: u32,
    /// Length of the trace in seconds (the header's, else first to last event).
    pub seconds: f64,
    /// The whole trace's counts.
    pub counts: Counts,
    /// Every mm, by [`MmKey`].
    pub mms: Vec<MmInfo>,
    /// The per-CPU stream for the replay, in trace order.
    pub steps: Vec<Step>,
    /// Events lost, per CPU (0 everywhere for a complete trace).
    pub lost: Vec<u64>,
    /// `trace_marker` writes: (record, text).
    pub markers: Vec<(Record, String)>,
    tasks: HashMap<i32, TaskInfo>,
    now: u64,
    by_tgid: HashMap<i32, MmKey>,
    cpu: Vec<CpuSt>,
}

impl Story {
    /// Reconstructs the story of a parsed trace.
    pub fn new(p: &Parsed) -> Story {
        let cpus = p
            .cpus
            .unwrap_or_else(|| p.records.iter().map(|r| r.cpu + 1).max().unwrap_or(1));
        let span = match (p.records.first(), p.records.last()) {
            (Some(a), Some(b)) => (b.ts.saturating_sub(a.ts)) as f64 / 1e9,
            _ => 0.0,
        };
        let mut s = Story {
            cpus,
            seconds: p.seconds.unwrap_or(span),
            lost: p.lost.clone(),
            cpu: std::vec![CpuSt::default(); cpus as usize],
            ..Story::default()
        };
        for &(tid, tgid, kthread) in &p.tasks {
            let mm = if kthread {
                None
            } else {
                Some(s.mm_of_group(tgid))
            };
            s.add_task(tid, tgid, mm);
        }
        for r in &p.records {
            s.record(r);
        }
        s
    }

    /// Whether events were lost while recording.
    pub fn lossy(&self) -> bool {
        self.lost.iter().any(|&n| n > 0)
    }

    fn new_mm(&mut self, born: bool, by: i32) -> MmKey {
        self.mms.push(MmInfo {
            born,
            born_by: by,
            born_at: self.now,
            ..MmInfo::default()
        });
        if born {
            self.counts.births += 1;
        }
        (self.mms.len() - 1) as MmKey
    }

    fn mm_of_group(&mut self, tgid: i32) -> MmKey {
        if let Some(&m) = self.by_tgid.get(&tgid) {
            return m;
        }
        let m = self.new_mm(false, 0);
        self.by_tgid.insert(tgid, m);
        m
    }

    fn add_task(&mut self, tid: i32, tgid: i32, mm: Option<MmKey>) {
        if let Some(old) = self.tasks.remove(&tid) {
            // Seen both in the snapshot and created after tracing began.
            if let Some(m) = old.mm {
                self.mms[m as usize].users -= 1;
            }
        }
        if let Some(m) = mm {
            self.mms[m as usize].users += 1;
        }
        self.tasks.insert(tid, TaskInfo { tgid, mm });
    }

    /// CPUs other than `except` that have `m` loaded (lazily or not).
    fn loaded_elsewhere(&self, m: MmKey, except: u32) -> u32 {
        self.cpu
            .iter()
            .enumerate()
            .filter(|&(c, st)| c != except as usize && st.loaded == Some(m))
            .count() as u32
    }

    fn set_loaded(&mut self, cpu: u32, mm: Option<MmKey>) {
        let old = std::mem::replace(&mut self.cpu[cpu as usize].loaded, mm);
        if old == mm {
            return;
        }
        // The last CPU to leave a dead mm: x86 Linux's final mmdrop ran here
        // (a scan only when a dead mm is left, which is rare).
        if let Some(m) = old {
            if let Some((_, exiting)) = self.mms[m as usize].death {
                if exiting != cpu && self.loaded_elsewhere(m, cpu) == 0 {
                    self.counts.final_drop_elsewhere += 1;
                }
            }
        }
    }

    fn step(&mut self, cpu: u32, kind: StepKind) {
        self.steps.push(Step { cpu, kind });
    }

    fn switch_to(&mut self, cpu: u32, next: i32) {
        let c = cpu as usize;
        let next_mm = match self.tasks.get(&next) {
            Some(t) => t.mm,
            None if next == 0 => None, // the idle task
            None => {
                self.counts.unknown_tasks += 1;
                None
            }
        };
        let st = self.cpu[c];
        self.cpu[c].curr = Some(next);
        match next_mm {
            Some(m) => {
                match (st.loaded, st.lazy) {
                    (Some(l), true) if l == m => self.counts.unlazy_same += 1,
                    (Some(_), true) => self.counts.unlazy_other += 1,
                    (Some(l), false) if l == m => self.counts.user_user_same += 1,
                    (Some(_), false) => self.counts.user_user_other += 1,
                    (None, _) => {}
                }
                self.set_loaded(cpu, Some(m));
                self.cpu[c].lazy = false;
                self.step(cpu, StepKind::User(m));
            }
            None => {
                match (st.loaded, st.lazy) {
                    (Some(_), false) => {
                        self.counts.lazy_entries += 1;
                        self.cpu[c].lazy = true;
                    }
                    (Some(_), true) => self.counts.kernel_kernel += 1,
                    (None, _) => {}
                }
                self.step(cpu, StepKind::Kernel);
            }
        }
    }

    /// `task`'s mm loses a user (exit or exec) on `cpu` at `ts`.
    fn drop_user(&mut self, m: MmKey, cpu: u32, ts: u64, by: i32) {
        let info = &mut self.mms[m as usize];
        info.users = info.users.saturating_sub(1);
        if info.users > 0 {
            return;
        }
        let lazy = self.loaded_elsewhere(m, cpu);
        let info = &mut self.mms[m as usize];
        info.death = Some((ts, cpu));
        info.died_by = by;
        info.lazy_at_death = lazy;
        self.counts.deaths += 1;
        self.counts.lazy_at_death += lazy as u64;
        self.counts.lazy_at_death_max = self.counts.lazy_at_death_max.max(lazy as u64);
    }

    fn record(&mut self, r: &Record) {
        let cpu = r.cpu;
        self.now = r.ts;
        match r.event {
            Event::Switch { prev_pid, next_pid } => {
                self.counts.switches += 1;
                let st = self.cpu[cpu as usize];
                if st.curr.is_none() {
                    // The CPU's first event: what ran before.
                    self.cpu[cpu as usize].curr = Some(prev_pid);
                    if let Some(m) = self.tasks.get(&prev_pid).and_then(|t| t.mm) {
                        self.set_loaded(cpu, Some(m));
                        self.step(cpu, StepKind::User(m));
                    }
                } else if st.curr != Some(prev_pid) {
                    // A switch the trace lacks: the CPU got from its task
                    // to `prev_pid` somehow; take the direct switch.
                    self.counts.mismatches += 1;
                    self.counts.switches += 1;
                    self.switch_to(cpu, prev_pid);
                }
                self.switch_to(cpu, next_pid);
            }
            Event::NewTask { pid, clone_flags } => {
                let parent = self.tasks.get(&r.pid).copied();
                let parent = match parent {
                    Some(p) => p,
                    None if r.pid == 0 => TaskInfo { tgid: 0, mm: None },
                    None => {
                        self.counts.unknown_tasks += 1;
                        return;
                    }
                };
                let tgid = if clone_flags & CLONE_THREAD != 0 {
                    parent.tgid
                } else {
                    pid
                };
                let mm = match parent.mm {
                    None => {
                        self.counts.kthreads += 1;
                        None
                    }
                    Some(m) if clone_flags & CLONE_VM != 0 => {
                        if clone_flags & CLONE_THREAD != 0 {
                            self.counts.threads += 1;
                        } else {
                            self.counts.vforks += 1;
                        }
                        Some(m)
                    }
                    Some(_) => {
                        self.counts.forks += 1;
                        Some(self.new_mm(true, pid))
                    }
                };
                self.add_task(pid, tgid, mm);
            }
            Event::Exec { pid, old_pid } => {
                self.counts.execs += 1;
                let Some(t) = self.tasks.remove(&old_pid) else {
                    self.counts.unknown_tasks += 1;
                    return;
                };
                if old_pid != pid {
                    // The old leader exited already (de_thread()); the
                    // execing thread takes its pid.
                    self.tasks.remove(&pid);
                    if self.cpu[cpu as usize].curr == Some(old_pid) {
                        self.cpu[cpu as usize].curr = Some(pid);
                    }
                }
                let new = self.new_mm(true, pid);
                self.mms[new as usize].users += 1;
                self.tasks.insert(
                    pid,
                    TaskInfo {
                        tgid: pid,
                        mm: Some(new),
                    },
                );
                self.set_loaded(cpu, Some(new));
                self.cpu[cpu as usize].lazy = false;
                self.step(cpu, StepKind::Exec(new));
                if let Some(m) = t.mm {
                    self.drop_user(m, cpu, r.ts, pid);
                }
            }
            Event::Exit { pid, .. } => {
                self.counts.exits += 1;
                let Some(t) = self.tasks.get_mut(&pid) else {
                    self.counts.unknown_tasks += 1;
                    return;
                };
                let Some(m) = t.mm.take() else {
                    return; // a kernel thread
                };
                self.counts.lazy_entries += 1;
                self.cpu[cpu as usize].lazy = true;
                self.step(cpu, StepKind::Exit);
                self.drop_user(m, cpu, r.ts, pid);
            }
            Event::Free { pid } => {
                self.tasks.remove(&pid);
            }
            Event::TlbFlush { reason } => {
                if let Some(n) = self.counts.tlb_flushes.get_mut(reason as usize) {
                    *n += 1;
                }
            }
            Event::Ipi { targets, tlb } => {
                if tlb {
                    self.counts.tlb_ipis += 1;
                    self.counts.tlb_ipi_targets += targets as u64;
                } else {
                    self.counts.other_ipis += 1;
                }
            }
            Event::Marker(ref m) => self.markers.push((r.clone(), m.clone())),
            Event::Other => {}
        }
    }

    /// Switches of `pid` away from its CPU before line `line`.
    pub fn switches_away(p: &Parsed, pid: i32, line: usize) -> u64 {
        p.records
            .iter()
            .take_while(|r| r.line < line)
            .filter(|r| matches!(r.event, Event::Switch { prev_pid, .. } if prev_pid == pid))
            .count() as u64
    }
}

/// The names of [`Counts::tlb_flushes`]' entries.
pub fn tlb_reason(i: usize) -> &'static str {
    TLB_REASONS[i]
}
