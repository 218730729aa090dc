//! Piggin's "shoot lazies": no lazy references at all; the final drop IPIs
//! every CPU that may still use the mm lazily (`CONFIG_MMU_LAZY_TLB_SHOOTDOWN`).
//!
//! # Protocol
//!
//! Lazy CPUs take no reference, so the context-switch path touches no shared
//! line. Instead `__mmdrop()` runs `cleanup_lazy_tlbs()`: it sends
//! `do_shoot_lazy_tlb` to every CPU of `mm_cpumask(mm)` (the caller included)
//! and waits; each CPU whose `active_mm` is the mm switches to the kernel's
//! own mm. Only then is the mm freed.
//!
//! **Requirement (the arch's side of the Kconfig contract).** At the final
//! `mmdrop()`, `mm_cpumask(mm)` ⊇ the CPUs that use the mm lazily. The
//! simulated machine keeps it: a CPU sets its bit before it loads the mm and
//! clears it (release) only after it has loaded another one.
//!
//! **Orderings.** The final decrement of `mm_count` is acquire; the cpumask is
//! then read with acquire, pairing with the release clear of a CPU that
//! already left (so its last use happens before the free); a CPU still in the
//! mask is IPI'd, and its release acknowledgement, acquired by the sender,
//! orders its last use before the free. `mmdrop_lazy_tlb()` is a full barrier
//! in Linux for membarrier's sake only; nothing here relies on it.
//!
//! **Cost.** Zero atomics per lazy round trip; one IPI per CPU of the cpumask
//! at each process exit (Zijlstra: "the IPI would be once per process exit").
//!
//! # Known-bad variant
//!
//! `bug_hotplug_clears_cpumask` (a switch in the simulated machine's CPU-down
//! path, `lazymm::check::model::MachineBug::HotplugClearsCpumask`): powerpc's
//! `__cpu_disable()` cleared the dying CPU from every `mm_cpumask` while its
//! idle task still used an mm lazily; a final drop elsewhere then skipped it
//! and freed the mm under it (fixed by `sched_force_init_mm()`, which
//! switches to `init_mm` first).
//!
//! Source: Linux `kernel/fork.c` (`cleanup_lazy_tlbs()`, `do_shoot_lazy_tlb()`),
//! commit 2655421ae69f.

use crate::cpu::CpuId;
use crate::lazy::{Kernel, LazyMm};

/// `MMU_LAZY_TLB_SHOOTDOWN`: no lazy references, IPIs at the final drop.
#[derive(Debug, Default)]
pub struct Shootdown;

impl Shootdown {
    /// The scheme.
    pub const fn new() -> Self {
        Self
    }
}

impl LazyMm for Shootdown {
    const NAME: &'static str = "shootdown";

    #[inline]
    fn mmgrab_lazy_tlb<K: Kernel>(&self, _k: &K, _cpu: CpuId, _mm: K::Mm) {
        crate::lazy::check_sizes::<K, { usize::MAX }>();
        // No reference: the cpumask bit set when the mm was loaded is the record.
    }

    #[inline]
    fn mmdrop_lazy_tlb<K: Kernel>(&self, _k: &K, _cpu: CpuId, _mm: K::Mm, _next: Option<K::Mm>) {
        // Nothing to drop.
    }

    fn final_drop<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        crate::lazy::check_sizes::<K, { usize::MAX }>();
        // cleanup_lazy_tlbs(): the acquire snapshot pairs with the release
        // clear in switch_mm; shoot_lazies waits for every acknowledgement.
        let cpus = k.mm_cpumask(mm);
        k.shoot_lazies(cpu, &cpus, mm);
    }
}
