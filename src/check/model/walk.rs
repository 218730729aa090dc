//! The walker machine: page-table pages that are unlinked and freed while
//! lockless walkers (GUP-fast) read them, and the oracle **NO-PT-UAF**: a
//! walker never reads a freed page-table page.
//!
//! # The machine
//!
//! * One mm whose PMD entry points at one of a pool of page-table pages (a
//!   [`WalkMachine`] allocates one page per collapse, plus the first).
//! * **Walk** ([`WalkOp::Walk`]): interrupts off; walk begin (if the sync
//!   kind tracks walkers); read the PMD entry; read the page-table page it
//!   points at; walk end; interrupts on — the only point where the CPU takes
//!   IPIs, and (RCU kinds) reports a quiescent state.
//! * **Collapse** ([`WalkOp::Collapse`], khugepaged): replace the PMD entry
//!   by a fresh page (the unlink), flush the TLB as configured
//!   ([`FlushDelivery`]: by IPI to every other CPU, or by hardware broadcast
//!   that interrupts nobody), sync as configured ([`SyncKind`]), free the
//!   old page. Collapses run on one CPU (the scenario checks it): the PMD
//!   lock is not modelled.
//! * **IPIs** carry nothing (`tlb_remove_table_smp_sync()` is empty): a
//!   per-CPU pending bitmask, one bit per sender, acknowledged with release
//!   once served. A CPU whose script is done idles serving IPIs (RCU kinds:
//!   in an extended quiescent state).
//!
//! # The oracle
//!
//! * A walk that reads a freed page panics with **"use-after-free of
//!   page-table page N: cpuC walks it after it was freed"**. Each read goes
//!   through the layer's `UnsafeCell` and the free writes it, so under loom a
//!   read not ordered before the free by happens-before is reported the same
//!   way (the loom causality violation is re-raised).
//! * At the end: every unlinked page freed exactly once, the linked one never.

use super::mailbox::Mailboxes;
use super::{race_is_uaf, Doorbell};
use crate::cpu::{CpuId, CpuMask, CpuSet};
use crate::platform::{CpuPin, IpiSync};
use crate::reclaim::rcu::{Progress, Rcu, RcuQueue};
use crate::sync::shadow::Shadow;
use crate::sync::thread::Arc;
use crate::sync::{AtomicUsize, Ordering::*, UnsafeCell};
use crate::walk::{BeginOrder, FlushDelivery, WalkTracker};
use std::vec::Vec;

/// One operation of a CPU's script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkOp {
    /// A GUP-fast walk with interrupts off.
    Walk,
    /// Unlink the page-table page, flush, sync, free it.
    Collapse,
}

/// How a collapse makes sure no walker still reads the old page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncKind {
    /// IPI the CPUs whose walk marker is the mm ([`WalkTracker`]).
    Targeted(BeginOrder),
    /// IPI every other CPU (`tlb_remove_table_sync_one()`); walkers keep no
    /// marker.
    Broadcast,
    /// Free after an RCU grace period; walks are read-side sections ended
    /// by the quiescent state at interrupts-on. No IPI.
    Rcu,
    /// As [`Rcu`](Self::Rcu), but `call_rcu()`-style: the collapse queues
    /// the old page with its cookie ([`RcuQueue`]) and goes on (khugepaged
    /// then passes a quiescent state); queued pages are freed as their
    /// grace periods end, by the collapser between collapses and, at the
    /// end of its script, in an `rcu_barrier()` that drives grace periods
    /// from an extended quiescent state. Each free follows the queue's
    /// `done()` with no barrier of its own, as a callback's does.
    RcuCallback,
    /// v7: skip the sync when the flush was delivered by IPI to every CPU
    /// ([`WalkTracker::sync_needed`]), else a targeted sync.
    SkipIfFlushIpid(BeginOrder),
}

impl<const N: usize> IpiSync for WalkMachine<N> {
    fn ipi_and_wait(&self, pin: &CpuPin<'_>, targets: &impl CpuMask) {
        self.send_ipis(pin.cpu(), targets);
    }
}

/// The page-table page id the oracle prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtPage(pub usize);

impl core::fmt::Display for PtPage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "page-table page {}", self.0)
    }
}

