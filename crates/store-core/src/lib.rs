//! Engine-neutral building blocks of `store`: what an open may choose, what it reports, and how files
//! are kept safe while it does.
//!
//! This crate knows no database engine. The engine crates (`store-sqlite`, `store-duckdb`) turn
//! their errors into a [`FailureClass`], walk the ladders that a [`JournalPolicy`] or a
//! [`RecoveryPolicy`] gives them, and describe every decision in an [`OpenReport`].
//!
//! ```
//! use store_core::{FailureClass, FsKind, JournalLadder, JournalMode, JournalPolicy};
//!
//! // The default policy tries WAL first and falls back to DELETE when WAL cannot work...
//! let policy = JournalLadder::default();
//! assert_eq!(policy.ladder(FsKind::Local), vec![JournalMode::Wal, JournalMode::Delete]);
//! assert!(policy.falls_back_on(FailureClass::WalUnsupported));
//! // ...but never because another writer holds the database.
//! assert!(!policy.falls_back_on(FailureClass::Busy));
//! ```
//!
//! Modules, one concept each:
//! - [`journal`]: [`JournalMode`] and its textual form;
//! - [`connect`]: decide once, connect many: [`Open`], [`Database`], [`Classify`] and the
//!   [`ConnectionLimit`] a decision allows;
//! - [`locks`]: who holds a byte-range lock on a file;
//! - [`fs`]: which filesystem a path lives on ([`FsKind`], [`Filesystem`]);
//! - [`failure`]: the classes of failure an engine error falls into;
//! - [`policy`]: [`JournalPolicy`], [`RecoveryPolicy`] and the ladders that implement them;
//! - [`report`]: [`OpenReport`], what an open chose and why, and the [`Durability`] in force;
//! - [`diagnostics`]: the last open error, warn-once, the user-facing "not available" message;
//! - [`content`]: what a path holds ([`FileContent`]), judged before an engine touches it;
//! - [`files`]: atomic snapshots, move-aside without overwriting, sidecar listing;
//! - `ownership` (Linux): which client (machine and mount) may use a database on a share, recorded
//!   beside it; a second client refused at once, a crashed owner of this machine taken over;
//! - [`pending`]: the durable "recovery pending" record that lets an open report a recovery
//!   whose own open a crash or power cut interrupted;
//! - [`migration`]: the ordered list of schema migrations.

pub mod connect;
pub mod content;
pub mod diagnostics;
pub mod failure;
pub mod files;
pub mod fs;
pub mod journal;
pub mod locks;
pub mod migration;
pub mod opening;
pub mod options;
#[cfg(target_os = "linux")]
pub mod ownership;
pub mod pending;
pub mod policy;
pub mod report;
pub mod schema_tag;
pub mod time;

pub use connect::{Classify, ConnectionLimit, Database, Open};
pub use content::{FileContent, PathError, check_database_path, check_database_path_at};
pub use diagnostics::{
    LastOpenError, OpenFailure, WarnOnce, cause_chain, clear_last_open_error, format_unavailable,
    last_open_error, record_open_failure, unavailable_message,
};
pub use failure::FailureClass;
pub use files::{MoveAsideError, MovedAside, Replace, Snapshot, SnapshotCopy, SnapshotError};
pub use fs::{
    DetectError, Filesystem, FsKind, KindSource, LockScope, MachineBoundary, PathKind, PathStat,
    ShareClient,
};
pub use journal::{JournalMode, ParseJournalModeError};
pub use migration::{Migration, Migrations, MigrationsError, SCHEMA_VERSION_TABLE};
#[cfg(target_os = "linux")]
pub use ownership::{
    Claim, OtherMachine, OwnerRecord, Ownership, OwnershipError, Release, Released,
    release_ownership,
};
pub use pending::{InterruptedRecovery, PendingRecovery};
pub use policy::{
    JournalLadder, JournalPolicy, LadderError, RecoveryLadder, RecoveryPolicy, RecoveryStep,
};
pub use report::{
    AppliedMigration, DataLoss, Durability, DurabilityAcross, Engine, Fallback, OpenReport,
    Recovery, Risk, SalvageBoundary, StepCause, StepFailed, SyncLevel, default_label,
    label_or_file_name,
};
pub use time::UtcTime;
