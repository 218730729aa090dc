//! A small RCU over the atomics layer: per-CPU quiescent-state counters,
//! grace periods with Linux's sequence-number cookies, and idle as an
//! extended quiescent state.
//!
//! # The protocol
//!
//! Each CPU has one counter word. Bit 0 set means the CPU is *active* (it may
//! be inside a read-side critical section); clear means it is in an
//! **extended quiescent state** (idle, offline). Every other change adds 2:
//!
//! * [`Rcu::quiescent`] — a context switch, or the end of an
//!   interrupts-off region: `fetch_add(2, Release)` then a full barrier;
//! * [`Rcu::idle_enter`] — `fetch_add(1, Release)` (odd → even);
//! * [`Rcu::idle_exit`] — `fetch_add(1)` (even → odd) then a full barrier.
//!
//! A grace period (GP) is driven by whoever calls [`Rcu::advance`]: it
//! starts one (a full barrier, then a snapshot of every CPU's counter) and
//! ends it once every CPU either was in an extended quiescent state at the
//! snapshot or has changed its counter since. The release on each counter
//! change, the driver's acquire reads and the release/acquire `gp_seq` end a
//! happens-before chain from every critical section that began before the
//! GP to whoever sees the GP end. Both `gp_seq` stores are releases: a
//! `done()` may read the *next* GP's start, and a release sequence does not
//! run through a plain store, so a relaxed start would let it count the end
//! without synchronizing with it (`bug_relaxed_gp_start`, found by the GP
//! kthread model at bound 3). The full barriers make the store-buffering
//! pair that forbids the other bad outcome — a section that begins after the
//! snapshot read the counter but does not see the updater's unlink:
//!
//! ```text
//! updater:  W ptr = new ; smp_mb() ; (GP start) smp_mb() ; R ctr[cpu]
//! reader:   W ctr[cpu] (quiescent / idle_exit) ; smp_mb() ; R ptr
//! forbidden: the snapshot misses the counter change AND the reader reads the old ptr
//! ```
//!
//! **Cookies.** `gp_seq` counts GP starts and ends (odd = a GP is running),
//! as Linux's `rcu_seq_snap()`: [`Rcu::snap`] returns the `gp_seq` value at
//! which a *full* GP has elapsed since the call — the end of the next GP
//! to start, `(gp_seq + 3) & !1`, since a GP already running may have taken
//! its snapshot before the caller's update. The `bug_gp_one_short` variant
//! ([`Bug::GpOneShort`]) uses `(gp_seq + 2) & !1`, which the end of a GP
//! already running satisfies; loom rejects it (`tests/loom/walk.rs`).
//!
//! **What is a quiescent state** is the user's contract: a CPU must not call
//! [`Rcu::quiescent`] or [`Rcu::idle_enter`] while it still uses anything
//! read before. The lazy-mm use ([`crate::lazy::rcu_mm`]) is
//! exactly where that goes wrong: an idle CPU still has the previous mm
//! *loaded*.
//!
//! **Bounds.** A GP ends once every active CPU has passed one quiescent
//! state; a CPU that never does (a long interrupts-off region, a CPU stuck
//! in a kernel loop) stalls it — Linux then sends it an IPI or nudges its
//! scheduler. The API is non-blocking: [`Rcu::advance`] polls and returns.
//!
//! Source: Linux's RCU (`kernel/rcu/`), with idle as an extended quiescent
//! state as in `rcu_idle_enter()`, and sched-RCU for interrupts-off walkers.

use crate::bugs::BugSwitch;
use crate::cpu::{CpuId, PerCpu};
use crate::sync::{smp_mb, smp_mb_after_atomic, AtomicBool, AtomicUsize, Ordering::*};

