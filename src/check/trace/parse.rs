//! The trace file: a header the recorder writes, then tracefs's text output
//! (`trace_pipe`) line by line.
//!
//! ```text
//! # lazymm-trace 1
//! # cpus 2
//! # task 1 1 u systemd                      (tid, tgid, k = kernel thread / u = user, comm)
//! # overrun cpu0 0                          (per-CPU events lost in the ring buffer)
//!             bash-21175   [001] d..2. 11714.552663: sched_switch: prev_comm=bash prev_pid=21175 ...
//! ```
//!
//! [`parse_line`] turns each line into a [`Line`] ([`parse`]: a whole file); a line that does not fit
//! is an [`Error`] naming the line and what was expected. Nothing here
//! panics on bad input (the proptest in `tests/trace.rs` feeds it noise).

use std::fmt;
use std::string::{String, ToString};
use std::vec::Vec;

/// `CLONE_VM`: the child shares the parent's mm.
pub const CLONE_VM: u64 = 0x100;
/// `CLONE_VFORK`: the parent sleeps until the child execs or exits.
pub const CLONE_VFORK: u64 = 0x4000;
/// `CLONE_THREAD`: the child joins the parent's thread group.
pub const CLONE_THREAD: u64 = 0x10000;

/// The reasons of the `tlb:tlb_flush` event (x86's `enum tlb_flush_reason`).
pub const TLB_REASONS: [&str; 6] = [
    "flush on task switch",
    "remote shootdown",
    "local shootdown",
    "local MM shootdown",
    "remote IPI send",
    "remote wrong CPU",
];

/// One event of the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `sched:sched_switch`.
    Switch {
        /// The task switched out.
        prev_pid: i32,
        /// The task switched in (0: idle).
        next_pid: i32,
    },
    /// `task:task_newtask`: `pid` was created by the record's task.
    NewTask {
        /// The new task.
        pid: i32,
        /// Its `clone()` flags ([`CLONE_VM`], [`CLONE_THREAD`]...).
        clone_flags: u64,
    },
    /// `sched:sched_process_exec`: `old_pid` execs and from now on is `pid`
    /// (they differ when a non-leader thread execs and takes the leader's pid).
    Exec {
        /// The task's pid after the exec.
        pid: i32,
        /// Its pid before.
        old_pid: i32,
    },
    /// `sched:sched_process_exit`: `pid` ran `exit_mm()`.
    Exit {
        /// The exiting task.
        pid: i32,
        /// It was the last live thread of its group.
        group_dead: bool,
    },
    /// `sched:sched_process_free`.
    Free {
        /// The task freed.
        pid: i32,
    },
    /// `tlb:tlb_flush` with its reason ([`TLB_REASONS`]).
    TlbFlush {
        /// Index into [`TLB_REASONS`].
        reason: u8,
    },
    /// `ipi:ipi_send_cpu` / `ipi:ipi_send_cpumask`: `targets` CPUs, and
    /// whether it is a TLB flush (`tlb_ipi`).
    Ipi {
        /// CPUs sent to.
        targets: u32,
        /// A TLB flush IPI.
        tlb: bool,
    },
    /// A `trace_marker` write (`tracing_mark_write`).
    Marker(String),
    /// Any other event (kept, not interpreted).
    Other,
}

/// One parsed line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// 1-based line number in the file.
    pub line: usize,
    /// The CPU it happened on.
    pub cpu: u32,
    /// Timestamp in ns.
    pub ts: u64,
    /// The task that was running (`common_pid`).
    pub pid: i32,
    /// What happened.
    pub event: Event,
}

/// What one line of the file is.
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    /// A header item.
    Header(Header),
    /// An event.
    Record(Record),
    /// `CPU:N [LOST K EVENTS]` from `trace_pipe`.
    Lost {
        /// The CPU whose buffer lost them.
        cpu: u32,
        /// How many.
        events: u64,
    },
    /// A comment or blank line.
    Nothing,
}

/// A header item the recorder writes.
#[derive(Clone, Debug, PartialEq)]
pub enum Header {
    /// `# lazymm-trace V`.
    Version(u32),
    /// `# cpus N`: CPUs of the recorded machine.
    Cpus(u32),
    /// `# task TID TGID k|u COMM`: a task alive when recording started.
    Task {
        /// Thread id.
        tid: i32,
        /// Thread group (process) id.
        tgid: i32,
        /// A kernel thread (no mm).
        kthread: bool,
    },
    /// `# overrun cpuN K`: events the ring buffer lost on CPU N.
    Overrun {
        /// The CPU.
        cpu: u32,
        /// Events lost.
        events: u64,
    },
    /// `# seconds S`: length of the recording.
    Seconds(f64),
    /// Any other `# key value` line (the command, the clock...).
    Other,
}

