//! Lazy TLB with generations (van Riel and Lutomirski, 2018; x86 today).
//!
//! # The protocol
//!
//! Each mm has a TLB generation ([`TlbGen`]); each CPU remembers, per
//! address-space context, the generation its TLB is flushed up to. A
//! **flush** changes the page tables, bumps the generation (a fully ordered
//! RMW: `inc_mm_tlb_gen()`), then reads each CPU of the mm's cpumask
//! ([`LazyTlb::should_flush`]) and IPIs those that run the mm and are not
//! lazy. A **lazy** CPU (a kernel thread borrowed the mm) is skipped: on
//! **unlazy** into the same mm it clears `is_lazy`, runs a full barrier,
//! reads the generation and flushes if it fell behind
//! ([`LazyTlb::switch_mm_begin`]). The pairs are store buffering:
//!
//! ```text
//! unlazy:       W is_lazy = false            ; smp_mb() ; R tlb_gen
//! switch in:    W loaded_mm = SWITCHING      ; cpumask_set (RMW) or smp_mb() ; R tlb_gen
//! flush:        W pte ; RMW tlb_gen (full)   ; R loaded_mm ; smp_rmb() ; R is_lazy
//! forbidden:    the switch reads the old generation AND the flush reads the old state
//! ```
//!
//! `83b0177a6c48` (2025) is the second pair with the barrier missing: once
//! the cpumask is updated lazily, the CPU's bit is often already set, the
//! locked `cpumask_set_cpu` is skipped, and nothing orders the `loaded_mm`
//! store before the `tlb_gen` load. `bug_no_mb_when_bit_set`
//! ([`Bug::NoMbWhenBitSet`]) is that kernel; loom finds the missed flush.
//!
//! **Page-table frees** (`freed_tables`) IPI every CPU of the cpumask, lazy
//! ones included, and a lazy CPU answers by switching to the kernel's own
//! mm: it may not keep freed page-table pages in its paging-structure
//! caches, where a speculative walk could use them
//! (`bug_freed_tables_skips_lazy`, [`Bug::FreedTablesSkipsLazy`]).
//!
//! **LDT / CR4-style state** is not tracked by generations: every change
//! IPIs *every* CPU of the cpumask, lazy or not, and the handler reloads it
//! on any CPU that has the mm loaded. That is Lutomirski's argument (seed
//! 000) for the unlazy fast path skipping the reload; the model checks the
//! invariant at every user step, and `bug_ldt_skips_lazy`
//! ([`Bug::LdtSkipsLazy`]) shows that the fast path is only correct because
//! of it.
//!
//! **The SWITCHING window** (`fea4e317f9e7`): between the CR3 load and the
//! `loaded_mm` store the CPU's state says neither mm; the flush must IPI a
//! CPU in `LOADED_MM_SWITCHING` (`bug_switching_not_flushed`,
//! [`Bug::SwitchingNotFlushed`]).
//!
//! Evidence: `tests/loom/tlb.rs` (the TLB machine of `crate::check::model`'s `tlb`
//! module and its NO-MISSED-FLUSH oracle): the correct protocol passes
//! unlazy vs flush, switch back with the bit set vs flush, lazy vs
//! `freed_tables`, unlazy vs LDT change, racing flushers and three CPUs;
//! every variant above fails with "stale TLB entry" (or "stale LDT") at the
//! same bounds (VERIFICATION.md has the bounds and execution counts).
//!
//! # The API
//!
//! The CPU's private TLB state (its contexts' generations, the TLB itself)
//! is the caller's: these functions do the shared-memory part, in the
//! kernel's order, and say what the caller must do.
//!
//! Source: Linux `arch/x86/mm/tlb.c` (`switch_mm_irqs_off()`,
//! `flush_tlb_func()`, `should_flush_tlb()`, `cpu_tlbstate_shared.is_lazy`).

use crate::bugs::BugSwitch;
use crate::cpu::{AtomicCpuSet, CpuId, CpuSet, PerCpu};
use crate::lazy::MmHandle;
use crate::sync::{
    fence, smp_mb, smp_mb_after_atomic, AtomicBool, AtomicU64, AtomicUsize, Ordering::*,
};

/// `loaded_mm` while a CPU switches (`LOADED_MM_SWITCHING`): never an mm
/// word ([`MmHandle::to_word`] is even and non-zero).
const SWITCHING: usize = 1;
/// `loaded_mm` of the kernel's own mm (`init_mm`).
const INIT_MM: usize = 0;

