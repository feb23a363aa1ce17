//! DuckDB: what an open would do with a DuckDB file, found without store's open (which records
//! the process's last open error and registers the instance): the WAL read as store reads it
//! before a replay, then a plain read-only open, the cut-short check and a first read.

use std::path::Path;
use std::sync::PoisonError;

use store_core::connect::{database_key, deciding_lock};
use store_core::files;
use store_core::{FailureClass, RecoveryLadder};
use store_duckdb::duckdb::{self, AccessMode, Config};
use store_duckdb::wal;

use crate::checkup::{DatabaseCheckup, FileFacts, Outlook, SnapshotFacts};
use crate::examine::sidecars;

/// The DuckDB file's sidecars, snapshot and outlook.
pub(crate) fn examine(checkup: &mut DatabaseCheckup) {
    let path = checkup.path.clone();
    checkup.sidecars = sidecars(&path, store_duckdb::SIDECAR_SUFFIXES);
    checkup.snapshot = snapshot(&path);
    // Held while the doctor's instance lives, so that no open through store in this process
    // starts a second instance of the file beside it (two instances lose each other's writes).
    let deciding = deciding_lock(&database_key(&path));
    let _deciding = deciding.lock().unwrap_or_else(PoisonError::into_inner);
    checkup.outlook = if store_duckdb::is_open(&path) {
        Outlook::OpenInThisProcess
    } else {
        outlook(&path)
    };
}

/// The pre-migration snapshot beside `path`, with its schema version.
fn snapshot(path: &Path) -> Option<SnapshotFacts> {
    let snapshot_path = files::sibling(path, store_duckdb::SNAPSHOT_SUFFIX);
    let file = FileFacts::read(&snapshot_path).ok()?;
    let schema_version = open_read_only(&snapshot_path)
        .and_then(|connection| store_duckdb::schema_version(&connection))
        .map_err(|error| error.to_string());
    Some(SnapshotFacts {
        file,
        schema_version,
    })
}

fn outlook(path: &Path) -> Outlook {
    let after_failure = |class, cause| after_failure(path, class, cause);
    // A read-write open reads the logs before DuckDB replays them, and recovers from anything
    // after the last whole commit (DuckDB would drop a torn tail without a word). A log the
    // reader does not know is left to DuckDB, as the open leaves it.
    if let Ok(Some(damage)) = wal::damage_before_replay(path) {
        let class = damage
            .tail
            .failure_class()
            .unwrap_or(FailureClass::WalCorrupt);
        return after_failure(class, damage.to_string());
    }
    // Opened before the instance and closed after it (declared first, dropped last): closing a
    // descriptor of the file drops DuckDB's lock on it for the whole process.
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) => {
            return after_failure(FailureClass::from_io_error(&error), error.to_string());
        }
    };
    let connection = match open_read_only(path) {
        Ok(connection) => connection,
        Err(error) => return after_failure(store_duckdb::classify(&error), error.to_string()),
    };
    match store_duckdb::blocks_missing(&connection, &file) {
        Ok(Some(missing)) => return after_failure(FailureClass::Corrupt, missing.to_string()),
        Ok(None) => {}
        Err(error) => return after_failure(store_duckdb::classify(&error), error.to_string()),
    }
    match store_duckdb::schema_version(&connection) {
        Ok(schema_version) => Outlook::Opens {
            journal_mode: None,
            falls_back: false,
            schema_version,
        },
        Err(error) => after_failure(store_duckdb::classify(&error), error.to_string()),
    }
}

/// What the default recovery ladder makes of a failure of `class`: the steps an open would try
/// ([`store_duckdb::applicable_steps`]), or a failure where none applies.
fn after_failure(path: &Path, class: FailureClass, cause: String) -> Outlook {
    let steps = store_duckdb::applicable_steps(&RecoveryLadder::default(), class, path);
    if steps.is_empty() {
        return Outlook::Fails {
            class,
            cause: if class.may_be_recovered() {
                format!("{cause}; no recovery step applies (no pre-migration snapshot)")
            } else {
                cause
            },
        };
    }
    Outlook::Recovers {
        class,
        cause,
        steps,
    }
}

/// A plain read-only open, outside store's registry: nothing recorded, nothing registered.
fn open_read_only(path: &Path) -> duckdb::Result<duckdb::Connection> {
    let config = Config::default().access_mode(AccessMode::ReadOnly)?;
    duckdb::Connection::open_with_flags(path, config)
}
