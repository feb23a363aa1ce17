//! What a test in an application built on store looks like: "my app on NFS" and "my app after a
//! crash left garbage in its WAL", each with the real fault.
//!
//! An example is a process of its own, so it can install process-global faults directly; inside
//! `cargo test`, wrap the same body in `store_testkit::isolated!`.
//!
//! ```text
//! cargo run -p store-testkit --features sqlite,duckdb --example downstream_test
//! ```

use store::sqlite::SqliteOptions;
use store::{FailureClass, JournalMode, RecoveryStep};
use store_testkit::faults::duckdb::{append_garbage_to_wal, write_uncheckpointed_rows};
use store_testkit::faults::sqlite::SqliteFault;

/// The application's own open, as it would write it.
fn open_app_state(
    home: &std::path::Path,
) -> Result<rusqlite::Connection, store::sqlite::OpenError> {
    let (connection, report) = SqliteOptions::new(home.join("state.db"))
        .label("state.db")
        .open()?;
    eprintln!("{report}");
    Ok(connection)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // My app on NFS: no shared memory for SQLite's WAL index.
    let home = tempfile::tempdir()?;
    {
        let _nfs = SqliteFault::NoSharedMemory.install()?;
        let connection = open_app_state(home.path())?;
        let mode: String = connection.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
        assert_eq!(mode, JournalMode::Delete.pragma_value());
        println!("sqlite on a filesystem without shared memory: journal_mode={mode}");
    }

    // My app after a crash that left garbage at the end of DuckDB's WAL.
    let path = home.path().join("system.duckdb");
    write_uncheckpointed_rows(&path, 10, 5)?;
    append_garbage_to_wal(&path)?;
    let (connection, report) = store::duckdb::DuckDbOptions::new(&path).open()?;
    let recovery = report.recovery.as_ref().ok_or("expected a recovery")?;
    assert_eq!(recovery.class, FailureClass::WalReplay);
    assert_eq!(recovery.step, RecoveryStep::SalvageWal);
    let rows: i64 = connection.query_row("SELECT count(*) FROM items", [], |row| row.get(0))?;
    assert_eq!(rows, 15);
    println!(
        "duckdb after WAL damage: {} by {}, {rows} rows kept",
        recovery.class, recovery.step
    );
    Ok(())
}
