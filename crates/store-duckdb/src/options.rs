//! [`DuckDbOptions`]: how to open a database, builder-lite.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use store_core::{Migrations, RecoveryLadder, RecoveryPolicy};

/// How to open a DuckDB database. Each setter documents its default.
///
/// ```no_run
/// use store_duckdb::DuckDbOptions;
/// use store_duckdb::store_core::{Migration, Migrations, RecoveryLadder};
///
/// let migrations = Migrations::new(vec![
///     Migration::new(1, "events", "CREATE TABLE events (id INTEGER PRIMARY KEY, name VARCHAR)"),
///     Migration::new(2, "source", "ALTER TABLE events ADD COLUMN source VARCHAR"),
/// ])?;
/// let (connection, report) = DuckDbOptions::new("/var/lib/app/system.duckdb")
///     .migrations(migrations)
///     .recovery_policy(RecoveryLadder::default())
///     .retention(3)
///     .open()?;
/// if let Some(recovery) = &report.recovery {
///     eprintln!("recovered by {}: lost {}", recovery.step, recovery.lost);
/// }
/// connection.execute("INSERT INTO events (id, name) VALUES (1, 'started')", [])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct DuckDbOptions {
    pub(crate) path: PathBuf,
    pub(crate) label: Option<String>,
    pub(crate) migrations: Migrations,
    pub(crate) recovery_policy: Arc<dyn RecoveryPolicy>,
    pub(crate) retention: Option<usize>,
    pub(crate) read_only: bool,
}

impl DuckDbOptions {
    /// Options for the database at `path` (created on first open unless read-only).
    pub fn new(path: impl AsRef<Path>) -> DuckDbOptions {
        DuckDbOptions {
            path: path.as_ref().to_owned(),
            label: None,
            migrations: Migrations::none(),
            recovery_policy: Arc::new(RecoveryLadder::default()),
            retention: Some(3),
            read_only: false,
        }
    }

    /// The name warnings and messages use for this database. Default: the file name.
    pub fn label(mut self, label: impl Into<String>) -> DuckDbOptions {
        self.label = Some(label.into());
        self
    }

    /// Migrations to apply on open, each once, in order, with a checkpoint before and after and a
    /// pre-migration snapshot (`<db>.pre-migrate`) when any is pending. Default: none.
    pub fn migrations(mut self, migrations: Migrations) -> DuckDbOptions {
        self.migrations = migrations;
        self
    }

    /// What to do when the write-ahead log cannot be replayed. Default: [`RecoveryLadder::default`]
    /// (salvage the WAL up to its first bad entry, else discard it, else restore the snapshot).
    pub fn recovery_policy(mut self, policy: impl RecoveryPolicy + 'static) -> DuckDbOptions {
        self.recovery_policy = Arc::new(policy);
        self
    }

    /// How many groups of moved-aside files to keep per reason (`broken`, `discarded-wal`,
    /// `salvaged-wal`) after a recovery; older groups are deleted, so that a crash loop cannot fill
    /// the disk. Default: 3. [`DuckDbOptions::keep_everything`] turns pruning off.
    pub fn retention(mut self, groups: usize) -> DuckDbOptions {
        self.retention = Some(groups.max(1));
        self
    }

    /// Never delete moved-aside files.
    pub fn keep_everything(mut self) -> DuckDbOptions {
        self.retention = None;
        self
    }

    /// Open read-only: never create, migrate or recover. Default: false.
    pub fn read_only(mut self, read_only: bool) -> DuckDbOptions {
        self.read_only = read_only;
        self
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The label in use: the one set, or the file name.
    pub fn label_or_file_name(&self) -> String {
        self.label
            .clone()
            .unwrap_or_else(|| store_core::default_label(&self.path))
    }
}