/// The scripts of a walker machine.
#[derive(Clone, Debug)]
pub struct WalkScenario {
    scripts: Vec<Vec<WalkOp>>,
}

impl WalkScenario {
    /// One script per CPU.
    ///
    /// # Panics
    /// "scenario error: ..." with no CPU, or collapses on more than one CPU.
    pub fn new(scripts: Vec<Vec<WalkOp>>) -> Self {
        assert!(!scripts.is_empty(), "scenario error: no CPU");
        let collapsers = scripts
            .iter()
            .filter(|s| s.contains(&WalkOp::Collapse))
            .count();
        assert!(
            collapsers <= 1,
            "scenario error: collapses on {collapsers} CPUs (the PMD lock is not modelled; use one)"
        );
        Self { scripts }
    }

    /// Number of CPUs.
    pub fn nr_cpus(&self) -> usize {
        self.scripts.len()
    }

    fn collapses(&self) -> usize {
        self.scripts
            .iter()
            .flatten()
            .filter(|&&o| o == WalkOp::Collapse)
            .count()
    }
}

/// Counters of a run (oracle-side, uninstrumented).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Walks done.
    pub walks: usize,
    /// Collapses done.
    pub collapses: usize,
    /// IPIs sent by flushes.
    pub flush_ipis: usize,
    /// IPIs sent by syncs.
    pub sync_ipis: usize,
    /// Syncs skipped because the flush had IPI'd every CPU.
    pub syncs_skipped: usize,
    /// Pages freed by an RCU callback ([`SyncKind::RcuCallback`]) after
    /// their grace period ended: by the collapser between collapses, and in
    /// its `rcu_barrier()`.
    pub callback_frees: usize,
    /// Of those, the ones freed between collapses (not in the barrier).
    pub callback_frees_early: usize,
}

/// Callbacks one collapser can queue before it waits for a grace period.
const CALLBACKS: usize = 8;

struct Page {
    /// A PTE the walk reads (an atomic, as `READ_ONCE` of a PTE is; under
    /// shuttle also the scheduling point between the PMD read and the
    /// page's use).
    pte: AtomicUsize,
    body: UnsafeCell<usize>,
    freed: Shadow,
}

const LIVE: usize = 0x7ab1e;
const POISON: usize = 0xdead;

/// Lockless walkers, collapses and their sync, on `N` CPU slots.
pub struct WalkMachine<const N: usize> {
    scenario: WalkScenario,
    /// The IPI mailboxes (an IPI carries nothing).
    ipis: Mailboxes<()>,
    /// The PMD entry: the index of the linked page.
    pmd: AtomicUsize,
    pages: Vec<Page>,
    tracker: WalkTracker<N>,
    rcu: Rcu<N>,
    sync: SyncKind,
    flush: FlushDelivery,
    /// Rung at every RCU quiescent state (the collapser waits on it).
    gp_bell: Doorbell,
    /// Counts those events; the collapser's acquire read of it carries the
    /// event's happens-before, as a real wake-up would (without it loom may
    /// serve the collapser a stale counter forever).
    qs_events: AtomicUsize,
    /// The collapser's queued frees ([`SyncKind::RcuCallback`]); only the
    /// one collapsing CPU touches it.
    callbacks: UnsafeCell<RcuQueue<usize, CALLBACKS>>,
    callback_frees: Shadow,
    callback_frees_early: Shadow,
    walks: Shadow,
    collapses: Shadow,
    flush_ipis: Shadow,
    sync_ipis: Shadow,
    skipped: Shadow,
}

// SAFETY: page bodies are read by walks and written once by their free; the
// oracle (and loom's causality check) reports every pair not ordered by
// happens-before.
unsafe impl<const N: usize> Sync for WalkMachine<N> {}
// SAFETY: as above.
unsafe impl<const N: usize> Send for WalkMachine<N> {}

/// The mm the walkers walk (the tracker's marker value).
const MM: super::MmId = super::MmId::new(0);

