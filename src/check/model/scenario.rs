//! Workloads for the simulated machine: one script of operations per CPU.

use super::MmId;
use std::vec::Vec;

/// One step of a CPU's script.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Context switch to this CPU's user task of `mm` (one task per CPU and mm).
    User(MmId),
    /// Context switch to a kernel thread (it borrows the current mm lazily).
    Kthread,
    /// The current user task exits: `exit_mm()` (it becomes a lazy user of its
    /// own mm) and `mmput()`. The CPU runs the dead task until the next switch.
    Exit,
    /// The kernel thread running on this CPU idles, serving IPIs, until the
    /// last task of `mm` has finished exiting (its `mmput()`, and the final
    /// drop when that is where it happens, returned): Piggin's idle CPU that
    /// "left a lazy mm on another CPU", still lazy on the dying mm when the
    /// final drop runs. Only while a kernel thread runs and after this CPU's
    /// own task of `mm` exited; waits must not form a cycle between CPUs.
    /// Sequential drivers may step it only once the exit is done.
    IdleUntilExited(MmId),
    /// The kernel thread running on this CPU drops an `mm_count` reference
    /// on `mm` that it has held from the start — a `mmgrab()` user that is
    /// not a task of the mm (a `/proc` reader, io_uring's SQ thread). Each
    /// such op adds one to the mm's initial `mm_count`, so this may be the
    /// mm's last reference: the final drop then runs on a CPU that is not
    /// lazy on the mm, possibly after every CPU that used it moved on (what
    /// lets `rcu_mm` free through a completed grace period). Only while a
    /// kernel thread runs.
    MmDrop(MmId),
    /// Preemption that stays: the running user task (of another mm) keeps
    /// running in user mode — no switch, no lazy entry; interrupts on, so
    /// the CPU serves IPIs — until the last task of `mm` has finished
    /// exiting. A final drop of `mm` that needs this CPU to switch, go lazy
    /// or go down first can then never finish: the machine fails it as a
    /// livelock (a kernel sees the final drop spin as long as the CPU stays
    /// in user mode). Only while a user task of another mm runs; waits must
    /// not form a cycle between CPUs.
    UserUntilExited(MmId),
    /// Migration, first half: this CPU's task of `mm`, which must not be
    /// running (it was preempted or switched out), goes to sleep here to be
    /// woken on another CPU, whose script has the matching
    /// [`Op::Adopt`]. A release store (Linux: `finish_task()`'s release of
    /// `prev->on_cpu`): everything the task and this CPU did before happens
    /// before the task runs there. This CPU then has no task of `mm` and
    /// never switches to one again.
    Migrate(MmId),
    /// Migration, second half: this CPU waits, serving IPIs, until CPU
    /// `from` has migrated its task of `mm` (an acquire, pairing with
    /// [`Op::Migrate`]'s release: `try_to_wake_up()`'s wait on `on_cpu`),
    /// then the task is this CPU's task of `mm`; the next [`Op::User`]`(mm)`
    /// runs it. The CPU must have no task of `mm` of its own, live or
    /// exited.
    Adopt(MmId, usize),
}

/// A workload: how many mms there are, and one script per CPU.
///
/// Each pair (CPU, mm) that appears in an [`Op::User`] is one user task,
/// holding one `mm_users` reference from the start, unless the CPU adopted
/// that task from another CPU ([`Op::Adopt`]). Every task must exit
/// ([`Op::Exit`] while it runs) before its CPU's script ends, and a CPU never
/// switches back to a task that exited. After its script every CPU goes down
/// (switches to the kernel's own mm, dropping any lazy use), so that at the end
/// of a correct run every mm has been freed exactly once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    nr_mms: usize,
    scripts: Vec<Vec<Op>>,
    label: std::string::String,
}

