//! The durability an open reports is what every connection of its handle gets: DuckDB's
//! `fsync_mode` (one setting for the whole instance) is read back after the per-connection
//! initialisation, on the open's connection and on each one `connect()` makes.

use store_core::{Durability, SyncLevel};
use store_duckdb::{ConnectError, DuckDbOptions};

use crate::TestResult;

const POWER_SAFE: Durability = Durability::PowerSafe {
    sync: SyncLevel::Full,
};
const MAY_CORRUPT: Durability = Durability::MayCorrupt {
    sync: SyncLevel::Off,
};

/// What the instance answers now.
fn fsync_mode(connection: &duckdb::Connection) -> duckdb::Result<String> {
    connection.query_row("SELECT current_setting('fsync_mode')", [], |row| row.get(0))
}

/// An initialisation that stops DuckDB's fsyncs for the whole instance.
fn turning_fsync_off(connection: &duckdb::Connection) -> duckdb::Result<()> {
    connection.execute_batch("SET GLOBAL fsync_mode = 'none'")
}

/// Promise: the open reads `fsync_mode` after `on_connect` ran, so an initialisation that turns
/// the fsyncs off is in the report, never under a report that says power-safe.
#[test]
fn the_open_reports_the_fsync_mode_on_connect_left() -> TestResult {
    let directory = tempfile::tempdir()?;
    let (connection, report) = DuckDbOptions::new(directory.path().join("off.duckdb"))
        .on_connect(turning_fsync_off)
        .open()?;
    assert_eq!(fsync_mode(&connection)?, "none");
    assert_eq!(report.durability, Some(MAY_CORRUPT), "{report}");
    Ok(())
}

/// Promise: a connection `connect()` hands out has the durability the handle's open reported,
/// read back after `on_connect`: an initialisation that turned the fsyncs off since is refused
/// with both named, not handed out under the report's "power-safe".
#[test]
fn connect_reads_fsync_mode_back_after_on_connect() -> TestResult {
    let directory = tempfile::tempdir()?;
    // The open's own connection keeps DuckDB's default; every later one turns fsyncs off.
    let calls = std::sync::atomic::AtomicU32::new(0);
    let (database, report) = DuckDbOptions::new(directory.path().join("connect.duckdb"))
        .on_connect(move |connection| {
            if calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0 {
                return Ok(());
            }
            turning_fsync_off(connection)
        })
        .database()?;
    assert_eq!(report.durability, Some(POWER_SAFE), "{report}");
    match database.connect() {
        Err(ConnectError::DurabilityChanged {
            reported,
            fsync_mode,
            in_force,
            ..
        }) => {
            assert_eq!(reported, POWER_SAFE);
            assert_eq!(fsync_mode, "none");
            assert_eq!(in_force, Some(MAY_CORRUPT));
        }
        Err(other) => panic!("refused for another reason: {other:?}"),
        Ok(connection) => panic!(
            "connect() handed out a connection at fsync_mode={} after a report of {:?}",
            fsync_mode(&connection)?,
            report.durability
        ),
    }
    Ok(())
}
