//! The read-only open: a connection that changes nothing, its journal mode read, not set.

use rusqlite::{Connection, OpenFlags};
use store_core::{FailureClass, Fallback, FileContent, JournalMode, OpenReport};

use crate::classify::{Stage, classify_at};
use crate::error::OpenError;
use crate::ladder::probe;
use crate::options::SqliteOptions;
use crate::pragma::{pragma_answer, set_locking_mode};

impl SqliteOptions {
    /// The read-only open's connection: never a journal switch; a WAL database on a filesystem
    /// without shared memory is read under exclusive locking. The mode found goes in the report.
    pub(crate) fn open_read_only(
        &self,
        content: FileContent,
        report: &mut OpenReport,
    ) -> Result<Connection, OpenError> {
        let attempt = |exclusive: bool| -> rusqlite::Result<Connection> {
            let connection = Connection::open_with_flags(
                &self.common.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            connection.busy_timeout(self.busy_timeout)?;
            if exclusive {
                set_locking_mode(&connection, "exclusive")?;
            }
            probe(&connection)?;
            Ok(connection)
        };
        let was_wal = content == FileContent::Sqlite { wal: true };
        let (connection, exclusive) = match attempt(false) {
            Ok(connection) => (connection, false),
            Err(error) => {
                let class = classify_at(&error, Stage::Journal, Some(&self.common.path)).class;
                if !(was_wal && class == FailureClass::WalUnsupported) {
                    return Err(self.engine_error(Stage::Open, error));
                }
                report.fallbacks.push(Fallback {
                    from: JournalMode::Wal,
                    class,
                    cause: error.to_string(),
                });
                let connection =
                    attempt(true).map_err(|error| self.engine_error(Stage::Open, error))?;
                (connection, true)
            }
        };
        let current = pragma_answer(&connection, "PRAGMA journal_mode")
            .map_err(|error| self.engine_error(Stage::Query, error))?;
        let mode = current.parse::<JournalMode>().ok().map(|mode| {
            if exclusive && mode == JournalMode::Wal {
                JournalMode::WalExclusive
            } else {
                mode
            }
        });
        report.journal_mode = mode;
        Ok(connection)
    }
}
