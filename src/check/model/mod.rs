//! The simulated machine: CPUs, tasks, mms, a scheduler, IPIs, and the oracle
//! that makes every lifetime bug loud.
//!
//! A [`Machine`] composes one lazy-mm scheme ([`LazyMm`]) with a small SMP
//! machine and implements the [`Kernel`] interface the scheme needs. Each CPU
//! runs a script of [`Op`]s (a [`Scenario`]) on its own thread — a loom or
//! shuttle thread under the checkers, a real thread in `examples/compare/`.
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
//!   user → kernel ([`LazyMm::mmgrab_lazy_tlb`]), kernel → kernel
//!   ([`LazyMm::transfer_lazy`]), kernel → user (switch the mm, then
//!   `finish_task_switch()`'s deferred [`LazyMm::mmdrop_lazy_tlb`] of the old one)
//!   and user → user (switch the mm). `switch_mm` sets the CPU's bit in the new
//!   mm's cpumask before loading it and clears (release) its bit in the old
//!   one after.
//! * **Exit**: `exit_mm()` turns the task into a lazy user of its own mm
//!   ([`LazyMm::mmgrab_lazy_tlb`]), then `mmput()`; when `mm_users` reaches 0,
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
//! * **Causality** ("scheduling is causality"): a user task is
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
//! mm was freed) is kept in shadow words (uninstrumented atomics), which no checker
//! sees: they record the order in which the checker scheduled the steps.
//!
//! # Limits
//!
//! At most [`MAX_CPUS`] (64) CPUs: a cpumask is one word and each mailbox has
//! one pending bit per sender.

pub mod harness;
mod ipi;
mod mailbox;
mod oracle;
mod replay;
mod report;
mod scenario;
mod setup;
pub mod tlb;
mod types;
pub mod walk;

pub(crate) use ipi::WaitBoard;
use ipi::{Doorbell, Ipi};
use oracle::race_is_uaf;
pub use replay::ReplayPlan;
pub use scenario::{Op, Scenario, SplitMix};
pub use types::{CpuState, MachineBug, MmId, Stats, Task};

use crate::bugs::BugSwitch;
use crate::cpu::{AtomicCpuSet, CpuId};
use crate::lazy::deferred::DeferredDrops;
use crate::lazy::switch::{self, CpuMm, SwitchHook, SwitchMm, Switched};
use crate::lazy::{Kernel, LazyMm};
use crate::sync::shadow::Shadow;
use crate::sync::thread::{spawn, Arc};
use crate::sync::{AtomicBool, AtomicUsize, Ordering::*, UnsafeCell};
use crossbeam_utils::CachePadded;
use report::{Event, Events, Hook, HookStack};
use std::format;
use std::vec::Vec;

/// Most CPUs a machine can have.
pub const MAX_CPUS: usize = 64;

struct Cpu {
    doorbell: Doorbell,
    state: UnsafeCell<CpuState>,
    /// This CPU's outgoing IPI request; written only while no IPI of this
    /// CPU is outstanding.
    request: UnsafeCell<Ipi>,
    /// Mailbox: bit `s` = CPU `s` has a request for us.
    pending: AtomicUsize,
    /// Oracle: `loaded_mm`, the page-table base the hardware may walk.
    loaded: Shadow,
    /// The same as a checker-visible atomic, written only
    /// [`with_visible_loads`](Machine::with_visible_loads).
    loaded_word: AtomicUsize,
    /// Oracle: the scheme hooks this CPU is inside, for failure reports.
    hooks: HookStack,
    /// Final drops deferred out of interrupts-off hooks (`mmdrop_sched()`),
    /// CPU-private.
    deferred: UnsafeCell<DeferredDrops<MmId, DEFERRED_CAP>>,
    stats: UnsafeCell<Stats>,
}

