//! The checkup of a path: which databases are there, and what is known of each whatever its
//! engine (sidecars, moved-aside files, a pending recovery); the engines' modules say the rest.

use std::io;
use std::path::{Path, PathBuf};

use store_core::files::{self, MovedAsideFile};
use store_core::{FileContent, Filesystem, FsKind, Risk, pending};

use crate::checkup::{Checkup, DatabaseCheckup, FileFacts, MovedAsideFacts, Outlook};
use crate::verdict::{EXIT_NO_INPUT, Verdict};
use crate::{duckdb, sqlite};

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

impl ExamineError {
    /// The process exit code `store-doctor` ends with: [`EXIT_NO_INPUT`] (66).
    pub fn exit_code(&self) -> u8 {
        EXIT_NO_INPUT
    }
}

/// Examines a database file, or every SQLite and DuckDB database directly in a directory.
///
/// Changes nothing of the user's and nothing of the application's: databases are read, never
/// opened through store (a SQLite file is read as `immutable=1`, a DuckDB file opened read-only
/// outside store's registry, unless it is open in this process); the WAL probe's scratch files
/// are its own and removed; no open error is recorded and no "WAL failed here" verdict is left
/// for later opens.
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
    let wal = sqlite::probe_wal(&directory);
    let database_paths = if is_directory {
        databases_in(&directory)?
    } else {
        vec![path.clone()]
    };
    let databases = database_paths
        .into_iter()
        .map(|database| examine_database(&database, filesystem.as_ref().ok(), &wal))
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
        let is_database = content_of(&entry.path()).is_ok_and(|content| content.engine().is_some());
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

/// What `path` holds, read as an open reads it ([`FileContent::inspect_database`]): closing a
/// descriptor of a database would drop the locks the application's connections hold on it. A
/// DuckDB database open in this process is not read again at all.
fn content_of(path: &Path) -> std::io::Result<FileContent> {
    #[cfg(feature = "duckdb")]
    if store_duckdb::is_open(path) {
        return Ok(FileContent::Duckdb);
    }
    FileContent::inspect_database(path)
}

