//! An [r2d2] pool over a decided database, for threads (feature `r2d2`).
//!
//! [`ConnectionManager`] makes connections with [`Database::connect`], checks one with
//! [`Database::check`] before lending it (r2d2's `test_on_check_out`, on by default), and never
//! reports one broken on its return. [`pool`] and [`builder`] size the pool with
//! [`max_size`](super::max_size): a database that allows one connection
//! ([`ConnectionLimit::One`](crate::ConnectionLimit::One): SQLite in WAL format on a filesystem
//! that cannot share WAL's memory) gets a pool of one, whose threads take turns on it, and that
//! pool keeps its connection for its whole life (no `max_lifetime`), so that no other process
//! takes the database while it reconnects.
//!
//! ```
//! # #[cfg(feature = "sqlite")] {
//! use store::sqlite::SqliteOptions;
//!
//! let directory = tempfile::tempdir()?;
//! let (database, report) = SqliteOptions::new(directory.path().join("state.db")).database()?;
//! println!("{report}");
//! let pool = store::pool::r2d2::pool(database, 4)?;
//! pool.get()?.execute_batch("CREATE TABLE t (worker INTEGER)")?;
//! std::thread::scope(|scope| {
//!     for worker in 0..8 {
//!         let pool = &pool;
//!         scope.spawn(move || {
//!             let connection = pool.get().expect("a connection");
//!             connection.execute("INSERT INTO t VALUES (?1)", [worker]).expect("an insert");
//!         });
//!     }
//! });
//! let rows: i64 = pool.get()?.query_row("SELECT count(*) FROM t", [], |row| row.get(0))?;
//! assert_eq!(rows, 8);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use ::r2d2::{Builder, ManageConnection, Pool};

use crate::Database;

/// r2d2's default pool size, which [`builder`] starts from.
const R2D2_DEFAULT_SIZE: u32 = 10;

/// An r2d2 connection manager over a decided database: `connect` is [`Database::connect`],
/// `is_valid` is [`Database::check`], and `has_broken` is [`Database::left_in_transaction`]
/// (a connection given back inside a transaction is dropped at once, releasing its locks).
#[derive(Debug, Clone)]
pub struct ConnectionManager<D> {
    database: D,
}

impl<D: Database> ConnectionManager<D> {
    /// A manager making connections to `database`. Size its pool with [`builder`], or use
    /// [`pool`]: a pool larger than the database allows fails to make connections.
    pub fn new(database: D) -> ConnectionManager<D> {
        ConnectionManager { database }
    }

    /// The database it connects to.
    pub fn database(&self) -> &D {
        &self.database
    }
}

impl<D: Database> ManageConnection for ConnectionManager<D> {
    type Connection = D::Connection;
    type Error = D::Error;

    fn connect(&self) -> Result<D::Connection, D::Error> {
        self.database.connect()
    }

    fn is_valid(&self, connection: &mut D::Connection) -> Result<(), D::Error> {
        D::check(connection)
    }

    fn has_broken(&self, connection: &mut D::Connection) -> bool {
        // A connection given back inside a transaction holds its locks while idle: drop it now,
        // not at its next checkout.
        D::left_in_transaction(connection)
    }
}

/// An r2d2 builder for a pool over `database`: r2d2's defaults, with `max_size` (r2d2's 10)
/// capped at what the database allows ([`max_size`](super::max_size)), so that a one-connection
/// database gets a pool of one. Build it with `.build(ConnectionManager::new(database))`; raising
/// `max_size` past the database's limit makes the extra connections fail to connect.
pub fn builder<D: Database>(database: &D) -> Builder<ConnectionManager<D>> {
    sized(database, R2D2_DEFAULT_SIZE)
}

/// A pool of `wanted_size` connections to `database` (at least one), capped at what the database
/// allows ([`max_size`](super::max_size)): a one-connection database gets a pool of one. Waits
/// until the pool's connections are made, as r2d2's `build` does.
pub fn pool<D: Database>(
    database: D,
    wanted_size: u32,
) -> Result<Pool<ConnectionManager<D>>, ::r2d2::Error> {
    sized(&database, wanted_size).build(ConnectionManager::new(database))
}

fn sized<D: Database>(database: &D, wanted: u32) -> Builder<ConnectionManager<D>> {
    let builder = Pool::builder().max_size(super::max_size(database, wanted));
    if database.connection_limit().max_connections().is_some() {
        // Connections are scarce: closing one to replace it could let another process take it.
        builder.max_lifetime(None)
    } else {
        builder
    }
}
