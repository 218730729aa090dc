//! Per-CPU IPI mailboxes for the focused machines (walkers, TLB): one
//! pending bit per sender, each sender's request word, a doorbell to block
//! on under the checkers. A CPU serves its mailbox only at the points its
//! machine calls [`Mailboxes::serve`] (interrupts-on points).

use super::{Doorbell, WaitBoard};
use crate::cpu::{CpuId, CpuMask};
use crate::sync::{AtomicUsize, Ordering::*, UnsafeCell};
use crossbeam_utils::CachePadded;
use std::format;
use std::vec::Vec;

struct Slot<T> {
    doorbell: Doorbell,
    /// Bit `s` = CPU `s` has a request for us.
    pending: AtomicUsize,
    /// This CPU's outgoing request; written only while none is outstanding.
    request: UnsafeCell<Option<T>>,
}

pub(crate) struct Mailboxes<T> {
    slots: Vec<CachePadded<Slot<T>>>,
    /// CPUs whose script is done ([`Mailboxes::idle_until_all_done`]).
    done: AtomicUsize,
    /// Who waits for what (the deadlock report).
    board: std::sync::Arc<WaitBoard>,
}

impl<T: Copy> Mailboxes<T> {
    pub(crate) fn new(n: usize) -> Self {
        let board = WaitBoard::new(n);
        Self {
            slots: (0..n)
                .map(|_| {
                    CachePadded::new(Slot {
                        doorbell: Doorbell::new(&board),
                        pending: AtomicUsize::new(0),
                        request: UnsafeCell::new(None),
                    })
                })
                .collect(),
            done: AtomicUsize::new(0),
            board,
        }
    }

    /// Another doorbell whose waiters count with the CPUs' own (a machine's
    /// event bell, for the deadlock report).
    pub(crate) fn new_bell(&self) -> Doorbell {
        Doorbell::new(&self.board)
    }

    /// Runs `handle` for every request pending for `cpu` and acknowledges it.
    pub(crate) fn serve(&self, cpu: CpuId, mut handle: impl FnMut(T)) {
        let me = &self.slots[cpu.index()];
        // Acquire: pairs with the sender's release fetch_or, so its request
        // word (and everything before it) is visible.
        let mut bits = me.pending.load(Acquire);
        while bits != 0 {
            let s = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            // SAFETY: the sender wrote its request before posting (release)
            // and does not write it again before our acknowledgement.
            let msg = self.slots[s].request.with(|r| unsafe { *r });
            handle(msg.expect("IPI with no request"));
            // Release: the acknowledgement; our handler (and everything
            // before it) happens before the sender's next step.
            me.pending.fetch_and(!(1usize << s), Release);
            self.slots[s].doorbell.ring();
        }
    }

    /// Sends `msg` to every CPU of `targets` (not `cpu` itself) and waits for
    /// each acknowledgement, serving `cpu`'s own mailbox with `handle` meanwhile.
    pub(crate) fn send(
        &self,
        cpu: CpuId,
        targets: &impl CpuMask,
        msg: T,
        mut handle: impl FnMut(T),
    ) {
        debug_assert!(!targets.contains(cpu), "an IPI to oneself");
        if targets.is_empty() {
            return;
        }
        // SAFETY: none of our requests is outstanding (we always wait for
        // every acknowledgement before returning).
        self.slots[cpu.index()]
            .request
            .with_mut(|r| unsafe { *r = Some(msg) });
        let bit = 1usize << cpu.index();
        for t in targets.iter() {
            // Release: publishes the request; pairs with serve's acquire.
            self.slots[t.index()].pending.fetch_or(bit, Release);
            self.slots[t.index()].doorbell.ring();
        }
        for t in targets.iter() {
            let target = &self.slots[t.index()];
            // Acquire: pairs with the target's release acknowledgement.
            self.wait_serving(
                cpu,
                || format!("{t}'s acknowledgement of its IPI"),
                || target.pending.load(Acquire) & bit == 0,
                &mut handle,
            );
        }
    }

    /// Serves `cpu`'s mailbox until `until()` holds, blocking on its doorbell
    /// under the checkers (spinning otherwise).
    /// `what` says what `cpu` waits for, for the deadlock report.
    pub(crate) fn wait_serving(
        &self,
        cpu: CpuId,
        what: impl Fn() -> std::string::String,
        until: impl Fn() -> bool,
        mut handle: impl FnMut(T),
    ) {
        let me = &self.slots[cpu.index()];
        loop {
            self.serve(cpu, &mut handle);
            if until() {
                return;
            }
            me.doorbell.wait(
                cpu,
                &what,
                || until() || me.pending.load(Relaxed) != 0,
                |line| panic!("{line}"),
            );
        }
    }

    /// `cpu`'s script is done: it idles serving IPIs (with `handle`) until
    /// every CPU's is.
    pub(crate) fn idle_until_all_done(&self, cpu: CpuId, handle: impl FnMut(T)) {
        let n = self.slots.len();
        // Release/acquire on `done` only orders the idle loop's exit.
        if self.done.fetch_add(1, Release) + 1 == n {
            self.ring_all();
        }
        self.wait_serving(
            cpu,
            || "the other CPUs to finish their scripts".into(),
            || self.done.load(Acquire) == n,
            handle,
        );
    }

    /// Wakes every CPU (a condition it may wait on changed).
    pub(crate) fn ring_all(&self) {
        for s in &self.slots {
            s.doorbell.ring();
        }
    }
}
