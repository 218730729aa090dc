//! Exhaustive (bounded) loom models of every scheme on the simulated machine.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test --test loom` (the dev profile
//! is optimised; `--release` is as fast).
//! `LOOM_MAX_PREEMPTIONS` overrides each model's recorded preemption bound
//! (`ci/deep.sh` raises it). Each model prints its executions and time.
#![cfg(loom)]

#[macro_use]
mod common;
mod cached;
mod contract;
mod deferred;
#[cfg(all(feature = "epoch", crossbeam_loom))]
mod epoch;
mod external;
#[cfg(feature = "haphazard")]
mod haphazard;
mod hazard;
mod idle;
mod litmus;
mod loaded;
mod rcu_gp;
mod rcu_mm;
mod refcount;
mod shootdown;
mod tagged;
mod tlb;
mod tlb_race;
mod tlb_tails;
mod walk;
mod world;
