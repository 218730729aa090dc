//! The TLB machine: page tables, TLB generations, lazy CPUs, flushes, reclaim
//! batches and PTE-changing paths, with the oracle **NO-MISSED-FLUSH**.
//!
//! # The machine
//!
//! One user mm `M` (its `loaded_mm` word is [`MM`]) and the kernel's own mm.
//! `M` has two PTEs, each under its own page-table lock (split PTLs), a
//! page-table version (bumped when page tables are freed), an LDT version,
//! a [`TlbGen`], a cpumask (updated lazily: bits are set on switch-in and
//! never cleared), and a [`FlushBatched`] word. Each CPU has, private to it:
//! whether it runs a user task of `M`; the generation its context for `M`
//! is flushed up to (kept while it runs other mms, as with PCIDs); its
//! cached translation of each PTE (a PTE version, or none); the page-table
//! version its paging-structure cache holds; the LDT version it loaded; its
//! reclaim batch. The shared `loaded_mm` / `is_lazy` words are a
//! [`LazyTlb`].
//!
//! Operations ([`TlbOp`]): run a user task of `M` (`switch_mm` in, the
//! unlazy fast path when lazy on `M`), switch to a kernel thread (lazy),
//! switch to another process (modelled as the kernel's own mm), use `M`'s
//! memory (fill the TLB), change a PTE and flush (optionally freeing page
//! tables), change the LDT, reclaim a page (clear a PTE, batch the flush),
//! flush the reclaim batch, mprotect and madvise a page (under its PTL,
//! with `flush_tlb_batched_pending()`). IPIs are served at the start of each
//! operation and while waiting (for acknowledgements or a PTL).
//!
//! # The oracle
//!
//! Every flush, LDT change, mprotect, madvise and reclaim-batch flush
//! raises, when it completes, the oldest version of its PTE (or page
//! tables, or LDT) any CPU may still use. Then:
//!
//! * a CPU running user code of `M` with a cached translation older than
//!   its PTE's required version panics with **"stale TLB entry: ..."**;
//! * a CPU with `M` loaded (lazy or not: the hardware may walk speculatively
//!   at any step) whose paging-structure cache holds freed page tables
//!   panics with **"stale TLB entry: ... freed page tables ..."**;
//! * a CPU running user code of `M` with an LDT older than the required one
//!   panics with **"stale LDT: ..."**.
//!
//! Ground truth (required versions) lives in uninstrumented
//! shadow words; page-table contents in
//! atomics, so under loom a CPU that fills its TLB without being ordered
//! after a change may read the old PTE — which the oracle then flags.

mod ops;
pub use ops::{TlbOp, TlbScenario, TlbStats};

use super::mailbox::Mailboxes;
use super::MmId;
use crate::bugs::BugSwitch;
use crate::cpu::{AtomicCpuSet, CpuId, CpuSet};
use crate::platform::{CpuPin, LocalTlb};
use crate::sync::shadow::Shadow;
use crate::sync::thread::Arc;
use crate::sync::{AtomicU64, AtomicUsize, Ordering::*, UnsafeCell};
use crate::tlb::batched::{FlushBatched, PteLock};
use crate::tlb::tlbgen::{FlushAction, FlushScope, LazyTlb, Switch, TlbGen};
use std::vec::Vec;

/// `M`'s `loaded_mm` word.
pub const MM: MmId = MmId::new(0);
/// PTEs (and PTLs) of `M`.
pub const PTES: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ipi {
    Flush {
        mm: FlushScope<MmId>,
        gen: Option<u64>,
        /// A freed-tables flush (it IPIs lazy CPUs too).
        freed_tables: bool,
    },
    Ldt,
}

#[derive(Clone, Copy, Debug, Default)]
struct CpuPriv {
    user: bool,
    ctx_gen: Option<u64>,
    tlb: [Option<u64>; PTES],
    pwc: u64,
    ldt: u64,
    batch: CpuSet<1>,
    batch_versions: [Option<u64>; PTES],
}

