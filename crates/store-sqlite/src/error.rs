//! Errors of an open and of its migrations: what failed, where, and the failure class.

use std::io;
use std::path::{Path, PathBuf};

use store_core::locks::LockHolder;
use store_core::{FailureClass, Fallback, JournalMode, MigrationsError, PathError};

use crate::classify::{Stage, classify_at};
use crate::options::{SqliteOptions, Synchronous};

/// An open failed. Every variant names the database path; [`OpenError::class`] gives the class a
/// policy or a user-facing message decides on. Nothing on disk was changed by a failed open except
/// what a journal-mode attempt itself wrote, which the ladder undoes before giving up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The path cannot hold a SQLite database of ours (a directory, an empty file, a text file,
    /// a DuckDB file, a missing directory); nothing was touched.
    #[error(transparent)]
    Path(#[from] PathError),
    /// A new database could not be created.
    #[error("cannot create {} ({class})", path.display())]
    Create {
        /// The path given.
        path: PathBuf,
        /// The class of the failure.
        class: FailureClass,
        /// What failed.
        #[source]
        source: CreateError,
    },
    /// The journal policy gave no mode to try.
    #[error("journal policy `{policy}` gives no journal mode to try for {}", path.display())]
    EmptyLadder {
        /// The path given.
        path: PathBuf,
        /// The policy's name.
        policy: String,
    },
    /// Every journal mode the policy allows failed with a class the policy falls back on.
    #[error("no journal mode of policy `{policy}` works for {} ({class})", path.display())]
    NoJournalMode {
        /// The path given.
        path: PathBuf,
        /// The policy's name.
        policy: String,
        /// The class of the last failure.
        class: FailureClass,
        /// Each mode tried and why it failed, in order (the last one included).
        attempts: Vec<Fallback>,
        /// The last failure.
        #[source]
        source: JournalError,
    },
    /// Setting a journal mode failed for a reason the policy does not fall back on (another
    /// writer holds the database, the file is damaged): propagated, never swallowed.
    #[error("cannot put {} in journal mode {mode} ({class})", path.display())]
    Journal {
        /// The path given.
        path: PathBuf,
        /// The mode being set.
        mode: JournalMode,
        /// The class of the failure.
        class: FailureClass,
        /// What failed.
        #[source]
        source: JournalError,
    },
    /// SQLite failed for a reason the journal policy does not fall back on.
    #[error("cannot open {} ({class})", path.display())]
    Engine {
        /// The path given.
        path: PathBuf,
        /// The class of the failure.
        class: FailureClass,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite answered `PRAGMA synchronous` with another level than the one set, read back after
    /// the options' [`on_connect`](SqliteOptions::on_connect) ran (an initialisation that sets
    /// it is the usual cause): the commits would not be as durable as asked, so the open fails
    /// instead of handing out a connection its report misdescribes. Ask for a level with
    /// [`SqliteOptions::synchronous`], not in `on_connect`.
    #[error(
        "asked for synchronous={} on {}, sqlite answered {answered}",
        asked.as_str(),
        path.display()
    )]
    SynchronousNotTaken {
        /// The path given.
        path: PathBuf,
        /// The level asked for (the option, or the default for the journal mode).
        asked: Synchronous,
        /// What `PRAGMA synchronous` answered (0 to 3 for off to extra).
        answered: i64,
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
    /// Another process (or another connection of this one) holds the database exclusively: it is
    /// in WAL format on a filesystem that cannot share WAL's memory. Said at once, with the
    /// holder and the remedy, not as `Busy` after the busy timeout.
    #[error(transparent)]
    HeldExclusively(#[from] ExclusivelyHeld),
    /// The options' per-connection initialisation failed on the open's connection.
    #[error("the per-connection initialisation failed on {}", path.display())]
    Init {
        /// The path given.
        path: PathBuf,
        /// What the initialisation returned.
        #[source]
        source: rusqlite::Error,
    },
    /// The open reused a decision made earlier in this process, and connecting with it failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
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
}

/// A database in WAL format that one process holds with exclusive locking, because its
/// filesystem cannot share WAL's memory (the default policy keeps an existing WAL database in WAL
/// format there, so that machines still using it in WAL mode never disagree about the journal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{} is held exclusively by {holder}: it is in WAL format on a filesystem that cannot share \
     WAL's memory, so only one connection of one process can use it at a time; to share it, open \
     it with a policy that converts an existing WAL database \
     (`JournalLadder::standard().converting_existing_wal(true)`), or convert it once with \
     `PRAGMA journal_mode=DELETE` while no one holds it",
    path.display()
)]
pub struct ExclusivelyHeld {
    /// The database.
    pub path: PathBuf,
    /// Who holds it.
    pub holder: LockHolder,
}

