//! Killing a process at a named step of store's own work: store logs each step (a checkpoint, a
//! snapshot taken, a migration applied), and a subscriber that SIGKILLs the process when the
//! chosen step is logged stops it there, as a container killed mid-migration is stopped.
//!
//! Only ever in a child process ([`crate::child::spawn_role`]): the parent then reopens the
//! database and checks what survived.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// A step store logs, and the point at which the process dies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillPoint {
    /// The event's message must contain this (`"migration applied"`).
    pub message: String,
    /// And, if set, the event's `version` field must be this.
    pub version: Option<u64>,
}

impl KillPoint {
    /// Dies right after the migration to `version` commits.
    pub fn after_migration(version: u64) -> KillPoint {
        KillPoint {
            message: "migration applied".into(),
            version: Some(version),
        }
    }

    /// Dies right after the pre-migration snapshot is taken.
    pub fn after_snapshot() -> KillPoint {
        KillPoint {
            message: "pre-migration snapshot taken".into(),
            version: None,
        }
    }
}

impl KillPoint {
    /// Whether `event` is this point: its message contains the point's, and its `version` is
    /// the point's where the point names one.
    fn matches(&self, event: &Event<'_>) -> bool {
        let mut matcher = Matcher {
            point: self,
            message_matches: false,
            version_matches: self.version.is_none(),
        };
        event.record(&mut matcher);
        matcher.message_matches && matcher.version_matches
    }
}

struct Matcher<'a> {
    point: &'a KillPoint,
    message_matches: bool,
    version_matches: bool,
}

impl Visit for Matcher<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message_matches = format!("{value:?}").contains(&self.point.message);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message_matches = value.contains(&self.point.message);
        }
    }

    // A point that names no version matches an event whatever version it carries.
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "version" && self.point.version.is_some() {
            self.version_matches = Some(value) == self.point.version;
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "version" && self.point.version.is_some() {
            self.version_matches = u64::try_from(value).ok() == self.point.version;
        }
    }
}

/// What happens to the process at the point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGKILL: the process dies, the page cache keeps what it wrote.
    Kill,
    /// [`PAUSED`] on standard output, then SIGSTOP: the parent cuts the power while the process
    /// stands still at the point (then kills it), or arms a cut a few writes later and continues
    /// it (SIGCONT), so that the power goes inside the next step.
    Pause,
}

/// The line [`pause_at`] and [`pause_here`] print on standard output when their process stops.
pub const PAUSED: &str = "PAUSED";

/// Tells its function, for each event, whether it is the point.
struct PointSubscriber<F>(KillPoint, F);

impl<F: Fn(bool) + Send + Sync + 'static> Subscriber for PointSubscriber<F> {
    fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _attributes: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        (self.1)(self.0.matches(event));
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// Stops the process (`how`) at the point.
fn stopping_at(point: KillPoint, how: Stop) -> impl Subscriber {
    PointSubscriber(point, move |matched| {
        if matched {
            stop(how);
        }
    })
}

/// Runs `body`; if store logs the step `point` meanwhile (on this thread), the process is
/// SIGKILLed on the spot: no destructor, no checkpoint at close, no flush.
pub fn kill_at<R>(point: KillPoint, body: impl FnOnce() -> R) -> R {
    crate::logs::ask_each_thread();
    tracing::subscriber::with_default(stopping_at(point, Stop::Kill), body)
}

/// Runs `body`; if store logs the step `point` meanwhile (on this thread), the process prints
/// [`PAUSED`] on standard output and stops itself (SIGSTOP) on the spot. Its parent then cuts the
/// power of a [`LossyFs`](crate::lossyfs::LossyFs) at exactly that step and kills it, or arms a
/// cut and continues it.
pub fn pause_at<R>(point: KillPoint, body: impl FnOnce() -> R) -> R {
    crate::logs::ask_each_thread();
    tracing::subscriber::with_default(stopping_at(point, Stop::Pause), body)
}

/// Prints [`PAUSED`] and stops this process until its parent continues (SIGCONT) or kills it:
/// a point the caller chose (after its own N-th commit, say).
pub fn pause_here() {
    stop(Stop::Pause);
}

/// Continues a child that [`pause_at`] or [`pause_here`] stopped. The child prints [`PAUSED`]
/// before it stops itself: this waits until it has really stopped, or a SIGCONT sent in between
/// would be lost and the child would stay stopped for good.
pub fn resume(child: &std::process::Child) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(child.id()).map_err(std::io::Error::other)?;
    let stat = format!("/proc/{pid}/stat");
    let stopped = || {
        std::fs::read_to_string(&stat).is_ok_and(|line| {
            // The state follows the command name, which is in parentheses and may hold spaces.
            line.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T'))
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !stopped() {
        if std::time::Instant::now() > deadline {
            return Err(std::io::Error::other(format!(
                "process {pid} said it paused but never stopped"
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // SAFETY: kill(2) with a child's pid and a signal number.
    if unsafe { libc::kill(pid, libc::SIGCONT) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn stop(how: Stop) {
    match how {
        Stop::Pause => {
            use std::io::Write as _;
            let mut standard_output = std::io::stdout().lock();
            let _ = writeln!(standard_output, "{PAUSED}");
            let _ = standard_output.flush();
            drop(standard_output);
            // SAFETY: raise(3) with a signal number.
            unsafe { libc::raise(libc::SIGSTOP) };
        }
        // SAFETY: kill(2) with this process's own id and a signal number.
        Stop::Kill => unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        },
    }
}

/// Whether a child process ended by SIGKILL, as [`kill_at`] ends it: a child that exited on its
/// own (even with an error) was not killed, and its files say nothing about a crash.
///
/// ```
/// use std::process::Command;
///
/// let status = Command::new("sh").args(["-c", "kill -9 $$"]).status()?;
/// assert!(store_testkit::crash::was_killed(&status));
/// let status = Command::new("sh").args(["-c", "exit 1"]).status()?;
/// assert!(!store_testkit::crash::was_killed(&status));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn was_killed(status: &std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(libc::SIGKILL)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Whether the point matches each event `emit` makes, in order.
    fn matches(point: KillPoint, emit: impl FnOnce()) -> Vec<bool> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recording = Arc::clone(&seen);
        let subscriber = PointSubscriber(point, move |matched| {
            recording.lock().unwrap().push(matched);
        });
        tracing::subscriber::with_default(subscriber, emit);
        seen.lock().unwrap().clone()
    }

    /// Promise: a point that names no version stops at its message whatever version the event
    /// carries (the power cell that cuts inside the pre-migration snapshot never stopped: the
    /// snapshot's event carries the version it is taken at).
    #[test]
    fn a_point_without_a_version_matches_any_version() {
        let point = KillPoint {
            message: "taking the pre-migration snapshot".into(),
            version: None,
        };
        let found = matches(point, || {
            tracing::debug!(version = 1_u32, "taking the pre-migration snapshot");
            tracing::debug!("taking the pre-migration snapshot");
            tracing::debug!(version = 1_u32, "migration applied");
        });
        assert_eq!(found, [true, true, false]);
    }

    /// Promise: a point that names a version stops only at that version.
    #[test]
    fn a_point_with_a_version_matches_only_it() {
        let found = matches(KillPoint::after_migration(2), || {
            tracing::info!(version = 1_u64, "migration applied");
            tracing::info!(version = 2_i64, "migration applied");
            tracing::info!("migration applied");
        });
        assert_eq!(found, [false, true, false]);
    }
}
