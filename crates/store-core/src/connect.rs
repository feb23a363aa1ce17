//! Decide once, connect many: the traits that engine-generic code (the facade's async face and
//! pools, an application's start-up) is written against, and how many connections a decision
//! allows.
//!
//! An open decides things that hold for the whole database: the journal mode and its locking on
//! this filesystem, recovery, migrations. Each engine's options implement [`Open`]; the handle an
//! open returns implements [`Database`], whose [`connect`](Database::connect) makes another
//! connection with that decision applied and nothing decided again.
//!
//! ```
//! use store_core::{ConnectionLimit, Database};
//!
//! /// The largest pool a database allows: a pool must not hold more connections than that.
//! fn pool_size<D: Database>(database: &D, wanted: u32) -> u32 {
//!     database.connection_limit().max_connections().map_or(wanted, |most| most.min(wanted))
//! }
//! # let _ = pool_size::<NoDatabase>;
//! # #[derive(Clone)] struct NoDatabase;
//! # impl Database for NoDatabase {
//! #     type Connection = ();
//! #     type Error = std::io::Error;
//! #     fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
//! #     fn check(_: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
//! #     fn connection_limit(&self) -> ConnectionLimit { ConnectionLimit::Many }
//! # }
//! assert_eq!(ConnectionLimit::One.max_connections(), Some(1));
//! assert_eq!(ConnectionLimit::Many.max_connections(), None);
//! ```

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::{Engine, FailureClass, OpenReport};

/// The name a database has for this process, whichever way a path spells it: its directory
/// canonicalized, then its file name (the file itself may not exist yet).
pub fn database_key(path: &Path) -> PathBuf {
    let directory = crate::files::parent_directory(path);
    let canonical = directory.canonicalize().unwrap_or(directory);
    match path.file_name() {
        Some(name) => canonical.join(name),
        None => canonical,
    }
}

/// A lock that serialises the opens of one database (by [`database_key`]) in this process, so
/// that one open decides and the others, waiting, find its decision and reuse it.
pub fn deciding_lock(key: &Path) -> Arc<Mutex<()>> {
    // Keyed by the path's bytes, compared as bytes: a `Path` compares component by component,
    // and every open asks.
    static DECIDING: Mutex<BTreeMap<OsString, Arc<Mutex<()>>>> = Mutex::new(BTreeMap::new());
    let mut deciding = DECIDING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(lock) = deciding.get(key.as_os_str()) {
        return Arc::clone(lock);
    }
    Arc::clone(deciding.entry(key.as_os_str().to_owned()).or_default())
}

/// How many connections a database's decision allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionLimit {
    /// Any number of connections in this process (other processes: as the engine allows; a
    /// DuckDB file open for writing is locked to one process).
    Many,
    /// One connection, in one process: the database is in WAL format on a filesystem that cannot
    /// share WAL's memory, so it is open with exclusive locking (SQLite's `WalExclusive`). A
    /// second connection or process gets a typed error at once, never `Busy` after a timeout.
    One,
}

impl ConnectionLimit {
    /// The most connections that can be open at once, `None` for no limit.
    pub fn max_connections(self) -> Option<u32> {
        match self {
            ConnectionLimit::Many => None,
            ConnectionLimit::One => Some(1),
        }
    }
}

impl fmt::Display for ConnectionLimit {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            ConnectionLimit::Many => "any number of connections",
            ConnectionLimit::One => "one connection, in this process only",
        })
    }
}

/// The per-connection initialisation an engine's options collect (user pragmas, functions,
/// macros), run in order on every connection an open and its database handle make.
///
/// ```
/// use store_core::connect::OnConnect;
///
/// let mut on_connect: OnConnect<Vec<&str>, String> = OnConnect::default();
/// on_connect.push(|seen: &Vec<&str>| if seen.is_empty() { Err("empty".into()) } else { Ok(()) });
/// assert_eq!(on_connect.run(&vec!["a"]), Ok(()));
/// assert_eq!(on_connect.run(&vec![]), Err("empty".to_owned()));
/// ```
pub struct OnConnect<C, E> {
    inits: Vec<Arc<InitFn<C, E>>>,
}

