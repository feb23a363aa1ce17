//! Errors of a DuckDB open, its migrations and its recovery.

use std::io;
use std::path::{Path, PathBuf};

use store_core::files::{MoveAsideError, SnapshotError};
use store_core::{Durability, FailureClass, MigrationsError, MovedAside, PathError, StepFailed};

use crate::registry::InstanceConfig;

/// An open failed. Every variant names the database path; [`OpenError::class`] gives the class.
/// Files are left as they were, except those a recovery step moved aside, which
/// [`OpenError::moved_aside`] lists.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The path cannot hold a DuckDB database of ours (a directory, an empty file, a text file,
    /// a SQLite file, a missing directory); nothing was touched.
    #[error(transparent)]
    Path(#[from] PathError),
    /// DuckDB failed, and no recovery applied (the class is not recoverable, the policy does not
    /// recover from it, or every step failed: then `recovery_failures` says why each did).
    #[error("cannot open {} ({class})", path.display())]
    Engine {
        /// The path given.
        path: PathBuf,
        /// The class of the failure.
        class: FailureClass,
        /// Recovery steps tried, with why each failed, in order.
        recovery_failures: Vec<StepFailed>,
        /// Files moved aside by steps that ran before failing; they stay where this says.
        moved_aside: Vec<MovedAside>,
        /// What DuckDB said.
        #[source]
        source: duckdb::Error,
    },
    /// The database opened, but store could not open a descriptor of its file, which it keeps
    /// while the instance lives to read the file without dropping DuckDB's lock on it.
    #[error("cannot open {} to read it beside DuckDB ({class})", path.display())]
    DatabaseFile {
        /// The path given.
        path: PathBuf,
        /// The class of the failure.
        class: FailureClass,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A new database could not be created.
    #[error("cannot create {} ({class})", path.display())]
    Create {
        /// The path given.
        path: PathBuf,
        /// The class of the failure.
        class: FailureClass,
        /// What failed.
        #[source]
        source: StepError,
    },
    /// DuckDB cannot keep a database on this filesystem, another machine's share: its own files
    /// fail there with an I/O error (measured: DuckDB cannot open its WAL through smbnetfs, which
    /// is refused up front, before any file is touched; elsewhere a new database's creation that
    /// failed so). Nothing was left at the name.
    #[error(
        "duckdb cannot keep {} on {filesystem}: its files fail there with an I/O error; keep the \
         database on a local disk, or on a share whose client duckdb works with",
        path.display()
    )]
    FilesystemUnsupported {
        /// The path given.
        path: PathBuf,
        /// The filesystem, as detected (or set by the options).
        filesystem: store_core::FsKind,
        /// What failed, when the creation was tried; `None` when refused up front.
        #[source]
        source: Option<StepError>,
    },
    /// The database opened but its migrations failed; it is left at the last applied version.
    #[error("cannot migrate {}", path.display())]
    Migrate {
        /// The path given.
        path: PathBuf,
        /// What failed.
        #[source]
        source: MigrateError,
    },
    /// DuckDB answered an `fsync_mode` store does not know, so what a power cut may do to
    /// commits cannot be reported; the open fails rather than guess.
    #[error("duckdb answered fsync_mode `{answered}` for {}, which store does not know", path.display())]
    UnknownFsyncMode {
        /// The path given.
        path: PathBuf,
        /// What `current_setting('fsync_mode')` answered.
        answered: String,
    },
    /// The snapshot chosen for restoring is unusable. The restore moved nothing; earlier steps
    /// may have, and `moved_aside` lists what they moved.
    #[error("cannot restore {} from snapshot {}", path.display(), snapshot.display())]
    Snapshot {
        /// The path given.
        path: PathBuf,
        /// The snapshot.
        snapshot: PathBuf,
        /// The class of the snapshot's failure.
        class: FailureClass,
        /// Steps tried before, with why each failed.
        recovery_failures: Vec<StepFailed>,
        /// Files moved aside by earlier steps.
        moved_aside: Vec<MovedAside>,
        /// What failed.
        #[source]
        source: StepError,
    },
    /// DuckDB refused a setting ([`DuckDbOptions::setting`](crate::DuckDbOptions::setting)): a
    /// name it does not know, or a value it cannot take. Found before any file was touched.
    #[error("duckdb refuses the setting {name}={value} for {}", path.display())]
    Setting {
        /// The path given.
        path: PathBuf,
        /// The setting's name.
        name: String,
        /// The value asked for.
        value: String,
        /// What DuckDB said.
        #[source]
        source: duckdb::Error,
    },
    /// The file is already open in this process with another access mode or other settings. One
    /// instance serves a file per process (two would lose each other's writes), and its mode and
    /// settings are fixed when it starts, so this open cannot have what it asked for. Nothing was
    /// touched.
    #[error(
        "{} is already open in this process as {live}; this open asked for {asked}: open it with \
         the same options, or close the other connections first",
        path.display()
    )]
    InstanceMismatch {
        /// The path given.
        path: PathBuf,
        /// What the live instance was started with.
        live: InstanceConfig,
        /// What this open asked for.
        asked: InstanceConfig,
    },
    /// The database is on a filesystem another machine can reach, and its ownership could not
    /// be claimed for this client: another client owns it (named, with the remedy), or its
    /// record is not one store can read. Nothing of the database was touched.
    #[error("cannot claim {} for this client", path.display())]
    Ownership {
        /// The path given.
        path: PathBuf,
        /// Who owns it, or what is wrong with its record.
        #[source]
        source: store_core::ownership::OwnershipError,
    },
    /// The options' per-connection initialisation failed on the open's connection.
    #[error("the per-connection initialisation failed on {}", path.display())]
    Init {
        /// The path given.
        path: PathBuf,
        /// What the initialisation returned.
        #[source]
        source: duckdb::Error,
    },
    /// The database file is shorter than the blocks DuckDB says are in use (cut short: an
    /// interrupted copy, a truncation): it would open and fail at the first query that reaches a
    /// missing block. Nothing was changed; restore the file from a backup or its pre-migration
    /// snapshot.
    #[error(
        "{} is cut short: {used_blocks} blocks of {block_size} bytes are in use, but its {file_bytes} \
         bytes hold {blocks_in_file}; restore it from a backup or its pre-migration snapshot",
        path.display()
    )]
    CutShort {
        /// The path given.
        path: PathBuf,
        /// The file's length.
        file_bytes: u64,
        /// DuckDB's block size for this file.
        block_size: u64,
        /// Blocks DuckDB says are in use.
        used_blocks: u64,
        /// Whole blocks the file holds after its headers.
        blocks_in_file: u64,
        /// Each recovery step tried, and why it did not work.
        recovery_failures: Vec<StepFailed>,
        /// Files moved aside by steps that failed after moving them.
        moved_aside: Vec<MovedAside>,
    },
    /// The WAL reader found damage after the last whole commit of the WAL, or of the checkpoint
    /// WAL DuckDB replays after it (a tail DuckDB would drop without a word, or an entry DuckDB
    /// would fail on), and the recovery policy does not
    /// recover from it (or every step failed): the open refuses rather than lose data silently.
    #[error("{}: {file} has {tail}", path.display())]
    WalTail {
        /// The path given.
        path: PathBuf,
        /// The log the damage is in: the WAL, or the checkpoint WAL replayed after it.
        file: crate::wal::WalFile,
        /// What the WAL reader found after the log's last whole commit.
        tail: crate::wal::WalTail,
        /// Each recovery step tried, and why it did not work.
        recovery_failures: Vec<StepFailed>,
        /// Files moved aside by steps that failed after moving them.
        moved_aside: Vec<MovedAside>,
    },
}

