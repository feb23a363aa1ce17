//! What the user and the operator get told when an open fails: the last open error, kept per
//! process; warnings that repeat, logged once per database label; and the user-facing
//! `database not available: <cause>` message with a network-filesystem hint where it applies.
//!
//! ```
//! use store_core::{Engine, FailureClass, LastOpenError, OpenFailure};
//!
//! let last = LastOpenError::new();
//! assert_eq!(last.unavailable_message("Session database not available"),
//!            "Session database not available.");
//!
//! last.record(OpenFailure::new(Engine::Sqlite, "/nfs/home/state.db", "state.db",
//!                              FailureClass::WalUnsupported, "locking protocol"));
//! let message = last.unavailable_message("Cannot /resume");
//! assert!(message.starts_with("Cannot /resume: locking protocol."));
//! assert!(message.contains("NFS/SMB") && message.contains("https://www.sqlite.org/wal.html"));
//! ```

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use crate::{Engine, FailureClass, Filesystem};

/// An open that failed, as kept for later questions ("why is the database not available?").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFailure {
    /// The engine.
    pub engine: Engine,
    /// The database file.
    pub path: PathBuf,
    /// The database's label.
    pub label: String,
    /// The failure's class.
    pub class: FailureClass,
    /// The failure as the engine said it.
    pub cause: String,
    /// The filesystem the database lives on, when it was detected.
    pub filesystem: Option<Filesystem>,
    /// When the open failed.
    pub at: SystemTime,
}

impl OpenFailure {
    /// A failure that happened now, on an undetected filesystem.
    pub fn new(
        engine: Engine,
        path: impl Into<PathBuf>,
        label: impl Into<String>,
        class: FailureClass,
        cause: impl Into<String>,
    ) -> OpenFailure {
        OpenFailure {
            engine,
            path: path.into(),
            label: label.into(),
            class,
            cause: cause.into(),
            filesystem: None,
            at: SystemTime::now(),
        }
    }

    /// The same failure, with the filesystem it happened on.
    pub fn on_filesystem(mut self, filesystem: Option<Filesystem>) -> OpenFailure {
        self.filesystem = filesystem;
        self
    }

    /// Whether the cause is one that network filesystems produce, so that the user-facing message
    /// should point at the filesystem: WAL could not work, or locking failed where locks are
    /// unreliable.
    pub fn points_at_filesystem(&self) -> bool {
        match self.class {
            FailureClass::WalUnsupported => true,
            FailureClass::Busy | FailureClass::Locked => self
                .filesystem
                .as_ref()
                .is_some_and(|filesystem| filesystem.kind.may_lack_shared_memory()),
            _ => false,
        }
    }
}

impl fmt::Display for OpenFailure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} {} ({}): {} ({})",
            self.engine,
            self.label,
            self.path.display(),
            self.cause,
            self.class
        )
    }
}

/// An error and its sources in one line, joined with `: `, for logs and for the cause in
/// [`format_unavailable`].
pub fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// The user-facing message for a database that is not available.
///
/// `prefix` is what the application says ("Session database not available", "Cannot /resume");
/// the cause follows it, and for causes that network filesystems produce, a hint naming the
/// detected filesystem and <https://www.sqlite.org/wal.html>. Without a failure, the prefix alone.
pub fn format_unavailable(prefix: &str, failure: Option<&OpenFailure>) -> String {
    let prefix = prefix.trim_end().trim_end_matches(['.', ':']);
    let Some(failure) = failure else {
        return format!("{prefix}.");
    };
    let cause = failure.cause.trim().trim_end_matches('.');
    if cause.is_empty() {
        return format!("{prefix}.");
    }
    let mut message = format!("{prefix}: {cause}.");
    if failure.points_at_filesystem() {
        let detected = match &failure.filesystem {
            Some(filesystem) => match &filesystem.mount_point {
                Some(mount_point) => format!(
                    " This database is on {} ({}, mounted at {}).",
                    filesystem.kind,
                    filesystem.type_name,
                    mount_point.display()
                ),
                None => format!(
                    " This database is on {} ({}).",
                    filesystem.kind, filesystem.type_name
                ),
            },
            None => String::new(),
        };
        message.push_str(&detected);
        message.push_str(
            " SQLite's write-ahead log needs shared memory and byte-range locks, which NFS/SMB \
             and many FUSE mounts do not provide: keep the database on a local disk or use \
             journal_mode=DELETE (https://www.sqlite.org/wal.html).",
        );
    }
    message
}

/// The last failed open, kept until someone clears it. A later successful open, in this thread or
/// another, does not clear it: a request handler that saw its open fail must still find its cause
/// when it formats the message, even if a concurrent open succeeded meanwhile.
#[derive(Debug, Default)]
pub struct LastOpenError {
    failure: Mutex<Option<OpenFailure>>,
}

impl LastOpenError {
    /// An empty slot (for tests and for applications that keep one per subsystem).
    pub const fn new() -> LastOpenError {
        LastOpenError {
            failure: Mutex::new(None),
        }
    }

