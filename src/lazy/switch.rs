//! The switch sequence: where a scheduler calls the [`LazyMm`] hooks, in
//! Linux's order, written once.
//!
//! # The sequence
//!
//! A CPU's mm state is three words (Linux's names): the running task's mm
//! (`current->mm`, none for a kernel thread, idle or a task past
//! `exit_mm()`), the mm the CPU uses (`current->active_mm`: the task's own,
//! or the one a kernel thread borrows lazily), and the mm whose page tables
//! are loaded (`cpu_tlbstate.loaded_mm`, the page-table base register). The
//! kernel keeps the first two in a [`CpuMm`] and the third in its
//! page-table base; it implements [`SwitchMm`] to let the sequence read and
//! write them and to load page tables. The sequence then does, hook by hook:
//!
//! | kernel path | [`context_switch`] and friends | hooks, in order |
//! |---|---|---|
//! | `context_switch()` to a task without an mm, from a user task | [`context_switch`]`(.., None)` | state `{curr: None, active}`, then [`mmgrab_lazy_tlb(active)`](LazyMm::mmgrab_lazy_tlb) |
//! | the same, from a kernel thread | [`context_switch`]`(.., None)` | [`transfer_lazy(active)`](LazyMm::transfer_lazy) |
//! | to a user task of `next` | [`context_switch`]`(.., Some(next))` | [`switch_mm`] (below); state `{curr: next, active: next}`; then, from a kernel thread that was lazy on `old`, `finish_task_switch()`'s [`mmdrop_lazy_tlb(old, Some(next))`](LazyMm::mmdrop_lazy_tlb) |
//! | `switch_mm_irqs_off()` | [`switch_mm`] | nothing if `next` is loaded already; else [`switching_mm`](LazyMm::switching_mm), [`SwitchMm::load_mm`], [`switched_mm`](LazyMm::switched_mm) |
//! | `exit_mm()` | [`exit_mm`] | [`mmgrab_lazy_tlb(mm)`](LazyMm::mmgrab_lazy_tlb), then state `{curr: None, active: mm}` (the dying task is a lazy user of its own mm) |
//! | `do_shoot_lazy_tlb()` (the shoot-lazy IPI handler) | [`do_shoot_lazy_tlb`] | if lazy on `mm`: [`switch_mm`] to the kernel's own mm, state `{active: None}`, [`lazy_shot(mm)`](LazyMm::lazy_shot) |
//! | `sched_force_init_mm()` (CPU down) | [`force_init_mm`] | [`switch_mm`] to the kernel's own mm, state `{active: None}`, [`mmdrop_lazy_tlb(old, None)`](LazyMm::mmdrop_lazy_tlb) |
//!
//! `mmput()` and `mmdrop()` stay the kernel's own: they call
//! [`LazyMm::mm_users_zero`] and [`LazyMm::final_drop`] where `mm_users` and
//! `mm_count` reach zero.
//!
//! Why this order:
//!
//! * **The state is written before the lazy hooks.** `mmgrab_lazy_tlb`,
//!   `mmdrop_lazy_tlb` and `lazy_shot` may reach a final drop, which may
//!   wait for IPIs while it serves its own; a shoot-lazy IPI served then
//!   must see what the CPU really runs. (Linux runs `finish_task_switch()`'s
//!   drop after `switch_to()` for the same reason.)
//! * **`switched_mm` comes last in [`switch_mm`]**, after the kernel has
//!   cleared the CPU's bit in `prev`'s cpumask ([`SwitchMm::load_mm`]): the
//!   scheme may drop its last reference to `prev` there (`cached` does), after
//!   which `prev` may be gone.
//! * **`mmdrop_lazy_tlb` comes after the load of `next`**: the lazy CPU
//!   keeps using `old` until its page-table base no longer points at it.
//! * **Two tasks of the same mm** switch without a load and without a hook:
//!   preempting a user task for another of its process changes nothing the
//!   schemes track.
//!
//! # When to call the hooks yourself
//!
//! A kernel whose page-table load is not a call in its `context_switch()`
//! (an architecture that switches the mm inside `switch_to()`, a kernel that
//! splits `finish_task_switch()` off to after the register switch with the
//! state of another CPU in between) calls the [`LazyMm`] hooks itself, in
//! this module's order; so does one whose per-CPU state cannot be read and
//! written as a [`CpuMm`]. Wrap the scheme in
//! [`Checked`](crate::lazy::checked::Checked) while bringing it up: it panics
//! on the orders it can tell are wrong.
//!
//! # Contexts
//!
//! [`context_switch`], [`switch_mm`], [`do_shoot_lazy_tlb`] and
//! [`force_init_mm`] run with interrupts off and preemption disabled, as
//! their Linux counterparts do; [`exit_mm`] with interrupts on. The
//! hooks' own contexts (which may reach the final drop, which may wait for
//! IPIs) are [the table in the module above](super#contexts-interrupts-waiting-freeing).
//!
//! # Tracing
//!
//! Every hook runs inside [`SwitchMm::around_hook`] (by default it just
//! runs it): a kernel puts its tracepoints there, and the crate's simulated
//! machine records which hook each CPU is in for its failure reports.