impl OpenError {
    /// The failure class, for policies and user-facing messages.
    pub fn class(&self) -> FailureClass {
        match self {
            OpenError::Path(error) => error.class(),
            OpenError::UnknownFsyncMode { .. }
            | OpenError::Setting { .. }
            | OpenError::InstanceMismatch { .. } => FailureClass::Other,
            OpenError::Engine { class, .. }
            | OpenError::DatabaseFile { class, .. }
            | OpenError::Create { class, .. }
            | OpenError::Snapshot { class, .. } => *class,
            OpenError::Migrate { source, .. } => source.class(),
            OpenError::Init { source, .. } => crate::classify(source),
            OpenError::CutShort { .. } => FailureClass::Corrupt,
            OpenError::FilesystemUnsupported { .. } => FailureClass::WalUnsupported,
            OpenError::Ownership { source, .. } => {
                store_core::opening::ownership_failure_class(source)
            }
            OpenError::WalTail { tail, .. } => {
                tail.failure_class().unwrap_or(FailureClass::WalCorrupt)
            }
        }
    }

    /// The database path the open was for.
    pub fn path(&self) -> &Path {
        match self {
            OpenError::Path(error) => error.path(),
            OpenError::Engine { path, .. }
            | OpenError::DatabaseFile { path, .. }
            | OpenError::Create { path, .. }
            | OpenError::Migrate { path, .. }
            | OpenError::UnknownFsyncMode { path, .. }
            | OpenError::Snapshot { path, .. }
            | OpenError::Setting { path, .. }
            | OpenError::InstanceMismatch { path, .. }
            | OpenError::Ownership { path, .. }
            | OpenError::FilesystemUnsupported { path, .. }
            | OpenError::Init { path, .. }
            | OpenError::WalTail { path, .. }
            | OpenError::CutShort { path, .. } => path,
        }
    }

