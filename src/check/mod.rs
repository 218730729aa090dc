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
//! * `model` (feature `model`) — the simulated machines (lazy mm, TLB,
//!   walkers), their oracles, and `model::harness`, which runs a scheme of
//!   your own under loom or shuttle in one call.
//! * `trace` (feature `model`) — real workloads: a Linux trace parsed,
//!   reconstructed as the lazy-mm story, checked against ground truth, and
//!   replayed through the schemes (`model::ReplayPlan`).

pub mod bugs;
#[cfg(feature = "model")]
pub mod model;
#[cfg(feature = "model")]
pub mod trace;

/// The atomics facade, re-exported from the crate's private atomics layer
/// (the only file that names the checkers or `core`'s atomics).
///
/// A deliberate, small public surface for a kernel's own state that is
/// checked together with a scheme: the atomics and `Ordering`, `fence`,
/// [`smp_mb`](sync::smp_mb), [`spin_loop`](sync::spin_loop), `UnsafeCell`,
/// [`CHECKED`](sync::CHECKED), the statics macros
/// ([`crate::lazymm_static!`]), and `thread` (`spawn`, `Arc`: the threads
/// of the build's checker, for a test that runs a kernel's CPUs). The
/// oracle's uninstrumented words and the checkers' drivers stay private: to
/// run your own code under the build's checker, call
/// `model::harness::explore`
/// (feature `model`).
pub mod sync {
    pub use crate::sync::*;
}
