//! The recorder: what the running Linux kernel does with address spaces,
//! written to a trace file that `compare --trace FILE` prices every scheme on.
//!
//! ```text
//! sudo cargo run --release --example record -- -o FILE [--seconds N] [--buffer-kb K] [-- COMMAND ARGS...]
//! sudo cargo run --release --example record -- -o FILE synthetic
//! ```
//!
//! As root, it creates a tracefs instance of its own (`instances/lazymm-PID`:
//! the global tracing state is never touched, and the instance is removed at
//! the end), enables the events of `lazymm::check::trace`, snapshots the
//! tasks alive (/proc: thread group, kernel thread or not), then runs
//! `COMMAND` (or records for `N` seconds, default 2) while streaming the
//! instance's `trace_pipe` into `FILE`. It writes the events each CPU's
//! ring buffer lost into the file and says so: a lossy trace is marked, and
//! its counts are lower bounds.
//!
//! `synthetic` records the ground-truth workload (`workload.rs`) and checks
//! the reconstruction against it: exit status 1 on any difference.
//!
//! Where tracefs cannot be used (not root, no tracefs and mounting fails, an
//! event missing) it prints `SKIP: ` and exactly why, and exits with status 3.

#[cfg(target_os = "linux")]
mod tracefs;
#[cfg(target_os = "linux")]
mod workload;

#[cfg(target_os = "linux")]
fn main() {
    imp::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("SKIP: record needs Linux's tracefs");
    std::process::exit(3);
}

#[cfg(target_os = "linux")]
mod imp {
    use super::{tracefs, workload};
    use std::io::{BufWriter, Write};
    use std::process::{exit, Command};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    const USAGE: &str = "\
usage: record -o FILE [--seconds N] [--buffer-kb K] [-- COMMAND ARGS...]
       record -o FILE synthetic
       record window IN OUT.gz EVENTS
  -o FILE        the trace file to write
  --seconds N    record for N seconds (default 2) when no COMMAND is given
  --buffer-kb K  ring buffer per CPU (default 16384)
  synthetic      record the ground-truth workload and check the story against it
  window         the header and first EVENTS events of trace IN, gzipped into
                 OUT.gz, '# seconds' set to the window's span (for tests/traces)
Needs root and tracefs; prints SKIP: and exits 3 where they are not usable.";

    fn fail(msg: &str) -> ! {
        eprintln!("record: {msg}\n\n{USAGE}");
        exit(2)
    }

