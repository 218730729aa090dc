//! The simulated machine itself, driven sequentially: random operation
//! sequences (proptest) where the oracle's bookkeeping must match a plain
//! reference model of each scheme, step by step.
//!
//! Under `--cfg loom` / `--cfg lazymm_shuttle` the machine's atomics belong to
//! the checker and cannot run outside a model, so this file is compiled out
//! there (the loom and shuttle suites cover the machine instead).
#![cfg(not(any(loom, lazymm_shuttle)))]

use lazymm::check::model::{Machine, MmId, Op, Scenario, Task};
use lazymm::cpu::CpuId;
use lazymm::lazy::cached::Cached;
use lazymm::lazy::refcount::Refcount;
use lazymm::lazy::shootdown::Shootdown;
use lazymm::lazy::tagged::{Options, Tagged};
use lazymm::lazy::LazyMm;
use proptest::prelude::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Refcount,
    /// No references; the final drop forces lazy CPUs to init_mm (also the
    /// hazard and loaded_mm schemes, whose bookkeeping is per-CPU words).
    Shootdown,
    Tagged,
    Cached,
}

/// The reference model: plain integers, no atomics, no scheme code.
struct Reference {
    kind: Kind,
    users: Vec<usize>,
    count: Vec<usize>,
    freed: Vec<usize>,
    /// Per CPU: running user task's mm (None = kernel), and active mm.
    curr: Vec<Option<usize>>,
    active: Vec<Option<usize>>,
    /// Tagged: a fixup gave this CPU a reference on its lazy mm.
    tagged: Vec<bool>,
    /// Cached: the mm this CPU holds a cached reference on.
    cache: Vec<Option<usize>>,
}

impl Reference {
    fn new(kind: Kind, s: &Scenario) -> Self {
        let users = s.tasks_per_mm();
        let n = users.len();
        Self {
            kind,
            users,
            count: vec![1; n],
            freed: vec![0; n],
            curr: vec![None; s.nr_cpus()],
            active: vec![None; s.nr_cpus()],
            tagged: vec![false; s.nr_cpus()],
            cache: vec![None; s.nr_cpus()],
        }
    }

    fn drop_count(&mut self, m: usize) {
        self.count[m] -= 1;
        if self.count[m] == 0 {
            self.freed[m] += 1;
            if self.kind == Kind::Shootdown {
                // the final drop shoots every lazy CPU to init_mm
                for c in 0..self.curr.len() {
                    if self.active[c] == Some(m) {
                        assert_eq!(self.curr[c], None);
                        self.active[c] = None;
                    }
                }
            }
        }
    }

    /// A lazy entry on `a` (user -> kernel, or exit).
    fn mmgrab_lazy_tlb(&mut self, cpu: usize, a: usize) {
        match self.kind {
            Kind::Refcount => self.count[a] += 1,
            Kind::Cached if self.cache[cpu] != Some(a) => {
                assert_eq!(self.cache[cpu], None);
                self.count[a] += 1;
                self.cache[cpu] = Some(a);
            }
            _ => {}
        }
    }

    /// The CPU's page-table base moves to `next` (None: init_mm).
    fn switch_mm(&mut self, cpu: usize, next: Option<usize>) {
        if self.kind == Kind::Cached {
            if let Some(x) = self.cache[cpu] {
                if Some(x) != next {
                    self.cache[cpu] = None;
                    self.drop_count(x);
                }
            }
        }
    }

    /// The lazy use of `p` ends.
    fn mmdrop_lazy_tlb(&mut self, cpu: usize, p: usize) {
        match self.kind {
            Kind::Refcount => self.drop_count(p),
            Kind::Tagged if self.tagged[cpu] => {
                self.tagged[cpu] = false;
                self.drop_count(p);
            }
            _ => {}
        }
    }

    fn step(&mut self, cpu: usize, op: Op) {
        match op {
            Op::User(mm) => {
                let m = mm.index().unwrap();
                if self.curr[cpu] == Some(m) {
                    return;
                }
                let was_kernel = self.curr[cpu].is_none();
                let prev = self.active[cpu];
                if prev != Some(m) {
                    self.switch_mm(cpu, Some(m));
                }
                self.curr[cpu] = Some(m);
                self.active[cpu] = Some(m);
                if let (true, Some(p)) = (was_kernel, prev) {
                    self.mmdrop_lazy_tlb(cpu, p);
                }
            }
            Op::Kthread => {
                if self.curr[cpu].is_some() {
                    if let Some(a) = self.active[cpu] {
                        self.mmgrab_lazy_tlb(cpu, a);
                    }
                }
                self.curr[cpu] = None;
            }
            // The reference is sequential: the exit it waits for is done,
            // and the task a CPU adopts was migrated.
            Op::IdleUntilExited(_) | Op::UserUntilExited(_) | Op::Migrate(_) | Op::Adopt(..) => {}
            Op::MmDrop(mm) => self.drop_count(mm.index().unwrap()),
            Op::Exit => {
                let m = self.curr[cpu].take().unwrap();
                self.mmgrab_lazy_tlb(cpu, m);
                self.users[m] -= 1;
                if self.users[m] == 0 {
                    if self.kind == Kind::Tagged {
                        // the fixup hands a reference to every CPU lazy on m
                        for c in 0..self.curr.len() {
                            if self.active[c] == Some(m) && self.curr[c].is_none() {
                                assert!(!self.tagged[c]);
                                self.tagged[c] = true;
                                self.count[m] += 1;
                            }
                        }
                    }
                    self.drop_count(m);
                }
            }
        }
    }

