//! The simulated machine: CPUs, tasks, mms, a scheduler, IPIs, and the oracle
//! that makes every lifetime bug loud.
//!
//! A [`Machine`] composes one lazy-mm scheme ([`LazyMm`]) with a small SMP
//! machine and implements the [`Kernel`] interface the scheme needs. Each CPU
//! runs a script of [`Op`]s (a [`Scenario`]) on its own thread — a loom or
//! shuttle thread under the checkers, a real thread in `examples/compare.rs`.
//!
//! # The machine
//!
//! * **CPUs** have a current task (a user task of some mm, or a kernel
//!   thread / idle / a dead task, all "without an mm"), an `active_mm`, the
//!   mm their page-table base register points at (`loaded_mm`), and `is_lazy`.
//!   This state is private to the CPU (its own thread, including the IPI
//!   handlers it runs) and lives in the layer's `UnsafeCell`.
//! * **mms** have `mm_users`, `mm_count`, a cpumask, and a body — the state
//!   the free destroys — in the layer's `UnsafeCell`. `mm_count` starts at 1
//!   (the reference all users share) and `mm_users` at the number of tasks.
//! * **Context switch** follows the four cases of Linux's `context_switch()`:
//!   user → kernel ([`LazyMm::enter_lazy`]), kernel → kernel
//!   ([`LazyMm::transfer_lazy`]), kernel → user (switch the mm, then
//!   `finish_task_switch()`'s deferred [`LazyMm::leave_lazy`] of the old one)
//!   and user → user (switch the mm). `switch_mm` sets the CPU's bit in the new
//!   mm's cpumask before loading it and clears (release) its bit in the old
//!   one after.
//! * **Exit**: `exit_mm()` turns the task into a lazy user of its own mm
//!   ([`LazyMm::enter_lazy`]), then `mmput()`; when `mm_users` reaches 0,
//!   `__mmput()` calls [`LazyMm::mm_users_zero`], tears the address space down
//!   and drops the users' `mm_count` reference; when `mm_count` reaches 0,
//!   `__mmdrop()` calls [`LazyMm::final_drop`] and frees the mm.
//! * **IPIs**: a per-CPU mailbox (one pending bit per sender, plus each
//!   sender's request word). A CPU serves its mailbox at interrupt-enabled
//!   points: before each operation, inside exit between `exit_mm()` and
//!   `mmput()`, in its idle loop once its script is done, and while it waits
//!   for its own IPIs to be acknowledged — so two CPUs that IPI each other do
//!   not deadlock.
//! * **CPU down**: after its script each CPU switches to the kernel's own mm
//!   and drops its lazy use (`sched_force_init_mm()`), then idles serving
//!   IPIs until every CPU is done.
//! * **Causality** (DESIGN.md, "scheduling is causality"): a user task is
//!   pinned to one CPU, so everything it did happens before its exit.
//!
//! # The oracle
//!
//! * A CPU uses the mm it has loaded at every step it takes, lazy or not —
//!   the hardware may walk those page tables at any time — and an mm is used
//!   by every `mmgrab` / `mmdrop` on it. A use of a freed mm panics with
//!   **"use-after-free of mm..."**; so does a free while any CPU still has
//!   the mm loaded. Each use reads the mm's body in the layer's `UnsafeCell`
//!   and the free writes it, so under loom a use that is not ordered before
//!   the free by happens-before is also a *causality violation*, even when
//!   the scheduled order hid it.
//! * **"double free of mm..."**, **"mm_count of mm... went negative"**,
//!   **"mm_users of mm... went negative"**.
//! * At the end of every execution ([`Machine::check_end`]): **"leak: mm...
//!   was never freed"** for any mm not freed exactly once.
//!
//! The oracle's ground truth (which CPU has which mm loaded, how often each
//! mm was freed) is kept in [`crate::sync::shadow`] words, which no checker
//! sees: they record the order in which the checker scheduled the steps.
//!
//! # Limits
//!
//! At most [`MAX_CPUS`] (64) CPUs: a cpumask is one word and each mailbox has
//! one pending bit per sender.

pub mod harness;
mod mailbox;
mod report;
mod scenario;
pub mod tlb;
pub mod walk;

pub use scenario::{Op, Scenario, SplitMix};

use crate::check::bugs::BugSwitch;
use crate::cpu::{AtomicCpuSet, CpuId, CpuSet};
use crate::lazy::{Kernel, LazyMm, MmHandle};
use crate::sync::shadow::Shadow;
use crate::sync::thread::{spawn, Arc, Condvar, Mutex};
use crate::sync::{spin_loop, AtomicUsize, Ordering::*, UnsafeCell, CHECKED};
use crossbeam_utils::CachePadded;
use report::{Context, Events, Hook, HookStack};
use std::format;
use std::vec::Vec;

/// Most CPUs a machine can have.
pub const MAX_CPUS: usize = 64;