/// A line that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// 1-based line number.
    pub line: usize,
    /// What the line should have had.
    pub expected: &'static str,
    /// The start of the offending text.
    pub text: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "trace line {}: expected {}, found '{}'",
            self.line, self.expected, self.text
        )
    }
}

impl std::error::Error for Error {}

/// The file format version this parser reads.
pub const VERSION: u32 = 1;

/// Parses one line (`line` is its 1-based number, for errors).
pub fn parse_line(line: usize, text: &str) -> Result<Line, Error> {
    let err = |expected: &'static str, at: &str| Error {
        line,
        expected,
        text: at.chars().take(80).collect(),
    };
    let t = text.trim_end_matches(['\n', '\r']);
    if let Some(h) = t.strip_prefix('#') {
        return header(h.trim()).map_err(|e| err(e, t));
    }
    if t.trim().is_empty() {
        return Ok(Line::Nothing);
    }
    if let Some(rest) = t.strip_prefix("CPU:") {
        let (cpu, rest) = split_num(rest).ok_or_else(|| err("a CPU number after 'CPU:'", t))?;
        let rest = rest
            .strip_prefix(" [LOST ")
            .ok_or_else(|| err("' [LOST N EVENTS]'", t))?;
        let (events, _) = split_num(rest).ok_or_else(|| err("a count of lost events", t))?;
        return Ok(Line::Lost {
            cpu: cpu as u32,
            events,
        });
    }
    // "<comm>-<pid> [CPU] flags secs.usecs: name: fields"; comm may hold
    // anything, so find the CPU bracket: "[" digits "] ".
    let (open, close) = cpu_bracket(t).ok_or_else(|| err("'[CPU]' after the task", t))?;
    let before = t[..open].trim_end();
    let dash = before
        .rfind('-')
        .ok_or_else(|| err("'comm-pid' before '[CPU]'", t))?;
    let pid = num_i32(&before[dash + 1..]).ok_or_else(|| err("a pid before '[CPU]'", t))?;
    let cpu = t[open + 1..close]
        .parse::<u32>()
        .map_err(|_| err("a CPU number", t))?;
    let after = &t[close + 1..];
    // The timestamp is the first token ending in ':' (the flags precede it).
    let colon = after
        .find(": ")
        .ok_or_else(|| err("'TIMESTAMP: EVENT: ...'", t))?;
    let ts_text = after[..colon]
        .rsplit(' ')
        .next()
        .ok_or_else(|| err("a timestamp", t))?;
    let ts = timestamp(ts_text).ok_or_else(|| err("a timestamp 'SECONDS.MICROS'", t))?;
    let rest = &after[colon + 2..];
    let (name, fields) = rest
        .split_once(": ")
        .map_or((rest.trim_end_matches(':'), ""), |(n, f)| (n, f));
    let event = event(name, fields).ok_or_else(|| err(expected_fields(name), t))?;
    Ok(Line::Record(Record {
        line,
        cpu,
        ts,
        pid,
        event,
    }))
}

fn expected_fields(name: &str) -> &'static str {
    match name {
        "sched_switch" => "sched_switch fields 'prev_pid=N ... next_pid=N'",
        "task_newtask" => "task_newtask fields 'pid=N ... clone_flags=HEX'",
        "sched_process_exec" => "sched_process_exec fields '... pid=N old_pid=N'",
        "sched_process_exit" => "sched_process_exit fields '... pid=N ...'",
        "sched_process_free" => "sched_process_free fields '... pid=N ...'",
        "tlb_flush" => "tlb_flush fields '... reason:TEXT (N)'",
        "ipi_send_cpu" => "ipi_send_cpu fields 'cpu=N ... callback=SYM'",
        "ipi_send_cpumask" => "ipi_send_cpumask fields 'cpumask=LIST ... callback=SYM'",
        _ => "event fields",
    }
}

