//! CPU ids at word boundaries for the protocols that walk a cpumask or a
//! per-CPU array outside the lazy-mm schemes: lazy TLB generations' flush
//! and LDT targets (`LazyTlb::flush_targets`, `ldt_targets`) and the
//! lockless walkers' sync (`WalkTracker::sync_targets`), in a 1,024-slot
//! kernel whose online CPUs are 0, 63, 64, 127 and 1023, on random
//! workloads (proptest seeds) run one step at a time, IPIs inline.
//!
//! The TLB machine and the walker machine have at most 64 CPUs and the
//! models use at most 8, all in the first cpumask word, so a target walk
//! that goes wrong past it passes every loom and shuttle model. This kernel
//! is sequential: it checks what the cpumask walks return, not their
//! orderings (the models do that). Its oracles are the machines':
//!
//! * **TLB.** A CPU running user code of the mm with a cached translation
//!   older than a completed flush: "stale TLB entry: ..."; a CPU with the
//!   mm loaded (lazy or not) whose paging-structure cache holds page tables
//!   a completed flush freed: "stale TLB entry: ... freed page tables";
//!   a CPU running user code with an LDT older than the installed one:
//!   "stale LDT: ...".
//! * **Walkers.** A collapse frees a page-table page while a CPU walks the
//!   mm and its sync did not wait for that CPU: "use-after-free of a page
//!   table: ...".
//!
//! Each oracle is shown to fail: `tlbgen::Bug::UnlazyIgnoresGen`,
//! `FreedTablesSkipsLazy` and `LdtSkipsLazy` are rejected here, and
//! `walk::Bug::SyncSkipsLastCpu` — whose scan stops one slot short, at slot
//! 1022 — is rejected on these ids and passes on ids 0..5 (the pin).
//!
//! A plain build only, as `wide_cpus.rs`.
#![cfg(not(any(loom, lazymm_shuttle)))]

use lazymm::check::model::SplitMix;
use lazymm::check::sync::Ordering::Relaxed;
use lazymm::cpu::{AtomicCpuSet, CpuId, CpuSet};
use lazymm::lazy::MmHandle;
use lazymm::tlb::tlbgen::{FlushAction, FlushScope, LazyTlb, Switch, TlbGen};
use lazymm::walk::{BeginOrder, WalkTracker};
use proptest::prelude::*;
use std::cell::Cell;

const SLOTS: usize = 1024;
const WORDS: usize = SLOTS / 64;
const WIDE: [usize; 5] = [0, 63, 64, 127, 1023];
#[cfg(feature = "bug-variants")]
const NARROW: [usize; 5] = [0, 1, 2, 3, 4];
/// Steps per workload.
const STEPS: usize = 60;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Mm(usize);

impl MmHandle for Mm {
    fn to_word(self) -> usize {
        (self.0 + 1) << 1
    }
    fn from_word(w: usize) -> Self {
        Mm((w >> 1) - 1)
    }
}

/// The one user mm of the TLB kernel.
const M: Mm = Mm(0);

/// What a CPU keeps of `M`, private to it.
#[derive(Clone, Copy, Default)]
struct CpuTlb {
    /// Runs a user task of `M`.
    user: bool,
    /// The generation its context for `M` is flushed up to (PCID: kept
    /// while it runs other mms).
    ctx_gen: Option<u64>,
    /// Its cached translation: the PTE version (none: not cached).
    tlb: Option<u64>,
    /// The page-table version its paging-structure cache holds.
    pwc: u64,
    /// The LDT version it loaded.
    ldt: u64,
}

/// The TLB kernel: `M`'s generation and cpumask (bits set on switch-in,
/// never cleared), its PTE, page-table and LDT versions, and the versions
/// completed flushes require.
struct TlbKernel {
    lazy: LazyTlb<SLOTS>,
    gen: TlbGen,
    cpumask: AtomicCpuSet<WORDS>,
    cpus: Vec<Cell<CpuTlb>>,
    pte: Cell<u64>,
    pt: Cell<u64>,
    ldt: Cell<u64>,
    pte_required: Cell<u64>,
    pt_required: Cell<u64>,
    /// IPIs (flush and LDT) sent to CPUs past the first cpumask word.
    ipis_past_word0: Cell<usize>,
}