use super::{Kernel, LazyMm, MmHandle};
use crate::cpu::CpuId;
use crate::sync::{AtomicUsize, Ordering::Relaxed};

/// A CPU's task-level mm state (`current->mm` and `current->active_mm`).
///
/// The loaded page tables (`cpu_tlbstate.loaded_mm`) are the kernel's
/// page-table base, read through [`SwitchMm::loaded_mm`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CpuMm<M> {
    /// The running task's mm: `None` for a kernel thread, idle, or a task
    /// that has passed `exit_mm()`.
    pub curr: Option<M>,
    /// The mm the CPU uses: `curr`'s, or the one a task without an mm
    /// borrows lazily; `None` on the kernel's own mm.
    pub active: Option<M>,
}

impl<M: Copy + PartialEq> CpuMm<M> {
    /// A CPU that boots: idle on the kernel's own mm.
    pub const BOOT: Self = CpuMm {
        curr: None,
        active: None,
    };

    /// Running a task without an mm on a borrowed user mm.
    #[inline]
    pub fn is_lazy(&self) -> bool {
        self.curr.is_none() && self.active.is_some()
    }
}

/// A CPU's [`CpuMm`] and loaded mm as three atomic words (0: none), for a
/// kernel that keeps them where other CPUs may read them (a free-time check
/// of `loaded`, a debugger): the storage behind a [`SwitchMm`] impl.
///
/// Only the CPU itself writes them, so every access is `Relaxed`: they
/// publish nothing (the cpumask and the schemes' own words do).
#[derive(Debug)]
pub struct CpuMmWords {
    curr: AtomicUsize,
    active: AtomicUsize,
    loaded: AtomicUsize,
}

impl Default for CpuMmWords {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuMmWords {
    crate::const_fn! {
        /// Idle on the kernel's own mm ([`CpuMm::BOOT`], nothing loaded).
        pub fn new() -> Self {
            Self {
                curr: AtomicUsize::new(0),
                active: AtomicUsize::new(0),
                loaded: AtomicUsize::new(0),
            }
        }
    }

    /// For [`SwitchMm::cpu_mm`].
    #[inline]
    pub fn get<M: MmHandle>(&self) -> CpuMm<M> {
        CpuMm {
            curr: handle(self.curr.load(Relaxed)),
            active: handle(self.active.load(Relaxed)),
        }
    }

    /// For [`SwitchMm::set_cpu_mm`].
    #[inline]
    pub fn set<M: MmHandle>(&self, st: CpuMm<M>) {
        self.curr.store(word(st.curr), Relaxed);
        self.active.store(word(st.active), Relaxed);
    }

    /// For [`SwitchMm::loaded_mm`].
    #[inline]
    pub fn loaded<M: MmHandle>(&self) -> Option<M> {
        handle(self.loaded.load(Relaxed))
    }

    /// Records `next` as loaded, right after the page-table load of
    /// [`SwitchMm::load_mm`].
    #[inline]
    pub fn set_loaded<M: MmHandle>(&self, next: Option<M>) {
        self.loaded.store(word(next), Relaxed);
    }
}

/// An mm as a word, 0 for the kernel's own.
#[inline]
fn word<M: MmHandle>(mm: Option<M>) -> usize {
    mm.map_or(0, M::to_word)
}

/// A word back as an mm (0: the kernel's own).
#[inline]
fn handle<M: MmHandle>(word: usize) -> Option<M> {
    (word != 0).then(|| M::from_word(word))
}

/// The scheme hook a step of the sequence runs (for [`SwitchMm::around_hook`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SwitchHook {
    /// [`LazyMm::mmgrab_lazy_tlb`].
    EnterLazy,
    /// [`LazyMm::transfer_lazy`].
    TransferLazy,
    /// [`LazyMm::switching_mm`].
    SwitchingMm,
    /// [`LazyMm::switched_mm`].
    SwitchedMm,
    /// [`LazyMm::mmdrop_lazy_tlb`].
    LeaveLazy,
    /// [`LazyMm::lazy_shot`].
    LazyShot,
}

