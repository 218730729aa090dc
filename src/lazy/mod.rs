//! Lazy-mm schemes: the hooks a scheduler calls ([`LazyMm`]), what a scheme
//! needs from its kernel ([`Kernel`]), and the schemes themselves, one module
//! each.
//!
//! A *lazy-mm scheme* decides how an address space stays alive while CPUs use
//! it lazily. The scheduler (a kernel's, or the simulated machine in
//! `lazymm::check::model`, feature `model`) calls the scheme at the points where Linux's
//! `context_switch()` calls `mmgrab_lazy_tlb()` / `mmdrop_lazy_tlb()`:
//!
//! | transition (Linux `context_switch()`) | hook |
//! |---|---|
//! | user → kernel thread: the CPU keeps `prev->active_mm` loaded | [`LazyMm::mmgrab_lazy_tlb`] |
//! | `exit_mm()`: the exiting task becomes a lazy user of its own mm | [`LazyMm::mmgrab_lazy_tlb`] |
//! | kernel → kernel: the lazy use passes to the next kernel thread | [`LazyMm::transfer_lazy`] |
//! | the CPU's page-table base is about to change mm (`switch_mm_irqs_off()`) | [`LazyMm::switching_mm`] |
//! | the CPU's page-table base changed mm (after the load) | [`LazyMm::switched_mm`] |
//! | kernel → user, in `finish_task_switch()` once the CPU loaded `next->mm` | [`LazyMm::mmdrop_lazy_tlb`] |
//! | CPU forced to the kernel's own mm (`sched_force_init_mm()`, CPU down) | [`LazyMm::mmdrop_lazy_tlb`] |
//! | `__mmput()`: `mm_users` reached 0 | [`LazyMm::mm_users_zero`] |
//! | `__mmdrop()`: `mm_count` reached 0, before the free | [`LazyMm::final_drop`] |
//! | a final drop's IPI forced this CPU off the mm | [`LazyMm::lazy_shot`] |
//! | the CPU is dead (hotplug teardown, on another CPU) | [`LazyMm::cpu_dead`] |
//!
//! The hooks are named after what Linux calls at the same place:
//! `mmgrab_lazy_tlb()` and `mmdrop_lazy_tlb()` (which under
//! `MMU_LAZY_TLB_SHOOTDOWN` take no reference either, as here). The page-table
//! load itself — Linux's `switch_mm_irqs_off()` — is the kernel's; the
//! scheme is told just before ([`LazyMm::switching_mm`]) and just after
//! ([`LazyMm::switched_mm`]). (The TLB side's `enter_lazy_tlb()` is
//! [`LazyTlb::enter_lazy_tlb`](crate::tlb::tlbgen::LazyTlb::enter_lazy_tlb).)
//!
//! The scheduler never calls a hook for the kernel's own mm (`init_mm`): it is
//! never freed, so no scheme tracks it.
//!
//! Everything a scheme needs from the kernel is in [`Kernel`]: the mm
//! reference counts, the mm's cpumask and a "shoot lazies" IPI. There is no
//! global state; the calling CPU is always passed in.
//!
//! # Contexts: interrupts, waiting, freeing
//!
//! Every hook runs on the CPU it is given, with preemption disabled. What
//! else holds, hook by hook (Linux's placement in brackets):
//!
//! | hook | interrupts | may call `mmdrop` (and so reach the final drop) | may wait for IPIs |
//! |---|---|---|---|
//! | [`mmgrab_lazy_tlb`](LazyMm::mmgrab_lazy_tlb) (`context_switch()`; `exit_mm()`) | off in a switch, on in `exit_mm()` | no (refcount grabs) | no |
//! | [`transfer_lazy`](LazyMm::transfer_lazy) (`context_switch()`) | off | no | no |
//! | [`switching_mm`](LazyMm::switching_mm) (`switch_mm_irqs_off()`) | off | no | no |
//! | [`switched_mm`](LazyMm::switched_mm) (after the page-table load) | off | **yes**: `cached` drops the reference it cached for `prev` | only through the final drop |
//! | [`mmdrop_lazy_tlb`](LazyMm::mmdrop_lazy_tlb) (`finish_task_switch()`, after the runqueue lock is released) | on in Linux; may be off in a kernel that calls it earlier | **yes**: `refcount`, `tagged`, `cached` drop a reference | only through the final drop |
//! | [`lazy_shot`](LazyMm::lazy_shot) (the shoot-lazy IPI handler) | off | no | no |
//! | [`switching_mm`](LazyMm::switching_mm) / [`switched_mm`](LazyMm::switched_mm) inside the shoot-lazy IPI handler ([`switch::do_shoot_lazy_tlb`]: the lazy CPU loads the kernel's mm, `prev` = the shot mm) | off, in an interrupt | a drop here may only be of the shot mm, whose final drop is the IPI's sender and holds it: never the last; no scheme of the crate drops here (the schemes that IPI hold no reference) | **must not**: a final drop reached here would wait for IPIs inside an IPI handler (the nesting a kernel cannot serve); a scheme whose `switched_mm` drops a reference must not also IPI lazy CPUs |
//! | [`mm_users_zero`](LazyMm::mm_users_zero) (`__mmput()`) | on, process context | only `tagged`'s RFC v2 placement (a displaced deposit, never the last reference of this mm) | no |
//! | [`final_drop`](LazyMm::final_drop) (`__mmdrop()`) | wherever the last `mmdrop` ran | — | **yes**: `shootdown`, `hazard`, `loaded_mm` and `rcu_mm`'s fallback IPI and wait |
//! | [`cpu_dead`](LazyMm::cpu_dead) (hotplug teardown, on another CPU) | on, process context | **yes**: `tagged` drops a deferred reference | only through the final drop |
//!
//! So the final drop — and with the IPI-based schemes an IPI-and-wait — can
//! be reached from an interrupts-off hook (`switched_mm`, `mmdrop_lazy_tlb`). A
//! kernel has two correct answers, and the crate's models check both:
//!
//! 1. its IPI wait serves its own pending IPIs ([`Kernel::serve_ipis`]) so
//!    that two CPUs waiting on each other with interrupts off make progress
//!    (what `smp_call_function_many()` callers rely on in Linux when they
//!    flush their own queue), or
//! 2. it defers the final drop out of interrupts-off context, as Linux's
//!    `mmdrop_sched()` / `mmdrop_lazy_tlb_sched()` do: its
//!    [`Kernel::mmdrop`], on reaching zero with interrupts off, queues the
//!    mm on a per-CPU list ([`deferred::DeferredDrops`]) and runs
//!    `final_drop` and the free at the next interrupts-on point. The scheme
//!    cannot tell the difference: the mm stays allocated until then. The
//!    machine's `with_deferred_drops()` does this for every final drop
//!    reached in an interrupts-off hook; `tests/loom/deferred.rs` and
//!    `tests/shuttle/deferred.rs` run the standard scenarios and the random
//!    workloads so.
//!
//! No hook allocates, and no hook other than the final drop waits.