/// A PTE word: `version << 1 | present`.
fn pte(version: u64, present: bool) -> usize {
    ((version as usize) << 1) | usize::from(present)
}
fn pte_version(w: usize) -> u64 {
    (w >> 1) as u64
}
fn pte_present(w: usize) -> bool {
    w & 1 == 1
}

impl<const N: usize> LocalTlb for TlbMachine<N> {
    type Mm = MmId;

    fn flush_local(&self, pin: &CpuPin<'_>, mm: MmId) {
        assert_eq!(mm, MM, "the TLB machine has one user mm");
        // Acquire: the page-table version of the generation being caught up
        // with (or newer).
        let pt = self.pt_version.load(Acquire);
        self.with_priv(pin.cpu(), |p| {
            p.tlb = [None; PTES];
            p.pwc = pt;
        });
    }
}

/// Known-bad variants of the TLB machine's own kernel code (its IPI
/// handler), for scenarios that check what a CPU remembers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbMachineBug {
    /// The handler of a freed-tables flush, switching a lazy CPU to the
    /// kernel's own mm, records the flush's generation as its context's
    /// flushed generation ("it left the mm, so it is flushed"). Its context keeps its TLB
    /// entries for the mm (PCID), so when it later runs the mm again the
    /// generation check keeps them: stale entries. The flush itself is
    /// right; only a CPU that returns to the mm afterwards and uses memory
    /// shows it (the tail scenarios).
    ShotRecordsGen,
}

/// The TLB machine on `N` CPU slots.
pub struct TlbMachine<const N: usize> {
    scenario: TlbScenario,
    lazy: LazyTlb<N>,
    gen: TlbGen,
    cpumask: AtomicCpuSet<1>,
    ptes: [AtomicUsize; PTES],
    ptls: [PteLock; PTES],
    batched: FlushBatched,
    pt_version: AtomicU64,
    ldt: AtomicU64,
    cpus: Vec<UnsafeCell<CpuPriv>>,
    ipis: Mailboxes<Ipi>,
    required: [Shadow; PTES],
    pt_freed_below: Shadow,
    ldt_required: Shadow,
    stats: [Shadow; 6],
    bug: BugSwitch<TlbMachineBug>,
}

// SAFETY: each CPU's private state is touched only by its own thread (and
// by the sequential end-of-run readers after join).
unsafe impl<const N: usize> Sync for TlbMachine<N> {}
// SAFETY: as above.
unsafe impl<const N: usize> Send for TlbMachine<N> {}

const S_FLUSHES: usize = 0;
const S_IPIS: usize = 1;
const S_SKIPPED: usize = 2;
const S_UNLAZY_FLUSH: usize = 3;
const S_UNLAZY_KEEP: usize = 4;
const S_PENDING: usize = 5;

impl<const N: usize> TlbMachine<N> {
    /// A machine running `scenario` with the given protocol state (switch a
    /// bug on in `lazy` or `batched`).
    ///
    /// # Panics
    /// If the scenario has more CPUs than `N` or than 64.
    pub fn new(scenario: TlbScenario, lazy: LazyTlb<N>, batched: FlushBatched) -> Self {
        let n = scenario.nr_cpus();
        assert!(
            n <= N && n <= super::MAX_CPUS,
            "scenario error: {n} CPUs, the machine has {N} slots"
        );
        Self {
            lazy,
            gen: TlbGen::new(),
            cpumask: AtomicCpuSet::new(),
            ptes: core::array::from_fn(|_| AtomicUsize::new(pte(1, true))),
            ptls: core::array::from_fn(|_| PteLock::new()),
            batched,
            pt_version: AtomicU64::new(1),
            ldt: AtomicU64::new(1),
            cpus: (0..n)
                .map(|_| UnsafeCell::new(CpuPriv::default()))
                .collect(),
            ipis: Mailboxes::new(n),
            required: core::array::from_fn(|_| Shadow::new(0)),
            pt_freed_below: Shadow::new(0),
            ldt_required: Shadow::new(0),
            stats: core::array::from_fn(|_| Shadow::new(0)),
            scenario,
            bug: BugSwitch::off(),
        }
    }

