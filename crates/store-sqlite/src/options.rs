//! [`SqliteOptions`]: how to open a database, builder-lite.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use store_core::options::CommonOptions;
use store_core::{
    Durability, FsKind, JournalLadder, JournalMode, JournalPolicy, Migrations, SyncLevel,
};

/// SQLite's `PRAGMA synchronous`: how often commits wait for the disk, and so what a power cut
/// (or an operating-system crash) may do to acknowledged commits. A killed process loses no
/// acknowledged commit at any level: the operating system still holds what was written.
///
/// store's default ([`Synchronous::default_for`]) is the least syncing that keeps every
/// acknowledged commit across a power cut: [`Full`](Synchronous::Full) in the WAL modes,
/// [`Extra`](Synchronous::Extra) in the rollback-journal modes. The open reads the level back
/// and reports what it promises as [`store_core::Durability`]
/// ([`Synchronous::durability_in`]).
///
/// ```
/// use store_sqlite::Synchronous;
/// use store_sqlite::store_core::{Durability, JournalMode, SyncLevel};
///
/// assert_eq!(Synchronous::default_for(JournalMode::Wal), Synchronous::Full);
/// assert_eq!(Synchronous::default_for(JournalMode::Delete), Synchronous::Extra);
/// // The opt-out: faster commits, and a power cut may undo those since the last checkpoint.
/// assert_eq!(
///     Synchronous::Normal.durability_in(JournalMode::Wal),
///     Durability::RecentCommitsMayBeLost { sync: SyncLevel::Normal }
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Synchronous {
    /// Never wait for the disk. A power cut may corrupt the database, in every journal mode.
    Off,
    /// Wait at critical moments only: the opt-out from store's default, for commit rates that
    /// matter more than the last commits.
    ///
    /// - In the WAL modes, the WAL is synced only before a checkpoint copies it into the
    ///   database: a power cut may undo every commit since the last checkpoint (by default up to
    ///   1000 pages of WAL), but never corrupts. Commits wait for no fsync, which is what makes
    ///   them faster (`cargo xtask bench` measures by how much).
    /// - In the rollback-journal modes, each commit syncs the journal once (content and the
    ///   header that counts its pages together) and then the database: a power cut may roll the
    ///   last commit back, as under `Full`, and at the wrong moment may corrupt the database
    ///   (SQLite calls the chance very small on modern filesystems). It saves two of the five
    ///   syncs a commit makes under `Extra`.
    Normal,
    /// Wait at every commit. In the WAL modes, the WAL is synced before each commit returns:
    /// every acknowledged commit survives a power cut (SQLite's own default). In
    /// `journal_mode=DELETE` the journal's deletion, which is the commit, is not synced: a power
    /// cut can bring the journal back, and the next open rolls the last acknowledged commit
    /// back. (`TRUNCATE` and `PERSIST` sync the journal's reset, so they are power-safe here.)
    Full,
    /// Like `Full`, and the directory is synced after a rollback journal is deleted: every
    /// acknowledged commit survives a power cut in every journal mode. In the WAL modes it
    /// costs nothing over `Full`.
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

    /// The level from what `PRAGMA synchronous` answers (0 to 3), if it is one.
    pub fn from_level(level: i64) -> Option<Synchronous> {
        match level {
            0 => Some(Synchronous::Off),
            1 => Some(Synchronous::Normal),
            2 => Some(Synchronous::Full),
            3 => Some(Synchronous::Extra),
            _ => None,
        }
    }

    /// What `PRAGMA synchronous` answers for this level (0 to 3).
    pub fn level(self) -> i64 {
        match self {
            Synchronous::Off => 0,
            Synchronous::Normal => 1,
            Synchronous::Full => 2,
            Synchronous::Extra => 3,
        }
    }

    /// The default for a journal mode: the least syncing under which every acknowledged commit
    /// survives a power cut. `Full` in the WAL modes (SQLite's own default there); `Extra` in the
    /// rollback-journal modes, because under `Full` the journal's deletion is not synced and a
    /// power cut can bring the journal back and roll the last acknowledged commit back.
    pub fn default_for(mode: JournalMode) -> Synchronous {
        if mode.is_wal() {
            Synchronous::Full
        } else {
            Synchronous::Extra
        }
    }

    /// What a power cut may do to acknowledged commits at this level in `mode` (see each
    /// variant).
    pub fn durability_in(self, mode: JournalMode) -> Durability {
        let sync = self.sync_level();
        match self {
            Synchronous::Off => Durability::MayCorrupt { sync },
            Synchronous::Normal if mode.is_wal() => Durability::RecentCommitsMayBeLost { sync },
            Synchronous::Normal => Durability::MayCorrupt { sync },
            Synchronous::Full if mode == JournalMode::Delete => {
                Durability::RecentCommitsMayBeLost { sync }
            }
            Synchronous::Full | Synchronous::Extra => Durability::PowerSafe { sync },
        }
    }

    /// The engine-neutral name of this level.
    pub fn sync_level(self) -> SyncLevel {
        match self {
            Synchronous::Off => SyncLevel::Off,
            Synchronous::Normal => SyncLevel::Normal,
            Synchronous::Full => SyncLevel::Full,
            Synchronous::Extra => SyncLevel::Extra,
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
    /// What both engines' options hold alike.
    pub(crate) common: CommonOptions<Connection, rusqlite::Error>,
    pub(crate) journal_policy: Arc<dyn JournalPolicy>,
    pub(crate) busy_timeout: Duration,
    pub(crate) synchronous: Option<Synchronous>,
}

impl SqliteOptions {
    /// Options for the database at `path` (created on first open unless read-only).
    pub fn new(path: impl AsRef<Path>) -> SqliteOptions {
        SqliteOptions {
            common: CommonOptions::new(path.as_ref()),
            journal_policy: Arc::new(JournalLadder::default()),
            busy_timeout: Duration::from_secs(5),
            synchronous: None,
        }
    }

    /// The name warnings and messages use for this database. Default: the file name.
    pub fn label(mut self, label: impl Into<String>) -> SqliteOptions {
        self.common.label = Some(label.into());
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

    /// `PRAGMA synchronous`. Default: [`Synchronous::default_for`] the journal mode in force
    /// (`Full` in the WAL modes, `Extra` in the rollback-journal modes), under which every
    /// acknowledged commit survives a power cut. [`Synchronous::Normal`] is the opt-out: faster
    /// commits, and a power cut may undo the most recent ones. The report's
    /// [`durability`](store_core::OpenReport::durability) says what is in force.
    pub fn synchronous(mut self, synchronous: Synchronous) -> SqliteOptions {
        self.synchronous = Some(synchronous);
        self
    }

    /// Migrations to apply on open, each once, in order. Default: none.
    pub fn migrations(mut self, migrations: Migrations) -> SqliteOptions {
        self.common.migrations = migrations;
        self
    }

    /// Open read-only: never create, convert or migrate. Default: false.
    pub fn read_only(mut self, read_only: bool) -> SqliteOptions {
        self.common.read_only = read_only;
        self
    }

    /// The filesystem kind to decide on, instead of the detected one: for a user who knows better
    /// than detection (a FUSE mount that is NFS underneath). `FsKind::Nfs` sends the open
    /// straight to the policy's network ladder, as does any kind that crosses a machine boundary
    /// (`FsKind::NetworkFuse(ShareClient::Sshfs)`, `FsKind::VirtioFs`); its lock scope is then the
    /// kind's, not the detected mount's. Default: detected. The report says which.
    pub fn filesystem(mut self, kind: FsKind) -> SqliteOptions {
        self.common.filesystem = Some(kind);
        self
    }

    /// Runs `init` on every connection the open and its database handle make, after the journal
    /// mode and `synchronous` are in force and before migrations: user pragmas
    /// (`foreign_keys`), functions, collations. Calls add up, in order. Default: none.
    /// `synchronous` is read back after it: an `init` that changes it fails the open and
    /// `connect` (ask for a level with [`synchronous`](Self::synchronous) instead).
    ///
    /// ```
    /// use store_sqlite::SqliteOptions;
    ///
    /// # let directory = tempfile::tempdir()?;
    /// let (database, _report) = SqliteOptions::new(directory.path().join("state.db"))
    ///     .on_connect(|connection| connection.pragma_update(None, "foreign_keys", "ON"))
    ///     .database()?;
    /// let connection = database.connect()?;
    /// let on: i64 = connection.query_row("PRAGMA foreign_keys", [], |row| row.get(0))?;
    /// assert_eq!(on, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_connect(
        mut self,
        init: impl Fn(&Connection) -> rusqlite::Result<()> + Send + Sync + 'static,
    ) -> SqliteOptions {
        self.common.on_connect.push(init);
        self
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.common.path
    }

    /// The `synchronous` level connections get in `mode`: the option, or the default for the mode.
    pub(crate) fn synchronous_for(&self, mode: JournalMode) -> Synchronous {
        self.synchronous.unwrap_or(Synchronous::default_for(mode))
    }

    /// The label in use: the one set, or the file name.
    pub fn label_or_file_name(&self) -> String {
        self.common.label_or_file_name()
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
        assert!(!options.common.read_only);
        assert!(options.common.migrations.is_empty());
        assert_eq!(options.journal_policy.name(), "default");
        assert_eq!(options.label_or_file_name(), "state.db");
        assert_eq!(options.label("sessions").label_or_file_name(), "sessions");
    }

    #[test]
    fn synchronous_defaults_keep_acknowledged_commits_across_a_power_cut() {
        assert_eq!(
            Synchronous::default_for(JournalMode::Wal),
            Synchronous::Full
        );
        assert_eq!(
            Synchronous::default_for(JournalMode::WalExclusive),
            Synchronous::Full
        );
        for rollback in [
            JournalMode::Delete,
            JournalMode::Truncate,
            JournalMode::Persist,
        ] {
            assert_eq!(Synchronous::default_for(rollback), Synchronous::Extra);
        }
        for mode in JournalMode::ALL {
            let durability = Synchronous::default_for(mode).durability_in(mode);
            assert!(durability.is_power_safe(), "{mode}: {durability}");
        }
    }

    #[test]
    fn each_level_reports_what_a_power_cut_may_do() {
        use Durability::{MayCorrupt, PowerSafe, RecentCommitsMayBeLost};
        let cases = [
            (
                Synchronous::Off,
                JournalMode::Wal,
                MayCorrupt {
                    sync: SyncLevel::Off,
                },
            ),
            (
                Synchronous::Off,
                JournalMode::Delete,
                MayCorrupt {
                    sync: SyncLevel::Off,
                },
            ),
            (
                Synchronous::Normal,
                JournalMode::Wal,
                RecentCommitsMayBeLost {
                    sync: SyncLevel::Normal,
                },
            ),
            (
                Synchronous::Normal,
                JournalMode::WalExclusive,
                RecentCommitsMayBeLost {
                    sync: SyncLevel::Normal,
                },
            ),
            (
                Synchronous::Normal,
                JournalMode::Delete,
                MayCorrupt {
                    sync: SyncLevel::Normal,
                },
            ),
            (
                Synchronous::Normal,
                JournalMode::Truncate,
                MayCorrupt {
                    sync: SyncLevel::Normal,
                },
            ),
            (
                Synchronous::Full,
                JournalMode::Wal,
                PowerSafe {
                    sync: SyncLevel::Full,
                },
            ),
            (
                Synchronous::Full,
                JournalMode::Delete,
                RecentCommitsMayBeLost {
                    sync: SyncLevel::Full,
                },
            ),
            (
                Synchronous::Full,
                JournalMode::Truncate,
                PowerSafe {
                    sync: SyncLevel::Full,
                },
            ),
            (
                Synchronous::Full,
                JournalMode::Persist,
                PowerSafe {
                    sync: SyncLevel::Full,
                },
            ),
            (
                Synchronous::Extra,
                JournalMode::Delete,
                PowerSafe {
                    sync: SyncLevel::Extra,
                },
            ),
            (
                Synchronous::Extra,
                JournalMode::Wal,
                PowerSafe {
                    sync: SyncLevel::Extra,
                },
            ),
        ];
        for (level, mode, expected) in cases {
            assert_eq!(level.durability_in(mode), expected, "{level} in {mode}");
        }
    }

    #[test]
    fn levels_round_trip_through_names_and_numbers() {
        for level in [
            Synchronous::Off,
            Synchronous::Normal,
            Synchronous::Full,
            Synchronous::Extra,
        ] {
            assert_eq!(level.as_str().parse::<Synchronous>(), Ok(level));
            assert_eq!(Synchronous::from_level(level.level()), Some(level));
            assert_eq!(level.sync_level().as_str(), level.as_str());
        }
        assert_eq!("FULL".parse::<Synchronous>(), Ok(Synchronous::Full));
        assert_eq!("3".parse::<Synchronous>(), Ok(Synchronous::Extra));
        assert!("sometimes".parse::<Synchronous>().is_err());
        assert_eq!(Synchronous::from_level(4), None);
    }
}
