//! The lifetime model from measured parts: Zijlstra's "an xchg on every
//! unlazy vs one IPI per exit" and Piggin's "IPIs = scary expensive might
//! not be correct".
//!
//! A process whose life has `K` lazy round trips costs, under a scheme,
//!
//! ```text
//! K x trip  +  exit(C)  +  lazy(C, share) x IPI      (the last term only for
//!                                                     schemes that IPI lazy CPUs)
//! ```
//!
//! * `trip`: the scheme's bare same-mm round trip (one thread, no oracle:
//!   `benches/common/bare.rs`), **measured in this run**;
//! * `exit(C)`: its bare exit work with no CPU lazy (`mm_users_zero` +
//!   `final_drop`) at `C` = 2 / 64 / 256 / 1,024 CPU slots, **measured in
//!   this run**;
//! * `lazy(C, share)`: CPUs still lazy on the mm at exit, `share x (C - 1)`,
//!   share 0 / 1 / 10 % (**parameters**);
//! * whether a scheme IPIs lazy CPUs at exit: **observed in this run** by a
//!   probe: CPU 1 runs the mm and goes lazy on it, CPU 0 exits it; the
//!   probe kernel counts the CPUs the exit sends a shoot-lazy IPI to (and
//!   runs the handler: CPU 1 switches to the kernel's mm);
//! * `IPI`: one IPI's price, **measured in this run** with membarrier
//!   (`benches/common/ipi.rs`: a membarrier that IPIs one busy CPU minus
//!   one that IPIs none), or `--ipi-ns` (a **parameter**).
//!
//! Linear in the lazy CPUs: each is priced as one IPI round (an upper
//! bound; a kernel IPIs them in parallel and waits once — `cargo bench
//! --bench ipi` shows membarrier to 1..cores-1 CPUs). Left out: the
//! reference schemes' per-lazy-CPU exit work (tagged's fixup grab, ~one
//! remote RMW each: `exit_fixup` in `benches/lazy.rs`), and contention on
//! refcount's shared line (the thread scaling above shows it).

use super::Args;
use lazymm::check::sync::{AtomicUsize, Ordering::Relaxed};
use lazymm::cpu::CpuId;
use lazymm::cpu::CpuSet;
use lazymm::lazy::cached::Cached;
use lazymm::lazy::hazard::{HazardLazy, HazardLazyNoFence};
use lazymm::lazy::loaded::LoadedMm;
use lazymm::lazy::rcu_mm::RcuMm;
use lazymm::lazy::refcount::Refcount;
use lazymm::lazy::shootdown::Shootdown;
use lazymm::lazy::tagged::Tagged;
use lazymm::lazy::Kernel;
use lazymm::lazy::LazyMm;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

#[path = "../../../benches/common/bare.rs"]
mod bare;
#[path = "../../../benches/common/mod.rs"]
mod common;
#[cfg(all(target_os = "linux", not(any(loom, lazymm_shuttle))))]
#[path = "../../../benches/common/ipi.rs"]
mod ipi;

use bare::{BenchKernel, Loaded};
use common::Mm;

/// CPU counts of the model (CPU slots of the measured exit).
pub(super) const CPUS: [usize; 4] = [2, 64, 256, 1024];
/// Shares of the other CPUs still lazy on the mm at exit.
pub(super) const SHARES: [f64; 3] = [0.0, 0.01, 0.10];
/// Round trips per process lifetime of the printed table.
pub(super) const KS: [f64; 5] = [1.0, 10.0, 100.0, 1_000.0, 10_000.0];

/// The price of one IPI and where it came from.
pub(super) struct IpiPrice {
    pub(super) ns: f64,
    pub(super) source: String,
}

/// Used only when the IPI cannot be measured here and `--ipi-ns` is not
/// given: a parameter, printed as such (benches/ipi.rs measured 2.0 µs on
/// the 2-core development VM, 2026-11-30).
const FALLBACK_IPI_NS: f64 = 2_000.0;