    /// `gen` as `M`'s generation (a known-bad `TlbGen::with_bug`).
    pub fn with_gen(mut self, gen: TlbGen) -> Self {
        self.gen = gen;
        self
    }

    /// Switches on a known bug of the machine's own kernel code.
    #[cfg(lazymm_bugs)]
    pub fn with_machine_bug(mut self, bug: TlbMachineBug) -> Self {
        self.bug = BugSwitch::on(bug);
        self
    }

    /// The correct protocol.
    pub fn correct(scenario: TlbScenario) -> Self {
        Self::new(scenario, LazyTlb::new(), FlushBatched::new())
    }

    fn nr_cpus(&self) -> usize {
        self.scenario.nr_cpus()
    }

    fn with_priv<R>(&self, cpu: CpuId, f: impl FnOnce(&mut CpuPriv) -> R) -> R {
        // SAFETY: only `cpu`'s own thread calls this, and no reference
        // escapes the closure.
        self.cpus[cpu.index()].with_mut(|p| f(unsafe { &mut *p }))
    }

    /// Runs every CPU's script on its own thread and joins them.
    pub fn run(this: &Arc<Self>) {
        super::run_cpus(this, this.nr_cpus(), Self::run_cpu);
    }

    /// Runs `cpu`'s script (flushing a reclaim batch left at its end), then
    /// idles serving IPIs until every CPU is done.
    pub fn run_cpu(&self, cpu: CpuId) {
        for &op in &self.scenario.scripts[cpu.index()] {
            self.serve(cpu);
            self.speculative_walk(cpu);
            self.step(cpu, op);
        }
        self.serve(cpu);
        self.speculative_walk(cpu);
        if self.with_priv(cpu, |p| !p.batch.is_empty()) {
            self.unmap_flush(cpu);
        }
        self.ipis.idle_until_all_done(cpu, |m| self.handle(cpu, m));
    }

    fn step(&self, cpu: CpuId, op: TlbOp) {
        match op {
            TlbOp::User => self.to_user(cpu),
            TlbOp::Kthread => {
                if self.with_priv(cpu, |p| core::mem::take(&mut p.user)) {
                    self.lazy.enter_lazy_tlb(cpu);
                }
            }
            TlbOp::Away => {
                self.with_priv(cpu, |p| p.user = false);
                if self.lazy.loaded::<MmId>(cpu).is_some() {
                    self.lazy.switch_mm_begin_init(cpu);
                    self.lazy.switch_mm_end::<MmId>(cpu, None);
                }
            }
            TlbOp::Use => self.use_memory(cpu),
            TlbOp::Flush { freed_tables } => {
                self.lock(cpu, 0, false);
                let w = self.ptes[0].load(Relaxed);
                let new = self.change_pte(0);
                self.unlock(0);
                // Unlink the page-table pages: walks from now on never
                // reach the old ones (versions below `unlinked`), which are
                // freed once flushed.
                let unlinked = freed_tables.then(|| self.pt_version.fetch_add(1, Relaxed) + 1);
                self.flush_mm(cpu, freed_tables);
                self.require(0, new.unwrap_or(pte_version(w)));
                // What *this* flush freed: another CPU's freed-tables flush
                // may have unlinked newer tables meanwhile and not finished
                // (reading the current version here was a false alarm that
                // two concurrent freed-tables flushes raised).
                if let Some(v) = unlinked {
                    if self.pt_freed_below.get() < v as usize {
                        self.pt_freed_below.set(v as usize);
                    }
                }
            }
            TlbOp::Ldt => self.change_ldt(cpu),
            TlbOp::Reclaim(i) => self.reclaim(cpu, i),
            TlbOp::UnmapFlush => self.unmap_flush(cpu),
            TlbOp::Mprotect(i) => self.mprotect(cpu, i, false),
            TlbOp::Madvise(i) => self.mprotect(cpu, i, true),
        }
    }

