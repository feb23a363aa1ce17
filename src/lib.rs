//! Embedded SQLite and DuckDB databases that survive what deployments do to them.
//!
//! Applications keep their database in a home or data directory; then the directory turns out to
//! be on NFS, SMB or a FUSE mount where SQLite's WAL cannot work, or a container is killed
//! mid-migration and DuckDB can no longer replay its WAL. `store` opens databases so that those
//! cases are handled the same way every time, and tells you in an [`OpenReport`] what it did.
//!
//! This package is the facade. The engine-neutral part, [`store_core`], is always here and is
//! re-exported at the root; each engine is a Cargo feature:
//!
//! | feature  | default | module     | engine                                   |
//! |----------|---------|------------|------------------------------------------|
//! | `sqlite` | yes     | [`sqlite`] | SQLite through rusqlite, bundled         |
//! | `duckdb` | no      | [`duckdb`] | DuckDB through duckdb-rs, bundled        |
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
//! When an open fails, the user deserves the cause, not a bare "not available":
//!
//! ```
//! println!("{}", store::unavailable_message("Session database not available"));
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use store_core::*;

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