/// `--ipi-ns`, else a membarrier measurement, else the labelled fallback.
pub(super) fn ipi_price(a: &Args) -> IpiPrice {
    if let Some(ns) = a.ipi_ns {
        return IpiPrice {
            ns,
            source: "parameter: --ipi-ns".into(),
        };
    }
    #[cfg(all(target_os = "linux", not(any(loom, lazymm_shuttle))))]
    match ipi::measure(2_000) {
        Ok(c) => {
            println!(
                "\nIPI, measured here: membarrier(PRIVATE_EXPEDITED) {:.0} ns with one busy CPU to IPI, {:.0} ns with none \
                 => {:.0} ns per IPI; a signal round trip to one busy thread (upper bound of a targeted IPI) {:.0} ns",
                c.broadcast_1_ns,
                c.syscall_ns,
                c.ipi_ns(),
                c.signal_ns
            );
            return IpiPrice {
                ns: c.ipi_ns(),
                source: "measured in this run: membarrier to 1 busy CPU minus to none".into(),
            };
        }
        Err(e) => println!("\nSKIP: measuring the IPI: {e}"),
    }
    IpiPrice {
        ns: FALLBACK_IPI_NS,
        source: "parameter: not measurable here, fallback (pass --ipi-ns)".into(),
    }
}

/// One scheme's measured parts.
pub(super) struct Parts {
    pub(super) name: &'static str,
    pub(super) trip_ns: f64,
    /// Bare round trip to another mm (user A -> kernel -> user B).
    pub(super) other_ns: f64,
    /// Exit work at each of [`CPUS`].
    pub(super) exit_ns: [f64; 4],
    /// Whether its exit IPIs lazy CPUs (the probe saw an IPI).
    pub(super) ipis: bool,
}

impl Parts {
    /// Lazy CPUs at exit priced in IPIs, for this scheme.
    fn ipi_term(&self, cpus: usize, share: f64, ipi: f64) -> f64 {
        if self.ipis {
            share * (cpus - 1) as f64 * ipi
        } else {
            0.0
        }
    }

    /// The per-process cost that does not grow with K.
    pub(super) fn fixed(&self, ci: usize, share: f64, ipi: f64) -> f64 {
        self.exit_ns[ci] + self.ipi_term(CPUS[ci], share, ipi)
    }

    pub(super) fn lifetime(&self, k: f64, ci: usize, share: f64, ipi: f64) -> f64 {
        k * self.trip_ns + self.fixed(ci, share, ipi)
    }
}

/// The probe's kernel: counts shoot-lazy IPI targets and runs each
/// target's handler (switch to the kernel's mm, then `lazy_shot`) at once.
struct Probe<'a, S> {
    s: &'a S,
    ipis: AtomicUsize,
}

impl<S: LazyMm> Kernel for Probe<'_, S> {
    type Mm = Mm;
    const NR_CPUS: usize = 2;
    type CpuMask = CpuSet<1>;
    fn mmgrab(&self, _cpu: CpuId, _mm: Mm) {}
    fn mmdrop(&self, _cpu: CpuId, _mm: Mm) {}
    fn mm_users(&self, _mm: Mm) -> usize {
        0
    }
    fn mm_cpumask(&self, _mm: Mm) -> CpuSet<1> {
        // CPU 1 ran the mm and is lazy on it (x86 clears the bit when a CPU
        // loads another mm, so this is the CPUs that may still hold it).
        let mut m = CpuSet::new();
        m.insert(CpuId::new(1));
        m
    }
    fn shoot_lazies(&self, _cpu: CpuId, cpus: &CpuSet<1>, mm: Mm) {
        for c in cpus.iter() {
            // Relaxed: a counter read by the same thread.
            self.ipis.fetch_add(1, Relaxed);
            self.s.switching_mm(self, c, Some(mm), None);
            self.s.switched_mm(self, c, Some(mm), None);
            self.s.lazy_shot(self, c, mm);
        }
    }
}

