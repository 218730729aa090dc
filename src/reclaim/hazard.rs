//! Per-CPU hazard pointers (Desnoyers' `hazptr`, 2024), usable for any
//! object.
//!
//! # The domain
//!
//! A [`HazardDomain`] gives each CPU `SLOTS` slots. A reader **publishes** an
//! address in one of its CPU's slots, runs a full barrier, and **re-validates**
//! the source it read the address from; a reclaimer **unpublishes** the
//! address from the source, runs a full barrier, and **scans** every slot,
//! waiting until none holds the address. The two sides are the
//! store-buffering pair
//!
//! ```text
//! reader:    W slot = p ; smp_mb() ; R src      (re-validate)
//! reclaimer: W src = q  ; smp_mb() ; R slot     (scan)
//! forbidden: reader reads src == p  AND  reclaimer reads slot != p
//! ```
//!
//! so either the reader sees the unpublish (and backs off) or the scan sees
//! the slot (and waits). Releasing a slot is a release store of 0, paired
//! with the scan's acquire load: every use under protection happens before
//! the scan returns. Evidence: `tests/loom/hazard.rs` (domain models without
//! the machine): the correct pair passes; `bug_no_publish_fence`,
//! `bug_no_scan_fence`, `bug_no_revalidate` and `bug_scan_no_wait` fail.
//!
//! **Slots.** `SLOTS` slots per CPU (the later hazptr RFCs have four, with
//! an on-stack backup). [`HazardDomain::try_protect`] takes the first free
//! one and fails cleanly ([`ProtectError::SlotsFull`]) when all are in use;
//! the caller falls back to a reference count, as those RFCs do. Slots are
//! per CPU, so protection must be taken and released with preemption
//! disabled (Boqun Feng's review point); the API takes the CPU explicitly.
//!
//! **Scanning from a context that cannot wait.** A scan without an
//! `on_match` callback waits for readers to leave on their own, which from
//! atomic context can deadlock. The LKP report on the series' v3
//! (`__mmdrop()` reached under `khugepaged_mm_lock` via `collect_mm_slot()`)
//! is that case. [`HazardDomain::scan`] therefore takes a [`ScanContext`] and
//! refuses `Atomic` without `on_match` with [`ScanError::CannotWait`] (Mathieu
//! Desnoyers' option 1: an `on_match` that forces readers off bounds the
//! wait).
//!
//! The lazy-mm scheme built on this domain is [`crate::lazy::hazard`].
//!
//! Source: Mathieu Desnoyers' hazard-pointer series (LKML, 2024) and
//! `hazptr_load_try_protect()`'s design.

use crate::bugs::BugSwitch;
use crate::cpu::{CpuId, CpuSet, PerCpu};
use crate::sync::{smp_mb, spin_loop, AtomicUsize, Ordering, Ordering::*};

/// The known-bad variants of the domain (the lazy-mm scheme's own are
/// [`crate::lazy::hazard::Bug`]).
#[cfg_attr(not(lazymm_bugs), doc(hidden))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// No full barrier between publishing and re-validating.
    NoPublishFence,
    /// No full barrier between the caller's unpublish and the scan.
    NoScanFence,
    /// `try_protect` trusts its first read of the source.
    NoRevalidate,
    /// The scan calls `on_match` but does not wait for the slot to clear.
    ScanNoWait,
    /// [`HazardDomain::clear`] and [`HazardDomain::unpublish`] store 0 with
    /// `Relaxed` instead of `Release`.
    /// Harmless after a full barrier (Desnoyers' `mmdrop_lazy_tlb()` runs
    /// `smp_mb()` first); a use-after-free in the fence-free lazy-mm scheme,
    /// whose clear is the only thing ordering the CPU's uses of the mm
    /// before the final drop's scan.
    RelaxedClear,
    /// [`HazardDomain::publish`] stores with `Relaxed` instead of
    /// `Release`: a scan that finds the CPU already protecting its *next*
    /// object skips it without seeing the uses of the old one. A
    /// use-after-free in the fence-free lazy-mm scheme (the CPU went lazy
    /// on another mm before the final drop); [`HazardDomain::protect`]
    /// stores relaxed behind its full barriers and is unaffected.
    RelaxedPublish,
    /// [`HazardDomain::try_protect`] re-validates with a `Relaxed` load
    /// instead of `Acquire`. Harmless here: `protect`'s full barrier
    /// follows every load that read the address it returns (an acquire
    /// fence for it), so the object's initialisation is visible anyway —
    /// the fresh-object model passes with it (`tests/loom/hazard.rs`).
    RelaxedRevalidate,
    /// [`HazardDomain::release`] stores 0 with `Relaxed`.
    RelaxedRelease,
    /// The scan reads the slots with `Relaxed` (the first read and the
    /// wait loop's).
    RelaxedScan,
}

/// The word [`HazardDomain::try_protect`] reads the address to protect
/// from: where a writer publishes objects. Implemented for the atomics
/// layer's `AtomicUsize` (`core`'s in a kernel build, the checker's under
/// loom and shuttle), so the domain's signatures name no facade type.
pub trait Source {
    /// The published address, loaded with `order`.
    fn load_addr(&self, order: Ordering) -> usize;
}

