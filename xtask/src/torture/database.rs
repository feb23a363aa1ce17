//! The torture's database, shared by its campaigns: the schema, an open through store of either
//! engine, and the reads the campaigns check with.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use store_core::files::sibling;
use store_core::{Engine, FailureClass, Migration, Migrations, OpenReport};
use store_duckdb::DuckDbOptions;
use store_sqlite::SqliteOptions;

pub(super) type TortureResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The highest schema version the crash campaign migrates to, a few versions at a time.
pub(super) const LATEST_VERSION: u32 = 8;

/// `ACKED` holds the rows; later versions add tables whose creation takes a while, so that kills
/// land inside migrations too.
pub(super) fn migrations(engine: Engine, latest: u32) -> Migrations {
    let mut list = vec![Migration::new(
        1,
        "acked",
        "CREATE TABLE acked (id BIGINT PRIMARY KEY)",
    )];
    for version in 2..=latest {
        let rows = 200_000;
        let sql = match engine {
            Engine::Sqlite => format!(
                "CREATE TABLE filler_{version} AS WITH RECURSIVE c(x) AS \
                 (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) SELECT x FROM c"
            ),
            _ => format!("CREATE TABLE filler_{version} AS SELECT range AS x FROM range({rows})"),
        };
        list.push(Migration::owned(version, format!("filler {version}"), sql));
    }
    Migrations::new(list).expect("valid migrations")
}

/// An open through store of either engine, as the campaigns use it.
pub(super) enum Opened {
    Sqlite(store_sqlite::rusqlite::Connection),
    Duckdb(store_duckdb::DuckDbConnection),
}

/// An open that failed: its class, whether it recovered or moved anything first, its words.
pub(super) struct Refused {
    pub(super) class: FailureClass,
    pub(super) moved_anything: bool,
    pub(super) cause: String,
}

/// Opens `path` through store at schema `latest` of [`migrations`].
pub(super) fn open(
    engine: Engine,
    path: &Path,
    latest: u32,
) -> Result<(Opened, OpenReport), Refused> {
    match engine {
        Engine::Sqlite => SqliteOptions::new(path)
            .migrations(migrations(engine, latest))
            .busy_timeout(Duration::from_secs(60))
            .open()
            .map(|(connection, report)| (Opened::Sqlite(connection), report))
            .map_err(|error| Refused {
                class: error.class(),
                moved_anything: false,
                cause: error.cause_chain(),
            }),
        _ => DuckDbOptions::new(path)
            .migrations(migrations(engine, latest))
            .open()
            .map(|(connection, report)| (Opened::Duckdb(connection), report))
            .map_err(|error| Refused {
                class: error.class(),
                moved_anything: matches!(
                    &error,
                    store_duckdb::OpenError::Engine { moved_aside, .. } if !moved_aside.is_empty()
                ),
                cause: error.cause_chain(),
            }),
    }
}

impl Opened {
    pub(super) fn insert(&self, id: u64) -> TortureResult<()> {
        let sql = "INSERT INTO acked (id) VALUES (?)";
        match self {
            Opened::Sqlite(connection) => connection.execute(sql, [id as i64]).map(drop)?,
            Opened::Duckdb(connection) => connection.execute(sql, [id as i64]).map(drop)?,
        }
        Ok(())
    }

    pub(super) fn ids(&self) -> TortureResult<BTreeSet<u64>> {
        let sql = "SELECT id FROM acked";
        let ids: Vec<i64> = match self {
            Opened::Sqlite(connection) => {
                let mut statement = connection.prepare(sql)?;
                statement
                    .query_map([], |row| row.get(0))?
                    .collect::<Result<_, _>>()?
            }
            Opened::Duckdb(connection) => {
                let mut statement = connection.prepare(sql)?;
                statement
                    .query_map([], |row| row.get(0))?
                    .collect::<Result<_, _>>()?
            }
        };
        Ok(ids.into_iter().map(|id| id as u64).collect())
    }

    /// `PRAGMA integrity_check` for SQLite; DuckDB has no equivalent beyond reading everything.
    pub(super) fn integrity(&self) -> TortureResult<String> {
        match self {
            Opened::Sqlite(connection) => {
                Ok(connection.query_row("PRAGMA integrity_check", [], |row| row.get(0))?)
            }
            Opened::Duckdb(_) => Ok("ok".into()),
        }
    }
}

pub(super) fn database_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "torture.db",
        _ => "torture.duckdb",
    }
}

/// The WAL's length in bytes, 0 when there is none.
pub(super) fn wal_bytes(engine: Engine, database: &Path) -> u64 {
    let suffix = match engine {
        Engine::Sqlite => "-wal",
        _ => ".wal",
    };
    std::fs::metadata(sibling(database, suffix)).map_or(0, |metadata| metadata.len())
}