    /// Files that recovery steps moved aside before the open failed.
    pub fn moved_aside(&self) -> &[MovedAside] {
        match self {
            OpenError::Engine { moved_aside, .. }
            | OpenError::Snapshot { moved_aside, .. }
            | OpenError::WalTail { moved_aside, .. }
            | OpenError::CutShort { moved_aside, .. } => moved_aside,
            _ => &[],
        }
    }

    /// The DuckDB error underneath, if DuckDB failed.
    pub fn duckdb_error(&self) -> Option<&duckdb::Error> {
        match self {
            OpenError::Engine { source, .. } | OpenError::Setting { source, .. } => Some(source),
            OpenError::Create { source, .. } | OpenError::Snapshot { source, .. } => {
                source.duckdb_error()
            }
            OpenError::Migrate { source, .. } => source.duckdb_error(),
            _ => None,
        }
    }

    /// This error and its sources in a line, joined with `: `.
    pub fn cause_chain(&self) -> String {
        store_core::cause_chain(self)
    }
}

/// A new connection to an open database ([`DuckDbDatabase::connect`](crate::DuckDbDatabase::connect))
/// or its liveness check ([`DuckDbDatabase::check`](crate::DuckDbDatabase::check)) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The options' per-connection initialisation failed.
    #[error("the per-connection initialisation failed on {}", path.display())]
    Init {
        /// The database file.
        path: PathBuf,
        /// What the initialisation returned.
        #[source]
        source: duckdb::Error,
    },
    /// DuckDB failed.
    #[error("cannot connect to {} ({})", path.display(), crate::classify(source))]
    Engine {
        /// The database file (its directory canonical).
        path: PathBuf,
        /// What DuckDB said.
        #[source]
        source: duckdb::Error,
    },
    /// After the per-connection initialisation, the instance's `fsync_mode` no longer gives the
    /// durability the handle's open reported (an `on_connect`, or a `SET GLOBAL` on another
    /// connection, changed it): the connection is not handed out under a report it does not
    /// keep. Set `fsync_mode` before the open ([`DuckDbOptions::setting`]), or open again for a
    /// report of what is in force.
    ///
    /// [`DuckDbOptions::setting`]: crate::DuckDbOptions::setting
    #[error(
        "the open of {} reported {reported}, but after the per-connection initialisation duckdb \
         answers fsync_mode `{fsync_mode}`{}",
        path.display(),
        in_force.map(|durability| format!(" ({durability})")).unwrap_or_default()
    )]
    DurabilityChanged {
        /// The database file.
        path: PathBuf,
        /// What the handle's open reported.
        reported: Durability,
        /// What `current_setting('fsync_mode')` answers now.
        fsync_mode: String,
        /// What that mode does to commits, if store knows the mode.
        in_force: Option<Durability>,
    },
}

impl ConnectError {
    /// The failure class, for pools deciding whether to retry and for user-facing messages.
    pub fn class(&self) -> FailureClass {
        match self {
            ConnectError::Engine { source, .. } | ConnectError::Init { source, .. } => {
                crate::classify(source)
            }
            ConnectError::DurabilityChanged { .. } => FailureClass::Other,
        }
    }