/// Deferred final drops a CPU can hold (two per switch at most, drained at
/// the next interrupts-enabled point).
const DEFERRED_CAP: usize = 4;

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
    /// CPUs that migrated their task of this mm ([`Op::Migrate`]; written
    /// only when the scenario migrates).
    migrated: AtomicCpuSet<1>,
    /// The last task's exit finished ([`Op::IdleUntilExited`] waits for it;
    /// written only when the scenario has such a wait).
    exited: AtomicBool,
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
    /// Whether the scenario has an [`Op::IdleUntilExited`] (otherwise no
    /// exit writes [`Mm::exited`]: no extra atomics for the checkers).
    idles: bool,
    bug: BugSwitch<MachineBug>,
    inline_ipis: bool,
    /// The line a failure report gives to replay it (set by the harness).
    replay: Option<std::string::String>,
    /// Final drops reached in an interrupts-off hook are deferred.
    defer_drops: bool,
    /// The oracle's `loaded_mm` is checker-visible (`with_visible_loads`).
    visible_loads: bool,
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
        let board = WaitBoard::new(scenario.nr_cpus());
        let cpus = (0..scenario.nr_cpus())
            .map(|_| {
                CachePadded::new(Cpu {
                    doorbell: Doorbell::new(&board),
                    state: UnsafeCell::new(CpuState {
                        curr: Task::Kernel,
                        active_mm: MmId::INIT,
                        loaded_mm: MmId::INIT,
                        is_lazy: false,
                    }),
                    request: UnsafeCell::new(Ipi::None),
                    pending: AtomicUsize::new(0),
                    loaded: Shadow::new(0),
                    loaded_word: AtomicUsize::new(0),
                    hooks: HookStack::default(),
                    deferred: UnsafeCell::new(DeferredDrops::new()),
                    stats: UnsafeCell::new(Stats::default()),
                })
            })
            .collect();
        let mms = users
            .iter()
            .zip(scenario.refs_per_mm())
            .map(|(&u, refs)| {
                CachePadded::new(Mm {
                    users: AtomicUsize::new(u),
                    count: AtomicUsize::new(1 + refs),
                    cpumask: AtomicCpuSet::new(),
                    body: UnsafeCell::new(MmBody { freed: false }),
                    freed: Shadow::new(0),
                    torn_down: Shadow::new(0),
                    exited: AtomicBool::new(false),
                    migrated: AtomicCpuSet::new(),
                    events: Events::new(),
                })
            })
            .collect();
        Self {
            idles: scenario.has_idle_waits(),
            scheme,
            scenario,
            cpus,
            mms,
            done: AtomicUsize::new(0),
            bug: BugSwitch::off(),
            inline_ipis: false,
            visible_loads: false,
            replay: None,
            defer_drops: false,
        }
    }
}

