//! Criterion benches of the real-workload path (`lazymm::check::trace`):
//! parsing a recorded trace, reconstructing its story, and replaying it
//! through a scheme on the simulated machine. Throughput is in events
//! (trace lines) per second; the target is ≥ 1 M events/s parsed, so that
//! minutes of trace take seconds.
//!
//! `cargo bench --bench trace` (on `tests/traces/postgres.trace.gz`).

#[cfg(not(any(loom, lazymm_shuttle)))]
mod imp {
    use criterion::{Criterion, Throughput};
    use lazymm::check::model::ReplayPlan;
    use lazymm::check::trace::{parse, Story};
    use lazymm::lazy::refcount::Refcount;
    use std::hint::black_box;
    use std::io::Read;

    pub fn trace(c: &mut Criterion) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/traces/postgres.trace.gz"
        );
        let Ok(file) = std::fs::File::open(path) else {
            println!("SKIP: {path} is not here (the published package leaves it out)");
            return;
        };
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .expect("gzip");
        let p = parse(&text).expect("parses");
        let events = p.records.len() as u64;
        let story = Story::new(&p);
        let plan = ReplayPlan::new(&story).expect("at most 64 CPUs");
        let mut g = c.benchmark_group("trace");
        g.throughput(Throughput::Elements(events));
        g.bench_function("parse", |b| {
            b.iter(|| parse(black_box(&text)).expect("parses"))
        });
        g.bench_function("story", |b| b.iter(|| Story::new(black_box(&p))));
        g.bench_function("replay_refcount", |b| b.iter(|| plan.run(Refcount::new())));
        g.finish();
    }
}

#[cfg(not(any(loom, lazymm_shuttle)))]
criterion::criterion_group!(benches, imp::trace);
#[cfg(not(any(loom, lazymm_shuttle)))]
criterion::criterion_main!(benches);

#[cfg(any(loom, lazymm_shuttle))]
fn main() {}
