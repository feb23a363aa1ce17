//! Migrations: a checkpoint and a snapshot before, each migration in its own transaction, a
//! checkpoint right after, so that no schema change waits in the WAL past the migration window.

use std::path::Path;

use store_core::files::{Replace, sibling, snapshot_open_file};
use store_core::{Migration, Migrations, OpenReport};

use crate::classify::classify;
use crate::error::MigrateError;

/// The `schema_version` table; every database store creates has it.
pub(crate) const SCHEMA_VERSION_DDL: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp
)";

/// The suffix of the pre-migration snapshot: `<db>.pre-migrate`.
pub const SNAPSHOT_SUFFIX: &str = ".pre-migrate";

/// The schema version: the highest applied migration, 0 when there is no `schema_version` table.
///
/// Where the table is missing, the direct read fails before the catalog is asked: inside an
/// explicit transaction that failure aborts the transaction, so create the table first there.
pub fn schema_version(connection: &duckdb::Connection) -> duckdb::Result<u32> {
    read_state(connection).map(|state| state.version)
}

/// What an open reads of a database before deciding what to migrate, and the durability it
/// reports: one query, since each query costs about a tenth of an open here (`cargo xtask
/// bench`).
#[derive(Debug)]
pub(crate) struct DatabaseState {
    /// The schema version ([`schema_version`]).
    pub(crate) version: u32,
    /// Whether the `schema_version` table exists.
    pub(crate) has_version_table: bool,
    /// What `current_setting('fsync_mode')` answers.
    pub(crate) fsync_mode: String,
}

/// Reads the [`DatabaseState`]. The table is read directly: a catalog function such as
/// duckdb_tables() costs about as much as the open itself (`cargo xtask bench`). Only when that
/// fails is the catalog asked whether the table is simply missing (version 0) or the read really
/// failed. The setting is a column beside the aggregate, not a subquery around it: that costs a
/// fifth more (1.7 against 1.5 ms as a connection's first query).
pub(crate) fn read_state(connection: &duckdb::Connection) -> duckdb::Result<DatabaseState> {
    let read = connection.query_row(
        "SELECT coalesce(max(version), 0), current_setting('fsync_mode') FROM schema_version",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    );
    match read {
        Ok((version, fsync_mode)) => Ok(DatabaseState {
            version,
            has_version_table: true,
            fsync_mode,
        }),
        Err(error) => {
            let (has_table, fsync_mode): (bool, String) = connection.query_row(
                "SELECT count(*) > 0, current_setting('fsync_mode') FROM duckdb_tables() \
                 WHERE table_name = 'schema_version' AND schema_name = 'main'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            if has_table {
                return Err(error);
            }
            Ok(DatabaseState {
                version: 0,
                has_version_table: false,
                fsync_mode,
            })
        }
    }
}

fn step(action: &'static str) -> impl FnOnce(duckdb::Error) -> MigrateError {
    move |source| MigrateError::Step {
        action,
        class: classify(&source),
        source,
    }
}

fn checkpoint(connection: &duckdb::Connection, action: &'static str) -> Result<(), MigrateError> {
    connection
        .execute_batch("CHECKPOINT")
        .map_err(step(action))?;
    tracing::debug!(target: "store::duckdb", step = action, "checkpoint");
    Ok(())
}