    /// The process-wide slot the engines record into.
    pub fn global() -> &'static LastOpenError {
        static GLOBAL: LastOpenError = LastOpenError::new();
        &GLOBAL
    }

    fn slot(&self) -> MutexGuard<'_, Option<OpenFailure>> {
        // A panic while holding the lock cannot leave an Option half-written.
        self.failure.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `failure` as the last one.
    pub fn record(&self, failure: OpenFailure) {
        *self.slot() = Some(failure);
    }

    /// The last failure, if any.
    pub fn get(&self) -> Option<OpenFailure> {
        self.slot().clone()
    }

    /// Forgets the last failure (an explicit act: successes never do it).
    pub fn clear(&self) {
        *self.slot() = None;
    }

    /// [`format_unavailable`] for the last failure.
    pub fn unavailable_message(&self, prefix: &str) -> String {
        format_unavailable(prefix, self.slot().as_ref())
    }
}

/// Records `failure` as the process's last open error.
pub fn record_open_failure(failure: OpenFailure) {
    LastOpenError::global().record(failure);
}

/// The process's last open error, if any.
pub fn last_open_error() -> Option<OpenFailure> {
    LastOpenError::global().get()
}

/// Forgets the process's last open error.
pub fn clear_last_open_error() {
    LastOpenError::global().clear();
}

/// The user-facing message for the process's last open error; see [`format_unavailable`].
///
/// ```
/// // With nothing recorded, the prefix alone.
/// # store_core::clear_last_open_error();
/// assert_eq!(store_core::unavailable_message("Session database not available"),
///            "Session database not available.");
/// ```
pub fn unavailable_message(prefix: &str) -> String {
    LastOpenError::global().unavailable_message(prefix)
}

/// Remembers which (label, topic) pairs have warned, so that a warning that repeats on every open
/// (an application that opens a connection per request on NFS) is logged once per database label
/// per process, and different labels each get their one warning.
#[derive(Debug, Default)]
pub struct WarnOnce {
    warned: Mutex<BTreeSet<(String, String)>>,
}

impl WarnOnce {
    /// A registry of its own (for tests and for subsystems that reset independently).
    pub const fn new() -> WarnOnce {
        WarnOnce {
            warned: Mutex::new(BTreeSet::new()),
        }
    }