impl Source for AtomicUsize {
    #[inline]
    fn load_addr(&self, order: Ordering) -> usize {
        // The ordering is the caller's (try_protect documents each).
        self.load(order)
    }
}

/// Why [`HazardDomain::try_protect`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtectError {
    /// The source holds null: nothing to protect.
    Null,
    /// Every slot of this CPU is in use: fall back to a reference.
    SlotsFull,
}

/// Why [`HazardDomain::scan`] refused to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanError {
    /// Called from atomic context without an `on_match` that bounds the wait.
    CannotWait,
}

/// Where a scan runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanContext {
    /// Preemptible: the scan may wait for readers to leave on their own.
    Preemptible,
    /// Atomic (spinlock held, interrupts off): only a scan whose `on_match`
    /// forces readers off may wait.
    Atomic,
}

/// A slot a CPU holds an address in; give it back with
/// [`HazardDomain::release`].
#[must_use = "a protection must be released"]
#[derive(Debug, PartialEq, Eq)]
pub struct Protected {
    cpu: CpuId,
    slot: usize,
    addr: usize,
}

impl Protected {
    /// The protected address.
    pub fn addr(&self) -> usize {
        self.addr
    }
}

/// `SLOTS` hazard slots on each of `N` CPUs.
pub struct HazardDomain<const N: usize, const SLOTS: usize = 1> {
    slots: PerCpu<[AtomicUsize; SLOTS], N>,
    bug: BugSwitch<Bug>,
}

impl<const N: usize, const SLOTS: usize> Default for HazardDomain<N, SLOTS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, const SLOTS: usize> HazardDomain<N, SLOTS> {
    crate::const_fn! {
        /// Every slot empty.
        pub fn new() -> Self {
            #[cfg(not(loom))]
            let slots = PerCpu::from_padded(crate::cpu::padded_array!(N, [const { AtomicUsize::new(0) }; SLOTS]));
            #[cfg(loom)]
            let slots = PerCpu::from_padded(crate::cpu::padded_array!(N, core::array::from_fn(|_| AtomicUsize::new(0))));
            Self { slots, bug: BugSwitch::off() }
        }
    }

    /// The domain with a known bug switched on (checker builds only).
    #[cfg(lazymm_bugs)]
    pub fn with_bug(bug: Bug) -> Self {
        let mut d = Self::new();
        d.bug = BugSwitch::on(bug);
        d
    }

    pub(crate) fn bug(&self) -> &BugSwitch<Bug> {
        &self.bug
    }

    /// Publishes `addr` (non-zero) in a free slot of `cpu`, then runs a full
    /// barrier. The caller guarantees `addr` stays alive until then (it holds
    /// a reference, or re-validates: see [`try_protect`](Self::try_protect)).
    pub fn protect(&self, cpu: CpuId, addr: usize) -> Result<Protected, ProtectError> {
        if addr == 0 {
            return Err(ProtectError::Null);
        }
        let slots = self.slots.get(cpu);
        // Relaxed: only this CPU writes a free slot to non-zero; the full
        // barrier below orders the publish before what follows.
        let Some(slot) = slots.iter().position(|s| s.load(Relaxed) == 0) else {
            return Err(ProtectError::SlotsFull);
        };
        slots[slot].store(addr, Relaxed);
        // Pairs with the smp_mb() in scan(): store buffering.
        self.bug().fence_unless(Bug::NoPublishFence, smp_mb);
        Ok(Protected { cpu, slot, addr })
    }

    /// Stores `addr` in slot `slot` of `cpu`, which the caller owns and
    /// knows to be free, with **no** barrier and no search: the fence-free
    /// owner's fast path ([`protect`](Self::protect) without its
    /// `smp_mb()`). Undo it with [`unpublish`](Self::unpublish).
    ///
    /// Only for a caller whose publish already happens before every scan
    /// for `addr` by other means: it holds a reference to the object that
    /// it (or whoever inherits it through a lock or a context switch) drops
    /// later with a release RMW, and the reclaimer scans only after the
    /// last such drop (an acquire). The lazy-mm use is that case (the CPU's
    /// task holds `mm_users` while the CPU publishes; the final drop scans
    /// after `mm_users` and `mm_count` reach zero) — see
    /// [`HazardLazyNoFence`](crate::lazy::hazard::HazardLazyNoFence). A
    /// reader that re-validates a source instead needs
    /// [`protect`](Self::protect): without the barrier it is the
    /// store-buffering failure of `bug_no_publish_fence`.
    #[inline]
    pub fn publish(&self, cpu: CpuId, slot: usize, addr: usize) {
        // Release: pairs with the scan's acquire loads. A scan that reads
        // this slot holding a *newer* address than the one it looks for
        // must also see this CPU's uses under the older protection, whose
        // release clear this store overwrites: a relaxed store would not
        // carry that clear's release along (release sequences hold only
        // RMWs). What orders the publish itself before a scan is the
        // caller's reference drop (see above).
        let order = if self.bug().is(Bug::RelaxedPublish) {
            Relaxed
        } else {
            Release
        };
        self.slots.get(cpu)[slot].store(addr, order);
    }