    fn down(&mut self, cpu: usize) {
        if let Some(a) = self.active[cpu].take() {
            self.switch_mm(cpu, None);
            self.mmdrop_lazy_tlb(cpu, a);
        }
    }

    fn check<S: LazyMm + Send + Sync + 'static>(&self, m: &Machine<S>, after: &str) {
        for i in 0..self.users.len() {
            assert_eq!(
                m.mm_counts(i),
                (self.users[i], self.count[i], self.freed[i]),
                "mm{i} (users, count, freed) after {after}"
            );
        }
        for c in 0..self.curr.len() {
            let st = m.state(CpuId::new(c));
            let want_curr = match self.curr[c] {
                Some(i) => Task::User(MmId::new(i)),
                None => Task::Kernel,
            };
            let want_active = self.active[c].map_or(MmId::INIT, MmId::new);
            assert_eq!(
                (st.curr, st.active_mm),
                (want_curr, want_active),
                "cpu{c} after {after}"
            );
            assert_eq!(
                st.loaded_mm, st.active_mm,
                "cpu{c}: loaded_mm != active_mm after {after}"
            );
            assert_eq!(
                st.is_lazy,
                st.curr == Task::Kernel && st.active_mm != MmId::INIT,
                "cpu{c} lazy flag after {after}"
            );
        }
    }
}

/// Runs `s` sequentially, interleaving CPUs as `picks` says, checking the
/// machine against the reference after every step.
fn run<S: LazyMm + Send + Sync + 'static>(kind: Kind, scheme: S, s: Scenario, picks: &[usize]) {
    let m = Machine::new(scheme, s.clone()).with_inline_ipis();
    let mut r = Reference::new(kind, &s);
    let mut pos = vec![0; s.nr_cpus()];
    let mut picks = picks.iter().cycle();
    // Tasks put to sleep for another CPU (Op::Migrate): an Op::Adopt is
    // ready once its task is.
    let mut migrated = std::collections::BTreeSet::new();
    loop {
        let ready: Vec<usize> = (0..s.nr_cpus())
            .filter(|&c| match s.script(c).get(pos[c]) {
                None => false,
                Some(&Op::Adopt(mm, from)) => migrated.contains(&(mm, from)),
                Some(_) => true,
            })
            .collect();
        if ready.is_empty() {
            break;
        }
        let c = ready[picks.next().unwrap() % ready.len()];
        let op = s.script(c)[pos[c]];
        pos[c] += 1;
        m.step(CpuId::new(c), op);
        if let Op::Migrate(mm) = op {
            migrated.insert((mm, c));
        }
        r.step(c, op);
        r.check(&m, &format!("cpu{c} {op:?}"));
    }
    for c in 0..s.nr_cpus() {
        m.cpu_down(CpuId::new(c));
        r.down(c);
        r.check(&m, &format!("cpu{c} down"));
    }
    m.finish();
    assert!(r.freed.iter().all(|&f| f == 1));
}

fn scenario() -> impl Strategy<Value = (Scenario, Vec<usize>)> {
    (
        any::<u64>(),
        1usize..=4,
        1usize..=3,
        1usize..=12,
        prop::collection::vec(0usize..64, 1..64),
        any::<bool>(),
    )
        .prop_map(|(seed, cpus, mms, ops, picks, migrate)| {
            let s = if migrate {
                Scenario::random_with_migration(seed, cpus, mms, ops)
            } else {
                Scenario::random(seed, cpus, mms, ops)
            };
            (s, picks)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 300 }))]

    #[test]
    fn refcount_matches_reference((s, picks) in scenario()) {
        run(Kind::Refcount, Refcount::new(), s, &picks);
    }

    #[test]
    fn shootdown_matches_reference((s, picks) in scenario()) {
        run(Kind::Shootdown, Shootdown::new(), s, &picks);
    }

    #[test]
    fn tagged_matches_reference((s, picks) in scenario(), check in any::<bool>(), batch in any::<bool>()) {
        let opts = Options { check_before_cmpxchg: check, batch_grab: batch };
        run(Kind::Tagged, Tagged::<4>::with_options(opts), s, &picks);
    }

    #[test]
    fn hazard_matches_reference((s, picks) in scenario()) {
        run(Kind::Shootdown, lazymm::lazy::hazard::HazardLazy::<4>::new(), s, &picks);
    }

    #[test]
    fn loaded_mm_matches_reference((s, picks) in scenario()) {
        run(Kind::Shootdown, lazymm::lazy::loaded::LoadedMm::<4>::new(), s, &picks);
    }

    #[test]
    fn cached_matches_reference((s, picks) in scenario()) {
        run(Kind::Cached, Cached::<4>::new(), s, &picks);
    }
}

