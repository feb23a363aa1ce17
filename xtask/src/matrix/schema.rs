//! The schemas the cells migrate to, and what a database's schema holds as they shape it: the
//! killed cells judge the files against the version their commits imply.

use std::fmt;
use std::path::Path;

use store_core::{Engine, Migration, Migrations};

/// The DuckDB schema every DuckDB cell migrates to.
pub(super) fn duckdb_schema() -> Migrations {
    duckdb_migrations(3)
}

/// Rows the long migration of the killed-inside cells inserts, per engine: enough that its writes
/// reach the files well before its commit.
pub(super) fn bulk_rows(engine: Engine) -> u64 {
    match engine {
        Engine::Sqlite => 400_000,
        _ => 3_000_000,
    }
}

/// Migration 4 of the kill schemas: three statements, the second a long INSERT that spills to the
/// files before the commit, the third a record of its count.
fn bulk_migration(engine: Engine) -> Migration {
    let rows = bulk_rows(engine);
    let sql = match engine {
        Engine::Sqlite => format!(
            "CREATE TABLE bulk (id INTEGER NOT NULL, payload TEXT NOT NULL);
             INSERT INTO bulk (id, payload) WITH RECURSIVE c(x) AS
               (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows})
               SELECT x, hex(randomblob(16)) FROM c;
             CREATE TABLE bulk_done AS SELECT count(*) AS n FROM bulk;"
        ),
        _ => format!(
            "CREATE TABLE bulk (id BIGINT NOT NULL, payload VARCHAR NOT NULL);
             INSERT INTO bulk SELECT range, md5(range::VARCHAR) FROM range({rows});
             CREATE TABLE bulk_done AS SELECT count(*) AS n FROM bulk;"
        ),
    };
    Migration::owned(4, "bulk", sql)
}

/// The first `latest` of: 1 `runs`, 2 `items`, 3 `runs.status`, 4 the long bulk migration.
pub(super) fn duckdb_migrations(latest: u32) -> Migrations {
    let all = vec![
        Migration::new(
            1,
            "runs",
            "CREATE TABLE runs (id INTEGER PRIMARY KEY, name VARCHAR)",
        ),
        Migration::new(
            2,
            "items",
            "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, payload VARCHAR NOT NULL)",
        ),
        Migration::new(
            3,
            "runs status",
            "ALTER TABLE runs ADD COLUMN status VARCHAR",
        ),
        bulk_migration(Engine::Duckdb),
    ];
    Migrations::new(all.into_iter().take(latest as usize).collect()).expect("valid migrations")
}

/// The SQLite twin of [`duckdb_migrations`].
pub(super) fn sqlite_migrations(latest: u32) -> Migrations {
    let all = vec![
        Migration::new(
            1,
            "runs",
            "CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)",
        ),
        Migration::new(
            2,
            "items",
            "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)",
        ),
        Migration::new(3, "runs status", "ALTER TABLE runs ADD COLUMN status TEXT"),
        bulk_migration(Engine::Sqlite),
    ];
    Migrations::new(all.into_iter().take(latest as usize).collect()).expect("valid migrations")
}

/// What a database's schema holds, as the kill schemas shape it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct SchemaState {
    /// `schema_version` as store reads it.
    pub(super) version: u32,
    /// Every version recorded in the `schema_version` table, in order.
    recorded: Vec<u32>,
    /// Migration 1's table.
    runs: bool,
    /// Migration 3's column.
    status_column: bool,
    /// Migration 4's rows, if its table exists.
    bulk_rows: Option<u64>,
    /// Migration 4's third statement's record of them, if its table exists.
    bulk_done: Option<u64>,
}

