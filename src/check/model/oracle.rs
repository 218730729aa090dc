//! The lazy-mm machine's oracle and its `Kernel` side: every use of an mm
//! is checked against its free (a flag, and under loom a race on the mm's
//! body), every free against the CPUs that still have the mm loaded, every
//! count against going negative, and each execution's end against leaks.
//! A failure panics with the report of [`super::report`].

use super::report::{Context, Event, Hook};
use super::{Ipi, Machine, MachineBug, MmId, MAX_CPUS};
use crate::cpu::{CpuId, CpuSet};
use crate::lazy::{Kernel, LazyMm};
use crate::sync::Ordering::*;
use std::format;

impl<S: LazyMm + Send + Sync + 'static> Machine<S> {
    pub(super) fn free_mm(&self, cpu: CpuId, mm: MmId) {
        let m = self.mm(mm);
        m.events.note_with(cpu, || Event::Frees {
            within: self.cpu(cpu).hooks.raw(),
        });
        if m.freed.add(1) != 0 {
            self.fail(Some(cpu), Some(mm), format!("double free of {mm} on {cpu}"));
        }
        if m.torn_down.get() == 0 {
            self.fail(
                Some(cpu),
                Some(mm),
                format!("use-after-free of {mm}: freed on {cpu} while mm_users > 0 (its tasks still use it)"),
            );
        }
        for (c, other) in self.cpus.iter().enumerate() {
            let loaded = if self.visible_loads {
                // Relaxed: a free that is not ordered after a CPU's switch
                // away may read the old value, and then the CPU's walks of
                // the mm are not ordered before the free either.
                other.loaded_word.load(Relaxed)
            } else {
                other.loaded.get()
            };
            if loaded == mm.0 as usize {
                self.fail(
                    Some(cpu),
                    Some(mm),
                    format!(
                        "use-after-free of {mm}: freed on {cpu} while cpu{c} still has it loaded"
                    ),
                );
            }
        }
        self.count(cpu, |s| s.frees += 1);
        loom_race(|| {
            // SAFETY: the free is the one writer of the body; a use that is
            // not ordered before it is a data race that loom reports.
            m.body.with_mut(|b| unsafe { (*b).freed = true })
        })
        .unwrap_or_else(|loom| {
            self.fail(
                Some(cpu),
                Some(mm),
                format!("use-after-free of {mm}: {cpu} frees it after a use that is not ordered before the free (loom: {loom})"),
            )
        });
    }

    /// `cpu` loaded `next`'s page tables (the oracle's copy).
    pub(super) fn record_load(&self, cpu: CpuId, next: MmId) {
        self.cpu(cpu).loaded.set(next.0 as usize);
        if self.visible_loads {
            // Relaxed: an oracle value the checkers see (with_visible_loads).
            self.cpu(cpu).loaded_word.store(next.0 as usize, Relaxed);
        }
    }

    /// The hardware may walk the page tables `cpu` has loaded at any time.
    pub(super) fn touch(&self, cpu: CpuId) {
        let mm = self.state(cpu).loaded_mm;
        if mm != MmId::INIT {
            self.use_mm(cpu, mm);
        }
    }

    pub(super) fn use_mm(&self, cpu: CpuId, mm: MmId) {
        let m = self.mm(mm);
        if m.freed.get() != 0 {
            self.fail(
                Some(cpu),
                Some(mm),
                format!("use-after-free of {mm}: {cpu} uses it after it was freed"),
            );
        }
        let freed = loom_race(|| {
            // SAFETY: a read; the oracle checks it is ordered before the free.
            m.body.with(|b| unsafe { (*b).freed })
        })
        .unwrap_or_else(|loom| {
            self.fail(
                Some(cpu),
                Some(mm),
                format!(
                    "use-after-free of {mm}: {cpu} uses it, unordered with its free (loom: {loom})"
                ),
            )
        });
        if freed {
            self.fail(
                Some(cpu),
                Some(mm),
                format!("use-after-free of {mm}: {cpu} reads a freed body"),
            );
        }
    }

    /// `__mmdrop()`: the scheme's final drop, then the free.
    pub(super) fn final_drop_and_free(&self, cpu: CpuId, mm: MmId) {
        self.hook(cpu, Hook::Mmdrop, None, || {
            let shootdowns = self.shootdowns(cpu);
            self.hook(cpu, Hook::FinalDrop, Some(mm), || {
                self.scheme.final_drop(self, cpu, mm)
            });
            // The scheme's waits (all in its final drop) are over.
            self.cpu(cpu).doorbell.spun_out(cpu);
            if self.shootdowns(cpu) == shootdowns {
                self.count(cpu, |s| s.frees_without_shootdown += 1);
            }
            self.free_mm(cpu, mm);
        });
    }

    fn shootdowns(&self, cpu: CpuId) -> u64 {
        // SAFETY: only `cpu`'s own thread touches its counters.
        self.cpu(cpu).stats.with(|s| unsafe { (*s).shootdowns })
    }

    /// `mmdrop_sched()`: `mm_count` reached 0 with interrupts off; the final
    /// drop waits for this CPU's next interrupts-enabled point.
    fn defer_final_drop(&self, cpu: CpuId, mm: MmId) {
        self.mm(mm).events.note(cpu, Event::Deferred);
        self.count(cpu, |s| s.deferred_drops += 1);
        // SAFETY: only `cpu`'s own thread touches its deferred list, and no
        // reference escapes the closure.
        let full = self
            .cpu(cpu)
            .deferred
            .with_mut(|d| unsafe { (*d).defer(mm) }.is_err());
        if full {
            self.fail(
                Some(cpu),
                Some(mm),
                format!("{cpu} deferred more final drops than its list holds"),
            );
        }
    }

    /// An interrupts-enabled point: runs the final drops this CPU deferred.
    pub(super) fn drain_deferred(&self, cpu: CpuId) {
        if !self.defer_drops {
            return;
        }
        loop {
            // SAFETY: as in `defer_final_drop`; the list is taken out before
            // any final drop runs (which may defer again).
            let batch: std::vec::Vec<MmId> = self
                .cpu(cpu)
                .deferred
                .with_mut(|d| unsafe { (*d).drain() }.collect());
            if batch.is_empty() || self.bug.is(MachineBug::DeferredLost) {
                return;
            }
            for mm in batch {
                self.final_drop_and_free(cpu, mm);
            }
        }
    }

    /// Runs scheme hook `h` on `cpu` (for `mm`'s event log), recording it
    /// on the CPU's hook stack for failure reports.
    pub(super) fn hook<R>(
        &self,
        cpu: CpuId,
        h: Hook,
        mm: Option<MmId>,
        f: impl FnOnce() -> R,
    ) -> R {
        if let Some(i) = mm.and_then(MmId::index) {
            self.mms[i].events.note(cpu, Event::Hook(h));
        }
        let stack = &self.cpu(cpu).hooks;
        stack.push(h);
        let r = f();
        stack.pop();
        r
    }

    /// The oracle fires: panics with `line` and the report around it
    /// (scheme, scenario, the hooks `cpu` is inside, `mm`'s recent events,
    /// the replay line).
    #[cold]
    #[track_caller]
    pub(super) fn fail(
        &self,
        cpu: Option<CpuId>,
        mm: Option<MmId>,
        line: std::string::String,
    ) -> ! {
        let ctx = Context {
            scheme: S::NAME,
            scenario: self.scenario.label(),
            cpu: cpu.map(|c| (c, &self.cpu(c).hooks)),
            mm: mm
                .and_then(|m| m.index().map(|i| (m, i)))
                .map(|(m, i)| (format!("{m}"), &self.mms[i].events)),
            replay: self.replay.as_deref(),
        };
        panic!("{}", ctx.report(&line))
    }

    /// End-of-execution checks: every mm freed exactly once (no leak).
    /// Call after every CPU thread has finished ([`finish`](Self::finish) does).
    pub fn check_end(&self) {
        for (i, m) in self.mms.iter().enumerate() {
            match m.freed.get() {
                1 => {}
                0 => self.fail(
                    None,
                    Some(MmId::new(i)),
                    format!(
                        "leak: {} was never freed (mm_users {}, mm_count {})",
                        MmId::new(i),
                        m.users.load(Relaxed),
                        m.count.load(Relaxed)
                    ),
                ),
                n => self.fail(
                    None,
                    Some(MmId::new(i)),
                    format!("double free of {}: freed {n} times", MmId::new(i)),
                ),
            }
        }
    }
}