/// Which mms a flush is for. (As in the lazy-mm hooks, `Option<M>` elsewhere
/// in this module means "`M`, or `None` for the kernel's own mm".)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushScope<M> {
    /// One mm's entries (`flush_tlb_mm_range()`).
    Mm(M),
    /// Every mm's entries (the reclaim batch's `arch_tlbbatch_flush()`).
    All,
}

impl<M: MmHandle> FlushScope<M> {
    fn word(self) -> Option<usize> {
        match self {
            FlushScope::Mm(m) => Some(m.to_word()),
            FlushScope::All => None,
        }
    }
}

/// Known-bad variants.
#[cfg_attr(not(lazymm_bugs), doc(hidden))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// `83b0177a6c48`: no `smp_mb()` between the `loaded_mm` store and the
    /// `tlb_gen` load when the cpumask bit was already set.
    NoMbWhenBitSet,
    /// Unlazy into the same mm reads `tlb_gen` without the full barrier.
    NoUnlazyMb,
    /// Unlazy into the same mm keeps the TLB without reading `tlb_gen` at
    /// all (the fast path without its generation check): flushes that
    /// skipped the CPU while it was lazy are lost.
    UnlazyIgnoresGen,
    /// A `freed_tables` flush skips lazy CPUs like an ordinary flush.
    FreedTablesSkipsLazy,
    /// `should_flush_tlb()` before `fea4e317f9e7`: a CPU in the SWITCHING
    /// window is not IPI'd.
    SwitchingNotFlushed,
    /// An LDT change IPIs only the non-lazy CPUs (the unlazy fast path,
    /// which does not reload the LDT, then runs with the old one).
    LdtSkipsLazy,
    /// [`TlbGen::inc`] as a load and a store instead of one RMW: two
    /// flushers of the same mm can both publish the same generation, and a
    /// CPU that flushed up to it between their page-table changes skips
    /// the second flush as up to date (a lost generation increment); with
    /// more flushers a late store takes the generation back below what a
    /// CPU already flushed to (rejected by the randomized racing-flushers
    /// test with three flushers).
    /// Switched on with `TlbGen::with_bug`.
    GenIncLost,
    /// [`TlbGen::inc`] with a `Relaxed` RMW (its full barrier after it
    /// kept): a CPU that reads the new generation is not ordered after the
    /// flusher's page-table writes. `TlbGen::with_bug`.
    RelaxedGenInc,
    /// [`TlbGen::read`] with a `Relaxed` load: a CPU that reads the new
    /// generation and records it as flushed may still refill its TLB from
    /// the old page-table entry. `TlbGen::with_bug`.
    RelaxedGenRead,
    /// [`TlbGen::inc`] without its `smp_mb__after_atomic()` (a no-op on
    /// x86, where the locked RMW is the barrier). `TlbGen::with_bug`.
    NoIncMb,
    /// The switch-in's cpumask set is a `Relaxed` RMW (its barrier after it
    /// kept).
    RelaxedCpumaskSet,
    /// The switch-in's cpumask set without the `smp_mb__after_atomic()`
    /// after it.
    NoCpumaskSetMb,
    /// `switch_mm_end` stores `loaded_mm` with `Relaxed`.
    RelaxedLoadedMmStore,
    /// `should_flush_tlb()` reads `loaded_mm` with `Relaxed`.
    RelaxedLoadedMmLoad,
    /// `should_flush_tlb()` without its `smp_rmb()` between the `loaded_mm`
    /// and `is_lazy` reads.
    NoDecideRmb,
}

/// An mm's TLB generation (`mm->context.tlb_gen`).
#[derive(Debug)]
pub struct TlbGen {
    gen: AtomicU64,
    bug: BugSwitch<Bug>,
}

impl Default for TlbGen {
    fn default() -> Self {
        Self::new()
    }
}

impl TlbGen {
    crate::const_fn! {
        /// Generation 1 (as `init_new_context()`: every context starts at 0
        /// and must flush on first use).
        pub fn new() -> Self {
            Self {
                gen: AtomicU64::new(1),
                bug: BugSwitch::off(),
            }
        }
    }

    /// The generation with one of its known-bad variants switched on
    /// ([`Bug::GenIncLost`], [`Bug::RelaxedGenInc`], [`Bug::RelaxedGenRead`],
    /// [`Bug::NoIncMb`]; the other variants are [`LazyTlb`]'s and do
    /// nothing here).
    #[cfg(lazymm_bugs)]
    pub fn with_bug(bug: Bug) -> Self {
        Self {
            gen: AtomicU64::new(1),
            bug: BugSwitch::on(bug),
        }
    }

