//! What store sees at a database path, for the operator: `store-doctor PATH [--json]`; and the
//! operator's release of a database's ownership,
//! `store-doctor --release-ownership PATH [--owner-machine-is-down] [--json]` ([`release`]).
//!
//! Install with `cargo install --path crates/store-doctor` (both engines by default;
//! `--no-default-features --features sqlite` skips DuckDB's long build).
//!
//! [`examine`] looks at a database file, or at every database in a directory, and finds out: the
//! filesystem, whether SQLite's WAL works there (probed with a scratch database of its own beside
//! the path, removed afterwards), the journal format of an existing SQLite file and what
//! `PRAGMA quick_check` says of it, DuckDB's WAL as store reads it before a replay, the WAL and
//! other sidecars, pre-migration snapshots and moved-aside files with their sizes and ages, a
//! recovery a crash interrupted, and what an open through store would do. It changes nothing of
//! the user's (databases are only read) and nothing of the application's: no last open error is
//! recorded, no directory is marked as one where WAL failed, no DuckDB instance is registered.
//!
//! # Exit codes
//!
//! The worst database decides ([`Checkup::verdict`], [`Verdict::exit_code`]); a directory with no
//! database in it gets the WAL probe's verdict.
//!
//! | code | verdict        | meaning                                                                 |
//! |------|----------------|-------------------------------------------------------------------------|
//! | 0    | `healthy`      | every database opens as it is                                           |
//! | 1    | `falls-back`   | opens, but on a weaker rung: WAL does not work here                     |
//! | 2    | `will-recover` | an open would run a recovery step (files moved aside), or a recovery a crash interrupted is pending |
//! | 3    | `fails`        | an open would fail, or a database is corrupt or not a database          |
//! | 64   |                | usage error (a bad flag, no `PATH`): `EX_USAGE`, where clap would say 2 |
//! | 66   | `no-database`  | the path does not exist (nor its directory), cannot be read, or names no file yet: `EX_NOINPUT` |
//! | 74   |                | the report could not be written out: `EX_IOERR`; with `--release-ownership`, reading or removing the record failed |
//!
//! `--release-ownership` ([`release`], over store-core's
//! [`release_ownership`](store_core::ownership::release_ownership)) exits 0 when the database is
//! free (its record removed, or there was none), and otherwise, having changed nothing:
//!
//! | code | result                     | meaning                                                   |
//! |------|----------------------------|-----------------------------------------------------------|
//! | 65   | `bad-record`               | the record is not one store can read (`EX_DATAERR`); left as it is |
//! | 66   | `missing`                  | neither the database nor its directory exists (`EX_NOINPUT`) |
//! | 75   | `owner-alive`, `busy`      | the owner is alive on this machine (its process runs, or a process holds the record's lock), or the record kept changing: try again once it has stopped (`EX_TEMPFAIL`) |
//! | 77   | `owner-on-another-machine` | another machine owns it and `--owner-machine-is-down` was not given (`EX_NOPERM`) |
//!
//! `--json` prints one document ([`Report`]): `verdict`, `exit_code`, then the checkup's fields
//! (`path`, `directory`, `filesystem`, `wal`, `databases`, each database with its `outlook` and
//! `verdict`), or `error` when the path could not be examined.
//!
//! # Example
//!
//! ```
//! use store_doctor::{Outlook, Verdict};
//!
//! let directory = tempfile::tempdir()?;
//! let path = directory.path().join("state.db");
//! let connection = rusqlite::Connection::open(&path)?;
//! connection.execute_batch("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('kept');")?;
//! drop(connection);
//!
//! let checkup = store_doctor::examine(&path)?;
//! println!("{checkup}");
//! assert!(matches!(checkup.databases[0].outlook, Outlook::Opens { .. }));
//! if checkup.wal.works() {
//!     assert_eq!(checkup.verdict(), Verdict::Healthy);
//!     assert_eq!(checkup.verdict().exit_code(), 0);
//! }
//! let json = serde_json::to_value(store_doctor::Report::new(&Ok(checkup)))?;
//! assert_eq!(json["databases"][0]["content"], "sqlite-rollback");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod checkup;
mod display;
mod examine;
mod ownership;
mod report;
mod serialize;
mod verdict;

#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(not(feature = "sqlite"))]
#[path = "without_sqlite.rs"]
mod sqlite;

#[cfg(feature = "duckdb")]
mod duckdb;
#[cfg(not(feature = "duckdb"))]
#[path = "without_duckdb.rs"]
mod duckdb;

pub use checkup::{
    Checkup, DatabaseCheckup, FileFacts, MovedAsideFacts, Outlook, SnapshotFacts, WalProbe,
};
pub use examine::{ExamineError, examine};
pub use ownership::{
    EXIT_BAD_RECORD, EXIT_IO, EXIT_OWNER_ALIVE, EXIT_OWNER_ON_ANOTHER_MACHINE, OwnerIs,
    OwnershipFinding, ReleaseOutcome, ReleaseReport, release,
};
pub use report::Report;
pub use verdict::{EXIT_NO_INPUT, EXIT_USAGE, Verdict};
