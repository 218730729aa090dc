//! Failure reports of the lazy-mm machine: what a user sees when the oracle
//! fires. Beside the oracle's own line ("use-after-free of mm0: ..."), a
//! report names the scheme, the scenario, the hooks the failing CPU was
//! inside (outermost first), the mm's recent events (who loaded it, went
//! lazy, grabbed, dropped, freed it), and one line that replays the failure.
//!
//! The hook stack and the event log are oracle bookkeeping in
//! [`crate::sync::shadow`] words that no checker sees, so they add no
//! interleavings: loom's execution counts are unchanged. The event log is
//! kept only under the checkers ([`crate::sync::CHECKED`]), so the real-thread
//! runs of `examples/compare/` do not pay for it.

use super::MmId;
use crate::cpu::CpuId;
use crate::sync::shadow::{Log, Shadow};
use std::string::String;

/// Events kept per mm.
pub(super) const EVENTS_PER_MM: usize = 16;

/// What a CPU can be inside when the oracle fires: a scheme hook, or one of
/// the machine's kernel paths that call them (`__mmput()`, `__mmdrop()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Hook {
    EnterLazy = 1,
    TransferLazy,
    SwitchingMm,
    SwitchMm,
    LeaveLazy,
    MmUsersZero,
    FinalDrop,
    LazyShot,
    CpuDead,
    ShootLazyIpi,
    Mmput,
    Mmdrop,
}

impl Hook {
    const ALL: [Hook; 12] = [
        Hook::EnterLazy,
        Hook::TransferLazy,
        Hook::SwitchingMm,
        Hook::SwitchMm,
        Hook::LeaveLazy,
        Hook::MmUsersZero,
        Hook::FinalDrop,
        Hook::LazyShot,
        Hook::CpuDead,
        Hook::ShootLazyIpi,
        Hook::Mmput,
        Hook::Mmdrop,
    ];

    /// Whether the hook runs with interrupts off in a kernel (the `lazy`
    /// module's table; `mmdrop_lazy_tlb` counted as off, the stricter case).
    pub(super) fn irqs_off(self) -> bool {
        matches!(
            self,
            Hook::EnterLazy
                | Hook::TransferLazy
                | Hook::SwitchingMm
                | Hook::SwitchMm
                | Hook::LeaveLazy
                | Hook::LazyShot
                | Hook::ShootLazyIpi
        )
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Hook::EnterLazy => "mmgrab_lazy_tlb",
            Hook::TransferLazy => "transfer_lazy",
            Hook::SwitchingMm => "switching_mm",
            Hook::SwitchMm => "switched_mm",
            Hook::LeaveLazy => "mmdrop_lazy_tlb",
            Hook::MmUsersZero => "mm_users_zero",
            Hook::FinalDrop => "final_drop",
            Hook::LazyShot => "lazy_shot",
            Hook::CpuDead => "cpu_dead",
            Hook::ShootLazyIpi => "the shoot-lazy IPI handler",
            Hook::Mmput => "__mmput()",
            Hook::Mmdrop => "__mmdrop()",
        }
    }
}

/// A CPU's stack of hooks, one byte per level (innermost in the low byte);
/// deeper nesting than a word holds keeps the innermost levels.
#[derive(Debug, Default)]
pub(super) struct HookStack(Shadow);

impl HookStack {
    pub(super) fn push(&self, hook: Hook) {
        self.0.set((self.0.get() << 8) | hook as usize);
    }

    pub(super) fn pop(&self) {
        self.0.set(self.0.get() >> 8);
    }

    /// The hook the CPU is in now, if any.
    pub(super) fn innermost(&self) -> Option<Hook> {
        let b = self.0.get() & 0xff;
        b.checked_sub(1).and_then(|i| Hook::ALL.get(i).copied())
    }

    /// The stack as one word (for an event to keep).
    pub(super) fn raw(&self) -> usize {
        self.0.get()
    }

    /// "mmdrop_lazy_tlb > final_drop" (outermost first), or the scheduler.
    pub(super) fn describe(&self) -> String {
        describe_raw(self.0.get())
    }
}

/// A [`HookStack::raw`] word as "mmdrop_lazy_tlb > final_drop".
fn describe_raw(raw: usize) -> String {
    let mut v = raw;
    let mut names = std::vec::Vec::new();
    while v != 0 {
        let b = v & 0xff;
        names.push(Hook::ALL.get(b - 1).map_or("?", |h| h.name()));
        v >>= 8;
    }
    if names.is_empty() {
        return String::from("the machine's scheduler, in no scheme hook");
    }
    names.reverse();
    names.join(" > ")
}

