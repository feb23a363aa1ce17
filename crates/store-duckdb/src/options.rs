//! [`DuckDbOptions`]: how to open a database, builder-lite.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use store_core::options::CommonOptions;
use store_core::{FsKind, Migrations, RecoveryLadder, RecoveryPolicy};

use crate::registry::InstanceConfig;

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
///     .retention(std::num::NonZeroUsize::new(3).unwrap())
///     .open()?;
/// if let Some(recovery) = &report.recovery {
///     eprintln!("recovered by {}: lost {}", recovery.step, recovery.lost);
/// }
/// connection.execute("INSERT INTO events (id, name) VALUES (1, 'started')", [])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct DuckDbOptions {
    /// What both engines' options hold alike.
    pub(crate) common: CommonOptions<duckdb::Connection, duckdb::Error>,
    pub(crate) recovery_policy: Arc<dyn RecoveryPolicy>,
    pub(crate) retention: Option<usize>,
    /// DuckDB settings by lowercase name, applied to every instance the open starts.
    pub(crate) settings: BTreeMap<String, String>,
}

impl DuckDbOptions {
    /// Options for the database at `path` (created on first open unless read-only).
    pub fn new(path: impl AsRef<Path>) -> DuckDbOptions {
        DuckDbOptions {
            common: CommonOptions::new(path.as_ref()),
            recovery_policy: Arc::new(RecoveryLadder::default()),
            retention: None,
            settings: BTreeMap::new(),
        }
    }

    /// The name warnings and messages use for this database. Default: the file name.
    pub fn label(mut self, label: impl Into<String>) -> DuckDbOptions {
        self.common.label = Some(label.into());
        self
    }

    /// Migrations to apply on open, each once, in order, with a checkpoint before and after and a
    /// pre-migration snapshot (`<db>.pre-migrate`) when any is pending. Default: none.
    pub fn migrations(mut self, migrations: Migrations) -> DuckDbOptions {
        self.common.migrations = migrations;
        self
    }

    /// What to do when the write-ahead log cannot be replayed. Default: [`RecoveryLadder::default`]
    /// (salvage the WAL up to its first bad entry, else discard it, else restore the snapshot).
    pub fn recovery_policy(mut self, policy: impl RecoveryPolicy + 'static) -> DuckDbOptions {
        self.recovery_policy = Arc::new(policy);
        self
    }

    /// How many groups of moved-aside files to keep per reason (`broken`, `discarded-wal`,
    /// `salvaged-wal`) after a recovery; older groups are deleted, so that a crash loop cannot
    /// fill the disk. The only deletion store ever makes, and only when asked: at least one group
    /// is always kept (the type says so). Default: keep everything; each recovery warns with the
    /// count and bytes of the moved-aside files beside the database.
    pub fn retention(mut self, groups: std::num::NonZeroUsize) -> DuckDbOptions {
        self.retention = Some(groups.get());
        self
    }

    /// Never delete moved-aside files (the default).
    pub fn keep_everything(mut self) -> DuckDbOptions {
        self.retention = None;
        self
    }

    /// Open read-only: never create, migrate or recover. Default: false.
    pub fn read_only(mut self, read_only: bool) -> DuckDbOptions {
        self.common.read_only = read_only;
        self
    }

    /// A DuckDB setting (`SET name = value`) the instance starts with: it is in the
    /// [`duckdb::Config`] of every open of the file this open makes (the first one, recovery's,
    /// creation's), so it is in force while DuckDB replays the write-ahead log. Setting a name
    /// again replaces its value. Names are compared lowercase, as DuckDB does; values as given.
    /// Default: none, DuckDB's defaults.
    ///
    /// A name DuckDB does not know or a value it refuses fails the open with
    /// [`OpenError::Setting`](crate::OpenError::Setting) before any file is touched. `access_mode`
    /// is refused there too: [`DuckDbOptions::read_only`] chooses it. The settings are part of
    /// the instance: an open of a file already open in this process must ask for the same ones
    /// (see [`InstanceConfig`]).
    pub fn setting(mut self, name: impl Into<String>, value: impl Into<String>) -> DuckDbOptions {
        self.settings
            .insert(name.into().to_ascii_lowercase(), value.into());
        self
    }

    /// The most memory the instance may use, as DuckDB reads it (`"512MB"`, `"2GiB"`, `"80%"`):
    /// the setting `memory_limit`. A write-ahead log bigger than the memory it may use makes the
    /// open that replays it fail, again on every restart, so the limit is set before that open.
    /// Default: DuckDB's, 80% of the physical memory.
    pub fn memory_limit(self, limit: impl Into<String>) -> DuckDbOptions {
        self.setting("memory_limit", limit)
    }

    /// How many threads the instance runs queries on: the setting `threads`. Default: DuckDB's,
    /// the number of cores.
    pub fn threads(self, threads: u32) -> DuckDbOptions {
        self.setting("threads", threads.to_string())
    }

    /// Report the filesystem holding the database as `kind`, for a mount detection gets wrong
    /// (a FUSE or network filesystem behind a local one's magic number). The report's
    /// `filesystem` and the hints of a failed open then use `kind`; the mount point and type name
    /// stay as detected, and a note says the kind was set here. Default: the detected kind.
    pub fn filesystem(mut self, kind: FsKind) -> DuckDbOptions {
        self.common.filesystem = Some(kind);
        self
    }

    /// Runs `init` on every connection the open and its database handle make, before
    /// migrations: per-connection settings (`SET search_path`), macros. Calls add up, in order.
    /// Settings of the whole instance (`memory_limit`, `threads`) belong in
    /// [`setting`](Self::setting), which applies them before the WAL is replayed. Default: none.
    ///
    /// ```
    /// use store_duckdb::DuckDbOptions;
    ///
    /// # let directory = tempfile::tempdir()?;
    /// let (database, _report) = DuckDbOptions::new(directory.path().join("system.duckdb"))
    ///     .on_connect(|connection| connection.execute_batch("SET threads = 1"))
    ///     .database()?;
    /// let connection = database.connect()?;
    /// let threads: i64 = connection.query_row("SELECT current_setting('threads')", [], |row| row.get(0))?;
    /// assert_eq!(threads, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_connect(
        mut self,
        init: impl Fn(&duckdb::Connection) -> duckdb::Result<()> + Send + Sync + 'static,
    ) -> DuckDbOptions {
        self.common.on_connect.push(init);
        self
    }

    /// What an instance started by these options is: access mode and settings.
    pub fn instance_config(&self) -> InstanceConfig {
        InstanceConfig {
            read_only: self.common.read_only,
            settings: self.settings.clone(),
        }
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.common.path
    }

    /// The label in use: the one set, or the file name.
    pub fn label_or_file_name(&self) -> String {
        self.common.label_or_file_name()
    }
}
