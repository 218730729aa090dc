//! The scheme interface: the hooks a scheduler calls, and what a scheme needs
//! from its kernel.
//!
//! A *lazy-mm scheme* decides how an address space stays alive while CPUs use
//! it lazily. The scheduler (a kernel's, or the simulated machine in
//! [`crate::model`]) calls the scheme at the points where Linux's
//! `context_switch()` calls `mmgrab_lazy_tlb()` / `mmdrop_lazy_tlb()`:
//!
//! | transition (Linux `context_switch()`) | hook |
//! |---|---|
//! | user → kernel thread: the CPU keeps `prev->active_mm` loaded | [`LazyMm::enter_lazy`] |
//! | `exit_mm()`: the exiting task becomes a lazy user of its own mm | [`LazyMm::enter_lazy`] |
//! | kernel → kernel: the lazy use passes to the next kernel thread | [`LazyMm::transfer_lazy`] |
//! | kernel → user, in `finish_task_switch()` once the CPU loaded `next->mm` | [`LazyMm::leave_lazy`] |
//! | CPU forced to the kernel's own mm (`sched_force_init_mm()`, CPU down) | [`LazyMm::leave_lazy`] |
//! | `__mmput()`: `mm_users` reached 0 | [`LazyMm::mm_users_zero`] |
//! | `__mmdrop()`: `mm_count` reached 0, before the free | [`LazyMm::final_drop`] |
//! | a final drop's IPI forced this CPU off the mm | [`LazyMm::lazy_shot`] |
//!
//! The scheduler never calls a hook for the kernel's own mm (`init_mm`): it is
//! never freed, so no scheme tracks it.
//!
//! Everything a scheme needs from the kernel is in [`Kernel`]: the mm
//! reference counts, the mm's cpumask and a "shoot lazies" IPI. There is no
//! global state; the calling CPU is always passed in.

use crate::cpu::{CpuId, CpuSet};

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

/// What a lazy-mm scheme needs from the kernel it runs in.
///
/// The simulated machine implements it (with an oracle behind every call);
/// a kernel implements it over its own `mm_struct`, IPI and per-CPU code.
pub trait Kernel: Sync {
    /// The kernel's mm handle.
    type Mm: MmHandle;

    /// `mmgrab()`: `mm_count += 1`. Unordered, as in Linux (an `atomic_inc`).
    fn mmgrab(&self, cpu: CpuId, mm: Self::Mm);

    /// `mmdrop()`: a fully ordered `mm_count -= 1`; at zero the kernel runs
    /// `__mmdrop()`, which calls [`LazyMm::final_drop`] and frees the mm.
    fn mmdrop(&self, cpu: CpuId, mm: Self::Mm);

    /// `mm_users`, read with acquire (a scheme may only rely on it reaching 0).
    fn mm_users(&self, mm: Self::Mm) -> usize;

    /// A snapshot of `mm_cpumask(mm)`: every CPU that may have `mm` loaded,
    /// lazily or not. Each word is read with acquire, pairing with the release
    /// with which a CPU clears its bit after switching away.
    fn mm_cpumask(&self, mm: Self::Mm) -> CpuSet;

    /// `on_each_cpu_mask(cpus, do_shoot_lazy_tlb, mm, wait = 1)`: every CPU of
    /// `cpus` (the caller included, run locally) that uses `mm` lazily
    /// switches to the kernel's own mm and calls [`LazyMm::lazy_shot`]; returns
    /// once every target has acknowledged (acquire, pairing with each
    /// handler's release acknowledgement).
    fn shoot_lazies(&self, cpu: CpuId, cpus: &CpuSet, mm: Self::Mm);

    /// Statistics hook: the scheme did `n` atomic RMWs on cache lines that
    /// other CPUs write (a remote per-CPU word, a shared count). No-op by default.
    #[inline]
    fn note_shared_rmw(&self, cpu: CpuId, n: usize) {
        let _ = (cpu, n);
    }
}

/// A lazy-mm scheme: the hooks the scheduler calls (see the module docs).
///
/// Every hook runs on `cpu`, with preemption disabled, and — except
/// [`final_drop`](Self::final_drop) and [`mm_users_zero`](Self::mm_users_zero),
/// which run with interrupts enabled — with interrupts disabled.
pub trait LazyMm<K: Kernel>: Sync {
    /// A short name for tables.
    const NAME: &'static str;

    /// `cpu` keeps `mm` loaded for a task without an mm (`mmgrab_lazy_tlb()`).
    fn enter_lazy(&self, k: &K, cpu: CpuId, mm: K::Mm);

    /// kernel → kernel: the lazy use of `mm` passes to the next kernel task.
    #[inline]
    fn transfer_lazy(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        let _ = (k, cpu, mm);
    }

    /// `cpu` no longer uses `mm` (it has loaded another mm): the
    /// `mmdrop_lazy_tlb()` of `finish_task_switch()`.
    fn leave_lazy(&self, k: &K, cpu: CpuId, mm: K::Mm);

    /// `mm_users` of `mm` reached 0 (in `__mmput()`, before the users'
    /// reference on `mm_count` is dropped).
    #[inline]
    fn mm_users_zero(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        let _ = (k, cpu, mm);
    }

    /// `mm_count` of `mm` reached 0 (in `__mmdrop()`, before the free): after
    /// this returns no CPU may still use `mm`.
    #[inline]
    fn final_drop(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        let _ = (k, cpu, mm);
    }

    /// A final drop's IPI switched `cpu` from its lazy `mm` to the kernel's own.
    #[inline]
    fn lazy_shot(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        let _ = (k, cpu, mm);
    }
}
