//! [`DuckDbDatabase`]: an opened database to take connections from. The open (checks, recovery,
//! migrations) is decided once; each connection after is a new connection to the same instance.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use store_core::connect::OnConnect;
use store_core::{ConnectionLimit, Durability, Engine, FailureClass, OpenReport};

use crate::error::{ConnectError, OpenError};
use crate::open::durability_of_fsync_mode;
use crate::options::DuckDbOptions;
use crate::registry::DuckDbConnection;

/// An opened DuckDB database: the process's one instance of the file, kept alive while the handle
/// or any connection from it lives, and a cheap [`DuckDbDatabase::connect`] for each thread or
/// pool slot. The open behind it ran once, in [`DuckDbOptions::database`]; connecting runs no
/// recovery and no migration.
///
/// Cloning the handle is cheap and shares the instance. When the last handle and the last
/// connection drop, the instance closes, which checkpoints the WAL into the database.
///
/// ```
/// use store_duckdb::{DuckDbDatabase, DuckDbOptions};
/// use store_duckdb::store_core::{Migration, Migrations};
///
/// # let directory = tempfile::tempdir()?;
/// # let path = directory.path().join("events.duckdb");
/// let migrations = Migrations::new(vec![
///     Migration::new(1, "events", "CREATE TABLE events (worker INTEGER, n INTEGER)"),
/// ])?;
/// let (database, report) = DuckDbOptions::new(&path).migrations(migrations).database()?;
/// assert_eq!(report.schema_version, 1);
///
/// let workers: Vec<_> = (0..4)
///     .map(|worker| {
///         let database = database.clone();
///         std::thread::spawn(move || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///             let connection = database.connect()?;
///             for n in 0..10 {
///                 connection.execute("INSERT INTO events VALUES (?, ?)", [worker, n])?;
///             }
///             Ok(())
///         })
///     })
///     .collect();
/// for worker in workers {
///     worker.join().expect("worker thread")?;
/// }
///
/// let connection = database.connect()?;
/// DuckDbDatabase::check(&connection)?;
/// let rows: i64 = connection.query_row("SELECT count(*) FROM events", [], |row| row.get(0))?;
/// assert_eq!(rows, 40);
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Clone)]
pub struct DuckDbDatabase {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    label: String,
    read_only: bool,
    /// A connection kept to clone from; it holds the instance alive. Behind a mutex because a
    /// DuckDB connection may move between threads but not be used from two at once, and cloning
    /// uses it.
    spare: Mutex<DuckDbConnection>,
    /// The options' per-connection initialisation, run on every connection made.
    on_connect: OnConnect<duckdb::Connection, duckdb::Error>,
    /// What the open reported a power cut may do to commits (`None` read-only): every
    /// connection made is checked against it after its initialisation ran, since `fsync_mode`
    /// is the instance's and an initialisation or another connection can change it.
    durability: Option<Durability>,
}

impl std::fmt::Debug for DuckDbDatabase {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DuckDbDatabase")
            .field("path", &self.inner.path)
            .field("label", &self.inner.label)
            .field("read_only", &self.inner.read_only)
            .finish_non_exhaustive()
    }
}

impl DuckDbOptions {
    /// Opens the database exactly as [`DuckDbOptions::open`] does (the same checks, recovery,
    /// migrations and report) and returns a handle to take connections from instead of one
    /// connection.
    pub fn database(&self) -> Result<(DuckDbDatabase, OpenReport), OpenError> {
        let (connection, report) = self.open()?;
        let database = DuckDbDatabase {
            inner: Arc::new(Inner {
                on_connect: self.common.on_connect.clone(),
                path: self.common.path.clone(),
                label: report.label.clone(),
                read_only: self.common.read_only,
                spare: Mutex::new(connection),
                durability: report.durability,
            }),
        };
        Ok((database, report))
    }
}

impl DuckDbDatabase {
    /// A new connection to the instance: cheap, with no checks, recovery or migration (the open
    /// did those). Each connection is for one thread at a time; take one per thread.
    ///
    /// After the options' [`on_connect`](DuckDbOptions::on_connect) ran, `fsync_mode` is read
    /// back: a connection whose commits would be less (or otherwise) durable than the open
    /// reported fails with [`ConnectError::DurabilityChanged`].
    pub fn connect(&self) -> Result<DuckDbConnection, ConnectError> {
        // A poisoned lock only means a thread panicked while cloning; the connection is intact.
        let spare = self
            .inner
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let connection = spare.try_clone().map_err(|source| ConnectError::Engine {
            path: self.inner.path.clone(),
            source,
        })?;
        drop(spare);
        self.inner
            .on_connect
            .run(&connection)
            .map_err(|source| ConnectError::Init {
                path: self.inner.path.clone(),
                source,
            })?;
        if let Some(reported) = self.inner.durability {
            self.check_durability(&connection, reported)?;
        }
        Ok(connection)
    }

