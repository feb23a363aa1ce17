//! Creation: a missing database made under a temporary name and placed whole.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use store_core::opening::{CreateFailure, create_atomically};
use store_core::{Engine, FailureClass};

use crate::classify::{Stage, classify_at};
use crate::error::{CreateError, OpenError};
use crate::migrate;

/// Creates a new database atomically ([`store_core::opening::create_atomically`]): `path` is
/// either absent or a valid SQLite file at every instant.
pub(crate) fn create_database(path: &Path) -> Result<(), OpenError> {
    create_atomically(path, Engine::Sqlite, crate::SIDECAR_SUFFIXES, |temporary| {
        Connection::open_with_flags(
            temporary,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|connection| {
            connection.execute_batch(migrate::SCHEMA_VERSION_DDL)?;
            connection.close().map_err(|(_, error)| error)
        })
    })
    .map_err(|failure| match failure {
        CreateFailure::Initialise(source) => OpenError::Create {
            path: path.to_owned(),
            class: classify_at(&source, Stage::Open, Some(path)).class,
            source: CreateError::Sqlite { source },
        },
        CreateFailure::Place(source) => OpenError::Create {
            path: path.to_owned(),
            class: FailureClass::from_io_error(&source),
            source: CreateError::Rename { source },
        },
    })
}
