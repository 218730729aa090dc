//! [`Checked`]: any scheme, with the scheduler's side of the contract
//! checked — as a documented panic instead of silent corruption of the
//! scheme's counts. The same panics for every scheme, because `Checked`
//! checks before the scheme runs:
//!
//! | misuse | panic message contains |
//! |---|---|
//! | `mmgrab_lazy_tlb` on a CPU that is already lazy | `"which is already lazy (entered twice)"` |
//! | `mmdrop_lazy_tlb` (or `transfer_lazy`, `lazy_shot`) on a CPU that is not lazy | `"which is not lazy (left twice, or never entered)"` |
//! | `mmdrop_lazy_tlb` for another mm than the CPU's lazy one | `"but it is lazy on another mm"` |
//! | a CPU id at or above `N` | `"CPU id .. out of range"` |
//! | `cpu_dead` for a CPU still lazy on an mm | `"which is still lazy on"` |
//!
//! (`tests/misuse.rs` has the table, one test per scheme and misuse.) A
//! free while a CPU still uses the mm is the simulated machine's oracle's
//! to find (`check::model`), not `Checked`'s: whether a CPU that is lazy
//! "uses" the mm at the final drop depends on the scheme (shootdown frees
//! under lazy CPUs after shooting them down).
//!
//! Schemes without per-CPU state (refcount, shootdown, rcu_mm) cannot see
//! these mistakes themselves; the per-CPU ones check what they can (tagged
//! and hazard panic on a leave without an enter). Wrap the scheme while
//! bringing a kernel up; the cost is one per-CPU word and a few relaxed
//! accesses per hook.

use crate::cpu::{CpuId, PerCpu};
use crate::lazy::{Kernel, LazyMm, MmHandle};
use crate::sync::{AtomicUsize, Ordering::*};

/// `S` with the lazy-mode contract checked on `N` CPUs.
pub struct Checked<S, const N: usize> {
    inner: S,
    /// Per CPU: the word of the mm it uses lazily, or 0. Only its own CPU
    /// writes it (hooks run on their CPU, preemption off).
    lazy: PerCpu<AtomicUsize, N>,
}

impl<S: Default, const N: usize> Default for Checked<S, N> {
    fn default() -> Self {
        Self::new(S::default())
    }
}

impl<S, const N: usize> Checked<S, N> {
    /// Wraps `inner`; every CPU starts not lazy.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            lazy: PerCpu::from_fn(|_| AtomicUsize::new(0)),
        }
    }

    /// The wrapped scheme.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn expect_lazy<M: MmHandle>(&self, hook: &str, cpu: CpuId, mm: M) {
        let now = self.lazy.get(cpu).load(Relaxed);
        if now != mm.to_word() {
            if now == 0 {
                panic!("lazymm: {hook} on {cpu}, which is not lazy (left twice, or never entered)");
            }
            panic!("lazymm: {hook} on {cpu} for {mm:?}, but it is lazy on another mm");
        }
    }
}

impl<S: LazyMm, const N: usize> LazyMm for Checked<S, N> {
    const NAME: &'static str = S::NAME;
    const CPUS: usize = if N < S::CPUS { N } else { S::CPUS };

    fn mmgrab_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        crate::lazy::check_sizes::<K, N>();
        let slot = self.lazy.get(cpu);
        assert!(
            slot.load(Relaxed) == 0,
            "lazymm: mmgrab_lazy_tlb on {cpu}, which is already lazy (entered twice)"
        );
        // Relaxed: only this CPU reads it.
        slot.store(mm.to_word(), Relaxed);
        self.inner.mmgrab_lazy_tlb(k, cpu, mm);
    }

    fn transfer_lazy<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        self.expect_lazy("transfer_lazy", cpu, mm);
        self.inner.transfer_lazy(k, cpu, mm);
    }

    fn switching_mm<K: Kernel>(&self, k: &K, cpu: CpuId, prev: Option<K::Mm>, next: Option<K::Mm>) {
        self.inner.switching_mm(k, cpu, prev, next);
    }

    fn switched_mm<K: Kernel>(&self, k: &K, cpu: CpuId, prev: Option<K::Mm>, next: Option<K::Mm>) {
        self.inner.switched_mm(k, cpu, prev, next);
    }

    fn mmdrop_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm, next: Option<K::Mm>) {
        self.expect_lazy("mmdrop_lazy_tlb", cpu, mm);
        self.lazy.get(cpu).store(0, Relaxed);
        self.inner.mmdrop_lazy_tlb(k, cpu, mm, next);
    }

    fn mm_users_zero<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        self.inner.mm_users_zero(k, cpu, mm);
    }

    fn final_drop<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        self.inner.final_drop(k, cpu, mm);
    }

    fn cpu_dead<K: Kernel>(&self, k: &K, cpu: CpuId) {
        let still = self.lazy.get(cpu).load(Relaxed);
        if still != 0 {
            panic!(
                "lazymm: cpu_dead on {cpu}, which is still lazy on {:?} (switch it to the kernel's mm and mmdrop_lazy_tlb before it dies)",
                K::Mm::from_word(still)
            );
        }
        self.inner.cpu_dead(k, cpu);
    }

    fn lazy_shot<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        self.expect_lazy("lazy_shot", cpu, mm);
        self.lazy.get(cpu).store(0, Relaxed);
        self.inner.lazy_shot(k, cpu, mm);
    }
}
