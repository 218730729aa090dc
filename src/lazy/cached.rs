//! van Riel's per-CPU cached lazy reference (2018): "keep that
//! refcount on a per cpu basis from the time we first switch to that mm in
//! lazy tlb mode, to when we switch the CPU to a different mm".
//!
//! # Protocol
//!
//! Each CPU owns one word, the mm it holds a cached `mm_count` reference on
//! (or 0). Only the CPU itself reads or writes it.
//!
//! * **enter lazy** on `mm`: if the CPU already caches `mm`, nothing;
//!   otherwise grab a reference and cache it.
//! * **leave lazy**: nothing — the cached reference stays, so a kernel thread
//!   followed by the same user mm again (the common round trip) touches no
//!   shared line at all.
//! * **switch mm** (the page-table base now points at another mm, or at the
//!   kernel's own): drop the cached reference if it is not for the new mm.
//!
//! **Invariant.** A CPU that has an mm loaded lazily caches a reference on
//! it, so `mm_count` cannot reach 0 under it (the refcount argument with the
//! reference's lifetime stretched). Orderings are those of `mmgrab()` /
//! `mmdrop()`: the drop runs after the CPU loaded another mm, and its release
//! orders the CPU's last use before the free.
//!
//! # The question it raises, answered
//!
//! *Who drops the cached reference when the mm exits while a CPU caches it?*
//! The caching CPU itself, at its next switch to a different mm (or when it
//! goes down). No exit path has to find it: `exit_mm()` on a CPU that
//! already caches the mm takes no new reference, and `__mmput()` drops the
//! users' reference as usual; the cached one keeps only the `mm_struct`
//! (page tables are already torn down by `exit_mmap()`).
//!
//! *How long can the mm struct outlive its last user?* Until every CPU
//! caching it loads another mm. A CPU caches an mm only while it has it
//! loaded, so the bound is the same as upstream refcounting: the longest
//! time a CPU stays lazy on the dead mm (an idle CPU: unbounded without a
//! nudge, which is what the RCU and shootdown schemes add). It is never
//! longer than refcounting's bound: a CPU that switches to any other mm drops
//! the reference in that very switch.
//!
//! Evidence: `tests/loom/cached.rs` (every shared scenario passes; the
//! variant below fails with "use-after-free"), `tests/shuttle/cached.rs`.
//!
//! # Known-bad variants
//!
//! * `bug_drop_on_leave`: leave lazy drops the cached reference (the
//!   incoming task's `mm_users` "covers it") but keeps the cache word, so the
//!   next lazy entry on that mm trusts a reference that is gone:
//!   use-after-free.
//! * `bug_forget_on_init_mm`: only a switch to another *user* mm drops the
//!   cache; a CPU that goes to the kernel's own mm (CPU down, a shootdown)
//!   keeps its reference forever: leak.

use crate::bugs::BugSwitch;
use crate::cpu::{CpuId, PerCpu};
use crate::lazy::{Kernel, LazyMm, MmHandle};
use crate::sync::{AtomicUsize, Ordering::Relaxed};

/// The known-bad variants of [`Cached`].
#[cfg_attr(not(lazymm_bugs), doc(hidden))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// Leave lazy drops the cached reference but keeps the cache word.
    DropOnLeave,
    /// A switch to the kernel's own mm keeps the cached reference.
    ForgetOnInitMm,
}

/// van Riel's per-CPU cached reference, for `N` CPUs.
pub struct Cached<const N: usize> {
    cached: PerCpu<AtomicUsize, N>,
    bug: BugSwitch<Bug>,
}

impl<const N: usize> Default for Cached<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Cached<N> {
    crate::const_fn! {
        /// No CPU caches anything.
        pub fn new() -> Self {
            Self {
                cached: PerCpu::from_padded(crate::cpu::padded_array!(N, AtomicUsize::new(0))),
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

    /// Drops `cpu`'s cached reference unless it is for `keep`.
    #[inline]
    fn drop_unless<K: Kernel>(&self, k: &K, cpu: CpuId, keep: usize) {
        let slot = self.cached.get(cpu);
        // Relaxed: only this CPU touches its slot (interrupts are off).
        let c = slot.load(Relaxed);
        if c != 0 && c != keep {
            slot.store(0, Relaxed);
            k.mmdrop(cpu, K::Mm::from_word(c));
        }
    }
}

impl<const N: usize> LazyMm for Cached<N> {
    const NAME: &'static str = "cached";
    const CPUS: usize = N;

    #[inline]
    fn mmgrab_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        crate::lazy::check_sizes::<K, N>();
        let slot = self.cached.get(cpu);
        let word = mm.to_word();
        let c = slot.load(Relaxed);
        if c == word {
            return;
        }
        debug_assert_eq!(
            c, 0,
            "lazymm: {cpu} caches another mm while lazy on a new one"
        );
        k.mmgrab(cpu, mm);
        slot.store(word, Relaxed);
    }

    #[inline]
    fn switched_mm<K: Kernel>(&self, k: &K, cpu: CpuId, _prev: Option<K::Mm>, next: Option<K::Mm>) {
        if next.is_none() && self.bug.is(Bug::ForgetOnInitMm) {
            return;
        }
        self.drop_unless(k, cpu, next.map_or(0, MmHandle::to_word));
    }

    #[inline]
    fn mmdrop_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm, _next: Option<K::Mm>) {
        // The cached reference outlives the lazy use; switched_mm drops it.
        if self.bug.is(Bug::DropOnLeave) && self.cached.get(cpu).load(Relaxed) == mm.to_word() {
            k.mmdrop(cpu, mm);
        }
    }
}