impl TlbKernel {
    fn new(lazy: LazyTlb<SLOTS>) -> Self {
        let one = CpuTlb {
            pwc: 1,
            ldt: 1,
            ..CpuTlb::default()
        };
        Self {
            lazy,
            gen: TlbGen::new(),
            cpumask: AtomicCpuSet::new(),
            cpus: (0..SLOTS).map(|_| Cell::new(one)).collect(),
            pte: Cell::new(1),
            pt: Cell::new(1),
            ldt: Cell::new(1),
            pte_required: Cell::new(0),
            pt_required: Cell::new(0),
            ipis_past_word0: Cell::new(0),
        }
    }

    fn with(&self, cpu: CpuId, f: impl FnOnce(&mut CpuTlb)) {
        let c = &self.cpus[cpu.index()];
        let mut v = c.get();
        f(&mut v);
        c.set(v);
    }

    fn get(&self, cpu: CpuId) -> CpuTlb {
        self.cpus[cpu.index()].get()
    }

    fn flush_local(&self, cpu: CpuId, gen: u64) {
        let pt = self.pt.get();
        self.with(cpu, |p| {
            p.tlb = None;
            p.pwc = pt;
            p.ctx_gen = Some(gen);
        });
    }

    fn to_user(&self, cpu: CpuId) {
        let me = self.get(cpu);
        if me.user {
            return;
        }
        let unlazy = self.lazy.loaded::<Mm>(cpu) == Some(M);
        match self
            .lazy
            .switch_mm_begin(cpu, M, &self.gen, &self.cpumask, me.ctx_gen)
        {
            Switch::Nothing | Switch::Keep { .. } => {}
            Switch::Flush { gen } => self.flush_local(cpu, gen),
        }
        if !unlazy {
            // switch_ldt(): only a switch from another mm reloads it.
            let ldt = self.ldt.get();
            self.with(cpu, |p| p.ldt = ldt);
            self.lazy.switch_mm_end(cpu, Some(M));
        }
        self.with(cpu, |p| p.user = true);
    }

    fn to_kthread(&self, cpu: CpuId) {
        if self.get(cpu).user {
            self.with(cpu, |p| p.user = false);
            self.lazy.enter_lazy_tlb(cpu);
        }
    }

    fn away(&self, cpu: CpuId) {
        self.with(cpu, |p| p.user = false);
        if self.lazy.loaded::<Mm>(cpu).is_some() {
            self.lazy.switch_mm_begin_init(cpu);
            self.lazy.switch_mm_end::<Mm>(cpu, None);
        }
    }

    fn use_memory(&self, cpu: CpuId) {
        let pte = self.pte.get();
        self.with(cpu, |p| {
            let v = *p.tlb.get_or_insert(pte);
            let need = self.pte_required.get();
            assert!(
                v >= need,
                "stale TLB entry: {cpu} runs user code of mm with a translation at version {v}, \
                 but a completed flush required version {need}"
            );
            let need = self.ldt.get();
            assert!(
                p.ldt >= need,
                "stale LDT: {cpu} runs user code of mm with LDT version {}, but version {need} was installed",
                p.ldt
            );
        });
    }