/// An mm of the machine: `init_mm` (the kernel's own, never freed) or one of
/// the scenario's mms.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MmId(u32);

impl MmId {
    /// The kernel's own mm.
    pub const INIT: MmId = MmId(0);

    /// The scenario's mm number `i` (`0..nr_mms`).
    pub const fn new(i: usize) -> Self {
        MmId(i as u32 + 1)
    }

    /// `None` for `init_mm` (how schemes see the kernel's own mm).
    pub const fn real(self) -> Option<MmId> {
        match self.0 {
            0 => None,
            _ => Some(self),
        }
    }

    /// `Some(i)` for the scenario's mm `i`, `None` for `init_mm`.
    pub const fn index(self) -> Option<usize> {
        match self.0 {
            0 => None,
            n => Some(n as usize - 1),
        }
    }
}

impl core::fmt::Debug for MmId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.index() {
            None => f.write_str("init_mm"),
            Some(i) => write!(f, "mm{i}"),
        }
    }
}

impl core::fmt::Display for MmId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

impl MmHandle for MmId {
    #[inline]
    fn to_word(self) -> usize {
        (self.0 as usize) << 3
    }
    #[inline]
    fn from_word(word: usize) -> Self {
        MmId((word >> 3) as u32)
    }
}

/// The task a CPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// A kernel thread, idle, or an exited task: no mm of its own.
    Kernel,
    /// The CPU's user task of this mm.
    User(MmId),
}

/// A CPU's private scheduler state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuState {
    /// The running task.
    pub curr: Task,
    /// `current->active_mm`.
    pub active_mm: MmId,
    /// The mm the page-table base register points at (`cpu_tlbstate.loaded_mm`).
    pub loaded_mm: MmId,
    /// Running a task without an mm on a borrowed user mm.
    pub is_lazy: bool,
}

/// Known-bad variants of the machine's own kernel code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineBug {
    /// CPU down clears the CPU from every cpumask *before* switching its idle
    /// task off its lazy mm (powerpc `cleanup_cpu_mmu_context()`, reference
    /// §1.8 #1): a shootdown in that window misses the CPU.
    HotplugClearsCpumask,
}

/// Per-CPU counters the machine keeps (model builds only; not in protocols).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Context switches.
    pub switches: u64,
    /// Switches that entered lazy mode (user → kernel, and exits).
    pub lazy_enters: u64,
    /// Process exits (`exit_mm`).
    pub exits: u64,
    /// Atomic RMWs on lines other CPUs write (counts, cpumasks, remote words).
    pub shared_rmws: u64,
    /// IPIs sent to other CPUs.
    pub ipis: u64,
    /// mms freed.
    pub frees: u64,
}

