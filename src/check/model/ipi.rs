//! The lazy-mm machine's IPIs: a per-CPU mailbox (one pending bit per
//! sender, plus each sender's request word), served at interrupt-enabled
//! points, and the doorbell a waiting CPU blocks on under the checkers.

use super::report::Hook;
use super::{Machine, MmId, Task};
use crate::cpu::{CpuId, CpuSet};
use crate::lazy::LazyMm;
use crate::sync::thread::{Condvar, Mutex};
use crate::sync::{spin_loop, Ordering::*, CHECKED};
use std::format;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ipi {
    None,
    ShootLazy(MmId),
}

/// Wakes a CPU that waits for an IPI, an acknowledgement or the end of the
/// run. Under the checkers a waiting CPU blocks on a condition variable
/// instead of spinning (a spinning idle CPU multiplies loom's executions
/// without exploring anything new); with real threads it spins.
///
/// The mutex adds no happens-before edge the protocol relies on: every event
/// that rings a doorbell is already published by a release RMW that the
/// woken CPU acquires.
pub(super) struct Doorbell {
    lock: Mutex<()>,
    cv: Condvar,
}

impl Doorbell {
    pub(super) fn new() -> Self {
        Self {
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    }

    pub(super) fn ring(&self) {
        if CHECKED {
            let _g = self.lock.lock().unwrap();
            self.cv.notify_all();
        }
    }

    /// Returns once `wake()` holds (immediately in real builds, where the
    /// caller spins).
    pub(super) fn wait(&self, wake: impl Fn() -> bool) {
        if CHECKED {
            let mut g = self.lock.lock().unwrap();
            while !wake() {
                g = self.cv.wait(g).unwrap();
            }
        } else {
            spin_loop();
        }
    }
}

impl<S: LazyMm + Send + Sync + 'static> Machine<S> {
    /// Serves `cpu`'s mailbox (an interrupt-enabled point).
    pub(super) fn serve_ipis(&self, cpu: CpuId) {
        // Interrupts are on: first the final drops deferred while they were off.
        self.drain_deferred(cpu);
        if self.inline_ipis {
            return;
        }
        let me = &self.cpu(cpu);
        // Acquire: pairs with the sender's release fetch_or, so its request
        // word is visible.
        let pending = me.pending.load(Acquire);
        if pending == 0 {
            return;
        }
        let mut bits = pending;
        while bits != 0 {
            let s = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            // SAFETY: the sender wrote its request before posting (release)
            // and will not write it again before our acknowledgement.
            let msg = self.cpus[s].request.with(|r| unsafe { *r });
            self.handle_ipi(cpu, msg);
            // Release: the acknowledgement; pairs with the sender's acquire
            // wait, so our handler happens before whatever it does next.
            me.pending.fetch_and(!(1usize << s), Release);
            self.cpus[s].doorbell.ring();
        }
    }

    pub(super) fn handle_ipi(&self, cpu: CpuId, msg: Ipi) {
        match msg {
            Ipi::None => panic!("IPI with no request"),
            Ipi::ShootLazy(mm) => self.hook(cpu, Hook::ShootLazyIpi, Some(mm), || {
                // do_shoot_lazy_tlb()
                let st = self.state(cpu);
                if st.active_mm == mm {
                    if let Task::User(_) = st.curr {
                        self.fail(
                            Some(cpu),
                            Some(mm),
                            format!("shootdown of {mm} on {cpu}, which runs one of its user tasks"),
                        );
                    }
                    self.switch_mm(cpu, MmId::INIT);
                    self.update(cpu, |s| {
                        s.active_mm = MmId::INIT;
                        s.is_lazy = false;
                    });
                    self.hook(cpu, Hook::LazyShot, Some(mm), || {
                        self.scheme.lazy_shot(self, cpu, mm)
                    });
                }
            }),
        }
    }

    /// Sends `msg` to every CPU of `targets` (running ours locally) and waits
    /// for every acknowledgement, serving our own mailbox meanwhile.
    pub(super) fn send_ipis(&self, cpu: CpuId, targets: &CpuSet<1>, msg: Ipi) {
        let others = targets.len() - usize::from(targets.contains(cpu));
        self.count(cpu, |s| s.ipis += others as u64);
        if self.inline_ipis {
            for t in targets.iter() {
                self.handle_ipi(t, msg);
            }
            return;
        }
        let me = &self.cpu(cpu);
        // SAFETY: none of our IPIs is outstanding (we always wait for all
        // acknowledgements before returning), so no target reads the request.
        me.request.with_mut(|r| unsafe { *r = msg });
        let bit = 1usize << cpu.index();
        for t in targets.iter().filter(|&t| t != cpu) {
            // Release: publishes the request; pairs with serve_ipis' acquire.
            self.cpu(t).pending.fetch_or(bit, Release);
            self.cpu(t).doorbell.ring();
        }
        if targets.contains(cpu) {
            self.handle_ipi(cpu, msg);
        }
        for t in targets.iter().filter(|&t| t != cpu) {
            // Acquire: pairs with the target's release acknowledgement.
            let target = &self.cpu(t);
            self.wait_serving(cpu, || target.pending.load(Acquire) & bit == 0);
        }
    }
}