impl<const N: usize> WalkMachine<N> {
    /// A machine running `scenario` with the given sync and flush delivery,
    /// and a tracker built by the caller (to switch a bug on).
    ///
    /// # Panics
    /// If the scenario has more CPUs than `N` or than [`super::MAX_CPUS`].
    pub fn new(
        scenario: WalkScenario,
        sync: SyncKind,
        flush: FlushDelivery,
        tracker: WalkTracker<N>,
        rcu: Rcu<N>,
    ) -> Self {
        let n = scenario.nr_cpus();
        assert!(
            n <= N && n <= super::MAX_CPUS,
            "scenario error: {n} CPUs, the machine has {N} slots (at most {})",
            super::MAX_CPUS
        );
        let pages = (0..=scenario.collapses())
            .map(|_| Page {
                pte: AtomicUsize::new(LIVE),
                body: UnsafeCell::new(LIVE),
                freed: Shadow::new(0),
            })
            .collect();
        let ipis = Mailboxes::new(n);
        Self {
            gp_bell: ipis.new_bell(),
            ipis,
            scenario,
            pmd: AtomicUsize::new(0),
            pages,
            tracker,
            rcu,
            sync,
            flush,
            qs_events: AtomicUsize::new(0),
            callbacks: UnsafeCell::new(RcuQueue::new()),
            callback_frees: Shadow::new(0),
            callback_frees_early: Shadow::new(0),
            walks: Shadow::new(0),
            collapses: Shadow::new(0),
            flush_ipis: Shadow::new(0),
            sync_ipis: Shadow::new(0),
            skipped: Shadow::new(0),
        }
    }

    /// The usual construction: no bug, the tracker ordered as `sync` says.
    pub fn with(scenario: WalkScenario, sync: SyncKind, flush: FlushDelivery) -> Self {
        let order = match sync {
            SyncKind::Targeted(o) | SyncKind::SkipIfFlushIpid(o) => o,
            _ => BeginOrder::StoreMb,
        };
        Self::new(scenario, sync, flush, WalkTracker::new(order), Rcu::new())
    }

    fn nr_cpus(&self) -> usize {
        self.scenario.nr_cpus()
    }

    fn uses_rcu(&self) -> bool {
        matches!(self.sync, SyncKind::Rcu | SyncKind::RcuCallback)
    }

    fn tracks(&self) -> bool {
        matches!(
            self.sync,
            SyncKind::Targeted(_) | SyncKind::SkipIfFlushIpid(_)
        )
    }

    /// Runs every CPU's script on its own thread, joins them, and checks the
    /// end state.
    pub fn run(this: &Arc<Self>) {
        super::run_cpus(this, this.nr_cpus(), Self::run_cpu);
        this.check_end();
    }

    /// Runs `cpu`'s script, then idles serving IPIs until every CPU is done.
    pub fn run_cpu(&self, cpu: CpuId) {
        if self.uses_rcu() {
            self.rcu.idle_exit(cpu);
        }
        for &op in &self.scenario.scripts[cpu.index()] {
            match op {
                WalkOp::Walk => self.walk(cpu),
                WalkOp::Collapse => self.collapse(cpu),
            }
        }
        let collapser = self.scenario.scripts[cpu.index()].contains(&WalkOp::Collapse);
        if self.sync == SyncKind::RcuCallback && collapser && !self.queue_is_empty() {
            self.rcu_barrier(cpu);
        }
        if self.uses_rcu() {
            self.rcu.idle_enter(cpu);
            self.rcu_event();
        }
        self.ipis.idle_until_all_done(cpu, |()| {});
    }

    fn walk(&self, cpu: CpuId) {
        // local_irq_save(): from here to walk end this CPU takes no IPI.
        if self.tracks() {
            self.tracker.begin(cpu, MM);
        }
        // Relaxed (READ_ONCE): the page read below depends on it by address.
        let p = self.pmd.load(Relaxed);
        let page = &self.pages[p];
        // Relaxed (READ_ONCE of a PTE).
        let pte = page.pte.load(Relaxed);
        if page.freed.get() != 0 || pte != LIVE {
            panic!(
                "use-after-free of {}: {cpu} walks it after it was freed",
                PtPage(p)
            );
        }
        let v = race_is_uaf(PtPage(p), cpu, "walks it, unordered with its free", || {
            // SAFETY: a read; the oracle checks it is ordered before the free.
            page.body.with(|b| unsafe { *b })
        });
        assert_eq!(
            v,
            LIVE,
            "use-after-free of {}: {cpu} reads poison",
            PtPage(p)
        );
        self.walks.add(1);
        if self.tracks() {
            self.tracker.end(cpu);
        }
        // local_irq_restore(): a quiescent state, and pending IPIs run.
        if self.uses_rcu() {
            self.rcu.quiescent(cpu);
            self.rcu_event();
        }
        self.serve_ipis(cpu);
    }