impl core::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Self) {
        self.switches += o.switches;
        self.lazy_enters += o.lazy_enters;
        self.exits += o.exits;
        self.shared_rmws += o.shared_rmws;
        self.ipis += o.ipis;
        self.frees += o.frees;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ipi {
    None,
    ShootLazy(MmId),
}

/// Wakes a CPU that waits for an IPI, an acknowledgement or the end of the
/// run. Under the checkers a waiting CPU blocks on a condition variable
/// instead of spinning (a spinning idle CPU multiplies loom's executions
/// without exploring anything new); with real threads it spins.
///
/// The mutex adds no happens-before edge the protocol relies on: every event
/// that rings a doorbell is already published by a release RMW that the
/// woken CPU acquires.
struct Doorbell {
    lock: Mutex<()>,
    cv: Condvar,
}

impl Doorbell {
    fn new() -> Self {
        Self {
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    }

    fn ring(&self) {
        if CHECKED {
            let _g = self.lock.lock().unwrap();
            self.cv.notify_all();
        }
    }

    /// Returns once `wake()` holds (immediately in real builds, where the
    /// caller spins).
    fn wait(&self, wake: impl Fn() -> bool) {
        if CHECKED {
            let mut g = self.lock.lock().unwrap();
            while !wake() {
                g = self.cv.wait(g).unwrap();
            }
        } else {
            spin_loop();
        }
    }
}

struct Cpu {
    doorbell: Doorbell,
    state: UnsafeCell<CpuState>,
    /// This CPU's outgoing IPI request; written only while no IPI of this
    /// CPU is outstanding.
    request: UnsafeCell<Ipi>,
    /// Mailbox: bit `s` = CPU `s` has a request for us.
    pending: AtomicUsize,
    /// Oracle: `loaded_mm`, as scheduled.
    loaded: Shadow,
    /// Oracle: the scheme hooks this CPU is inside, for failure reports.
    hooks: HookStack,
    stats: UnsafeCell<Stats>,
}

struct MmBody {
    freed: bool,
}

struct Mm {
    users: AtomicUsize,
    count: AtomicUsize,
    cpumask: AtomicCpuSet<1>,
    body: UnsafeCell<MmBody>,
    /// Oracle: times freed, and whether `exit_mmap` ran.
    freed: Shadow,
    torn_down: Shadow,
    /// Oracle: recent events, for failure reports (under the checkers).
    events: Events,
}

/// A simulated SMP machine running lazy-mm scheme `S` (see the module docs).
pub struct Machine<S> {
    scheme: S,
    scenario: Scenario,
    cpus: Vec<CachePadded<Cpu>>,
    mms: Vec<CachePadded<Mm>>,
    done: AtomicUsize,
    bug: BugSwitch<MachineBug>,
    inline_ipis: bool,
    /// The line a failure report gives to replay it (set by the harness).
    replay: Option<std::string::String>,
}

// SAFETY: a CPU's `state` and `stats` cells are only accessed by the thread
// that runs that CPU (its IPI handlers included), or after every CPU thread
// has been joined; `request` is written by its CPU only while none of its IPIs
// is outstanding and read by targets between the release that posts the IPI
// and their release acknowledgement; an mm's `body` is read by uses and
// written once by the free, and the oracle reports any such pair that is not
// ordered. Everything else is atomic.
unsafe impl<S: Sync> Sync for Machine<S> {}
// SAFETY: see `Sync`; the cells hold plain data.
unsafe impl<S: Send> Send for Machine<S> {}

impl<S> Machine<S>
where
    S: LazyMm + Send + Sync + 'static,
{
    /// A machine running `scenario` under `scheme`, all CPUs idle on `init_mm`.
    pub fn new(scheme: S, scenario: Scenario) -> Self {
        assert!(
            scenario.nr_cpus() <= <Self as Kernel>::NR_CPUS,
            "scenario error: {} has {} CPUs, but the scheme {} covers {} (its CPUS; the machine at most {MAX_CPUS})",
            scenario.label(),
            scenario.nr_cpus(),
            S::NAME,
            S::CPUS,
        );
        let users = scenario.tasks_per_mm();
        let cpus = (0..scenario.nr_cpus())
            .map(|_| {
                CachePadded::new(Cpu {
                    doorbell: Doorbell::new(),
                    state: UnsafeCell::new(CpuState {
                        curr: Task::Kernel,
                        active_mm: MmId::INIT,
                        loaded_mm: MmId::INIT,
                        is_lazy: false,
                    }),
                    request: UnsafeCell::new(Ipi::None),
                    pending: AtomicUsize::new(0),
                    loaded: Shadow::new(0),
                    hooks: HookStack::default(),
                    stats: UnsafeCell::new(Stats::default()),
                })
            })
            .collect();
        let mms = users
            .iter()
            .map(|&u| {
                CachePadded::new(Mm {
                    users: AtomicUsize::new(u),
                    count: AtomicUsize::new(1),
                    cpumask: AtomicCpuSet::new(),
                    body: UnsafeCell::new(MmBody { freed: false }),
                    freed: Shadow::new(0),
                    torn_down: Shadow::new(0),
                    events: Events::new(),
                })
            })
            .collect();
        Self {
            scheme,
            scenario,
            cpus,
            mms,
            done: AtomicUsize::new(0),
            bug: BugSwitch::off(),
            inline_ipis: false,
            replay: None,
        }
    }
}

impl<S: LazyMm + Send + Sync + 'static> Machine<S> {
    /// The scheme's name.
    pub fn scheme_name(&self) -> &'static str {
        S::NAME
    }

    /// Switches on a known bug of the machine's own kernel code.
    #[cfg(any(loom, lazymm_shuttle, feature = "bug-variants"))]
    pub fn with_bug(mut self, bug: MachineBug) -> Self {
        self.bug = BugSwitch::on(bug);
        self
    }

    /// Runs IPI handlers directly on the target CPU's state instead of
    /// through mailboxes: for driving the machine from one thread with
    /// [`step`](Self::step).
    pub fn with_inline_ipis(mut self) -> Self {
        self.inline_ipis = true;
        self
    }

    /// The line a failure report prints to replay the failure (the harness
    /// sets the checker's rerun command here).
    pub fn with_replay(mut self, line: impl Into<std::string::String>) -> Self {
        self.replay = Some(line.into());
        self
    }

    /// The scenario the machine runs.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The scheme.
    pub fn scheme(&self) -> &S {
        &self.scheme
    }

    /// Number of CPUs.
    pub fn nr_cpus(&self) -> usize {
        self.cpus.len()
    }

    /// Runs every CPU's script on its own thread, joins them, and runs the
    /// end-of-execution oracle checks ([`finish`](Self::finish)).
    ///
    /// The calling thread only waits: an oracle panic then always happens
    /// on a CPU thread, which loom and shuttle report as the failure.
    pub fn run(this: &Arc<Self>) {
        run_cpus(this, this.nr_cpus(), Self::run_cpu);
        this.finish();
    }

