//! What [`examine`](crate::examine) found, as data: `Display` writes it for a person
//! ([`display`](crate::display)), serde for a machine.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use store_core::pending::InterruptedRecovery;
use store_core::{FailureClass, FileContent, Filesystem, JournalMode, RecoveryStep, Risk};

use crate::ownership::OwnershipFinding;
use crate::serialize;
use crate::verdict::Verdict;

/// Everything [`examine`](crate::examine) found; `Display` writes it for a person.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct Checkup {
    /// The path examined (a database file or a directory).
    pub path: PathBuf,
    /// The directory the databases live in.
    pub directory: PathBuf,
    /// The filesystem holding the directory, or why it could not be detected.
    #[serde(serialize_with = "serialize::filesystem")]
    pub filesystem: Result<Filesystem, String>,
    /// Whether SQLite's WAL works in the directory.
    pub wal: WalProbe,
    /// Each database examined: the file asked about, or the databases in the directory.
    pub databases: Vec<DatabaseCheckup>,
}

impl Checkup {
    /// What the checkup means for the operator: the worst of the databases' verdicts; with no
    /// database, what the WAL probe says of the directory.
    pub fn verdict(&self) -> Verdict {
        match self.databases.iter().map(|database| database.verdict).max() {
            Some(worst) => worst,
            None => Verdict::of_wal_probe(&self.wal),
        }
    }
}

/// What the WAL probe found: a scratch SQLite database beside the path, set to WAL and proven by a
/// write and a read, then removed with its sidecars. Nothing of the application's state changes
/// ([`store_sqlite::probe_journal_mode`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum WalProbe {
    /// WAL was set and proven by a write and a read, on this machine. On a network filesystem
    /// that is not enough for several machines sharing the database, which is why store's default
    /// policy uses DELETE there (see the outlook).
    Works,
    /// WAL failed in a way store's default policy falls back on, and the fallback works.
    FallsBack {
        /// How WAL failed.
        #[serde(serialize_with = "serialize::display")]
        class: FailureClass,
        /// What the engine said.
        cause: String,
        /// The journal mode store settles on instead.
        #[serde(serialize_with = "serialize::display")]
        to: JournalMode,
    },
    /// No database can be created here: WAL failed in a way store does not fall back on, or the
    /// fallback failed too.
    Fails {
        /// How it failed.
        #[serde(serialize_with = "serialize::display")]
        class: FailureClass,
        /// What went wrong, with its causes.
        cause: String,
    },
    /// The probe was not run (the directory is not writable, say).
    NotProbed {
        /// Why not.
        reason: String,
    },
}

impl WalProbe {
    /// Whether WAL with shared memory works in the directory.
    pub fn works(&self) -> bool {
        matches!(self, WalProbe::Works)
    }
}

/// A file's size and age.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileFacts {
    /// Where it is.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// When it was last modified, when the filesystem says (RFC 3339, UTC, in JSON).
    #[serde(serialize_with = "serialize::optional_time")]
    pub modified: Option<SystemTime>,
}

impl FileFacts {
    pub(crate) fn read(path: &Path) -> io::Result<FileFacts> {
        let metadata = std::fs::symlink_metadata(path)?;
        Ok(FileFacts {
            path: path.to_owned(),
            bytes: metadata.len(),
            modified: metadata.modified().ok(),
        })
    }

    /// How long ago it was last modified (zero for a time in the future).
    pub fn age(&self) -> Option<Duration> {
        let modified = self.modified?;
        Some(
            SystemTime::now()
                .duration_since(modified)
                .unwrap_or_default(),
        )
    }
}

/// A pre-migration snapshot beside a DuckDB database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotFacts {
    /// The snapshot file.
    pub file: FileFacts,
    /// Its schema version, or why it could not be read.
    #[serde(serialize_with = "serialize::value_or_error")]
    pub schema_version: Result<u32, String>,
}