/// Applies what is pending and records it in the report; `state` is what the open read of the
/// database, `database` the instance's descriptor of the file at `path`, which the snapshot is
/// copied through. `restored_from_snapshot`: the database is, since this open, a copy of the
/// pre-migration snapshot beside it, which then stands as the snapshot of these migrations (a new
/// one would hold the same).
pub(crate) fn apply(
    connection: &duckdb::Connection,
    path: &Path,
    database: &std::fs::File,
    migrations: &Migrations,
    state: &DatabaseState,
    restored_from_snapshot: bool,
    report: &mut OpenReport,
) -> Result<(), MigrateError> {
    let before = state.version;
    report.schema_version = before;
    if migrations.is_empty() {
        // No migrations given: the schema is the caller's business. No snapshot, no checkpoint.
        return Ok(());
    }
    let pending = migrations
        .pending(before)
        .map_err(|source| MigrateError::Mismatch { source })?;
    if pending.is_empty() {
        return Ok(());
    }
    let applying = Applying {
        has_version_table: state.has_version_table,
        // This open started the instance, under the lock every open of the file takes, and
        // DuckDB's file lock keeps other processes out: no connection but this one can have
        // written since the version was read. A shared instance's other connections can have.
        version_may_move: report.reused_decision,
    };
    if restored_from_snapshot {
        tracing::info!(
            target: "store::duckdb",
            version = before,
            "the snapshot just restored from stands as the pre-migration snapshot"
        );
        return apply_pending(connection, migrations, pending, applying, report);
    }
    // A checkpoint moves the logs into the file the snapshot copies; with no log there is
    // nothing to move (DuckDB's CHECKPOINT then returns at once, after a statement's cost).
    if crate::wal::logs_hold_bytes(path) {
        checkpoint(connection, "checkpoint before migrating")?;
    }
    let snapshot_path = sibling(path, SNAPSHOT_SUFFIX);
    // Where a crash test stops the process to cut the power inside the snapshot.
    tracing::debug!(target: "store::duckdb", version = before, "taking the pre-migration snapshot");
    // Copied through the instance's own descriptor: closing another would drop DuckDB's lock.
    let snapshot = snapshot_open_file(database, path, &snapshot_path, Replace::Allowed)
        .map_err(|source| MigrateError::Snapshot { source })?;
    tracing::info!(
        target: "store::duckdb",
        snapshot = %snapshot.path.display(),
        bytes = snapshot.bytes,
        version = before,
        "pre-migration snapshot taken"
    );
    // The version it was taken at, with the file: a restore checks it without an instance.
    store_core::schema_tag::tag(&snapshot.path, before);
    report.snapshot = Some(snapshot);
    apply_pending(connection, migrations, pending, applying, report)
}

/// What [`apply_pending`] may take as read.
#[derive(Debug, Clone, Copy)]
struct Applying {
    /// The `schema_version` table exists (else the first migration's transaction creates it).
    has_version_table: bool,
    /// Another connection may change the version while the migrations run: each transaction
    /// reads it again first, and the version reached is read back.
    version_may_move: bool,
}

/// Applies `pending` (of `migrations`), each in its own transaction, then checkpoints and checks
/// the database reached the latest version.
fn apply_pending(
    connection: &duckdb::Connection,
    migrations: &Migrations,
    pending: &[Migration],
    mut applying: Applying,
    report: &mut OpenReport,
) -> Result<(), MigrateError> {
    let mut reached = report.schema_version;
    for migration in pending {
        connection
            .execute_batch("BEGIN TRANSACTION")
            .map_err(step("begin a migration"))?;
        let result = (|| {
            if !applying.has_version_table {
                connection.execute_batch(SCHEMA_VERSION_DDL)?;
            }
            if applying.version_may_move && schema_version(connection)? >= migration.version {
                return Ok(false);
            }
            // Inside the transaction, before its first statement: a test can stop the process
            // here or later, inside the migration.
            tracing::debug!(
                target: "store::duckdb",
                version = migration.version,
                name = %migration.name,
                "applying migration"
            );
            connection.execute_batch(&migration.sql)?;
            connection.execute(
                "INSERT INTO schema_version (version) VALUES (?)",
                [migration.version],
            )?;
            Ok(true)
        })();
        match result {
            Ok(applied) => {
                connection
                    .execute_batch("COMMIT")
                    .map_err(|source| MigrateError::Statement {
                        version: migration.version,
                        name: migration.name.to_string(),
                        class: classify(&source),
                        source,
                    })?;
                applying.has_version_table = true;
                if !applied {
                    continue;
                }
            }
            Err(source) => {
                let _ = connection.execute_batch("ROLLBACK");
                return Err(MigrateError::Statement {
                    version: migration.version,
                    name: migration.name.to_string(),
                    class: classify(&source),
                    source,
                });
            }
        }
        reached = migration.version;
        store_core::opening::migration_applied(store_core::Engine::Duckdb, report, migration);
    }
    checkpoint(connection, "checkpoint after migrating")?;
    report.schema_version = if applying.version_may_move {
        schema_version(connection).map_err(step("read the schema version"))?
    } else {
        reached
    };
    migrations
        .check_migrated(report.schema_version)
        .map_err(|source| MigrateError::Mismatch { source })?;
    Ok(())
}
