//! The lazy-mm machine's IPIs: a per-CPU mailbox (one pending bit per
//! sender, plus each sender's request word), served at interrupt-enabled
//! points, and the doorbell a waiting CPU blocks on under the checkers.

use super::report::Hook;
use super::{Machine, MachineBug, MmId, Task};
use crate::cpu::{CpuId, CpuSet};
use crate::lazy::{switch, LazyMm};
use crate::sync::thread::{Condvar, Mutex};
use crate::sync::{spin_loop, Ordering::*, CHECKED};
use core::fmt::Write;
use std::format;
use std::string::String;
use std::sync::Arc as StdArc;
use std::vec::Vec;

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
pub(crate) struct Doorbell {
    lock: Mutex<()>,
    cv: Condvar,
    board: StdArc<WaitBoard>,
    id: usize,
}

impl Doorbell {
    /// A doorbell whose waiters are recorded on `board`.
    pub(crate) fn new(board: &StdArc<WaitBoard>) -> Self {
        Self {
            lock: Mutex::new(()),
            cv: Condvar::new(),
            board: StdArc::clone(board),
            id: board.bell(),
        }
    }

    pub(crate) fn ring(&self) {
        if CHECKED {
            let _g = self.lock.lock().unwrap();
            self.board.rung(self.id);
            self.cv.notify_all();
        }
    }

    /// `cpu` goes round a scheme's wait loop once more: the livelock line
    /// from the board ([`WaitBoard::spin`]) under the checkers.
    pub(crate) fn spin(&self, cpu: CpuId, what: impl FnOnce() -> String) -> Option<String> {
        if CHECKED {
            self.board.spin(cpu, what)
        } else {
            None
        }
    }

    /// `cpu`'s wait in a scheme ended (its final drop returned): the next
    /// wait's rounds count from zero.
    pub(crate) fn spun_out(&self, cpu: CpuId) {
        if CHECKED {
            self.board.state().spins[cpu.index()] = (u64::MAX, 0);
        }
    }

    /// Returns once `wake()` holds (immediately in real builds, where the
    /// caller spins). `cpu` blocks here waiting for `what()`; if that leaves
    /// every CPU of the machine blocked with no doorbell rung since, nothing
    /// can wake any of them, and `deadlock` gets the oracle's line naming
    /// what each CPU waits for (it is expected to panic; if it returns, the
    /// line is the panic).
    pub(crate) fn wait(
        &self,
        cpu: CpuId,
        what: impl Fn() -> String,
        wake: impl Fn() -> bool,
        deadlock: impl FnOnce(String),
    ) {
        if CHECKED {
            let mut g = self.lock.lock().unwrap();
            while !wake() {
                if let Some(line) = self.board.block(cpu, self.id, what()) {
                    drop(g);
                    deadlock(line.clone());
                    panic!("{line}");
                }
                g = self.cv.wait(g).unwrap();
                self.board.unblock(cpu);
            }
        } else {
            spin_loop();
        }
    }
}

/// Which CPU threads of one machine are blocked on which doorbell, and for
/// what (checker builds). A CPU is blocked from the moment it waits until a
/// doorbell it waits on rings. When the last running CPU blocks, no CPU can
/// make progress (every CPU ends its script idling until all are done, so
/// none has left the machine while another still waits): the CPU fails with
/// a line naming what each CPU waits for, instead of the checker's own
/// deadlock abort, which loom reports without naming anything and which
/// ends a test binary instead of failing one test. Plain `std` bookkeeping
/// outside the checkers' view: loom and shuttle run one thread at a time,
/// and it adds no edge they could see.
pub(crate) struct WaitBoard {
    cpus: usize,
    state: std::sync::Mutex<BoardState>,
}

struct BoardState {
    bells: usize,
    /// Per CPU: the doorbell it is blocked on and what it waits for.
    blocked: Vec<Option<(usize, String)>>,
    /// Bumped whenever a blocked CPU may run again (a ring, an unblock).
    epoch: u64,
    /// Per CPU: the epoch of its last round of a scheme's wait loop taken
    /// while every other CPU was blocked, and how many rounds it has gone
    /// round at that epoch.
    spins: Vec<(u64, u32)>,
}