    /// Reads `fsync_mode` back on `connection` and refuses it unless it gives the durability the
    /// open reported.
    fn check_durability(
        &self,
        connection: &duckdb::Connection,
        reported: Durability,
    ) -> Result<(), ConnectError> {
        let fsync_mode: String = connection
            .query_row("SELECT current_setting('fsync_mode')", [], |row| row.get(0))
            .map_err(|source| ConnectError::Engine {
                path: self.inner.path.clone(),
                source,
            })?;
        let in_force = durability_of_fsync_mode(&fsync_mode);
        if in_force == Some(reported) {
            return Ok(());
        }
        Err(ConnectError::DurabilityChanged {
            path: self.inner.path.clone(),
            reported,
            fsync_mode,
            in_force,
        })
    }

    /// What the open reported a power cut may do to commits; `None` for a read-only database.
    /// Every connection [`connect`](Self::connect) hands out keeps it.
    pub fn durability(&self) -> Option<Durability> {
        self.inner.durability
    }

    /// Whether `connection` still answers a trivial query (`SELECT 1`), for a pool to test a
    /// connection before handing it out. It cannot tell a connection left inside a transaction:
    /// DuckDB's client API does not say (duckdb-rs's `is_autocommit` always answers true).
    pub fn check(connection: &DuckDbConnection) -> Result<(), ConnectError> {
        connection
            .query_row("SELECT 1", [], |_| Ok(()))
            .map_err(|source| ConnectError::Engine {
                path: connection.path().to_owned(),
                source,
            })
    }

    /// The database path, as given to the options.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The name warnings and messages use for this database (the options' label, or the file
    /// name).
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// Whether the instance is read-only.
    pub fn read_only(&self) -> bool {
        self.inner.read_only
    }
}

/// DuckDB serves any number of connections to the instance in this process (another process
/// cannot open the file while it is open read-write, whatever the count).
impl store_core::Database for DuckDbDatabase {
    type Connection = DuckDbConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<DuckDbConnection, ConnectError> {
        DuckDbDatabase::connect(self)
    }

    fn check(connection: &mut DuckDbConnection) -> Result<(), ConnectError> {
        DuckDbDatabase::check(connection)
    }

    /// DuckDB's client API cannot say whether a connection is inside a transaction, so a
    /// `ROLLBACK` is run: it ends the abandoned one, or is refused because none is active; any
    /// other refusal leaves it unsure.
    fn roll_back_abandoned(connection: &mut DuckDbConnection) -> bool {
        match connection.execute_batch("ROLLBACK") {
            Ok(()) => true,
            Err(error) => crate::classify::no_transaction_active(&error),
        }
    }

    fn connection_limit(&self) -> ConnectionLimit {
        ConnectionLimit::Many
    }
}

impl store_core::Open for DuckDbOptions {
    type Database = DuckDbDatabase;
    type Connection = DuckDbConnection;
    type Error = OpenError;
    const ENGINE: Engine = Engine::Duckdb;

    fn open_connection(&self) -> Result<(DuckDbConnection, OpenReport), OpenError> {
        self.open()
    }

    fn open_database(&self) -> Result<(DuckDbDatabase, OpenReport), OpenError> {
        self.database()
    }
}

impl store_core::Classify for OpenError {
    fn class(&self) -> FailureClass {
        OpenError::class(self)
    }
}

impl store_core::Classify for ConnectError {
    fn class(&self) -> FailureClass {
        ConnectError::class(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handle is for sharing across threads: it must stay `Send + Sync` (this fails to
    /// compile otherwise).
    #[test]
    fn the_handle_may_be_shared_between_threads() {
        fn send_and_sync<T: Send + Sync>() {}
        send_and_sync::<DuckDbDatabase>();
    }

    /// The rollback after an abandoned transaction ends it (its insert gone), and on a
    /// connection outside any transaction DuckDB's refusal is known for what it is: both answer
    /// that the connection is now in autocommit.
    #[test]
    fn an_abandoned_transaction_is_rolled_back_and_none_is_no_failure()
    -> Result<(), Box<dyn std::error::Error>> {
        use store_core::Database as _;
        let directory = tempfile::tempdir()?;
        let (database, _) =
            DuckDbOptions::new(directory.path().join("abandoned.duckdb")).database()?;
        let mut connection = database.connect()?;
        assert!(DuckDbDatabase::roll_back_abandoned(&mut connection));
        connection.execute_batch(
            "CREATE TABLE t (x BIGINT); BEGIN TRANSACTION; INSERT INTO t VALUES (1)",
        )?;
        assert!(DuckDbDatabase::roll_back_abandoned(&mut connection));
        let rows: i64 = connection.query_row("SELECT count(*) FROM t", [], |row| row.get(0))?;
        assert_eq!(rows, 0);
        Ok(())
    }
}