    fn to_user(&self, cpu: CpuId) {
        if self.with_priv(cpu, |p| p.user) {
            return;
        }
        let prev = self.lazy.loaded::<MmId>(cpu);
        let local = self.with_priv(cpu, |p| p.ctx_gen);
        let sw = self
            .lazy
            .switch_mm_begin(cpu, MM, &self.gen, &self.cpumask, local);
        let unlazy = prev == Some(MM);
        match sw {
            Switch::Nothing => {}
            Switch::Keep { .. } => {
                if unlazy {
                    self.stats[S_UNLAZY_KEEP].add(1);
                }
            }
            Switch::Flush { gen } => {
                if unlazy {
                    self.stats[S_UNLAZY_FLUSH].add(1);
                }
                self.flush_local(cpu, gen);
            }
        }
        if !unlazy {
            // switch_ldt(): a switch from another mm reloads the LDT; the
            // unlazy fast path does not (module docs of `tlbgen`).
            let ldt = self.ldt.load(Acquire);
            self.with_priv(cpu, |p| p.ldt = ldt);
            self.lazy.switch_mm_end(cpu, Some(MM));
        }
        self.with_priv(cpu, |p| p.user = true);
    }

    /// Flushes this CPU's context for `M` up to `gen`.
    fn flush_local(&self, cpu: CpuId, gen: u64) {
        // SAFETY: `cpu`'s own thread runs this; a machine CPU never migrates.
        let pin = unsafe { CpuPin::new(cpu) };
        LocalTlb::flush_local(self, &pin, MM);
        self.with_priv(cpu, |p| p.ctx_gen = Some(gen));
    }

    fn use_memory(&self, cpu: CpuId) {
        for i in 0..PTES {
            let cached = self.with_priv(cpu, |p| p.tlb[i]);
            let v = match cached {
                Some(v) => Some(v),
                None => {
                    // The hardware walk: Relaxed, a later PTE write is only
                    // ordered before it by the flush protocol.
                    let w = self.ptes[i].load(Relaxed);
                    let v = pte_present(w).then_some(pte_version(w));
                    self.with_priv(cpu, |p| p.tlb[i] = v);
                    v
                }
            };
            let need = self.required[i].get() as u64;
            if let Some(v) = v {
                if v < need {
                    panic!(
                        "stale TLB entry: {cpu} runs user code of mm with a translation of PTE {i} \
                         at version {v}, but a completed flush required version {need}"
                    );
                }
            }
        }
        let ldt = self.with_priv(cpu, |p| p.ldt);
        let need = self.ldt_required.get() as u64;
        assert!(
            ldt >= need,
            "stale LDT: {cpu} runs user code of mm with LDT version {ldt}, but version {need} was installed"
        );
    }

    /// The hardware may walk the loaded mm's page tables at any step.
    fn speculative_walk(&self, cpu: CpuId) {
        if self.lazy.loaded::<MmId>(cpu) != Some(MM) {
            return;
        }
        let pwc = self.with_priv(cpu, |p| p.pwc);
        let freed = self.pt_freed_below.get() as u64;
        if pwc < freed {
            let lazy = if self.lazy.lazy(cpu) { " (lazy)" } else { "" };
            panic!(
                "stale TLB entry: {cpu}{lazy} caches freed page tables of mm (version {pwc}, \
                 freed below {freed}) and may walk them speculatively"
            );
        }
    }

    /// Writes a new version of PTE `i` (present), PTL held. Returns it, or
    /// `None` if the PTE is not present.
    fn change_pte(&self, i: usize) -> Option<u64> {
        let w = self.ptes[i].load(Relaxed);
        if !pte_present(w) {
            return None;
        }
        let v = pte_version(w) + 1;
        // Relaxed (set_pte_at): published by the PTL and by the flush's
        // generation increment.
        self.ptes[i].store(pte(v, true), Relaxed);
        Some(v)
    }