/// Known-bad variants of the grace-period machinery.
#[cfg_attr(not(lazymm_bugs), doc(hidden))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// [`Rcu::snap`] returns `(gp_seq + 2) & !1`: a GP already running counts
    /// for an update made after its snapshot.
    GpOneShort,
    /// [`Rcu::advance`] ends a GP without waiting for the CPUs (a callback
    /// runs before its grace period ends).
    NoWait,
    /// [`Rcu::advance`] never ends a grace period (as if a quiescent state
    /// were lost): no use-after-free, but every `synchronize_rcu()` waits
    /// forever. The models must turn that into a failing test that names
    /// what each CPU waits for ("deadlock: ..."), not a checker abort.
    NeverEnds,
    /// [`Rcu::advance`] ends a GP with a `Relaxed` store of `gp_seq`: a CPU
    /// that only polls [`Rcu::done`] while another drives the GP (a
    /// grace-period kthread) is not ordered after the readers' sections. A
    /// waiter that drives the GP itself never notices (it read the counters).
    RelaxedGpEnd,
    /// [`Rcu::done`] reads `gp_seq` with `Relaxed`: as above, seen only by a
    /// waiter that does not drive.
    RelaxedDone,
    /// [`Rcu::quiescent`]'s increment is `Relaxed`: the CPU's reads before
    /// it are not ordered before a GP end that saw it.
    RelaxedQs,
    /// [`Rcu::quiescent`] has no full barrier after its increment (the
    /// store-buffering pair with the GP start's).
    NoQsMb,
    /// [`Rcu::idle_enter`]'s increment is `Relaxed`.
    RelaxedIdleEnter,
    /// [`Rcu::idle_exit`] has no full barrier after its increment (the
    /// store-buffering pair with the GP start's).
    NoIdleExitMb,
    /// [`Rcu::is_idle`] reads with `Relaxed`.
    RelaxedIsIdle,
    /// [`Rcu::snap`] has no full barrier before it reads `gp_seq`.
    NoSnapMb,
    /// [`Rcu::snap`] reads `gp_seq` with `Relaxed`.
    RelaxedSnapRead,
    /// The driver lock of [`Rcu::advance`] is taken and released `Relaxed`.
    RelaxedDriverLock,
    /// The GP start has no full barrier between its `gp_seq` store and its
    /// snapshot of the CPUs' counters.
    NoGpStartMb,
    /// The GP start's snapshot reads the counters with `Relaxed`.
    RelaxedSnapshot,
    /// The end check reads the counters with `Relaxed`.
    RelaxedEndCheck,
    /// The GP start stores `gp_seq` with `Relaxed` (the crate before
    /// 2026-12-06): a [`Rcu::done`] that reads a *later* GP's start value
    /// returns true without synchronizing with the end it counts, because
    /// a release sequence does not run through a plain store.
    RelaxedGpStart,
}

/// What one call of [`Rcu::advance`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Another CPU is driving the machinery right now.
    Busy,
    /// Started a grace period (snapshot taken).
    Started,
    /// The running grace period waits for a CPU's quiescent state.
    Waiting,
    /// Ended the running grace period.
    Ended,
}

/// A per-CPU queue of deferred callbacks (`call_rcu()`): items wait with
/// their [`Cookie`] until its grace period ends. Fixed capacity, no
/// allocation; owned by one CPU (`&mut self`), as Linux's per-CPU callback
/// lists are. Cookies never decrease, so the queue is FIFO and the ready
/// items are at its head.
pub struct RcuQueue<T, const CAP: usize> {
    slots: [Option<(Cookie, T)>; CAP],
    head: usize,
    len: usize,
}

impl<T, const CAP: usize> Default for RcuQueue<T, CAP> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const CAP: usize> RcuQueue<T, CAP> {
    /// An empty queue (`const`: a kernel keeps one per CPU in a `static`).
    pub const fn new() -> Self {
        Self {
            slots: [const { None }; CAP],
            head: 0,
            len: 0,
        }
    }

    /// Queued items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `item` until the grace period of `cookie` ends; gives it back
    /// when the queue is full (the caller then waits for a grace period
    /// itself, as `synchronize_rcu()` would).
    ///
    /// # Panics
    /// If `cookie` is older than the last queued one (cookies come from
    /// [`Rcu::snap`], which never goes back).
    pub fn push(&mut self, cookie: Cookie, item: T) -> Result<(), T> {
        if self.len == CAP {
            return Err(item);
        }
        if self.len > 0 {
            let last = (self.head + self.len - 1) % CAP;
            let prev = self.slots[last].as_ref().map(|(c, _)| *c);
            assert!(prev.is_none_or(|p| p <= cookie), "RCU cookie went back");
        }
        self.slots[(self.head + self.len) % CAP] = Some((cookie, item));
        self.len += 1;
        Ok(())
    }