    /// `inc_mm_tlb_gen()`: a new generation, after the caller's page-table
    /// writes. Fully ordered: the release half publishes the page-table
    /// writes to a CPU that reads the new generation; the barrier orders
    /// the increment before the caller's reads of the CPUs' state (pairs
    /// with the barrier in [`LazyTlb::switch_mm_begin`]).
    pub fn inc(&self) -> u64 {
        if self.bug.is(Bug::GenIncLost) {
            // BUG: another flusher's increment between the two is lost.
            let g = self.gen.load(Acquire) + 1;
            self.gen.store(g, Release);
            smp_mb();
            return g;
        }
        let g = self
            .gen
            .fetch_add(1, self.bug.weaken(Bug::RelaxedGenInc, AcqRel))
            + 1;
        self.bug.fence_unless(Bug::NoIncMb, smp_mb_after_atomic);
        g
    }

    /// The current generation. Acquire: pairs with [`inc`](Self::inc)'s
    /// release, so the page-table writes of that generation are visible.
    pub fn read(&self) -> u64 {
        self.gen.load(self.bug.weaken(Bug::RelaxedGenRead, Acquire))
    }
}

/// What the caller of [`LazyTlb::switch_mm_begin`] must do before
/// [`LazyTlb::switch_mm_end`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    /// Same mm, not lazy: nothing at all (no CR3 write, no end call needed).
    Nothing,
    /// Load the mm keeping the context's TLB: it is flushed up to `gen`.
    Keep {
        /// The mm's generation read.
        gen: u64,
    },
    /// Load the mm and flush its context; record `gen` as flushed.
    Flush {
        /// The mm's generation read.
        gen: u64,
    },
}

/// What a CPU does with a flush IPI ([`LazyTlb::flush_action`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushAction {
    /// The flush is for an mm this CPU no longer has loaded (a stale
    /// cpumask bit; the kernel may clear it here).
    NotLoaded,
    /// The CPU has the kernel's own mm loaded.
    Nothing,
    /// The CPU is lazy: switch to the kernel's own mm (its paging-structure
    /// caches must not keep the mm's page tables).
    SwitchToInit,
    /// Already flushed up to the flush's generation.
    UpToDate,
    /// Flush; the context is then flushed up to `gen`.
    Flush {
        /// The mm's generation read.
        gen: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Ipi,
    SkipLazy,
    SkipOther,
}

/// The per-CPU `loaded_mm` and `is_lazy` words of `N` CPUs, read by flushers.
pub struct LazyTlb<const N: usize> {
    loaded_mm: PerCpu<AtomicUsize, N>,
    is_lazy: PerCpu<AtomicBool, N>,
    bug: BugSwitch<Bug>,
}

impl<const N: usize> Default for LazyTlb<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LazyTlb<N> {
    crate::const_fn! {
        /// Every CPU on `init_mm`, not lazy.
        pub fn new() -> Self {
            Self {
                loaded_mm: PerCpu::from_padded(crate::cpu::padded_array!(N, AtomicUsize::new(INIT_MM))),
                is_lazy: PerCpu::from_padded(crate::cpu::padded_array!(N, AtomicBool::new(false))),
                bug: BugSwitch::off(),
            }
        }
    }

    /// The protocol with a known bug switched on (checker builds only).
    #[cfg(lazymm_bugs)]
    pub fn with_bug(bug: Bug) -> Self {
        let mut t = Self::new();
        t.bug = BugSwitch::on(bug);
        t
    }

    /// `cpu`'s `loaded_mm` (its own view; `None`: the kernel's own mm).
    /// Outside a switch: between [`switch_mm_begin`](Self::switch_mm_begin)
    /// and [`switch_mm_end`](Self::switch_mm_end) it panics.
    pub fn loaded<M: MmHandle>(&self, cpu: CpuId) -> Option<M> {
        match self.loaded_word(cpu) {
            INIT_MM => None,
            SWITCHING => panic!("lazymm: loaded() on {cpu} in the middle of a switch"),
            w => Some(M::from_word(w)),
        }
    }

    fn loaded_word(&self, cpu: CpuId) -> usize {
        self.loaded_mm.get(cpu).load(Relaxed)
    }

    /// `cpu`'s `is_lazy` (its own view).
    pub fn lazy(&self, cpu: CpuId) -> bool {
        self.is_lazy.get(cpu).load(Relaxed)
    }

    /// `enter_lazy_tlb()`: a kernel thread borrows the loaded mm. A plain
    /// store, no barrier: a flush that misses it sends a needless IPI.
    pub fn enter_lazy_tlb(&self, cpu: CpuId) {
        if self.loaded_word(cpu) == INIT_MM {
            return;
        }
        self.is_lazy.get(cpu).store(true, Relaxed);
    }

