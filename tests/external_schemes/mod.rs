//! Schemes written outside the crate, against its public traits only — as a
//! user's own would be — shared by the loom and shuttle external tests: one
//! correct ([`PlainRefcount`]) and a catalogue of wrong ones ([`WRONG`]),
//! each a mistake a kernel developer could plausibly make. Every wrong one
//! must be rejected by at least two of the standard scenarios under loom
//! and by shuttle's default run (`tests/loom/external.rs`,
//! `tests/shuttle/external.rs`).
//!
//! Per-CPU state uses the crate's atomics layer (`lazymm::check::sync`), so
//! loom explores it like the crate's own schemes' state.

#![allow(dead_code)] // each test binary uses its own part of the catalogue (tests/adoption too)

use lazymm::check::sync::{AtomicUsize, Ordering::*};
use lazymm::cpu::{CpuId, CpuMask};
use lazymm::lazy::{Kernel, LazyMm, MmHandle};

/// The machine's most CPUs (shuttle's default run uses 8).
const CPUS: usize = 8;

fn per_cpu() -> [AtomicUsize; CPUS] {
    core::array::from_fn(|_| AtomicUsize::new(0))
}

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

/// What a test does with each wrong scheme (`LazyMm` is not object safe,
/// so the catalogue is walked by a generic visitor).
pub trait Visit {
    fn visit<S: LazyMm + Default + Send + Sync + 'static>(&mut self);
}

/// Calls `v` with every wrong scheme of the catalogue, in order.
pub fn for_each_wrong(v: &mut impl Visit) {
    v.visit::<NoGrab>();
    v.visit::<NoDrop>();
    v.visit::<EarlyDropOnTransfer>();
    v.visit::<TransferSkipsGrab>();
    v.visit::<DropBeforeLoad>();
    v.visit::<SameMmKeepsRef>();
    v.visit::<LostUpdateCount<false>>();
    v.visit::<FinalDropSkipsSelf>();
    v.visit::<DownDropsTwice>();
}

/// How many wrong schemes the catalogue has.
pub const WRONG: usize = 9;

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

/// Wrong, one switch too early: the reference is taken for the kernel
/// thread that first borrowed the mm and given back when that thread
/// switches to the next kernel thread, although the CPU keeps the mm
/// loaded for it (`held` remembers not to drop twice).
#[derive(Default)]
pub struct EarlyDropOnTransfer {
    held: PerCpu,
}

impl LazyMm for EarlyDropOnTransfer {
    const NAME: &'static str = "external/early-drop-on-transfer";
    const CPUS: usize = CPUS;

    fn mmgrab_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        k.mmgrab(cpu, mm);
        self.held.set(cpu, 1);
    }

    fn transfer_lazy<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        if self.held.take(cpu) != 0 {
            k.mmdrop(cpu, mm);
        }
    }

    fn mmdrop_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm, _next: Option<K::Mm>) {
        if self.held.take(cpu) != 0 {
            k.mmdrop(cpu, mm);
        }
    }
}

/// Wrong: each kernel thread owns a reference, so kernel → kernel drops
/// the previous thread's — and forgets to grab one for the next, which
/// then drops a reference it never had.
#[derive(Default)]
pub struct TransferSkipsGrab;

impl LazyMm for TransferSkipsGrab {
    const NAME: &'static str = "external/transfer-skips-grab";

    fn mmgrab_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        k.mmgrab(cpu, mm);
    }

    fn transfer_lazy<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        k.mmdrop(cpu, mm); // the previous thread's; the next one's grab is missing
    }

    fn mmdrop_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm, _next: Option<K::Mm>) {
        k.mmdrop(cpu, mm);
    }
}

/// Wrong: the lazy reference is dropped in `switching_mm`, "we are leaving
/// it anyway" — before the page-table load, while the CPU still has the mm
/// loaded (`lazy` remembers which mm the CPU holds).
#[derive(Default)]
pub struct DropBeforeLoad {
    lazy: PerCpu,
}

impl LazyMm for DropBeforeLoad {
    const NAME: &'static str = "external/drop-before-load";
    const CPUS: usize = CPUS;

    fn mmgrab_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        k.mmgrab(cpu, mm);
        self.lazy.set(cpu, mm.to_word());
    }

    fn switching_mm<K: Kernel>(
        &self,
        k: &K,
        cpu: CpuId,
        prev: Option<K::Mm>,
        _next: Option<K::Mm>,
    ) {
        if let Some(prev) = prev {
            if self.lazy.get(cpu) == prev.to_word() {
                self.lazy.set(cpu, 0);
                k.mmdrop(cpu, prev);
            }
        }
    }

    fn mmdrop_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm, _next: Option<K::Mm>) {
        // Unlazy into the same mm (no page-table load) still drops here.
        if self.lazy.take(cpu) != 0 {
            k.mmdrop(cpu, mm);
        }
    }
}

/// Wrong: forgets the same-mm case — unlazy back into the mm it was lazy
/// on "needs no drop, nothing was switched", so that reference leaks.
#[derive(Default)]
pub struct SameMmKeepsRef;

