//! Tests written the way a downstream application writes them: only the public API of `store` and
//! `store-testkit`, one real fault per engine.

/// "My app on NFS": the application's own open path, run under the no-shared-memory fault.
#[cfg(feature = "sqlite")]
#[test]
fn my_app_keeps_working_when_its_home_is_on_nfs() {
    store_testkit::isolated!(my_app_keeps_working_when_its_home_is_on_nfs, {
        use store::sqlite::SqliteOptions;
        use store_testkit::faults::sqlite::SqliteFault;

        let home = tempfile::tempdir().unwrap();
        let _nfs = SqliteFault::NoSharedMemory.install().unwrap();
        let (connection, report) = SqliteOptions::new(home.path().join("state.db"))
            .label("state.db")
            .open()
            .unwrap();
        assert_eq!(
            report.journal_mode,
            Some(store::JournalMode::Delete),
            "{report}"
        );
        assert_eq!(
            report.fallbacks[0].class,
            store::FailureClass::WalUnsupported
        );
        connection
            .execute_batch("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('kept');")
            .unwrap();
        let text: String = connection
            .query_row("SELECT text FROM notes", [], |row| row.get(0))
            .unwrap();
        assert_eq!(text, "kept");
    });
}

/// "My app after a crash that left garbage in the WAL": every committed row comes back.
#[cfg(feature = "duckdb")]
#[test]
fn my_app_gets_its_rows_back_after_a_damaged_wal() -> Result<(), Box<dyn std::error::Error>> {
    use store::duckdb::DuckDbOptions;
    use store_testkit::faults::duckdb::{append_garbage_to_wal, write_uncheckpointed_rows};

    let data = tempfile::tempdir()?;
    let path = data.path().join("system.duckdb");
    write_uncheckpointed_rows(&path, 20, 5)?;
    append_garbage_to_wal(&path)?;
    let (connection, report) = DuckDbOptions::new(&path).open()?;
    let recovery = report.recovery.as_ref().expect("a recovery was needed");
    assert_eq!(recovery.class, store::FailureClass::WalReplay);
    assert_eq!(recovery.step, store::RecoveryStep::SalvageWal);
    let rows: i64 = connection.query_row("SELECT count(*) FROM items", [], |row| row.get(0))?;
    assert_eq!(rows, 25);
    Ok(())
}
