#![allow(dead_code)] // shared by benches/lazy.rs and compare; each uses a part

//! The bare hot paths, shared by `benches/lazy.rs` and `compare`'s lifetime
//! model: the least kernel a scheme runs against (counts on the mm, a
//! cpumask; no oracle, no counters), the floor, and the lazy round trips
//! exactly as a context switch calls the hooks.

use super::common::Mm;
use lazymm::check::sync::{AtomicUsize, Ordering::*};
use lazymm::cpu::{AtomicCpuSet, CpuId, CpuSet, PerCpu};
use lazymm::lazy::{Kernel, LazyMm, MmHandle};
use std::hint::black_box;

/// CPU slots of the per-CPU `loaded_mm` words and the default kernel size.
pub const MAX_THREADS: usize = 64;

/// The least a kernel does: counts on the mm, a cpumask, per-CPU loaded_mm.
/// `N` CPUs (the schemes it runs are sized `N` or more).
pub struct BenchKernel<const N: usize = MAX_THREADS> {
    pub count: AtomicUsize,
    pub cpumask: AtomicCpuSet,
    pub nr_cpus: usize,
}

impl<const N: usize> BenchKernel<N> {
    pub fn new(nr_cpus: usize) -> Self {
        Self {
            count: AtomicUsize::new(1),
            cpumask: AtomicCpuSet::new(),
            nr_cpus,
        }
    }
}

impl<const N: usize> Kernel for BenchKernel<N> {
    type Mm = Mm;
    const NR_CPUS: usize = N;
    /// 16 words (1,024 CPUs), as every kernel's mask was in 0.1: the exit
    /// scans below compare with earlier runs.
    type CpuMask = CpuSet;
    #[inline]
    fn mmgrab(&self, _cpu: CpuId, _mm: Mm) {
        self.count.fetch_add(1, Relaxed);
    }
    #[inline]
    fn mmdrop(&self, _cpu: CpuId, _mm: Mm) {
        // The final drop never happens in these loops (the users' ref stays).
        self.count.fetch_sub(1, AcqRel);
    }
    #[inline]
    fn mmgrab_many(&self, _cpu: CpuId, _mm: Mm, n: usize) {
        self.count.fetch_add(n, Relaxed);
    }
    #[inline]
    fn mmdrop_many(&self, _cpu: CpuId, _mm: Mm, n: usize) {
        self.count.fetch_sub(n, Release);
    }
    fn mm_users(&self, _mm: Mm) -> usize {
        1
    }
    fn mm_cpumask(&self, _mm: Mm) -> CpuSet {
        self.cpumask.snapshot(self.nr_cpus, Acquire)
    }
    fn shoot_lazies(&self, _cpu: CpuId, cpus: &CpuSet, _mm: Mm) {
        black_box(cpus.len());
    }
}

/// Per-CPU `loaded_mm` words: the floor's stores.
pub type Loaded = PerCpu<AtomicUsize, MAX_THREADS>;

/// One lazy round trip: enter lazy (user -> kernel thread) and leave it
/// (kernel thread -> the same user mm), around the per-CPU stores every
/// kernel does anyway.
#[inline]
pub fn round_trip<S: LazyMm>(s: &S, k: &BenchKernel, loaded: &Loaded, cpu: CpuId, mm: Mm) {
    let slot = black_box(loaded.get(cpu));
    slot.store(0, Relaxed); // is_lazy = true
    s.mmgrab_lazy_tlb(k, cpu, mm);
    // The kernel's two stores are separate events; keep the compiler from
    // merging them (black_box makes the slot escape between them).
    let slot = black_box(slot);
    slot.store(mm.to_word(), Relaxed); // is_lazy = false
    s.mmdrop_lazy_tlb(k, cpu, mm, Some(mm));
}

/// One round trip to another mm: user A -> kernel thread -> user B (the
/// page-table base changes, so `switch_mm` runs), then back the same way.
#[inline]
pub fn round_trip_other<S: LazyMm>(
    s: &S,
    k: &BenchKernel,
    loaded: &Loaded,
    cpu: CpuId,
    a: Mm,
    b: Mm,
) {
    for (from, to) in [(a, b), (b, a)] {
        let slot = black_box(loaded.get(cpu));
        slot.store(0, Relaxed); // is_lazy = true
        s.mmgrab_lazy_tlb(k, cpu, from);
        s.switching_mm(k, cpu, Some(from), Some(to));
        let slot = black_box(slot);
        slot.store(to.to_word(), Relaxed); // loaded_mm = to
        s.switched_mm(k, cpu, Some(from), Some(to));
        s.mmdrop_lazy_tlb(k, cpu, from, Some(to));
    }
}

/// The floor: the plain per-CPU store pair alone.
#[derive(Default)]
pub struct Floor;
impl LazyMm for Floor {
    const NAME: &'static str = "floor";
    #[inline]
    fn mmgrab_lazy_tlb<K: Kernel>(&self, _k: &K, _cpu: CpuId, _mm: K::Mm) {}
    #[inline]
    fn mmdrop_lazy_tlb<K: Kernel>(&self, _k: &K, _cpu: CpuId, _mm: K::Mm, _next: Option<K::Mm>) {}
}