/// What happened to an mm, for its event log. Plain values: the text is
/// made only when a report is printed, so a loom execution that passes pays
/// a few words per event, not a string.
#[derive(Clone, Copy, Debug)]
pub(super) enum Event {
    /// A scheme hook ran for the mm.
    Hook(Hook),
    /// The CPU loaded the mm in place of `from`.
    Loads { from: MmId },
    /// The CPU loaded `next` in place of the mm.
    Replaced { next: MmId },
    /// `exit_mm()` of the CPU's task of the mm.
    ExitMm,
    /// `mmput()`: `mm_users` went from `old`.
    Mmput { old: usize },
    /// `mmgrab()`: `mm_count` went from `old`, `within` the hooks of a
    /// [`HookStack::raw`] word (where the grab happened).
    Mmgrab { old: usize, within: usize },
    /// `mmdrop()`: `mm_count` went from `old`, `within` those hooks (where
    /// a wrong drop happened, before the free it causes).
    Mmdrop { old: usize, within: usize },
    /// `mmdrop_sched()`: the final drop waits for interrupts.
    Deferred,
    /// `__mmdrop()` frees it, `within` those hooks.
    Frees { within: usize },
    /// The CPU's task of the mm sleeps, to be woken on another CPU.
    Migrates,
}

impl core::fmt::Display for Event {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let to = |old: usize| old as isize - 1;
        match *self {
            Event::Hook(h) => f.write_str(h.name()),
            Event::Loads { from } => write!(f, "loads it (from {from})"),
            Event::Replaced { next } => write!(f, "loads {next} in its place"),
            Event::ExitMm => f.write_str("exit_mm()"),
            Event::Migrates => f.write_str("its task of the mm migrates away"),
            Event::Mmput { old } => write!(f, "mmput (mm_users {old} -> {})", to(old)),
            Event::Mmgrab { old, within } => {
                write!(
                    f,
                    "mmgrab (mm_count {old} -> {}){}",
                    old + 1,
                    inside(within)
                )
            }
            Event::Mmdrop { old, within } => {
                write!(
                    f,
                    "mmdrop (mm_count {old} -> {}){}",
                    to(old),
                    inside(within)
                )
            }
            Event::Deferred => f.write_str("defers its final drop (interrupts off)"),
            Event::Frees { within } => write!(f, "frees it{}", inside(within)),
        }
    }
}

/// " in mmdrop_lazy_tlb > final_drop" for a non-empty hook stack.
fn inside(raw: usize) -> String {
    if raw == 0 {
        String::new()
    } else {
        std::format!(" in {}", describe_raw(raw))
    }
}

/// One mm's recent events.
pub(super) struct Events(Log<(CpuId, Event)>);

impl Events {
    pub(super) fn new() -> Self {
        Self(Log::new(EVENTS_PER_MM))
    }

    /// Records `what` by `cpu` (only under the checkers).
    #[inline]
    pub(super) fn note(&self, cpu: CpuId, what: Event) {
        self.note_with(cpu, || what);
    }

    /// Records the event `what()` builds by `cpu`, building it only under
    /// the checkers (an event that reads oracle state costs the real-thread
    /// runs nothing).
    #[inline]
    pub(super) fn note_with(&self, cpu: CpuId, what: impl FnOnce() -> Event) {
        if crate::sync::CHECKED {
            self.0.push((cpu, what()));
        }
    }
}

/// Everything a report needs besides the oracle's line.
pub(super) struct Context<'a> {
    pub scheme: &'static str,
    pub scenario: &'a str,
    pub cpu: Option<(CpuId, &'a HookStack)>,
    pub mm: Option<(String, &'a Events)>,
    pub replay: Option<&'a str>,
}

impl Context<'_> {
    /// The full report: `line`, then one indented line per item.
    pub(super) fn report(&self, line: &str) -> String {
        use core::fmt::Write;
        let mut s = String::from(line);
        let _ = write!(s, "\n  scheme:   {}", self.scheme);
        let _ = write!(s, "\n  scenario: {}", self.scenario);
        if let Some((cpu, hooks)) = self.cpu {
            let _ = write!(s, "\n  hook:     on {cpu}: {}", hooks.describe());
        }
        if let Some((mm, events)) = &self.mm {
            let ev = events.0.snapshot();
            if ev.is_empty() {
                let _ = write!(
                    s,
                    "\n  {mm}'s events: not recorded outside loom and shuttle"
                );
            } else {
                let _ = write!(s, "\n  {mm}'s last {} events, oldest first:", ev.len());
                for (cpu, e) in ev {
                    let _ = write!(s, "\n    {cpu} {e}");
                }
            }
        }
        let _ = write!(
            s,
            "\n  replay:   {}",
            self.replay.unwrap_or(
                "run the scenario again on the machine (Machine::with_replay sets this line)"
            )
        );
        s
    }
}
