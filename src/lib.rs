//! Embedded SQLite and DuckDB databases that survive what deployments do to them.
//!
//! Applications keep their database in a home or data directory; then the directory turns out to
//! be on NFS, SMB or a FUSE mount where SQLite's WAL cannot work, or a container is killed
//! mid-migration and DuckDB can no longer replay its WAL. `store` opens databases so that those
//! cases are handled the same way every time, and tells you in an [`OpenReport`] what it did.
//!
//! This package is the facade. The engine-neutral part, [`store_core`], is always here and is
//! re-exported at the root; each engine, the async face and each pool is a Cargo feature:
//!
//! | feature    | default | module           | what                                          |
//! |------------|---------|------------------|-----------------------------------------------|
//! | `sqlite`   | yes     | `sqlite`         | SQLite through rusqlite, bundled              |
//! | `duckdb`   | no      | `duckdb`         | DuckDB through duckdb-rs, bundled             |
//! | `tokio`    | no      | `tokio`          | `AsyncConnection`: async face                 |
//! | `r2d2`     | no      | `pool::r2d2`     | an r2d2 pool over a decided database          |
//! | `deadpool` | no      | `pool::deadpool` | a deadpool pool of async connections (tokio)  |
//!
//! Both engines' options implement [`Open`], and the database handles they return implement
//! [`Database`], so code written once opens and connects either:
//!
//! ```
//! # #[cfg(feature = "sqlite")] {
//! use store::{Database, Open};
//!
//! /// An application's start-up, written once for whichever engine it is built with: decide once,
//! /// then hand the database to whatever makes connections (threads, a pool).
//! fn start<O: Open>(options: &O) -> Result<O::Database, O::Error> {
//!     let (database, report) = options.open_database()?;
//!     if report.fell_back() || report.recovered() {
//!         eprintln!("{report}");
//!     }
//!     Ok(database)
//! }
//!
//! let directory = tempfile::tempdir().unwrap();
//! let database = start(&store::sqlite::SqliteOptions::new(directory.path().join("a.db"))).unwrap();
//! database.connect().unwrap().execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
//! # }
//! ```
//!
//! Pools ([`pool`], features `r2d2` and `deadpool`) take such a database and size themselves to
//! what its decision allows: a database that allows one connection gets a pool of one.
//!
//! With neither feature, only the engine-neutral API (policies, reports, diagnostics, file
//! safety, migrations, filesystem detection) is available: enable `sqlite` and/or `duckdb` to open
//! databases.
//!
//! ```
//! use store::{FailureClass, FsKind, JournalLadder, JournalMode, JournalPolicy};
//!
//! let policy = JournalLadder::single_process();
//! assert_eq!(policy.ladder(FsKind::Nfs), [JournalMode::WalExclusive, JournalMode::Delete]);
//! assert!(policy.falls_back_on(FailureClass::WalUnsupported));
//! ```
//!
//! SQLite (feature `sqlite`): WAL where it works, a verified fallback where it does not.
//!
//! ```
//! # #[cfg(feature = "sqlite")] {
//! let directory = tempfile::tempdir().unwrap();
//! let (connection, report) = store::sqlite::SqliteOptions::new(directory.path().join("state.db"))
//!     .open()
//!     .unwrap();
//! assert_eq!(report.journal_mode, Some(store::JournalMode::Wal));
//! connection.execute_batch("CREATE TABLE sessions (id TEXT)").unwrap();
//! # }
//! ```
//!
//! DuckDB (feature `duckdb`): migrations between a snapshot and a checkpoint, and a recovery ladder
//! for a WAL that cannot be replayed.
//!
//! ```
//! # #[cfg(feature = "duckdb")] {
//! use store::{Migration, Migrations};
//!
//! let directory = tempfile::tempdir().unwrap();
//! let migrations = Migrations::new(vec![
//!     Migration::new(1, "events", "CREATE TABLE events (id INTEGER)"),
//! ]).unwrap();
//! let (connection, report) = store::duckdb::DuckDbOptions::new(directory.path().join("system.duckdb"))
//!     .migrations(migrations)
//!     .open()
//!     .unwrap();
//! assert_eq!(report.schema_version, 1);
//! connection.execute("INSERT INTO events VALUES (1)", []).unwrap();
//! # }
//! ```
//!
//! Tracing: each open is a span `open` with `engine`, `path` and `label` fields (targets
//! `store::sqlite`, `store::duckdb`); each fallback and recovery step is an event at WARN, once
//! per label for a warning that repeats (target `store::recovery` for recovery); a happy open logs
//! nothing at WARN.
//!
//! When an open fails, the user deserves the cause, not a bare "not available":
//!
//! ```
//! println!("{}", store::unavailable_message("Session database not available"));
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use store_core::*;

/// The async face (feature `tokio`): a connection on a dedicated thread, driven from async code;
/// see [`AsyncConnection`](crate::tokio::AsyncConnection).
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio {
    pub use crate::asynchronous::{
        AsyncConnection, AsyncOpenError, CallError, DEFAULT_QUEUE_CAPACITY,
    };
}
#[cfg(feature = "tokio")]
mod asynchronous;

pub mod pool;

/// The SQLite engine ([`store_sqlite`]).
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite {
    pub use store_sqlite::*;
}

/// The DuckDB engine ([`store_duckdb`]).
#[cfg(feature = "duckdb")]
#[cfg_attr(docsrs, doc(cfg(feature = "duckdb")))]
pub mod duckdb {
    pub use store_duckdb::*;
}

/// The README's examples, compiled and run as doc tests so that they cannot rot.
#[cfg(all(doctest, feature = "sqlite"))]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