pub mod cached;
pub mod checked;
pub mod deferred;
#[cfg(all(
    feature = "epoch",
    not(lazymm_shuttle),
    any(not(loom), all(loom, crossbeam_loom))
))]
pub mod epoch_mm;
#[cfg(all(feature = "haphazard", not(lazymm_shuttle)))]
pub mod haphazard;
pub mod hazard;
pub mod loaded;
#[cfg(all(any(feature = "haphazard", feature = "epoch"), not(lazymm_shuttle)))]
mod owned;
pub mod rcu_mm;
pub mod refcount;
pub mod shootdown;
pub mod switch;
pub mod tagged;

use crate::cpu::{CpuId, CpuMask};

/// The lazy-mm schemes of the crate that a `no_std` kernel can use, by
/// [`LazyMm::NAME`]: the one list examples, tests, benchmarks and `compare`
/// are checked against (`tests/scheme_registry.rs` fails when one of them
/// lacks a scheme). The std-only library backends are
/// [`LIBRARY_SCHEMES`].
pub const SCHEMES: [&str; 8] = [
    "refcount",
    "shootdown",
    "tagged",
    "cached",
    "hazard",
    "hazard_nofence",
    "loaded_mm",
    "rcu_mm",
];

/// The std-only schemes on library backends (features `haphazard`, `epoch`).
pub const LIBRARY_SCHEMES: [&str; 2] = ["haphazard", "epoch_mm"];