    /// After every CPU went down: the hotplug teardown of each CPU
    /// ([`LazyMm::cpu_dead`]), then the end-of-execution checks.
    pub fn finish(&self) {
        for c in 0..self.nr_cpus() {
            let cpu = CpuId::new(c);
            self.hook(cpu, Hook::CpuDead, None, || self.scheme.cpu_dead(self, cpu));
        }
        self.check_end();
    }

    /// Runs `cpu`'s script, takes it down, and idles serving IPIs until all
    /// CPUs are done.
    pub fn run_cpu(&self, cpu: CpuId) {
        for i in 0..self.scenario.script(cpu.index()).len() {
            self.serve_ipis(cpu);
            self.step(cpu, self.scenario.script(cpu.index())[i]);
        }
        self.serve_ipis(cpu);
        self.cpu_down(cpu);
        // Release/acquire on `done` only orders the idle loop's exit; the
        // oracle's end checks run after join.
        if self.done.fetch_add(1, Release) + 1 == self.nr_cpus() {
            for c in self.cpus.iter() {
                c.doorbell.ring();
            }
        }
        self.wait_serving(cpu, || self.done.load(Acquire) == self.nr_cpus());
    }

    /// Serves `cpu`'s mailbox until `until()` holds (blocking on the
    /// doorbell under the checkers, spinning otherwise).
    fn wait_serving(&self, cpu: CpuId, until: impl Fn() -> bool) {
        let me = &self.cpu(cpu);
        loop {
            self.serve_ipis(cpu);
            if until() {
                return;
            }
            me.doorbell
                .wait(|| until() || me.pending.load(Relaxed) != 0);
        }
    }

    /// One operation on `cpu` (for sequential drivers; see
    /// [`with_inline_ipis`](Self::with_inline_ipis)).
    pub fn step(&self, cpu: CpuId, op: Op) {
        self.touch(cpu);
        match op {
            Op::User(mm) => self.context_switch(cpu, Task::User(mm)),
            Op::Kthread => self.context_switch(cpu, Task::Kernel),
            Op::Exit => self.exit(cpu),
        }
    }

    /// Switches `cpu` to the kernel's own mm, dropping any lazy use
    /// (`sched_force_init_mm()` on CPU down). Sequential drivers call it at the end.
    pub fn cpu_down(&self, cpu: CpuId) {
        let st = self.state(cpu);
        if let Task::User(mm) = st.curr {
            panic!("scenario error: {cpu} goes down while its task of {mm} still runs");
        }
        if self.bug.is(MachineBug::HotplugClearsCpumask) {
            // BUG: cleanup_cpu_mmu_context() before the idle task has left
            // its lazy mm.
            for mm in self.mms.iter() {
                mm.cpumask.remove(cpu, Release);
            }
            self.serve_ipis(cpu);
            self.touch(cpu);
        }
        let mm = st.active_mm;
        self.switch_mm(cpu, MmId::INIT);
        self.update(cpu, |s| {
            s.active_mm = MmId::INIT;
            s.is_lazy = false;
        });
        if mm != MmId::INIT {
            self.hook(cpu, Hook::LeaveLazy, Some(mm), || {
                self.scheme.leave_lazy(self, cpu, mm, None)
            });
        }
    }

    fn context_switch(&self, cpu: CpuId, next: Task) {
        let st = self.state(cpu);
        self.count(cpu, |s| s.switches += 1);
        match next {
            Task::Kernel => {
                let mm = st.active_mm;
                self.update(cpu, |s| s.curr = Task::Kernel);
                if mm == MmId::INIT {
                    return;
                }
                match st.curr {
                    Task::User(_) => {
                        // user -> kernel: lazy + mmgrab_lazy_tlb()
                        self.update(cpu, |s| s.is_lazy = true);
                        self.count(cpu, |s| s.lazy_enters += 1);
                        self.hook(cpu, Hook::EnterLazy, Some(mm), || {
                            self.scheme.enter_lazy(self, cpu, mm)
                        });
                    }
                    // kernel -> kernel: the lazy use is transferred
                    Task::Kernel => self.hook(cpu, Hook::TransferLazy, Some(mm), || {
                        self.scheme.transfer_lazy(self, cpu, mm)
                    }),
                }
            }
            Task::User(mm) => {
                if st.curr == next {
                    return;
                }
                let prev_active = st.active_mm;
                self.switch_mm(cpu, mm);
                self.update(cpu, |s| {
                    s.curr = next;
                    s.active_mm = mm;
                    s.is_lazy = false;
                });
                // finish_task_switch(): kernel -> user drops rq->prev_mm.
                if st.curr == Task::Kernel && prev_active != MmId::INIT {
                    self.touch(cpu);
                    self.hook(cpu, Hook::LeaveLazy, Some(prev_active), || {
                        self.scheme.leave_lazy(self, cpu, prev_active, Some(mm))
                    });
                }
            }
        }
    }

