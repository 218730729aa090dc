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

use core::marker::PhantomData;

/// One optional bug of type `B` (an enum of a protocol's `bug_` variants).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BugSwitch<B: Copy + Eq> {
    #[cfg(lazymm_bugs)]
    on: Option<B>,
    _bug: PhantomData<B>,
}

impl<B: Copy + Eq> Default for BugSwitch<B> {
    fn default() -> Self {
        Self::off()
    }
}

impl<B: Copy + Eq> BugSwitch<B> {
    /// The correct protocol.
    pub const fn off() -> Self {
        Self {
            #[cfg(lazymm_bugs)]
            on: None,
            _bug: PhantomData,
        }
    }

    /// The protocol with `bug` switched on (checker and `bug-variants` builds only).
    #[cfg(lazymm_bugs)]
    pub const fn on(bug: B) -> Self {
        Self {
            on: Some(bug),
            _bug: PhantomData,
        }
    }

    /// Whether `bug` is switched on; the constant `false` in production builds.
    #[inline(always)]
    pub fn is(&self, bug: B) -> bool {
        #[cfg(lazymm_bugs)]
        {
            self.on == Some(bug)
        }
        #[cfg(not(lazymm_bugs))]
        {
            let _ = bug;
            false
        }
    }

    /// The bug that is on, if any.
    pub fn get(&self) -> Option<B> {
        #[cfg(lazymm_bugs)]
        {
            self.on
        }
        #[cfg(not(lazymm_bugs))]
        {
            None
        }
    }
}
