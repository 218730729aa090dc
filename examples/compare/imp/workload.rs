//! `--trace FILE`: every scheme priced on a recorded workload.
//!
//! The trace (from `examples/record`, plain text or gzip) is parsed and
//! reconstructed ([`lazymm::check::trace`]); the workload's table gives its
//! rates. Each scheme then replays the per-CPU stream on the simulated
//! machine under the oracle ([`ReplayPlan`]), which counts its shared-line
//! RMWs and IPIs by the scheme's own logic. The price per second of the
//! workload is
//!
//! ```text
//! (same-mm unlazies x trip + other-mm unlazies x other trip
//!  + mm deaths x exit(C) + the scheme's IPIs x IPI) / seconds
//! ```
//!
//! with `trip`, `other trip` and `exit(C)` the scheme's bare costs and `IPI`
//! the membarrier IPI, all measured in this run (`lifetime.rs`), `C` the
//! trace's CPU count rounded up to a measured one. The floor is the same
//! round trips at the floor's two per-CPU stores and nothing at deaths; a
//! scheme's overhead is its cost minus the floor's, in ns of CPU time per
//! second of the workload (1,000 ns/s = 0.0001 % of one CPU).

use super::lifetime::{self, CPUS};
use super::schemes::schemes;
use super::Args;
use lazymm::check::model::ReplayPlan;
use lazymm::check::trace::{parse, story::tlb_reason, Story};
use std::io::Read;
use std::path::Path;
use std::time::Instant;

/// The file's text, gunzipped when it ends in `.gz`.
pub(super) fn read_trace(path: &str) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))?;
    if path.ends_with(".gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .map_err(|e| format!("gunzipping {path}: {e}"))?;
        Ok(s)
    } else {
        String::from_utf8(bytes).map_err(|e| format!("{path} is not UTF-8 text: {e}"))
    }
}

/// One scheme's result on the workload.
struct Priced {
    name: &'static str,
    rmws: f64,
    ipis: f64,
    cost: f64,
    over: f64,
}

/// Prints the workload and the per-scheme table; the exit status.
pub(super) fn main(a: &Args, path: &str) -> i32 {
    let text = match read_trace(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("compare: {e}");
            return 2;
        }
    };
    let t0 = Instant::now();
    let p = match parse(&text) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("compare: {path}: {e}");
            return 2;
        }
    };
    let parse_s = t0.elapsed().as_secs_f64();
    let story = Story::new(&p);
    let secs = story.seconds.max(1e-9);
    let c = &story.counts;
    let rate = |n: u64| n as f64 / secs;
    let name = Path::new(path)
        .file_name()
        .map_or(path.to_string(), |f| f.to_string_lossy().into_owned());
    println!(
        "workload {name}: {} CPUs, {secs:.2} s, {} events ({:.1} M events/s parsed){}",
        story.cpus,
        p.records.len(),
        p.records.len() as f64 / parse_s.max(1e-9) / 1e6,
        if story.lossy() {
            format!(
                "; LOSSY: {} events lost, counts are lower bounds",
                story.lost.iter().sum::<u64>()
            )
        } else {
            "; no events lost".into()
        }
    );
    let unlazies = c.unlazy_same + c.unlazy_other;
    let same_share = 100.0 * c.unlazy_same as f64 / unlazies.max(1) as f64;
    let mean_lazy = c.lazy_at_death as f64 / c.deaths.max(1) as f64;
    println!("| switches/s | lazy entries/s | unlazies/s | same-mm share | mm births/s | mm deaths/s | lazy CPUs at death (mean / max) | Linux remote TLB IPIs/s |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {:.0} | {:.0} | {:.0} | {same_share:.1} % | {:.1} | {:.1} | {mean_lazy:.2} / {} | {:.1} |",
        rate(c.switches),
        rate(c.lazy_entries),
        rate(unlazies),
        rate(c.births),
        rate(c.deaths),
        c.lazy_at_death_max,
        rate(c.tlb_ipis),
    );
    let births = c.births.max(1) as f64;
    println!(
        "per mm born: {:.1} unlazies into it or others ({:.1} same-mm); deaths whose final drop (x86 Linux) ran on another lazy CPU: {} of {}; \
         unknown tasks {}, prev_pid mismatches {}",
        unlazies as f64 / births,
        c.unlazy_same as f64 / births,
        c.final_drop_elsewhere,
        c.deaths,
        c.unknown_tasks,
        c.mismatches
    );
    let flushes: Vec<String> = c
        .tlb_flushes
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(i, &n)| format!("{}: {:.1}/s", tlb_reason(i), rate(n)))
        .collect();
    println!(
        "Linux's TLB flushes: {}; flush IPIs reached {:.1} CPUs/s; other IPIs {:.1}/s",
        if flushes.is_empty() {
            "none".into()
        } else {
            flushes.join(", ")
        },
        rate(c.tlb_ipi_targets),
        rate(c.other_ipis)
    );
    if story.cpus as usize > a.cpus {
        eprintln!(
            "compare: the trace has {} CPUs; the schemes are built for {} (--cpus)",
            story.cpus, a.cpus
        );
        return 2;
    }
    let Some(plan) = ReplayPlan::new(&story) else {
        eprintln!(
            "compare: the trace has {} CPUs, more than the simulated machine's {}",
            story.cpus,
            lazymm::check::model::MAX_CPUS
        );
        return 2;
    };
    let parts = lifetime::measure_parts();
    let (floor_same, floor_other) = lifetime::floor_trips();
    let ipi = lifetime::ipi_price(a);
    let ci = CPUS
        .iter()
        .position(|&n| n >= story.cpus as usize)
        .unwrap_or(CPUS.len() - 1);
    let floor = (c.unlazy_same as f64 * floor_same + c.unlazy_other as f64 * floor_other) / secs;
    let mut rows = Vec::new();
    let t1 = Instant::now();
    for e in schemes(a.cpus) {
        let st = (e.replay)(&plan);
        let Some(part) = parts.iter().find(|p| p.name == e.name) else {
            continue;
        };
        let cost = (c.unlazy_same as f64 * part.trip_ns
            + c.unlazy_other as f64 * part.other_ns
            + c.deaths as f64 * part.exit_ns[ci]
            + st.ipis as f64 * ipi.ns)
            / secs;
        rows.push(Priced {
            name: e.name,
            rmws: rate(st.shared_rmws),
            ipis: rate(st.ipis),
            cost,
            over: cost - floor,
        });
    }
    println!(
        "\nreplayed {} machine steps through {} schemes under the oracle in {:.2} s: no scheme misbehaved",
        plan.trace_ops,
        rows.len(),
        t1.elapsed().as_secs_f64()
    );
    println!(
        "price: bare trips and exit@{} measured in this run, IPI {:.0} ns ({}); floor {floor:.0} ns/s",
        CPUS[ci], ipi.ns, ipi.source
    );
    println!("| scheme | shared RMWs/s | IPIs/s | cost ns/s | over floor ns/s | over floor, % of one CPU |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.1} | {:.0} | {:.0} | {:.5} % |",
            r.name,
            r.rmws,
            r.ipis,
            r.cost,
            r.over,
            r.over / 1e7
        );
    }
    if let Some(w) = rows.iter().min_by(|a, b| a.cost.total_cmp(&b.cost)) {
        println!(
            "winner for this workload: {} ({:.0} ns/s over the floor)",
            w.name, w.over
        );
    }
    write_csv(&name, &story, &rows);
    0
}