/// A kernel's handle to an mm (a pointer to its `mm_struct`, an index...).
///
/// [`to_word`](Self::to_word) must be non-zero and even, so that schemes can
/// keep a handle in an atomic word with a tag in bit 0 (Lutomirski's tagged
/// pointer); [`from_word`](Self::from_word) inverts it.
pub trait MmHandle: Copy + Eq + core::fmt::Debug + Send + Sync {
    /// The handle as a non-zero word with bit 0 clear.
    fn to_word(self) -> usize;
    /// The handle back from [`to_word`](Self::to_word)'s value.
    fn from_word(word: usize) -> Self;
}

/// An mm handle that is an index into the kernel's table of mm structs
/// (`0..`): its word is `(index + 1) << 1`, non-zero with bit 0 clear.
/// For kernels (and tests) that keep their mms in an array; one with
/// pointers uses [`MmPtr`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct MmIndex(pub usize);

impl MmHandle for MmIndex {
    #[inline]
    fn to_word(self) -> usize {
        (self.0 + 1) << 1
    }
    #[inline]
    fn from_word(word: usize) -> Self {
        MmIndex((word >> 1) - 1)
    }
}

/// An mm handle that is a pointer to the kernel's mm type `T`.
///
/// [`to_word`](MmHandle::to_word) fails to compile unless `T`'s alignment
/// leaves bit 0 of every address clear (the tag bit of [`crate::lazy::tagged`]).
/// The word keeps the pointer's provenance through `expose_provenance` /
/// `with_exposed_provenance_mut` (permissive provenance); protocol code
/// never dereferences it.
pub struct MmPtr<T>(core::ptr::NonNull<T>);

impl<T> MmPtr<T> {
    /// Wraps a pointer to a live mm.
    pub const fn new(ptr: core::ptr::NonNull<T>) -> Self {
        Self(ptr)
    }
    /// The pointer.
    pub const fn as_ptr(self) -> *mut T {
        self.0.as_ptr()
    }
}

impl<T> Clone for MmPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for MmPtr<T> {}
impl<T> PartialEq for MmPtr<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<T> Eq for MmPtr<T> {}
impl<T> core::fmt::Debug for MmPtr<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "mm@{:p}", self.0)
    }
}
// SAFETY: an `MmPtr` is an address the protocols compare and hand back to
// the kernel; they never dereference it, so sharing it between CPUs is as
// safe as sharing a `usize`.
unsafe impl<T> Send for MmPtr<T> {}
// SAFETY: as for `Send`.
unsafe impl<T> Sync for MmPtr<T> {}

impl<T> MmHandle for MmPtr<T> {
    #[inline]
    fn to_word(self) -> usize {
        const {
            assert!(
                core::mem::align_of::<T>() >= 2,
                "the mm type's alignment must leave bit 0 free for the tag"
            );
        }
        self.0.as_ptr().expose_provenance()
    }
    #[inline]
    fn from_word(word: usize) -> Self {
        let p = core::ptr::with_exposed_provenance_mut::<T>(word);
        Self(core::ptr::NonNull::new(p).expect("lazymm: null mm word"))
    }
}

/// What a lazy-mm scheme needs from the kernel it runs in.
///
/// The simulated machine implements it (with an oracle behind every call);
/// a kernel implements it over its own `mm_struct`, IPI and per-CPU code.
pub trait Kernel: Sync {
    /// The kernel's mm handle.
    type Mm: MmHandle;

    /// How many CPUs the kernel has (CPU ids are `0..NR_CPUS`): the one CPU
    /// count. Every per-CPU scheme is sized by a const parameter `N`
    /// ([`LazyMm::CPUS`]); a scheme with `N < NR_CPUS`, or a
    /// [`CpuMask`](Self::CpuMask) with room for fewer CPUs, is a compile
    /// error in the scheme's hooks ("lazymm: ..."), never a run-time index
    /// out of range. A kernel writes `Tagged<NR_CPUS>` with its own
    /// constant.
    const NR_CPUS: usize;

    /// The CPU-set type the kernel's cpumask snapshots and IPI target sets
    /// use: [`CpuSet<W>`](crate::cpu::CpuSet) with `W` words for
    /// `NR_CPUS` (one word up to 64 CPUs).
    type CpuMask: CpuMask;

    /// `mmgrab()`: `mm_count += 1`. Unordered, as in Linux (an `atomic_inc`).
    fn mmgrab(&self, cpu: CpuId, mm: Self::Mm);

