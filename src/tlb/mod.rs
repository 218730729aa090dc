//! TLB coherence: which CPUs a flush must reach, and when a CPU that missed
//! one catches up.
//!
//! * [`tlbgen`] — lazy TLB generations (van Riel / Lutomirski 2018): lazy
//!   CPUs skip flush IPIs and catch up by generation when they unlazy;
//!   page-table frees and LDT changes still IPI them.
//! * [`batched`] — batched unmap flushes and `flush_tlb_batched_pending()`
//!   (Gorman 2017, Huang Ying 2021): pending/flushed generations, so a
//!   flush never clears a newer pending one.
//!
//! The simulated TLB machine that checks both is
//! `lazymm::check::model::tlb` (feature `model`).

pub mod batched;
pub mod tlbgen;