/// A file store moved aside, with why and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MovedAsideFacts {
    /// The file.
    pub file: FileFacts,
    /// Why it was moved (`broken`, `discarded-wal`, `salvaged-wal`).
    pub reason: String,
    /// The UTC stamp in its name.
    pub stamp: String,
}

/// What store sees of one database.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct DatabaseCheckup {
    /// The database file.
    pub path: PathBuf,
    /// What the file holds.
    #[serde(serialize_with = "serialize::content")]
    pub content: FileContent,
    /// The WAL and other sidecars present, with sizes and ages.
    pub sidecars: Vec<FileFacts>,
    /// The pre-migration snapshot, if there is one (DuckDB).
    pub snapshot: Option<SnapshotFacts>,
    /// Files moved aside by recovery, oldest first.
    pub moved_aside: Vec<MovedAsideFacts>,
    /// A recovery whose open a crash or power cut interrupted, by the record it left
    /// (`<db>.recovery-pending`); the next read-write open reports it and removes the record.
    #[serde(serialize_with = "serialize::interrupted_recovery")]
    pub recovery_pending: Option<InterruptedRecovery>,
    /// Dangers an open through store would not remove: a SQLite database in WAL format on a
    /// filesystem another machine can write ([`Risk::WalAcrossMachineBoundary`]), which store
    /// keeps in WAL.
    #[serde(serialize_with = "serialize::risks")]
    pub risks: Vec<Risk>,
    /// The ownership record beside it (`<db>.owner/record`): who owns the database, whether
    /// that owner is this machine and alive, or what is wrong with the record.
    pub ownership: Option<OwnershipFinding>,
    /// What an open through store would do.
    pub outlook: Outlook,
    /// What the outlook and the records mean for the operator
    /// ([`Verdict::of_database`]).
    pub verdict: Verdict,
}

/// What an open through store, with default options, would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Outlook {
    /// No file: SQLite would create it, trying these journal modes in order.
    Creates {
        /// The journal ladder for this filesystem.
        #[serde(serialize_with = "serialize::display_each")]
        journal_modes: Vec<JournalMode>,
    },
    /// It opens (checked by a read-only open that records nothing).
    Opens {
        /// The journal mode a read-write open would settle on (SQLite; unknown where WAL was not
        /// probed).
        #[serde(serialize_with = "serialize::optional_display")]
        journal_mode: Option<JournalMode>,
        /// Whether that mode is a fallback from the policy's first choice.
        falls_back: bool,
        /// The schema version store's migrations left.
        schema_version: u32,
    },
    /// SQLite's `PRAGMA quick_check` found damage: store opens such a file (it reads only the
    /// schema to prove a journal mode), and reads of the damaged pages fail or return wrong rows.
    /// store does not repair SQLite files.
    Corrupt {
        /// The first problems `quick_check` named, a line each as it named them; or the error it
        /// failed with on damage it could not walk past.
        problems: Vec<String>,
    },
    /// An open fails in a way the default recovery ladder handles: it would try these steps.
    Recovers {
        /// How it fails.
        #[serde(serialize_with = "serialize::display")]
        class: FailureClass,
        /// The engine's words (or the WAL reader's), with causes.
        cause: String,
        /// The recovery steps, in order.
        #[serde(serialize_with = "serialize::display_each")]
        steps: Vec<RecoveryStep>,
    },
    /// An open fails and store leaves it alone.
    Fails {
        /// How it fails.
        #[serde(serialize_with = "serialize::display")]
        class: FailureClass,
        /// The error, with causes.
        cause: String,
    },
    /// Not a database store opens (empty, unrecognised, a directory).
    NotADatabase,
    /// DuckDB: the database is open in this process; the doctor does not start a second
    /// instance beside it (two instances on one file in one process lose each other's writes).
    OpenInThisProcess,
    /// A database of an engine this build does not include.
    EngineNotEnabled {
        /// The Cargo feature of store-doctor that would include it.
        feature: &'static str,
    },
}