    /// `mmdrop()`: a fully ordered `mm_count -= 1`; at zero the kernel runs
    /// `__mmdrop()`, which calls [`LazyMm::final_drop`] and frees the mm.
    fn mmdrop(&self, cpu: CpuId, mm: Self::Mm);

    /// `atomic_add(n, &mm->mm_count)`: `n` references in one RMW
    /// (unordered, like [`mmgrab`](Self::mmgrab)).
    #[inline]
    fn mmgrab_many(&self, cpu: CpuId, mm: Self::Mm, n: usize) {
        for _ in 0..n {
            self.mmgrab(cpu, mm);
        }
    }

    /// Gives back `n` references in one release RMW. The caller holds
    /// another reference, so this never frees the mm (the kernel may panic
    /// if it would).
    #[inline]
    fn mmdrop_many(&self, cpu: CpuId, mm: Self::Mm, n: usize) {
        for _ in 0..n {
            self.mmdrop(cpu, mm);
        }
    }

    /// `mm_users`, read with acquire (a scheme may only rely on it reaching 0).
    fn mm_users(&self, mm: Self::Mm) -> usize;

    /// A snapshot of `mm_cpumask(mm)`: every CPU that may have `mm` loaded,
    /// lazily or not. Each word is read with acquire, pairing with the release
    /// with which a CPU clears its bit after switching away. The copy is the
    /// kernel's own [`CpuMask`](Self::CpuMask) (one word up to 64 CPUs): the
    /// schemes that take it pass it on as an IPI target set.
    fn mm_cpumask(&self, mm: Self::Mm) -> Self::CpuMask;

    /// `for_each_cpu(c, mm_cpumask(mm))`: calls `f` for every CPU that may
    /// have `mm` loaded, reading the mask in place, with the orderings of
    /// [`mm_cpumask`](Self::mm_cpumask). The default iterates a snapshot; a
    /// kernel whose mask is large overrides it to walk its words.
    #[inline]
    fn for_each_mm_cpu(&self, mm: Self::Mm, f: impl FnMut(CpuId)) {
        self.mm_cpumask(mm).iter().for_each(f)
    }

    /// `on_each_cpu_mask(cpus, do_shoot_lazy_tlb, mm, wait = 1)`: every CPU of
    /// `cpus` (the caller included, run locally) that uses `mm` lazily
    /// switches to the kernel's own mm and calls [`LazyMm::lazy_shot`]; returns
    /// once every target has acknowledged (acquire, pairing with each
    /// handler's release acknowledgement).
    fn shoot_lazies(&self, cpu: CpuId, cpus: &Self::CpuMask, mm: Self::Mm);

    /// Serves `cpu`'s pending IPIs (a CPU that waits on others calls this in
    /// its wait loop so that two waiting CPUs cannot deadlock). No-op by default.
    #[inline]
    fn serve_ipis(&self, cpu: CpuId) {
        let _ = cpu;
    }

    /// Statistics hook: the scheme did `n` atomic RMWs on cache lines that
    /// other CPUs write (a remote per-CPU word, a shared count). No-op by default.
    #[inline]
    fn note_shared_rmw(&self, cpu: CpuId, n: usize) {
        let _ = (cpu, n);
    }
}

