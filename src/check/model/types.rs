//! The machine's vocabulary: mm ids, tasks, per-CPU scheduler state, the
//! machine's own known bugs, and its counters.

use crate::lazy::MmHandle;

/// An mm of the machine: `init_mm` (the kernel's own, never freed) or one of
/// the scenario's mms.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MmId(pub(super) u32);

impl MmId {
    /// The kernel's own mm.
    pub const INIT: MmId = MmId(0);

    /// The scenario's mm number `i` (`0..nr_mms`).
    pub const fn new(i: usize) -> Self {
        MmId(i as u32 + 1)
    }

    /// `None` for `init_mm` (how schemes see the kernel's own mm).
    pub const fn real(self) -> Option<MmId> {
        match self.0 {
            0 => None,
            _ => Some(self),
        }
    }

    /// `Some(i)` for the scenario's mm `i`, `None` for `init_mm`.
    pub const fn index(self) -> Option<usize> {
        match self.0 {
            0 => None,
            n => Some(n as usize - 1),
        }
    }
}

impl core::fmt::Debug for MmId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.index() {
            None => f.write_str("init_mm"),
            Some(i) => write!(f, "mm{i}"),
        }
    }
}

impl core::fmt::Display for MmId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

impl MmHandle for MmId {
    #[inline]
    fn to_word(self) -> usize {
        (self.0 as usize) << 3
    }
    #[inline]
    fn from_word(word: usize) -> Self {
        MmId((word >> 3) as u32)
    }
}

/// The task a CPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// A kernel thread, idle, or an exited task: no mm of its own.
    Kernel,
    /// The CPU's user task of this mm.
    User(MmId),
}

/// A CPU's private scheduler state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuState {
    /// The running task.
    pub curr: Task,
    /// `current->active_mm`.
    pub active_mm: MmId,
    /// The mm the page-table base register points at (`cpu_tlbstate.loaded_mm`).
    pub loaded_mm: MmId,
    /// Running a task without an mm on a borrowed user mm.
    pub is_lazy: bool,
}

/// Known-bad variants of the machine's own kernel code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineBug {
    /// CPU down clears the CPU from every cpumask *before* switching its idle
    /// task off its lazy mm (powerpc `cleanup_cpu_mmu_context()`, the bug
    /// `sched_force_init_mm()` fixed): a shootdown in that window misses the CPU.
    HotplugClearsCpumask,
    /// With deferred final drops, the drain forgets the list: the mms whose
    /// last reference went with interrupts off are never freed.
    DeferredLost,
    /// `Kernel::mmdrop`'s decrement without its release half (contract
    /// K1): a CPU's uses before its drop are not ordered before the free.
    MmdropNoRelease,
    /// `Kernel::mmdrop`'s decrement without its acquire half (contract
    /// K2): the final drop's free is not ordered after the others' uses.
    MmdropNoAcquire,
    /// `Kernel::mm_cpumask` reads the bits with `Relaxed` (contract K3).
    RelaxedCpumaskSnapshot,
    /// `switch_mm` clears the cpumask bit with `Relaxed` (contract K4).
    RelaxedCpumaskClear,
    /// The shoot-lazy IPI's acknowledgement is `Relaxed` on both sides: the
    /// handler's clear and the sender's wait (contract K5).
    RelaxedIpiAck,
}

/// Per-CPU counters the machine keeps (model builds only; not in protocols).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Context switches.
    pub switches: u64,
    /// Switches that entered lazy mode (user → kernel, and exits).
    pub lazy_enters: u64,
    /// Process exits (`exit_mm`).
    pub exits: u64,
    /// Atomic RMWs on lines other CPUs write (counts, cpumasks, remote words).
    pub shared_rmws: u64,
    /// IPIs sent to other CPUs.
    pub ipis: u64,
    /// mms freed.
    pub frees: u64,
    /// mms freed by a final drop that made no shoot-lazies call
    /// ([`Kernel::shoot_lazies`](crate::lazy::Kernel::shoot_lazies)): for
    /// `rcu_mm`, the frees through a completed grace period.
    pub frees_without_shootdown: u64,
    /// [`Kernel::shoot_lazies`](crate::lazy::Kernel::shoot_lazies) calls
    /// (rounds, whether or not they IPI'd anyone).
    pub shootdowns: u64,
    /// Final drops deferred out of an interrupts-off hook
    /// ([`Machine::with_deferred_drops`](super::Machine::with_deferred_drops)).
    pub deferred_drops: u64,
}

impl core::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Self) {
        self.switches += o.switches;
        self.lazy_enters += o.lazy_enters;
        self.exits += o.exits;
        self.shared_rmws += o.shared_rmws;
        self.ipis += o.ipis;
        self.frees += o.frees;
        self.frees_without_shootdown += o.frees_without_shootdown;
        self.shootdowns += o.shootdowns;
        self.deferred_drops += o.deferred_drops;
    }
}