impl<S: LazyMm + Send + Sync + 'static> Machine<S> {
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
        self.wait_serving(
            cpu,
            || "the other CPUs to finish their scripts".into(),
            || self.done.load(Acquire) == self.nr_cpus(),
        );
    }

    /// Serves `cpu`'s mailbox until `until()` holds (blocking on the
    /// doorbell under the checkers, spinning otherwise).
    /// `what` says what the CPU waits for (for the deadlock report).
    fn wait_serving(
        &self,
        cpu: CpuId,
        what: impl Fn() -> std::string::String,
        until: impl Fn() -> bool,
    ) {
        let me = &self.cpu(cpu);
        loop {
            self.serve_ipis(cpu);
            if until() {
                return;
            }
            me.doorbell.wait(
                cpu,
                &what,
                || until() || me.pending.load(Relaxed) != 0,
                |line| self.fail(Some(cpu), None, line),
            );
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
            // Acquire: pairs with the release in mmput(), so the exit (and
            // any IPI it sent us, served while waiting) is behind us.
            Op::IdleUntilExited(mm) => self.wait_serving(
                cpu,
                || format!("{mm}'s last task to finish exiting (IdleUntilExited)"),
                || self.mm(mm).exited.load(Acquire),
            ),
            // The user task runs on in user mode: its mm stays loaded.
            Op::UserUntilExited(mm) => self.wait_serving(
                cpu,
                || format!("{mm}'s last task to finish exiting, in user mode (UserUntilExited)"),
                || self.mm(mm).exited.load(Acquire),
            ),
            Op::MmDrop(mm) => self.mmdrop(cpu, mm),
            Op::Migrate(mm) => {
                self.mm(mm).events.note(cpu, Event::Migrates);
                // Release: finish_task()'s release of prev->on_cpu; pairs
                // with Adopt's acquire, so the task's past on this CPU
                // happens before it runs on the other.
                self.mm(mm).migrated.insert(cpu, Release);
                for c in self.cpus.iter() {
                    c.doorbell.ring();
                }
            }
            Op::Adopt(mm, from) => self.wait_serving(
                cpu,
                || format!("cpu{from} to switch out its task of {mm} for this CPU (Adopt)"),
                // Acquire: pairs with Migrate's release.
                || self.mm(mm).migrated.contains(CpuId::new(from), Acquire),
            ),
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
        switch::force_init_mm(&self.scheme, self, cpu);
        self.drain_deferred(cpu); // interrupts back on
    }

    /// `context_switch()` through the library's sequence
    /// ([`crate::lazy::switch`]).
    fn context_switch(&self, cpu: CpuId, next: Task) {
        self.count(cpu, |s| s.switches += 1);
        let next = match next {
            Task::Kernel => None,
            Task::User(mm) => Some(mm),
        };
        if let Switched::EnterLazy(_) = switch::context_switch(&self.scheme, self, cpu, next) {
            self.count(cpu, |s| s.lazy_enters += 1);
        }
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
        self.mm(mm).events.note(cpu, Event::ExitMm);
        switch::exit_mm(&self.scheme, self, cpu);
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
        self.mm(mm).events.note(cpu, Event::Mmput { old });
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
            if self.idles {
                // Release: pairs with IdleUntilExited's acquire.
                self.mm(mm).exited.store(true, Release);
                for c in self.cpus.iter() {
                    c.doorbell.ring();
                }
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

/// The machine's side of the library's switch sequence: its per-CPU state,
/// its "page-table load" (cpumask bits and the oracle's `loaded_mm`), and
/// the hook records of its failure reports.
impl<S: LazyMm + Send + Sync + 'static> SwitchMm for Machine<S> {
    fn cpu_mm(&self, cpu: CpuId) -> CpuMm<MmId> {
        let st = self.state(cpu);
        CpuMm {
            curr: match st.curr {
                Task::Kernel => None,
                Task::User(mm) => Some(mm),
            },
            active: st.active_mm.real(),
        }
    }

    fn set_cpu_mm(&self, cpu: CpuId, new: CpuMm<MmId>) {
        self.update(cpu, |s| {
            s.curr = new.curr.map_or(Task::Kernel, Task::User);
            s.active_mm = new.active.unwrap_or(MmId::INIT);
            s.is_lazy = new.is_lazy();
        });
    }

    fn loaded_mm(&self, cpu: CpuId) -> Option<MmId> {
        self.state(cpu).loaded_mm.real()
    }

    /// `switch_mm_irqs_off()`'s load: set our bit in `next`'s cpumask, load
    /// it, clear our bit in the previous mm's cpumask.
    fn load_mm(&self, cpu: CpuId, prev: Option<MmId>, next: Option<MmId>) {
        let (prev, next) = (prev.unwrap_or(MmId::INIT), next.unwrap_or(MmId::INIT));
        if next != MmId::INIT {
            // Relaxed: this CPU's user task of `next` holds mm_users and will
            // only drop it (a release RMW) after this point, so the bit is
            // visible to whoever observes mm_users == 0.
            self.mm(next).cpumask.insert(cpu, Relaxed);
            self.count(cpu, |s| s.shared_rmws += 1);
        }
        self.update(cpu, |s| s.loaded_mm = next);
        self.record_load(cpu, next);
        if let Some(i) = next.index() {
            self.mms[i].events.note(cpu, Event::Loads { from: prev });
        }
        if let Some(i) = prev.index() {
            self.mms[i].events.note(cpu, Event::Replaced { next });
        }
        self.touch(cpu);
        if prev != MmId::INIT {
            // Release: pairs with the acquire snapshot in mm_cpumask(); our
            // last use of `prev` happens before whoever reads the bit clear.
            // Before the scheme's switched_mm: it may drop the last
            // reference to `prev` (cached does), after which `prev` is gone.
            let order = self.bug.weaken(MachineBug::RelaxedCpumaskClear, Release);
            self.mm(prev).cpumask.remove(cpu, order);
            self.count(cpu, |s| s.shared_rmws += 1);
        }
    }

    fn around_hook(&self, cpu: CpuId, hook: SwitchHook, mm: Option<MmId>, f: impl FnOnce()) {
        let h = match hook {
            SwitchHook::EnterLazy => Hook::EnterLazy,
            SwitchHook::TransferLazy => Hook::TransferLazy,
            SwitchHook::SwitchingMm => Hook::SwitchingMm,
            SwitchHook::SwitchedMm => Hook::SwitchMm,
            SwitchHook::LeaveLazy => {
                // The CPU walks what it has loaded up to the drop.
                self.touch(cpu);
                Hook::LeaveLazy
            }
            SwitchHook::LazyShot => Hook::LazyShot,
        };
        self.hook(cpu, h, mm, f)
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