    fn collapse(&self, cpu: CpuId) {
        self.serve_ipis(cpu);
        // The one collapsing CPU is the only writer of the PMD entry.
        let old = self.pmd.load(Relaxed);
        // Relaxed (WRITE_ONCE of the PMD): the sync's barrier orders it.
        self.pmd.store(old + 1, Relaxed);
        let others = {
            let mut s: CpuSet = CpuSet::first(self.nr_cpus());
            s.remove(cpu);
            s
        };
        if self.flush == FlushDelivery::IpiToAll {
            self.flush_ipis.add(others.len());
            self.send_ipis(cpu, &others);
        }
        match self.sync {
            SyncKind::Targeted(_) => self.targeted_sync(cpu),
            SyncKind::Broadcast => {
                self.sync_ipis.add(others.len());
                self.send_ipis(cpu, &others);
            }
            SyncKind::Rcu => self.wait_grace_period(cpu),
            SyncKind::RcuCallback => {
                self.call_rcu(cpu, old);
                self.collapses.add(1);
                return;
            }
            SyncKind::SkipIfFlushIpid(_) => {
                if self.tracker.sync_needed(self.flush) {
                    self.targeted_sync(cpu);
                } else {
                    self.skipped.add(1);
                }
            }
        }
        self.free(cpu, old);
        self.collapses.add(1);
    }

    fn targeted_sync(&self, cpu: CpuId) {
        // SAFETY: `cpu`'s own thread runs this; a machine CPU never migrates.
        let pin = unsafe { CpuPin::new(cpu) };
        let n = self.tracker.sync_pinned(self, &pin, MM, self.nr_cpus());
        self.sync_ipis.add(n);
    }

    /// `synchronize_rcu()`: the caller blocks, so its CPU schedules away
    /// and idles — an extended quiescent state — while it drives the
    /// machinery until the GP of its cookie ends.
    fn wait_grace_period(&self, cpu: CpuId) {
        let cookie = self.rcu.snap();
        self.idle_until(cpu, || self.rcu.done(cookie));
    }

    /// `call_rcu()`: queues page `p` with a cookie taken after its unlink
    /// (waiting first if the queue is full), runs the callbacks whose grace
    /// periods ended, then passes a quiescent state (khugepaged schedules
    /// between collapses).
    fn call_rcu(&self, cpu: CpuId, p: usize) {
        let cookie = self.rcu.snap();
        let mut item = Some(p);
        while let Some(p) = item.take() {
            // SAFETY: only the one collapsing CPU touches the queue.
            let pushed = self.callbacks.with_mut(|q| unsafe { (*q).push(cookie, p) });
            if let Err(p) = pushed {
                self.idle_until(cpu, || self.rcu.done(cookie));
                self.run_callbacks(cpu, true);
                item = Some(p);
            }
        }
        self.rcu.advance();
        self.run_callbacks(cpu, true);
        self.rcu.quiescent(cpu);
        self.rcu_event();
    }

    /// Frees every queued page whose grace period has ended: each free
    /// follows the queue's `done()` (acquire) with no barrier of its own.
    fn run_callbacks(&self, cpu: CpuId, early: bool) {
        // SAFETY: only the one collapsing CPU touches the queue.
        while let Some(p) = self
            .callbacks
            .with_mut(|q| unsafe { (*q).pop_ready(&self.rcu) })
        {
            self.free(cpu, p);
            self.callback_frees.add(1);
            if early {
                self.callback_frees_early.add(1);
            }
        }
    }

    fn queue_is_empty(&self) -> bool {
        // SAFETY: only the one collapsing CPU touches the queue.
        self.callbacks.with(|q| unsafe { (*q).is_empty() })
    }

