//! Lutomirski's per-CPU tagged pointer with low-bit ownership transfer (Dec
//! 2020 mockup), and its RFC v2 placement.
//!
//! # Protocol
//!
//! Each CPU owns one word, [`Tagged::word`]:
//!
//! | value | meaning |
//! |---|---|
//! | `0` | any mm this CPU references is kept alive by a real reference |
//! | `mm` | the CPU uses `mm` lazily and holds **no** reference: `mm` must not be freed under it |
//! | `mm \| 1` | another CPU grabbed a reference on this CPU's behalf; this CPU drops it when done |
//!
//! * **enter lazy** (user → kernel thread, `exit_mm`): a release store of
//!   `mm` (no RMW; why release and not relaxed: "The mockup's open questions, answered" below).
//!   Entering while already lazy is a misuse (a debug-build panic).
//! * **leave lazy**: `xchg(word, 0)`; if bit 0 was set, drop the reference it
//!   carries. Leaving while not lazy panics.
//! * **exit fixup** (`mm_users` reached 0, before the users' `mm_count`
//!   reference is dropped): for each CPU of the mm's cpumask whose word is
//!   `mm`, grab a reference and `cmpxchg(mm → mm|1)`; on failure (the CPU
//!   left meanwhile) drop the grabbed reference. No CPU can start a new lazy
//!   use once `mm_users` is 0, so after the loop every lazy user of the mm
//!   holds a reference and the ordinary `mmdrop()` protocol takes over.
//!
//! The hot path costs one `xchg` on a CPU-local line per unlazy and nothing
//! on shared lines; the exit pays one remote cmpxchg (plus a grab) per CPU
//! still lazy on the mm — Zijlstra's "an xchg on every unlazy vs one IPI per
//! exit".
//!
//! # The mockup's open questions, answered
//!
//! **(a) "is relaxed okay here?"** No, not in C11 nor in the Linux kernel
//! memory model. The weakest correct orderings are:
//!
//! * unlazy `xchg`: **release** — so that a CPU's last use of the mm happens
//!   before a fixup that then decides *not* to transfer a reference and lets
//!   the mm be freed — and **acquire** — so that the fixup's grab happens
//!   before this CPU drops the transferred reference (message passing on
//!   `mm_count`): `AcqRel`.
//! * fixup `cmpxchg`: **release on success** (the grab before the transfer,
//!   the other half of that message passing) and **acquire on failure**
//!   (pairs with the unlazy's release). The check before it, when present,
//!   is an **acquire** load for the same reason.
//! * the enter-lazy store: **release**. It is tempting to call it relaxed
//!   (it happens before the CPU's user task drops `mm_users`, a release RMW,
//!   which happens before the fixup), but a fixup can read this CPU's *next*
//!   lazy word instead of the unlazy's 0, and only a release store orders the
//!   CPU's last use of the old mm before that fixup (`bug_enter_store_relaxed`
//!   fails in loom; the subtlety is spelled out below).
//!
//! Evidence: `tests/loom/tagged.rs` passes with these orderings; the
//! variants one step weaker — `bug_unlazy_xchg_no_release`,
//! `bug_cmpxchg_failure_relaxed`, `bug_check_relaxed` — fail with
//! "use-after-free" (the fixup skips a CPU, the mm is freed, and the CPU's
//! last use is not ordered before the free). The two message-passing halves
//! (`bug_cmpxchg_success_relaxed`, an `xchg` without acquire) are required by
//! C11 but **loom cannot show them failing**: loom executes the RMWs on one
//! location (`mm_count`) in the order it schedules them, so the remote drop
//! never precedes the grab it pairs with; `loom_blind_cmpxchg_success_relaxed`
//! pins that checker limit. Under LKMM the mockup's `atomic_inc` +
//! `cmpxchg_relaxed` is the same unordered message passing, so Lutomirski's
//! suspicion ("I'm short an smp_mb() on arches for which _relaxed atomics are
//! genuinely relaxed") is right: use `cmpxchg_release` or
//! `smp_mb__before_atomic()`. On x86 every locked RMW is a full barrier.
//!
//! herd7 under LKMM agrees for the unlazy's release
//! (`lkmm/tagged-unlazy-release+bug-unlazy-xchg-no-release.litmus`:
//! Sometimes) and the successful cmpxchg's release
//! (`tagged-cmpxchg-success-release+bug-cmpxchg-success-relaxed`:
//! Sometimes, where loom is blind). Some answers depend on the primitive
//! or the model: the check's acquire and the failed cmpxchg's acquire are
//! needed with this crate's release-only `mmdrop` (LKMM kills their twins
//! too) but not with Linux's fully ordered `atomic_dec_and_test()`
//! (`tagged-check-relaxed-kernel-drop`: Never); a relaxed enter-lazy store
//! is wrong under C++20's (Rust's) release sequences only — LKMM orders a
//! CPU's release write before its later store to the same word
//! (`tagged-enter-store+bug-enter-store-relaxed`: Never); and LKMM does
//! not need the unlazy's acquire half (it honours the control dependency
//! to the drop). A Rust kernel uses Rust's atomics: keep every ordering
//! above.
//!
//! **(b) "is this check actually useful?"** For correctness, no: without the
//! read the failing cmpxchg does the same job (`tests/loom/tagged.rs`,
//! `no_check_*`), provided the cmpxchg's failure ordering is acquire. If the
//! check is kept it must be an acquire load. For cost it avoids a locked RMW
//! on a remote line for each CPU of the cpumask that is no longer lazy on
//! the mm; `benches/lazy.rs` (`exit_fixup`) measures both.
//!
//! **(c) "replaced with non-atomic code if mm_users > 0"** Exactly when the
//! CPU unlazies *back into the same mm*: the incoming task holds `mm_users`,
//! has held it since before the word was set, and can only drop it after
//! this point on this CPU, so no fixup can run before the store; a plain
//! store of 0 is enough. Reading `mm_users > 0` and then storing is not
//! enough when the CPU switches to another mm: the last `mmput` and the
//! whole fixup fit between the read and the store, whose 0 then erases the
//! `mm|1` tag and leaks the transferred reference — the variant
//! `bug_unlazy_store_if_users`, which loom rejects with "leak".
//!
//! **(d) "adding a bunch to mm_count at the beginning and subtracting the
//! unused refs back off at the end"** [`Options::batch_grab`]: one
//! `mmgrab_many(popcount(cpumask))` before the loop and one `mmdrop_many`
//! of the unused ones after it, instead of a grab and maybe a drop per CPU.
//! It is safe because the fixup runs while the users' reference still holds
//! `mm_count` above zero, so the final subtraction never frees. Verified by
//! the same loom scenarios (`batch_*`), measured at 64..1024 CPUs.
//!
//! **(e) "whether the calling CPU is special"** It is not. The fixup usually
//! runs on the CPU of the last exiting task, which `exit_mm()` just made a
//! lazy user of the mm, so its own word is `mm`: the loop tags its own word
//! like any other (a local cmpxchg), and the CPU drops that reference at its
//! next unlazy. Every exit scenario in the loom suite runs this path.
//!
//! **A subtlety loom found: the enter-lazy store must be a release.** A
//! fixup of mm A may read a CPU's word long after that CPU left A — and see
//! the CPU's *next* lazy mm B, stored after its unlazy `xchg`. Since C++20 a
//! later plain store by the same thread does not continue the `xchg`'s
//! release sequence, so with a relaxed store the fixup skips the CPU
//! without being ordered after its last use of A, and frees A under it
//! (`bug_enter_store_relaxed`). A release store closes it (free on x86: a
//! plain `mov`). In the kernel the `xchg` is fully ordered, which also
//! orders the later store, so the mockup is safe under LKMM on this point.
//!
//! # RFC v2 placement: rejected, with a counterexample
//!
//! Lutomirski's RFC v2 moved the state into the runqueue as two words: a
//! hazard pointer `lazy_mm` (plain stores) and `mm_to_mmdrop` (the fixup
//! reads `lazy_mm == mm`, grabs, and `xchg`es the mm in; "if old is non-NULL,
//! drop it on the remote CPU's behalf"; the CPU drops whatever it finds there
//! at every `finish_task_switch`). It would make the unlazy a store plus a
//! load instead of an `xchg` — but it is **not correct**, so the first
//! placement subsumes it. The check and the transfer are two steps on two
//! words: a fixup of A reads `lazy_mm == A`, is delayed, and meanwhile the
//! CPU leaves A, goes lazy on B, and B's own fixup deposits the reference
//! that now protects the CPU's lazy use of B. The delayed fixup then
//! deposits A, displaces B's reference and drops it "on the remote CPU's
//! behalf": B is freed while the CPU still has it loaded. loom finds exactly
//! this (`tests/loom/tagged.rs`, `bug_rfc_v2_deposit_race`: "use-after-free
//! of mm1: freed on cpu0 while cpu0 still has it loaded"). The first
//! placement's single `cmpxchg(mm → mm|1)` makes "still lazy on this mm" and
//! "take the reference" one atomic step, which is what v2 lost. The v2 code
//! is kept, faithful to the RFC, as `TaggedV2` in checker builds only.
//!
//! # Known-bad variants
//!
//! See [`Bug`]; each has a loom test in `tests/loom/tagged.rs`.
//!
//! Source: Andy Lutomirski's lazy-mm mockup (LKML, December 2020) and its
//! replies.