/// Runs an access to a tracked object's body (the walker machine's page
/// tables); a data race with the free that loom reports panics as the
/// oracle's use-after-free.
pub(super) fn race_is_uaf<R>(
    obj: impl core::fmt::Display,
    cpu: CpuId,
    what: &str,
    access: impl FnOnce() -> R,
) -> R {
    loom_race(access)
        .unwrap_or_else(|loom| panic!("use-after-free of {obj}: {cpu} {what} (loom: {loom})"))
}

/// Runs an access to an mm's body; if loom reports it as a data race with the
/// free ("Causality violation"), returns loom's message so that the oracle
/// reports it as a use-after-free.
fn loom_race<R>(access: impl FnOnce() -> R) -> Result<R, std::string::String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(access)) {
        Ok(r) => Ok(r),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<std::string::String>()
                .map(|s| s.as_str())
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if msg.contains("Causality violation") {
                return Err(msg.trim().into());
            }
            std::panic::resume_unwind(payload)
        }
    }
}

impl<S: LazyMm + Send + Sync + 'static> Kernel for Machine<S> {
    type Mm = MmId;
    /// The scheme's CPUs, at most [`MAX_CPUS`]: the machine is sized at run
    /// time by its scenario, which [`Machine::new`] checks against this.
    const NR_CPUS: usize = if S::CPUS < MAX_CPUS {
        S::CPUS
    } else {
        MAX_CPUS
    };
    type CpuMask = CpuSet<1>;

    fn mmgrab(&self, cpu: CpuId, mm: MmId) {
        self.use_mm(cpu, mm);
        // atomic_inc(): unordered, the caller already holds a reference.
        let old = self.mm(mm).count.fetch_add(1, Relaxed);
        self.count(cpu, |s| s.shared_rmws += 1);
        self.mm(mm).events.note_with(cpu, || Event::Mmgrab {
            old,
            within: self.cpu(cpu).hooks.raw(),
        });
        if old == 0 {
            self.fail(
                Some(cpu),
                Some(mm),
                format!("use-after-free of {mm}: mmgrab on {cpu} with mm_count 0"),
            );
        }
    }

    fn mmdrop(&self, cpu: CpuId, mm: MmId) {
        self.use_mm(cpu, mm);
        // atomic_dec_and_test(): release so our uses happen before the free,
        // acquire on the last so the free happens after everyone's.
        let order = match self.bug.get() {
            Some(MachineBug::MmdropNoRelease) => Acquire, // BUG
            Some(MachineBug::MmdropNoAcquire) => Release, // BUG
            _ => AcqRel,
        };
        let old = self.mm(mm).count.fetch_sub(1, order);
        self.count(cpu, |s| s.shared_rmws += 1);
        self.mm(mm).events.note_with(cpu, || Event::Mmdrop {
            old,
            within: self.cpu(cpu).hooks.raw(),
        });
        if old == 0 {
            self.fail(
                Some(cpu),
                Some(mm),
                format!("mm_count of {mm} went negative"),
            );
        }
        if old == 1 {
            let irqs_off = self.cpu(cpu).hooks.innermost().is_some_and(Hook::irqs_off);
            if self.defer_drops && irqs_off {
                self.defer_final_drop(cpu, mm);
            } else {
                self.final_drop_and_free(cpu, mm);
            }
        }
    }

    fn mm_users(&self, mm: MmId) -> usize {
        // Acquire: pairs with mmput's release decrement.
        self.mm(mm).users.load(Acquire)
    }

    fn mm_cpumask(&self, mm: MmId) -> CpuSet<1> {
        // Acquire: pairs with the release clear in switch_mm.
        let order = self.bug.weaken(MachineBug::RelaxedCpumaskSnapshot, Acquire);
        self.mm(mm).cpumask.snapshot(self.nr_cpus(), order)
    }

    fn shoot_lazies(&self, cpu: CpuId, cpus: &CpuSet<1>, mm: MmId) {
        self.count(cpu, |s| s.shootdowns += 1);
        self.send_ipis(cpu, cpus, Ipi::ShootLazy(mm));
    }

    fn mmgrab_many(&self, cpu: CpuId, mm: MmId, n: usize) {
        if n == 0 {
            return;
        }
        self.use_mm(cpu, mm);
        // atomic_add(): unordered, the caller holds a reference.
        let old = self.mm(mm).count.fetch_add(n, Relaxed);
        self.count(cpu, |s| s.shared_rmws += 1);
        if old == 0 {
            self.fail(
                Some(cpu),
                Some(mm),
                format!("use-after-free of {mm}: mmgrab_many on {cpu} with mm_count 0"),
            );
        }
    }

    fn mmdrop_many(&self, cpu: CpuId, mm: MmId, n: usize) {
        if n == 0 {
            return;
        }
        self.use_mm(cpu, mm);
        // Release: our uses happen before whoever makes the final drop.
        let old = self.mm(mm).count.fetch_sub(n, Release);
        self.count(cpu, |s| s.shared_rmws += 1);
        if old <= n {
            self.fail(
                Some(cpu),
                Some(mm),
                format!("mmdrop_many of {n} on {mm} would free it (mm_count was {old})"),
            );
        }
    }

    fn note_shared_rmw(&self, cpu: CpuId, n: usize) {
        self.count(cpu, |s| s.shared_rmws += n as u64);
    }

    /// A scheme calls this once per round of its wait loops: besides
    /// serving the mailbox, the liveness check (the wait board's livelock
    /// line) runs here under the checkers.
    fn serve_ipis(&self, cpu: CpuId) {
        Machine::serve_ipis(self, cpu);
        if !self.inline_ipis {
            let me = self.cpu(cpu);
            if let Some(line) = me.doorbell.spin(cpu, || me.hooks.describe()) {
                self.fail(Some(cpu), None, line);
            }
        }
    }
}
