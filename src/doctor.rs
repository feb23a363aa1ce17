//! What store sees at a database path, told to a person (feature `sqlite`; DuckDB details with
//! feature `duckdb`). The engine of `cargo run --example doctor -- PATH`.
//!
//! [`examine`] looks at a database file, or at every database in a directory, and finds out: the
//! filesystem, whether SQLite's WAL works there (probed with a temporary database of its own
//! beside the path, removed afterwards), the journal format of an existing SQLite file, the WAL
//! and other sidecars, pre-migration snapshots and moved-aside files with their sizes and ages,
//! and what an open through store would do. It changes nothing of the user's: databases are
//! opened read-only and the probe's files are its own.
//!
//! ```no_run
//! let checkup = store::doctor::examine("/var/lib/app/state.db")?;
//! println!("{checkup}");
//! if !checkup.wal.works() {
//!     eprintln!("WAL does not work here; store falls back");
//! }
//! # Ok::<(), store::doctor::ExamineError>(())
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use store_core::files::{self, MovedAsideFile};
use store_core::fs::{Writability, writability};
use store_core::pending::{self, InterruptedRecovery};
use store_core::{FailureClass, FileContent, Filesystem, JournalLadder, JournalMode, RecoveryStep};
use store_sqlite::rusqlite;

/// The path could not be examined at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExamineError {
    /// Neither the path nor its parent directory exists.
    #[error("{} does not exist, nor does its directory", path.display())]
    Missing {
        /// The path asked about.
        path: PathBuf,
    },
    /// The path or its directory could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

/// Everything [`examine`] found; `Display` writes it for a person.
#[derive(Debug)]
#[non_exhaustive]
pub struct Checkup {
    /// The path examined (a database file or a directory).
    pub path: PathBuf,
    /// The directory the databases live in.
    pub directory: PathBuf,
    /// The filesystem holding the directory, or why it could not be detected.
    pub filesystem: Result<Filesystem, String>,
    /// Whether SQLite's WAL works in the directory.
    pub wal: WalProbe,
    /// Each database examined: the file asked about, or the databases in the directory.
    pub databases: Vec<DatabaseCheckup>,
}

/// What the WAL probe found: a temporary SQLite database beside the path, opened through store
/// with the default journal policy, then removed with its sidecars.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WalProbe {
    /// WAL was set and proven by a read, on this machine. On a network filesystem
    /// that is not enough for several machines sharing the database, which is why store's default
    /// policy uses DELETE there (see the outlook).
    Works,
    /// WAL failed and store fell back, as it would for a new database here.
    FallsBack {
        /// How WAL failed.
        class: FailureClass,
        /// What the engine said.
        cause: String,
        /// The journal mode store settled on instead.
        to: JournalMode,
    },
    /// Even the fallback failed: no database can be created here.
    Fails {
        /// How it failed.
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// Where it is.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// When it was last modified, when the filesystem says.
    pub modified: Option<SystemTime>,
}

impl FileFacts {
    fn read(path: &Path) -> io::Result<FileFacts> {
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFacts {
    /// The snapshot file.
    pub file: FileFacts,
    /// Its schema version, or why it could not be read.
    pub schema_version: Result<u32, String>,
}

/// A file store moved aside, with why and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedAsideFacts {
    /// The file.
    pub file: FileFacts,
    /// Why it was moved (`broken`, `discarded-wal`, `salvaged-wal`).
    pub reason: String,
    /// The UTC stamp in its name.
    pub stamp: String,
}

/// What store sees of one database.
#[derive(Debug)]
#[non_exhaustive]
pub struct DatabaseCheckup {
    /// The database file.
    pub path: PathBuf,
    /// What the file holds.
    pub content: FileContent,
    /// The WAL and other sidecars present, with sizes and ages.
    pub sidecars: Vec<FileFacts>,
    /// The pre-migration snapshot, if there is one (DuckDB).
    pub snapshot: Option<SnapshotFacts>,
    /// Files moved aside by recovery, oldest first.
    pub moved_aside: Vec<MovedAsideFacts>,
    /// A recovery whose open a crash or power cut interrupted, by the record it left
    /// (`<db>.recovery-pending`); the next read-write open reports it and removes the record.
    pub recovery_pending: Option<InterruptedRecovery>,
    /// What an open through store would do.
    pub outlook: Outlook,
}

/// What an open through store, with default options, would do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outlook {
    /// No file: SQLite would create it, trying these journal modes in order.
    Creates {
        /// The journal ladder for this filesystem.
        journal_modes: Vec<JournalMode>,
    },
    /// It opens (checked by a read-only open through store).
    Opens {
        /// The journal mode a read-write open would settle on (SQLite; unknown where WAL was not
        /// probed).
        journal_mode: Option<JournalMode>,
        /// Whether that mode is a fallback from the policy's first choice.
        falls_back: bool,
        /// The schema version store's migrations left.
        schema_version: u32,
    },
    /// An open fails in a way the default recovery ladder handles: it would try these steps.
    Recovers {
        /// How it fails.
        class: FailureClass,
        /// The engine's words, with causes.
        cause: String,
        /// The recovery steps, in order.
        steps: Vec<RecoveryStep>,
    },
    /// An open fails and store leaves it alone.
    Fails {
        /// How it fails.
        class: FailureClass,
        /// The error, with causes.
        cause: String,
    },
    /// Not a database store opens (empty, unrecognised, a directory).
    NotADatabase,
    /// DuckDB: the database is open in this process; the doctor does not start a second
    /// instance beside it (a read-only open would be refused as a mismatch, and two instances on
    /// one file in one process lose each other's writes).
    OpenInThisProcess,
    /// A database of an engine this build does not include.
    EngineNotEnabled {
        /// The Cargo feature that would include it.
        feature: &'static str,
    },
}

