//! [`SqliteOptions`]: how to open a database, builder-lite.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use store_core::{JournalLadder, JournalMode, JournalPolicy, Migrations};

/// SQLite's `PRAGMA synchronous`: how often commits wait for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Synchronous {
    /// Never wait: an OS crash or power loss can corrupt the database.
    Off,
    /// Wait at critical moments. In WAL modes, a power loss may undo the last commits but never
    /// corrupts; a killed process loses nothing.
    Normal,
    /// Wait at every commit: durable across power loss.
    Full,
    /// Like `Full`, and also sync the directory after unlinking a rollback journal.
    Extra,
}

impl Synchronous {
    /// The pragma's value (`off`, `normal`, `full`, `extra`).
    pub fn as_str(self) -> &'static str {
        match self {
            Synchronous::Off => "off",
            Synchronous::Normal => "normal",
            Synchronous::Full => "full",
            Synchronous::Extra => "extra",
        }
    }

    /// The default for a journal mode: `Normal` in the WAL modes (safe there, and two orders of
    /// magnitude faster), `Full` in the rollback-journal modes (where `Normal` risks corruption
    /// on power loss).
    pub fn default_for(mode: JournalMode) -> Synchronous {
        if mode.is_wal() {
            Synchronous::Normal
        } else {
            Synchronous::Full
        }
    }
}

impl fmt::Display for Synchronous {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A `synchronous` name that is not one of [`Synchronous::as_str`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown synchronous setting `{input}` (expected one of: off, normal, full, extra)")]
pub struct ParseSynchronousError {
    /// The text that was given.
    pub input: String,
}

impl FromStr for Synchronous {
    type Err = ParseSynchronousError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input.trim().to_ascii_lowercase().as_str() {
            "off" | "0" => Ok(Synchronous::Off),
            "normal" | "1" => Ok(Synchronous::Normal),
            "full" | "2" => Ok(Synchronous::Full),
            "extra" | "3" => Ok(Synchronous::Extra),
            _ => Err(ParseSynchronousError {
                input: input.to_owned(),
            }),
        }
    }
}

/// How to open a SQLite database. Each setter documents its default.
///
/// ```no_run
/// use std::time::Duration;
/// use store_sqlite::{SqliteOptions, store_core::{JournalLadder, Migration, Migrations}};
///
/// let migrations = Migrations::new(vec![
///     Migration::new(1, "sessions", "CREATE TABLE sessions (id TEXT PRIMARY KEY, source TEXT)"),
/// ])?;
/// let (connection, report) = SqliteOptions::new("/home/me/.app/state.db")
///     .label("state.db")
///     .journal_policy(JournalLadder::single_process())
///     .busy_timeout(Duration::from_secs(2))
///     .migrations(migrations)
///     .open()?;
/// println!("{report}");
/// connection.execute("INSERT INTO sessions (id, source) VALUES ('s1', 'cli')", [])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub(crate) path: PathBuf,
    pub(crate) label: Option<String>,
    pub(crate) journal_policy: Arc<dyn JournalPolicy>,
    pub(crate) busy_timeout: Duration,
    pub(crate) synchronous: Option<Synchronous>,
    pub(crate) migrations: Migrations,
    pub(crate) read_only: bool,
}

impl SqliteOptions {
    /// Options for the database at `path` (created on first open unless read-only).
    pub fn new(path: impl AsRef<Path>) -> SqliteOptions {
        SqliteOptions {
            path: path.as_ref().to_owned(),
            label: None,
            journal_policy: Arc::new(JournalLadder::default()),
            busy_timeout: Duration::from_secs(5),
            synchronous: None,
            migrations: Migrations::none(),
            read_only: false,
        }
    }

    /// The name warnings and messages use for this database. Default: the file name.
    pub fn label(mut self, label: impl Into<String>) -> SqliteOptions {
        self.label = Some(label.into());
        self
    }

    /// The journal modes to try. Default: [`JournalLadder::default`] (WAL, then DELETE; DELETE
    /// straight away on NFS, SMB and 9p).
    pub fn journal_policy(mut self, policy: impl JournalPolicy + 'static) -> SqliteOptions {
        self.journal_policy = Arc::new(policy);
        self
    }

    /// How long a statement waits for another connection's lock. Default: 5 seconds.
    pub fn busy_timeout(mut self, timeout: Duration) -> SqliteOptions {
        self.busy_timeout = timeout;
        self
    }

    /// `PRAGMA synchronous`. Default: [`Synchronous::default_for`] the journal mode in force.
    pub fn synchronous(mut self, synchronous: Synchronous) -> SqliteOptions {
        self.synchronous = Some(synchronous);
        self
    }

    /// Migrations to apply on open, each once, in order. Default: none.
    pub fn migrations(mut self, migrations: Migrations) -> SqliteOptions {
        self.migrations = migrations;
        self
    }

    /// Open read-only: never create, convert or migrate. Default: false.
    pub fn read_only(mut self, read_only: bool) -> SqliteOptions {
        self.read_only = read_only;
        self
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The label in use: the one set, or the file name.
    pub fn label_or_file_name(&self) -> String {
        self.label
            .clone()
            .unwrap_or_else(|| store_core::default_label(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_as_documented() {
        let options = SqliteOptions::new("/data/state.db");
        assert_eq!(options.busy_timeout, Duration::from_secs(5));
        assert_eq!(options.synchronous, None);
        assert!(!options.read_only);
        assert!(options.migrations.is_empty());
        assert_eq!(options.journal_policy.name(), "default");
        assert_eq!(options.label_or_file_name(), "state.db");
        assert_eq!(options.label("sessions").label_or_file_name(), "sessions");
    }

    #[test]
    fn synchronous_defaults_follow_the_journal() {
        assert_eq!(
            Synchronous::default_for(JournalMode::Wal),
            Synchronous::Normal
        );
        assert_eq!(
            Synchronous::default_for(JournalMode::WalExclusive),
            Synchronous::Normal
        );
        assert_eq!(
            Synchronous::default_for(JournalMode::Delete),
            Synchronous::Full
        );
        assert_eq!("FULL".parse::<Synchronous>(), Ok(Synchronous::Full));
        assert!("sometimes".parse::<Synchronous>().is_err());
    }
}