    /// What slot `slot` of `cpu` holds, read by its owner (relaxed: only
    /// the owner writes it, so the owner reads its own last store).
    #[inline]
    pub fn owned(&self, cpu: CpuId, slot: usize) -> usize {
        self.slots.get(cpu)[slot].load(Relaxed)
    }

    /// Empties slot `slot` of `cpu` (the owner's side of
    /// [`publish`](Self::publish)): a release store of 0, paired with the
    /// scan's acquire loads.
    #[inline]
    pub fn unpublish(&self, cpu: CpuId, slot: usize) {
        let order = if self.bug().is(Bug::RelaxedClear) {
            Relaxed
        } else {
            Release
        };
        self.slots.get(cpu)[slot].store(0, order);
    }

    /// `hazptr_load_try_protect()`: reads `src`, publishes what it read,
    /// re-validates `src` after a full barrier, and retries while it changed.
    pub fn try_protect(&self, cpu: CpuId, src: &impl Source) -> Result<Protected, ProtectError> {
        // Relaxed: the re-validating load below is the one we trust.
        let mut addr = src.load_addr(Relaxed);
        loop {
            let p = self.protect(cpu, addr)?;
            if self.bug().is(Bug::NoRevalidate) {
                return Ok(p);
            }
            // Acquire: pairs with the release that published `addr` in
            // `src`, so the object's contents are visible. (protect()'s
            // full barrier after the load that read `addr` already does:
            // Bug::RelaxedRevalidate shows it.)
            // (Relaxed under RelaxedRevalidate: harmless, see the variant.)
            let again = src.load_addr(self.bug().weaken(Bug::RelaxedRevalidate, Acquire));
            if again == addr {
                return Ok(p);
            }
            self.release(p);
            addr = again;
        }
    }

    /// `hazptr_retire()` of a slot: a release store of 0, paired with the
    /// scan's acquire load (our uses happen before the scan returns).
    pub fn release(&self, p: Protected) {
        let s = &self.slots.get(p.cpu)[p.slot];
        debug_assert_eq!(
            s.load(Relaxed),
            p.addr,
            "lazymm: hazard slot changed under its owner"
        );
        s.store(0, self.bug().weaken(Bug::RelaxedRelease, Release));
    }

    /// Clears `cpu`'s slot holding `addr`, if any (for an IPI handler that
    /// forced the CPU off the object). Returns whether one was cleared.
    pub fn clear(&self, cpu: CpuId, addr: usize) -> bool {
        for s in self.slots.get(cpu) {
            if s.load(Relaxed) == addr {
                if self.bug().is(Bug::RelaxedClear) {
                    s.store(0, Relaxed);
                    return true;
                }
                // Release: pairs with the scan's acquire loads, so this CPU's
                // uses of the object happen before the scan returns.
                s.store(0, Release);
                return true;
            }
        }
        false
    }

    /// Whether `cpu` has `addr` in a slot (a relaxed peek, for assertions).
    pub fn holds(&self, cpu: CpuId, addr: usize) -> bool {
        self.slots.get(cpu).iter().any(|s| s.load(Relaxed) == addr)
    }

    /// `hazptr_scan()`. The caller has unpublished `addr` (no new reader can
    /// find it). Runs a full barrier, then reads every slot of CPUs
    /// `0..nr_cpus`; on a match calls `on_match(cpu)` (a kernel sends a
    /// targeted IPI that makes the CPU drop the address) and waits until the
    /// slot no longer holds `addr`. `serve` runs in every wait iteration (a
    /// CPU waiting for others serves its own IPIs). Returns the CPUs that
    /// matched.
    pub fn scan(
        &self,
        ctx: ScanContext,
        nr_cpus: usize,
        addr: usize,
        mut on_match: Option<&mut dyn FnMut(CpuId)>,
        mut serve: impl FnMut(),
    ) -> Result<CpuSet, ScanError> {
        if ctx == ScanContext::Atomic && on_match.is_none() {
            return Err(ScanError::CannotWait);
        }
        // Pairs with the smp_mb() in protect(): store buffering.
        self.bug().fence_unless(Bug::NoScanFence, smp_mb);
        let mut matched = CpuSet::new();
        // Acquire (each slot read below): pairs with release(), so the
        // reader's uses happen before we return.
        let order = self.bug().weaken(Bug::RelaxedScan, Acquire);
        for (cpu, slots) in self.slots.iter().take(nr_cpus) {
            for s in slots {
                // Acquire (`order`): pairs with release().
                if s.load(order) != addr {
                    continue;
                }
                matched.insert(cpu);
                if let Some(f) = on_match.as_mut() {
                    f(cpu);
                }
                if self.bug().is(Bug::ScanNoWait) {
                    continue;
                }
                // Acquire: as above.
                while s.load(order) == addr {
                    serve();
                    spin_loop();
                }
            }
        }
        Ok(matched)
    }
}