impl Scenario {
    /// Checks and wraps the scripts; panics with "scenario error: ..." on a
    /// script that breaks the rules above.
    pub fn new(nr_mms: usize, scripts: Vec<Vec<Op>>) -> Self {
        assert!(!scripts.is_empty(), "scenario error: no CPUs");
        assert!(
            scripts.len() <= super::MAX_CPUS,
            "scenario error: more than {} CPUs",
            super::MAX_CPUS
        );
        let (mut migrated, mut adopted) = (Vec::new(), Vec::new());
        for (cpu, script) in scripts.iter().enumerate() {
            let mut live = std::collections::BTreeSet::new();
            let mut dead = std::collections::BTreeSet::new();
            let mut curr: Option<MmId> = None;
            for op in script {
                match *op {
                    Op::User(mm) => {
                        assert!(
                            mm.index().is_some_and(|i| i < nr_mms),
                            "scenario error: cpu{cpu} uses {mm}, which does not exist"
                        );
                        assert!(
                            !dead.contains(&mm),
                            "scenario error: cpu{cpu} switches to its task of {mm} after it exited"
                        );
                        live.insert(mm);
                        curr = Some(mm);
                    }
                    Op::Kthread => curr = None,
                    Op::IdleUntilExited(mm) => {
                        assert!(
                            curr.is_none(),
                            "scenario error: cpu{cpu} idles until {mm} exited while a user task runs"
                        );
                        assert!(
                            dead.contains(&mm),
                            "scenario error: cpu{cpu} idles until {mm} exited before its own task of {mm} exited"
                        );
                    }
                    Op::MmDrop(mm) => {
                        assert!(
                            mm.index().is_some_and(|i| i < nr_mms),
                            "scenario error: cpu{cpu} drops a reference on {mm}, which does not exist"
                        );
                        assert!(
                            curr.is_none(),
                            "scenario error: cpu{cpu} drops its reference on {mm} while a user task runs (a kernel thread holds it)"
                        );
                    }
                    Op::Exit => {
                        let mm = curr.take().unwrap_or_else(|| {
                            panic!("scenario error: cpu{cpu} exits without a user task")
                        });
                        live.remove(&mm);
                        dead.insert(mm);
                    }
                    Op::UserUntilExited(mm) => {
                        assert!(
                            curr.is_some_and(|c| c != mm),
                            "scenario error: cpu{cpu} stays in user mode until {mm} exited without a user task of another mm running"
                        );
                    }
                    Op::Migrate(mm) => {
                        assert!(
                            live.contains(&mm) && curr != Some(mm),
                            "scenario error: cpu{cpu} migrates its task of {mm}, which is not a live task it has switched out"
                        );
                        live.remove(&mm);
                        dead.insert(mm); // gone from this CPU for good
                        migrated.push((mm, cpu));
                    }
                    Op::Adopt(mm, from) => {
                        assert!(
                            !live.contains(&mm) && !dead.contains(&mm),
                            "scenario error: cpu{cpu} adopts a task of {mm} but has had one of its own"
                        );
                        assert!(
                            from != cpu && from < scripts.len(),
                            "scenario error: cpu{cpu} adopts a task of {mm} from cpu{from}"
                        );
                        live.insert(mm);
                        adopted.push((mm, from));
                    }
                }
            }
            assert!(
                live.is_empty(),
                "scenario error: cpu{cpu}'s tasks of {live:?} never exit"
            );
        }
        migrated.sort();
        adopted.sort();
        assert_eq!(
            migrated, adopted,
            "scenario error: every Migrate(mm) on a CPU needs exactly one Adopt(mm, that CPU) (migrated, adopted)"
        );
        let s = Self {
            nr_mms,
            scripts,
            label: std::string::String::from("unnamed scenario"),
        };
        for (i, n) in s.tasks_per_mm().into_iter().enumerate() {
            assert!(n > 0, "scenario error: {} has no task", MmId::new(i));
        }
        s
    }

    /// Number of mms.
    pub fn nr_mms(&self) -> usize {
        self.nr_mms
    }

    /// Number of CPUs.
    pub fn nr_cpus(&self) -> usize {
        self.scripts.len()
    }