/// Examines a database file, or every SQLite and DuckDB database directly in a directory.
/// Changes nothing of the user's: see the [module docs](self).
pub fn examine(path: impl AsRef<Path>) -> Result<Checkup, ExamineError> {
    let path = path.as_ref().to_owned();
    let is_directory = path.is_dir();
    let directory = if is_directory {
        path.clone()
    } else {
        files::parent_directory(&path)
    };
    if !directory.is_dir() {
        return Err(ExamineError::Missing { path });
    }
    let filesystem = Filesystem::detect(&directory).map_err(|error| error.to_string());
    let wal = probe_wal(&directory);
    let database_paths = if is_directory {
        databases_in(&directory)?
    } else {
        vec![path.clone()]
    };
    let kind = filesystem
        .as_ref()
        .map_or(store_core::FsKind::Unknown, |fs| fs.kind);
    let databases = database_paths
        .into_iter()
        .map(|database| examine_database(&database, kind, &wal))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Checkup {
        path,
        directory,
        filesystem,
        wal,
        databases,
    })
}

/// The SQLite and DuckDB files in `directory`, without hidden files and without files named after
/// another database (its snapshots and moved-aside files are reported with it).
fn databases_in(directory: &Path) -> Result<Vec<PathBuf>, ExamineError> {
    let read_error = |source| ExamineError::Read {
        path: directory.to_owned(),
        source,
    };
    let mut candidates = Vec::new();
    for entry in std::fs::read_dir(directory).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_database =
            FileContent::inspect(&entry.path()).is_ok_and(|content| content.engine().is_some());
        if is_database && !name.starts_with('.') {
            candidates.push(name);
        }
    }
    let belongs_to_another = |name: &str| {
        candidates
            .iter()
            .any(|other| other != name && name.starts_with(&format!("{other}.")))
    };
    let mut databases: Vec<PathBuf> = candidates
        .iter()
        .filter(|name| !belongs_to_another(name))
        .map(|name| directory.join(name))
        .collect();
    databases.sort();
    Ok(databases)
}

fn probe_wal(directory: &Path) -> WalProbe {
    match writability(directory) {
        Writability::Writable => {}
        other => {
            return WalProbe::NotProbed {
                reason: format!("the directory is not writable ({other:?})"),
            };
        }
    }
    let probe = files::private_sibling(&directory.join("store"), "doctor-wal-probe");
    // WAL first on every filesystem: the default policy skips it on NFS, SMB and 9p, and a probe
    // that never tried WAL would report it working.
    let policy = JournalLadder::new(
        "doctor WAL probe",
        vec![JournalMode::Wal, JournalMode::Delete],
    )
    .expect("a ladder of two modes is valid");
    let outcome = store_sqlite::SqliteOptions::new(&probe)
        .label("store doctor WAL probe")
        .journal_policy(policy)
        .open();
    let verdict = match outcome {
        Ok((connection, report)) => {
            drop(connection);
            match (report.fallbacks.first(), report.journal_mode) {
                (None, Some(JournalMode::Wal)) => WalProbe::Works,
                (fallback, to) => WalProbe::FallsBack {
                    class: fallback.map_or(FailureClass::Other, |fallback| fallback.class),
                    cause: fallback.map_or_else(
                        || format!("the open settled on {to:?} without trying WAL"),
                        |fallback| fallback.cause.clone(),
                    ),
                    to: to.unwrap_or(JournalMode::Delete),
                },
            }
        }
        Err(error) => WalProbe::Fails {
            class: error.class(),
            cause: error.cause_chain(),
        },
    };
    // The probe's own files, under a name no one else uses.
    for suffix in [""].iter().chain(store_sqlite::SIDECAR_SUFFIXES) {
        let _ = std::fs::remove_file(files::sibling(&probe, suffix));
    }
    verdict
}