    fn require(&self, i: usize, v: u64) {
        if self.required[i].get() < v as usize {
            self.required[i].set(v as usize);
        }
    }

    /// `flush_tlb_mm_range()` of all of `M`.
    fn flush_mm(&self, cpu: CpuId, freed_tables: bool) {
        self.stats[S_FLUSHES].add(1);
        let gen = self.gen.inc();
        // Relaxed: ordered after the increment by its full barrier.
        let mask = self.cpumask.snapshot(self.nr_cpus(), Relaxed);
        let mut targets = CpuSet::<1>::new();
        let skipped =
            self.lazy
                .flush_targets(cpu, FlushScope::Mm(MM), &mask, freed_tables, &mut targets);
        self.stats[S_SKIPPED].add(skipped);
        self.stats[S_IPIS].add(targets.len());
        let msg = Ipi::Flush {
            mm: FlushScope::Mm(MM),
            gen: Some(gen),
            freed_tables,
        };
        self.ipis.send(cpu, &targets, msg, |m| self.handle(cpu, m));
        self.handle(cpu, msg);
    }

    fn change_ldt(&self, cpu: CpuId) {
        let v = self.ldt.load(Relaxed) + 1;
        // Release: pairs with the reloads' acquire.
        self.ldt.store(v, Release);
        // Full barrier: the LDT store before the cpumask read; pairs with
        // the switch-in's cpumask RMW / smp_mb (store buffering).
        crate::sync::smp_mb();
        let mask = self.cpumask.snapshot(self.nr_cpus(), Relaxed);
        let mut targets = CpuSet::<1>::new();
        self.lazy.ldt_targets(cpu, &mask, &mut targets);
        self.ipis
            .send(cpu, &targets, Ipi::Ldt, |m| self.handle(cpu, m));
        self.handle(cpu, Ipi::Ldt);
        if self.ldt_required.get() < v as usize {
            self.ldt_required.set(v as usize);
        }
    }

    fn reclaim(&self, cpu: CpuId, i: usize) {
        // try_to_unmap_one() takes the PTL without flush_tlb_batched_pending().
        let ptl = &self.ptls[i];
        ptl.lock(|| {
            self.ipis.wait_serving(
                cpu,
                || std::format!("the page-table lock of pte{i}"),
                || !ptl.is_locked(),
                |m| self.handle(cpu, m),
            )
        });
        let w = self.ptes[i].load(Relaxed);
        if pte_present(w) {
            let v = pte_version(w) + 1;
            // ptep_get_and_clear() (Relaxed; the PTL publishes it).
            self.ptes[i].store(pte(v, false), Relaxed);
            // arch_tlbbatch_add_pending(): a new generation (lazy CPUs catch
            // up on unlazy), and the mm's CPUs join this CPU's batch.
            self.gen.inc();
            let mask = self.cpumask.snapshot(self.nr_cpus(), Relaxed);
            self.with_priv(cpu, |p| {
                for c in mask.iter() {
                    p.batch.insert(c);
                }
                p.batch.insert(cpu);
                p.batch_versions[i] = Some(v);
            });
            self.batched.set_pending();
        }
        self.unlock(i);
    }

    /// `try_to_unmap_flush()`: flush every CPU of the batch, then the
    /// cleared PTEs are flushed everywhere.
    fn unmap_flush(&self, cpu: CpuId) {
        let (batch, versions) = self.with_priv(cpu, |p| {
            let b = core::mem::take(&mut p.batch);
            (b, core::mem::take(&mut p.batch_versions))
        });
        if batch.is_empty() {
            return;
        }
        self.stats[S_FLUSHES].add(1);
        let mut targets = CpuSet::<1>::new();
        let skipped =
            self.lazy
                .flush_targets(cpu, FlushScope::<MmId>::All, &batch, false, &mut targets);
        self.stats[S_SKIPPED].add(skipped);
        self.stats[S_IPIS].add(targets.len());
        let msg = Ipi::Flush {
            mm: FlushScope::All,
            gen: None,
            freed_tables: false,
        };
        self.ipis.send(cpu, &targets, msg, |m| self.handle(cpu, m));
        if batch.contains(cpu) {
            self.handle(cpu, msg);
        }
        for (i, v) in versions.iter().enumerate() {
            if let Some(v) = *v {
                self.require(i, v);
            }
        }
    }