/// What the switch sequence needs from the kernel besides [`Kernel`]: the
/// CPU's [`CpuMm`] and its page-table base.
///
/// Every method is called on `cpu` itself (its own per-CPU state), with
/// interrupts off.
pub trait SwitchMm: Kernel {
    /// `cpu`'s `current->mm` and `current->active_mm`.
    fn cpu_mm(&self, cpu: CpuId) -> CpuMm<Self::Mm>;

    /// Stores `cpu`'s new [`CpuMm`] (written by the sequence before any
    /// hook that may serve IPIs; see the module docs).
    fn set_cpu_mm(&self, cpu: CpuId, state: CpuMm<Self::Mm>);

    /// The mm whose page tables `cpu` has loaded (`None`: the kernel's own).
    fn loaded_mm(&self, cpu: CpuId) -> Option<Self::Mm>;

    /// The architecture's part of `switch_mm_irqs_off()`, called only when
    /// `next != prev`: set `cpu` in `next`'s cpumask, load `next`'s page
    /// tables (`None`: the kernel's own) so that [`loaded_mm`](Self::loaded_mm)
    /// returns `next`, then clear `cpu` from `prev`'s cpumask with
    /// **release** (pairing with [`Kernel::mm_cpumask`]'s acquire: every use
    /// of `prev` by this CPU happens before a reader that sees the bit
    /// clear).
    fn load_mm(&self, cpu: CpuId, prev: Option<Self::Mm>, next: Option<Self::Mm>);

    /// Runs `f`, the scheme's `hook` for `mm` (for [`SwitchHook::SwitchingMm`]
    /// the `next` mm, for [`SwitchHook::SwitchedMm`] the `prev` one). The
    /// default just runs it; a kernel adds its tracepoints here.
    #[inline]
    fn around_hook(&self, cpu: CpuId, hook: SwitchHook, mm: Option<Self::Mm>, f: impl FnOnce()) {
        let _ = (cpu, hook, mm);
        f()
    }
}

/// What a [`context_switch`] did to the CPU's lazy use (for statistics).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Switched<M> {
    /// No lazy use began or ended: user → user, a switch on the kernel's
    /// own mm, or a switch to the task already running.
    Plain,
    /// user → kernel: the CPU became a lazy user of this mm.
    EnterLazy(M),
    /// kernel → kernel: the lazy use of this mm passed on.
    TransferLazy(M),
    /// kernel → user: the lazy use of `lazy` ended, loading `next`
    /// (`lazy == next`: an unlazy back into the same mm).
    LeaveLazy {
        /// The mm the CPU was lazy on.
        lazy: M,
        /// The incoming task's mm.
        next: M,
    },
}

/// `switch_mm_irqs_off()`: makes `cpu`'s loaded page tables `next`'s
/// (`None`: the kernel's own), with [`LazyMm::switching_mm`] before and
/// [`LazyMm::switched_mm`] after the kernel's [`SwitchMm::load_mm`];
/// nothing at all if `next` is loaded already. Interrupts off.
pub fn switch_mm<S: LazyMm, K: SwitchMm>(scheme: &S, k: &K, cpu: CpuId, next: Option<K::Mm>) {
    let prev = k.loaded_mm(cpu);
    if prev == next {
        return;
    }
    k.around_hook(cpu, SwitchHook::SwitchingMm, next, || {
        scheme.switching_mm(k, cpu, prev, next)
    });
    k.load_mm(cpu, prev, next);
    // Last: the scheme may drop its last reference to `prev` here.
    k.around_hook(cpu, SwitchHook::SwitchedMm, prev, || {
        scheme.switched_mm(k, cpu, prev, next)
    });
}