use crate::bugs::BugSwitch;
use crate::cpu::{CpuId, CpuMask, PerCpu};
use crate::lazy::{Kernel, LazyMm, MmHandle};
use crate::sync::{AtomicUsize, Ordering, Ordering::*};

/// The known-bad variants of [`Tagged`] and `TaggedV2`.
#[cfg_attr(not(lazymm_bugs), doc(hidden))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// The enter-lazy store is relaxed (use-after-free: a fixup that reads a
    /// later lazy entry's word is not ordered after the CPU's earlier uses).
    EnterStoreRelaxed,
    /// A failed cmpxchg keeps the grabbed reference (leak).
    NoDropOnFailedCmpxchg,
    /// A successful cmpxchg also drops the grabbed reference (use-after-free).
    DropOnSuccessfulCmpxchg,
    /// Unlazy by load + plain store whenever `mm_users > 0`, not only into
    /// the same mm (leak: the store erases a fixup's tag).
    UnlazyStoreIfUsers,
    /// The unlazy `xchg` is acquire only (use-after-free).
    UnlazyXchgNoRelease,
    /// The fixup's cmpxchg fails with relaxed ordering (use-after-free).
    CmpxchgFailureRelaxed,
    /// The fixup's check is a relaxed load (use-after-free).
    CheckRelaxed,
    /// The fixup's cmpxchg succeeds with relaxed ordering: wrong in C11 and
    /// LKMM, invisible to loom (see the module docs).
    CmpxchgSuccessRelaxed,
}

