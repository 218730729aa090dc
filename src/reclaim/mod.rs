//! The reclamation cores the protocols share: per-CPU hazard pointers
//! ([`hazard`], Desnoyers' `hazptr`) and a small RCU whose idle CPUs are in
//! an extended quiescent state ([`rcu`]). The lazy-mm schemes built on them
//! are [`crate::lazy::hazard`] and [`crate::lazy::rcu_mm`]; the walker sync
//! of [`crate::walk`] frees page tables through [`rcu`].

pub mod hazard;
pub mod rcu;