/// The compile-time check that ties a scheme to its kernel: `scheme_cpus`
/// (the scheme's [`LazyMm::CPUS`]) and `K::CpuMask` must cover
/// [`Kernel::NR_CPUS`]. Every scheme of the crate calls it in `mmgrab_lazy_tlb`
/// and `final_drop`, so a mismatch fails the kernel's build ("evaluation of
/// constant value failed ... lazymm: ...") instead of indexing out of range
/// at run time; a scheme of your own calls it the same way. The error
/// appears only at `cargo build` and points into lazymm: a kernel adds
/// [`assert_fits!`](crate::assert_fits) to get it at `cargo check`, at its
/// own line.
///
/// A kernel of 8 CPUs with a scheme sized for 4 does not build:
///
/// ```compile_fail
/// use lazymm::cpu::{CpuId, CpuSet};
/// use lazymm::lazy::{tagged::Tagged, Kernel, LazyMm, MmPtr};
///
/// struct MmStruct(u64);
/// struct Os;
/// impl Kernel for Os {
///     type Mm = MmPtr<MmStruct>;
///     const NR_CPUS: usize = 8;
///     type CpuMask = CpuSet<1>;
///     fn mmgrab(&self, _: CpuId, _: Self::Mm) {}
///     fn mmdrop(&self, _: CpuId, _: Self::Mm) {}
///     fn mm_users(&self, _: Self::Mm) -> usize { 1 }
///     fn mm_cpumask(&self, _: Self::Mm) -> CpuSet<1> { CpuSet::new() }
///     fn shoot_lazies(&self, _: CpuId, _: &CpuSet<1>, _: Self::Mm) {}
/// }
///
/// let mut mm = MmStruct(0);
/// let mm = MmPtr::new(core::ptr::NonNull::from(&mut mm));
/// let scheme = Tagged::<4>::new(); // `Tagged::<8>` builds
/// scheme.mmgrab_lazy_tlb(&Os, CpuId::new(0), mm); // error: lazymm: the scheme's per-CPU state covers fewer CPUs
/// ```
#[inline(always)]
pub const fn check_sizes<K: Kernel, const SCHEME_CPUS: usize>() {
    const {
        assert!(
            K::NR_CPUS <= SCHEME_CPUS,
            "lazymm: the scheme's per-CPU state covers fewer CPUs than Kernel::NR_CPUS"
        );
        assert!(
            K::NR_CPUS <= <K::CpuMask as CpuMask>::CAPACITY,
            "lazymm: Kernel::CpuMask holds fewer CPUs than Kernel::NR_CPUS"
        );
    }
}

/// The check behind [`assert_fits!`](crate::assert_fits): panics (at
/// compile time, in a `const` item) unless scheme `S`'s per-CPU state and
/// `K::CpuMask` cover [`Kernel::NR_CPUS`].
pub const fn fits<K: Kernel, S: LazyMm>() {
    assert!(
        K::NR_CPUS <= S::CPUS,
        "lazymm: the scheme's per-CPU state covers fewer CPUs than Kernel::NR_CPUS"
    );
    assert!(
        K::NR_CPUS <= <K::CpuMask as CpuMask>::CAPACITY,
        "lazymm: Kernel::CpuMask holds fewer CPUs than Kernel::NR_CPUS"
    );
}

/// `assert_fits!(Kernel, Scheme)`: a `const` item that fails `cargo check`
/// — at this line of the kernel's own code — when `Scheme`'s per-CPU state
/// or `Kernel::CpuMask` covers fewer CPUs than `Kernel::NR_CPUS`. The
/// schemes' own check ([`check_sizes`]) is the safety net: it fails only
/// at `cargo build` (after monomorphisation) and points into lazymm.
///
/// ```
/// use lazymm::cpu::{CpuId, CpuSet};
/// use lazymm::lazy::{tagged::Tagged, Kernel, MmPtr};
///
/// struct MmStruct(u64);
/// struct Os;
/// impl Kernel for Os {
///     type Mm = MmPtr<MmStruct>;
///     const NR_CPUS: usize = 8;
///     type CpuMask = CpuSet<1>;
///     fn mmgrab(&self, _: CpuId, _: Self::Mm) {}
///     fn mmdrop(&self, _: CpuId, _: Self::Mm) {}
///     fn mm_users(&self, _: Self::Mm) -> usize { 1 }
///     fn mm_cpumask(&self, _: Self::Mm) -> CpuSet<1> { CpuSet::new() }
///     fn shoot_lazies(&self, _: CpuId, _: &CpuSet<1>, _: Self::Mm) {}
/// }
///
/// lazymm::assert_fits!(Os, Tagged<8>);
/// ```
///
/// With `Tagged<4>` the same crate fails `cargo check` at the macro's line
/// ("lazymm: the scheme's per-CPU state covers fewer CPUs than
/// Kernel::NR_CPUS"):
///
/// ```compile_fail
/// # use lazymm::cpu::{CpuId, CpuSet};
/// # use lazymm::lazy::{tagged::Tagged, Kernel, MmPtr};
/// # struct MmStruct(u64);
/// # struct Os;
/// # impl Kernel for Os {
/// #     type Mm = MmPtr<MmStruct>;
/// #     const NR_CPUS: usize = 8;
/// #     type CpuMask = CpuSet<1>;
/// #     fn mmgrab(&self, _: CpuId, _: Self::Mm) {}
/// #     fn mmdrop(&self, _: CpuId, _: Self::Mm) {}
/// #     fn mm_users(&self, _: Self::Mm) -> usize { 1 }
/// #     fn mm_cpumask(&self, _: Self::Mm) -> CpuSet<1> { CpuSet::new() }
/// #     fn shoot_lazies(&self, _: CpuId, _: &CpuSet<1>, _: Self::Mm) {}
/// # }
/// lazymm::assert_fits!(Os, Tagged<4>);
/// ```
#[macro_export]
macro_rules! assert_fits {
    ($kernel:ty, $scheme:ty) => {
        const _: () = $crate::lazy::fits::<$kernel, $scheme>();
    };
}