    /// `switch_mm_irqs_off()`: set our bit in `next`'s cpumask, load it,
    /// clear our bit in the previous mm's cpumask.
    fn switch_mm(&self, cpu: CpuId, next: MmId) {
        let prev = self.state(cpu).loaded_mm;
        if prev == next {
            return;
        }
        self.hook(cpu, Hook::SwitchingMm, next.real(), || {
            self.scheme
                .switching_mm(self, cpu, prev.real(), next.real())
        });
        if next != MmId::INIT {
            // Relaxed: this CPU's user task of `next` holds mm_users and will
            // only drop it (a release RMW) after this point, so the bit is
            // visible to whoever observes mm_users == 0.
            self.mm(next).cpumask.insert(cpu, Relaxed);
            self.count(cpu, |s| s.shared_rmws += 1);
        }
        self.update(cpu, |s| s.loaded_mm = next);
        self.cpu(cpu).loaded.set(next.0 as usize);
        if let Some(i) = next.index() {
            self.mms[i]
                .events
                .note(cpu, format_args!("loads it (from {prev})"));
        }
        if let Some(i) = prev.index() {
            self.mms[i]
                .events
                .note(cpu, format_args!("loads {next} in its place"));
        }
        self.touch(cpu);
        if prev != MmId::INIT {
            // Release: pairs with the acquire snapshot in mm_cpumask(); our
            // last use of `prev` happens before whoever reads the bit clear.
            // Before the scheme's hook: the hook may drop the last reference
            // to `prev` (cached does), after which `prev` is gone.
            self.mm(prev).cpumask.remove(cpu, Release);
            self.count(cpu, |s| s.shared_rmws += 1);
        }
        self.hook(cpu, Hook::SwitchMm, prev.real(), || {
            self.scheme.switch_mm(self, cpu, prev.real(), next.real())
        });
    }

    fn exit(&self, cpu: CpuId) {
        let st = self.state(cpu);
        let Task::User(mm) = st.curr else {
            panic!("scenario error: {cpu} exits without a user task");
        };
        self.count(cpu, |s| {
            s.exits += 1;
            s.lazy_enters += 1;
        });
        // exit_mm(): mmgrab_lazy_tlb(); current->mm = NULL; enter_lazy_tlb().
        self.mm(mm).events.note(cpu, format_args!("exit_mm()"));
        self.hook(cpu, Hook::EnterLazy, Some(mm), || {
            self.scheme.enter_lazy(self, cpu, mm)
        });
        self.update(cpu, |s| {
            s.curr = Task::Kernel;
            s.is_lazy = true;
        });
        self.serve_ipis(cpu);
        self.touch(cpu);
        self.mmput(cpu, mm);
    }

    fn mmput(&self, cpu: CpuId, mm: MmId) {
        self.use_mm(cpu, mm);
        // atomic_dec_and_test(&mm->mm_users): release so that everything
        // this task did happens before the teardown; acquire on the last one.
        let old = self.mm(mm).users.fetch_sub(1, AcqRel);
        self.count(cpu, |s| s.shared_rmws += 1);
        let to = old.wrapping_sub(1) as isize;
        self.mm(mm)
            .events
            .note(cpu, format_args!("mmput (mm_users {old} -> {to})"));
        if old == 0 {
            self.fail(
                Some(cpu),
                Some(mm),
                format!("mm_users of {mm} went negative"),
            );
        }
        if old == 1 {
            self.hook(cpu, Hook::Mmput, None, || {
                self.hook(cpu, Hook::MmUsersZero, Some(mm), || {
                    self.scheme.mm_users_zero(self, cpu, mm)
                });
                self.mm(mm).torn_down.set(1); // exit_mmap()
                self.mmdrop(cpu, mm);
            });
        }
    }

    fn free_mm(&self, cpu: CpuId, mm: MmId) {
        let m = self.mm(mm);
        m.events.note(cpu, format_args!("frees it"));
        if m.freed.add(1) != 0 {
            self.fail(Some(cpu), Some(mm), format!("double free of {mm} on {cpu}"));
        }
        if m.torn_down.get() == 0 {
            self.fail(
                Some(cpu),
                Some(mm),
                format!("use-after-free of {mm}: freed on {cpu} while mm_users > 0 (its tasks still use it)"),
            );
        }
        for (c, other) in self.cpus.iter().enumerate() {
            if other.loaded.get() == mm.0 as usize {
                self.fail(
                    Some(cpu),
                    Some(mm),
                    format!(
                        "use-after-free of {mm}: freed on {cpu} while cpu{c} still has it loaded"
                    ),
                );
            }
        }
        self.count(cpu, |s| s.frees += 1);
        loom_race(|| {
            // SAFETY: the free is the one writer of the body; a use that is
            // not ordered before it is a data race that loom reports.
            m.body.with_mut(|b| unsafe { (*b).freed = true })
        })
        .unwrap_or_else(|loom| {
            self.fail(
                Some(cpu),
                Some(mm),
                format!("use-after-free of {mm}: {cpu} frees it after a use that is not ordered before the free (loom: {loom})"),
            )
        });
    }

