//! The SQLite backend of `store`, over [rusqlite] with SQLite bundled.
//!
//! An open through this crate gets WAL where the filesystem supports it and a verified, reported
//! fallback where it does not; never a silent "database not available".
//!
//! ```
//! use store_sqlite::SqliteOptions;
//! use store_sqlite::store_core::{JournalMode, Migration, Migrations};
//!
//! # let directory = tempfile::tempdir()?;
//! # let path = directory.path().join("state.db");
//! let migrations = Migrations::new(vec![
//!     Migration::new(1, "sessions", "CREATE TABLE sessions (id TEXT PRIMARY KEY)"),
//! ])?;
//! let (connection, report) = SqliteOptions::new(&path).migrations(migrations).open()?;
//! assert_eq!(report.journal_mode, Some(JournalMode::Wal));
//! // Durable by default: `synchronous=FULL` in WAL, so an acknowledged commit survives a power cut.
//! assert!(report.durability.is_some_and(|durability| durability.is_power_safe()));
//! assert_eq!(report.schema_version, 1);
//! connection.execute("INSERT INTO sessions (id) VALUES ('s1')", [])?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What an open does, in order:
//! 1. Refuses bad input with a typed [`OpenError`] and touches nothing: a directory, a missing
//!    parent directory, an empty file, a text file, a DuckDB file.
//! 2. Detects the filesystem ([`store_core::Filesystem`]); the [`store_core::JournalPolicy`]
//!    gives the ladder of journal modes for it.
//! 3. Creates a missing database under a temporary name and renames it into place, so a crash
//!    never leaves a zero-byte file behind; it is made in the format of the first rung the
//!    ladder will try, so that nothing is switched at its name.
//! 4. Walks the ladder: each mode is put in force on a fresh connection (set, and checked
//!    against what SQLite answers; or, where the file's format gives it, checked from SQLite's
//!    own state) and proven by a real read. Before a WAL rung would switch a rollback-format
//!    file, SQLite's VFS is asked to map a WAL index on a scratch file in the directory: where
//!    that fails, WAL is ruled out without touching the file. A one-off I/O error is retried
//!    twice, 50 ms apart. Failures the policy falls back on move down the ladder with one WARN
//!    per label; any other failure propagates. A database already in WAL format is never
//!    converted unless the policy says so: where WAL's shared memory is missing it is opened with
//!    exclusive locking.
//! 5. Puts `PRAGMA synchronous` in force ([`Synchronous::default_for`] the mode unless the
//!    options say otherwise: every acknowledged commit survives a power cut) and reads it back;
//!    the report's `durability` is what SQLite answered, and an answer other than the level asked
//!    fails the open.
//! 6. Applies migrations, each once, inside `BEGIN IMMEDIATE`.
//! 7. Returns the connection and an [`store_core::OpenReport`]; on failure, records the
//!    process's last open error for [`store_core::unavailable_message`].
//!
//! [`probe_journal_mode`] asks whether a journal mode works in a directory without any of an
//! open's side effects (no last open error, no per-directory WAL verdict): for tools such as the
//! doctor.

mod classify;
mod create;
mod database;
mod error;
mod ladder;
mod migrate;
mod open;
mod options;
mod ownership;
mod pragma;
mod probe;
mod read_only;
mod shared_memory;

pub use classify::{classify, extended_code};
pub use database::SqliteDatabase;
pub use error::{
    ConnectError, CreateError, ExclusivelyHeld, JournalError, MigrateError, OpenError,
};
pub use migrate::schema_version;
pub use options::{ParseSynchronousError, SqliteOptions, Synchronous};
pub use probe::{ProbeError, probe_journal_mode};
pub use rusqlite;
pub use store_core;

/// The files SQLite keeps beside a database `x.db`: `x.db-wal` and `x.db-shm` in WAL mode,
/// `x.db-journal` in the rollback-journal modes. They belong to the database: copying or moving
/// the database without them loses or corrupts commits.
pub const SIDECAR_SUFFIXES: &[&str] = &["-wal", "-shm", "-journal"];

/// The version of the bundled SQLite library, e.g. `3.50.4`.
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;
    use store_core::files::existing_sidecars;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn a_wal_database_on_disk_has_the_documented_sidecars_and_keeps_its_rows() -> TestResult {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("state.db");
        let connection = Connection::open(&path)?;
        let mode: String = connection.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
        assert_eq!(mode, "wal");
        connection.execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, payload TEXT NOT NULL);
             INSERT INTO items (payload) VALUES ('a'), ('b'), ('c');",
        )?;
        let sidecars = existing_sidecars(&path, SIDECAR_SUFFIXES)?;
        assert_eq!(
            sidecars,
            [
                store_core::files::sibling(&path, "-wal"),
                store_core::files::sibling(&path, "-shm")
            ]
        );
        drop(connection);

        let reopened = Connection::open(&path)?;
        let rows: i64 = reopened.query_row("SELECT count(*) FROM items", [], |row| row.get(0))?;
        assert_eq!(rows, 3);
        // Header bytes 18 and 19 are 2 for a database in WAL format.
        let header = std::fs::read(&path)?;
        assert_eq!((header[18], header[19]), (2, 2));
        assert!(sqlite_version().starts_with('3'), "{}", sqlite_version());
        Ok(())
    }
}