fn examine_database(
    path: &Path,
    detected: Option<&Filesystem>,
    wal: &crate::WalProbe,
) -> Result<DatabaseCheckup, ExamineError> {
    let filesystem = detected.map_or(FsKind::Unknown, |detected| detected.kind);
    let content = content_of(path).map_err(|source| ExamineError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut checkup = DatabaseCheckup {
        path: path.to_owned(),
        content,
        sidecars: Vec::new(),
        snapshot: None,
        moved_aside: moved_aside(path),
        recovery_pending: pending::find(path),
        risks: Vec::new(),
        ownership: crate::ownership::examine(path),
        outlook: Outlook::NotADatabase,
        verdict: Verdict::Fails,
    };
    if let (FileContent::Sqlite { wal: true }, Some(detected)) = (content, detected) {
        // store keeps a WAL database in WAL (never switched live): where another machine can
        // write the files, that is a risk an open reports and the doctor says too.
        let boundary = detected.machine_boundary();
        if boundary.is_crossed() {
            checkup.risks.push(Risk::WalAcrossMachineBoundary {
                boundary,
                lock_scope: detected.lock_scope,
            });
        }
    }
    match content {
        FileContent::Missing => checkup.outlook = sqlite::creation_outlook(path, filesystem),
        FileContent::Sqlite { wal: existing_wal } => {
            sqlite::examine(&mut checkup, filesystem, existing_wal, wal);
        }
        FileContent::Duckdb => duckdb::examine(&mut checkup),
        _ => {}
    }
    checkup.verdict = Verdict::of_database(&checkup.outlook, checkup.recovery_pending.as_ref())
        .max(Verdict::of_ownership(checkup.ownership.as_ref()));
    Ok(checkup)
}

/// Files store moved aside beside `path`, oldest first, with their sizes and ages.
fn moved_aside(path: &Path) -> Vec<MovedAsideFacts> {
    files::moved_aside_files(path)
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
        .collect()
}

/// The sidecars of `path` that exist, with sizes and ages (asked by the engines' modules).
#[cfg(any(feature = "sqlite", feature = "duckdb"))]
pub(crate) fn sidecars(path: &Path, suffixes: &[&str]) -> Vec<FileFacts> {
    files::existing_sidecars(path, suffixes)
        .unwrap_or_default()
        .iter()
        .filter_map(|sidecar| FileFacts::read(sidecar).ok())
        .collect()
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use store_core::fs::parse_mountinfo_line;
    use store_core::{LockScope, MachineBoundary};

    use super::*;
    use crate::{Report, WalProbe};

    /// A filesystem as detection would see it from one mount-table line.
    fn mounted(line: &str) -> Filesystem {
        Filesystem::from_mount_entry(parse_mountinfo_line(line).expect("a mount-table line"))
    }

    /// sshfs as recorded on this machine (over a local sftp-server).
    const SSHFS: &str = "66 46 0:40 / /mnt/a rw,nosuid,nodev,relatime - fuse.sshfs me@host:/srv rw,user_id=0,group_id=0";

    /// A database in WAL format, made with plain rusqlite.
    fn wal_database(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let connection = store_sqlite::rusqlite::Connection::open(path)?;
        connection.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))?;
        connection.execute_batch("CREATE TABLE t (x INTEGER)")?;
        Ok(())
    }

    /// Promise: the doctor prints the filesystem's machine boundary and lock scope, in its text
    /// and its JSON, and says a WAL database on a network share is at risk, as a typed fact
    /// (`risks`), with why.
    #[test]
    fn the_lock_scope_and_a_wal_database_at_risk_are_printed_and_serialized()
    -> Result<(), Box<dyn std::error::Error>> {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("shared.db");
        wal_database(&path)?;
        let filesystem = mounted(SSHFS);
        let database = examine_database(&path, Some(&filesystem), &WalProbe::Works)?;
        assert_eq!(
            database.risks,
            [Risk::WalAcrossMachineBoundary {
                boundary: MachineBoundary::NetworkShare,
                lock_scope: LockScope::ThisClientOnly,
            }]
        );
        let checkup = Checkup {
            path: path.clone(),
            directory: directory.path().to_owned(),
            filesystem: Ok(filesystem),
            wal: WalProbe::Works,
            databases: vec![database],
        };
        let text = checkup.to_string();
        for expected in [
            "filesystem: sshfs (fuse.sshfs, mounted at /mnt/a)",
            "machine boundary: a network share: another machine can write these files",
            "lock scope: this-client-only (locks held by this client only: another client takes the same lock)",
            "at risk: WAL on a network share (locks held by this client only",
        ] {
            assert!(text.contains(expected), "{expected}\n{text}");
        }
        let outcome: Result<Checkup, ExamineError> = Ok(checkup);
        let json = serde_json::to_value(Report::new(&outcome))?;
        assert_eq!(json["filesystem"]["share_client"], "sshfs", "{json}");
        assert_eq!(
            json["filesystem"]["machine_boundary"], "network-share",
            "{json}"
        );
        assert_eq!(
            json["filesystem"]["lock_scope"], "this-client-only",
            "{json}"
        );
        let risk = &json["databases"][0]["risks"][0];
        assert_eq!(risk["risk"], "wal-across-machine-boundary", "{json}");
        assert_eq!(risk["lock_scope"], "this-client-only", "{json}");
        Ok(())
    }

    /// Promise: a database in a rollback journal on a share, or in WAL on a local disk, is not
    /// called at risk; a local disk's lock scope is this machine's, and no boundary line is
    /// printed.
    #[test]
    fn no_risk_without_both_wal_and_a_machine_boundary() -> Result<(), Box<dyn std::error::Error>> {
        let directory = tempfile::tempdir()?;
        let wal = directory.path().join("wal.db");
        wal_database(&wal)?;
        let local = mounted("29 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw");
        let on_disk = examine_database(&wal, Some(&local), &WalProbe::Works)?;
        assert!(on_disk.risks.is_empty(), "{:?}", on_disk.risks);
        let rollback = directory.path().join("rollback.db");
        store_sqlite::rusqlite::Connection::open(&rollback)?.execute_batch("CREATE TABLE t (x)")?;
        let on_share = examine_database(&rollback, Some(&mounted(SSHFS)), &WalProbe::Works)?;
        assert!(on_share.risks.is_empty(), "{:?}", on_share.risks);
        let checkup = Checkup {
            path: wal.clone(),
            directory: directory.path().to_owned(),
            filesystem: Ok(local),
            wal: WalProbe::Works,
            databases: vec![on_disk],
        };
        let text = checkup.to_string();
        assert!(
            text.contains("lock scope: this-machine (locks held by this machine's kernel)"),
            "{text}"
        );
        assert!(
            !text.contains("machine boundary") && !text.contains("at risk"),
            "{text}"
        );
        Ok(())
    }
}
