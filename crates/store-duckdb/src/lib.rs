//! The DuckDB backend of `store`, over [duckdb] (duckdb-rs) with DuckDB bundled.
//!
//! An open through this crate migrates with a checkpoint after and a snapshot before, and
//! recovers from a write-ahead log that cannot be replayed without deleting anything.
//!
//! ```
//! use store_duckdb::DuckDbOptions;
//! use store_duckdb::store_core::{Migration, Migrations};
//!
//! # let directory = tempfile::tempdir()?;
//! # let path = directory.path().join("system.duckdb");
//! let migrations = Migrations::new(vec![
//!     Migration::new(1, "events", "CREATE TABLE events (id INTEGER PRIMARY KEY)"),
//! ])?;
//! let (connection, report) = DuckDbOptions::new(&path).migrations(migrations).open()?;
//! assert_eq!(report.schema_version, 1);
//! assert!(report.snapshot.is_some(), "a migration ran, so a snapshot was taken first");
//! connection.execute("INSERT INTO events VALUES (1)", [])?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What an open does, in order:
//! 1. Refuses bad input with a typed [`OpenError`] and touches nothing.
//! 2. Shares the instance of the file already open in this process, if any (two instances on one
//!    file lose writes; see [`DuckDbConnection`]), when it was started with the same access mode
//!    and settings; else refuses with [`OpenError::InstanceMismatch`].
//! 3. Checks the settings ([`DuckDbOptions::setting`]): one DuckDB refuses is an
//!    [`OpenError::Setting`], with nothing touched. Creates a missing database under a temporary
//!    name and renames it into place.
//! 4. Opens, the settings in force from the start (a memory limit holds while the WAL replays).
//!    A lock held by another process propagates as `Locked`. A WAL that cannot be replayed
//!    (`WalReplay`, `WalCorrupt`) walks the [`store_core::RecoveryPolicy`]'s ladder:
//!    `SalvageWal` keeps every commit before the first bad entry, `DiscardWal` opens at the last
//!    checkpoint, `RestoreSnapshot` restores `<db>.pre-migrate`. Each step moves what it replaces
//!    aside under `<db>.<reason>.<UTC stamp>` and reports what it lost.
//! 5. Reports the durability in force, read back from DuckDB's `fsync_mode`: at its default,
//!    DuckDB fsyncs its WAL before each commit returns, so an acknowledged commit survives a
//!    power cut ([`store_core::Durability::PowerSafe`]).
//! 6. With migrations pending: `CHECKPOINT`, the snapshot, each migration in a transaction,
//!    `CHECKPOINT` again, so no schema change waits in the WAL. Nothing pending: no snapshot, no
//!    checkpoint.
//!
//! [`DuckDbOptions::database`] does the same and returns a [`DuckDbDatabase`], to take cheap
//! connections from (one per thread, or a pool's).

mod blocks;
mod classify;
mod database;
mod error;
mod instance;
mod migrate;
mod open;
mod options;
mod recovery;
mod registry;
pub mod wal;

pub use blocks::{BlocksMissing, blocks_missing};
pub use classify::{Diagnosis, classify, diagnose};
pub use database::DuckDbDatabase;
pub use error::{ConnectError, MigrateError, OpenError, StepError};
pub use migrate::{SNAPSHOT_SUFFIX, schema_version};
pub use options::DuckDbOptions;
pub use recovery::applicable_steps;
pub use registry::{DuckDbConnection, InstanceConfig, is_open};
pub use {duckdb, store_core};

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
