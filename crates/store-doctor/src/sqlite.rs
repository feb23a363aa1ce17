//! SQLite: whether WAL works in the directory, and what an open would do with a SQLite file.
//!
//! Nothing here goes through store's open, which records the process's last open error and
//! remembers a directory where WAL failed: the probe uses [`store_sqlite::probe_journal_mode`],
//! and the user's file is read as `immutable=1` (even a read-only connection to a WAL database
//! creates `-wal` and `-shm`).

use std::path::Path;

use store_core::fs::{Writability, writability};
use store_core::{FailureClass, FsKind, JournalLadder, JournalMode, JournalPolicy};
use store_sqlite::{SqliteOptions, probe_journal_mode, rusqlite};

use crate::checkup::{DatabaseCheckup, Outlook, WalProbe};
use crate::examine::sidecars;

/// How many problems `quick_check` is asked for: enough to see the damage's extent, few enough
/// to read.
const QUICK_CHECK_PROBLEMS: usize = 10;

/// Probes shared-memory WAL in `directory` as store's default policy would meet it, without any
/// of an open's side effects: WAL on a scratch database; where it fails in a way the policy falls
/// back on, DELETE on another.
pub(crate) fn probe_wal(directory: &Path) -> WalProbe {
    match writability(directory) {
        Writability::Writable => {}
        other => {
            return WalProbe::NotProbed {
                reason: format!("the directory is not writable ({other:?})"),
            };
        }
    }
    // The default ladder's classes, but WAL first on every filesystem: the default policy skips
    // WAL on NFS, SMB and 9p, and a probe that never tried WAL would report it working.
    let policy = JournalLadder::standard();
    let wal_failure = match probe_journal_mode(directory, JournalMode::Wal) {
        Ok(()) => return WalProbe::Works,
        Err(failure) => failure,
    };
    if !policy.falls_back_on(wal_failure.class) {
        return WalProbe::Fails {
            class: wal_failure.class,
            cause: store_core::cause_chain(&wal_failure),
        };
    }
    match probe_journal_mode(directory, JournalMode::Delete) {
        Ok(()) => WalProbe::FallsBack {
            class: wal_failure.class,
            cause: wal_failure.source.to_string(),
            to: JournalMode::Delete,
        },
        Err(failure) => WalProbe::Fails {
            class: failure.class,
            cause: store_core::cause_chain(&failure),
        },
    }
}

/// What an open of a missing file would do: create it, walking the default ladder.
pub(crate) fn creation_outlook(path: &Path, filesystem: FsKind) -> Outlook {
    Outlook::Creates {
        journal_modes: SqliteOptions::new(path).journal_ladder(filesystem, false),
    }
}

/// The SQLite file's sidecars and outlook.
pub(crate) fn examine(
    checkup: &mut DatabaseCheckup,
    filesystem: FsKind,
    existing_wal: bool,
    wal: &WalProbe,
) {
    checkup.sidecars = sidecars(&checkup.path, store_sqlite::SIDECAR_SUFFIXES);
    checkup.outlook = outlook(&checkup.path, filesystem, existing_wal, wal);
}

/// The first rung of the ladder the probe says works (shared-memory WAL only where the probe
/// proved it; WAL-exclusive and rollback journals need no shared memory), once the file reads
/// and passes `quick_check`.
fn outlook(path: &Path, filesystem: FsKind, existing_wal: bool, wal: &WalProbe) -> Outlook {
    if let WalProbe::Fails { class, cause } = wal {
        // Not even a scratch database could be written beside it: neither can this one.
        return Outlook::Fails {
            class: *class,
            cause: format!("a database beside it could not be written: {cause}"),
        };
    }
    let ladder = SqliteOptions::new(path).journal_ladder(filesystem, existing_wal);
    // Unprobed (a read-only location), the mode a read-write open would take is unknown.
    let journal_mode = match wal {
        WalProbe::NotProbed { .. } => None,
        _ => ladder
            .iter()
            .copied()
            .find(|&mode| mode != JournalMode::Wal || wal.works()),
    };
    match read(path) {
        Ok(Reading::Sound { schema_version }) => Outlook::Opens {
            journal_mode,
            falls_back: journal_mode.is_some() && journal_mode != ladder.first().copied(),
            schema_version,
        },
        Ok(Reading::Damaged { problems }) => Outlook::Corrupt { problems },
        Err(error) => Outlook::Fails {
            class: store_sqlite::classify(&error),
            cause: error.to_string(),
        },
    }
}

/// What a read of the file found.
enum Reading {
    /// `quick_check` answered `ok`.
    Sound { schema_version: u32 },
    /// `quick_check` named problems, or failed on the damage itself.
    Damaged { problems: Vec<String> },
}

/// Reads the file as immutable (no lock, no sidecar created) and checks it with `quick_check`.
/// Its answer is a single `ok` row or the problems found (this SQLite puts them in one row, a line
/// each, after a `*** in database main ***` heading); damage it cannot walk past fails it with
/// SQLITE_CORRUPT instead.
fn read(path: &Path) -> rusqlite::Result<Reading> {
    let connection = rusqlite::Connection::open_with_flags(
        immutable_uri(path),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
            | rusqlite::OpenFlags::SQLITE_OPEN_URI
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let answer = match quick_check(&connection) {
        Ok(answer) => answer,
        Err(error) if store_sqlite::classify(&error) == FailureClass::Corrupt => {
            return Ok(Reading::Damaged {
                problems: vec![error.to_string()],
            });
        }
        Err(error) => return Err(error),
    };
    if answer != ["ok"] {
        let problems = answer
            .iter()
            .flat_map(|row| row.lines())
            .filter(|line| !line.is_empty() && !line.starts_with("*** "))
            .take(QUICK_CHECK_PROBLEMS)
            .map(str::to_owned)
            .collect();
        return Ok(Reading::Damaged { problems });
    }
    Ok(Reading::Sound {
        schema_version: store_sqlite::schema_version(&connection)?,
    })
}

/// `PRAGMA quick_check`'s rows.
fn quick_check(connection: &rusqlite::Connection) -> rusqlite::Result<Vec<String>> {
    let mut statement =
        connection.prepare(&format!("PRAGMA quick_check({QUICK_CHECK_PROBLEMS})"))?;
    let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
    rows.collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Promise: a path with spaces, `?` or `#` is read as that file, not as URI syntax.
    #[test]
    fn uris_escape_what_sqlite_would_read_as_syntax() {
        let uri = immutable_uri(Path::new("/data/a b?c#d.db"));
        assert_eq!(uri, "file:/data/a%20b%3Fc%23d.db?immutable=1");
    }
}
