//! The SQLite backend of `store`, over [rusqlite] with SQLite bundled.
//!
//! An open through this crate gets WAL where the filesystem supports it and a verified, reported
//! fallback where it does not. This release wires the engine and names the files SQLite keeps
//! beside a database; the open path itself is being built on [`store_core`]'s policies.
//!
//! ```no_run
//! use store_sqlite::{SIDECAR_SUFFIXES, rusqlite::Connection};
//!
//! let connection = Connection::open("/var/lib/app/state.db")?;
//! connection.pragma_update(None, "journal_mode", "wal")?;
//! let sidecars = store_core::files::existing_sidecars(
//!     std::path::Path::new("/var/lib/app/state.db"),
//!     SIDECAR_SUFFIXES,
//! )?;
//! println!("{} sidecar file(s)", sidecars.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

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