/// Choices the mockup left open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Read the word before the cmpxchg and skip CPUs that are not lazy on
    /// the mm ("is this check actually useful?").
    pub check_before_cmpxchg: bool,
    /// Grab a batch of references up front and give the unused ones back.
    pub batch_grab: bool,
}

impl Options {
    /// The mockup as posted: check, one grab per CPU.
    pub const MOCKUP: Options = Options {
        check_before_cmpxchg: true,
        batch_grab: false,
    };
}

/// Lutomirski's tagged per-CPU word, for `N` CPUs.
pub struct Tagged<const N: usize> {
    words: PerCpu<AtomicUsize, N>,
    opts: Options,
    bug: BugSwitch<Bug>,
}

impl<const N: usize> Default for Tagged<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[track_caller]
fn not_lazy(cpu: CpuId) -> ! {
    panic!("lazymm: mmdrop_lazy_tlb on {cpu}, which is not lazy (left twice, or never entered)")
}

impl<const N: usize> Tagged<N> {
    crate::const_fn! {
        /// The mockup's algorithm ([`Options::MOCKUP`]), every CPU not lazy.
        pub fn new() -> Self {
            Self::with_options(Options::MOCKUP)
        }
    }

    crate::const_fn! {
        /// The algorithm with `opts`.
        pub fn with_options(opts: Options) -> Self {
            Self {
                words: PerCpu::from_padded(crate::cpu::padded_array!(N, AtomicUsize::new(0))),
                opts,
                bug: BugSwitch::off(),
            }
        }
    }

    /// The algorithm with a known bug switched on (checker builds only).
    #[cfg(lazymm_bugs)]
    pub fn with_bug(opts: Options, bug: Bug) -> Self {
        let mut s = Self::with_options(opts);
        s.bug = BugSwitch::on(bug);
        s
    }

    /// `cpu`'s word, for the crate's benchmarks and tests (which arm it
    /// directly): not part of the kernel-facing API, whose signatures name
    /// no atomics of the checker facade.
    #[doc(hidden)]
    pub fn word(&self, cpu: CpuId) -> &AtomicUsize {
        self.words.get(cpu)
    }