    /// The database file the connection was for.
    pub fn path(&self) -> &Path {
        match self {
            ConnectError::Engine { path, .. }
            | ConnectError::Init { path, .. }
            | ConnectError::DurabilityChanged { path, .. } => path,
        }
    }

    /// The DuckDB error underneath.
    pub fn duckdb_error(&self) -> Option<&duckdb::Error> {
        match self {
            ConnectError::Engine { source, .. } | ConnectError::Init { source, .. } => Some(source),
            ConnectError::DurabilityChanged { .. } => None,
        }
    }
}

/// A step of an open or a recovery that failed: DuckDB, a file operation, or a snapshot that does
/// not qualify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// DuckDB failed.
    #[error(transparent)]
    Duckdb(#[from] duckdb::Error),
    /// Copying a file failed.
    #[error(transparent)]
    Copy(#[from] SnapshotError),
    /// Moving files aside failed.
    #[error(transparent)]
    MoveAside(#[from] MoveAsideError),
    /// Another file operation failed.
    #[error("cannot {operation} {}", path.display())]
    Io {
        /// What was being done.
        operation: &'static str,
        /// To which file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The snapshot's schema is one the recovery policy does not accept.
    #[error(
        "snapshot schema version {snapshot_version} is not accepted for target version {target_version}"
    )]
    SnapshotRejected {
        /// The snapshot's schema version.
        snapshot_version: u32,
        /// The version the migrations end at.
        target_version: u32,
    },
    /// The snapshot file is not a DuckDB database.
    #[error("the snapshot is not a DuckDB database")]
    SnapshotNotADatabase,
}

impl StepError {
    /// The DuckDB error underneath, if DuckDB failed.
    pub fn duckdb_error(&self) -> Option<&duckdb::Error> {
        match self {
            StepError::Duckdb(error) => Some(error),
            _ => None,
        }
    }
}

/// Migrations failed; the failing migration's transaction was rolled back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The migration list does not fit this database (for one, the database is newer).
    #[error("migrations do not fit this database")]
    Mismatch {
        /// What does not fit.
        #[source]
        source: MigrationsError,
    },
    /// The pre-migration snapshot could not be taken; nothing was migrated.
    #[error("cannot take the pre-migration snapshot")]
    Snapshot {
        /// What failed.
        #[source]
        source: SnapshotError,
    },
    /// A step around the migrations failed (reading the version, a checkpoint).
    #[error("cannot {action} ({class})")]
    Step {
        /// What was being done.
        action: &'static str,
        /// The class of the failure.
        class: FailureClass,
        /// What DuckDB said.
        #[source]
        source: duckdb::Error,
    },
    /// A migration's statements failed.
    #[error("migration {version} (`{name}`) failed ({class})")]
    Statement {
        /// The migration's version.
        version: u32,
        /// Its name.
        name: String,
        /// The class of the failure.
        class: FailureClass,
        /// What DuckDB said.
        #[source]
        source: duckdb::Error,
    },
}

impl MigrateError {
    /// The failure class.
    pub fn class(&self) -> FailureClass {
        match self {
            MigrateError::Mismatch { .. } => FailureClass::Other,
            MigrateError::Snapshot { source } => source.class(),
            MigrateError::Step { class, .. } | MigrateError::Statement { class, .. } => *class,
        }
    }

    /// The DuckDB error underneath, if DuckDB failed.
    pub fn duckdb_error(&self) -> Option<&duckdb::Error> {
        match self {
            MigrateError::Step { source, .. } | MigrateError::Statement { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Promise: a connection error has the class `classify` gives its DuckDB error, so that a pool
    /// retries a lock and gives up on the rest, and its message names the file.
    #[test]
    fn a_connect_error_is_classified_and_names_its_file() {
        let error = ConnectError::Engine {
            path: PathBuf::from("/data/system.duckdb"),
            source: duckdb::Error::DuckDBFailure(
                duckdb::ffi::Error::new(duckdb::ffi::DuckDBError),
                Some("IO Error: Could not set lock on file \"/data/system.duckdb\"".to_owned()),
            ),
        };
        assert_eq!(error.class(), FailureClass::Locked);
        assert_eq!(
            error.to_string(),
            "cannot connect to /data/system.duckdb (Locked)"
        );
        assert_eq!(error.path(), Path::new("/data/system.duckdb"));
        assert!(error.duckdb_error().is_some());
    }
}