/// A database handle could not make another connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// SQLite failed to open the connection or to apply the decision's settings.
    #[error("cannot connect to {} ({class})", path.display())]
    Engine {
        /// The database.
        path: PathBuf,
        /// The class of the failure.
        class: FailureClass,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The decision allows one connection and it is in use (in this process or another).
    #[error(transparent)]
    HeldExclusively(ExclusivelyHeld),
    /// The database is no longer in the journal mode decided: another process or an operator
    /// switched it. This handle never switches it back; open the database again to decide anew.
    #[error(
        "{} is no longer in journal mode {decided} (sqlite answers `{found}`): another process or \
         an operator switched it; open it again to decide anew",
        path.display()
    )]
    JournalModeChanged {
        /// The database.
        path: PathBuf,
        /// The mode the handle decided on.
        decided: JournalMode,
        /// What `PRAGMA journal_mode` answers now.
        found: String,
    },
    /// The options' per-connection initialisation failed.
    #[error("the per-connection initialisation failed on {}", path.display())]
    Init {
        /// The database.
        path: PathBuf,
        /// What the initialisation returned.
        #[source]
        source: rusqlite::Error,
    },
    /// The new connection answers `PRAGMA synchronous` with another level than the one the
    /// handle promises ([`SqliteDatabase::durability`](crate::SqliteDatabase::durability)), read
    /// back after the options' [`on_connect`](SqliteOptions::on_connect) ran: it is not handed
    /// out. Ask for a level with [`SqliteOptions::synchronous`], not in `on_connect`.
    #[error(
        "asked for synchronous={} on {}, the connection answers {answered} after its \
         initialisation",
        asked.as_str(),
        path.display()
    )]
    SynchronousNotTaken {
        /// The database.
        path: PathBuf,
        /// The level asked for (the option, or the default for the journal mode).
        asked: Synchronous,
        /// What `PRAGMA synchronous` answered (0 to 3 for off to extra).
        answered: i64,
    },
    /// A connection checked before reuse is inside a transaction its last user left open.
    #[error(
        "a connection to {} is inside a transaction its last user left open",
        path.display()
    )]
    InTransaction {
        /// The database.
        path: PathBuf,
    },
}

impl ConnectError {
    /// The failure class, for policies, pools and user-facing messages.
    pub fn class(&self) -> FailureClass {
        match self {
            ConnectError::Engine { class, .. } => *class,
            ConnectError::HeldExclusively(_) => FailureClass::Locked,
            ConnectError::JournalModeChanged { .. }
            | ConnectError::Init { .. }
            | ConnectError::SynchronousNotTaken { .. }
            | ConnectError::InTransaction { .. } => FailureClass::Other,
        }
    }

    /// The database the connection was for.
    pub fn path(&self) -> &Path {
        match self {
            ConnectError::Engine { path, .. }
            | ConnectError::JournalModeChanged { path, .. }
            | ConnectError::Init { path, .. }
            | ConnectError::SynchronousNotTaken { path, .. }
            | ConnectError::InTransaction { path } => path,
            ConnectError::HeldExclusively(held) => &held.path,
        }
    }
}

impl OpenError {
    /// The failure class, for policies and user-facing messages.
    pub fn class(&self) -> FailureClass {
        match self {
            OpenError::Path(error) => error.class(),
            OpenError::EmptyLadder { .. } | OpenError::SynchronousNotTaken { .. } => {
                FailureClass::Other
            }
            OpenError::Create { class, .. }
            | OpenError::NoJournalMode { class, .. }
            | OpenError::Journal { class, .. }
            | OpenError::Engine { class, .. } => *class,
            OpenError::Migrate { source, .. } => source.class(),
            OpenError::HeldExclusively(_) => FailureClass::Locked,
            OpenError::Init { source, .. } => crate::classify(source),
            OpenError::Connect(source) => source.class(),
            OpenError::Ownership { source, .. } => {
                store_core::opening::ownership_failure_class(source)
            }
        }
    }