    /// The orderings of the unlazy and the fixup, one step weaker where a
    /// `bug_` switch says so.
    fn orderings(&self) -> Orderings {
        let xchg = if self.bug.is(Bug::UnlazyXchgNoRelease) {
            Acquire
        } else {
            AcqRel
        };
        let success = if self.bug.is(Bug::CmpxchgSuccessRelaxed) {
            Relaxed
        } else {
            Release
        };
        let failure = if self.bug.is(Bug::CmpxchgFailureRelaxed) {
            Relaxed
        } else {
            Acquire
        };
        let check = if self.bug.is(Bug::CheckRelaxed) {
            Relaxed
        } else {
            Acquire
        };
        Orderings {
            unlazy_xchg: xchg,
            fixup_success: success,
            fixup_failure: failure,
            fixup_check: check,
        }
    }
}

/// The orderings [`Tagged`] uses (module docs, question (a)).
#[derive(Clone, Copy)]
struct Orderings {
    /// The unlazy `xchg` (AcqRel).
    unlazy_xchg: Ordering,
    /// The fixup `cmpxchg` on success (Release).
    fixup_success: Ordering,
    /// The fixup `cmpxchg` on failure (Acquire).
    fixup_failure: Ordering,
    /// The fixup's check before the `cmpxchg` (Acquire).
    fixup_check: Ordering,
}

impl<const N: usize> LazyMm for Tagged<N> {
    const NAME: &'static str = "tagged";
    const CPUS: usize = N;

    #[inline]
    fn mmgrab_lazy_tlb<K: Kernel>(&self, _k: &K, cpu: CpuId, mm: K::Mm) {
        crate::lazy::check_sizes::<K, N>();
        let w = self.words.get(cpu);
        debug_assert_eq!(
            w.load(Relaxed),
            0,
            "lazymm: mmgrab_lazy_tlb on {cpu}, which is already lazy"
        );
        // Release: a fixup of an mm this CPU left earlier may read this word
        // (instead of the 0 of our release xchg); the release store makes
        // our uses of that earlier mm happen before the fixup all the same.
        // (Visibility of `mm` itself to its own fixup needs nothing: our user
        // task drops mm_users only after this store, with a release RMW.)
        let order = if self.bug.is(Bug::EnterStoreRelaxed) {
            Relaxed
        } else {
            Release
        };
        w.store(mm.to_word(), order);
    }

    #[inline]
    fn mmdrop_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm, next: Option<K::Mm>) {
        let w = self.words.get(cpu);
        let word = mm.to_word();
        let same_mm = next == Some(mm);
        let prev = if same_mm || (self.bug.is(Bug::UnlazyStoreIfUsers) && k.mm_users(mm) > 0) {
            // (c): the incoming task holds mm_users, so no fixup can run
            // before this store: plain load and store suffice.
            let prev = w.load(Relaxed);
            w.store(0, Relaxed);
            prev
        } else {
            // AcqRel (see the module docs): release pairs with the fixup's
            // acquire check / failed cmpxchg, acquire with its release
            // successful cmpxchg.
            w.swap(0, self.orderings().unlazy_xchg)
        };
        if prev == word | 1 {
            k.mmdrop(cpu, mm);
        } else if prev != word {
            not_lazy(cpu);
        }
    }

    fn mm_users_zero<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        debug_assert_eq!(
            k.mm_users(mm),
            0,
            "lazymm: fixup of an mm that still has users"
        );
        let Orderings {
            fixup_success: success,
            fixup_failure: failure,
            fixup_check: check,
            ..
        } = self.orderings();
        let word = mm.to_word();
        let cpus = k.mm_cpumask(mm);
        let batch = self.opts.batch_grab;
        let spare = if batch { cpus.len() } else { 0 };
        k.mmgrab_many(cpu, mm, spare);
        let mut used = 0;
        for c in cpus.iter() {
            let w = self.words.get(c);
            // Acquire: pairs with the unlazy's release xchg, so a CPU we skip
            // made its last use of `mm` before we go on to drop.
            if self.opts.check_before_cmpxchg && w.load(check) != word {
                continue;
            }
            if !batch {
                k.mmgrab(cpu, mm);
            }
            k.note_shared_rmw(cpu, 1);
            match w.compare_exchange(word, word | 1, success, failure) {
                Ok(_) => {
                    // The remote CPU now owns the reference we grabbed.
                    used += 1;
                    if self.bug.is(Bug::DropOnSuccessfulCmpxchg) {
                        k.mmdrop(cpu, mm);
                    }
                }
                Err(_) => {
                    // It left meanwhile: the reference is ours to drop.
                    if !batch && !self.bug.is(Bug::NoDropOnFailedCmpxchg) {
                        k.mmdrop(cpu, mm);
                    }
                }
            }
        }
        if batch {
            k.mmdrop_many(cpu, mm, spare - used);
        }
    }
}