    /// A PTE change (and, with `freed_tables`, a page-table free) by the
    /// user task on `cpu`, flushed: the IPIs run inline.
    fn flush(&self, cpu: CpuId, freed_tables: bool) {
        self.pte.set(self.pte.get() + 1);
        if freed_tables {
            self.pt.set(self.pt.get() + 1);
        }
        let gen = self.gen.inc();
        let mask = self.cpumask.snapshot(SLOTS, Relaxed);
        let mut targets = CpuSet::<WORDS>::new();
        self.lazy
            .flush_targets(cpu, FlushScope::Mm(M), &mask, freed_tables, &mut targets);
        self.count_past_word0(&targets);
        targets.insert(cpu);
        for t in targets.iter() {
            let local = self.get(t).ctx_gen.unwrap_or(0);
            match self
                .lazy
                .flush_action(t, FlushScope::Mm(M), Some(gen), local, &self.gen)
            {
                FlushAction::NotLoaded | FlushAction::Nothing | FlushAction::UpToDate => {}
                FlushAction::SwitchToInit => {
                    self.lazy.switch_mm_begin_init(t);
                    self.lazy.switch_mm_end::<Mm>(t, None);
                }
                FlushAction::Flush { gen } => self.flush_local(t, gen),
            }
        }
        self.pte_required.set(self.pte.get());
        if freed_tables {
            self.pt_required.set(self.pt.get());
        }
    }

    fn count_past_word0(&self, targets: &CpuSet<WORDS>) {
        let n = targets.iter().filter(|t| t.index() >= 64).count();
        self.ipis_past_word0.set(self.ipis_past_word0.get() + n);
    }

    fn change_ldt(&self, cpu: CpuId) {
        self.ldt.set(self.ldt.get() + 1);
        let mask = self.cpumask.snapshot(SLOTS, Relaxed);
        let mut targets = CpuSet::<WORDS>::new();
        self.lazy.ldt_targets(cpu, &mask, &mut targets);
        self.count_past_word0(&targets);
        targets.insert(cpu);
        let v = self.ldt.get();
        for t in targets.iter() {
            if self.lazy.loaded::<Mm>(t) == Some(M) {
                self.with(t, |p| p.ldt = v);
            }
        }
    }

    /// The freed-tables oracle, after every step: no CPU with `M` loaded
    /// keeps freed page tables in its paging-structure cache.
    fn check_tables(&self, online: &[usize]) {
        for &c in online {
            let cpu = CpuId::new(c);
            let pwc = self.get(cpu).pwc;
            let need = self.pt_required.get();
            assert!(
                self.lazy.loaded::<Mm>(cpu) != Some(M) || pwc >= need,
                "stale TLB entry: {cpu} has mm loaded with freed page tables (version {pwc}) \
                 in its paging-structure cache; a completed flush freed versions below {need}"
            );
        }
    }

    fn step(&self, cpu: CpuId, op: usize) {
        let user = self.get(cpu).user;
        match op {
            0 | 1 => self.to_user(cpu),
            2 | 3 => self.to_kthread(cpu),
            4 => self.away(cpu),
            5 | 6 if user => self.use_memory(cpu),
            7 if user => self.flush(cpu, false),
            8 if user => self.flush(cpu, true),
            9 if user => self.change_ldt(cpu),
            _ => {}
        }
    }
}

/// A random TLB workload of `seed` on the CPUs `online`; returns the IPIs
/// sent to CPUs past the first cpumask word.
fn run_tlb(lazy: LazyTlb<SLOTS>, online: &[usize; 5], seed: u64) -> usize {
    let k = TlbKernel::new(lazy);
    let mut rng = SplitMix(seed);
    for _ in 0..STEPS {
        let cpu = CpuId::new(online[rng.below(online.len())]);
        k.step(cpu, rng.below(10));
        k.check_tables(online);
    }
    k.ipis_past_word0.get()
}

