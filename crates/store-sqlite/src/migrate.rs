//! Migrations: each in its own `BEGIN IMMEDIATE` transaction, with the schema version re-read
//! inside it, so that processes starting at once apply each migration exactly once.

use rusqlite::{Connection, Transaction, TransactionBehavior};
use store_core::{Migrations, OpenReport};

use crate::classify::{Stage, classify_at};
use crate::error::MigrateError;

/// The `schema_version` table; every database store creates has it.
pub(crate) const SCHEMA_VERSION_DDL: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL
)";

/// The schema version: the highest applied migration, 0 when there is no `schema_version` table.
pub fn schema_version(connection: &Connection) -> rusqlite::Result<u32> {
    // A read of `sqlite_schema` first: the open's probe relies on it failing where the journal
    // mode does not work. Neither loading the schema (`sqlite3_table_column_metadata`) nor a
    // statement naming the table alone failed under the no-shared-memory fault, where this does.
    let has_table: bool = connection.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'",
        [],
        |row| row.get(0),
    )?;
    if !has_table {
        return Ok(0);
    }
    connection.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_version",
        [],
        |row| row.get(0),
    )
}

fn read_version(connection: &Connection) -> Result<u32, MigrateError> {
    schema_version(connection).map_err(|source| MigrateError::SchemaVersion {
        action: "read",
        class: classify_at(&source, Stage::Query, None).class,
        source,
    })
}

/// Applies what is pending and records it in the report.
pub(crate) fn apply(
    connection: &Connection,
    migrations: &Migrations,
    report: &mut OpenReport,
) -> Result<(), MigrateError> {
    let before = read_version(connection)?;
    apply_from(connection, migrations, report, before)
}

/// [`apply`] on a connection whose schema version was just read as `before` (by the open's
/// probe): each migration re-reads it inside its own transaction, so an older `before` costs a
/// skipped migration, never a second application.
pub(crate) fn apply_from(
    connection: &Connection,
    migrations: &Migrations,
    report: &mut OpenReport,
    before: u32,
) -> Result<(), MigrateError> {
    if migrations.is_empty() {
        // No migrations given: the schema is the caller's business, whatever its version says.
        report.schema_version = before;
        return Ok(());
    }
    let pending = migrations
        .pending(before)
        .map_err(|source| MigrateError::Mismatch { source })?;
    for migration in pending {
        let record = |source| MigrateError::SchemaVersion {
            action: "record",
            class: classify_at(&source, Stage::Query, None).class,
            source,
        };
        // The write lock first, then the version: a process that lost the race sees the
        // winner's version here and skips, instead of re-running an ALTER.
        let transaction = Transaction::new_unchecked(connection, TransactionBehavior::Immediate)
            .map_err(record)?;
        transaction
            .execute_batch(SCHEMA_VERSION_DDL)
            .map_err(record)?;
        let current = read_version(&transaction)?;
        if current >= migration.version {
            transaction.commit().map_err(record)?;
            continue;
        }
        // Inside the transaction, before its first statement: a test can stop the process here or
        // later, inside the migration.
        tracing::debug!(
            target: "store::sqlite",
            version = migration.version,
            name = %migration.name,
            "applying migration"
        );
        transaction
            .execute_batch(&migration.sql)
            .map_err(|source| MigrateError::Statement {
                version: migration.version,
                name: migration.name.to_string(),
                class: classify_at(&source, Stage::Query, None).class,
                source,
            })?;
        transaction
            .execute(
                "INSERT INTO schema_version (version, applied_at)
                 VALUES (?1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                [migration.version],
            )
            .map_err(record)?;
        // Checked before the commit, under the write lock: exactly this version was recorded.
        let recorded = read_version(&transaction)?;
        if recorded != migration.version {
            return Err(MigrateError::VersionNotRecorded {
                expected: migration.version,
                found: recorded,
            });
        }
        transaction.commit().map_err(record)?;
        // And after it: the commit stuck. Another process may already have gone further.
        let found = read_version(connection)?;
        if found < migration.version {
            return Err(MigrateError::VersionNotRecorded {
                expected: migration.version,
                found,
            });
        }
        store_core::opening::migration_applied(store_core::Engine::Sqlite, report, migration);
    }
    report.schema_version = read_version(connection)?;
    migrations
        .pending(report.schema_version)
        .map_err(|source| MigrateError::Mismatch { source })?;
    Ok(())
}

/// A read-only open applies nothing: it reports the version and what is pending.
pub(crate) fn report_read_only(
    connection: &Connection,
    migrations: &Migrations,
    report: &mut OpenReport,
) -> Result<(), MigrateError> {
    report.schema_version = read_version(connection)?;
    if migrations.is_empty() {
        return Ok(());
    }
    let pending = migrations
        .pending(report.schema_version)
        .map_err(|source| MigrateError::Mismatch { source })?;
    if !pending.is_empty() {
        report.notes.push(format!(
            "{} migration(s) pending, not applied by a read-only open",
            pending.len()
        ));
    }
    Ok(())
}
