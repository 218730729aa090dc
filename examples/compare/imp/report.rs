//! The comparison's reports: the tables, the TLB and walker sections, the
//! CSV and the SVG chart.

use super::*;

pub(super) fn tlb_and_walkers(a: &Args) {
    use lazymm::check::model::tlb::{TlbMachine, TlbOp, TlbScenario};
    use lazymm::check::model::walk::{SyncKind, WalkMachine, WalkOp, WalkScenario};
    use lazymm::walk::{BeginOrder, FlushDelivery};
    // Every CPU: run the mm, use it, switch to a kernel thread (lazy),
    // come back, use it, flush (a PTE change), kernel thread again.
    let rounds = (a.round_trips / 20).max(1);
    let mut script = Vec::new();
    for _ in 0..rounds {
        script.extend([
            TlbOp::User,
            TlbOp::Use,
            TlbOp::Kthread,
            TlbOp::User,
            TlbOp::Use,
            TlbOp::Flush {
                freed_tables: false,
            },
            TlbOp::Kthread,
        ]);
    }
    let m = Arc::new(TlbMachine::<64>::correct(TlbScenario::new(vec![
        script;
        a.threads
    ])));
    let start = Instant::now();
    TlbMachine::run(&m);
    let t = start.elapsed();
    let s = m.stats();
    let cand = s.flush_ipis + s.ipis_skipped_lazy;
    println!(
        "\nlazy TLB (TLB machine, {} CPUs, {} rounds of run/lazy/unlazy/flush each, {:.1?}):",
        a.threads, rounds, t
    );
    println!(
        "  {} flushes: {} IPIs sent, {} saved by skipping lazy CPUs ({:.0}% of the {} a flush of every CPU in the cpumask would send); unlazy: {} caught up by flushing, {} kept their TLB",
        s.flushes,
        s.flush_ipis,
        s.ipis_skipped_lazy,
        100.0 * s.ipis_skipped_lazy as f64 / cand.max(1) as f64,
        cand,
        s.unlazy_flushes,
        s.unlazy_keeps
    );
    // Walkers: every CPU but cpu0 walks; cpu0 collapses.
    let walks = (a.round_trips / 20).max(1);
    let collapses = (walks / 100).max(1);
    println!(
        "lockless walkers (walker machine, {} walkers x {} walks, {} collapses, hardware-broadcast flush):",
        a.threads.saturating_sub(1),
        walks,
        collapses
    );
    for (name, sync) in [
        ("targeted", SyncKind::Targeted(BeginOrder::StoreMb)),
        ("broadcast", SyncKind::Broadcast),
        ("rcu", SyncKind::Rcu),
    ] {
        let mut scripts = vec![vec![WalkOp::Collapse; collapses]];
        scripts.extend((1..a.threads).map(|_| vec![WalkOp::Walk; walks]));
        let m = Arc::new(WalkMachine::<64>::with(
            WalkScenario::new(scripts),
            sync,
            FlushDelivery::NoIpi,
        ));
        let start = Instant::now();
        WalkMachine::run(&m);
        let t = start.elapsed();
        let s = m.stats();
        println!(
            "  {name:<9} {:>8} sync IPIs ({:.2} per collapse), {:.1?}",
            s.sync_ipis,
            s.sync_ipis as f64 / s.collapses.max(1) as f64,
            t
        );
    }
}

pub(super) fn table(rows: &[Row]) {
    let base = rows[0].rt().ns;
    let head = [
        ("scheme", ""),
        ("same mm", "ns/trip"),
        ("vs ref", ""),
        ("RMWs", "/trip"),
        ("other mm", "ns/trip"),
        ("RMWs", "/trip"),
        ("ns/exit", ""),
        ("RMWs/exit", ""),
        ("IPIs/proc", ""),
        ("mix", "ns/op"),
        ("B/CPU", ""),
        ("B/mm", ""),
    ];
    for line in [head.map(|h| h.0), head.map(|h| h.1)] {
        println!(
            "{:<14} {:>8} {:>7} {:>6} {:>8} {:>6} {:>8} {:>9} {:>9} {:>8} {:>6} {:>5}",
            line[0],
            line[1],
            line[2],
            line[3],
            line[4],
            line[5],
            line[6],
            line[7],
            line[8],
            line[9],
            line[10],
            line[11]
        );
    }
    for r in rows {
        let m = &r.m;
        println!(
            "{:<14} {:>8.1} {:>6.2}x {:>6.2} {:>8.1} {:>6.2} {:>8.1} {:>9.2} {:>9.2} {:>8.1} {:>6} {:>5}",
            m.name,
            r.rt().ns,
            r.rt().ns / base,
            r.rt().rmws,
            m.other_ns,
            m.other_rmw,
            m.exit_ns,
            m.exit_rmw,
            m.exit_ipis,
            m.mix_ns,
            r.per_cpu_bytes.map_or("heap".into(), |b| b.to_string()),
            r.per_mm_bytes
        );
    }
    println!(
        "\n(vs ref: ns per same-mm round trip relative to refcount, the upstream default;\n \
         B/CPU: size_of the scheme at 2 CPU slots minus at 1 (heap: a library backend whose\n \
         per-CPU records are allocated); B/mm: size_of the mm fields\n \
         the scheme's hooks touch, mm_count and/or the cpumask at the run's CPU slots)"
    );
}

