//! The `bug_<what>` switches' implementation, below the protocols (which
//! import it from here, never from the checker layer above them); the
//! public face and its docs are [`crate::check::bugs`].

use crate::sync::Ordering;
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

    /// `order`, or `Relaxed` when `bug` is on: an ordering weakened by a
    /// `bug_relaxed_*` variant. Always `order` in production builds.
    #[inline(always)]
    pub fn weaken(&self, bug: B, order: Ordering) -> Ordering {
        if self.is(bug) {
            Ordering::Relaxed // BUG
        } else {
            order
        }
    }

    /// Runs the barrier `fence` unless `bug` is on: a barrier left out by a
    /// `bug_no_*_mb` variant. Always runs it in production builds.
    #[inline(always)]
    pub fn fence_unless(&self, bug: B, fence: impl FnOnce()) {
        if !self.is(bug) {
            fence();
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