    /// The hardware may walk the page tables `cpu` has loaded at any time.
    fn touch(&self, cpu: CpuId) {
        let mm = self.state(cpu).loaded_mm;
        if mm != MmId::INIT {
            self.use_mm(cpu, mm);
        }
    }

    fn use_mm(&self, cpu: CpuId, mm: MmId) {
        let m = self.mm(mm);
        if m.freed.get() != 0 {
            self.fail(
                Some(cpu),
                Some(mm),
                format!("use-after-free of {mm}: {cpu} uses it after it was freed"),
            );
        }
        let freed = loom_race(|| {
            // SAFETY: a read; the oracle checks it is ordered before the free.
            m.body.with(|b| unsafe { (*b).freed })
        })
        .unwrap_or_else(|loom| {
            self.fail(
                Some(cpu),
                Some(mm),
                format!(
                    "use-after-free of {mm}: {cpu} uses it, unordered with its free (loom: {loom})"
                ),
            )
        });
        if freed {
            self.fail(
                Some(cpu),
                Some(mm),
                format!("use-after-free of {mm}: {cpu} reads a freed body"),
            );
        }
    }

    /// Runs scheme hook `h` on `cpu` (for `mm`'s event log), recording it
    /// on the CPU's hook stack for failure reports.
    fn hook<R>(&self, cpu: CpuId, h: Hook, mm: Option<MmId>, f: impl FnOnce() -> R) -> R {
        if let Some(i) = mm.and_then(MmId::index) {
            self.mms[i].events.note(cpu, format_args!("{}", h.name()));
        }
        let stack = &self.cpu(cpu).hooks;
        stack.push(h);
        let r = f();
        stack.pop();
        r
    }

    /// The oracle fires: panics with `line` and the report around it
    /// (scheme, scenario, the hooks `cpu` is inside, `mm`'s recent events,
    /// the replay line).
    #[cold]
    #[track_caller]
    fn fail(&self, cpu: Option<CpuId>, mm: Option<MmId>, line: std::string::String) -> ! {
        let ctx = Context {
            scheme: S::NAME,
            scenario: self.scenario.label(),
            cpu: cpu.map(|c| (c, &self.cpu(c).hooks)),
            mm: mm
                .and_then(|m| m.index().map(|i| (m, i)))
                .map(|(m, i)| (format!("{m}"), &self.mms[i].events)),
            replay: self.replay.as_deref(),
        };
        panic!("{}", ctx.report(&line))
    }

    /// Serves `cpu`'s mailbox (an interrupt-enabled point).
    fn serve_ipis(&self, cpu: CpuId) {
        if self.inline_ipis {
            return;
        }
        let me = &self.cpu(cpu);
        // Acquire: pairs with the sender's release fetch_or, so its request
        // word is visible.
        let pending = me.pending.load(Acquire);
        if pending == 0 {
            return;
        }
        let mut bits = pending;
        while bits != 0 {
            let s = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            // SAFETY: the sender wrote its request before posting (release)
            // and will not write it again before our acknowledgement.
            let msg = self.cpus[s].request.with(|r| unsafe { *r });
            self.handle_ipi(cpu, msg);
            // Release: the acknowledgement; pairs with the sender's acquire
            // wait, so our handler happens before whatever it does next.
            me.pending.fetch_and(!(1usize << s), Release);
            self.cpus[s].doorbell.ring();
        }
    }

    fn handle_ipi(&self, cpu: CpuId, msg: Ipi) {
        match msg {
            Ipi::None => panic!("IPI with no request"),
            Ipi::ShootLazy(mm) => self.hook(cpu, Hook::ShootLazyIpi, Some(mm), || {
                // do_shoot_lazy_tlb()
                let st = self.state(cpu);
                if st.active_mm == mm {
                    if let Task::User(_) = st.curr {
                        self.fail(
                            Some(cpu),
                            Some(mm),
                            format!("shootdown of {mm} on {cpu}, which runs one of its user tasks"),
                        );
                    }
                    self.switch_mm(cpu, MmId::INIT);
                    self.update(cpu, |s| {
                        s.active_mm = MmId::INIT;
                        s.is_lazy = false;
                    });
                    self.hook(cpu, Hook::LazyShot, Some(mm), || {
                        self.scheme.lazy_shot(self, cpu, mm)
                    });
                }
            }),
        }
    }