    /// The database path the open was for.
    pub fn path(&self) -> &Path {
        match self {
            OpenError::Path(error) => error.path(),
            OpenError::Create { path, .. }
            | OpenError::EmptyLadder { path, .. }
            | OpenError::NoJournalMode { path, .. }
            | OpenError::Journal { path, .. }
            | OpenError::Engine { path, .. }
            | OpenError::SynchronousNotTaken { path, .. }
            | OpenError::Migrate { path, .. }
            | OpenError::Ownership { path, .. }
            | OpenError::Init { path, .. } => path,
            OpenError::HeldExclusively(held) => &held.path,
            OpenError::Connect(source) => source.path(),
        }
    }

    /// The SQLite error underneath, if SQLite failed.
    pub fn sqlite_error(&self) -> Option<&rusqlite::Error> {
        match self {
            OpenError::NoJournalMode { source, .. } | OpenError::Journal { source, .. } => {
                source.sqlite_error()
            }
            OpenError::Engine { source, .. } => Some(source),
            OpenError::Create {
                source: CreateError::Sqlite { source },
                ..
            } => Some(source),
            OpenError::Migrate { source, .. } => source.sqlite_error(),
            OpenError::Init { source, .. }
            | OpenError::Connect(
                ConnectError::Engine { source, .. } | ConnectError::Init { source, .. },
            ) => Some(source),
            _ => None,
        }
    }

    /// The cause in a line, for logs and [`store_core::unavailable_message`]: this error and its
    /// sources, joined with `: `.
    pub fn cause_chain(&self) -> String {
        store_core::cause_chain(self)
    }
}

impl SqliteOptions {
    /// An error SQLite answered during this open, classified for `stage`, naming the path.
    pub(crate) fn engine_error(&self, stage: Stage, source: rusqlite::Error) -> OpenError {
        OpenError::Engine {
            path: self.common.path.clone(),
            class: classify_at(&source, stage, Some(&self.common.path)).class,
            source,
        }
    }
}

/// Why a journal mode could not be put in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// SQLite failed while setting the mode or proving it with a read.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// SQLite answered with another mode than the one asked for (macOS NFS/SMB answer `delete`
    /// to `journal_mode=WAL`, and so does a VFS without shared memory).
    #[error("asked for journal_mode={}, sqlite answered `{answered}`", asked.pragma_value())]
    NotTaken {
        /// The mode asked for.
        asked: JournalMode,
        /// What SQLite answered.
        answered: String,
    },
    /// The database is in WAL format and another process (or connection) holds it exclusively.
    #[error("the database is held exclusively by {holder}")]
    HeldExclusively {
        /// Who holds it.
        holder: LockHolder,
    },
}

impl JournalError {
    /// The SQLite error, if SQLite failed.
    pub fn sqlite_error(&self) -> Option<&rusqlite::Error> {
        match self {
            JournalError::Sqlite(error) => Some(error),
            JournalError::NotTaken { .. } | JournalError::HeldExclusively { .. } => None,
        }
    }
}

/// Why a new database could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// SQLite refused to create or initialise it.
    #[error("sqlite could not initialise the new file")]
    Sqlite {
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The initialised file could not be made durable before taking its name.
    #[error("cannot sync the initialised file")]
    Sync {
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// Moving the initialised file into place failed.
    #[error("cannot move the initialised file into place")]
    Rename {
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

/// Migrations failed. The failing migration's transaction was rolled back: the database is at the
/// last version that committed.
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
    /// Reading or writing `schema_version` failed.
    #[error("cannot {action} the schema version ({class})")]
    SchemaVersion {
        /// `read` or `record`.
        action: &'static str,
        /// The class of the failure.
        class: FailureClass,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The version read back while a migration was recorded is not the migration's, or after it
    /// committed is lower than it: the record did not stick.
    #[error("schema version reads {found} where migration {expected} was recorded")]
    VersionNotRecorded {
        /// The migration's version.
        expected: u32,
        /// What `schema_version` says.
        found: u32,
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
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
}

impl MigrateError {
    /// The failure class.
    pub fn class(&self) -> FailureClass {
        match self {
            MigrateError::Mismatch { .. } | MigrateError::VersionNotRecorded { .. } => {
                FailureClass::Other
            }
            MigrateError::SchemaVersion { class, .. } | MigrateError::Statement { class, .. } => {
                *class
            }
        }
    }

    /// The SQLite error underneath, if SQLite failed.
    pub fn sqlite_error(&self) -> Option<&rusqlite::Error> {
        match self {
            MigrateError::Mismatch { .. } | MigrateError::VersionNotRecorded { .. } => None,
            MigrateError::SchemaVersion { source, .. } | MigrateError::Statement { source, .. } => {
                Some(source)
            }
        }
    }
}