/// `Scenario::random_with_migration` makes valid scenarios (its
/// constructor checks them), and most of them migrate.
#[test]
fn random_workloads_migrate() {
    let with = (0..200u64)
        .filter(|&seed| Scenario::random_with_migration(seed, 8, 4, 30).has_migrations())
        .count();
    assert!(with > 150, "only {with} of 200 workloads migrate");
}

#[test]
fn counters_add_up() {
    use Op::*;
    let a = MmId::new(0);
    let s = Scenario::new(1, vec![vec![User(a), Kthread, User(a), Exit]]);
    let m = Machine::new(Refcount::new(), s).with_inline_ipis();
    for op in [User(a), Kthread, User(a), Exit] {
        m.step(CpuId::new(0), op);
    }
    m.cpu_down(CpuId::new(0));
    m.check_end();
    let st = m.stats();
    assert_eq!(
        (st.switches, st.lazy_enters, st.exits, st.frees, st.ipis),
        (3, 2, 1, 1, 0)
    );
}

#[test]
#[should_panic(expected = "scenario error: cpu0's tasks of {mm0} never exit")]
fn scenario_rejects_a_task_that_never_exits() {
    Scenario::new(1, vec![vec![Op::User(MmId::new(0))]]);
}

#[test]
#[should_panic(expected = "scenario error: cpu0 exits without a user task")]
fn scenario_rejects_exit_without_task() {
    Scenario::new(1, vec![vec![Op::User(MmId::new(0)), Op::Exit, Op::Exit]]);
}

#[test]
#[should_panic(
    expected = "scenario error: cpu0 idles until mm0 exited before its own task of mm0 exited"
)]
fn scenario_rejects_an_idle_wait_on_its_own_live_task() {
    let m = MmId::new(0);
    Scenario::new(
        1,
        vec![vec![
            Op::User(m),
            Op::Kthread,
            Op::IdleUntilExited(m),
            Op::User(m),
            Op::Exit,
        ]],
    );
}

#[test]
#[should_panic(expected = "scenario error: cpu0 idles until mm0 exited while a user task runs")]
fn scenario_rejects_an_idle_wait_in_a_user_task() {
    let (a, b) = (MmId::new(0), MmId::new(1));
    Scenario::new(
        2,
        vec![vec![
            Op::User(a),
            Op::Exit,
            Op::User(b),
            Op::IdleUntilExited(a),
            Op::Exit,
        ]],
    );
}

#[test]
#[should_panic(expected = "leak: mm0 was never freed")]
fn oracle_reports_a_leak() {
    // A CPU that never goes down keeps its lazy reference: the mm leaks.
    use Op::*;
    let a = MmId::new(0);
    let m = Machine::new(Refcount::new(), Scenario::new(1, vec![vec![User(a), Exit]]))
        .with_inline_ipis();
    m.step(CpuId::new(0), User(a));
    m.step(CpuId::new(0), Exit);
    m.check_end();
}

#[test]
#[should_panic(expected = "lazymm: mmdrop_lazy_tlb on cpu0, which is not lazy")]
fn tagged_leave_twice_panics() {
    use Op::*;
    let a = MmId::new(0);
    // The scheme is the machine's own: a `Tagged<1>` called with a kernel of
    // more CPUs would not compile (`lazy::check_sizes`).
    let m = Machine::new(
        Tagged::<1>::new(),
        Scenario::new(1, vec![vec![User(a), Exit]]),
    )
    .with_inline_ipis();
    m.step(CpuId::new(0), User(a));
    let t = m.scheme();
    lazymm::lazy::LazyMm::mmgrab_lazy_tlb(t, &m, CpuId::new(0), a);
    lazymm::lazy::LazyMm::mmdrop_lazy_tlb(t, &m, CpuId::new(0), a, None);
    lazymm::lazy::LazyMm::mmdrop_lazy_tlb(t, &m, CpuId::new(0), a, None);
}

#[test]
#[should_panic(expected = "CPU id 5 out of range")]
fn out_of_range_cpu_panics() {
    let m = Machine::new(
        Refcount::new(),
        Scenario::new(1, vec![vec![Op::User(MmId::new(0)), Op::Exit]]),
    );
    m.step(CpuId::new(5), Op::Kthread);
}

/// One CPU count: the machine refuses a scenario with more CPUs than the
/// scheme's per-CPU state covers (a kernel gets a compile error instead:
/// the `compile_fail` example of `lazy::check_sizes`).
#[test]
#[should_panic(expected = "scenario error: three_cpus has 3 CPUs, but the scheme tagged covers 2")]
fn machine_refuses_more_cpus_than_the_scheme_covers() {
    let _ = Machine::new(
        Tagged::<2>::new(),
        lazymm::check::model::harness::three_cpus(),
    );
}
