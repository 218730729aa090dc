#![cfg(all(lazymm_shuttle, not(loom)))]
