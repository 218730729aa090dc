//! Batched unmap flushes and `flush_tlb_batched_pending()` (Gorman 2017,
//! Huang Ying 2021, Roberts 2025).
//!
//! # The problem
//!
//! Reclaim clears a PTE under its page-table lock (PTL), records that a
//! flush is pending, and releases the PTL **without flushing**: the flush
//! comes later, batched over many pages (`try_to_unmap_flush()`). Until then
//! other CPUs may still hold the old translation. A path that changes PTEs
//! under the same PTL — mprotect, munmap, mremap, madvise — sees the PTE
//! already cleared, skips its own flush, and returns while a stale writable
//! entry still exists (Nadav Amit's race, fixed by Mel Gorman in
//! `3ea277194daa`): every such path must call
//! [`FlushBatched::flush_pending`] right after taking the PTL.
//!
//! # The pending word ([`FlushBatched`])
//!
//! Gorman's flag was a `bool`: set by reclaim, cleared by `flush_pending`
//! after its flush. Reclaim under one PTL can set it while `flush_pending`
//! under another (split PTLs) is between its flush and its clear — the
//! clear loses the new pending flush (`bug_bool_flag`, [`Bug::BoolFlag`]).
//! Huang Ying's fix (mainline `5ee2fa2f0636`) counts: bits 0–14 count
//! pending batches, bits 16–30 the count a flush covered; `flush_pending`
//! flushes if they differ and then sets flushed = pending with a cmpxchg
//! against the word it read, so a concurrent increment makes the cmpxchg
//! fail and the pending flush stays visible. When pending exceeds half its
//! range the next increment resets the word to `pending = 1, flushed = 0`
//! (still "differ": a flush stays pending).
//!
//! # Taking the PTL ([`PteLock::lock_for_change`])
//!
//! The Rust API makes the call impossible to forget: a PTE-changing path
//! takes the PTL through [`PteLock::lock_for_change`], which runs
//! `flush_pending` every time — also when the path drops and retakes the
//! lock, the case Ryan Roberts fixed in 2025 for `madvise_free_pte_range()`
//! and `madvise_cold_or_pageout_pte_range()`. The variants
//! `bug_no_flush_pending` ([`Bug::NoFlushPending`], the kernel before
//! 2017) and `bug_no_recheck_on_relock` ([`Bug::NoRecheckOnRelock`], before
//! 2025) switch the call off.
//!
//! # Nadav Amit's four questions (LKML, December 2020)
//!
//! 1. *What prevents a concurrent `flush_tlb_batched_pending()` from
//!    clearing a deferred-flush indication just set?* Nothing, with the
//!    `bool`: `tests/loom/tlb.rs::bug_bool_flag` is the lost flush, two
//!    CPUs, a stale entry used after mprotect returns. With the counters,
//!    the cmpxchg fails instead (`batched_split_ptl` passes).
//! 2. *Why is the write to `tlb_flush_batched` not `WRITE_ONCE()`?* It is a
//!    racy plain access (KCSAN reported it); in Rust it cannot be anything
//!    but an atomic. Its ordering needs nothing beyond `Relaxed`: a path
//!    that must see the pending flush is one that sees the cleared PTE,
//!    and both happen under the same PTL, whose release/acquire orders the
//!    increment too. The models use a `Relaxed` increment and pass.
//! 3. *`smp_wmb()` instead of `barrier()`?* No hardware barrier is needed,
//!    for the same reason: the PTE clear and the increment are published
//!    together by the PTL's release. (The `barrier()` only kept the
//!    compiler from hoisting the flag store above the PTE clear, which
//!    the PTL already forbids across CPUs.)
//! 4. *Why two deferred-flush mechanisms?* `tlb_flush_pending` counts
//!    *in-progress* flushes of paths that hold `mmap_lock` and will flush
//!    before they return (mmu_gather); `tlb_flush_batched` records flushes
//!    that reclaim *deferred* past its PTL with no `mmap_lock` and no bound
//!    on when they happen. One is "wait or force a flush if nested", the
//!    other "flush now on its behalf". (Design answer; no model.)
//!
//! Evidence (`tests/loom/tlb.rs`; VERIFICATION.md has the bounds and
//! execution counts): reclaim vs mprotect and vs madvise and the split-PTL
//! race pass; `bug_no_flush_pending`, `bug_no_recheck_on_relock` and
//! `bug_bool_flag` fail with "stale TLB entry"; the overflow reset is a
//! proptest (`tests/batched.rs`).
//!
//! Source: Linux `mm/rmap.c` and `include/linux/mm_types.h`
//! (`tlb_flush_pending`, `inc_tlb_flush_pending()`).

use crate::bugs::BugSwitch;
use crate::sync::{AtomicBool, AtomicU32, Ordering::*};

/// Known-bad variants.
#[cfg_attr(not(lazymm_bugs), doc(hidden))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// Gorman's original `bool tlb_flush_batched`.
    BoolFlag,
    /// No `flush_tlb_batched_pending()` when taking the PTL (before 2017).
    NoFlushPending,
    /// Retaking a dropped PTL without calling it again (before 2025).
    NoRecheckOnRelock,
}

/// Bits 16–30: the pending count a completed flush covered.
pub const FLUSHED_SHIFT: u32 = 16;
/// Bits 0–14: the pending count.
pub const PENDING_MASK: u32 = (1 << (FLUSHED_SHIFT - 1)) - 1;
/// Above this, the next increment resets the word.
pub const PENDING_LARGE: u32 = PENDING_MASK / 2;