/// Whether `state` holds exactly the effects of migrations 1 to its version, each once: nothing
/// of a later migration (a half-applied one), nothing missing, nothing twice.
pub(super) fn schema_consistent(engine: Engine, state: &SchemaState) -> Result<(), String> {
    let mut problems = Vec::new();
    let expected: Vec<u32> = (1..=state.version).collect();
    if state.recorded != expected {
        problems.push(format!(
            "schema_version records {:?}, not {expected:?}",
            state.recorded
        ));
    }
    if state.runs != (state.version >= 1) {
        problems.push(format!("table runs present: {}", state.runs));
    }
    if state.status_column != (state.version >= 3) {
        problems.push(format!(
            "column runs.status present: {}",
            state.status_column
        ));
    }
    let bulk = if state.version >= 4 {
        Some(bulk_rows(engine))
    } else {
        None
    };
    if state.bulk_rows != bulk || state.bulk_done != bulk {
        problems.push(format!(
            "bulk rows {:?} and recorded count {:?}, not {bulk:?}",
            state.bulk_rows, state.bulk_done
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Reads the schema state of the database at `path` with the engine directly.
pub(super) fn read_schema_state(engine: Engine, path: &Path) -> Result<SchemaState, String> {
    let text = |error: &dyn fmt::Display| error.to_string();
    match engine {
        Engine::Sqlite => {
            let connection = rusqlite::Connection::open(path).map_err(|e| text(&e))?;
            let query = |sql: &str| -> Result<Vec<i64>, String> {
                let mut statement = connection.prepare(sql).map_err(|e| text(&e))?;
                statement
                    .query_map([], |row| row.get::<_, i64>(0))
                    .and_then(|rows| rows.collect())
                    .map_err(|e| text(&e))
            };
            let version = store_sqlite::schema_version(&connection).map_err(|e| text(&e))?;
            schema_state(
                version,
                &query,
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ",
                "SELECT count(*) FROM pragma_table_info('runs') WHERE name = 'status'",
            )
        }
        _ => {
            let connection = duckdb::Connection::open(path).map_err(|e| text(&e))?;
            let query = |sql: &str| -> Result<Vec<i64>, String> {
                let mut statement = connection.prepare(sql).map_err(|e| text(&e))?;
                statement
                    .query_map([], |row| row.get::<_, i64>(0))
                    .and_then(|rows| rows.collect())
                    .map_err(|e| text(&e))
            };
            let version = store_duckdb::schema_version(&connection).map_err(|e| text(&e))?;
            schema_state(
                version,
                &query,
                "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ",
                "SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'main' \
                 AND table_name = 'runs' AND column_name = 'status'",
            )
        }
    }
}

/// The schema state, given a query that answers integers, the start of the engine's "is there a
/// table named ..." count (the quoted name follows), and its "has `runs` a `status` column" count.
fn schema_state(
    version: u32,
    query: &dyn Fn(&str) -> Result<Vec<i64>, String>,
    table_count_sql: &str,
    status_count_sql: &str,
) -> Result<SchemaState, String> {
    let single = |sql: &str| -> Result<u64, String> {
        match query(sql)?[..] {
            [value] => Ok(value as u64),
            ref other => Err(format!("`{sql}` answered {other:?}")),
        }
    };
    let exists = |table: &str| single(&format!("{table_count_sql}'{table}'")).map(|n| n > 0);
    let recorded = if exists("schema_version")? {
        query("SELECT version FROM schema_version ORDER BY version")?
            .into_iter()
            .map(|version| version as u32)
            .collect()
    } else {
        Vec::new()
    };
    let runs = exists("runs")?;
    Ok(SchemaState {
        version,
        recorded,
        runs,
        status_column: runs && single(status_count_sql)? > 0,
        bulk_rows: exists("bulk")?
            .then(|| single("SELECT count(*) FROM bulk"))
            .transpose()?,
        bulk_done: exists("bulk_done")?
            .then(|| single("SELECT max(n) FROM bulk_done"))
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_is_consistent_only_with_exactly_the_migrations_its_version_names() {
        let engine = Engine::Duckdb;
        let bulk = bulk_rows(engine);
        let at_three = SchemaState {
            version: 3,
            recorded: vec![1, 2, 3],
            runs: true,
            status_column: true,
            bulk_rows: None,
            bulk_done: None,
        };
        assert!(schema_consistent(engine, &at_three).is_ok());
        // Migration 4 half-applied: its table is there, its version is not.
        let half = SchemaState {
            bulk_rows: Some(bulk / 2),
            ..at_three.clone()
        };
        assert!(schema_consistent(engine, &half).is_err());
        // Version 4 recorded but its third statement missing.
        let at_four = SchemaState {
            version: 4,
            recorded: vec![1, 2, 3, 4],
            bulk_rows: Some(bulk),
            bulk_done: Some(bulk),
            ..at_three.clone()
        };
        assert!(schema_consistent(engine, &at_four).is_ok());
        let unfinished = SchemaState {
            bulk_done: None,
            ..at_four.clone()
        };
        assert!(schema_consistent(engine, &unfinished).is_err());
        // Applied twice.
        let twice = SchemaState {
            bulk_rows: Some(2 * bulk),
            ..at_four.clone()
        };
        assert!(schema_consistent(engine, &twice).is_err());
        // A version missing from the table.
        let gap = SchemaState {
            recorded: vec![1, 3],
            ..at_three
        };
        assert!(schema_consistent(engine, &gap).is_err());
    }
}
