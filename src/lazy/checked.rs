//! [`Checked`]: any scheme, with the scheduler's side of the contract
//! checked — as a documented panic instead of silent corruption of the
//! scheme's counts. The same panics for every scheme, because `Checked`
//! checks before the scheme runs:
//!
//! | misuse | `Checked`'s panic message contains | the scheme alone (debug build): panics / corrupts silently / hangs |
//! |---|---|---|
//! | `mmgrab_lazy_tlb` on a CPU that is already lazy | `"which is already lazy (entered twice)"` | tagged, hazard, epoch_mm / — / — |
//! | `mmdrop_lazy_tlb` (or `transfer_lazy`, `lazy_shot`) on a CPU that is not lazy | `"which is not lazy (left twice, or never entered)"` | tagged, hazard, epoch_mm / refcount (a use-after-free) / — |
//! | `mmdrop_lazy_tlb` for another mm than the CPU's lazy one | `"but it is lazy on another mm"` | tagged, hazard / refcount (a use-after-free) / — |
//! | a CPU id at or above `N` | `"CPU id .. out of range"` | tagged, cached, hazard, hazard_nofence (their per-CPU table's message; haphazard and epoch_mm: an index panic) / — / — |
//! | `cpu_dead` for a CPU still lazy on an mm | `"which is still lazy on"` | none |
//! | a final drop while a CPU is still lazy on the mm | `"is still lazy on it at its final drop"` | none / — / hazard, hazard_nofence, haphazard (the final drop waits forever for the CPU) |
//! | a lazy CPU loads its lazy mm again after switching away, without a new `mmgrab_lazy_tlb` | `"again after switching away from it while lazy"` | none |
//!
//! (`tests/misuse.rs` has the table, one test per scheme and misuse;
//! `tests/misuse_bare.rs` measures the last column and fails when a scheme
//! starts or stops catching a misuse.)
//!
//! **The policy.** A scheme alone checks only what its own state shows for
//! free, in every build (a compare on a word it reads anyway: tagged's and
//! the fenced hazard scheme's per-CPU word, the per-CPU tables' bounds);
//! it adds no debug-only bookkeeping, so a debug build of the scheme is
//! the scheme. Everything else is `Checked`'s: wrap the scheme while bringing
//! a kernel up, and every scheme gives the same documented panic for every
//! misuse above, where alone most would corrupt a count or hang silently.
//!
//! **Free while lazy.** A CPU may be lazy on an mm when its final drop
//! begins — shootdown and its kin force it off — but not when it ends. So
//! `Checked` looks twice: after each `shoot_lazies` the scheme sends from
//! its final drop (every target still lazy on the mm means the kernel's IPI
//! did not switch it off and call `lazy_shot`), and after the final drop
//! returns (any CPU still lazy on the mm means a reference it held was
//! dropped by someone else, or the scheme let it be). A CPU that has begun
//! switching to another mm (`switching_mm`) no longer counts: it stops
//! using the old one there, whatever the order of its later hooks.
//!
//! Schemes without per-CPU state (refcount, shootdown, rcu_mm) cannot see
//! these mistakes themselves; the per-CPU ones check what they can (tagged
//! and the fenced hazard scheme panic on a leave without an enter). A lazy
//! CPU that switches away from its lazy mm and loads it again without a new
//! `mmgrab_lazy_tlb` (a temporary mm used from a kernel thread, say) panics
//! here: the per-CPU schemes drop their hold on the mm at the first switch. Wrap the scheme while
//! bringing a kernel up; the cost is one per-CPU word and a few relaxed
//! accesses per hook.

use crate::cpu::{CpuId, CpuMask, PerCpu};
use crate::lazy::{Kernel, LazyMm, MmHandle};
use crate::sync::{AtomicUsize, Ordering::*};

/// `S` with the lazy-mode contract checked on `N` CPUs.
pub struct Checked<S, const N: usize> {
    inner: S,
    /// Per CPU: the word of the mm it uses lazily (bit 0 set once it began
    /// switching away from it), or 0. Only its own CPU writes it (hooks run
    /// on their CPU, preemption off); final drops on other CPUs read it.
    lazy: PerCpu<AtomicUsize, N>,
}

impl<S: Default, const N: usize> Default for Checked<S, N> {
    fn default() -> Self {
        Self::new(S::default())
    }
}

impl<S, const N: usize> Checked<S, N> {
    crate::const_fn! {
        /// Wraps `inner`; every CPU starts not lazy. `const` outside loom, so a
        /// kernel keeps a `Checked` scheme in a `static`.
        pub fn new(inner: S) -> Self {
            Self {
                inner,
                lazy: PerCpu::from_padded(crate::cpu::padded_array!(N, AtomicUsize::new(0))),
            }
        }
    }

    /// The wrapped scheme.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Sets `cpu`'s slot. Release: the CPU's hooks before it happen before a
    /// final drop that reads it (through the scheme's own acquire: an IPI
    /// acknowledgement, `mm_count`, the cpumask, a grace period).
    fn set(&self, cpu: CpuId, word: usize) {
        self.lazy.get(cpu).store(word, Release);
    }

    /// Panics if a CPU of `cpus` is still lazy on `mm` (not switching away).
    fn none_lazy_on<M: MmHandle>(&self, cpus: impl Iterator<Item = CpuId>, mm: M, after: &str) {
        for c in cpus.filter(|c| c.index() < N) {
            // Acquire: pairs with `set` (see there).
            if self.lazy.get(c).load(Acquire) == mm.to_word() {
                panic!("lazymm: {c} is still lazy on it at its final drop: {mm:?}, {after}");
            }
        }
    }

