//! CPU ids at word boundaries for the protocols that walk a cpumask or a
//! per-CPU array outside the lazy-mm schemes: lazy TLB generations' flush
//! and LDT targets (`LazyTlb::flush_targets`, `ldt_targets`) and the
//! lockless walkers' sync (`WalkTracker::sync_targets`), in a 1,024-slot
//! kernel whose online CPUs are 0, 63, 64, 127 and 1023, on random
//! workloads (proptest seeds) run one step at a time, IPIs inline. The TLB
//! workload switches, goes lazy, uses memory, flushes (with and without
//! freed page tables), changes the LDT, and reclaims the page with a
//! batched flush of every CPU the mm ran on (`FlushScope::All`, as
//! `try_to_unmap_flush()`); a fault maps it again.
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
//! `FreedTablesSkipsLazy` and `LdtSkipsLazy` are rejected here; a kernel
//! whose cpumask snapshot stops after 64 CPUs is rejected on these ids
//! (a CPU past the first word keeps a stale entry) and passes on ids 0..5;
//! and `walk::Bug::SyncSkipsLastCpu` — whose scan stops one slot short, at
//! slot 1022 — is rejected on these ids and passes on ids 0..5 (the pins).
//! `wide_ids_are_targeted` checks that every CPU past the first word is
//! IPIed by flushes while it has the mm loaded and by syncs while it walks.
//!
//! A plain build only, as `wide_cpus.rs`.
#![cfg(not(any(loom, lazymm_shuttle)))]

use lazymm::check::model::SplitMix;
use lazymm::check::sync::Ordering::Relaxed;
use lazymm::cpu::{AtomicCpuSet, CpuId, CpuSet};

use lazymm::tlb::tlbgen::{FlushAction, FlushScope, LazyTlb, Switch, TlbGen};
use lazymm::walk::{BeginOrder, WalkTracker};
use proptest::prelude::*;
use std::cell::Cell;

const SLOTS: usize = 1024;
const WORDS: usize = SLOTS / 64;
const WIDE: [usize; 5] = [0, 63, 64, 127, 1023];
/// The same number of CPUs inside the first word (the pins).
const NARROW_IDS: [usize; 5] = [0, 1, 2, 3, 4];
/// Steps per workload.
const STEPS: usize = 60;

use lazymm::lazy::MmIndex as Mm;

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
    /// Its reclaim batch: the CPUs to flush, and the PTE version it cleared.
    batch: CpuSet<WORDS>,
    batch_version: Option<u64>,
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
    present: Cell<bool>,
    pt: Cell<u64>,
    ldt: Cell<u64>,
    pte_required: Cell<u64>,
    pt_required: Cell<u64>,
    /// Flush and LDT IPIs each CPU slot got while it had `M` loaded.
    ipis_loaded: Vec<Cell<usize>>,
    /// How many CPU slots the cpumask snapshots cover: `SLOTS`, or 64 for
    /// the kernel bug of `snapshot_first_word_only`.
    mask_cpus: usize,
}