/// Whether the exit of an mm that CPU 1 is lazy on sends CPU 1 an IPI.
fn ipis_lazy<S: LazyMm + Default>() -> bool {
    let s = S::default();
    let k = Probe {
        s: &s,
        ipis: AtomicUsize::new(0),
    };
    let (cpu0, cpu1, mm) = (CpuId::new(0), CpuId::new(1), Mm(1));
    s.switching_mm(&k, cpu1, None, Some(mm));
    s.switched_mm(&k, cpu1, None, Some(mm));
    s.mmgrab_lazy_tlb(&k, cpu1, mm);
    s.mm_users_zero(&k, cpu0, mm);
    s.final_drop(&k, cpu0, mm);
    k.ipis.load(Relaxed) > 0
}

/// Median ns per call of `f` over 5 rounds of at least 10 ms each.
fn median_ns(mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..5)
        .map(|_| {
            let (mut n, start) = (0u64, Instant::now());
            while start.elapsed() < Duration::from_millis(10) || n < 100 {
                for _ in 0..100 {
                    f();
                }
                n += 100;
            }
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[2]
}

pub(super) fn trip<S: LazyMm + Default>() -> f64 {
    let s = S::default();
    let k = BenchKernel::<64>::new(1);
    let loaded: Box<Loaded> = Box::default();
    median_ns(|| bare::round_trip(&s, &k, &loaded, CpuId::new(0), black_box(Mm(1))))
}

/// One bare round trip to another mm (`round_trip_other` makes two).
pub(super) fn trip_other<S: LazyMm + Default>() -> f64 {
    let s = S::default();
    let k = BenchKernel::<64>::new(1);
    let loaded: Box<Loaded> = Box::default();
    let cpu = CpuId::new(0);
    median_ns(|| bare::round_trip_other(&s, &k, &loaded, cpu, black_box(Mm(1)), black_box(Mm(2))))
        / 2.0
}

/// The floor's bare round trip (the two per-CPU stores), same and other mm.
pub(super) fn floor_trips() -> (f64, f64) {
    (trip::<bare::Floor>(), trip_other::<bare::Floor>())
}

fn exit<S: LazyMm + Default, const N: usize>() -> f64 {
    let s: Box<S> = Box::default();
    let k = BenchKernel::<N>::new(N);
    median_ns(|| {
        s.mm_users_zero(&k, CpuId::new(0), black_box(Mm(1)));
        s.final_drop(&k, CpuId::new(0), black_box(Mm(1)));
    })
}

/// Measures one scheme: `S64` (the scheme at 64 slots) for the trip, the
/// four others for the exit at [`CPUS`].
/// A scheme's trip, exits at [`CPUS`], and whether its exit IPIs lazy CPUs.
type BareParts = (f64, f64, [f64; 4], bool);

fn parts<S2, S64, S256, S1024>() -> BareParts
where
    S2: LazyMm + Default,
    S64: LazyMm + Default,
    S256: LazyMm + Default,
    S1024: LazyMm + Default,
{
    (
        trip::<S64>(),
        trip_other::<S64>(),
        [
            exit::<S2, 2>(),
            exit::<S64, 64>(),
            exit::<S256, 256>(),
            exit::<S1024, 1024>(),
        ],
        ipis_lazy::<S2>(),
    )
}

macro_rules! sized {
    ($t:ident) => {
        parts::<$t<2>, $t<64>, $t<256>, $t<1024>>
    };
}

/// Every scheme's bare parts, by name.
fn measured() -> Vec<(&'static str, BareParts)> {
    #[allow(unused_mut)]
    let mut v = vec![
        (
            Refcount::NAME,
            parts::<Refcount, Refcount, Refcount, Refcount>(),
        ),
        (
            Shootdown::NAME,
            parts::<Shootdown, Shootdown, Shootdown, Shootdown>(),
        ),
        (Tagged::<2>::NAME, sized!(Tagged)()),
        (Cached::<2>::NAME, sized!(Cached)()),
        (HazardLazy::<2>::NAME, sized!(HazardLazy)()),
        (HazardLazyNoFence::<2>::NAME, sized!(HazardLazyNoFence)()),
        (LoadedMm::<2>::NAME, sized!(LoadedMm)()),
        (RcuMm::<2>::NAME, sized!(RcuMm)()),
    ];
    #[cfg(all(feature = "haphazard", not(any(loom, lazymm_shuttle))))]
    {
        use lazymm::lazy::haphazard::HaphazardLazy;
        v.push((HaphazardLazy::<2>::NAME, sized!(HaphazardLazy)()));
    }
    #[cfg(all(feature = "epoch", not(any(loom, lazymm_shuttle))))]
    {
        use lazymm::lazy::epoch_mm::EpochMm;
        v.push((EpochMm::<2>::NAME, sized!(EpochMm)()));
    }
    v
}

/// Everything the files are written from.
pub(super) struct Model {
    pub(super) parts: Vec<Parts>,
    pub(super) ipi_ns: f64,
    pub(super) ipi_source: String,
}

fn fmt_k(k: f64) -> String {
    match k {
        k if k < 10.0 => format!("{k:.1}"),
        k if k < 1e4 => format!("{k:.0}"),
        k if k < 1e6 => format!("{:.1}k", k / 1e3),
        k => format!("{:.1}M", k / 1e6),
    }
}

/// Every scheme's bare parts, measured now.
pub(super) fn measure_parts() -> Vec<Parts> {
    eprint!("lifetime model: measuring the bare trips and exits...");
    let measured = measured();
    eprintln!(" done");
    measured
        .into_iter()
        .map(|(name, (trip_ns, other_ns, exit_ns, ipis))| Parts {
            name,
            trip_ns,
            other_ns,
            exit_ns,
            ipis,
        })
        .collect()
}

/// Measures the parts, prints the inputs, the crossovers and the lifetime
/// table; returns the model for the files.
pub(super) fn report(ipi: &IpiPrice) -> Model {
    let parts = measure_parts();
    let ipi_ns = ipi.ns;
    println!(
        "\nlifetime cost per process = K x trip + exit(C) + lazy CPUs at exit x IPI (IPI term only for the schemes that IPI lazy CPUs)"
    );
    println!(
        "inputs: trip and exit(C) bare (no oracle), measured in this run; IPI = {ipi_ns:.0} ns ({}); IPIs lazy: \
         observed in this run (a probe exit with one CPU lazy sent it an IPI); lazy CPUs = share x (C - 1), a parameter",
        ipi.source
    );
    println!(
        "{:<14} {:>8} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "scheme", "trip ns", "exit@2", "exit@64", "exit@256", "exit@1024", "IPIs lazy"
    );
    for p in &parts {
        println!(
            "{:<14} {:>8.2} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>10}",
            p.name,
            p.trip_ns,
            p.exit_ns[0],
            p.exit_ns[1],
            p.exit_ns[2],
            p.exit_ns[3],
            if p.ipis { "yes" } else { "no" }
        );
    }
    crossovers(&parts, ipi_ns);
    table(&parts, ipi_ns);
    Model {
        parts,
        ipi_ns,
        ipi_source: ipi.source.clone(),
    }
}

/// For every pair (a cheaper trip, b dearer trip): the K above which a's
/// lifetime is cheaper, at each CPU count and lazy share.
fn crossovers(parts: &[Parts], ipi: f64) {
    println!(
        "\ncrossover K (round trips per process) above which the scheme with the cheaper trip wins the lifetime; \
         'always': it wins at every K"
    );
    print!("{:<32}", "cheaper trip vs dearer trip");
    for s in SHARES {
        for c in CPUS {
            print!(" {:>7}", format!("{}%/{c}", s * 100.0));
        }
    }
    println!("   (lazy share / CPUs)");
    let mut always = Vec::new();
    for a in parts {
        for b in parts {
            if a.trip_ns >= b.trip_ns {
                continue;
            }
            let cells: Vec<Option<f64>> = SHARES
                .iter()
                .flat_map(|&s| {
                    (0..CPUS.len()).map(move |ci| {
                        let extra = a.fixed(ci, s, ipi) - b.fixed(ci, s, ipi);
                        (extra > 0.0).then(|| extra / (b.trip_ns - a.trip_ns))
                    })
                })
                .collect();
            if cells.iter().all(Option::is_none) {
                always.push(format!("{} < {}", a.name, b.name));
                continue;
            }
            print!("{:<32}", format!("{} vs {}", a.name, b.name));
            for c in cells {
                print!(" {:>7}", c.map_or("always".into(), fmt_k));
            }
            println!();
        }
    }
    println!(
        "cheaper at every K in every configuration (cheaper trip and cheaper exit): {}",
        always.join(", ")
    );
}

/// Lifetime cost in µs at the K of [`KS`], 1,024 CPUs, 1 % lazy.
fn table(parts: &[Parts], ipi: f64) {
    let (ci, share) = (3, SHARES[1]);
    println!(
        "\nlifetime cost per process, us, at {} CPUs with {}% of them lazy at exit:",
        CPUS[ci],
        share * 100.0
    );
    print!("{:<14}", "scheme");
    for k in KS {
        print!(" {:>10}", format!("K={}", fmt_k(k)));
    }
    println!();
    for p in parts {
        print!("{:<14}", p.name);
        for k in KS {
            print!(" {:>10.2}", p.lifetime(k, ci, share, ipi) / 1000.0);
        }
        println!();
    }
}

/// `lazymm-lifetime.csv` (every scheme, CPU count, share and K) and
/// `lazymm-lifetime.svg` (cost against K at 1,024 CPUs, 1 % lazy).
pub(super) fn write_files(dir: &Path, m: &Model) {
    let mut out = String::from(
        "scheme,cpus,lazy_share,k,trip_ns,exit_ns,lazy_cpus,ipi_ns,ipi_source,ipis_lazy,lifetime_ns\n",
    );
    for p in &m.parts {
        for (ci, &c) in CPUS.iter().enumerate() {
            for s in SHARES {
                for k in KS {
                    out += &format!(
                        "{},{c},{s},{k},{:.3},{:.1},{:.2},{:.0},{},{},{:.1}\n",
                        p.name,
                        p.trip_ns,
                        p.exit_ns[ci],
                        s * (c - 1) as f64,
                        m.ipi_ns,
                        m.ipi_source.replace(',', ";"),
                        p.ipis,
                        p.lifetime(k, ci, s, m.ipi_ns)
                    );
                }
            }
        }
    }
    let path = dir.join("lazymm-lifetime.csv");
    match std::fs::write(&path, out) {
        Ok(()) => println!("CSV: {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
    match svg(dir, m) {
        Ok(p) => println!("SVG: {}", p.display()),
        Err(e) => eprintln!("could not write the lifetime chart: {e}"),
    }
}

fn svg(dir: &Path, m: &Model) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let path = dir.join("lazymm-lifetime.svg");
    let (ci, share) = (3, SHARES[1]);
    let ks: Vec<f64> = (0..=40).map(|i| 10f64.powf(i as f64 / 10.0)).collect();
    let all = m
        .parts
        .iter()
        .flat_map(|p| ks.iter().map(|&k| p.lifetime(k, ci, share, m.ipi_ns)));
    let lo = all.clone().fold(f64::INFINITY, f64::min).max(0.1) / 1.5;
    let hi = all.fold(0.0, f64::max) * 1.5;
    let target = path.clone();
    let root = SVGBackend::new(&target, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "lifetime cost per process: K round trips + exit, {} CPUs, {}% lazy at exit, IPI {:.0} ns",
                CPUS[ci],
                share * 100.0,
                m.ipi_ns
            ),
            ("sans-serif", 17),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d((1f64..1e4).log_scale(), (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("K: lazy round trips per process lifetime (log)")
        .y_desc("ns per process (log)")
        .x_label_formatter(&|x| fmt_k(*x))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for (i, p) in m.parts.iter().enumerate() {
        let color = super::report::PALETTE[i % super::report::PALETTE.len()].to_rgba();
        let pts: Vec<(f64, f64)> = ks
            .iter()
            .map(|&k| (k, p.lifetime(k, ci, share, m.ipi_ns)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
            .label(p.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(path)
}
