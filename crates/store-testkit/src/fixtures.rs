//! Databases with a known number of rows, in temporary directories, and row counts to check what
//! survived.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use store_core::Engine;

/// The table fixtures write: `items(id INTEGER PRIMARY KEY, payload TEXT NOT NULL)`, ids from 1.
pub const ITEMS_TABLE: &str = "items";

/// A fixture could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FixtureError {
    /// SQLite refused.
    #[cfg(feature = "sqlite")]
    #[error("sqlite fixture {}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// DuckDB refused.
    #[cfg(feature = "duckdb")]
    #[error("duckdb fixture {}", path.display())]
    Duckdb {
        /// The database file.
        path: PathBuf,
        /// What DuckDB said.
        #[source]
        source: duckdb::Error,
    },
    /// The engine's feature is not enabled in this build of store-testkit.
    #[error("store-testkit was built without the `{engine}` feature")]
    EngineNotEnabled {
        /// The engine asked for.
        engine: Engine,
    },
    /// The temporary directory could not be made.
    #[error("cannot create a temporary directory")]
    TemporaryDirectory {
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}

/// Creates [`ITEMS_TABLE`] if needed and appends `rows` rows, in one transaction, with the engine
/// directly (not through store): ids continue from the largest present.
pub fn write_rows(engine: Engine, path: &Path, rows: u32) -> Result<(), FixtureError> {
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {ITEMS_TABLE} (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)"
    );
    // Ids continue from the largest present: `base.next_id + i` for i in 1..=rows.
    let insert_from = |series: &str| {
        format!(
            "INSERT INTO {ITEMS_TABLE} (id, payload)
             SELECT base.next_id + i, 'row ' || (base.next_id + i)
             FROM (SELECT coalesce(max(id), 0) AS next_id FROM {ITEMS_TABLE}) AS base, ({series}) AS series"
        )
    };
    match engine {
        #[cfg(feature = "sqlite")]
        Engine::Sqlite => {
            let wrap = |source| FixtureError::Sqlite {
                path: path.to_owned(),
                source,
            };
            let mut connection = rusqlite::Connection::open(path).map_err(wrap)?;
            let transaction = connection.transaction().map_err(wrap)?;
            transaction.execute(&create, []).map_err(wrap)?;
            // SQLite's generate_series is an extension that the bundled build may lack.
            let series = "WITH RECURSIVE n(i) AS (SELECT 1 WHERE ?1 >= 1
                          UNION ALL SELECT i + 1 FROM n WHERE i < ?1) SELECT i FROM n";
            transaction
                .execute(&insert_from(series), [rows])
                .map_err(wrap)?;
            transaction.commit().map_err(wrap)
        }
        #[cfg(feature = "duckdb")]
        Engine::Duckdb => {
            let wrap = |source| FixtureError::Duckdb {
                path: path.to_owned(),
                source,
            };
            let mut connection = duckdb::Connection::open(path).map_err(wrap)?;
            let transaction = connection.transaction().map_err(wrap)?;
            transaction.execute(&create, []).map_err(wrap)?;
            transaction
                .execute(
                    &insert_from("SELECT generate_series AS i FROM generate_series(1, ?)"),
                    [i64::from(rows)],
                )
                .map_err(wrap)?;
            transaction.commit().map_err(wrap)
        }
        other => Err(FixtureError::EngineNotEnabled { engine: other }),
    }
}

/// The number of rows in [`ITEMS_TABLE`], read with the engine directly through a read-only
/// connection.
pub fn count_rows(engine: Engine, path: &Path) -> Result<u64, FixtureError> {
    // The ids are the primary key: as many as there are rows.
    read_ids(engine, path).map(|ids| ids.len() as u64)
}

/// The ids in [`ITEMS_TABLE`], read with the engine directly through a read-only connection: what
/// an oracle compares with the ids it saw acknowledged.
pub fn read_ids(engine: Engine, path: &Path) -> Result<BTreeSet<u64>, FixtureError> {
    match engine {
        #[cfg(feature = "sqlite")]
        Engine::Sqlite => {
            let connection = rusqlite::Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .map_err(|source| FixtureError::Sqlite {
                path: path.to_owned(),
                source,
            })?;
            sqlite_ids(&connection, path)
        }
        #[cfg(feature = "duckdb")]
        Engine::Duckdb => {
            let wrap = |source| FixtureError::Duckdb {
                path: path.to_owned(),
                source,
            };
            // Read-only: reading must work on a read-only mount too, and never checkpoint.
            let config = duckdb::Config::default()
                .access_mode(duckdb::AccessMode::ReadOnly)
                .map_err(wrap)?;
            let connection = duckdb::Connection::open_with_flags(path, config).map_err(wrap)?;
            duckdb_ids(&connection, path)
        }
        other => Err(FixtureError::EngineNotEnabled { engine: other }),
    }
}

