//! Switches that turn the shipping code into its known-bad variants.
//!
//! Every protocol keeps its historical bugs and its one-step-weaker orderings
//! as `bug_<what>` variants of the *same* code: a [`BugSwitch`] field that a
//! test flips. A model that only ever passes proves nothing; each variant has
//! a loom or shuttle test that must fail with the oracle's message.
//!
//! The switches exist only in checker builds (`--cfg loom`,
//! `--cfg lazymm_shuttle`) and with the test-only `bug-variants` feature —
//! one cfg, `lazymm_bugs`, that the build script sets for the three. In
//! every other build a [`BugSwitch`] is a zero-sized type whose
//! [`is`](BugSwitch::is) is the constant `false`, so the bad branches are
//! compiled out of kernels and benchmarks.

pub use crate::bugs::BugSwitch;