/// `context_switch()` and `finish_task_switch()`'s mm half: `cpu` switches
/// to a task of `next` (`None`: a kernel thread or idle). Interrupts off.
///
/// Returns what happened to the lazy use, for statistics.
pub fn context_switch<S: LazyMm, K: SwitchMm>(
    scheme: &S,
    k: &K,
    cpu: CpuId,
    next: Option<K::Mm>,
) -> Switched<K::Mm> {
    let st = k.cpu_mm(cpu);
    match next {
        None => {
            k.set_cpu_mm(
                cpu,
                CpuMm {
                    curr: None,
                    active: st.active,
                },
            );
            let Some(mm) = st.active else {
                return Switched::Plain; // on init_mm: nothing to track
            };
            if st.curr.is_some() {
                // user -> kernel: enter_lazy_tlb(), mmgrab_lazy_tlb().
                k.around_hook(cpu, SwitchHook::EnterLazy, Some(mm), || {
                    scheme.mmgrab_lazy_tlb(k, cpu, mm)
                });
                Switched::EnterLazy(mm)
            } else {
                // kernel -> kernel: the lazy use passes to `next`.
                k.around_hook(cpu, SwitchHook::TransferLazy, Some(mm), || {
                    scheme.transfer_lazy(k, cpu, mm)
                });
                Switched::TransferLazy(mm)
            }
        }
        Some(mm) => {
            switch_mm(scheme, k, cpu, Some(mm));
            k.set_cpu_mm(
                cpu,
                CpuMm {
                    curr: Some(mm),
                    active: Some(mm),
                },
            );
            match (st.curr, st.active) {
                (None, Some(lazy)) => {
                    // finish_task_switch(): kernel -> user drops rq->prev_mm.
                    k.around_hook(cpu, SwitchHook::LeaveLazy, Some(lazy), || {
                        scheme.mmdrop_lazy_tlb(k, cpu, lazy, Some(mm))
                    });
                    Switched::LeaveLazy { lazy, next: mm }
                }
                _ => Switched::Plain,
            }
        }
    }
}

/// `exit_mm()`: the running user task gives up its mm and becomes a lazy
/// user of it until the CPU's next switch ([`LazyMm::mmgrab_lazy_tlb`]).
/// Returns the mm, whose `mm_users` the kernel's `mmput()` drops next.
/// Interrupts on.
///
/// # Panics
///
/// If `cpu` runs no user task ("lazymm: exit_mm on cpuN, which runs no user task").
pub fn exit_mm<S: LazyMm, K: SwitchMm>(scheme: &S, k: &K, cpu: CpuId) -> K::Mm {
    let Some(mm) = k.cpu_mm(cpu).curr else {
        panic!("lazymm: exit_mm on {cpu}, which runs no user task");
    };
    k.around_hook(cpu, SwitchHook::EnterLazy, Some(mm), || {
        scheme.mmgrab_lazy_tlb(k, cpu, mm)
    });
    k.set_cpu_mm(
        cpu,
        CpuMm {
            curr: None,
            active: Some(mm),
        },
    );
    mm
}

/// `do_shoot_lazy_tlb()`, the handler of [`Kernel::shoot_lazies`]' IPI:
/// if `cpu` uses `mm` lazily, switch it to the kernel's own mm and call
/// [`LazyMm::lazy_shot`]. Returns whether it did. Interrupts off.
///
/// # Panics
///
/// If `cpu` runs a user task of `mm` ("lazymm: shoot-lazy IPI for mm on
/// cpuN, which runs one of its user tasks"): a final drop while `mm` has
/// users is the scheme's or the kernel's bug.
pub fn do_shoot_lazy_tlb<S: LazyMm, K: SwitchMm>(scheme: &S, k: &K, cpu: CpuId, mm: K::Mm) -> bool {
    let st = k.cpu_mm(cpu);
    if st.active != Some(mm) {
        return false; // it left `mm` meanwhile
    }
    assert!(
        st.curr.is_none(),
        "lazymm: shoot-lazy IPI for {mm:?} on {cpu}, which runs one of its user tasks"
    );
    switch_mm(scheme, k, cpu, None);
    k.set_cpu_mm(cpu, CpuMm::BOOT);
    k.around_hook(cpu, SwitchHook::LazyShot, Some(mm), || {
        scheme.lazy_shot(k, cpu, mm)
    });
    true
}

/// `sched_force_init_mm()` (CPU down, or any switch of a task without an
/// mm to the kernel's own page tables): load the kernel's own mm and end
/// the CPU's lazy use, if any ([`LazyMm::mmdrop_lazy_tlb`] with `next =
/// None`). Interrupts off.
///
/// # Panics
///
/// If `cpu` runs a user task ("lazymm: force_init_mm on cpuN, which runs a
/// user task of mm").
pub fn force_init_mm<S: LazyMm, K: SwitchMm>(scheme: &S, k: &K, cpu: CpuId) {
    let st = k.cpu_mm(cpu);
    if let Some(mm) = st.curr {
        panic!("lazymm: force_init_mm on {cpu}, which runs a user task of {mm:?}");
    }
    switch_mm(scheme, k, cpu, None);
    k.set_cpu_mm(cpu, CpuMm::BOOT);
    if let Some(lazy) = st.active {
        k.around_hook(cpu, SwitchHook::LeaveLazy, Some(lazy), || {
            scheme.mmdrop_lazy_tlb(k, cpu, lazy, None)
        });
    }
}