    /// The process-wide registry the engines use.
    pub fn global() -> &'static WarnOnce {
        static GLOBAL: WarnOnce = WarnOnce::new();
        &GLOBAL
    }

    /// True exactly once per `(label, topic)`: the caller should warn now.
    pub fn first(&self, label: &str, topic: &str) -> bool {
        self.warned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((label.to_owned(), topic.to_owned()))
    }

    /// Forgets every warning, so that each label warns again.
    pub fn reset(&self) {
        self.warned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FsKind;
    use std::sync::{Arc, Barrier};

    const PREFIX: &str = "Session database not available";

    fn failure(class: FailureClass, cause: &str) -> OpenFailure {
        OpenFailure::new(
            Engine::Sqlite,
            "/home/me/state.db",
            "state.db",
            class,
            cause,
        )
    }

    // Port of TestFormatSessionDbUnavailable.

    #[test]
    fn bare_message_when_no_cause() {
        assert_eq!(
            format_unavailable(PREFIX, None),
            "Session database not available."
        );
        let empty = failure(FailureClass::Other, "  ");
        assert_eq!(
            format_unavailable(PREFIX, Some(&empty)),
            "Session database not available."
        );
    }

    #[test]
    fn includes_cause() {
        let failure = failure(FailureClass::Other, "generic SQLite error");
        let message = format_unavailable(PREFIX, Some(&failure));
        assert_eq!(
            message,
            "Session database not available: generic SQLite error."
        );
        assert!(message.starts_with("Session database not available:"));
        assert!(message.ends_with('.'));
    }

    #[test]
    fn adds_network_filesystem_hint_for_locking_protocol() {
        let failure = failure(FailureClass::WalUnsupported, "locking protocol");
        let message = format_unavailable(PREFIX, Some(&failure));
        assert!(message.contains("locking protocol"), "{message}");
        assert!(message.contains("NFS/SMB"), "{message}");
        assert!(message.contains("sqlite.org/wal.html"), "{message}");
        assert!(message.ends_with('.'), "{message}");
    }

    #[test]
    fn custom_prefix() {
        let failure = failure(FailureClass::WalUnsupported, "locking protocol");
        let message = format_unavailable("Cannot /resume", Some(&failure));
        assert!(message.starts_with("Cannot /resume:"), "{message}");
        assert_eq!(
            format_unavailable("Cannot /resume", None),
            "Cannot /resume."
        );
    }

    #[test]
    fn hint_names_the_detected_filesystem() {
        let on_nfs = failure(FailureClass::WalUnsupported, "locking protocol").on_filesystem(Some(
            Filesystem {
                kind: FsKind::Nfs,
                type_name: "nfs4".into(),
                mount_point: Some("/home".into()),
                kind_source: crate::KindSource::Detected,
                lock_scope: crate::LockScope::ServerWide,
            },
        ));
        let message = format_unavailable(PREFIX, Some(&on_nfs));
        assert!(
            message.contains("on nfs (nfs4, mounted at /home)"),
            "{message}"
        );
    }

    #[test]
    fn busy_gets_the_hint_only_where_locks_are_unreliable() {
        let local = Filesystem {
            kind: FsKind::Local,
            type_name: "ext4".into(),
            mount_point: None,
            kind_source: crate::KindSource::Detected,
            lock_scope: crate::LockScope::ThisMachine,
        };
        let busy_local =
            failure(FailureClass::Busy, "database is locked").on_filesystem(Some(local));
        assert!(!format_unavailable(PREFIX, Some(&busy_local)).contains("NFS/SMB"));
        let fuse = Filesystem {
            kind: FsKind::Fuse,
            type_name: "fuse.lossyfs".into(),
            mount_point: None,
            kind_source: crate::KindSource::Detected,
            lock_scope: crate::LockScope::Unknown,
        };
        let busy_fuse = failure(FailureClass::Busy, "database is locked").on_filesystem(Some(fuse));
        assert!(format_unavailable(PREFIX, Some(&busy_fuse)).contains("NFS/SMB"));
        let corrupt = failure(FailureClass::Corrupt, "database disk image is malformed");
        assert!(!format_unavailable(PREFIX, Some(&corrupt)).contains("NFS/SMB"));
    }

    #[test]
    fn a_trailing_period_in_the_cause_is_not_doubled() {
        let failure = failure(
            FailureClass::Other,
            "IO Error: WAL does not match database file.",
        );
        let message = format_unavailable(PREFIX, Some(&failure));
        assert!(message.ends_with("database file."), "{message}");
        assert!(!message.ends_with(".."), "{message}");
    }

    #[test]
    fn cause_chain_joins_sources() {
        let inner = std::io::Error::other("disk on fire");
        let outer = crate::files::SnapshotError::Io {
            operation: "copy to",
            path: "/x".into(),
            source: inner,
        };
        assert_eq!(cause_chain(&outer), "cannot copy to /x: disk on fire");
    }

    // Port of TestGetLastInitError.

    #[test]
    fn nothing_recorded_means_none() {
        assert_eq!(LastOpenError::new().get(), None);
    }

    #[test]
    fn captures_cause_on_failed_open() {
        let last = LastOpenError::new();
        last.record(failure(
            FailureClass::WalUnsupported,
            "locking protocol: read-only filesystem",
        ));
        let recorded = last.get().expect("recorded");
        assert!(recorded.cause.contains("locking protocol"));
        assert_eq!(recorded.class, FailureClass::WalUnsupported);
        last.clear();
        assert_eq!(last.get(), None);
    }

    #[test]
    fn a_success_in_another_thread_does_not_clear_a_prior_error() {
        // Thread A fails and records its cause; thread B's open succeeds meanwhile (successes never
        // touch the slot); A's handler formats its message afterwards and still sees A's cause.
        let last = Arc::new(LastOpenError::new());
        let both_done = Arc::new(Barrier::new(2));
        let failing = {
            let (last, both_done) = (Arc::clone(&last), Arc::clone(&both_done));
            std::thread::spawn(move || {
                last.record(failure(FailureClass::WalUnsupported, "locking protocol"));
                both_done.wait();
                last.unavailable_message(PREFIX)
            })
        };
        let succeeding = {
            let (last, both_done) = (Arc::clone(&last), Arc::clone(&both_done));
            std::thread::spawn(move || {
                let seen = last.get();
                both_done.wait();
                seen
            })
        };
        let message = failing.join().expect("thread A");
        succeeding.join().expect("thread B");
        assert!(message.contains("locking protocol"), "{message}");
    }

    // Port of the warn-once cases of TestApplyWalWithFallback.

    #[test]
    fn warning_deduplicated_per_label() {
        let registry = WarnOnce::new();
        let warned: Vec<bool> = (0..3)
            .map(|_| registry.first("shared.db", "journal-fallback"))
            .collect();
        assert_eq!(warned, [true, false, false]);
    }

    #[test]
    fn warning_fires_independently_per_label_and_topic() {
        let registry = WarnOnce::new();
        assert!(registry.first("state.db", "journal-fallback"));
        assert!(registry.first("kanban.db", "journal-fallback"));
        assert!(registry.first("state.db", "recovery"));
        assert!(!registry.first("kanban.db", "journal-fallback"));
        registry.reset();
        assert!(registry.first("kanban.db", "journal-fallback"));
    }

    #[test]
    fn warn_once_holds_under_concurrency() {
        let registry = Arc::new(WarnOnce::new());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let registry = Arc::clone(&registry);
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|_| registry.first("shared.db", "journal-fallback"))
                        .count()
                })
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        assert_eq!(total, 1);
    }
}
