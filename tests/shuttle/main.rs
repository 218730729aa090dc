//! Shuttle runs of every scheme on big simulated machines: 8 CPUs, 4 mms,
//! random workloads of 240+ operations with kernel threads, exits and IPIs.
//!
//! Run with `RUSTFLAGS="--cfg lazymm_shuttle" cargo test --release --test shuttle`.
//! `LAZYMM_SHUTTLE_ITERS` sets the iterations per scheduler (default 1000;
//! `ci/deep.sh` runs 100x more). Shuttle sees every atomic as SeqCst, so it
//! finds interleaving and protocol bugs at scale, not ordering bugs (loom's
//! job). A failing run prints `schedule: "..."`; paste it into a
//! `shuttle::replay` test to keep it as a regression (see `replay.rs`).
#![cfg(all(lazymm_shuttle, not(loom)))]

mod cached;
mod common;
mod deferred;
mod external;
mod hazard;
mod idle;
mod loaded;
mod rcu_mm;
mod recorded;
mod refcount;
mod replay;
mod shootdown;
mod tagged;
mod tlb;
mod walk;
mod world;