    /// mprotect (or, with `madvise`, madvise dropping and retaking the PTL)
    /// of the page of PTE `i`.
    fn mprotect(&self, cpu: CpuId, i: usize, madvise: bool) {
        self.lock(cpu, i, false);
        if madvise {
            // Split a large folio: drop the PTL and take it again.
            self.unlock(i);
            self.lock(cpu, i, true);
        }
        let w = self.ptes[i].load(Relaxed);
        let changed = self.change_pte(i);
        self.unlock(i);
        match changed {
            Some(v) => {
                self.flush_mm(cpu, false);
                self.require(i, v);
            }
            // Not present: nothing to change and nothing to flush — so any
            // older translation must already be gone when we return.
            None => self.require(i, pte_version(w)),
        }
    }

    /// Takes PTL `i` for a PTE-changing path (running
    /// `flush_tlb_batched_pending()`), serving IPIs while it waits.
    fn lock(&self, cpu: CpuId, i: usize, relock: bool) {
        let ptl = &self.ptls[i];
        let flushed = ptl.lock_for_change(
            &self.batched,
            relock,
            || {
                self.ipis.wait_serving(
                    cpu,
                    || std::format!("the page-table lock of pte{i}"),
                    || !ptl.is_locked(),
                    |m| self.handle(cpu, m),
                );
            },
            || self.flush_mm(cpu, false),
        );
        if flushed {
            self.stats[S_PENDING].add(1);
        }
    }

    fn unlock(&self, i: usize) {
        self.ptls[i].unlock();
        self.ipis.ring_all();
    }

    fn serve(&self, cpu: CpuId) {
        self.ipis.serve(cpu, |m| self.handle(cpu, m));
    }

    /// An IPI handler (`flush_tlb_func()`, `flush_ldt()`).
    fn handle(&self, cpu: CpuId, msg: Ipi) {
        match msg {
            Ipi::Flush {
                mm,
                gen,
                freed_tables,
            } => {
                let local = self.with_priv(cpu, |p| p.ctx_gen.unwrap_or(0));
                match self.lazy.flush_action(cpu, mm, gen, local, &self.gen) {
                    FlushAction::NotLoaded | FlushAction::Nothing | FlushAction::UpToDate => {}
                    FlushAction::SwitchToInit => {
                        self.lazy.switch_mm_begin_init(cpu);
                        self.lazy.switch_mm_end::<MmId>(cpu, None);
                        if freed_tables && self.bug.is(TlbMachineBug::ShotRecordsGen) {
                            // BUG: the context's entries for M are not flushed.
                            let g = self.gen.read();
                            self.with_priv(cpu, |p| p.ctx_gen = Some(g));
                        }
                    }
                    FlushAction::Flush { gen } => self.flush_local(cpu, gen),
                }
            }
            Ipi::Ldt => {
                if self.lazy.loaded::<MmId>(cpu) == Some(MM) {
                    let v = self.ldt.load(Acquire);
                    self.with_priv(cpu, |p| p.ldt = v);
                }
            }
        }
    }

    /// The run's counters.
    pub fn stats(&self) -> TlbStats {
        TlbStats {
            flushes: self.stats[S_FLUSHES].get(),
            flush_ipis: self.stats[S_IPIS].get(),
            ipis_skipped_lazy: self.stats[S_SKIPPED].get(),
            unlazy_flushes: self.stats[S_UNLAZY_FLUSH].get(),
            unlazy_keeps: self.stats[S_UNLAZY_KEEP].get(),
            pending_flushes: self.stats[S_PENDING].get(),
        }
    }
}
