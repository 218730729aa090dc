//! Real workloads: what a running Linux kernel did, reconstructed as the
//! lazy-mm story the schemes care about, and replayed through them.
//!
//! The cost debate between the schemes ("an xchg on every unlazy vs one
//! IPI per exit") hangs on three facts about workloads: how many lazy round
//! trips a process makes, how many return to the same mm, and how many
//! CPUs still sit lazily on an mm when it dies. Linux's tracepoints tell
//! them:
//!
//! 1. **Recording** (`examples/record`, as root): `sched:sched_switch`,
//!    `task:task_newtask`, `sched:sched_process_exec`/`_exit`/`_free`,
//!    `tlb:tlb_flush` and `ipi:ipi_send_cpu`/`_cpumask` in a tracefs
//!    instance of its own, streamed from `trace_pipe` into a text file
//!    whose header ([`mod@parse`]'s docs) lists the tasks alive at the start and
//!    the events the ring buffer lost.
//! 2. **Parsing** ([`parse::parse`]): one [`Record`] per line; bad input is an
//!    [`Error`] naming the line and what was expected, never a panic.
//! 3. **The story** ([`Story`]): per CPU, which mm is loaded and whether
//!    lazily; unlazies to the same and to another mm; every mm's birth
//!    (fork, exec) and death (its last task exits or execs away) and the
//!    CPUs lazy on it then; Linux's own remote TLB flush IPIs by reason.
//!    The rules are in [`story`]'s docs.
//! 4. **Ground truth** ([`truth`]): a workload that knows its own numbers
//!    (forks, threads, vforks, execs, exits, births, deaths, and each
//!    pinned thread's context switches from `getrusage`) writes them to
//!    `trace_marker`; [`truth::check`] compares them with the story.
//! 5. **Replay** ([`crate::check::model::ReplayPlan`]): the story's per-CPU
//!    stream as machine operations, run through a scheme under the
//!    machine's oracle and counted by the scheme's own logic (shared-line
//!    RMWs, IPIs). `examples/compare --trace FILE` prices every scheme on it.

pub mod parse;
pub mod story;
pub mod truth;

pub use parse::{parse, Error, Event, Parsed, Record};
pub use story::{Counts, MmKey, Step, StepKind, Story};