/// Rounds of a scheme's wait loop, with every other CPU blocked and nothing
/// rung, after which the wait counts as one that can never end. A wait
/// that makes progress on its own (`rcu_mm` advances its grace period
/// `POLLS` = 4 times before it IPIs) needs fewer.
const LIVELOCK_ROUNDS: u32 = 16;

impl WaitBoard {
    /// A board for a machine of `cpus` CPU threads.
    pub(crate) fn new(cpus: usize) -> StdArc<Self> {
        StdArc::new(Self {
            cpus,
            state: std::sync::Mutex::new(BoardState {
                bells: 0,
                blocked: (0..cpus).map(|_| None).collect(),
                epoch: 0,
                spins: std::vec![(u64::MAX, 0); cpus],
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, BoardState> {
        // A poisoned board only means another CPU's oracle fired first.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bell(&self) -> usize {
        let mut st = self.state();
        st.bells += 1;
        st.bells - 1
    }

    /// `cpu` blocks on `bell` for `what`; the deadlock line if it was the
    /// last CPU still able to run.
    fn block(&self, cpu: CpuId, bell: usize, what: String) -> Option<String> {
        let mut st = self.state();
        st.blocked[cpu.index()] = Some((bell, what));
        if st.blocked.iter().filter(|b| b.is_some()).count() < self.cpus {
            return None;
        }
        let mut line = String::from(
            "deadlock: no CPU can make progress (every CPU waits, and no IPI or event can wake one):",
        );
        for (c, b) in st.blocked.iter().enumerate() {
            if let Some((_, what)) = b {
                let _ = write!(line, "\n    cpu{c} waits for {what}");
            }
        }
        st.blocked[cpu.index()] = None;
        Some(line)
    }

    fn unblock(&self, cpu: CpuId) {
        let mut st = self.state();
        st.blocked[cpu.index()] = None;
        st.epoch += 1;
    }

    /// `bell` rang: its waiters can run again.
    fn rung(&self, bell: usize) {
        let mut st = self.state();
        st.epoch += 1;
        for b in st.blocked.iter_mut() {
            if b.as_ref().is_some_and(|(id, _)| *id == bell) {
                *b = None;
            }
        }
    }

    /// `cpu` goes round a scheme's wait loop once more (`what`: the hooks
    /// it waits in). The livelock line once it has gone round
    /// [`LIVELOCK_ROUNDS`] times in one wait (one final drop:
    /// [`Doorbell::spun_out`] restarts the count) while every other CPU
    /// stayed blocked and nothing rang: nothing but this CPU runs, so what it waits for can
    /// never happen — a final drop that waits for a CPU that stays where it
    /// is (in a kernel: spins as long as that CPU stays in user mode).
    pub(crate) fn spin(&self, cpu: CpuId, what: impl FnOnce() -> String) -> Option<String> {
        let mut st = self.state();
        let me = cpu.index();
        let others_blocked = st
            .blocked
            .iter()
            .enumerate()
            .all(|(c, b)| c == me || b.is_some());
        if !others_blocked {
            st.spins[me] = (u64::MAX, 0);
            return None;
        }
        let epoch = st.epoch;
        let rounds = match st.spins[me] {
            (e, n) if e == epoch => n + 1,
            _ => 1,
        };
        st.spins[me] = (epoch, rounds);
        if rounds < LIVELOCK_ROUNDS {
            return None;
        }
        let mut line = std::format!(
            "livelock: cpu{me} waits in {} for something no CPU will do: it went round its wait {rounds} times while every other CPU waited and nothing woke one",
            what()
        );
        for (c, b) in st.blocked.iter().enumerate() {
            if let Some((_, what)) = b {
                let _ = write!(line, "\n    cpu{c} waits for {what}");
            }
        }
        Some(line)
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
            let order = self.bug.weaken(MachineBug::RelaxedIpiAck, Release);
            me.pending.fetch_and(!(1usize << s), order);
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
                }
                switch::do_shoot_lazy_tlb(&self.scheme, self, cpu, mm);
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
            let order = self.bug.weaken(MachineBug::RelaxedIpiAck, Acquire);
            self.wait_serving(
                cpu,
                || format!("{t}'s acknowledgement of its shoot-lazy IPI for {msg:?}"),
                || target.pending.load(order) & bit == 0,
            );
        }
    }
}
