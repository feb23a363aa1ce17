//! A [deadpool] pool over a decided database, for tokio tasks (feature `deadpool`).
//!
//! Engines' connections block, so each pooled connection is an
//! [`AsyncConnection`] on a thread of its own: [`Manager`] makes one with
//! [`AsyncConnection::connect`], and recycles one by running [`Database::check`] through
//! [`call`](AsyncConnection::call) (a connection that fails its check is closed before it is
//! replaced). [`pool`] and [`builder`] size the pool with [`max_size`](super::max_size): a database
//! that allows one connection ([`ConnectionLimit::One`](crate::ConnectionLimit::One): SQLite in WAL
//! format on a filesystem that cannot share WAL's memory) gets a pool of one, whose tasks take
//! turns on it.
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use store::sqlite::SqliteOptions;
//!
//! let directory = tempfile::tempdir()?;
//! let (database, report) = SqliteOptions::new(directory.path().join("state.db")).database()?;
//! println!("{report}");
//! let pool = store::pool::deadpool::pool(database, 4)?;
//! pool.get().await?.call(|c| c.execute_batch("CREATE TABLE t (task INTEGER)")).await?;
//! let tasks: Vec<_> = (0..8)
//!     .map(|task| {
//!         let pool = pool.clone();
//!         tokio::spawn(async move {
//!             let connection = pool.get().await.expect("a connection");
//!             connection.call(move |c| c.execute("INSERT INTO t VALUES (?1)", [task])).await
//!         })
//!     })
//!     .collect();
//! for task in tasks {
//!     task.await??;
//! }
//! let rows: i64 = pool
//!     .get()
//!     .await?
//!     .call(|c| c.query_row("SELECT count(*) FROM t", [], |row| row.get(0)))
//!     .await?;
//! assert_eq!(rows, 8);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use ::deadpool::Runtime;
use ::deadpool::managed::{self, BuildError, Metrics, PoolBuilder, PoolConfig, RecycleError};

use crate::Database;
use crate::tokio::{AsyncConnection, AsyncOpenError, CallError};

/// A deadpool pool over a database `D`.
pub type Pool<D> = managed::Pool<Manager<D>>;

/// A deadpool manager over a decided database: each object is an [`AsyncConnection`] made with
/// [`AsyncConnection::connect`]; recycling runs [`Database::check`] on the connection's thread.
#[derive(Debug, Clone)]
pub struct Manager<D> {
    database: D,
}

impl<D: Database> Manager<D> {
    /// A manager making connections to `database`. Size its pool with [`builder`], or use
    /// [`pool`]: a pool larger than the database allows fails to make connections.
    pub fn new(database: D) -> Manager<D> {
        Manager { database }
    }

    /// The database it connects to.
    pub fn database(&self) -> &D {
        &self.database
    }
}

impl<D: Database> managed::Manager for Manager<D> {
    type Type = AsyncConnection<D::Connection>;
    type Error = AsyncOpenError<D::Error>;

    async fn create(&self) -> Result<AsyncConnection<D::Connection>, AsyncOpenError<D::Error>> {
        AsyncConnection::connect(self.database.clone()).await
    }

    async fn recycle(
        &self,
        connection: &mut AsyncConnection<D::Connection>,
        _metrics: &Metrics,
    ) -> managed::RecycleResult<AsyncOpenError<D::Error>> {
        let checked = connection.call(|c| D::check(c)).await;
        if checked.is_err() {
            // Closed here, so that the connection replacing it never races its close (under a
            // one-connection decision the replacement would find the database held).
            let _ = connection.shut().await;
        }
        match checked {
            Ok(()) => Ok(()),
            Err(CallError::Failed(error)) => {
                Err(RecycleError::Backend(AsyncOpenError::Open(error)))
            }
            Err(other) => Err(RecycleError::message(other.to_string())),
        }
    }
}

/// A deadpool builder for a pool over `database`: deadpool's defaults on tokio, with `max_size`
/// (deadpool's default, four per CPU) capped at what the database allows
/// ([`max_size`](super::max_size)), so that a one-connection database gets a pool of one. Raising
/// `max_size` past the database's limit makes the extra connections fail to connect.
pub fn builder<D: Database>(database: D) -> PoolBuilder<Manager<D>> {
    let wanted = u32::try_from(PoolConfig::default().max_size).unwrap_or(u32::MAX);
    sized(database, wanted)
}

/// A pool of `wanted_size` connections to `database` (at least one), capped at what the database
/// allows ([`max_size`](super::max_size)): a one-connection database gets a pool of one.
/// Connections are made when first needed.
pub fn pool<D: Database>(database: D, wanted_size: u32) -> Result<Pool<D>, BuildError> {
    sized(database, wanted_size).build()
}

fn sized<D: Database>(database: D, wanted: u32) -> PoolBuilder<Manager<D>> {
    let size = super::max_size(&database, wanted);
    managed::Pool::builder(Manager::new(database))
        .max_size(usize::try_from(size).unwrap_or(usize::MAX))
        .runtime(Runtime::Tokio1)
}
