//! Test fixtures and fault injection for `store` and for applications built on it.
//!
//! Everything here drives the real engines: databases are real files written by bundled SQLite
//! and DuckDB. This release has the fixtures; the fault vocabulary builds on them.
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

pub mod fixtures;

pub use fixtures::{FixtureError, ITEMS_TABLE, TempDatabase, count_rows, write_rows};