    /// The script of `cpu`.
    pub fn script(&self, cpu: usize) -> &[Op] {
        &self.scripts[cpu]
    }

    /// Total number of operations.
    pub fn len(&self) -> usize {
        self.scripts.iter().map(Vec::len).sum()
    }

    /// Whether some script waits for an exit ([`Op::IdleUntilExited`],
    /// [`Op::UserUntilExited`]).
    pub fn has_idle_waits(&self) -> bool {
        self.scripts
            .iter()
            .flatten()
            .any(|op| matches!(op, Op::IdleUntilExited(_) | Op::UserUntilExited(_)))
    }

    /// Whether some script migrates a task ([`Op::Migrate`]).
    pub fn has_migrations(&self) -> bool {
        self.scripts
            .iter()
            .flatten()
            .any(|op| matches!(op, Op::Migrate(_)))
    }

    /// Whether there are no operations.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many [`Op::MmDrop`] references each mm has (its initial
    /// `mm_count` is one more: the users' reference).
    pub fn refs_per_mm(&self) -> Vec<usize> {
        let mut n = std::vec![0; self.nr_mms];
        for op in self.scripts.iter().flatten() {
            if let Op::MmDrop(mm) = op {
                n[mm.index().expect("validated")] += 1;
            }
        }
        n
    }

    /// How many user tasks each mm has (its initial `mm_users`).
    pub fn tasks_per_mm(&self) -> Vec<usize> {
        let mut n = std::vec![0; self.nr_mms];
        for script in &self.scripts {
            let mut seen = std::collections::BTreeSet::new();
            for op in script {
                match op {
                    Op::User(mm) if seen.insert(*mm) => n[mm.index().expect("validated")] += 1,
                    // An adopted task was counted on the CPU it came from.
                    Op::Adopt(mm, _) => {
                        seen.insert(*mm);
                    }
                    _ => {}
                }
            }
        }
        n
    }

    /// A random workload of at least `ops_per_cpu` operations per CPU from
    /// `seed`: every CPU gets user tasks of some mms (every CPU and every mm
    /// at least one), switches among them and kernel threads, and exits
    /// them, the exits spread over the script.
    pub fn random(seed: u64, nr_cpus: usize, nr_mms: usize, ops_per_cpu: usize) -> Self {
        let mut rng = SplitMix(seed);
        let mut owners: Vec<Vec<MmId>> = std::vec![Vec::new(); nr_cpus];
        for m in 0..nr_mms {
            let mm = MmId::new(m);
            let home = rng.below(nr_cpus);
            owners[home].push(mm);
            for (c, own) in owners.iter_mut().enumerate() {
                if c != home && rng.below(2) == 0 {
                    own.push(mm);
                }
            }
        }
        for own in owners.iter_mut() {
            if own.is_empty() {
                own.push(MmId::new(rng.below(nr_mms)));
            }
        }
        let scripts = owners
            .into_iter()
            .map(|mut live| {
                let mut s = Vec::new();
                let mut curr: Option<MmId> = None;
                while s.len() < ops_per_cpu && !live.is_empty() {
                    // Spread the exits over the script: each op exits the
                    // running task with probability ~ live / remaining ops.
                    let remaining = ops_per_cpu - s.len();
                    if curr.is_some() && rng.below(remaining.max(1)) < live.len().saturating_sub(1)
                    {
                        let mm = curr.take().expect("checked");
                        s.push(Op::Exit);
                        live.retain(|&m| m != mm);
                        continue;
                    }
                    if rng.below(2) == 0 {
                        let mm = live[rng.below(live.len())];
                        if curr != Some(mm) {
                            s.push(Op::User(mm));
                            curr = Some(mm);
                        }
                    } else {
                        s.push(Op::Kthread);
                        curr = None;
                    }
                }
                for mm in live {
                    if curr != Some(mm) {
                        s.push(Op::User(mm));
                    }
                    s.push(Op::Exit);
                    curr = None;
                    if rng.below(2) == 0 {
                        s.push(Op::Kthread);
                    }
                }
                s
            })
            .collect();
        Self::new(nr_mms, scripts).named(std::format!(
            "random(seed {seed:#x}, {nr_cpus} CPUs, {nr_mms} mms, {ops_per_cpu} ops per CPU)"
        ))
    }

