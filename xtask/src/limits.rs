//! What bounds a run: a child process that must finish within a time limit (one hung cell must fail
//! its run with its name, never hang CI), and the rule that a skip fails under CI.

use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitStatus, Stdio};
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
    /// `None`: it ran past its time limit and was killed with its process group.
    pub(crate) status: Option<ExitStatus>,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

impl Finished {
    /// Whether the child ran past its time limit.
    pub(crate) fn timed_out(&self) -> bool {
        self.status.is_none()
    }

    /// Why a child that gave no result gave none: its exit status, or the time limit, and the
    /// last line it wrote to standard error.
    pub(crate) fn why_no_result(&self, limit: Duration) -> String {
        let last_words = String::from_utf8_lossy(&self.stderr)
            .lines()
            .last()
            .unwrap_or("")
            .to_owned();
        match self.status {
            Some(status) => format!("exited with {status}: {last_words}"),
            None => format!(
                "timed out after {} s and was killed: {last_words}",
                limit.as_secs()
            ),
        }
    }
}

/// Runs `command` (standard input closed) in a process group of its own and collects its output;
/// past `limit` the whole group is killed (the child and what it spawned: a lock holder, a mount's
/// server) and [`Finished::status`] is `None`.
pub(crate) fn run_within(command: &mut Command, limit: Duration) -> std::io::Result<Finished> {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let stdout = read_to_end_in_thread(child.stdout.take().expect("piped"));
    let stderr = read_to_end_in_thread(child.stderr.take().expect("piped"));
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() >= limit {
            kill_group(child.id());
            child.wait()?;
            break None;
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    Ok(Finished {
        status,
        stdout: stdout.recv_timeout(DRAIN_LIMIT).unwrap_or_default(),
        stderr: stderr.recv_timeout(DRAIN_LIMIT).unwrap_or_default(),
    })
}

fn read_to_end_in_thread(mut pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = sender.send(bytes);
    });
    receiver
}

/// SIGKILL to the process group `leader` leads.
fn kill_group(leader: u32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-(leader as libc::pid_t), libc::SIGKILL);
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
        assert!(finished.timed_out(), "{finished:?}");
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
        assert_eq!(finished.status.and_then(|status| status.code()), Some(3));
        assert_eq!(finished.stdout, b"out\n");
        assert_eq!(finished.stderr, b"err\n");
        Ok(())
    }
}
