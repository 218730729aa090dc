//! What the bench binaries share.

use lazymm::lazy::MmHandle;

/// A bench "mm": a pointer-like handle (the address of a static-ish struct).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Mm(pub usize);

impl MmHandle for Mm {
    fn to_word(self) -> usize {
        self.0 << 3
    }
    fn from_word(w: usize) -> Self {
        Mm(w >> 3)
    }
}