/// The thread scaling: same-mm round trip at every thread count.
pub(super) fn scaling(rows: &[Row]) {
    println!("\nthread scaling: same-mm lazy round trip, ns per trip per CPU");
    print!("{:>7}", "threads");
    for r in rows {
        print!(" {:>10}", r.m.name);
    }
    println!();
    for (i, p) in rows[0].m.sweep.iter().enumerate() {
        print!("{:>7}", p.threads);
        for r in rows {
            print!(" {:>10.1}", r.m.sweep[i].ns);
        }
        println!();
    }
}

/// The `--mix lazy-exits` run: exits whose final drop meets CPUs still
/// lazy on the mm. IPIs per exit are the simulated machine's (mailboxes),
/// priced at the IPI cost measured on this machine.
pub(super) fn lazy_exit_costs(rows: &[Row], ipi: &lifetime::IpiPrice) {
    println!(
        "\nexits that meet lazy CPUs (--mix lazy-exits: same=70,other=20,lazy_exit=10; after an exit the CPU idles lazily on the dead mm until the process's last thread exited)"
    );
    println!(
        "{:<14} {:>8} {:>10} {:>16}",
        "scheme", "exits", "IPIs/exit", "IPI us/exit (*)"
    );
    for r in rows {
        let m = &r.m;
        println!(
            "{:<14} {:>8} {:>10.3} {:>16.3}",
            m.name,
            m.lx_exits,
            m.lx_ipis,
            m.lx_ipis * ipi.ns / 1000.0
        );
    }
    println!(
        "(*) IPIs per exit (simulated: mailbox IPIs between the machine's threads) x {:.0} ns per IPI ({});\n    \
         no time column: each lazy exit waits for the process's other threads, so wall time measures that rendezvous",
        ipi.ns, ipi.source
    );
}

/// Writes `dir/lazymm-compare.csv`: one row per scheme and thread count.
/// The same-mm columns are measured at every thread count; the other
/// workloads only at `N` threads, so their cells are empty on the other
/// rows. Memory columns do not depend on the thread count.
pub(super) fn write_csv(dir: &Path, a: &Args, rows: &[Row]) {
    let path = dir.join("lazymm-compare.csv");
    let mut out = String::from(
        "scheme,threads,cpu_slots,ns_per_trip_same_mm,shared_rmws_per_trip_same_mm,\
         ns_per_trip_other_mm,shared_rmws_per_trip_other_mm,ns_per_exit,shared_rmws_per_exit,\
         ipis_per_process,mix,ns_per_op_mix,shared_rmws_per_op_mix,\
         per_cpu_bytes,per_mm_bytes,scheme_bytes\n",
    );
    for r in rows {
        let m = &r.m;
        for p in &m.sweep {
            let rest = if p.threads == a.threads {
                format!(
                    "{:.2},{:.3},{:.2},{:.3},{:.3},{},{:.2},{:.3}",
                    m.other_ns,
                    m.other_rmw,
                    m.exit_ns,
                    m.exit_rmw,
                    m.exit_ipis,
                    a.mix.describe(),
                    m.mix_ns,
                    m.mix_rmw
                )
            } else {
                ",,,,,,,".into()
            };
            out += &format!(
                "{},{},{},{:.2},{:.3},{},{},{},{}\n",
                m.name,
                p.threads,
                a.cpus,
                p.ns,
                p.rmws,
                rest,
                r.per_cpu_bytes.map_or(String::new(), |b| b.to_string()),
                r.per_mm_bytes,
                m.scheme_bytes
            );
        }
    }
    match std::fs::write(&path, out) {
        Ok(()) => println!("CSV: {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}

/// Draws the thread scaling to `dir/lazymm-compare.svg`: x = running
/// CPUs (threads), y = ns per same-mm round trip per CPU (log scale, the
/// schemes differ by orders of magnitude), one line per scheme.
pub(super) fn write_svg(
    dir: &Path,
    a: &Args,
    rows: &[Row],
) -> Result<PathBuf, Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let path = dir.join("lazymm-compare.svg");
    let n = a.threads;
    let all = rows.iter().flat_map(|r| r.m.sweep.iter().map(|p| p.ns));
    let lo = all.clone().fold(f64::INFINITY, f64::min).max(0.01);
    let hi = all.fold(0.0, f64::max).max(lo);
    let (lo, hi) = (lo / 1.5, hi * 1.5);
    // Labels at 1, 2, 5 times each power of ten in the range.
    let mut ticks = Vec::new();
    for e in lo.log10().floor() as i32..=hi.log10().ceil() as i32 {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(e);
            if (lo..=hi).contains(&v) {
                ticks.push(v);
            }
        }
    }
    let target = path.clone();
    let root = SVGBackend::new(&target, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "lazymm compare: same-mm lazy round trip ({} CPU slots, {} round trips per CPU)",
                a.cpus, a.round_trips
            ),
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0..n + 1, (lo..hi).log_scale().with_key_points(ticks))?;
    chart
        .configure_mesh()
        .x_desc("threads (running CPUs of the simulated machine)")
        .y_desc("ns per round trip per CPU (log)")
        .x_labels((n + 2).min(18))
        .x_label_formatter(&|x| {
            if (1..=n).contains(x) {
                x.to_string()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| {
            if *y < 1.0 {
                format!("{y:.2}")
            } else {
                format!("{y:.0}")
            }
        })
        .draw()?;
    for (i, r) in rows.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()].to_rgba();
        let pts: Vec<(usize, f64)> = r.m.sweep.iter().map(|p| (p.threads, p.ns)).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(r.m.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(path)
}

/// Line colours of the charts: distinct, dark enough on white (a
/// "tab10"-like palette).
pub(super) const PALETTE: [plotters::style::RGBColor; 10] = {
    use plotters::style::RGBColor;
    [
        RGBColor(214, 39, 40),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(23, 190, 207),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
    ]
};
