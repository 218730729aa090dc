//! Linux's default: lazy users hold a reference on `mm_count`
//! (`CONFIG_MMU_LAZY_TLB_REFCOUNT`).
//!
//! # Protocol
//!
//! `mm_count` counts every reference to the mm struct: one for all of
//! `mm_users` together, one per `mmgrab()`, and — in this scheme — one per CPU
//! that uses the mm lazily. `context_switch()` takes the lazy reference when a
//! user task hands the CPU to a kernel thread (`mmgrab_lazy_tlb()`), passes it
//! on untouched from one kernel thread to the next, and drops it in
//! `finish_task_switch()` once the CPU has loaded the next user mm
//! (`mmdrop_lazy_tlb()`). `exit_mm()` takes one too: the exiting task keeps
//! its own mm loaded until it switches away.
//!
//! **Invariant (MM-EXIST, NO-LEAK).** `mm_count == [mm_users > 0] + grabs +
//! lazy CPUs`, so the count cannot reach zero while a CPU has the mm loaded,
//! and every lazy grab is matched by exactly one drop.
//!
//! **Orderings.** The grab is an unordered increment (it is made by a CPU that
//! already holds a reference: its user task's). The drop is the fully ordered
//! `mmdrop()`: a release decrement so that the CPU's last use of the mm
//! happens before the free, and an acquire on the final decrement so that the
//! free happens after every other CPU's last use. Both live in
//! [`Kernel::mmdrop`].
//!
//! **Cost.** Two atomic RMWs on the mm's shared `mm_count` line per lazy round
//! trip: the contention Piggin measured at 1M context switches/s on a 192-core
//! POWER8 (118M without it).
//!
//! # Known-bad variants
//!
//! | variant | what it does | loom verdict |
//! |---|---|---|
//! | `bug_drop_before_last_use` | the lazy reference is dropped as soon as it is taken, while the CPU keeps using the mm | use-after-free |
//! | `bug_transfer_grabs` | kernel → kernel takes a second reference that nobody drops | leak |
//!
//! Source: Linux `include/linux/sched/mm.h`, `kernel/sched/core.c`
//! (`context_switch()`, `finish_task_switch()`), Piggin's shoot-lazies series
//! (v6.4).

use crate::bugs::BugSwitch;
use crate::cpu::CpuId;
use crate::lazy::{Kernel, LazyMm};

/// The known-bad variants of [`Refcount`].
#[cfg_attr(not(lazymm_bugs), doc(hidden))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// Drop the lazy reference before the CPU's last use of the mm.
    DropBeforeLastUse,
    /// kernel → kernel also grabs a reference, which is then never dropped.
    TransferGrabs,
}

/// `MMU_LAZY_TLB_REFCOUNT`: each lazy CPU holds a reference on `mm_count`.
#[derive(Debug, Default)]
pub struct Refcount {
    bug: BugSwitch<Bug>,
}

impl Refcount {
    /// The correct scheme.
    pub const fn new() -> Self {
        Self {
            bug: BugSwitch::off(),
        }
    }

    /// The scheme with a known bug switched on (checker builds only).
    #[cfg(lazymm_bugs)]
    pub const fn with_bug(bug: Bug) -> Self {
        Self {
            bug: BugSwitch::on(bug),
        }
    }
}

impl LazyMm for Refcount {
    const NAME: &'static str = "refcount";

    #[inline]
    fn mmgrab_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        crate::lazy::check_sizes::<K, { usize::MAX }>();
        // mmgrab_lazy_tlb(): the CPU's user task still holds mm_users, so the
        // mm is alive and an unordered increment suffices.
        k.mmgrab(cpu, mm);
        if self.bug.is(Bug::DropBeforeLastUse) {
            // BUG: give the reference back while the CPU keeps the mm loaded.
            k.mmdrop(cpu, mm);
        }
    }

    #[inline]
    fn transfer_lazy<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        // The reference moves with active_mm; nothing to do.
        if self.bug.is(Bug::TransferGrabs) {
            // BUG: a second reference for the same lazy use.
            k.mmgrab(cpu, mm);
        }
    }

    #[inline]
    fn mmdrop_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm, _next: Option<K::Mm>) {
        if self.bug.is(Bug::DropBeforeLastUse) {
            return; // already dropped in mmgrab_lazy_tlb
        }
        // mmdrop_lazy_tlb(): fully ordered, see Kernel::mmdrop.
        k.mmdrop(cpu, mm);
    }
}