fn header(h: &str) -> Result<Line, &'static str> {
    let (key, value) = h.split_once(' ').unwrap_or((h, ""));
    let value = value.trim();
    let item = match key {
        "lazymm-trace" => Header::Version(value.parse().map_err(|_| "a format version")?),
        "cpus" => Header::Cpus(value.parse().map_err(|_| "a CPU count")?),
        "seconds" => Header::Seconds(
            value
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or("a length in seconds")?,
        ),
        "task" => {
            let mut it = value.splitn(4, ' ');
            let tid = it
                .next()
                .and_then(num_i32)
                .ok_or("'task TID TGID k|u COMM'")?;
            let tgid = it
                .next()
                .and_then(num_i32)
                .ok_or("'task TID TGID k|u COMM'")?;
            let kthread = match it.next() {
                Some("k") => true,
                Some("u") => false,
                _ => return Err("'k' or 'u' after 'task TID TGID'"),
            };
            Header::Task { tid, tgid, kthread }
        }
        "overrun" => {
            let (c, n) = value.split_once(' ').ok_or("'overrun cpuN COUNT'")?;
            let cpu = c
                .strip_prefix("cpu")
                .and_then(|c| c.parse().ok())
                .ok_or("'overrun cpuN COUNT'")?;
            let events = n.trim().parse().map_err(|_| "'overrun cpuN COUNT'")?;
            Header::Overrun { cpu, events }
        }
        _ => return Ok(Line::Nothing.header_other(key)),
    };
    Ok(Line::Header(item))
}

impl Line {
    /// A `# key ...` comment: recorder metadata we do not interpret, or a
    /// tracefs comment (`# tracer: nop`).
    fn header_other(self, key: &str) -> Line {
        if key.is_empty() || key.ends_with(':') || !key.is_ascii() {
            Line::Nothing
        } else {
            Line::Header(Header::Other)
        }
    }
}

/// Byte offsets of '[' and ']' of the CPU field.
fn cpu_bracket(t: &str) -> Option<(usize, usize)> {
    let b = t.as_bytes();
    let mut from = 0;
    while let Some(i) = t[from..].find('[').map(|i| i + from) {
        let mut j = i + 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > i + 1 && j < b.len() && b[j] == b']' && b.get(j + 1) == Some(&b' ') {
            return Some((i, j));
        }
        from = i + 1;
    }
    None
}

/// A leading decimal number and what follows it.
fn split_num(s: &str) -> Option<(u64, &str)> {
    let end = s.bytes().take_while(u8::is_ascii_digit).count();
    if end == 0 || end > 19 {
        return None;
    }
    Some((s[..end].parse().ok()?, &s[end..]))
}

fn num_i32(s: &str) -> Option<i32> {
    let s = s.trim();
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// "SECONDS.MICROS" (tracefs prints µs; nanosecond clocks print 9 digits).
fn timestamp(s: &str) -> Option<u64> {
    let (secs, frac) = s.split_once('.')?;
    let (secs, rest) = split_num(secs)?;
    if !rest.is_empty() || frac.is_empty() || frac.len() > 9 {
        return None;
    }
    let (f, rest) = split_num(frac)?;
    if !rest.is_empty() {
        return None;
    }
    let scale = 10u64.pow(9 - frac.len() as u32);
    secs.checked_mul(1_000_000_000)?.checked_add(f * scale)
}

/// The value after the last `key` (with its leading space, so that
/// `pid=` does not match inside `old_pid=`), up to the next space.
fn field<'a>(fields: &'a str, key: &str) -> Option<&'a str> {
    let at = if fields.starts_with(&key[1..]) && key.starts_with(' ') {
        Some(key.len() - 1)
    } else {
        fields.rfind(key).map(|i| i + key.len())
    }?;
    let v = &fields[at..];
    Some(v.split(' ').next().unwrap_or(v))
}

fn pid_field(fields: &str, key: &str) -> Option<i32> {
    num_i32(field(fields, key)?)
}

fn event(name: &str, f: &str) -> Option<Event> {
    Some(match name {
        "sched_switch" => {
            // prev_comm comes first and may hold anything: search prev_pid
            // from the front after it, next_pid from the back.
            let prev = f.find(" prev_pid=")?;
            let prev_pid = num_i32(f[prev + 10..].split(' ').next()?)?;
            let next_pid = pid_field(f, " next_pid=")?;
            Event::Switch { prev_pid, next_pid }
        }
        "task_newtask" => Event::NewTask {
            pid: num_i32(f.strip_prefix("pid=")?.split(' ').next()?)?,
            clone_flags: u64::from_str_radix(field(f, " clone_flags=")?, 16).ok()?,
        },
        "sched_process_exec" => Event::Exec {
            pid: pid_field(f, " pid=")?,
            old_pid: pid_field(f, " old_pid=")?,
        },
        "sched_process_exit" => Event::Exit {
            pid: pid_field(f, " pid=")?,
            group_dead: field(f, " group_dead=").is_some_and(|v| v == "1"),
        },
        "sched_process_free" => Event::Free {
            pid: pid_field(f, " pid=")?,
        },
        "tlb_flush" => {
            let open = f.rfind('(')?;
            let reason = f[open + 1..].strip_suffix(')')?.parse::<u8>().ok()?;
            Event::TlbFlush { reason }
        }
        "ipi_send_cpu" => {
            num_i32(field(f, " cpu=")?)?;
            Event::Ipi {
                targets: 1,
                tlb: tlb_ipi(f)?,
            }
        }
        "ipi_send_cpumask" => Event::Ipi {
            targets: cpulist_len(field(f, " cpumask=")?)?,
            tlb: tlb_ipi(f)?,
        },
        "tracing_mark_write" => Event::Marker(f.trim().to_string()),
        _ => Event::Other,
    })
}

