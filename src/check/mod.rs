//! The checker surface: everything that exists to *verify* a protocol rather
//! than to run it in a kernel. A kernel needs none of it.
//!
//! * [`bugs`] — [`BugSwitch`](bugs::BugSwitch), the `bug_<what>` variants of
//!   the shipping code (compiled in only under `--cfg loom`,
//!   `--cfg lazymm_shuttle` or the `bug-variants` feature).
//! * [`sync`] — the atomics facade every protocol is written against: loom's
//!   atomics under `--cfg loom`, shuttle's under `--cfg lazymm_shuttle`,
//!   `core`'s otherwise; its `thread` module gives the checkers' threads,
//!   and [`CHECKED`](sync::CHECKED) says whether a checker is in use.
//! * [`model`] (feature `model`) — the simulated machines (lazy mm, TLB,
//!   walkers), their oracles, and [`model::harness`], which runs a scheme of
//!   your own under loom or shuttle in one call.
//! * [`trace`] (feature `model`) — real workloads: a Linux trace parsed,
//!   reconstructed as the lazy-mm story, checked against ground truth, and
//!   replayed through the schemes ([`model::ReplayPlan`]).

pub mod bugs;
#[cfg(feature = "model")]
pub mod model;
#[cfg(feature = "model")]
pub mod trace;

/// The atomics facade (re-exported from the crate's private atomics layer,
/// the only file that names the checkers or `core`'s atomics).
pub mod sync {
    pub use crate::sync::*;
}
