//! Starting a DuckDB instance on a file: the one plain open that the open, the creation and
//! every recovery step share.

use std::collections::BTreeMap;
use std::path::Path;

use duckdb::{AccessMode, Config};

/// Opens `path` read-write or read-only with `settings`. The settings are in the configuration
/// the instance starts with, so they hold while it replays the WAL: a memory limit set after the
/// open would come too late for a WAL bigger than memory.
pub(crate) fn connect(
    path: &Path,
    read_only: bool,
    settings: &BTreeMap<String, String>,
) -> duckdb::Result<duckdb::Connection> {
    let mode = if read_only {
        AccessMode::ReadOnly
    } else {
        AccessMode::ReadWrite
    };
    let mut config = Config::default().access_mode(mode)?;
    for (name, value) in settings {
        config = config.with(name, value)?;
    }
    duckdb::Connection::open_with_flags(path, config)
}