    /// Sends `msg` to every CPU of `targets` (running ours locally) and waits
    /// for every acknowledgement, serving our own mailbox meanwhile.
    fn send_ipis(&self, cpu: CpuId, targets: &CpuSet<1>, msg: Ipi) {
        let others = targets.len() - usize::from(targets.contains(cpu));
        self.count(cpu, |s| s.ipis += others as u64);
        if self.inline_ipis {
            for t in targets.iter() {
                self.handle_ipi(t, msg);
            }
            return;
        }
        let me = &self.cpu(cpu);
        // SAFETY: none of our IPIs is outstanding (we always wait for all
        // acknowledgements before returning), so no target reads the request.
        me.request.with_mut(|r| unsafe { *r = msg });
        let bit = 1usize << cpu.index();
        for t in targets.iter().filter(|&t| t != cpu) {
            // Release: publishes the request; pairs with serve_ipis' acquire.
            self.cpu(t).pending.fetch_or(bit, Release);
            self.cpu(t).doorbell.ring();
        }
        if targets.contains(cpu) {
            self.handle_ipi(cpu, msg);
        }
        for t in targets.iter().filter(|&t| t != cpu) {
            // Acquire: pairs with the target's release acknowledgement.
            let target = &self.cpu(t);
            self.wait_serving(cpu, || target.pending.load(Acquire) & bit == 0);
        }
    }

    /// End-of-execution checks: every mm freed exactly once (no leak).
    /// Call after every CPU thread has finished ([`finish`](Self::finish) does).
    pub fn check_end(&self) {
        for (i, m) in self.mms.iter().enumerate() {
            match m.freed.get() {
                1 => {}
                0 => self.fail(
                    None,
                    Some(MmId::new(i)),
                    format!(
                        "leak: {} was never freed (mm_users {}, mm_count {})",
                        MmId::new(i),
                        m.users.load(Relaxed),
                        m.count.load(Relaxed)
                    ),
                ),
                n => self.fail(
                    None,
                    Some(MmId::new(i)),
                    format!("double free of {}: freed {n} times", MmId::new(i)),
                ),
            }
        }
    }

    /// `cpu`'s scheduler state (for drivers and reference models).
    pub fn state(&self, cpu: CpuId) -> CpuState {
        // SAFETY: only `cpu`'s own thread (or a sequential driver) calls this.
        self.cpu(cpu).state.with(|s| unsafe { *s })
    }

    fn update(&self, cpu: CpuId, f: impl FnOnce(&mut CpuState)) {
        // SAFETY: only `cpu`'s own thread updates its state, and no reference
        // escapes the closure.
        self.cpu(cpu).state.with_mut(|s| f(unsafe { &mut *s }))
    }

    fn count(&self, cpu: CpuId, f: impl FnOnce(&mut Stats)) {
        // SAFETY: as for `update`.
        self.cpu(cpu).stats.with_mut(|s| f(unsafe { &mut *s }))
    }

    /// The counters of every CPU, summed. Call after the run.
    pub fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for c in 0..self.nr_cpus() {
            // SAFETY: called after every CPU thread has been joined.
            total += self.cpus[c].stats.with(|s| unsafe { *s });
        }
        total
    }

    /// `(mm_users, mm_count, times freed)` of the scenario's mm `i`.
    pub fn mm_counts(&self, i: usize) -> (usize, usize, usize) {
        let m = &self.mms[i];
        (m.users.load(Relaxed), m.count.load(Relaxed), m.freed.get())
    }

    #[track_caller]
    fn cpu(&self, cpu: CpuId) -> &Cpu {
        match self.cpus.get(cpu.index()) {
            Some(c) => c,
            None => panic!(
                "CPU id {} out of range: this machine has {} CPUs",
                cpu.index(),
                self.cpus.len()
            ),
        }
    }

    #[track_caller]
    fn mm(&self, mm: MmId) -> &Mm {
        match mm.index() {
            Some(i) => &self.mms[i],
            None => panic!("init_mm has no lifetime to track"),
        }
    }
}

/// Runs `run_cpu(machine, cpu)` for `nr_cpus` CPUs, each on its own thread
/// (a loom or shuttle thread under the checkers), and joins them. The
/// calling thread only waits, so an oracle panic always happens on a CPU
/// thread, which loom and shuttle report as the failure.
fn run_cpus<M: Send + Sync + 'static>(this: &Arc<M>, nr_cpus: usize, run_cpu: fn(&M, CpuId)) {
    let handles: Vec<_> = (0..nr_cpus)
        .map(|c| {
            let m = Arc::clone(this);
            spawn(move || run_cpu(&m, CpuId::new(c)))
        })
        .collect();
    for h in handles {
        h.join().expect("a CPU thread panicked");
    }
}

/// Runs an access to a tracked object's body (the walker machine's page
/// tables); a data race with the free that loom reports panics as the
/// oracle's use-after-free.
fn race_is_uaf<R>(
    obj: impl core::fmt::Display,
    cpu: CpuId,
    what: &str,
    access: impl FnOnce() -> R,
) -> R {
    loom_race(access)
        .unwrap_or_else(|loom| panic!("use-after-free of {obj}: {cpu} {what} (loom: {loom})"))
}