    fn expect_lazy<M: MmHandle>(&self, hook: &str, cpu: CpuId, mm: M) {
        let now = self.lazy.get(cpu).load(Relaxed) & !1;
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
        self.set(cpu, mm.to_word());
        self.inner.mmgrab_lazy_tlb(k, cpu, mm);
    }

    fn transfer_lazy<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        self.expect_lazy("transfer_lazy", cpu, mm);
        self.inner.transfer_lazy(k, cpu, mm);
    }

    fn switching_mm<K: Kernel>(&self, k: &K, cpu: CpuId, prev: Option<K::Mm>, next: Option<K::Mm>) {
        let now = self.lazy.get(cpu).load(Relaxed);
        if now != 0 && prev.map(MmHandle::to_word) == Some(now) {
            self.set(cpu, now | 1); // switching away: no longer uses it
        }
        if now & 1 != 0 && next.map(MmHandle::to_word) == Some(now & !1) {
            // cached, hazard_nofence and rcu_mm gave up their hold on the
            // lazy mm when the CPU switched away from it.
            panic!(
                "lazymm: {cpu} loads {:?} again after switching away from it while lazy, \
                 without a new mmgrab_lazy_tlb (a lazy CPU that loads another mm has ended its lazy use)",
                K::Mm::from_word(now & !1)
            );
        }
        self.inner.switching_mm(k, cpu, prev, next);
    }

    fn switched_mm<K: Kernel>(&self, k: &K, cpu: CpuId, prev: Option<K::Mm>, next: Option<K::Mm>) {
        self.inner.switched_mm(k, cpu, prev, next);
    }

    fn mmdrop_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm, next: Option<K::Mm>) {
        self.expect_lazy("mmdrop_lazy_tlb", cpu, mm);
        self.set(cpu, 0);
        self.inner.mmdrop_lazy_tlb(k, cpu, mm, next);
    }

    fn mm_users_zero<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        self.inner.mm_users_zero(k, cpu, mm);
    }

    fn final_drop<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        self.inner.final_drop(&Watch { k, checked: self }, cpu, mm);
        self.none_lazy_on(
            (0..N).map(CpuId::new),
            mm,
            "after the scheme's final drop (the scheme let the mm go while this CPU still uses it: a reference it held was dropped by someone else, or its final drop did not force the CPU off)",
        );
    }

    fn cpu_dead<K: Kernel>(&self, k: &K, cpu: CpuId) {
        let still = self.lazy.get(cpu).load(Relaxed);
        if still != 0 {
            panic!(
                "lazymm: cpu_dead on {cpu}, which is still lazy on {:?} (switch it to the kernel's mm and mmdrop_lazy_tlb before it dies)",
                K::Mm::from_word(still & !1)
            );
        }
        self.inner.cpu_dead(k, cpu);
    }

    fn lazy_shot<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        self.expect_lazy("lazy_shot", cpu, mm);
        self.set(cpu, 0);
        self.inner.lazy_shot(k, cpu, mm);
    }
}

/// The kernel as a [`Checked`] scheme's final drop sees it: every call goes
/// to the real kernel, and a `shoot_lazies` is checked to have taken its
/// targets off the mm.
struct Watch<'a, K, S, const N: usize> {
    k: &'a K,
    checked: &'a Checked<S, N>,
}

impl<K: Kernel, S: Sync, const N: usize> Kernel for Watch<'_, K, S, N> {
    type Mm = K::Mm;
    const NR_CPUS: usize = K::NR_CPUS;
    type CpuMask = K::CpuMask;

    fn mmgrab(&self, cpu: CpuId, mm: K::Mm) {
        self.k.mmgrab(cpu, mm)
    }
    fn mmdrop(&self, cpu: CpuId, mm: K::Mm) {
        self.k.mmdrop(cpu, mm)
    }
    fn mmgrab_many(&self, cpu: CpuId, mm: K::Mm, n: usize) {
        self.k.mmgrab_many(cpu, mm, n)
    }
    fn mmdrop_many(&self, cpu: CpuId, mm: K::Mm, n: usize) {
        self.k.mmdrop_many(cpu, mm, n)
    }
    fn mm_users(&self, mm: K::Mm) -> usize {
        self.k.mm_users(mm)
    }
    fn mm_cpumask(&self, mm: K::Mm) -> K::CpuMask {
        self.k.mm_cpumask(mm)
    }
    fn for_each_mm_cpu(&self, mm: K::Mm, f: impl FnMut(CpuId)) {
        self.k.for_each_mm_cpu(mm, f)
    }
    fn shoot_lazies(&self, cpu: CpuId, cpus: &K::CpuMask, mm: K::Mm) {
        self.k.shoot_lazies(cpu, cpus, mm);
        self.checked.none_lazy_on(
            cpus.iter(),
            mm,
            "after shoot_lazies returned (the kernel's IPI did not switch it off and call lazy_shot)",
        );
    }
    fn serve_ipis(&self, cpu: CpuId) {
        self.k.serve_ipis(cpu)
    }
    fn note_shared_rmw(&self, cpu: CpuId, n: usize) {
        self.k.note_shared_rmw(cpu, n)
    }
}
