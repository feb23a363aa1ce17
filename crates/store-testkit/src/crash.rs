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

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "version" {
            self.version_matches = Some(value) == self.point.version;
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "version" {
            self.version_matches = u64::try_from(value).ok() == self.point.version;
        }
    }
}

struct KillSubscriber(KillPoint);

impl Subscriber for KillSubscriber {
    fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _attributes: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut matcher = Matcher {
            point: &self.0,
            message_matches: false,
            version_matches: self.0.version.is_none(),
        };
        event.record(&mut matcher);
        if matcher.message_matches && matcher.version_matches {
            // SAFETY: kill(2) with this process's own id and a signal number.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// Runs `body`; if store logs the step `point` meanwhile (on this thread), the process is
/// SIGKILLed on the spot: no destructor, no checkpoint at close, no flush.
pub fn kill_at<R>(point: KillPoint, body: impl FnOnce() -> R) -> R {
    crate::logs::ask_each_thread();
    tracing::subscriber::with_default(KillSubscriber(point), body)
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