/// One initialisation of an [`OnConnect`].
type InitFn<C, E> = dyn Fn(&C) -> Result<(), E> + Send + Sync;

impl<C, E> OnConnect<C, E> {
    /// Adds `init`, run after those added before it.
    pub fn push(&mut self, init: impl Fn(&C) -> Result<(), E> + Send + Sync + 'static) {
        self.inits.push(Arc::new(init));
    }

    /// Runs every initialisation on `connection`, in order, stopping at the first that fails.
    pub fn run(&self, connection: &C) -> Result<(), E> {
        self.inits.iter().try_for_each(|init| init(connection))
    }

    /// Whether there is nothing to run: an engine reads back what an initialisation may have
    /// changed (SQLite's `synchronous`) only when one ran.
    pub fn is_empty(&self) -> bool {
        self.inits.is_empty()
    }
}

impl<C, E> Default for OnConnect<C, E> {
    fn default() -> Self {
        OnConnect { inits: Vec::new() }
    }
}

impl<C, E> Clone for OnConnect<C, E> {
    fn clone(&self) -> Self {
        OnConnect {
            inits: self.inits.clone(),
        }
    }
}

impl<C, E> fmt::Debug for OnConnect<C, E> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "OnConnect({} initialisations)", self.inits.len())
    }
}

/// An error that falls into a [`FailureClass`]: what policies, retries and monitoring decide on.
pub trait Classify {
    /// The class of this failure.
    fn class(&self) -> FailureClass;
}

/// A database whose open has decided everything that holds for the whole database, and that
/// makes connections with that decision applied.
pub trait Database: Clone + Send + Sync + 'static {
    /// A connection to the database.
    type Connection: Send + 'static;
    /// Why a connection could not be made.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Makes another connection with the decision applied (busy timeout first, the journal mode
    /// checked, never switched), cheaply: nothing is decided again.
    fn connect(&self) -> Result<Self::Connection, Self::Error>;

    /// Whether a connection may be lent again (pools run it before lending one): cheap, and
    /// refuses one whose last user left a transaction open where the engine can tell.
    fn check(connection: &mut Self::Connection) -> Result<(), Self::Error>;

    /// Whether a connection given back is inside a transaction its last user left open (it holds
    /// its locks while idle, so a pool drops it at once). Default: the engine cannot tell.
    fn left_in_transaction(connection: &mut Self::Connection) -> bool {
        let _ = connection;
        false
    }

    /// Ends the transaction a caller abandoned by panicking between its `BEGIN` and its end, so
    /// that the connection's next user does not write into it (the async face runs it after a
    /// closure panicked). Answers whether the connection is now sure to be outside any
    /// transaction; `false` means it must not be used again. Default: `false`, the engine cannot
    /// make sure.
    fn roll_back_abandoned(connection: &mut Self::Connection) -> bool {
        let _ = connection;
        false
    }

    /// How many connections the decision allows at once.
    fn connection_limit(&self) -> ConnectionLimit;
}

/// Options that open a database and report what they did. Each engine's options implement it,
/// so that code written once opens either engine.
pub trait Open {
    /// The database handle an open returns: it holds the decision and makes connections.
    type Database: Database<Connection = Self::Connection>;
    /// The connection an open returns.
    type Connection: Send + 'static;
    /// The error an open fails with.
    type Error: std::error::Error + Classify + Send + Sync + 'static;
    /// The engine.
    const ENGINE: Engine;

    /// Opens the database and returns one connection; see each engine's `open`.
    fn open_connection(&self) -> Result<(Self::Connection, OpenReport), Self::Error>;

    /// Opens the database and returns its handle, from which to make connections.
    fn open_database(&self) -> Result<(Self::Database, OpenReport), Self::Error>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_connection_decision_reads_as_a_limit() {
        assert_eq!(ConnectionLimit::One.max_connections(), Some(1));
        assert_eq!(
            ConnectionLimit::One.to_string(),
            "one connection, in this process only"
        );
        assert_eq!(ConnectionLimit::Many.max_connections(), None);
    }
}
