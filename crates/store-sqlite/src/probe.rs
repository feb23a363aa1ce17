//! Whether a journal mode works in a directory, asked without any of an open's side effects:
//! [`probe_journal_mode`].

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use store_core::files::{private_sibling, sibling};
use store_core::{FailureClass, JournalMode};

use crate::SIDECAR_SUFFIXES;
use crate::classify::{Stage, classify_at};
use crate::error::JournalError;
use crate::pragma::{pragma_answer, set_locking_mode};

/// Proves what SQLite's pager needs from the filesystem in the mode: a write, then a read.
const PROVE_SQL: &str = "CREATE TABLE probe (x INTEGER); INSERT INTO probe VALUES (1); \
                         SELECT count(*) FROM probe;";

/// A journal mode that does not work in a directory, classed as an open would class it.
#[derive(Debug, thiserror::Error)]
#[error("journal_mode={} does not work in {}", mode.pragma_value(), directory.display())]
#[non_exhaustive]
pub struct ProbeError {
    /// The directory probed.
    pub directory: PathBuf,
    /// The mode probed.
    pub mode: JournalMode,
    /// How it failed, as the journal ladder classes a failure to set or prove a mode (so that a
    /// [`store_core::JournalPolicy`] can say whether an open would fall back on it).
    pub class: FailureClass,
    /// What SQLite said.
    #[source]
    pub source: JournalError,
}

/// Creates a scratch database in `directory`, puts `mode` in force (with exclusive locking first
/// where the mode needs it), proves it with a write and a read, and removes the scratch database
/// and its sidecars, whatever happened.
///
/// Unlike an open, a probe records nothing: no last open error
/// ([`store_core::last_open_error`]), no per-directory "WAL failed here" memory that would make
/// later opens skip WAL, no warning. A tool asking about a directory (the doctor) leaves the
/// application's state as it found it.
///
/// ```
/// use store_sqlite::probe_journal_mode;
/// use store_sqlite::store_core::JournalMode;
///
/// let directory = tempfile::tempdir()?;
/// probe_journal_mode(directory.path(), JournalMode::Wal)?;
/// // The scratch database and its sidecars are gone.
/// assert_eq!(std::fs::read_dir(directory.path())?.count(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn probe_journal_mode(directory: &Path, mode: JournalMode) -> Result<(), ProbeError> {
    let scratch = private_sibling(&directory.join("store"), "journal-probe");
    let outcome = try_mode(&scratch, mode);
    // The scratch files are ours alone: a name no one else uses, made a moment ago.
    for suffix in [""].iter().chain(SIDECAR_SUFFIXES) {
        let _ = std::fs::remove_file(sibling(&scratch, suffix));
    }
    outcome.map_err(|(stage, source)| {
        let class = match &source {
            JournalError::Sqlite(error) => classify_at(error, stage, Some(&scratch)).class,
            JournalError::NotTaken { asked, .. } if asked.is_wal() => FailureClass::WalUnsupported,
            JournalError::HeldExclusively { .. } => FailureClass::Locked,
            _ => FailureClass::Other,
        };
        ProbeError {
            directory: directory.to_owned(),
            mode,
            class,
            source,
        }
    })
}

/// The probe proper, on a fresh connection that is closed before the files are removed.
fn try_mode(scratch: &Path, mode: JournalMode) -> Result<(), (Stage, JournalError)> {
    let connection = Connection::open_with_flags(
        scratch,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| (Stage::Open, error.into()))?;
    let journal = |error: rusqlite::Error| (Stage::Journal, JournalError::from(error));
    if mode.needs_exclusive_locking() {
        set_locking_mode(&connection, "exclusive").map_err(journal)?;
    }
    let answered = pragma_answer(
        &connection,
        &format!("PRAGMA journal_mode={}", mode.pragma_value()),
    )
    .map_err(journal)?;
    if !answered.eq_ignore_ascii_case(mode.pragma_value()) {
        return Err((
            Stage::Journal,
            JournalError::NotTaken {
                asked: mode,
                answered,
            },
        ));
    }
    connection.execute_batch(PROVE_SQL).map_err(journal)?;
    connection
        .close()
        .map_err(|(_, error)| (Stage::Journal, error.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Promise: on a local disk every mode a ladder uses works, and the probe leaves no file behind.
    #[test]
    fn every_mode_works_on_a_local_disk_and_leaves_nothing_behind()
    -> Result<(), Box<dyn std::error::Error>> {
        let directory = tempfile::tempdir()?;
        for mode in [
            JournalMode::Wal,
            JournalMode::WalExclusive,
            JournalMode::Delete,
        ] {
            probe_journal_mode(directory.path(), mode)?;
        }
        assert_eq!(std::fs::read_dir(directory.path())?.count(), 0);
        Ok(())
    }

    /// Promise: a directory that is gone is a typed failure naming the mode, not a panic.
    #[test]
    fn a_missing_directory_is_a_typed_failure_not_a_panic() {
        let directory = tempfile::tempdir().unwrap();
        let missing = directory.path().join("gone");
        let error = probe_journal_mode(&missing, JournalMode::Wal).unwrap_err();
        assert_eq!(error.mode, JournalMode::Wal);
        assert!(matches!(error.source, JournalError::Sqlite(_)), "{error:?}");
    }
}