    /// [`random`](Self::random)'s workload with migrations: some tasks,
    /// right after their CPU first switches away from them, sleep there
    /// ([`Op::Migrate`]) and are woken on a higher-numbered CPU that never
    /// had a task of that mm ([`Op::Adopt`]), which preempts whatever it
    /// runs to run the task and exit it (user → user preemption of a live
    /// task when it ran one). Tasks only move to higher CPUs, so the waits
    /// cannot form a cycle.
    pub fn random_with_migration(
        seed: u64,
        nr_cpus: usize,
        nr_mms: usize,
        ops_per_cpu: usize,
    ) -> Self {
        let base = Self::random(seed, nr_cpus, nr_mms, ops_per_cpu);
        let mut rng = SplitMix(seed ^ 0x6d69_6772_6174_6521);
        let mut scripts = base.scripts;
        let has_task = |script: &[Op], mm: MmId| {
            script
                .iter()
                .any(|op| matches!(op, Op::User(m) | Op::Adopt(m, _) if *m == mm))
        };
        for c in 0..nr_cpus {
            for m in 0..nr_mms {
                let mm = MmId::new(m);
                if rng.below(2) != 0 {
                    continue;
                }
                // The first switch away from the task, while it lives.
                let Some(first) = scripts[c].iter().position(|&op| op == Op::User(mm)) else {
                    continue;
                };
                let mut away = match scripts[c].get(first + 1) {
                    Some(Op::User(_) | Op::Kthread) => first + 1,
                    _ => continue, // it exits right away
                };
                if scripts[c].get(away + 1) == Some(&Op::Exit) {
                    away += 1; // the task that took over exits: keep the pair
                }
                let takers: Vec<usize> = (c + 1..nr_cpus)
                    .filter(|&d| !has_task(&scripts[d], mm))
                    .collect();
                if takers.is_empty() {
                    continue;
                }
                let d = takers[rng.below(takers.len())];
                // The rest of the task's life on c goes: each later run of
                // it (with its exit, which follows a run directly) becomes a
                // kernel thread, so every switch away stays where it was.
                let mut rest = Vec::with_capacity(scripts[c].len());
                let mut ops = scripts[c][away + 1..].iter().copied().peekable();
                while let Some(op) = ops.next() {
                    if op == Op::User(mm) {
                        if ops.peek() == Some(&Op::Exit) {
                            ops.next();
                        }
                        rest.push(Op::Kthread);
                        continue;
                    }
                    rest.push(op);
                }
                scripts[c].truncate(away + 1);
                scripts[c].push(Op::Migrate(mm));
                scripts[c].extend(rest);
                // On d: wake it where d's next op is not an exit of its own task.
                let spots: Vec<usize> = (0..=scripts[d].len())
                    .filter(|&p| scripts[d].get(p) != Some(&Op::Exit))
                    .collect();
                let p = spots[rng.below(spots.len())];
                let wake = [Op::Adopt(mm, c), Op::User(mm), Op::Exit];
                scripts[d].splice(p..p, wake);
            }
        }
        Self::new(nr_mms, scripts).named(std::format!(
            "random_with_migration(seed {seed:#x}, {nr_cpus} CPUs, {nr_mms} mms, {ops_per_cpu} ops per CPU)"
        ))
    }

    /// The scenario with a name, which failure messages show.
    pub fn named(mut self, label: impl Into<std::string::String>) -> Self {
        self.label = label.into();
        self
    }

    /// The scenario's name ("unnamed scenario" unless [`named`](Self::named)).
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// A tiny deterministic generator (SplitMix64) for workloads.
#[derive(Clone, Debug)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}