/// A random walker workload of `seed` on the CPUs `online`: CPUs begin and
/// end lockless walks of two mms; a CPU collapses an mm's page table —
/// unlinks it, syncs (the targets' walks end before the free) and frees it.
/// Returns the sync targets past the first cpumask word.
fn run_walk(tracker: WalkTracker<SLOTS>, online: &[usize; 5], seed: u64) -> usize {
    let mut rng = SplitMix(seed);
    let mut past_word0 = 0;
    let mut walking: [Option<Mm>; 5] = [None; 5];
    for _ in 0..STEPS {
        let i = rng.below(online.len());
        let cpu = CpuId::new(online[i]);
        let mm = Mm(rng.below(2));
        match (walking[i], rng.below(3)) {
            (None, 0) => {
                tracker.begin(cpu, mm);
                walking[i] = Some(mm);
            }
            (Some(_), 0) => {
                tracker.end(cpu);
                walking[i] = None;
            }
            (None, _) => {
                let mut targets = CpuSet::new();
                tracker.sync_targets(mm, SLOTS, &mut targets);
                targets.remove(cpu);
                past_word0 += targets.iter().filter(|t| t.index() >= 64).count();
                for (j, w) in walking.iter().enumerate() {
                    let other = CpuId::new(online[j]);
                    assert!(
                        *w != Some(mm) || targets.contains(other),
                        "use-after-free of a page table: {cpu} freed a page table of mm{} \
                         while {other} walks it, and the sync did not wait for {other}",
                        mm.0
                    );
                }
            }
            (Some(_), _) => {}
        }
    }
    past_word0
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn tlbgen_wide(seed in any::<u64>()) {
        run_tlb(LazyTlb::new(), &WIDE, seed);
    }

    #[test]
    fn walkers_wide(seed in any::<u64>()) {
        run_walk(WalkTracker::new(BeginOrder::StoreMb), &WIDE, seed);
        run_walk(WalkTracker::new(BeginOrder::Xchg), &WIDE, seed);
    }
}

/// The workloads reach past the first word: over 64 seeds, flushes, LDT
/// changes and syncs interrupt CPUs 64, 127 and 1023 (the proptest runs
/// above would pass vacuously otherwise).
#[test]
fn wide_ids_are_targeted() {
    let tlb: usize = (0..64).map(|s| run_tlb(LazyTlb::new(), &WIDE, s)).sum();
    let walk: usize = (0..64)
        .map(|s| run_walk(WalkTracker::new(BeginOrder::StoreMb), &WIDE, s))
        .sum();
    assert!(
        tlb > 0 && walk > 0,
        "IPIs past word 0: tlb {tlb}, sync {walk}"
    );
    eprintln!("IPIs to CPUs 64..1024 over 64 seeds: {tlb} flush/LDT, {walk} sync");
}

#[cfg(feature = "bug-variants")]
mod bugs {
    use super::*;
    use lazymm::tlb::tlbgen::Bug;

    fn tlb_rejected(bug: Bug) {
        for seed in 0..256 {
            run_tlb(LazyTlb::with_bug(bug), &WIDE, seed);
        }
    }

    #[test]
    #[should_panic(expected = "stale TLB entry")]
    fn bug_unlazy_ignores_gen() {
        tlb_rejected(Bug::UnlazyIgnoresGen);
    }

    #[test]
    #[should_panic(expected = "freed page tables")]
    fn bug_freed_tables_skips_lazy() {
        tlb_rejected(Bug::FreedTablesSkipsLazy);
    }

    #[test]
    #[should_panic(expected = "stale LDT")]
    fn bug_ldt_skips_lazy() {
        tlb_rejected(Bug::LdtSkipsLazy);
    }

    fn walk_skips_last(online: &[usize; 5]) {
        use lazymm::walk::Bug;
        for seed in 0..64 {
            run_walk(
                WalkTracker::with_bug(BeginOrder::StoreMb, Bug::SyncSkipsLastCpu),
                online,
                seed,
            );
        }
    }

    /// A sync whose scan stops one slot short misses CPU 1023.
    #[test]
    #[should_panic(expected = "use-after-free of a page table")]
    fn bug_sync_skips_last_cpu() {
        walk_skips_last(&WIDE);
    }

    /// The pin: with CPU ids 0..5 the last slot is never online.
    #[test]
    fn bug_sync_skips_last_cpu_passes_narrow_ids() {
        walk_skips_last(&NARROW);
    }
}
