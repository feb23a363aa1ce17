//! Test fixtures and fault injection for `store` and for applications built on it.
//!
//! Everything here drives the real engines: databases are real files written by bundled SQLite
//! and DuckDB, and faults are produced by the engines' own machinery (system-call hooks, the
//! authorizer, SQLite's fault simulator, real mounts), never by a wrapper that returns a canned
//! error.
//!
//! - [`fixtures`]: temporary databases with a known number of rows, and row counts;
//! - [`faults`]: the [`faults::Fault`] vocabulary; process-global faults behind a guard, one at a
//!   time; capability probes that say "unsupported here" as a typed error;
//! - [`canned`]: wrappers that return a chosen error, the last resort, named as such;
//! - [`child`]: running a test, or a role of it, in a child process ([`isolated!`]);
//! - [`crash`]: killing a child process at a named step of store's work;
//! - [`logs`]: capturing tracing events to assert what was logged;
//! - [`lossyfs`]: a FUSE filesystem that forgets what was never fsynced, for real power cuts;
//! - [`random`]: a seeded generator, so that a campaign replays from its seed;
//! - [`shares`]: real SFTP, SMB and GlusterFS shares on loopback, with a client mount per
//!   machine, and [`shares::Host`], another machine's hostname, PIDs and boot id;
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
//!
//! DuckDB, with the `duckdb` feature: a crash leaves committed rows in the WAL, garbage lands
//! after them, and DuckDB itself refuses to open the file. That is the state store-duckdb's
//! recovery starts from (it salvages every commit before the garbage).
//!
//! ```
//! # #[cfg(feature = "duckdb")] {
//! use store_testkit::faults::duckdb::{append_garbage_to_wal, write_uncheckpointed_rows};
//!
//! let directory = tempfile::tempdir()?;
//! let path = directory.path().join("system.duckdb");
//! write_uncheckpointed_rows(&path, 10, 5)?;
//! append_garbage_to_wal(&path)?;
//! let replay = duckdb::Connection::open(&path).map(drop).unwrap_err();
//! assert!(replay.to_string().contains("Failure while replaying WAL"), "{replay}");
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod canned;
pub mod child;
pub mod crash;
pub mod faults;
pub mod fixtures;
pub mod logs;
#[cfg(target_os = "linux")]
pub mod lossyfs;
pub mod random;
#[cfg(target_os = "linux")]
pub mod shares;
pub mod snapshot;

pub use fixtures::{FixtureError, ITEMS_TABLE, TempDatabase, count_rows, write_rows};
pub use snapshot::{Change, DirectorySnapshot, assert_unchanged};
