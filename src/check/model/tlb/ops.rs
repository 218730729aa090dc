//! The TLB machine's workloads (one script of [`TlbOp`]s per CPU) and its
//! counters.

use super::PTES;
use std::vec::Vec;

/// One operation of a CPU's script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbOp {
    /// Run a user task of `M` (switch to it if needed).
    User,
    /// Switch to a kernel thread (lazy on the loaded mm).
    Kthread,
    /// Switch to another process (the kernel's own mm stands in for it).
    Away,
    /// The user task uses `M`'s memory: both PTEs through the TLB.
    Use,
    /// The user task changes PTE 0 and flushes `M` (munmap-like); with
    /// `freed_tables`, page tables are freed too.
    Flush {
        /// Page-table pages are freed (IPI lazy CPUs too).
        freed_tables: bool,
    },
    /// The user task changes `M`'s LDT.
    Ldt,
    /// Reclaim clears PTE `i` under its PTL and batches the flush.
    Reclaim(usize),
    /// Reclaim flushes its batch (`try_to_unmap_flush()`).
    UnmapFlush,
    /// The user task mprotects the page of PTE `i`.
    Mprotect(usize),
    /// The user task madvises the page of PTE `i` (the PTL is dropped and
    /// retaken in the middle).
    Madvise(usize),
}

/// The scripts of a TLB machine.
#[derive(Clone, Debug)]
pub struct TlbScenario {
    pub(super) scripts: Vec<Vec<TlbOp>>,
}

impl TlbScenario {
    /// One script per CPU.
    ///
    /// # Panics
    /// "scenario error: ..." when an operation of a user task (`Use`,
    /// `Flush`, `Ldt`, `Mprotect`, `Madvise`) is not preceded by `User`
    /// without a switch away in between, or a PTE index is out of range.
    pub fn new(scripts: Vec<Vec<TlbOp>>) -> Self {
        assert!(!scripts.is_empty(), "scenario error: no CPU");
        for (c, s) in scripts.iter().enumerate() {
            let mut user = false;
            for op in s {
                match *op {
                    TlbOp::User => user = true,
                    TlbOp::Kthread | TlbOp::Away => user = false,
                    TlbOp::Reclaim(i) | TlbOp::Mprotect(i) | TlbOp::Madvise(i) if i >= PTES => {
                        panic!("scenario error: cpu{c}: PTE {i} out of range ({PTES} PTEs)")
                    }
                    TlbOp::Reclaim(_) | TlbOp::UnmapFlush => {}
                    other => assert!(
                        user,
                        "scenario error: cpu{c}: {other:?} needs a running user task (User first)"
                    ),
                }
            }
        }
        Self { scripts }
    }

    /// The same scenario with `tails` appended, one per CPU (a CPU without
    /// an entry, or with an empty one, stops where it stopped): what the
    /// CPUs a race touched do next — use the mm again, go lazy and come
    /// back, flush it themselves — so a bug in what a CPU *remembers*
    /// (its flushed generation, its cached page tables) shows.
    ///
    /// # Panics
    /// As [`new`](Self::new) on the joined scripts; "scenario error: ..."
    /// if `tails` has more entries than the scenario has CPUs.
    pub fn then(self, tails: Vec<Vec<TlbOp>>) -> Self {
        assert!(
            tails.len() <= self.scripts.len(),
            "scenario error: {} tails for {} CPUs",
            tails.len(),
            self.scripts.len()
        );
        let mut scripts = self.scripts;
        for (s, t) in scripts.iter_mut().zip(tails) {
            s.extend(t);
        }
        Self::new(scripts)
    }

    /// The same scenario with CPU `a` and CPU `b` swapping scripts (the
    /// symmetry check: which CPU plays which role).
    ///
    /// # Panics
    /// If `a` or `b` is not a CPU of the scenario.
    pub fn swap_cpus(mut self, a: usize, b: usize) -> Self {
        self.scripts.swap(a, b);
        self
    }

    /// Number of CPUs.
    pub fn nr_cpus(&self) -> usize {
        self.scripts.len()
    }
}

/// Counters of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlbStats {
    /// Flushes of `M` (including mprotect's and the pending-batch flushes).
    pub flushes: usize,
    /// IPIs sent by flushes (and reclaim batches).
    pub flush_ipis: usize,
    /// CPUs of the cpumask a flush did not IPI because they were lazy (the
    /// IPIs lazy TLB saves).
    pub ipis_skipped_lazy: usize,
    /// Unlazy switches back into `M` that had to flush (fell behind).
    pub unlazy_flushes: usize,
    /// Unlazy switches back into `M` that kept their TLB.
    pub unlazy_keeps: usize,
    /// `flush_tlb_batched_pending()` calls that flushed.
    pub pending_flushes: usize,
}
