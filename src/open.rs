//! One open for both engines: [`Open`] is implemented by each engine's options, so that code
//! generic over the engine (the async face, an application's start-up) opens either the same way.

use store_core::{Engine, FailureClass, OpenReport};

/// Options that open a database and report what they did.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// use store::Open;
///
/// /// An application's start-up, written once for whichever engine it is built with.
/// fn start<O: Open>(options: &O) -> Result<O::Connection, O::Error> {
///     let (connection, report) = options.open_database()?;
///     if report.fell_back() || report.recovered() {
///         eprintln!("{report}");
///     }
///     Ok(connection)
/// }
///
/// let directory = tempfile::tempdir().unwrap();
/// let connection = start(&store::sqlite::SqliteOptions::new(directory.path().join("a.db"))).unwrap();
/// connection.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
/// # }
/// ```
pub trait Open {
    /// The connection an open returns.
    type Connection: Send + 'static;
    /// The error an open fails with.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The engine.
    const ENGINE: Engine;

    /// Opens the database; see each engine's `open`.
    fn open_database(&self) -> Result<(Self::Connection, OpenReport), Self::Error>;

    /// The failure class of an open error.
    fn failure_class(error: &Self::Error) -> FailureClass;
}

#[cfg(feature = "sqlite")]
impl Open for store_sqlite::SqliteOptions {
    type Connection = store_sqlite::rusqlite::Connection;
    type Error = store_sqlite::OpenError;
    const ENGINE: Engine = Engine::Sqlite;

    fn open_database(&self) -> Result<(Self::Connection, OpenReport), Self::Error> {
        self.open()
    }

    fn failure_class(error: &Self::Error) -> FailureClass {
        error.class()
    }
}

#[cfg(feature = "duckdb")]
impl Open for store_duckdb::DuckDbOptions {
    type Connection = store_duckdb::DuckDbConnection;
    type Error = store_duckdb::OpenError;
    const ENGINE: Engine = Engine::Duckdb;

    fn open_database(&self) -> Result<(Self::Connection, OpenReport), Self::Error> {
        self.open()
    }

    fn failure_class(error: &Self::Error) -> FailureClass {
        error.class()
    }
}