// The two engines' APIs have the same shape and no common trait.
macro_rules! ids_through {
    ($connection:expr, $wrap:expr) => {{
        let query = format!("SELECT id FROM {ITEMS_TABLE}");
        let mut statement = $connection.prepare(&query).map_err($wrap)?;
        let ids = statement
            .query_map([], |row| row.get::<_, i64>(0))
            .and_then(|rows| rows.collect::<Result<Vec<i64>, _>>())
            .map_err($wrap)?;
        Ok(ids.into_iter().map(i64::unsigned_abs).collect())
    }};
}

/// The ids in [`ITEMS_TABLE`] through an open SQLite connection (one that can read the file as
/// it is: a WAL database on a mount without shared memory needs the connection store made).
/// `path` names the database in errors.
#[cfg(feature = "sqlite")]
pub fn sqlite_ids(
    connection: &rusqlite::Connection,
    path: &Path,
) -> Result<BTreeSet<u64>, FixtureError> {
    ids_through!(connection, |source| FixtureError::Sqlite {
        path: path.to_owned(),
        source,
    })
}

/// The ids in [`ITEMS_TABLE`] through an open DuckDB connection. `path` names the database in
/// errors.
#[cfg(feature = "duckdb")]
pub fn duckdb_ids(
    connection: &duckdb::Connection,
    path: &Path,
) -> Result<BTreeSet<u64>, FixtureError> {
    ids_through!(connection, |source| FixtureError::Duckdb {
        path: path.to_owned(),
        source,
    })
}

/// A database with known rows in a temporary directory that is removed on drop.
#[derive(Debug)]
pub struct TempDatabase {
    directory: tempfile::TempDir,
    path: PathBuf,
    engine: Engine,
}

impl TempDatabase {
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    /// A SQLite database `test.db` with `rows` rows in [`ITEMS_TABLE`].
    pub fn sqlite(rows: u32) -> Result<TempDatabase, FixtureError> {
        TempDatabase::new(Engine::Sqlite, "test.db", rows)
    }

    #[cfg(feature = "duckdb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "duckdb")))]
    /// A DuckDB database `test.duckdb` with `rows` rows in [`ITEMS_TABLE`].
    pub fn duckdb(rows: u32) -> Result<TempDatabase, FixtureError> {
        TempDatabase::new(Engine::Duckdb, "test.duckdb", rows)
    }

    /// A database of `engine` named `file_name` with `rows` rows.
    pub fn new(engine: Engine, file_name: &str, rows: u32) -> Result<TempDatabase, FixtureError> {
        let directory = tempfile::Builder::new()
            .prefix("store-testkit-")
            .tempdir()
            .map_err(|source| FixtureError::TemporaryDirectory { source })?;
        let path = directory.path().join(file_name);
        write_rows(engine, &path, rows)?;
        Ok(TempDatabase {
            directory,
            path,
            engine,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory holding it (and its sidecars, snapshots, moved-aside files).
    pub fn directory(&self) -> &Path {
        self.directory.path()
    }

    /// Its engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Appends `rows` more rows.
    pub fn write_rows(&self, rows: u32) -> Result<(), FixtureError> {
        write_rows(self.engine, &self.path, rows)
    }

    /// The rows now in [`ITEMS_TABLE`].
    pub fn count_rows(&self) -> Result<u64, FixtureError> {
        count_rows(self.engine, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_fixture_on_disk_has_the_rows_asked_for_and_appends() -> Result<(), FixtureError> {
        let database = TempDatabase::sqlite(25)?;
        assert_eq!(database.count_rows()?, 25);
        database.write_rows(5)?;
        assert_eq!(database.count_rows()?, 30);
        assert!(database.path().starts_with(database.directory()));
        Ok(())
    }

    #[cfg(feature = "duckdb")]
    #[test]
    fn duckdb_fixture_on_disk_has_the_rows_asked_for_and_appends() -> Result<(), FixtureError> {
        let database = TempDatabase::duckdb(25)?;
        assert_eq!(database.count_rows()?, 25);
        database.write_rows(5)?;
        assert_eq!(database.count_rows()?, 30);
        Ok(())
    }

    #[test]
    fn zero_rows_is_an_empty_table() -> Result<(), FixtureError> {
        #[cfg(feature = "sqlite")]
        assert_eq!(TempDatabase::sqlite(0)?.count_rows()?, 0);
        #[cfg(feature = "duckdb")]
        assert_eq!(TempDatabase::duckdb(0)?.count_rows()?, 0);
        Ok(())
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn counting_a_missing_table_is_an_error_naming_the_file() -> Result<(), FixtureError> {
        let directory =
            tempfile::tempdir().map_err(|source| FixtureError::TemporaryDirectory { source })?;
        let path = directory.path().join("empty.db");
        rusqlite::Connection::open(&path).map_err(|source| FixtureError::Sqlite {
            path: path.clone(),
            source,
        })?;
        let error = count_rows(Engine::Sqlite, &path).unwrap_err();
        assert!(error.to_string().contains("empty.db"), "{error}");
        Ok(())
    }
}
