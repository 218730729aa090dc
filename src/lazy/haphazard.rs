//! Desnoyers' hazard-pointer lazy mm on the `haphazard` crate (feature
//! `haphazard`, std): the scheme of [`crate::lazy::hazard`] with a
//! well-kept hazard-pointer library's domain as the per-CPU slots.
//!
//! # Protocol
//!
//! * **Enter lazy** (`mmgrab_lazy_tlb`): the CPU's own
//!   [`haphazard::HazardPointer`] protects the mm's address
//!   (`protect_raw`: existence is guaranteed by the user task that still
//!   holds `mm_users`, so there is no source to re-validate).
//! * **Leave lazy** (`mmdrop_lazy_tlb`, or the shoot-lazy IPI's
//!   `lazy_shot`): `reset_protection`.
//! * **Final drop**: *retire* the mm into the scheme's own
//!   [`haphazard::Domain`] and reclaim eagerly; haphazard runs the retired
//!   object's deleter once no hazard pointer protects it, and the deleter
//!   tells the waiting CPU. The wait is bounded as in
//!   [`crate::lazy::hazard`]: every [`HaphazardLazy::POLLS`] reclaim rounds
//!   the final drop sends the shoot-lazy IPI to the CPUs whose hazard
//!   pointer holds the mm (they switch to the kernel's own mm and reset
//!   their protection) and reclaims until its mm is gone. haphazard has no
//!   "who protects this address" query, so each slot mirrors its hazard
//!   pointer's address in a plain word (`protects`) that only targets the
//!   IPI; whether the mm may be freed is decided by haphazard alone.
//!
//! The retired "object" is the mm's handle word used as the address of a
//! zero-sized tag: nothing is allocated per mm and haphazard never
//! dereferences it. Because any thread's reclaim may run any retired
//! object's deleter, the deleter records the word in a per-thread list that
//! only this scheme's reclaim calls collect; the collector hands each word
//! to the CPU whose final drop waits for it (`waiting`/`reclaimed`, one
//! pair per CPU: a CPU runs one final drop at a time).
//!
//! **Context.** Each CPU's hazard pointer is used under a flag: the hooks
//! of one CPU must not nest (a shoot-lazy IPI handler that calls
//! `lazy_shot` while the CPU is inside another hook of this scheme panics
//! with a message saying so). The simulated machine serves IPIs only
//! between hooks; a kernel would run the final drop with interrupts off or
//! take the crate's own `hazard`.
//!
//! # What haphazard's loom support covers
//!
//! haphazard 0.1.8 builds its atomics from loom's under `--cfg loom` (std
//! only), so `RUSTFLAGS="--cfg loom" cargo test --features haphazard` runs
//! this scheme *and the library's internals* (record acquisition, the
//! retired lists, the reclaim's hazard scan) through the shared machine
//! scenarios (`tests/loom/haphazard.rs`). Under loom its domain's
//! time-based reclaim is off (loom has no time) and its barriers are
//! `fence(SeqCst)`. Under shuttle haphazard keeps `std` atomics, which
//! shuttle does not schedule, so the scheme is not run under shuttle; the
//! std build runs it on real threads against the oracle
//! (`tests/backends.rs`).
//!
//! # Why a kernel still takes [`crate::lazy::hazard`]
//!
//! haphazard allocates (a record per hazard pointer, a box per retire), uses
//! a thread-local here, and needs `std` under loom; the domain's constructor
//! is not `const` under loom and `HazardPointer::new_in_domain` never is, so
//! the scheme cannot be a plain `static`. The crate's own `HazardDomain` is
//! allocation-free, `no_std` and `const`.
//!
//! Variants ([`Bug`]): `bug_no_wait` (the final drop retires and returns),
//! `bug_trust_reclaim_count` (a final drop that takes "the reclaim freed
//! something" for "my mm was reclaimed" — wrong when final drops cross),
//! `bug_relaxed_hand_off` (the collector's hand-off to the waiting CPU
//! without release; passes the models: a pin, see the variant).

use super::owned::CpuOwned;
use crate::bugs::BugSwitch;
use crate::cpu::{CpuId, CpuMask};
use crate::lazy::{Kernel, LazyMm, MmHandle};
use crate::sync::{spin_loop, AtomicBool, AtomicUsize, Ordering::*};
use core::cell::RefCell;
use core::ops::Deref;
use crossbeam_utils::CachePadded;
use haphazard::{Domain, HazardPointer};
use std::boxed::Box;
use std::vec::Vec;