impl TlbKernel {
    fn new(lazy: LazyTlb<SLOTS>, mask_cpus: usize) -> Self {
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
            present: Cell::new(true),
            pt: Cell::new(1),
            ldt: Cell::new(1),
            pte_required: Cell::new(0),
            pt_required: Cell::new(0),
            ipis_loaded: (0..SLOTS).map(|_| Cell::new(0)).collect(),
            mask_cpus,
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
        let (pte, present) = (self.pte.get(), self.present.get());
        self.with(cpu, |p| {
            if p.tlb.is_none() && present {
                p.tlb = Some(pte);
            }
            let v = p.tlb.unwrap_or(u64::MAX);
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
        if self.present.get() {
            self.pte.set(self.pte.get() + 1);
        }
        if freed_tables {
            self.pt.set(self.pt.get() + 1);
        }
        let gen = self.gen.inc();
        let mask = self.cpumask.snapshot(self.mask_cpus, Relaxed);
        let mut targets = CpuSet::<WORDS>::new();
        self.lazy
            .flush_targets(cpu, FlushScope::Mm(M), &mask, freed_tables, &mut targets);
        self.count_loaded(&targets);
        targets.insert(cpu);
        for t in targets.iter() {
            self.handle_flush(t, FlushScope::Mm(M), Some(gen));
        }
        self.pte_required.set(self.pte.get());
        if freed_tables {
            self.pt_required.set(self.pt.get());
        }
    }

    /// `flush_tlb_func()` on `t`.
    fn handle_flush(&self, t: CpuId, scope: FlushScope<Mm>, gen: Option<u64>) {
        let local = self.get(t).ctx_gen.unwrap_or(0);
        match self.lazy.flush_action(t, scope, gen, local, &self.gen) {
            FlushAction::NotLoaded | FlushAction::Nothing | FlushAction::UpToDate => {}
            FlushAction::SwitchToInit => {
                self.lazy.switch_mm_begin_init(t);
                self.lazy.switch_mm_end::<Mm>(t, None);
            }
            FlushAction::Flush { gen } => self.flush_local(t, gen),
        }
    }

    /// Reclaim clears the PTE and batches its flush: a new generation
    /// (lazy CPUs catch up on unlazy), and the mm's CPUs join `cpu`'s
    /// batch (`arch_tlbbatch_add_pending()`).
    fn reclaim(&self, cpu: CpuId) {
        if !self.present.get() {
            return;
        }
        let v = self.pte.get() + 1;
        self.pte.set(v);
        self.present.set(false);
        self.gen.inc();
        let mask = self.cpumask.snapshot(self.mask_cpus, Relaxed);
        self.with(cpu, |p| {
            for c in mask.iter() {
                p.batch.insert(c);
            }
            p.batch.insert(cpu);
            p.batch_version = Some(v);
        });
    }

    /// `try_to_unmap_flush()`: flush every CPU of the batch (all mms).
    fn unmap_flush(&self, cpu: CpuId) {
        let me = self.get(cpu);
        let Some(v) = me.batch_version else {
            return;
        };
        self.with(cpu, |p| {
            p.batch = CpuSet::new();
            p.batch_version = None;
        });
        let mut targets = CpuSet::<WORDS>::new();
        self.lazy
            .flush_targets(cpu, FlushScope::<Mm>::All, &me.batch, false, &mut targets);
        self.count_loaded(&targets);
        if me.batch.contains(cpu) {
            targets.insert(cpu);
        }
        for t in targets.iter() {
            self.handle_flush(t, FlushScope::All, None);
        }
        if self.pte_required.get() < v {
            self.pte_required.set(v);
        }
    }

    /// A fault maps the page again (not present to present: no flush).
    fn fault(&self) {
        if !self.present.get() {
            self.pte.set(self.pte.get() + 1);
            self.present.set(true);
        }
    }

    fn count_loaded(&self, targets: &CpuSet<WORDS>) {
        for t in targets.iter() {
            if self.lazy.loaded::<Mm>(t) == Some(M) {
                let c = &self.ipis_loaded[t.index()];
                c.set(c.get() + 1);
            }
        }
    }

    fn change_ldt(&self, cpu: CpuId) {
        self.ldt.set(self.ldt.get() + 1);
        let mask = self.cpumask.snapshot(self.mask_cpus, Relaxed);
        let mut targets = CpuSet::<WORDS>::new();
        self.lazy.ldt_targets(cpu, &mask, &mut targets);
        self.count_loaded(&targets);
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
            10 => self.reclaim(cpu),
            11 => self.unmap_flush(cpu),
            12 if user => self.fault(),
            _ => {}
        }
    }
}

/// A random TLB workload of `seed` on the CPUs `online` (cpumask
/// snapshots of `mask_cpus` slots; reclaim batches still pending at the end
/// are flushed, then every CPU runs the mm and uses it); returns the flush
/// and LDT IPIs each CPU slot got while it had the mm loaded.
fn run_tlb_masked(
    lazy: LazyTlb<SLOTS>,
    mask_cpus: usize,
    online: &[usize; 5],
    seed: u64,
) -> Vec<usize> {
    let k = TlbKernel::new(lazy, mask_cpus);
    let mut rng = SplitMix(seed);
    for _ in 0..STEPS {
        let cpu = CpuId::new(online[rng.below(online.len())]);
        k.step(cpu, rng.below(13));
        k.check_tables(online);
    }
    for &c in online {
        k.unmap_flush(CpuId::new(c));
    }
    for &c in online {
        k.to_user(CpuId::new(c));
        k.use_memory(CpuId::new(c));
    }
    k.ipis_loaded.iter().map(Cell::get).collect()
}

fn run_tlb(lazy: LazyTlb<SLOTS>, online: &[usize; 5], seed: u64) -> Vec<usize> {
    run_tlb_masked(lazy, SLOTS, online, seed)
}

/// A random walker workload of `seed` on the CPUs `online`: CPUs begin and
/// end lockless walks of two mms; a CPU collapses an mm's page table —
/// unlinks it, syncs (the targets' walks end before the free) and frees it.
/// Returns how often each CPU slot was a sync target.
fn run_walk(tracker: WalkTracker<SLOTS>, online: &[usize; 5], seed: u64) -> Vec<usize> {
    let mut rng = SplitMix(seed);
    let mut synced = vec![0; SLOTS];
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
                for t in targets.iter() {
                    synced[t.index()] += 1;
                }
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
    synced
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

/// The workloads reach past the first word: over 64 seeds, each of CPUs
/// 64, 127 and 1023 gets flush or LDT IPIs while it has the mm loaded, and
/// is a sync target while it walks (the proptest runs above would pass
/// vacuously otherwise).
#[test]
fn wide_ids_are_targeted() {
    let mut tlb = vec![0; SLOTS];
    let mut walk = vec![0; SLOTS];
    for seed in 0..64 {
        let t = run_tlb(LazyTlb::new(), &WIDE, seed);
        let w = run_walk(WalkTracker::new(BeginOrder::StoreMb), &WIDE, seed);
        for c in 0..SLOTS {
            tlb[c] += t[c];
            walk[c] += w[c];
        }
    }
    for c in [64, 127, 1023] {
        assert!(
            tlb[c] > 0 && walk[c] > 0,
            "cpu{c}: {} TLB IPIs with the mm loaded, {} syncs",
            tlb[c],
            walk[c]
        );
        eprintln!(
            "cpu{c} over 64 seeds: {} flush/LDT IPIs with the mm loaded, {} sync IPIs",
            tlb[c], walk[c]
        );
    }
}

/// A kernel whose cpumask snapshots stop after 64 CPUs (a scan of the
/// first word only): CPUs 64, 127 and 1023 miss flushes and keep stale
/// entries.
fn snapshot_first_word_only(online: &[usize; 5]) {
    for seed in 0..64 {
        run_tlb_masked(LazyTlb::new(), 64, online, seed);
    }
}

#[test]
#[should_panic(expected = "stale")]
fn kernel_bug_snapshot_first_word_only() {
    snapshot_first_word_only(&WIDE);
}

/// The pin: on CPU ids 0..5 the same kernel passes.
#[test]
fn kernel_bug_snapshot_first_word_only_passes_narrow_ids() {
    snapshot_first_word_only(&NARROW_IDS);
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
        walk_skips_last(&NARROW_IDS);
    }
}