/// `mm->tlb_flush_batched`.
#[derive(Debug)]
pub struct FlushBatched {
    word: AtomicU32,
    bug: BugSwitch<Bug>,
}

impl Default for FlushBatched {
    fn default() -> Self {
        Self::new()
    }
}

impl FlushBatched {
    crate::const_fn! {
        /// Nothing pending.
        pub fn new() -> Self {
            Self { word: AtomicU32::new(0), bug: BugSwitch::off() }
        }
    }

    /// The word with a known bug switched on (checker builds only).
    #[cfg(lazymm_bugs)]
    pub fn with_bug(bug: Bug) -> Self {
        let mut b = Self::new();
        b.bug = BugSwitch::on(bug);
        b
    }

    fn bug(&self) -> BugSwitch<Bug> {
        self.bug
    }

    /// `set_tlb_ubc_flush_pending()`'s count, after the PTE clear and the
    /// batch update, with the PTL held.
    pub fn set_pending(&self) {
        if self.bug.is(Bug::BoolFlag) {
            // Relaxed: published with the PTE clear by the PTL's release.
            self.word.store(1, Relaxed);
            return;
        }
        // Relaxed throughout: the PTL orders it (module docs, question 2).
        let mut batch = self.word.load(Relaxed);
        loop {
            if batch & PENDING_MASK > PENDING_LARGE {
                // Overflow: pending = 1, flushed = 0 (a flush stays pending).
                match self.word.compare_exchange(batch, 1, Relaxed, Relaxed) {
                    Ok(_) => return,
                    Err(now) => batch = now,
                }
            } else {
                self.word.fetch_add(1, Relaxed);
                return;
            }
        }
    }

    /// Whether a flush is pending (for tests and assertions).
    pub fn is_pending(&self) -> bool {
        let w = self.word.load(Relaxed);
        if self.bug.is(Bug::BoolFlag) {
            return w != 0;
        }
        w & PENDING_MASK != w >> FLUSHED_SHIFT
    }

    /// `flush_tlb_batched_pending()`, with the PTL held: if a batched flush
    /// is pending, runs `flush` (a full flush of the mm) and marks what it
    /// covered. Returns whether it flushed.
    pub fn flush_pending(&self, flush: impl FnOnce()) -> bool {
        if self.bug.is(Bug::BoolFlag) {
            if self.word.load(Relaxed) == 0 {
                return false;
            }
            flush();
            self.word.store(0, Relaxed);
            return true;
        }
        let batch = self.word.load(Relaxed);
        let pending = batch & PENDING_MASK;
        let flushed = batch >> FLUSHED_SHIFT;
        if pending == flushed {
            return false;
        }
        flush();
        // Relaxed: a failure means a newer pending flush arrived meanwhile,
        // which must stay pending ("leave as is").
        let _ = self.word.compare_exchange(
            batch,
            pending | (pending << FLUSHED_SHIFT),
            Relaxed,
            Relaxed,
        );
        true
    }
}

/// A page-table lock (split PTL: one per page-table page).
#[derive(Debug)]
pub struct PteLock {
    locked: AtomicBool,
}

impl Default for PteLock {
    fn default() -> Self {
        Self::new()
    }
}

impl PteLock {
    crate::const_fn! {
        /// Unlocked.
        pub fn new() -> Self {
            Self { locked: AtomicBool::new(false) }
        }
    }

    /// Takes the lock if free.
    pub fn try_lock(&self) -> bool {
        // Acquire: pairs with `unlock`'s release (the previous holder's PTE
        // writes and pending count are visible).
        self.locked
            .compare_exchange(false, true, Acquire, Relaxed)
            .is_ok()
    }

    /// Takes the lock, calling `wait` while it is busy: for reclaim, which
    /// defers its flush rather than running pending ones.
    pub fn lock(&self, mut wait: impl FnMut()) {
        while !self.try_lock() {
            wait();
        }
    }

    /// Releases the lock.
    ///
    /// # Panics
    /// If it was not held.
    pub fn unlock(&self) {
        // Release: pairs with `try_lock`'s acquire. (A compare-exchange, not
        // a swap: loom's swap may read a stale store, tokio-rs/loom#254.)
        let was = self.locked.compare_exchange(true, false, Release, Relaxed);
        assert!(was.is_ok(), "PTE lock released while not held");
    }

    /// Whether the lock is held now (a hint for waiters).
    pub fn is_locked(&self) -> bool {
        self.locked.load(Relaxed)
    }

    /// Takes the lock for a PTE-changing path (mprotect, munmap, mremap,
    /// madvise), calling `wait` while it is busy, then runs
    /// [`FlushBatched::flush_pending`] with `flush`. `relock` says the path
    /// dropped this lock and takes it again (the check is needed again).
    /// Returns whether it flushed.
    pub fn lock_for_change(
        &self,
        batched: &FlushBatched,
        relock: bool,
        wait: impl FnMut(),
        flush: impl FnOnce(),
    ) -> bool {
        self.lock(wait);
        let bug = batched.bug();
        if bug.is(Bug::NoFlushPending) || (relock && bug.is(Bug::NoRecheckOnRelock)) {
            return false;
        }
        batched.flush_pending(flush)
    }
}