    /// The oldest item whose grace period has ended, if any.
    pub fn pop_ready<const N: usize>(&mut self, rcu: &Rcu<N>) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let (cookie, _) = self.slots[self.head].as_ref()?;
        if !rcu.done(*cookie) {
            return None;
        }
        let (_, item) = self.slots[self.head].take()?;
        self.head = (self.head + 1) % CAP;
        self.len -= 1;
        Some(item)
    }
}

/// A grace-period cookie from [`Rcu::snap`]; pass it to [`Rcu::done`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cookie(usize);

/// RCU state for `N` CPUs.
pub struct Rcu<const N: usize> {
    /// Per-CPU counter: bit 0 = active, `+2` per quiescent state.
    ctr: PerCpu<AtomicUsize, N>,
    /// The driver's snapshot of `ctr` (only the driver, holding `driving`,
    /// writes or reads it: packed, not padded).
    snap: [AtomicUsize; N],
    /// Twice the number of GPs completed, plus 1 while one runs.
    gp_seq: AtomicUsize,
    /// Held by the CPU that advances the GP machinery.
    driving: AtomicBool,
    bug: BugSwitch<Bug>,
}

impl<const N: usize> Default for Rcu<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Rcu<N> {
    crate::const_fn! {
        /// Every CPU starts in an extended quiescent state (offline or idle):
        /// a CPU calls [`idle_exit`](Self::idle_exit) when it comes online.
        pub fn new() -> Self {
            Self {
                ctr: PerCpu::from_padded(crate::cpu::padded_array!(N, AtomicUsize::new(0))),
                snap: crate::array![AtomicUsize::new(0); N],
                gp_seq: AtomicUsize::new(0),
                driving: AtomicBool::new(false),
                bug: BugSwitch::off(),
            }
        }
    }

    /// The machinery with a known bug switched on (checker builds only).
    #[cfg(lazymm_bugs)]
    pub fn with_bug(bug: Bug) -> Self {
        let mut r = Self::new();
        r.bug = BugSwitch::on(bug);
        r
    }

    /// `cpu` passed a quiescent state: it holds nothing it read before.
    ///
    /// # Panics
    /// If `cpu` is idle (a quiescent state outside an active period is a
    /// scheduler bug), or out of range.
    pub fn quiescent(&self, cpu: CpuId) {
        // Release: everything `cpu` read before happens before a driver that
        // acquires the new value (its GP end, then the callbacks). The full
        // barrier after pairs with the GP start's (store buffering, module docs).
        let old = self
            .ctr
            .get(cpu)
            .fetch_add(2, self.bug.weaken(Bug::RelaxedQs, Release));
        self.bug.fence_unless(Bug::NoQsMb, smp_mb_after_atomic);
        assert!(old & 1 == 1, "RCU quiescent state on {cpu}, which is idle");
    }

    /// `cpu` enters an extended quiescent state (idle, offline).
    ///
    /// # Panics
    /// If `cpu` is already idle.
    pub fn idle_enter(&self, cpu: CpuId) {
        // Release: as in `quiescent`.
        let old = self
            .ctr
            .get(cpu)
            .fetch_add(1, self.bug.weaken(Bug::RelaxedIdleEnter, Release));
        assert!(
            old & 1 == 1,
            "RCU idle_enter on {cpu}, which is already idle"
        );
    }

    /// `cpu` leaves its extended quiescent state.
    ///
    /// # Panics
    /// If `cpu` is not idle.
    pub fn idle_exit(&self, cpu: CpuId) {
        // Relaxed + full barrier: pairs with the GP start's barrier (store
        // buffering): a GP whose snapshot saw `cpu` idle has its updates
        // visible to what `cpu` reads from now on.
        let old = self.ctr.get(cpu).fetch_add(1, Relaxed);
        self.bug
            .fence_unless(Bug::NoIdleExitMb, smp_mb_after_atomic);
        assert!(old & 1 == 0, "RCU idle_exit on {cpu}, which is not idle");
    }

