//! What bounds a run: a child process that must finish within a time limit (one hung cell must fail
//! its run with its name, never hang CI), and the rule that a skip fails under CI.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a matrix cell's or a power cell's child may run. The slowest cells (SQLite's lock
/// protocol retries, the long migrations of the killed-inside cells, a power cell's workload and
/// its judge) finish in well under a minute here; five minutes is a hang.
pub(crate) const CELL_TIME_LIMIT: Duration = Duration::from_secs(300);

/// How often a waiting parent looks whether its child has exited.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long the parent reads what a child wrote after the child exited or was killed: a
/// grandchild that escaped the kill may hold the pipe open, and must not hang the parent.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// What a child printed, and how it ended.
#[derive(Debug)]
pub(crate) struct Finished {
    /// How it ended: after the kill, when it ran past its time limit.
    pub(crate) status: ExitStatus,
    /// It was still running at its time limit and was SIGKILLed then (with its process group,
    /// where it leads one).
    pub(crate) timed_out: bool,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

impl Finished {
    /// What the child wrote to standard error, after a colon, or nothing when it wrote nothing.
    pub(crate) fn last_words(&self) -> String {
        match String::from_utf8_lossy(&self.stderr).trim() {
            "" => String::new(),
            said => format!(": {said}"),
        }
    }

    /// Why a child that gave no result gave none: its exit status, or the time limit, and what
    /// it wrote to standard error.
    pub(crate) fn why_no_result(&self, limit: Duration) -> String {
        if self.timed_out {
            format!(
                "timed out after {} s and was killed{}",
                limit.as_secs(),
                self.last_words()
            )
        } else {
            format!("exited with {}{}", self.status, self.last_words())
        }
    }
}

/// Runs `command` (standard input closed, its output piped) in a process group of its own, within
/// `limit`: past it the whole group is killed (the child and what it spawned: a lock holder, a
/// mount's server) and [`Finished::timed_out`] says so.
pub(crate) fn run_within(command: &mut Command, limit: Duration) -> std::io::Result<Finished> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    wait_until(child, Instant::now() + limit)
}

/// Waits for `child` until `deadline`, reading its piped standard output and error meanwhile (a
/// full pipe would stop it); one still running at the deadline is SIGKILLed (its process group,
/// where it leads one), so that a child that never ends fails its run instead of hanging it.
pub(crate) fn wait_until(mut child: Child, deadline: Instant) -> std::io::Result<Finished> {
    let stdout = read_to_end_in_thread(child.stdout.take());
    let stderr = read_to_end_in_thread(child.stderr.take());
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            kill_with_group(&mut child)?;
            break child.wait()?;
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    Ok(Finished {
        status,
        timed_out,
        stdout: stdout.recv_timeout(DRAIN_LIMIT).unwrap_or_default(),
        stderr: stderr.recv_timeout(DRAIN_LIMIT).unwrap_or_default(),
    })
}

fn read_to_end_in_thread(
    pipe: Option<impl std::io::Read + Send + 'static>,
) -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        let _ = sender.send(bytes);
    });
    receiver
}

/// SIGKILL to `child`'s process group where it leads one (what it spawned goes with it), else to
/// the child alone.
fn kill_with_group(child: &mut Child) -> std::io::Result<()> {
    let pid = child.id() as libc::pid_t;
    // SAFETY: getpgid(2) and kill(2) take plain integers; no memory is involved.
    if unsafe { libc::getpgid(pid) } == pid {
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        Ok(())
    } else {
        child.kill()
    }
}

/// Whether a cell or campaign that could not run here (a capability missing) fails the run: under
/// CI always, since CI installs what every cell needs (`.ci/run`), and a skip there would pass a
/// run that proved nothing. Elsewhere a skip is shown, never counted as a pass.
pub(crate) fn skips_fail() -> bool {
    std::env::var_os("CI").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Promise: a child that runs past its limit is killed with everything it spawned, and the
    /// run says it timed out instead of waiting for it.
    #[test]
    fn a_hung_child_is_killed_with_its_group_at_the_limit() -> std::io::Result<()> {
        let directory = tempfile::tempdir()?;
        let pid_file = directory.path().join("grandchild.pid");
        let script = format!(
            "sleep 60 & echo $! > {}; echo started; wait",
            pid_file.display()
        );
        let limit = Duration::from_millis(500);
        let finished = run_within(Command::new("sh").args(["-c", &script]), limit)?;
        assert!(finished.timed_out, "{finished:?}");
        assert!(store_testkit::crash::was_killed(&finished.status));
        assert_eq!(String::from_utf8_lossy(&finished.stdout), "started\n");
        assert!(finished.why_no_result(limit).contains("timed out"));
        let grandchild: libc::pid_t = std::fs::read_to_string(&pid_file)?
            .trim()
            .parse()
            .expect("a pid");
        // The grandchild was killed with its group: gone, or a zombie of a parent that is gone.
        // A SIGKILL is delivered asynchronously: wait (bounded) for it to land.
        let alive = || {
            let state =
                std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
            let running = state
                .rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z') && !rest.is_empty());
            running.then_some(state)
        };
        let mut state = alive();
        for _ in 0..500 {
            if state.is_none() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
            state = alive();
        }
        assert_eq!(state, None, "the grandchild survived its group's kill");
        Ok(())
    }

    /// Promise: a child that finishes in time gives its status and everything it wrote.
    #[test]
    fn a_child_within_its_limit_gives_its_output() -> std::io::Result<()> {
        let finished = run_within(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(60),
        )?;
        assert!(!finished.timed_out);
        assert_eq!(finished.status.code(), Some(3));
        assert_eq!(finished.stdout, b"out\n");
        assert_eq!(finished.stderr, b"err\n");
        Ok(())
    }
}