/// Runs an access to an mm's body; if loom reports it as a data race with the
/// free ("Causality violation"), returns loom's message so that the oracle
/// reports it as a use-after-free.
fn loom_race<R>(access: impl FnOnce() -> R) -> Result<R, std::string::String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(access)) {
        Ok(r) => Ok(r),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<std::string::String>()
                .map(|s| s.as_str())
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if msg.contains("Causality violation") {
                return Err(msg.trim().into());
            }
            std::panic::resume_unwind(payload)
        }
    }
}

impl<S: LazyMm + Send + Sync + 'static> Kernel for Machine<S> {
    type Mm = MmId;
    /// The scheme's CPUs, at most [`MAX_CPUS`]: the machine is sized at run
    /// time by its scenario, which [`Machine::new`] checks against this.
    const NR_CPUS: usize = if S::CPUS < MAX_CPUS {
        S::CPUS
    } else {
        MAX_CPUS
    };
    type CpuMask = CpuSet<1>;

    fn mmgrab(&self, cpu: CpuId, mm: MmId) {
        self.use_mm(cpu, mm);
        // atomic_inc(): unordered, the caller already holds a reference.
        let old = self.mm(mm).count.fetch_add(1, Relaxed);
        self.count(cpu, |s| s.shared_rmws += 1);
        let to = old + 1;
        self.mm(mm)
            .events
            .note(cpu, format_args!("mmgrab (mm_count {old} -> {to})"));
        if old == 0 {
            self.fail(
                Some(cpu),
                Some(mm),
                format!("use-after-free of {mm}: mmgrab on {cpu} with mm_count 0"),
            );
        }
    }

    fn mmdrop(&self, cpu: CpuId, mm: MmId) {
        self.use_mm(cpu, mm);
        // atomic_dec_and_test(): release so our uses happen before the free,
        // acquire on the last so the free happens after everyone's.
        let old = self.mm(mm).count.fetch_sub(1, AcqRel);
        self.count(cpu, |s| s.shared_rmws += 1);
        let to = old.wrapping_sub(1) as isize;
        self.mm(mm)
            .events
            .note(cpu, format_args!("mmdrop (mm_count {old} -> {to})"));
        if old == 0 {
            self.fail(
                Some(cpu),
                Some(mm),
                format!("mm_count of {mm} went negative"),
            );
        }
        if old == 1 {
            self.hook(cpu, Hook::Mmdrop, None, || {
                self.hook(cpu, Hook::FinalDrop, Some(mm), || {
                    self.scheme.final_drop(self, cpu, mm)
                });
                self.free_mm(cpu, mm);
            });
        }
    }

    fn mm_users(&self, mm: MmId) -> usize {
        // Acquire: pairs with mmput's release decrement.
        self.mm(mm).users.load(Acquire)
    }

    fn mm_cpumask(&self, mm: MmId) -> CpuSet<1> {
        // Acquire: pairs with the release clear in switch_mm.
        self.mm(mm).cpumask.snapshot(self.nr_cpus(), Acquire)
    }

    fn shoot_lazies(&self, cpu: CpuId, cpus: &CpuSet<1>, mm: MmId) {
        self.send_ipis(cpu, cpus, Ipi::ShootLazy(mm));
    }

    fn mmgrab_many(&self, cpu: CpuId, mm: MmId, n: usize) {
        if n == 0 {
            return;
        }
        self.use_mm(cpu, mm);
        // atomic_add(): unordered, the caller holds a reference.
        let old = self.mm(mm).count.fetch_add(n, Relaxed);
        self.count(cpu, |s| s.shared_rmws += 1);
        if old == 0 {
            self.fail(
                Some(cpu),
                Some(mm),
                format!("use-after-free of {mm}: mmgrab_many on {cpu} with mm_count 0"),
            );
        }
    }

    fn mmdrop_many(&self, cpu: CpuId, mm: MmId, n: usize) {
        if n == 0 {
            return;
        }
        self.use_mm(cpu, mm);
        // Release: our uses happen before whoever makes the final drop.
        let old = self.mm(mm).count.fetch_sub(n, Release);
        self.count(cpu, |s| s.shared_rmws += 1);
        if old <= n {
            self.fail(
                Some(cpu),
                Some(mm),
                format!("mmdrop_many of {n} on {mm} would free it (mm_count was {old})"),
            );
        }
    }

    fn note_shared_rmw(&self, cpu: CpuId, n: usize) {
        self.count(cpu, |s| s.shared_rmws += n as u64);
    }

    fn serve_ipis(&self, cpu: CpuId) {
        Machine::serve_ipis(self, cpu);
    }
}