fn examine_database(
    path: &Path,
    filesystem: store_core::FsKind,
    wal: &WalProbe,
) -> Result<DatabaseCheckup, ExamineError> {
    let content = FileContent::inspect(path).map_err(|source| ExamineError::Read {
        path: path.to_owned(),
        source,
    })?;
    let moved_aside = files::moved_aside_files(path)
        .unwrap_or_default()
        .into_iter()
        .filter_map(
            |MovedAsideFile {
                 path,
                 reason,
                 stamp,
                 ..
             }| {
                let file = FileFacts::read(&path).ok()?;
                Some(MovedAsideFacts {
                    file,
                    reason,
                    stamp,
                })
            },
        )
        .collect();
    let mut checkup = DatabaseCheckup {
        path: path.to_owned(),
        content,
        sidecars: Vec::new(),
        snapshot: None,
        moved_aside,
        recovery_pending: pending::find(path),
        outlook: Outlook::NotADatabase,
    };
    match content {
        FileContent::Missing => {
            checkup.outlook = Outlook::Creates {
                journal_modes: store_sqlite::SqliteOptions::new(path)
                    .journal_ladder(filesystem, false),
            };
        }
        FileContent::Sqlite { wal: existing_wal } => {
            checkup.sidecars = sidecars(path, store_sqlite::SIDECAR_SUFFIXES);
            checkup.outlook = sqlite_outlook(path, filesystem, existing_wal, wal);
        }
        FileContent::Duckdb => examine_duckdb(&mut checkup),
        _ => {}
    }
    Ok(checkup)
}

fn sidecars(path: &Path, suffixes: &[&str]) -> Vec<FileFacts> {
    files::existing_sidecars(path, suffixes)
        .unwrap_or_default()
        .iter()
        .filter_map(|sidecar| FileFacts::read(sidecar).ok())
        .collect()
}

