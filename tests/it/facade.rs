//! The facade re-exports the engine-neutral API and the enabled engines.

use store::{Engine, FailureClass, Filesystem, FsKind, LastOpenError, OpenFailure};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn core_api_is_reachable_through_the_facade() -> TestResult {
    let directory = tempfile::tempdir()?;
    let filesystem = Filesystem::detect(directory.path().join("state.db"))?;
    assert_ne!(filesystem.kind, FsKind::Unknown, "{filesystem:?}");

    let last = LastOpenError::new();
    last.record(
        OpenFailure::new(
            Engine::Sqlite,
            directory.path().join("state.db"),
            "state.db",
            FailureClass::WalUnsupported,
            "locking protocol",
        )
        .on_filesystem(Some(filesystem.clone())),
    );
    let message = last.unavailable_message("Session database not available");
    assert!(
        message.contains(&format!("This database is on {}", filesystem.kind)),
        "{message}"
    );
    Ok(())
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_engine_is_reachable_and_its_sidecars_are_named() -> TestResult {
    let database = store_testkit::TempDatabase::sqlite(3)?;
    let connection = store::sqlite::rusqlite::Connection::open(database.path())?;
    connection.pragma_update(None, "journal_mode", "wal")?;
    connection.execute("INSERT INTO items (id, payload) VALUES (4, 'd')", [])?;
    let sidecars =
        store::files::existing_sidecars(database.path(), store::sqlite::SIDECAR_SUFFIXES)?;
    assert!(
        sidecars.contains(&store::files::sibling(database.path(), "-wal")),
        "{sidecars:?}"
    );
    drop(connection);
    assert_eq!(database.count_rows()?, 4);
    Ok(())
}

#[cfg(feature = "duckdb")]
#[test]
fn duckdb_engine_is_reachable_and_its_sidecars_are_named() -> TestResult {
    let database = store_testkit::TempDatabase::duckdb(3)?;
    let connection = store::duckdb::duckdb::Connection::open(database.path())?;
    connection.execute("INSERT INTO items (id, payload) VALUES (4, 'd')", [])?;
    let sidecars =
        store::files::existing_sidecars(database.path(), store::duckdb::SIDECAR_SUFFIXES)?;
    assert_eq!(sidecars, [store::files::sibling(database.path(), ".wal")]);
    drop(connection);
    assert_eq!(database.count_rows()?, 4);
    Ok(())
}