    /// `rcu_barrier()`: from an extended quiescent state, drives grace
    /// periods until every queued callback has run (the frees happen
    /// inside, before the CPU leaves the quiescent state).
    fn rcu_barrier(&self, cpu: CpuId) {
        self.idle_until(cpu, || {
            self.run_callbacks(cpu, false);
            self.queue_is_empty()
        });
    }

    /// Idles (an extended quiescent state) driving the grace-period
    /// machinery and serving IPIs until `done()` holds.
    fn idle_until(&self, cpu: CpuId, mut done: impl FnMut() -> bool) {
        self.rcu.idle_enter(cpu);
        loop {
            // Acquire: pairs with the release increment in `rcu_event`.
            let seen = self.qs_events.load(Acquire);
            let progress = self.rcu.advance();
            if done() {
                break;
            }
            self.serve_ipis(cpu);
            if matches!(progress, Progress::Started | Progress::Ended) {
                continue;
            }
            // Waiting for another CPU, or another CPU is driving: each bumps
            // `qs_events` after its quiescent state and its own advance.
            self.gp_bell.wait(
                cpu,
                || {
                    std::string::String::from(
                        "a grace period to end (synchronize_rcu / rcu_barrier)",
                    )
                },
                || self.qs_events.load(Relaxed) != seen,
                |line| panic!("{line}"),
            );
        }
        self.rcu.idle_exit(cpu);
    }

    /// After a quiescent state of `cpu`: drive the GP machinery too (grace
    /// periods then start and end at any time, as with a GP kthread), and
    /// wake a waiting collapser.
    fn rcu_event(&self) {
        self.rcu.advance();
        // Release: pairs with the collapser's acquire read.
        self.qs_events.fetch_add(1, Release);
        self.gp_bell.ring();
    }

    fn free(&self, cpu: CpuId, p: usize) {
        let page = &self.pages[p];
        assert_eq!(page.freed.add(1), 0, "double free of {}", PtPage(p));
        // Relaxed: the poison is for the oracle; the body below is what loom
        // checks for ordering.
        page.pte.store(POISON, Relaxed);
        race_is_uaf(
            PtPage(p),
            cpu,
            "frees it after a walk not ordered before the free",
            || {
                // SAFETY: the free is the one writer; a walk not ordered before
                // it is a race the oracle reports.
                page.body.with_mut(|b| unsafe { *b = POISON })
            },
        );
    }

    /// Sends an empty IPI to every CPU of `targets` and waits for each: a
    /// walker acknowledges only at its interrupts-on point, so its walk
    /// happens before what we do next.
    fn send_ipis(&self, cpu: CpuId, targets: &impl CpuMask) {
        self.ipis.send(cpu, targets, (), |()| {});
    }

    /// Serves `cpu`'s mailbox (an interrupts-on point).
    fn serve_ipis(&self, cpu: CpuId) {
        self.ipis.serve(cpu, |()| {});
    }

    /// End checks: every unlinked page freed exactly once, the linked one not.
    pub fn check_end(&self) {
        let linked = self.pmd.load(Relaxed);
        for (i, p) in self.pages.iter().enumerate() {
            match (i == linked, p.freed.get()) {
                (true, 0) | (false, 1) => {}
                (true, n) => panic!("{} is linked but was freed {n} times", PtPage(i)),
                (false, 0) => panic!("leak: {} was unlinked but never freed", PtPage(i)),
                (false, n) => panic!("double free of {}: freed {n} times", PtPage(i)),
            }
        }
    }

    /// The run's counters.
    pub fn stats(&self) -> WalkStats {
        WalkStats {
            walks: self.walks.get(),
            collapses: self.collapses.get(),
            flush_ipis: self.flush_ipis.get(),
            sync_ipis: self.sync_ipis.get(),
            syncs_skipped: self.skipped.get(),
            callback_frees: self.callback_frees.get(),
            callback_frees_early: self.callback_frees_early.get(),
        }
    }

    /// Completed RCU grace periods (RCU kind).
    pub fn grace_periods(&self) -> usize {
        self.rcu.completed()
    }
}
