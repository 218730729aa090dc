//! [`CpuOwned`]: a per-CPU value of a library backend that is not `Sync`
//! (a hazard pointer, an epoch handle), used only by its own CPU's hooks.
//! A flag makes each use exclusive and turns a violation (a hook nested
//! in another from an interrupt, or a hook run for the CPU from another
//! thread) into a documented panic instead of a data race.

use crate::cpu::CpuId;
use crate::sync::{AtomicBool, Ordering::*};
use core::cell::UnsafeCell;

pub(crate) struct CpuOwned<T> {
    busy: AtomicBool,
    value: UnsafeCell<T>,
}

impl<T> CpuOwned<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            busy: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` on the value of `cpu` (whose `what` it is, for the panic).
    pub(crate) fn with<R>(&self, cpu: CpuId, what: &str, f: impl FnOnce(&mut T) -> R) -> R {
        // Acquire: pairs with the release below of the value's last user.
        if self.busy.swap(true, Acquire) {
            panic!(
                "lazymm: {cpu}'s {what} used re-entrantly (a hook from an interrupt inside another hook) or from two threads at once"
            );
        }
        // SAFETY: `busy` is ours until the release below, so this is the
        // only reference to the value.
        let r = f(unsafe { &mut *self.value.get() });
        // Release: pairs with the next user's acquire swap.
        self.busy.store(false, Release);
        r
    }
}
