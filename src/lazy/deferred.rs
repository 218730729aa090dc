//! Deferring the final drop out of interrupts-off context: Linux's
//! `mmdrop_sched()` / `mmdrop_lazy_tlb_sched()` shape.
//!
//! # Why
//!
//! Some hooks run with interrupts off and may drop the last reference to an
//! mm: `cached`'s [`switched_mm`](super::LazyMm::switched_mm) gives back the
//! reference it cached for the previous mm, and `refcount`, `tagged` and
//! `cached` drop one in [`mmdrop_lazy_tlb`](super::LazyMm::mmdrop_lazy_tlb), which a
//! kernel may call before it turns interrupts back on. The final drop then
//! runs [`final_drop`](super::LazyMm::final_drop), which for the IPI-based
//! schemes sends IPIs and waits — and a CPU that waits with interrupts off
//! for a CPU that waits for it deadlocks, unless its wait serves its own
//! IPIs. (The module docs of [`super`] list each hook's context.)
//!
//! # The protocol
//!
//! The kernel's [`Kernel::mmdrop`](super::Kernel::mmdrop), on taking
//! `mm_count` to zero with interrupts off, does not run `__mmdrop()`:
//! it [`defer`](DeferredDrops::defer)s the mm on the running CPU's list, and
//! at the CPU's next interrupts-on point (the end of `finish_task_switch()`,
//! the idle loop) it [`drain`](DeferredDrops::drain)s the list, running
//! `final_drop` and the free for each. Nothing else changes: the mm has no
//! references left, so nobody can take a new one; it stays allocated (and
//! may still be loaded lazily by CPUs the scheme has not shot down yet)
//! until `final_drop` has run, exactly as if the drop had happened later.
//!
//! The list is per CPU and only its CPU touches it (preemption and
//! interrupts off while it defers, preemption off while it drains), so it
//! needs no atomics; it has a fixed capacity and never allocates. A switch
//! drops at most two references (the previous mm's cached one and the lazy
//! one), so a capacity of 4 is enough for a kernel that drains at every
//! interrupts-on point; [`defer`](DeferredDrops::defer) returns the mm back
//! when the list is full, and the kernel then has to drop it where it is.
//!
//! # Verification
//!
//! The simulated machine's `with_deferred_drops()` defers every final drop
//! reached inside an interrupts-off hook this way and drains at its
//! interrupts-enabled points; `tests/loom/deferred.rs` runs the standard
//! scenarios so (counting the deferred drops, so the path is known to be
//! taken), and a machine whose drain loses the list (`bug_deferred_lost`)
//! fails with a leak.

/// One CPU's list of mms whose final drop waits for interrupts to be on.
#[derive(Debug)]
pub struct DeferredDrops<M, const CAP: usize> {
    mms: [Option<M>; CAP],
    len: usize,
}

impl<M: Copy, const CAP: usize> Default for DeferredDrops<M, CAP> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Copy, const CAP: usize> DeferredDrops<M, CAP> {
    /// An empty list.
    pub const fn new() -> Self {
        Self {
            mms: [None; CAP],
            len: 0,
        }
    }

    /// `mmdrop_sched()`: remembers `mm`, whose `mm_count` just reached zero,
    /// for the next [`drain`](Self::drain). Returns it back if the list is
    /// full (then the caller runs the final drop itself).
    #[inline]
    pub fn defer(&mut self, mm: M) -> Result<(), M> {
        match self.mms.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(mm);
                self.len += 1;
                Ok(())
            }
            None => Err(mm),
        }
    }

    /// How many drops wait.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether none waits.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes every waiting mm out, oldest first, leaving the list empty: the
    /// caller runs `final_drop` and the free for each. The list is free to
    /// take new drops while the caller works through the old ones (a final
    /// drop may itself reach an interrupts-off path).
    pub fn drain(&mut self) -> impl Iterator<Item = M> {
        let taken = core::mem::replace(&mut self.mms, [None; CAP]);
        let len = core::mem::replace(&mut self.len, 0);
        taken.into_iter().take(len).flatten()
    }
}

#[cfg(all(test, not(any(loom, lazymm_shuttle))))]
mod tests {
    use super::DeferredDrops;

    #[test]
    fn defers_up_to_capacity_and_drains_oldest_first() {
        let mut d = DeferredDrops::<u32, 2>::new();
        assert!(d.is_empty());
        assert_eq!(d.defer(7), Ok(()));
        assert_eq!(d.defer(9), Ok(()));
        assert_eq!(d.defer(11), Err(11), "full: the caller drops it itself");
        assert_eq!(d.len(), 2);
        let drained: std::vec::Vec<_> = d.drain().collect();
        assert_eq!(drained, [7, 9]);
        assert!(d.is_empty());
        assert_eq!(d.defer(11), Ok(()), "room again after a drain");
        assert_eq!(d.drain().collect::<std::vec::Vec<_>>(), [11]);
    }
}