impl LazyMm for SameMmKeepsRef {
    const NAME: &'static str = "external/same-mm-keeps-ref";

    fn mmgrab_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        k.mmgrab(cpu, mm);
    }

    fn mmdrop_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm, next: Option<K::Mm>) {
        if next != Some(mm) {
            k.mmdrop(cpu, mm);
        }
    }
}

/// Wrong: shootdown only when some CPU is lazy, counted in one shared word
/// updated by a load and a plain store where an RMW is needed: two CPUs
/// going lazy at once lose an increment, the count reads 0 while a CPU is
/// lazy, and the final drop skips the shootdown. [`RmwCount`], the same
/// with `fetch_add`, is correct (if slow): the control that shows the
/// lost update is what the checks reject.
#[derive(Default)]
pub struct LostUpdateCount<const RMW: bool = false> {
    lazy_cpus: AtomicUsize,
}

/// [`LostUpdateCount`] with an RMW: correct.
pub type RmwCount = LostUpdateCount<true>;

impl<const RMW: bool> LostUpdateCount<RMW> {
    fn add(&self, delta: isize) {
        // SeqCst throughout, so that the lost update is the only mistake.
        if RMW {
            self.lazy_cpus.fetch_add(delta as usize, SeqCst);
        } else {
            let n = self.lazy_cpus.load(SeqCst);
            self.lazy_cpus.store(n.wrapping_add(delta as usize), SeqCst);
        }
    }
}

impl<const RMW: bool> LazyMm for LostUpdateCount<RMW> {
    const NAME: &'static str = if RMW {
        "external/rmw-count"
    } else {
        "external/lost-update-count"
    };

    fn mmgrab_lazy_tlb<K: Kernel>(&self, _k: &K, _cpu: CpuId, _mm: K::Mm) {
        self.add(1);
    }

    fn mmdrop_lazy_tlb<K: Kernel>(&self, _k: &K, _cpu: CpuId, _mm: K::Mm, _next: Option<K::Mm>) {
        self.add(-1);
    }

    fn lazy_shot<K: Kernel>(&self, _k: &K, _cpu: CpuId, _mm: K::Mm) {
        self.add(-1);
    }

    fn final_drop<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        if self.lazy_cpus.load(SeqCst) != 0 {
            k.shoot_lazies(cpu, &k.mm_cpumask(mm), mm);
        }
    }
}

/// Wrong: Linux's shootdown without references, except that the final drop
/// IPIs only the *other* CPUs of the cpumask — "the CPU doing the final
/// drop cannot be using the mm" — while `exit_mm()` left it lazy on it.
#[derive(Default)]
pub struct FinalDropSkipsSelf;

impl LazyMm for FinalDropSkipsSelf {
    const NAME: &'static str = "external/final-drop-skips-self";

    fn mmgrab_lazy_tlb<K: Kernel>(&self, _k: &K, _cpu: CpuId, _mm: K::Mm) {}

    fn mmdrop_lazy_tlb<K: Kernel>(&self, _k: &K, _cpu: CpuId, _mm: K::Mm, _next: Option<K::Mm>) {}

    fn final_drop<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        let mut others = K::CpuMask::default();
        for c in k.mm_cpumask(mm).iter().filter(|&c| c != cpu) {
            others.insert(c);
        }
        k.shoot_lazies(cpu, &others, mm);
    }
}

/// Wrong: a switch to the kernel's own mm (CPU down) drops the reference
/// at once *and* leaves it in the per-CPU slot meant for the hotplug
/// teardown (copied from a scheme that defers that drop to `cpu_dead`),
/// which then drops it again.
#[derive(Default)]
pub struct DownDropsTwice {
    deferred: PerCpu,
}

impl LazyMm for DownDropsTwice {
    const NAME: &'static str = "external/down-drops-twice";
    const CPUS: usize = CPUS;

    fn mmgrab_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        k.mmgrab(cpu, mm);
    }

    fn mmdrop_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm, next: Option<K::Mm>) {
        k.mmdrop(cpu, mm);
        if next.is_none() {
            self.deferred.set(cpu, mm.to_word()); // should not be here
        }
    }

    fn cpu_dead<K: Kernel>(&self, k: &K, cpu: CpuId) {
        let w = self.deferred.take(cpu);
        if w != 0 {
            k.mmdrop(cpu, K::Mm::from_word(w));
        }
    }
}

/// One word per CPU, read and written only by that CPU (and by the hotplug
/// teardown after it stopped): relaxed is enough.
pub struct PerCpu([AtomicUsize; CPUS]);

impl Default for PerCpu {
    fn default() -> Self {
        Self(per_cpu())
    }
}

impl PerCpu {
    fn get(&self, cpu: CpuId) -> usize {
        self.0[cpu.index()].load(Relaxed)
    }
    fn set(&self, cpu: CpuId, v: usize) {
        self.0[cpu.index()].store(v, Relaxed);
    }
    fn take(&self, cpu: CpuId) -> usize {
        let v = self.get(cpu);
        self.set(cpu, 0);
        v
    }
}