    /// Whether `cpu` is in an extended quiescent state. Acquire: pairs with
    /// the release of its `idle_enter` (what it did before is visible).
    pub fn is_idle(&self, cpu: CpuId) -> bool {
        self.ctr
            .get(cpu)
            .load(self.bug.weaken(Bug::RelaxedIsIdle, Acquire))
            & 1
            == 0
    }

    /// The cookie of a full grace period from now: call after the update
    /// (the unlink) it must order.
    pub fn snap(&self) -> Cookie {
        // Full barrier: the caller's update is ordered before the `gp_seq`
        // read, so a GP that started after this read also snapshots after
        // the update (pairs with the barriers in `quiescent`/`idle_exit`).
        self.bug.fence_unless(Bug::NoSnapMb, smp_mb);
        // Acquire: pairs with the GP end's release store (as `done`).
        let s = self
            .gp_seq
            .load(self.bug.weaken(Bug::RelaxedSnapRead, Acquire));
        if self.bug.is(Bug::GpOneShort) {
            return Cookie((s + 2) & !1);
        }
        Cookie((s + 3) & !1)
    }

    /// Whether the grace period of `cookie` has ended. When it returns true,
    /// every read-side section that began before the [`snap`](Self::snap)
    /// happens before the return.
    pub fn done(&self, cookie: Cookie) -> bool {
        // Acquire: pairs with the release store that ended the GP.
        self.gp_seq
            .load(self.bug.weaken(Bug::RelaxedDone, Acquire))
            .wrapping_sub(cookie.0) as isize
            >= 0
    }

    /// Completed grace periods so far.
    pub fn completed(&self) -> usize {
        self.gp_seq.load(Relaxed) / 2
    }

    /// Drives the machinery one step if no other CPU is driving it: starts a
    /// GP if none runs, or ends the running one if every CPU has passed a
    /// quiescent state. Never blocks.
    pub fn advance(&self) -> Progress {
        // Acquire/Release: the driver lock orders one driver's snapshot
        // writes before the next driver's reads.
        // A compare-exchange rather than a swap: loom's swap may read a store
        // that is not the newest (tokio-rs/loom#254, #389), its CAS does not.
        if self
            .driving
            .compare_exchange(
                false,
                true,
                self.bug.weaken(Bug::RelaxedDriverLock, Acquire),
                Relaxed,
            )
            .is_err()
        {
            return Progress::Busy;
        }
        let ended = self.advance_locked();
        self.driving
            .store(false, self.bug.weaken(Bug::RelaxedDriverLock, Release));
        ended
    }

    fn advance_locked(&self) -> Progress {
        let s = self.gp_seq.load(Relaxed);
        if s & 1 == 0 {
            // Start: a release store, then the full barrier that orders it
            // (and every earlier update of the callers whose cookies it
            // serves, by their own barrier in `snap`) before the snapshot.
            // Release: pairs with `done`'s acquire, which may read this
            // start rather than the end before it (the previous GP's end,
            // by this driver or one before it through the driver lock,
            // happens before this store; a release sequence would not
            // carry the end's release through a plain store).
            self.gp_seq
                .store(s + 1, self.bug.weaken(Bug::RelaxedGpStart, Release));
            self.bug.fence_unless(Bug::NoGpStartMb, smp_mb);
            for (cpu, c) in self.ctr.iter() {
                // Acquire: pairs with the release of the CPU's last change.
                let now = c.load(self.bug.weaken(Bug::RelaxedSnapshot, Acquire));
                self.snap[cpu.index()].store(now, Relaxed);
            }
            return Progress::Started;
        }
        if self.bug.is(Bug::NeverEnds) {
            return Progress::Waiting;
        }
        if !self.bug.is(Bug::NoWait) {
            for (cpu, c) in self.ctr.iter() {
                let at_start = self.snap[cpu.index()].load(Relaxed);
                // Acquire: pairs with `quiescent`/`idle_enter`'s release, so
                // the CPU's section happens before the GP end.
                if at_start & 1 == 1
                    && c.load(self.bug.weaken(Bug::RelaxedEndCheck, Acquire)) == at_start
                {
                    return Progress::Waiting;
                }
            }
        }
        // Release: pairs with `done`'s acquire.
        self.gp_seq
            .store(s + 1, self.bug.weaken(Bug::RelaxedGpEnd, Release));
        Progress::Ended
    }
}