/// The RFC v2 placement, as posted: a per-CPU hazard pointer `lazy_mm` plus
/// an `mm_to_mmdrop` word that the fixup fills and the CPU empties at every
/// context switch. **Known bad** (see the module docs): compiled only into
/// checker and `bug-variants` builds, as the `bug_rfc_v2_deposit_race`
/// variant.
#[cfg(lazymm_bugs)]
pub struct TaggedV2<const N: usize> {
    lazy_mm: PerCpu<AtomicUsize, N>,
    to_drop: PerCpu<AtomicUsize, N>,
}

#[cfg(lazymm_bugs)]
impl<const N: usize> Default for TaggedV2<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(lazymm_bugs)]
impl<const N: usize> TaggedV2<N> {
    crate::const_fn! {
        /// Every CPU not lazy, nothing to drop.
        pub fn new() -> Self {
            Self {
                lazy_mm: PerCpu::from_padded(crate::cpu::padded_array!(N, AtomicUsize::new(0))),
                to_drop: PerCpu::from_padded(crate::cpu::padded_array!(N, AtomicUsize::new(0))),
            }
        }
    }

    /// `drop_extra_mm_refs()`: drop a reference a fixup left for `cpu`.
    #[inline]
    fn drop_extra<K: Kernel>(&self, k: &K, cpu: CpuId) {
        let slot = self.to_drop.get(cpu);
        // Relaxed peek: a deposit we miss is dropped at the next switch.
        if slot.load(Relaxed) != 0 {
            // Acquire: pairs with the fixup's release xchg (its grab happens
            // before our drop).
            let old = slot.swap(0, Acquire);
            if old != 0 {
                k.mmdrop(cpu, K::Mm::from_word(old));
            }
        }
    }
}

#[cfg(lazymm_bugs)]
impl<const N: usize> LazyMm for TaggedV2<N> {
    const NAME: &'static str = "tagged-v2";
    const CPUS: usize = N;

    #[inline]
    fn mmgrab_lazy_tlb<K: Kernel>(&self, _k: &K, cpu: CpuId, mm: K::Mm) {
        crate::lazy::check_sizes::<K, N>();
        let w = self.lazy_mm.get(cpu);
        debug_assert_eq!(
            w.load(Relaxed),
            0,
            "lazymm: mmgrab_lazy_tlb on {cpu}, which is already lazy"
        );
        // Release, as for Tagged::mmgrab_lazy_tlb.
        w.store(mm.to_word(), Release);
    }

    #[inline]
    fn mmdrop_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm, _next: Option<K::Mm>) {
        let w = self.lazy_mm.get(cpu);
        if w.load(Relaxed) != mm.to_word() {
            not_lazy(cpu);
        }
        // Release: pairs with the fixup's acquire load; our last use of the
        // mm happens before a fixup that sees 0 and lets it be freed.
        w.store(0, Release);
        self.drop_extra(k, cpu);
    }

    #[inline]
    fn switched_mm<K: Kernel>(
        &self,
        k: &K,
        cpu: CpuId,
        _prev: Option<K::Mm>,
        _next: Option<K::Mm>,
    ) {
        // finish_task_switch() drops extra references at every switch.
        self.drop_extra(k, cpu);
    }

    fn cpu_dead<K: Kernel>(&self, k: &K, cpu: CpuId) {
        self.drop_extra(k, cpu);
    }

    fn mm_users_zero<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        let word = mm.to_word();
        for c in k.mm_cpumask(mm).iter() {
            // Acquire: pairs with mmdrop_lazy_tlb's release store.
            if self.lazy_mm.get(c).load(Acquire) != word {
                continue;
            }
            k.mmgrab(cpu, mm);
            k.note_shared_rmw(cpu, 1);
            // Release: our grab happens before the CPU's drop of it;
            // acquire: a deposit we displace is ours to drop.
            let old = self.to_drop.get(c).swap(word, AcqRel);
            if old != 0 {
                k.mmdrop(cpu, K::Mm::from_word(old));
            }
        }
    }
}
