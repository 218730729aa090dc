//! Torvalds' "no refcount at all, `loaded_mm` is the truth" (LKML,
//! October 2024).
//!
//! # Protocol
//!
//! The per-CPU `loaded_mm` word (x86's `cpu_tlbstate.loaded_mm`) is the only
//! record of a CPU's use of an mm, lazy or not. Context switches take no
//! reference and write no shared line: `switch_mm_irqs_off()` stores the
//! transient `LOADED_MM_SWITCHING` before it reloads the page-table base and
//! the new mm after. The final drop reads every CPU's word and forces each
//! CPU whose word is the mm — **or `SWITCHING`**, whose page-table base may
//! still point at it — off it with an IPI (switch to the kernel's own mm),
//! waiting for the acknowledgement.
//!
//! **Orderings.** The store of the new mm after the reload is a release,
//! paired with the final drop's acquire load: a CPU seen on another mm made
//! its last use of this one before. A CPU seen on the mm or `SWITCHING` is
//! IPI'd and its release acknowledgement orders its last use before the
//! free. The `SWITCHING` store itself can be relaxed: whoever reads it IPIs.
//!
//! **The CVE-2025-37964 window.** `fea4e317f9e7` fixed `should_flush_tlb()`
//! treating `SWITCHING` as "not this mm" between the CR3 write and the store
//! of the new mm. The same mistake here frees an mm whose page tables a
//! switching CPU still has loaded: the variant `bug_switching_window`,
//! rejected by loom with "use-after-free" (`tests/loom/loaded.rs`).
//!
//! **Cost.** Nothing per lazy switch but the stores a kernel makes anyway;
//! at every final drop, one load per possible CPU plus an IPI per CPU still
//! on the mm (Joel Fernandes' objection: x86 refcounting needed none).
//!
//! Source: Linus Torvalds' reply in the hazard-pointer lazy-mm thread
//! (LKML, 2024): "`loaded_mm` is the truth".

use crate::bugs::BugSwitch;
use crate::cpu::{CpuId, CpuMask, PerCpu};
use crate::lazy::{Kernel, LazyMm, MmHandle};
use crate::sync::{AtomicUsize, Ordering::*};

/// `LOADED_MM_SWITCHING`: the page-table base is being reloaded.
pub const SWITCHING: usize = 1;

/// The known-bad variants of [`LoadedMm`].
#[cfg_attr(not(lazymm_bugs), doc(hidden))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// The final drop treats `SWITCHING` as "not this mm" (CVE-2025-37964).
    SwitchingWindow,
    /// The final drop's scan stops after the first 64 CPUs (written for a
    /// one-word cpumask): a CPU with an id of 64 or more that has the mm
    /// loaded is never IPI'd. Invisible to every model with fewer than 65
    /// CPUs; `tests/wide_cpus.rs` (CPU ids 0, 63, 64, 127, 1023 in a
    /// 1,024-slot kernel) rejects it.
    ScanFirstWordOnly,
    /// `switched_mm` stores the new mm with `Relaxed`: a final drop that
    /// reads it is not ordered after the CPU's last use of the old one.
    RelaxedSwitchedStore,
    /// The final drop reads the `loaded_mm` words with `Relaxed`.
    RelaxedScanLoad,
}

/// `loaded_mm` as the only record of mm use, for `N` CPUs.
pub struct LoadedMm<const N: usize> {
    loaded: PerCpu<AtomicUsize, N>,
    bug: BugSwitch<Bug>,
}

impl<const N: usize> Default for LoadedMm<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LoadedMm<N> {
    crate::const_fn! {
        /// Every CPU on the kernel's own mm (word 0).
        pub fn new() -> Self {
            Self {
                loaded: PerCpu::from_padded(crate::cpu::padded_array!(N, AtomicUsize::new(0))),
                bug: BugSwitch::off(),
            }
        }
    }

    /// The scheme with a known bug switched on (checker builds only).
    #[cfg(lazymm_bugs)]
    pub fn with_bug(bug: Bug) -> Self {
        let mut s = Self::new();
        s.bug = BugSwitch::on(bug);
        s
    }

    /// `cpu`'s `loaded_mm` word, for the crate's benchmarks and tests: not
    /// part of the kernel-facing API.
    #[doc(hidden)]
    pub fn word(&self, cpu: CpuId) -> &AtomicUsize {
        self.loaded.get(cpu)
    }
}

impl<const N: usize> LazyMm for LoadedMm<N> {
    const NAME: &'static str = "loaded_mm";
    const CPUS: usize = N;

    #[inline]
    fn mmgrab_lazy_tlb<K: Kernel>(&self, _k: &K, _cpu: CpuId, _mm: K::Mm) {}

    #[inline]
    fn mmdrop_lazy_tlb<K: Kernel>(&self, _k: &K, _cpu: CpuId, _mm: K::Mm, _next: Option<K::Mm>) {}

    #[inline]
    fn switching_mm<K: Kernel>(
        &self,
        _k: &K,
        cpu: CpuId,
        _prev: Option<K::Mm>,
        _next: Option<K::Mm>,
    ) {
        // Relaxed: a reader of SWITCHING IPIs us, and the IPI's
        // acknowledgement carries the ordering.
        self.loaded.get(cpu).store(SWITCHING, Relaxed);
    }

    #[inline]
    fn switched_mm<K: Kernel>(
        &self,
        _k: &K,
        cpu: CpuId,
        _prev: Option<K::Mm>,
        next: Option<K::Mm>,
    ) {
        // Release: pairs with the final drop's acquire load; our uses of the
        // previous mm happen before a drop that sees this value.
        self.loaded.get(cpu).store(
            next.map_or(0, MmHandle::to_word),
            self.bug.weaken(Bug::RelaxedSwitchedStore, Release),
        );
    }

    fn final_drop<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        crate::lazy::check_sizes::<K, N>();
        let word = mm.to_word();
        let mut targets = K::CpuMask::default();
        let scanned = if self.bug.is(Bug::ScanFirstWordOnly) {
            64 // BUG: one word's worth of CPUs
        } else {
            N
        };
        for (c, w) in self.loaded.iter().take(scanned) {
            // Acquire: pairs with switched_mm's release store.
            let v = w.load(self.bug.weaken(Bug::RelaxedScanLoad, Acquire));
            if v == word || (v == SWITCHING && !self.bug.is(Bug::SwitchingWindow)) {
                targets.insert(c);
            }
        }
        if !targets.is_empty() {
            k.shoot_lazies(cpu, &targets, mm);
        }
    }
}
