//! What a kernel provides, as traits: the current CPU (proved by a pin
//! guard), an IPI to a set of CPUs with wait, a local TLB flush, and
//! references on its mm type.
//!
//! The lazy-mm schemes take their platform through [`crate::lazy::Kernel`]
//! (references, the cpumask, the shoot-lazy IPI). The TLB and walker
//! protocols take CPU ids; these traits let a kernel call them with a
//! [`CpuPin`] instead, so that "this runs on that CPU and cannot migrate"
//! is a value the type system carries rather than a comment:
//!
//! * [`CurrentCpu`] — `get_cpu()` / `preempt_disable()`: a [`CpuPin`] for
//!   the running CPU;
//! * [`IpiSync`] — `smp_call_function_many(.., wait = 1)` of an empty
//!   function (`tlb_remove_table_smp_sync()`): every target has taken an
//!   interrupt after the call began;
//! * [`LocalTlb`] — flush this CPU's TLB entries of an address space.
//!
//! The library consumes them: [`crate::walk::WalkTracker::walk`] pins the
//! CPU for a whole lockless walk through [`CurrentCpu`],
//! [`crate::walk::WalkTracker::sync_pinned`] interrupts walkers through
//! [`IpiSync`], and [`crate::tlb::tlbgen::LazyTlb::switch_mm`] does the local
//! flush a switch's generation check asks for through [`LocalTlb`]
//! (`tests/platform.rs`).
//!
//! The walker machine (`crate::check::model::walk`) implements [`IpiSync`] and
//! syncs through [`crate::walk::WalkTracker::sync_pinned`]; the TLB machine
//! (`crate::check::model::tlb`) implements [`LocalTlb`]. A kernel implements them
//! on its own per-CPU code.

use crate::cpu::{CpuId, CpuMask};
use core::marker::PhantomData;

/// Proof that the holder runs on [`cpu`](Self::cpu) and cannot migrate
/// (preemption or interrupts disabled) while the pin lives. Neither `Send`
/// nor `Sync`: it cannot leave the CPU's context.
#[derive(Debug)]
pub struct CpuPin<'a> {
    cpu: CpuId,
    _not_send: PhantomData<(&'a (), *const ())>,
}

impl CpuPin<'_> {
    /// A pin for `cpu`.
    ///
    /// # Safety
    /// The caller runs on `cpu` and stays there (preemption or interrupts
    /// disabled) until the pin is dropped.
    pub unsafe fn new(cpu: CpuId) -> Self {
        Self {
            cpu,
            _not_send: PhantomData,
        }
    }

    /// The pinned CPU.
    pub fn cpu(&self) -> CpuId {
        self.cpu
    }
}

/// The current CPU.
///
/// # Safety
/// [`pin`](Self::pin) returns the CPU the caller runs on, and the caller
/// cannot migrate until the pin is dropped.
pub unsafe trait CurrentCpu {
    /// `get_cpu()`: disables preemption and names the running CPU.
    fn pin(&self) -> CpuPin<'_>;
}

/// An empty IPI to a set of CPUs, with wait.
pub trait IpiSync {
    /// Interrupts every CPU of `targets` (never the caller's own) and
    /// returns once each has run the (empty) handler — that is, once each
    /// has turned interrupts on since the call began. Serves the caller's
    /// own pending IPIs while it waits, so two CPUs syncing at once cannot
    /// deadlock. The handlers' completion happens before the return
    /// (release acknowledgements, acquired here).
    fn ipi_and_wait(&self, pin: &CpuPin<'_>, targets: &impl CpuMask);
}

/// This CPU's TLB.
pub trait LocalTlb {
    /// The address-space handle.
    type Mm;
    /// Flushes this CPU's entries of `mm` (all of them: a full flush of its
    /// context); the paging-structure caches too.
    fn flush_local(&self, pin: &CpuPin<'_>, mm: Self::Mm);
}
