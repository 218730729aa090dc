//! tracefs, driven through an instance of our own so that the global
//! tracing state is never touched: `instances/lazymm-<pid>` is created with
//! the events on, read through its `trace_pipe`, and removed at the end
//! (also when recording fails half way).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The events the recorder needs (subsystem, event).
pub const EVENTS: [(&str, &str); 8] = [
    ("sched", "sched_switch"),
    ("task", "task_newtask"),
    ("sched", "sched_process_exec"),
    ("sched", "sched_process_exit"),
    ("sched", "sched_process_free"),
    ("tlb", "tlb_flush"),
    ("ipi", "ipi_send_cpu"),
    ("ipi", "ipi_send_cpumask"),
];

const ROOT: &str = "/sys/kernel/tracing";

/// Why tracefs cannot be used here (printed, and the exit status is 3).
pub fn preflight() -> Result<bool, String> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(format!("not root (euid {euid}): tracefs needs root"));
    }
    let mut mounted = false;
    if !Path::new(ROOT).join("instances").is_dir() {
        let st = std::process::Command::new("mount")
            .args(["-t", "tracefs", "nodev", ROOT])
            .status()
            .map_err(|e| format!("no tracefs at {ROOT}, and `mount` could not run: {e}"))?;
        if !st.success() || !Path::new(ROOT).join("instances").is_dir() {
            return Err(format!(
                "no tracefs at {ROOT}, and `mount -t tracefs nodev {ROOT}` failed ({st})"
            ));
        }
        mounted = true;
    }
    for (sys, ev) in EVENTS {
        let p = Path::new(ROOT).join("events").join(sys).join(ev);
        if !p.is_dir() {
            return Err(format!(
                "the event {sys}:{ev} is missing ({} does not exist): this kernel lacks it",
                p.display()
            ));
        }
    }
    Ok(mounted)
}

/// A tracefs instance of ours; dropped, it is removed.
pub struct Instance {
    dir: PathBuf,
    mounted: bool,
}

fn write(p: &Path, v: &str) -> Result<(), String> {
    fs::write(p, v).map_err(|e| format!("writing '{v}' to {}: {e}", p.display()))
}

impl Instance {
    /// Creates the instance with every event of [`EVENTS`] enabled and
    /// tracing off. `mounted`: tracefs was mounted by us (unmounted on drop).
    pub fn new(buffer_kb: usize, mounted: bool) -> Result<Instance, String> {
        let dir = Path::new(ROOT)
            .join("instances")
            .join(format!("lazymm-{}", std::process::id()));
        fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let inst = Instance { dir, mounted };
        write(&inst.dir.join("tracing_on"), "0")?;
        write(&inst.dir.join("buffer_size_kb"), &buffer_kb.to_string())?;
        // One clock for every CPU, so that merged events are in order.
        write(&inst.dir.join("trace_clock"), "mono")?;
        for (sys, ev) in EVENTS {
            write(
                &inst.dir.join("events").join(sys).join(ev).join("enable"),
                "1",
            )?;
        }
        Ok(inst)
    }

    /// Whether the function tracer could show where Linux's final
    /// `__mmdrop()` runs (its filter set to `__mmdrop`). The recorder does
    /// not use it: the story derives the place from the switches, which
    /// works where the filter is locked down (this VM: "Operation not
    /// permitted").
    pub fn function_tracer(&self) -> String {
        let p = self.dir.join("set_ftrace_filter");
        match fs::write(&p, "__mmdrop") {
            Ok(()) => {
                let _ = fs::write(&p, ""); // clear the filter again
                "available, not used (the final drop's place is derived from the switches)".into()
            }
            Err(e) => format!(
                "unavailable (writing __mmdrop to set_ftrace_filter: {e}); the final drop's place is derived from the switches"
            ),
        }
    }

    /// `trace_marker` of the instance (workloads write ground truth there).
    pub fn marker(&self) -> PathBuf {
        self.dir.join("trace_marker")
    }

    pub fn on(&self, on: bool) -> Result<(), String> {
        write(&self.dir.join("tracing_on"), if on { "1" } else { "0" })
    }

    /// Streams `trace_pipe` into `out` on a thread until `stop` is set and
    /// the pipe is empty.
    pub fn stream(
        &self,
        mut out: impl Write + Send + 'static,
        stop: Arc<AtomicBool>,
    ) -> Result<JoinHandle<Result<u64, String>>, String> {
        let p = self.dir.join("trace_pipe");
        let mut f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p)
            .map_err(|e| format!("opening {}: {e}", p.display()))?;
        Ok(std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            loop {
                match f.read(&mut buf) {
                    Ok(0) => {}
                    Ok(n) => {
                        out.write_all(&buf[..n]).map_err(|e| e.to_string())?;
                        total += n as u64;
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(format!("reading trace_pipe: {e}")),
                }
                // Empty: done once stopped, else wait for more.
                if stop.load(Ordering::Acquire) {
                    out.flush().map_err(|e| e.to_string())?;
                    return Ok(total);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }))
    }

    /// Events each CPU's ring buffer lost (`overrun`, `commit overrun`,
    /// `dropped events`).
    pub fn lost(&self, cpus: usize) -> Vec<u64> {
        (0..cpus)
            .map(|c| {
                let p = self.dir.join(format!("per_cpu/cpu{c}/stats"));
                let s = fs::read_to_string(p).unwrap_or_default();
                s.lines()
                    .filter_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        matches!(k.trim(), "overrun" | "commit overrun" | "dropped events")
                            .then(|| v.trim().parse::<u64>().ok())?
                    })
                    .sum()
            })
            .collect()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = write(&self.dir.join("tracing_on"), "0");
        for (sys, ev) in EVENTS {
            let _ = write(
                &self.dir.join("events").join(sys).join(ev).join("enable"),
                "0",
            );
        }
        if let Err(e) = fs::remove_dir(&self.dir) {
            eprintln!("record: could not remove {}: {e}", self.dir.display());
        }
        if self.mounted {
            let _ = std::process::Command::new("umount").arg(ROOT).status();
        }
    }
}

/// The tasks alive now: `(tid, tgid, kernel thread, comm)` from /proc.
pub fn snapshot() -> Vec<(i32, i32, bool, String)> {
    const PF_KTHREAD: u64 = 0x0020_0000;
    let mut v = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return v;
    };
    for p in procs.flatten() {
        let Some(tgid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(tasks) = fs::read_dir(p.path().join("task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(t.path().join("stat")) else {
                continue;
            };
            // "tid (comm) state ppid ... flags": comm may hold ')' and spaces.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let comm = stat[open + 1..close].replace(' ', "_");
            let flags = stat[close + 1..]
                .split_whitespace()
                .nth(6)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0);
            v.push((tid, tgid, flags & PF_KTHREAD != 0, comm));
        }
    }
    v
}