    /// `switch_mm_irqs_off()` up to the CR3 write, to the user mm `next`
    /// with its generation and cpumask, given the generation `cpu`'s context
    /// for `next` is flushed up to (`None`: no context).
    pub fn switch_mm_begin<M: MmHandle, const W: usize>(
        &self,
        cpu: CpuId,
        next: M,
        gen: &TlbGen,
        cpumask: &AtomicCpuSet<W>,
        local_gen: Option<u64>,
    ) -> Switch {
        self.begin(cpu, next.to_word(), Some((gen, cpumask)), local_gen)
    }

    /// [`switch_mm_begin`](Self::switch_mm_begin) to the kernel's own mm.
    pub fn switch_mm_begin_init(&self, cpu: CpuId) -> Switch {
        self.begin::<1>(cpu, INIT_MM, None, None)
    }

    fn begin<const W: usize>(
        &self,
        cpu: CpuId,
        next: usize,
        mm: Option<(&TlbGen, &AtomicCpuSet<W>)>,
        local_gen: Option<u64>,
    ) -> Switch {
        debug_assert_ne!(next, SWITCHING, "an mm word is even");
        let loaded = self.loaded_mm.get(cpu);
        let lazy = self.is_lazy.get(cpu);
        let prev = loaded.load(Relaxed);
        let was_lazy = lazy.load(Relaxed);
        if was_lazy {
            lazy.store(false, Relaxed);
        }
        let decide = |gen: u64| match local_gen {
            Some(l) if l >= gen => Switch::Keep { gen },
            _ => Switch::Flush { gen },
        };
        if prev == next {
            if !was_lazy {
                return Switch::Nothing;
            }
            let Some((gen, _)) = mm else {
                return Switch::Nothing;
            };
            if self.bug.is(Bug::UnlazyIgnoresGen) {
                return Switch::Nothing;
            }
            // Full barrier: pairs with the flusher's `inc` (store
            // buffering): either it sees us lazy no more and IPIs us, or we
            // see its generation.
            self.bug.fence_unless(Bug::NoUnlazyMb, smp_mb);
            return decide(gen.read());
        }
        // Relaxed + the barrier below: pairs with the flusher's `inc`.
        loaded.store(SWITCHING, Relaxed);
        let Some((gen, cpumask)) = mm else {
            // init_mm: no generation to catch up with.
            return Switch::Keep { gen: 0 };
        };
        if !cpumask.contains(cpu, Relaxed) {
            // A locked RMW: a full barrier on x86; in the layer an AcqRel
            // RMW plus `smp_mb_after_atomic` (pairs with the flusher's `inc`).
            cpumask.insert(cpu, self.bug.weaken(Bug::RelaxedCpumaskSet, AcqRel));
            self.bug
                .fence_unless(Bug::NoCpumaskSetMb, smp_mb_after_atomic);
        } else if !self.bug.is(Bug::NoMbWhenBitSet) {
            // 83b0177a6c48: the bit was already set (lazy cpumask), so the
            // RMW above is skipped; the barrier must stay.
            smp_mb();
        }
        decide(gen.read())
    }

    /// The whole of `switch_mm_irqs_off()` to the user mm `next` (with its
    /// generation and cpumask) on the pinned CPU, with the platform's
    /// hardware: [`switch_mm_begin`](Self::switch_mm_begin),
    /// then `load` (the kernel's CR3 write), the local flush the generation
    /// check asks for ([`LocalTlb::flush_local`](crate::platform::LocalTlb::flush_local)),
    /// and [`switch_mm_end`](Self::switch_mm_end). Returns the generation the
    /// CPU's context for `next` is flushed up to now (the caller keeps it as
    /// its `local_gen`), or `local_gen` when nothing was flushed.
    pub fn switch_mm<T, const W: usize>(
        &self,
        pin: &crate::platform::CpuPin<'_>,
        tlb: &T,
        (next, gen, cpumask): (T::Mm, &TlbGen, &AtomicCpuSet<W>),
        local_gen: Option<u64>,
        load: impl FnOnce(),
    ) -> Option<u64>
    where
        T: crate::platform::LocalTlb,
        T::Mm: MmHandle,
    {
        let cpu = pin.cpu();
        let unlazy = self.loaded_word(cpu) == next.to_word();
        let sw = self.switch_mm_begin(cpu, next, gen, cpumask, local_gen);
        if !unlazy {
            load();
        }
        let flushed = match sw {
            Switch::Nothing => local_gen,
            Switch::Keep { gen } => Some(local_gen.unwrap_or(gen).max(gen)),
            Switch::Flush { gen } => {
                tlb.flush_local(pin, next);
                Some(gen)
            }
        };
        if !unlazy {
            self.switch_mm_end(cpu, Some(next));
        }
        flushed
    }