/// Known-bad variants of the scheme.
#[cfg_attr(not(lazymm_bugs), doc(hidden))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// The final drop retires the mm and returns at once.
    NoWait,
    /// The final drop returns once a reclaim round freed *something*.
    TrustReclaimCount,
    /// The hand-off of a reclaimed mm to the CPU waiting for it stores
    /// `reclaimed` with `Relaxed` instead of `Release`. Passes every model,
    /// the three-CPU one whose third CPU only reclaims included
    /// (`tests/loom/haphazard.rs`, `third_cpu_reclaims`, where that CPU's
    /// reclaim does run the waiter's deleter): a pin. The likely reason is
    /// the wait loop's shape — a waiter that wakes always runs a reclaim of
    /// its own (an acquire of the domain's lists and hazard pointers)
    /// before it reads `reclaimed` again — so the release here is belt and
    /// braces, kept because the hand-off is the one edge that must order
    /// the free when the loop changes.
    RelaxedHandOff,
}

/// The domain family of this scheme's domains.
#[derive(Debug)]
pub struct Family;

/// The zero-sized stand-in haphazard sees at an mm's handle word.
#[derive(Debug)]
pub struct MmTag;

/// The "pointer" retired for an mm: its deleter records the word.
struct Retired(*mut MmTag);

impl Deref for Retired {
    type Target = MmTag;
    fn deref(&self) -> &MmTag {
        // SAFETY: `MmTag` is zero-sized and the word is non-zero (an
        // `MmHandle`), so the address is valid for a reference to it.
        unsafe { &*self.0 }
    }
}

// SAFETY: `into_raw`/`from_raw` pass the same non-null address through;
// the referent is zero-sized, valid at any non-null address for as long as
// the retire lasts.
unsafe impl haphazard::raw::Pointer<MmTag> for Retired {
    fn into_raw(self) -> *mut MmTag {
        self.0
    }
    unsafe fn from_raw(ptr: *mut MmTag) -> Self {
        Retired(ptr)
    }
}

crate::sync::thread::thread_local! {
    /// While one of this scheme's reclaim calls runs on this thread: the
    /// words whose deleters ran (any domain's deleter may run in any
    /// thread's reclaim; outside our calls nobody listens). Not `const {}`:
    /// loom's `thread_local!` does not take it.
    #[allow(clippy::missing_const_for_thread_local)]
    static RECLAIMED: RefCell<Option<Vec<usize>>> = RefCell::new(None);
}

impl Drop for Retired {
    fn drop(&mut self) {
        let _ = RECLAIMED.try_with(|r| {
            if let Some(v) = r.borrow_mut().as_mut() {
                v.push(self.0 as usize);
            }
        });
    }
}

/// One CPU's hazard pointer (used by that CPU's hooks only) and the words
/// a final drop shares with the reclaimers.
struct Slot {
    hp: CpuOwned<HazardPointer<'static, Family>>,
    protects: AtomicUsize,
    waiting: AtomicUsize,
    reclaimed: AtomicBool,
}

/// Desnoyers' hazard-pointer lazy mm on haphazard, on `N` CPUs.
pub struct HaphazardLazy<const N: usize> {
    // Dropped before `domain`: each hazard pointer releases its record.
    // One cache line each: CPUs touch only their own slot on the hot path.
    slots: Box<[CachePadded<Slot>]>,
    domain: Box<Domain<Family>>,
    bug: BugSwitch<Bug>,
}

// SAFETY: the only non-`Sync` parts are the hazard pointers, each used
// through its `CpuOwned` (one user at a time, acquire/release handover);
// haphazard's domain is `Sync`.
unsafe impl<const N: usize> Sync for HaphazardLazy<N> {}
// SAFETY: as above; the hazard pointers borrow the domain the scheme owns.
unsafe impl<const N: usize> Send for HaphazardLazy<N> {}

impl<const N: usize> Default for HaphazardLazy<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> HaphazardLazy<N> {
    /// Reclaim rounds the final drop tries before it IPIs.
    pub const POLLS: usize = 2;

    /// The scheme: a fresh domain and one hazard pointer per CPU.
    pub fn new() -> Self {
        Self::build(BugSwitch::off())
    }

    /// The scheme with a bug switched on (checker builds only).
    #[cfg(lazymm_bugs)]
    pub fn with_bug(bug: Bug) -> Self {
        Self::build(BugSwitch::on(bug))
    }

    fn build(bug: BugSwitch<Bug>) -> Self {
        let domain = Box::new(Domain::new(&Family));
        // SAFETY: the domain lives in a box the scheme owns and never moves
        // or replaces; `slots` is declared first, so every hazard pointer is
        // dropped before the domain it borrows.
        let d: &'static Domain<Family> = unsafe { &*(&*domain as *const Domain<Family>) };
        let slots = (0..N)
            .map(|_| {
                CachePadded::new(Slot {
                    hp: CpuOwned::new(HazardPointer::new_in_domain(d)),
                    protects: AtomicUsize::new(0),
                    waiting: AtomicUsize::new(0),
                    reclaimed: AtomicBool::new(false),
                })
            })
            .collect();
        Self { slots, domain, bug }
    }