/// Whether an IPI is a TLB flush: its callback is `flush_tlb_func`, or it
/// is sent from `on_each_cpu_cond_mask()` (x86's `native_flush_tlb_multi()`;
/// the callback is then the generic function-call handler).
fn tlb_ipi(f: &str) -> Option<bool> {
    let callback = field(f, " callback=")?;
    let callsite = field(f, " callsite=").unwrap_or("");
    Some(callback.starts_with("flush_tlb_func") || callsite.starts_with("on_each_cpu_cond_mask"))
}

/// CPUs in a cpulist such as `0,2-5`.
fn cpulist_len(s: &str) -> Option<u32> {
    let mut n = 0u32;
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?);
                n = n.checked_add(b.checked_sub(a)? + 1)?;
            }
            None => {
                part.parse::<u32>().ok()?;
                n = n.checked_add(1)?;
            }
        }
    }
    Some(n)
}

/// Parses a whole file, keeping the records and the header.
#[derive(Debug, Default)]
pub struct Parsed {
    /// `# lazymm-trace V`.
    pub version: Option<u32>,
    /// `# cpus N`.
    pub cpus: Option<u32>,
    /// `# seconds S`.
    pub seconds: Option<f64>,
    /// `(tid, tgid, kthread)` of the tasks alive when recording started.
    pub tasks: Vec<(i32, i32, bool)>,
    /// Events lost per CPU: the larger of the ring buffer's overrun count
    /// (the header) and the `[LOST N EVENTS]` lines `trace_pipe` wrote for
    /// that CPU (two reports of the same losses).
    pub lost: Vec<u64>,
    lost_lines: Vec<u64>,
    /// The events, in file order (time order: `trace_pipe` merges the CPUs).
    pub records: Vec<Record>,
}

impl Parsed {
    /// Whether any event was lost.
    pub fn lossy(&self) -> bool {
        self.lost.iter().any(|&n| n > 0)
    }

    /// Adds to CPU `cpu`'s overrun count (`lines`: from `[LOST]` lines).
    fn lose(&mut self, cpu: u32, n: u64, lines: bool) {
        let c = cpu as usize;
        for v in [&mut self.lost, &mut self.lost_lines] {
            if v.len() <= c {
                v.resize(c + 1, 0);
            }
        }
        if lines {
            self.lost_lines[c] = self.lost_lines[c].saturating_add(n);
        } else {
            self.lost[c] = self.lost[c].saturating_add(n);
        }
    }
}

/// Parses `text` (a whole trace file).
pub fn parse(text: &str) -> Result<Parsed, Error> {
    let mut p = Parsed::default();
    for (i, l) in text.lines().enumerate() {
        match parse_line(i + 1, l)? {
            Line::Header(Header::Version(v)) => {
                if v != VERSION {
                    return Err(Error {
                        line: i + 1,
                        expected: "format version 1 ('# lazymm-trace 1')",
                        text: l.chars().take(80).collect(),
                    });
                }
                p.version = Some(v)
            }
            Line::Header(Header::Cpus(n)) => p.cpus = Some(n),
            Line::Header(Header::Seconds(s)) => p.seconds = Some(s),
            Line::Header(Header::Task { tid, tgid, kthread }) => p.tasks.push((tid, tgid, kthread)),
            Line::Header(Header::Overrun { cpu, events }) => p.lose(cpu, events, false),
            Line::Lost { cpu, events } => p.lose(cpu, events, true),
            Line::Record(r) => {
                if p.cpus.is_some_and(|n| r.cpu >= n) {
                    return Err(Error {
                        line: i + 1,
                        expected: "a CPU below the header's '# cpus'",
                        text: l.chars().take(80).collect(),
                    });
                }
                p.records.push(r)
            }
            Line::Header(Header::Other) | Line::Nothing => {}
        }
    }
    for (l, n) in p.lost.iter_mut().zip(&p.lost_lines) {
        *l = (*l).max(*n);
    }
    if p.version.is_none() {
        return Err(Error {
            line: 1,
            expected: "a lazymm trace ('# lazymm-trace 1' in the header)",
            text: text.lines().next().unwrap_or("").chars().take(80).collect(),
        });
    }
    Ok(p)
}