/// The first rung of the ladder the probe says works: shared-memory WAL only where the probe
/// proved it; WAL-exclusive and rollback journals need no shared memory. The file is read as
/// immutable: even a read-only connection to a WAL database creates `-wal` and `-shm` files.
fn sqlite_outlook(
    path: &Path,
    filesystem: store_core::FsKind,
    existing_wal: bool,
    wal: &WalProbe,
) -> Outlook {
    let ladder = store_sqlite::SqliteOptions::new(path).journal_ladder(filesystem, existing_wal);
    // Unprobed (a read-only location), the mode a read-write open would take is unknown.
    let journal_mode = match wal {
        WalProbe::NotProbed { .. } => None,
        _ => ladder
            .iter()
            .copied()
            .find(|&mode| mode != JournalMode::Wal || wal.works()),
    };
    let read = || -> rusqlite::Result<u32> {
        let connection = rusqlite::Connection::open_with_flags(
            immutable_uri(path),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                | rusqlite::OpenFlags::SQLITE_OPEN_URI
                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.query_row("PRAGMA quick_check", [], |row| row.get::<_, String>(0))?;
        store_sqlite::schema_version(&connection)
    };
    match read() {
        Ok(schema_version) => Outlook::Opens {
            journal_mode,
            falls_back: journal_mode.is_some() && journal_mode != ladder.first().copied(),
            schema_version,
        },
        Err(error) => Outlook::Fails {
            class: store_sqlite::classify(&error),
            cause: error.to_string(),
        },
    }
}

/// `file:<path>?immutable=1`, the path percent-encoded where a URI needs it.
fn immutable_uri(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut uri = String::from("file:");
    for byte in absolute.as_os_str().as_encoded_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                uri.push(char::from(*byte));
            }
            other => uri.push_str(&format!("%{other:02X}")),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

#[cfg(feature = "duckdb")]
fn examine_duckdb(checkup: &mut DatabaseCheckup) {
    let path = checkup.path.clone();
    checkup.sidecars = sidecars(&path, store_duckdb::SIDECAR_SUFFIXES);
    let snapshot_path = files::sibling(&path, store_duckdb::SNAPSHOT_SUFFIX);
    checkup.snapshot = FileFacts::read(&snapshot_path).ok().map(|file| {
        let schema_version = store_duckdb::duckdb::Config::default()
            .access_mode(store_duckdb::duckdb::AccessMode::ReadOnly)
            .and_then(|config| {
                store_duckdb::duckdb::Connection::open_with_flags(&snapshot_path, config)
            })
            .and_then(|connection| store_duckdb::schema_version(&connection))
            .map_err(|error| error.to_string());
        SnapshotFacts {
            file,
            schema_version,
        }
    });
    if store_duckdb::is_open(&path) {
        checkup.outlook = Outlook::OpenInThisProcess;
        return;
    }
    checkup.outlook = match store_duckdb::DuckDbOptions::new(&path)
        .read_only(true)
        .open()
    {
        Ok((_, report)) => Outlook::Opens {
            journal_mode: None,
            falls_back: false,
            schema_version: report.schema_version,
        },
        Err(error) => {
            use store_core::{RecoveryLadder, RecoveryPolicy};

            let class = error.class();
            let policy = RecoveryLadder::default();
            if class.may_be_recovered() && policy.recovers_from(class) {
                Outlook::Recovers {
                    class,
                    cause: error.cause_chain(),
                    steps: policy.steps(),
                }
            } else {
                Outlook::Fails {
                    class,
                    cause: error.cause_chain(),
                }
            }
        }
    };
}

#[cfg(not(feature = "duckdb"))]
fn examine_duckdb(checkup: &mut DatabaseCheckup) {
    checkup.outlook = Outlook::EngineNotEnabled { feature: "duckdb" };
}

/// `1.5 MiB`, `312 B`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `40 s`, `3 min`, `5 h`, `12 days`.
fn human_age(age: Duration) -> String {
    let seconds = age.as_secs();
    match seconds {
        0..=119 => format!("{seconds} s"),
        120..=7199 => format!("{} min", seconds / 60),
        7200..=172_799 => format!("{} h", seconds / 3600),
        _ => format!("{} days", seconds / 86_400),
    }
}

impl fmt::Display for FileFacts {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        write!(formatter, "{name} ({}", human_bytes(self.bytes))?;
        if let Some(age) = self.age() {
            write!(formatter, ", modified {} ago", human_age(age))?;
        }
        formatter.write_str(")")
    }
}

impl fmt::Display for WalProbe {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalProbe::Works => formatter.write_str("works here (probed with a temporary database)"),
            WalProbe::FallsBack { class, cause, to } => write!(
                formatter,
                "does not work here ({class}: {cause}); store falls back to {to}. WAL needs shared \
                 memory and byte-range locks that NFS/SMB and many FUSE mounts lack"
            ),
            WalProbe::Fails { class, cause } => {
                write!(
                    formatter,
                    "no database can be created here ({class}): {cause}"
                )
            }
            WalProbe::NotProbed { reason } => write!(formatter, "not probed: {reason}"),
        }
    }
}

impl fmt::Display for Outlook {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outlook::Creates { journal_modes } => {
                let names: Vec<&str> = journal_modes.iter().map(|mode| mode.as_str()).collect();
                write!(formatter, "create it (SQLite), trying {}", names.join(", "))
            }
            Outlook::Opens {
                journal_mode,
                falls_back,
                schema_version,
                ..
            } => {
                formatter.write_str("open it")?;
                if let Some(mode) = journal_mode {
                    write!(formatter, " in {mode} mode")?;
                    if *falls_back {
                        formatter.write_str(" (a fallback: WAL does not work here)")?;
                    }
                }
                write!(formatter, "; schema version {schema_version}")
            }
            Outlook::Recovers {
                class,
                cause,
                steps,
            } => {
                let names: Vec<String> = steps.iter().map(ToString::to_string).collect();
                write!(
                    formatter,
                    "fail ({class}: {cause}) and recover, trying {}; nothing is deleted, \
                     damaged files are moved aside",
                    names.join(", ")
                )
            }
            Outlook::Fails { class, cause } => {
                write!(formatter, "fail ({class}) and leave it alone: {cause}")?;
                if *class == FailureClass::Locked {
                    formatter.write_str("; another process holds it")?;
                }
                Ok(())
            }
            Outlook::NotADatabase => formatter.write_str("refuse it: not a database"),
            Outlook::OpenInThisProcess => formatter
                .write_str("share it: it is open in this process, and healthy enough for that"),
            Outlook::EngineNotEnabled { feature } => write!(
                formatter,
                "need the `{feature}` feature of store to say more"
            ),
        }
    }
}

