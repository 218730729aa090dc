//! Workloads the recorder runs as its command (`record __workload NAME`):
//!
//! * `synthetic`: the ground-truth workload. It forks, execs, vforks
//!   (`posix_spawn`), runs a thread group whose leader exits first and one
//!   whose non-leader thread execs, and two pinned ping-pong threads; it
//!   writes what it did to the instance's `trace_marker` (the markers of
//!   `lazymm::check::trace::truth`).
//! * `pingpong SECONDS`: two threads of one process pinned to CPUs 0 and 1
//!   ping-pong a byte through two pipes (will-it-scale's
//!   `context_switch1_threads`, as `benches/context_switch.rs`); prints
//!   round trips per second, so that the recorder's own cost is measured.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

/// Where markers go: `LAZYMM_TRACE_MARKER` (set by the recorder).
fn marker(text: &str) {
    let Ok(path) = std::env::var("LAZYMM_TRACE_MARKER") else {
        return;
    };
    let mut f = OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {path}: {e}"));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("writing {path}: {e}"));
}

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// This thread's context switches so far (voluntary + involuntary).
fn switches() -> u64 {
    // SAFETY: an all-zero rusage is valid; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid out pointer.
    let r = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    assert_eq!(r, 0, "getrusage failed");
    (ru.ru_nvcsw + ru.ru_nivcsw) as u64
}

/// Writes this thread's switch count, bracketed by two reads that agree.
fn switch_marker() {
    loop {
        let a = switches();
        marker(&format!("lazymm-csw tid={} switches={a}", gettid()));
        if switches() == a {
            return;
        }
    }
}

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET and
    // sched_setaffinity get a valid pointer to it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn pipe() -> [i32; 2] {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe failed");
    fds
}

fn rd(fd: i32) {
    let mut b = 0u8;
    // SAFETY: one byte into a valid buffer.
    assert_eq!(unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) }, 1);
}

fn wr(fd: i32) {
    let b = 1u8;
    // SAFETY: one byte from a valid buffer.
    assert_eq!(unsafe { libc::write(fd, (&b as *const u8).cast(), 1) }, 1);
}

/// Two pinned threads ping-pong until `stop` says so; round trips done.
fn ping_pong(rounds: Option<u64>, until: Option<Instant>, with_markers: bool) -> u64 {
    let (a, b) = (pipe(), pipe());
    let n = cpus();
    let go = move |cpu: usize, rx: i32, tx: i32, first: bool| {
        move || {
            pin(cpu % n);
            let mut done = 0u64;
            loop {
                let more = match (rounds, until) {
                    (Some(r), _) => done < r,
                    (None, Some(t)) => !first || Instant::now() < t,
                    _ => false,
                };
                if !more {
                    if first {
                        // Two bytes in one write: the other side's stop.
                        let stop = [1u8; 2];
                        // SAFETY: two bytes from a valid buffer.
                        let n = unsafe { libc::write(tx, stop.as_ptr().cast(), 2) };
                        assert_eq!(n, 2);
                    }
                    break;
                }
                if first {
                    wr(tx);
                    rd(rx);
                } else {
                    let mut byte = [0u8; 2];
                    // SAFETY: up to two bytes into a valid buffer.
                    let got = unsafe { libc::read(rx, byte.as_mut_ptr().cast(), 2) };
                    if got == 2 {
                        break; // the stop signal
                    }
                    wr(tx);
                }
                done += 1;
            }
            if with_markers {
                switch_marker();
            }
            done
        }
    };
    let t1 = std::thread::spawn(go(0, b[0], a[1], true));
    let t2 = std::thread::spawn(go(1, a[0], b[1], false));
    let done = t1.join().expect("ping");
    t2.join().expect("pong");
    for fd in a.into_iter().chain(b) {
        // SAFETY: our own descriptors.
        unsafe { libc::close(fd) };
    }
    done
}

fn exec_true() -> ! {
    let path = CString::new("/bin/true").expect("no NUL");
    let argv = [path.as_ptr(), std::ptr::null()];
    // SAFETY: a NUL-terminated path and argv.
    unsafe { libc::execv(path.as_ptr(), argv.as_ptr()) };
    // SAFETY: async-signal-safe exit of a forked child.
    unsafe { libc::_exit(127) }
}

fn wait(pid: i32) {
    let mut st = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
}

fn fork() -> i32 {
    // SAFETY: called while this process has one thread; the child only
    // makes async-signal-safe calls or execs (or spawns a thread in a
    // child that is itself single-threaded).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    pid
}

const FORKS: u64 = 4;
const EXECS: u64 = 3;
const VFORKS: u64 = 3;
const ROUNDS: u64 = 2_000;

/// The ground-truth workload (see the module docs).
pub fn synthetic() {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    marker(&format!("lazymm-root pid={me}"));
    for _ in 0..FORKS {
        let pid = fork();
        if pid == 0 {
            // SAFETY: exit the forked child.
            unsafe { libc::_exit(0) };
        }
        wait(pid);
    }
    for _ in 0..EXECS {
        let pid = fork();
        if pid == 0 {
            exec_true();
        }
        wait(pid);
    }
    let path = CString::new("/bin/true").expect("no NUL");
    for _ in 0..VFORKS {
        let argv = [path.as_ptr(), std::ptr::null_mut()];
        let mut pid = 0;
        // SAFETY: valid path and argv; no file actions or attributes;
        // glibc's posix_spawn is clone(CLONE_VM | CLONE_VFORK) + exec.
        let r = unsafe {
            libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                argv.as_ptr() as *const *mut libc::c_char,
                std::ptr::null(),
            )
        };
        assert_eq!(r, 0, "posix_spawn failed");
        wait(pid);
    }
    // A thread group whose leader exits first: the mm dies with the thread.
    let pid = fork();
    if pid == 0 {
        std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(30));
            // SAFETY: ends the whole (child) process.
            unsafe { libc::_exit(0) }
        });
        // SAFETY: the leader thread alone exits (SYS_exit, not exit_group).
        unsafe { libc::syscall(libc::SYS_exit, 0) };
        unreachable!();
    }
    wait(pid);
    // A non-leader thread execs: de_thread() kills the leader and the
    // thread takes its pid.
    let pid = fork();
    if pid == 0 {
        std::thread::spawn(|| exec_true());
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    wait(pid);
    let done = ping_pong(Some(ROUNDS), None, true);
    assert_eq!(done, ROUNDS);
    let forks = FORKS + EXECS + 2;
    let execs = EXECS + VFORKS + 1;
    // fork children, exec'd children, spawned children, the two threads,
    // the two special leaders and their other task, and this process.
    let exits = FORKS + EXECS + VFORKS + 2 + 2 + 2 + 1;
    let deaths = FORKS + 2 * EXECS + VFORKS + 1 + 2 + 1;
    marker(&format!(
        "lazymm-expect forks={forks} threads={} vforks={VFORKS} execs={execs} exits={exits} \
         births={} deaths={deaths}",
        2 + 2,
        forks + execs
    ));
}

/// The ping-pong for `secs` seconds; prints its rate.
pub fn pingpong(secs: f64) {
    let start = Instant::now();
    let done = ping_pong(None, Some(start + Duration::from_secs_f64(secs)), false);
    let rate = done as f64 / start.elapsed().as_secs_f64();
    println!("pingpong: {done} round trips in {secs} s: {rate:.0} round trips/s");
}
