//! Schemes written outside the crate, against its public traits only — as a
//! user's own would be — shared by the loom and shuttle external tests: one
//! correct, two deliberately wrong.

use lazymm::cpu::CpuId;
use lazymm::lazy::{Kernel, LazyMm};

/// Linux's refcount, written against the public traits only: a lazy CPU
/// holds a reference on `mm_count` from `mmgrab_lazy_tlb` (user → kernel, and
/// `exit_mm()`) to `mmdrop_lazy_tlb` (`finish_task_switch()` once the CPU loaded
/// another mm, or CPU down); kernel → kernel passes it on untouched.
#[derive(Default)]
pub struct PlainRefcount;

impl LazyMm for PlainRefcount {
    const NAME: &'static str = "external/plain-refcount";

    fn mmgrab_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        k.mmgrab(cpu, mm);
    }

    fn mmdrop_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm, _next: Option<K::Mm>) {
        k.mmdrop(cpu, mm);
    }
}

/// Wrong: lazy CPUs take no reference and nothing shoots them down, so the
/// last `mmput()` frees an mm another CPU still has loaded.
#[derive(Default)]
pub struct NoGrab;

impl LazyMm for NoGrab {
    const NAME: &'static str = "external/no-grab";

    fn mmgrab_lazy_tlb<K: Kernel>(&self, _k: &K, _cpu: CpuId, _mm: K::Mm) {}

    fn mmdrop_lazy_tlb<K: Kernel>(&self, _k: &K, _cpu: CpuId, _mm: K::Mm, _next: Option<K::Mm>) {}
}

/// Wrong: the lazy reference is taken and never given back.
#[derive(Default)]
pub struct NoDrop;

impl LazyMm for NoDrop {
    const NAME: &'static str = "external/no-drop";

    fn mmgrab_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        k.mmgrab(cpu, mm);
    }

    fn mmdrop_lazy_tlb<K: Kernel>(&self, _k: &K, _cpu: CpuId, _mm: K::Mm, _next: Option<K::Mm>) {}
}
