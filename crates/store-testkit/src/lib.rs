//! Test fixtures and fault injection for `store` and for applications built on it.
//!
//! Everything here drives the real engines: databases are real files written by bundled SQLite
//! and DuckDB, and faults are produced by the engines' own machinery (system-call hooks, the
//! authorizer, SQLite's fault simulator, real mounts), never by a wrapper that returns a canned
//! error.
//!
//! - [`fixtures`]: temporary databases with a known number of rows, and row counts;
//! - [`faults`]: process-global faults behind a guard, one at a time;
//! - [`child`]: running a test, or a role of it, in a child process ([`isolated!`]);
//! - [`crash`]: killing a child process at a named step of store's work;
//! - [`logs`]: capturing tracing events to assert what was logged;
//! - [`snapshot`]: a directory's files before and after, and what changed.
//!
//! Each engine is a feature: `sqlite` (default) and `duckdb`.
//!
//! ```
//! # #[cfg(feature = "sqlite")] {
//! use store_testkit::TempDatabase;
//!
//! let database = TempDatabase::sqlite(10)?;
//! assert_eq!(database.count_rows()?, 10);
//! assert!(database.path().exists());
//! # }
//! # Ok::<(), store_testkit::FixtureError>(())
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod child;
pub mod crash;
pub mod faults;
pub mod fixtures;
pub mod logs;
pub mod snapshot;

pub use fixtures::{FixtureError, ITEMS_TABLE, TempDatabase, count_rows, write_rows};
pub use snapshot::{Change, DirectorySnapshot};