/// Replaces this workload's rows in `lazymm-workload.csv` (one row per
/// workload and scheme, every workload priced so far) and redraws
/// `lazymm-workload.svg` from it.
fn write_csv(name: &str, story: &Story, rows: &[Priced]) {
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let path = Path::new(&dir).join("lazymm-workload.csv");
    const HEAD: &str =
        "workload,cpus,seconds,scheme,rmws_per_s,ipis_per_s,cost_ns_per_s,over_floor_ns_per_s";
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let mut lines: Vec<String> = old
        .lines()
        .skip(1)
        .filter(|l| l.split(',').next() != Some(name))
        .map(String::from)
        .collect();
    for r in rows {
        lines.push(format!(
            "{name},{},{:.3},{},{:.1},{:.2},{:.1},{:.1}",
            story.cpus, story.seconds, r.name, r.rmws, r.ipis, r.cost, r.over
        ));
    }
    let text = format!("{HEAD}\n{}\n", lines.join("\n"));
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("could not write {}: {e}", path.display());
        return;
    }
    println!("CSV: {}", path.display());
    let svg = Path::new(&dir).join("lazymm-workload.svg");
    match chart(&svg, &lines) {
        Ok(()) => println!("SVG: {}", svg.display()),
        Err(e) => eprintln!("could not draw {}: {e}", svg.display()),
    }
}

/// Cost per second of each workload (log scale), one bar per scheme.
fn chart(path: &Path, lines: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let rows: Vec<(String, String, f64)> = lines
        .iter()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((
                f.first()?.to_string(),
                f.get(3)?.to_string(),
                f.get(6)?.parse().ok()?,
            ))
        })
        .collect();
    let mut workloads: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    workloads.dedup();
    let mut schemes: Vec<String> = Vec::new();
    for r in &rows {
        if !schemes.contains(&r.1) {
            schemes.push(r.1.clone());
        }
    }
    let lo = 10.0f64;
    let hi = rows.iter().map(|r| r.2).fold(lo * 10.0, f64::max) * 2.0;
    let root = SVGBackend::new(path, (1000, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = workloads.len();
    let names = workloads.clone();
    let mut c = ChartBuilder::on(&root)
        .caption(
            "lazymm: each scheme's cost on recorded workloads (replayed, priced in the same run)",
            ("sans-serif", 17),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..n as f64, (lo..hi).log_scale())?;
    c.configure_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.01 && i < names.len() {
                names[i]
                    .trim_end_matches(".trace.gz")
                    .trim_end_matches(".trace")
                    .to_string()
            } else {
                String::new()
            }
        })
        .y_desc("scheme cost, ns of CPU per second of workload (log)")
        .disable_x_mesh()
        .draw()?;
    let k = schemes.len().max(1) as f64;
    for (si, s) in schemes.iter().enumerate() {
        let color = super::report::PALETTE[si % super::report::PALETTE.len()].to_rgba();
        let bars: Vec<Rectangle<(f64, f64)>> = rows
            .iter()
            .filter(|r| &r.1 == s)
            .filter_map(|r| {
                let w = workloads.iter().position(|x| x == &r.0)? as f64;
                let x0 = w + 0.1 + 0.8 * si as f64 / k;
                Some(Rectangle::new(
                    [(x0, lo), (x0 + 0.8 / k, r.2.max(lo))],
                    color.filled(),
                ))
            })
            .collect();
        c.draw_series(bars)?
            .label(s.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
