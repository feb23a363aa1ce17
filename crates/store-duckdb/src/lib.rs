//! The DuckDB backend of `store`, over [duckdb] (duckdb-rs) with DuckDB bundled.
//!
//! An open through this crate migrates with a checkpoint after and a snapshot before, and recovers
//! from a write-ahead log that cannot be replayed without deleting anything. This release wires
//! the engine and names the files DuckDB keeps beside a database; the open path itself is being
//! built on [`store_core`]'s policies.
//!
//! ```no_run
//! use store_duckdb::{SIDECAR_SUFFIXES, duckdb::Connection};
//!
//! let connection = Connection::open("/var/lib/app/system.duckdb")?;
//! connection.execute_batch("CREATE TABLE IF NOT EXISTS events (id INTEGER)")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use duckdb;
pub use store_core;

/// The files DuckDB keeps beside a database `x.duckdb`: the write-ahead log `x.duckdb.wal` and,
/// while a checkpoint or a replay is under way, `x.duckdb.wal.checkpoint` and
/// `x.duckdb.wal.recovery`. They move together with their WAL.
pub const SIDECAR_SUFFIXES: &[&str] = &[".wal", ".wal.checkpoint", ".wal.recovery"];

#[cfg(test)]
mod tests {
    use super::*;
    use duckdb::Connection;
    use store_core::files::{existing_sidecars, sibling};

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn a_database_on_disk_logs_to_its_wal_and_keeps_its_rows() -> TestResult {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("system.duckdb");
        let connection = Connection::open(&path)?;
        connection.execute_batch(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, payload VARCHAR NOT NULL);
             INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c');",
        )?;
        // Uncheckpointed commits live in the WAL beside the database.
        assert_eq!(
            existing_sidecars(&path, SIDECAR_SUFFIXES)?,
            [sibling(&path, ".wal")]
        );
        drop(connection);

        let reopened = Connection::open(&path)?;
        let rows: i64 = reopened.query_row("SELECT count(*) FROM items", [], |row| row.get(0))?;
        assert_eq!(rows, 3);
        Ok(())
    }
}