impl fmt::Display for DatabaseCheckup {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(formatter, "{}", self.path.display())?;
        let what = match self.content {
            FileContent::Missing => "nothing here yet".to_owned(),
            FileContent::Sqlite { wal: true } => "SQLite database in WAL format".to_owned(),
            FileContent::Sqlite { wal: false } => {
                "SQLite database in rollback-journal format (not WAL)".to_owned()
            }
            FileContent::Duckdb => "DuckDB database".to_owned(),
            other => format!("not a database: {other:?}"),
        };
        writeln!(formatter, "  {what}")?;
        for sidecar in &self.sidecars {
            writeln!(formatter, "  beside it: {sidecar}")?;
            let unmerged_sqlite_wal = matches!(self.content, FileContent::Sqlite { .. })
                && sidecar.path == files::sibling(&self.path, "-wal")
                && sidecar.bytes > 0;
            if unmerged_sqlite_wal {
                writeln!(
                    formatter,
                    "    commits not yet checkpointed into the file (in use, or not closed \
                     cleanly): the doctor reads the file alone, so what it says may be older"
                )?;
            }
        }
        if let Some(snapshot) = &self.snapshot {
            write!(formatter, "  pre-migration snapshot: {}", snapshot.file)?;
            match &snapshot.schema_version {
                Ok(version) => writeln!(formatter, ", schema version {version}")?,
                Err(error) => writeln!(formatter, ", unreadable: {error}")?,
            }
        }
        for moved in &self.moved_aside {
            writeln!(
                formatter,
                "  moved aside ({}, at {}): {}",
                moved.reason, moved.stamp, moved.file
            )?;
        }
        match &self.recovery_pending {
            Some(InterruptedRecovery::Recorded(earlier)) => writeln!(
                formatter,
                "  recovery pending: a recovery by {} (lost {}) was interrupted by a crash or power \
                 cut; the next read-write open reports it",
                earlier.step, earlier.lost
            )?,
            Some(InterruptedRecovery::Unreadable { reason }) => writeln!(
                formatter,
                "  recovery pending: a recovery was interrupted, its record is unreadable ({reason})"
            )?,
            Some(_) => writeln!(formatter, "  recovery pending: a recovery was interrupted")?,
            None => {}
        }
        writeln!(formatter, "  an open through store would {}", self.outlook)
    }
}

impl fmt::Display for Checkup {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(formatter, "{}", self.directory.display())?;
        match &self.filesystem {
            Ok(filesystem) => {
                write!(
                    formatter,
                    "  filesystem: {} ({}",
                    filesystem.kind, filesystem.type_name
                )?;
                if let Some(mount) = &filesystem.mount_point {
                    write!(formatter, ", mounted at {}", mount.display())?;
                }
                writeln!(formatter, ")")?;
            }
            Err(error) => writeln!(formatter, "  filesystem: unknown ({error})")?,
        }
        writeln!(formatter, "  SQLite WAL: {}", self.wal)?;
        if self.databases.is_empty() {
            writeln!(formatter, "  no SQLite or DuckDB database here")?;
        }
        for database in &self.databases {
            writeln!(formatter)?;
            write!(formatter, "{database}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store_core::pending::PendingRecovery;
    use store_core::{DataLoss, RecoveryStep};

    #[test]
    fn a_pending_recovery_record_gets_its_line_and_stays() -> Result<(), Box<dyn std::error::Error>>
    {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("system.duckdb");
        let record = PendingRecovery {
            step: RecoveryStep::RestoreSnapshot,
            class: FailureClass::WalReplay,
            cause: "Failure while replaying WAL file".into(),
            lost: DataLoss::UncheckpointedCommits,
            reason: "broken".into(),
            started_at: SystemTime::now(),
        };
        pending::record(&path, &record)?;
        let checkup = examine(&path)?;
        assert_eq!(
            checkup.databases[0].recovery_pending,
            Some(InterruptedRecovery::Recorded(record))
        );
        let text = checkup.to_string();
        assert!(
            text.contains("recovery pending: a recovery by restore-snapshot (lost uncheckpointed commits) was interrupted"),
            "{text}"
        );
        assert!(
            pending::record_path(&path).exists(),
            "the doctor changes nothing"
        );
        Ok(())
    }
}