    /// `switch_mm_irqs_off()` after the CR3 write: `loaded_mm = next`
    /// (`None`: the kernel's own mm).
    pub fn switch_mm_end<M: MmHandle>(&self, cpu: CpuId, next: Option<M>) {
        // Release: the CR3 load and the TLB work happen before a flusher
        // that reads `next` here (and then reads our generation state).
        self.loaded_mm.get(cpu).store(
            next.map_or(INIT_MM, M::to_word),
            self.bug.weaken(Bug::RelaxedLoadedMmStore, Release),
        );
    }

    /// `should_flush_tlb()`: whether a flush of `scope` must IPI `cpu`.
    pub fn should_flush<M: MmHandle>(
        &self,
        cpu: CpuId,
        scope: FlushScope<M>,
        freed_tables: bool,
    ) -> bool {
        self.decide(cpu, scope.word(), freed_tables) == Target::Ipi
    }

    fn decide(&self, cpu: CpuId, mm: Option<usize>, freed_tables: bool) -> Target {
        if freed_tables && !self.bug.is(Bug::FreedTablesSkipsLazy) {
            return Target::Ipi;
        }
        // Acquire: pairs with `switch_mm_end`'s release.
        let loaded = self
            .loaded_mm
            .get(cpu)
            .load(self.bug.weaken(Bug::RelaxedLoadedMmLoad, Acquire));
        // smp_rmb(): `is_lazy` at least as new as `loaded_mm`.
        self.bug.fence_unless(Bug::NoDecideRmb, || fence(Acquire));
        if self.is_lazy.get(cpu).load(Relaxed) {
            return Target::SkipLazy;
        }
        let Some(mm) = mm else {
            return Target::Ipi;
        };
        if loaded == mm || (loaded == SWITCHING && !self.bug.is(Bug::SwitchingNotFlushed)) {
            return Target::Ipi;
        }
        Target::SkipOther
    }

    /// The CPUs of `cpumask` (other than `me`) a flush of `scope` must IPI,
    /// into `out`. Call after [`TlbGen::inc`]. Returns how many CPUs of the
    /// cpumask it skipped because they were lazy (the IPIs lazy TLB saves;
    /// CPUs that run another mm are skipped too, and not counted).
    pub fn flush_targets<M: MmHandle, const W: usize>(
        &self,
        me: CpuId,
        scope: FlushScope<M>,
        cpumask: &CpuSet<W>,
        freed_tables: bool,
        out: &mut CpuSet<W>,
    ) -> usize {
        let mm = scope.word();
        let mut lazy = 0;
        for cpu in cpumask.iter() {
            if cpu == me || cpu.index() >= N {
                continue;
            }
            match self.decide(cpu, mm, freed_tables) {
                Target::Ipi => {
                    out.insert(cpu);
                }
                Target::SkipLazy => lazy += 1,
                Target::SkipOther => {}
            }
        }
        lazy
    }

    /// The CPUs of `cpumask` (other than `me`) an LDT change must IPI:
    /// every one, lazy or not. Call after a full barrier that follows the
    /// LDT store.
    pub fn ldt_targets<const W: usize>(&self, me: CpuId, cpumask: &CpuSet<W>, out: &mut CpuSet<W>) {
        for cpu in cpumask.iter() {
            if cpu == me || cpu.index() >= N {
                continue;
            }
            if self.bug.is(Bug::LdtSkipsLazy) && self.is_lazy.get(cpu).load(Relaxed) {
                continue;
            }
            out.insert(cpu);
        }
    }

    /// `flush_tlb_func()` on `cpu` for a flush of `scope` at generation
    /// `flush_gen` (`None`: a full flush), given the generation `cpu`'s
    /// context is flushed up to.
    pub fn flush_action<M: MmHandle>(
        &self,
        cpu: CpuId,
        scope: FlushScope<M>,
        flush_gen: Option<u64>,
        local_gen: u64,
        gen: &TlbGen,
    ) -> FlushAction {
        let mm = scope.word();
        let loaded = self.loaded_word(cpu);
        if mm.is_some_and(|m| m != loaded) {
            return FlushAction::NotLoaded;
        }
        if loaded == INIT_MM {
            return FlushAction::Nothing;
        }
        if self.lazy(cpu) {
            return FlushAction::SwitchToInit;
        }
        if flush_gen.is_some_and(|g| g <= local_gen) {
            return FlushAction::UpToDate;
        }
        FlushAction::Flush { gen: gen.read() }
    }
}