    /// Runs `f` on `cpu`'s hazard pointer.
    fn with_hp<R>(
        &self,
        cpu: CpuId,
        f: impl FnOnce(&mut HazardPointer<'static, Family>) -> R,
    ) -> R {
        self.slots[cpu.index()]
            .hp
            .with(cpu, "haphazard hazard pointer", f)
    }

    /// Mirrors `cpu`'s hazard pointer in its `protects` word. Relaxed: the
    /// word only says whom a final drop's IPI targets; it is re-read every
    /// `POLLS` rounds, and reclamation itself is haphazard's decision.
    fn mirror(&self, cpu: CpuId, word: usize) {
        self.slots[cpu.index()].protects.store(word, Relaxed);
    }

    /// Runs a retire or reclaim call while listening for deleters, then
    /// hands every word they recorded to the CPU waiting for it. Returns
    /// how many objects the call reported reclaimed.
    fn reclaiming(&self, call: impl FnOnce(&Domain<Family>) -> usize) -> usize {
        RECLAIMED.with(|r| *r.borrow_mut() = Some(Vec::new()));
        let n = call(&self.domain);
        let words = RECLAIMED
            .with(|r| r.borrow_mut().take())
            .unwrap_or_default();
        for w in words {
            // Relaxed: the waiter stored `w` before it retired `w`, and the
            // deleter ran after haphazard's reclaim took the retired object
            // from its list (a release push, an acquire steal).
            if let Some(s) = self.slots.iter().find(|s| s.waiting.load(Relaxed) == w) {
                s.waiting.store(0, Relaxed);
                // Release: the deleter ran after the reclaim saw no hazard
                // pointer on `w`; pairs with the waiter's acquire load, after
                // which it frees.
                s.reclaimed
                    .store(true, self.bug.weaken(Bug::RelaxedHandOff, Release));
            }
        }
        n
    }
}

impl<const N: usize> LazyMm for HaphazardLazy<N> {
    const NAME: &'static str = "haphazard";
    const CPUS: usize = N;

    fn mmgrab_lazy_tlb<K: Kernel>(&self, _k: &K, cpu: CpuId, mm: K::Mm) {
        crate::lazy::check_sizes::<K, N>();
        // haphazard's protect stores the address (release); the user task's
        // `mm_users` drop (a release RMW) comes after it, so the final drop
        // that follows sees the protection (as in `crate::lazy::hazard`).
        self.with_hp(cpu, |hp| hp.protect_raw(mm.to_word() as *mut MmTag));
        self.mirror(cpu, mm.to_word());
    }

    fn mmdrop_lazy_tlb<K: Kernel>(&self, _k: &K, cpu: CpuId, _mm: K::Mm, _next: Option<K::Mm>) {
        self.with_hp(cpu, |hp| hp.reset_protection());
        self.mirror(cpu, 0);
    }

    fn lazy_shot<K: Kernel>(&self, _k: &K, cpu: CpuId, _mm: K::Mm) {
        self.with_hp(cpu, |hp| hp.reset_protection());
        self.mirror(cpu, 0);
    }

    fn final_drop<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        crate::lazy::check_sizes::<K, N>();
        let slot = &self.slots[cpu.index()];
        let w = mm.to_word();
        // Relaxed: published to the reclaimer by the retire below.
        slot.waiting.store(w, Relaxed);
        // SAFETY: the word is retired once (this is the mm's only final
        // drop), no hazard pointer protects it from now on except the lazy
        // CPUs' (which is the point), and `MmTag` is zero-sized.
        self.reclaiming(|d| unsafe { d.retire_ptr::<MmTag, Retired>(w as *mut MmTag) });
        if self.bug.is(Bug::NoWait) {
            slot.waiting.store(0, Relaxed);
            return;
        }
        let mut rounds = 0;
        // Acquire: pairs with the collector's release store.
        while !slot.reclaimed.load(Acquire) {
            rounds += 1;
            if rounds % Self::POLLS == 0 {
                // Bounded wait: switch the CPUs still lazy on `mm` away.
                let mut holders = K::CpuMask::default();
                for (i, s) in self.slots.iter().enumerate() {
                    // Relaxed: only targets the IPI (see `mirror`); a stale
                    // read costs another round, not safety.
                    if s.protects.load(Relaxed) == w {
                        holders.insert(CpuId::new(i));
                    }
                }
                if !holders.is_empty() {
                    k.shoot_lazies(cpu, &holders, mm);
                }
            }
            k.serve_ipis(cpu);
            if self.reclaiming(|d| d.eager_reclaim()) > 0 && self.bug.is(Bug::TrustReclaimCount) {
                slot.waiting.store(0, Relaxed);
                return;
            }
            spin_loop();
        }
        slot.reclaimed.store(false, Relaxed);
    }
}

impl<const N: usize> core::fmt::Debug for HaphazardLazy<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HaphazardLazy").field("cpus", &N).finish()
    }
}
