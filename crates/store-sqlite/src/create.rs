//! Creation: a missing database made under a temporary name and placed whole.

use std::fs::File;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use store_core::opening::{CreateFailure, create_atomically};
use store_core::{Engine, FailureClass};

use crate::classify::{Stage, classify_at};
use crate::error::{CreateError, OpenError};
use crate::migrate;
use crate::pragma::pragma_answer;

/// Creates a new database atomically ([`store_core::opening::create_atomically`]): `path` is
/// either absent or a valid SQLite file at every instant. `in_wal_format`: the file is made in WAL
/// format, so that the open's WAL rung finds its mode in force and switches nothing (the switch
/// at the database's name is a header write through the rollback journal: 4 fsyncs).
pub(crate) fn create_database(path: &Path, in_wal_format: bool) -> Result<(), OpenError> {
    let sqlite = |source| CreateError::Sqlite { source };
    create_atomically(path, Engine::Sqlite, crate::SIDECAR_SUFFIXES, |temporary| {
        let connection = Connection::open_with_flags(
            temporary,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite)?;
        // A file nobody can see under its temporary name: made without a journal or a sync of
        // its own, then synced once, whole, before it takes the database's name (a crash before
        // leaves litter under the temporary name, never a half-made database). Only a saving: a
        // mount that refuses the pragmas (some FUSE filesystems) gets the journaled creation.
        for pragma in ["PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF"] {
            if let Err(refused) = connection.execute_batch(pragma) {
                tracing::debug!(target: "store::sqlite", %refused, pragma, "creating with the default");
            }
        }
        connection
            .execute_batch(migrate::SCHEMA_VERSION_DDL)
            .map_err(sqlite)?;
        if in_wal_format {
            // Also only a saving: a file left in rollback format is switched by the WAL rung.
            match pragma_answer(&connection, "PRAGMA journal_mode=WAL") {
                Ok(answered) if answered.eq_ignore_ascii_case("wal") => {}
                answered => {
                    tracing::debug!(target: "store::sqlite", ?answered, "creating in rollback format");
                }
            }
        }
        connection.close().map_err(|(_, error)| sqlite(error))?;
        File::open(temporary)
            .and_then(|file| file.sync_all())
            .map_err(|source| CreateError::Sync { source })
    })
    .map_err(|failure| {
        let source = match failure {
            CreateFailure::Initialise(error) => error,
            CreateFailure::Place(source) => CreateError::Rename { source },
        };
        let class = match &source {
            CreateError::Sqlite { source } => classify_at(source, Stage::Open, Some(path)).class,
            CreateError::Sync { source } | CreateError::Rename { source } => {
                FailureClass::from_io_error(source)
            }
        };
        OpenError::Create {
            path: path.to_owned(),
            class,
            source,
        }
    })
}