    pub fn main() {
        let mut args: Vec<String> = std::env::args().skip(1).collect();
        if args.first().map(String::as_str) == Some("window") {
            if args.len() != 4 {
                fail("window takes IN OUT.gz EVENTS");
            }
            let n = args[3]
                .parse()
                .unwrap_or_else(|_| fail("window: EVENTS must be a number"));
            if let Err(e) = window(&args[1], &args[2], n) {
                eprintln!("record: {e}");
                exit(1);
            }
            return;
        }
        if args.first().map(String::as_str) == Some("__workload") {
            match args.get(1).map(String::as_str) {
                Some("synthetic") => workload::synthetic(),
                Some("pingpong") => {
                    workload::pingpong(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2.0))
                }
                _ => fail("unknown workload"),
            }
            return;
        }
        let mut out = None;
        let mut seconds = 2.0f64;
        let mut buffer_kb = 16_384usize;
        let mut command: Vec<String> = Vec::new();
        let mut synthetic = false;
        let mut it = args.drain(..);
        while let Some(a) = it.next() {
            match a.as_str() {
                "-o" => out = Some(it.next().unwrap_or_else(|| fail("-o needs a file"))),
                "--seconds" => {
                    seconds = it
                        .next()
                        .and_then(|s| s.parse().ok())
                        .filter(|s: &f64| s.is_finite() && *s > 0.0)
                        .unwrap_or_else(|| fail("--seconds needs a number > 0"))
                }
                "--buffer-kb" => {
                    buffer_kb = it
                        .next()
                        .and_then(|s| s.parse().ok())
                        .filter(|&k| k > 0)
                        .unwrap_or_else(|| fail("--buffer-kb needs a number > 0"))
                }
                "synthetic" => synthetic = true,
                "--" => command = it.by_ref().collect(),
                "-h" | "--help" => {
                    println!("{USAGE}");
                    return;
                }
                other => fail(&format!("unknown argument '{other}'")),
            }
        }
        let out = out.unwrap_or_else(|| fail("-o FILE is required"));
        if synthetic {
            let me = std::env::current_exe().expect("own path");
            command = vec![
                me.display().to_string(),
                "__workload".into(),
                "synthetic".into(),
            ];
        }
        let mounted = match tracefs::preflight() {
            Ok(m) => m,
            Err(why) => {
                println!("SKIP: record: {why}");
                exit(3);
            }
        };
        let status = record(&out, &command, seconds, buffer_kb, mounted);
        if let Err(e) = status {
            eprintln!("record: {e}");
            exit(1);
        }
        if synthetic {
            exit(check_synthetic(&out));
        }
    }

    fn record(
        out: &str,
        command: &[String],
        seconds: f64,
        buffer_kb: usize,
        mounted: bool,
    ) -> Result<(), String> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let inst = tracefs::Instance::new(buffer_kb, mounted)?;
        let file = std::fs::File::create(out).map_err(|e| format!("creating {out}: {e}"))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let io = |e: std::io::Error| format!("writing {out}: {e}");
        writeln!(w, "# lazymm-trace 1").map_err(io)?;
        writeln!(w, "# cpus {cpus}").map_err(io)?;
        writeln!(w, "# clock mono").map_err(io)?;
        let what = if command.is_empty() {
            format!("idle recording of {seconds} s")
        } else {
            command.join(" ")
        };
        writeln!(w, "# command {what}").map_err(io)?;
        let ftrace = inst.function_tracer();
        println!("record: function tracer: {ftrace}");
        writeln!(w, "# ftrace {ftrace}").map_err(io)?;
        // A snapshot, tracing, a second snapshot: a task alive when tracing
        // began is in one of them unless it was born and died within the
        // /proc walk; one created after it began is in the trace too, and
        // the story lets the trace's creation win.
        let before = tracefs::snapshot();
        inst.on(true)?;
        let mut tasks = tracefs::snapshot();
        let seen: std::collections::HashSet<i32> = tasks.iter().map(|t| t.0).collect();
        tasks.extend(before.into_iter().filter(|t| !seen.contains(&t.0)));
        for (tid, tgid, k, comm) in tasks {
            let kind = if k { "k" } else { "u" };
            writeln!(w, "# task {tid} {tgid} {kind} {comm}").map_err(io)?;
        }
        w.flush().map_err(io)?;
        let stop = Arc::new(AtomicBool::new(false));
        let reader = inst.stream(w, stop.clone())?;
        let start = Instant::now();
        let run = if command.is_empty() {
            std::thread::sleep(Duration::from_secs_f64(seconds));
            Ok(())
        } else {
            Command::new(&command[0])
                .args(&command[1..])
                .env("LAZYMM_TRACE_MARKER", inst.marker())
                .status()
                .map_err(|e| format!("running {}: {e}", command[0]))
                .and_then(|st| {
                    if st.success() {
                        Ok(())
                    } else {
                        Err(format!("{} exited with {st}", command[0]))
                    }
                })
        };
        // Let the last events (the command's exit) reach the buffer.
        std::thread::sleep(Duration::from_millis(50));
        let secs = start.elapsed().as_secs_f64();
        inst.on(false)?;
        // Release: the reader's acquire sees the flag after tracing stopped.
        stop.store(true, Ordering::Release);
        let bytes = reader.join().map_err(|_| "the reader panicked")??;
        let lost = inst.lost(cpus);
        drop(inst);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(out)
            .map_err(|e| format!("reopening {out}: {e}"))?;
        writeln!(f, "# seconds {secs:.6}").map_err(io)?;
        for (c, n) in lost.iter().enumerate() {
            writeln!(f, "# overrun cpu{c} {n}").map_err(io)?;
        }
        let total: u64 = lost.iter().sum();
        println!(
            "record: {out}: {:.1} MB of events over {secs:.2} s on {cpus} CPUs{}",
            bytes as f64 / 1e6,
            if total > 0 {
                format!("; LOSSY: {total} events lost (counts are lower bounds)")
            } else {
                "; no events lost".into()
            }
        );
        run
    }

    /// The header and the first `n` event lines of `input`, gzipped.
    fn window(input: &str, out: &str, n: usize) -> Result<(), String> {
        use lazymm::check::trace::parse::{parse_line, Line};
        let text = std::fs::read_to_string(input).map_err(|e| format!("{input}: {e}"))?;
        let (mut head, mut body) = (String::new(), String::new());
        let (mut first, mut last, mut kept) = (None, 0u64, 0usize);
        for (i, l) in text.lines().enumerate() {
            match parse_line(i + 1, l).map_err(|e| e.to_string())? {
                Line::Record(r) if kept < n => {
                    first.get_or_insert(r.ts);
                    last = r.ts;
                    kept += 1;
                    body.push_str(l);
                    body.push('\n');
                }
                Line::Record(_) => {}
                _ if l.starts_with("# seconds") => {}
                _ => {
                    head.push_str(l);
                    head.push('\n');
                }
            }
        }
        let span = (last - first.unwrap_or(last)) as f64 / 1e9;
        head.push_str(&format!(
            "# seconds {span:.6}\n# window of the first {kept} events of {input}\n"
        ));
        let f = std::fs::File::create(out).map_err(|e| format!("{out}: {e}"))?;
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::best());
        gz.write_all(head.as_bytes())
            .and_then(|_| gz.write_all(body.as_bytes()))
            .and_then(|_| gz.finish().map(drop))
            .map_err(|e| format!("{out}: {e}"))?;
        println!("record: {out}: {kept} events, {span:.3} s");
        Ok(())
    }

    /// Reads the synthetic trace back and compares the story with the
    /// workload's markers; the exit status.
    fn check_synthetic(path: &str) -> i32 {
        use lazymm::check::trace::{parse, truth, Story};
        let text = std::fs::read_to_string(path).expect("the trace just written");
        let p = match parse(&text) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("record: {e}");
                return 1;
            }
        };
        let story = Story::new(&p);
        if story.lossy() {
            println!(
                "SKIP: ground truth: the recording lost events; exact counts cannot be checked"
            );
            return 3;
        }
        match truth::check(&p, &story) {
            Err(e) => {
                eprintln!("record: ground truth: {e}");
                1
            }
            Ok(c) => {
                for (k, e, f) in &c.counts {
                    println!("ground truth: {k:<8} workload {e:>5}  story {f:>5}");
                }
                for (t, e, f) in &c.switches {
                    println!("ground truth: switches of tid {t}: getrusage {e}, trace {f}");
                }
                let bad = c.mismatches();
                if bad.is_empty() {
                    println!("ground truth: the story is exact");
                    0
                } else {
                    for b in bad {
                        eprintln!("ground truth MISMATCH: {b}");
                    }
                    1
                }
            }
        }
    }
}