/// A lazy-mm scheme: the hooks the scheduler calls (see the module docs).
///
/// Every hook runs on `cpu`, with preemption disabled; which ones run with
/// interrupts off, may reach the final drop or may wait for IPIs is the
/// table in the [module docs](self#contexts-interrupts-waiting-freeing).
///
/// The hooks are generic over the kernel (`K: Kernel`) rather than the trait
/// over it: a scheme never names its kernel type, so a kernel type generic
/// over its scheme (`struct Os<S: LazyMm>` with `impl<S: LazyMm> Kernel for
/// Os<S>`) has no trait cycle. The price is that `LazyMm` is not object
/// safe: a kernel picks its scheme at build time (a type parameter, or a cfg
/// on a type alias), or at boot with a `match` over monomorphised code, as
/// `examples/kernel/` does.
pub trait LazyMm: Sync {
    /// A short name for tables.
    const NAME: &'static str;

    /// How many CPUs the scheme's per-CPU state covers: its const parameter
    /// `N`, or `usize::MAX` (the default) for a scheme without per-CPU
    /// state. Must be at least [`Kernel::NR_CPUS`]: [`check_sizes`] makes a
    /// smaller one a compile error, and the simulated machine refuses a
    /// scenario with more CPUs.
    const CPUS: usize = usize::MAX;

    /// `cpu` keeps `mm` loaded for a task without an mm (`mmgrab_lazy_tlb()`).
    fn mmgrab_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm);

    /// kernel → kernel: the lazy use of `mm` passes to the next kernel task.
    #[inline]
    fn transfer_lazy<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        let _ = (k, cpu, mm);
    }

    /// `cpu` is about to reload its page-table base from `prev` to `next`
    /// (`None`: the kernel's own mm); called with interrupts disabled.
    #[inline]
    fn switching_mm<K: Kernel>(&self, k: &K, cpu: CpuId, prev: Option<K::Mm>, next: Option<K::Mm>) {
        let _ = (k, cpu, prev, next);
    }

    /// `cpu` has loaded `next` (`None`: the kernel's own mm) in place of
    /// `prev`; called right after the load, with interrupts disabled.
    #[inline]
    fn switched_mm<K: Kernel>(&self, k: &K, cpu: CpuId, prev: Option<K::Mm>, next: Option<K::Mm>) {
        let _ = (k, cpu, prev, next);
    }

    /// `cpu`'s lazy use of `mm` ends: the `mmdrop_lazy_tlb()` of
    /// `finish_task_switch()`. The CPU has loaded `next` (`None`: the
    /// kernel's own mm); `next == Some(mm)` is an unlazy back into the same
    /// mm, whose incoming task holds `mm_users`.
    fn mmdrop_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm, next: Option<K::Mm>);

    /// `mm_users` of `mm` reached 0 (in `__mmput()`, before the users'
    /// reference on `mm_count` is dropped).
    #[inline]
    fn mm_users_zero<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        let _ = (k, cpu, mm);
    }

    /// `mm_count` of `mm` reached 0 (in `__mmdrop()`, before the free): after
    /// this returns no CPU may still use `mm`.
    #[inline]
    fn final_drop<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        let _ = (k, cpu, mm);
    }

    /// `cpu` is dead (hotplug teardown, run on another CPU after `cpu`
    /// stopped): give back any per-CPU state the scheme deferred.
    #[inline]
    fn cpu_dead<K: Kernel>(&self, k: &K, cpu: CpuId) {
        let _ = (k, cpu);
    }

    /// A final drop's IPI switched `cpu` from its lazy `mm` to the kernel's own.
    #[inline]
    fn lazy_shot<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        let _ = (k, cpu, mm);
    }
}
