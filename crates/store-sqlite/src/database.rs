//! Decide once, connect many: [`SqliteDatabase`], the handle an open returns, and the process's
//! registry of live decisions.
//!
//! An open decides what holds for the whole database (the journal mode that works on this
//! filesystem, its locking, migrations). [`SqliteDatabase::connect`] makes further connections
//! with that decision applied, in the right order (busy timeout first, the persistent journal mode
//! checked and never switched again), at the cost of a plain rusqlite open with the same pragmas.
//! While a handle lives, every open of the same file in this process reuses its decision.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use rusqlite::{Connection, OpenFlags};
use store_core::locks::{LockHolder, write_lock_holder};
use store_core::{ConnectionLimit, Durability, Filesystem, JournalMode};

use crate::classify::{Stage, classify_at};
use crate::error::{ConnectError, ExclusivelyHeld};
use crate::options::{SqliteOptions, Synchronous};
use crate::pragma::{pragma_answer, set_locking_mode, synchronous_level};

/// A database file in this process: (device, inode, read-only). A file deleted and made anew is
/// another database, and a read-only decision is not a read-write one.
pub(crate) type DecisionKey = (u64, u64, bool);

/// The live decisions of this process. Weak: a decision lives as long as a handle to it.
static DECISIONS: Mutex<BTreeMap<DecisionKey, Weak<Decided>>> = Mutex::new(BTreeMap::new());

/// Where a connection in exclusive locking mode holds its write lock: the shared-lock range of
/// SQLite's unix VFS (`SHARED_FIRST`, `SHARED_SIZE` in `os_unix.c`), just above the pending byte
/// at 1 GiB.
const SHARED_FIRST: u64 = 0x4000_0002;
const SHARED_SIZE: u64 = 510;

/// How long a write lock on the shared range must persist to count as an exclusive holder: a
/// connection closing in WAL mode takes the same lock for the moment of its checkpoint.
const HOLDER_CONFIRM_DELAY: std::time::Duration = std::time::Duration::from_millis(20);

/// The key a decision is registered under: the file (device and inode) and the access.
pub(crate) fn decision_key(found: &store_core::PathStat, read_only: bool) -> DecisionKey {
    (found.dev, found.ino, read_only)
}

pub(crate) fn live_decision(key: DecisionKey) -> Option<Arc<Decided>> {
    let decisions = DECISIONS.lock().unwrap_or_else(PoisonError::into_inner);
    decisions.get(&key)?.upgrade()
}

/// The process that holds the database in exclusive locking mode, if one does: a write lock on
/// the shared range that is still there a moment later.
pub(crate) fn exclusive_holder(path: &Path) -> Option<LockHolder> {
    let first = write_lock_holder(path, SHARED_FIRST, SHARED_SIZE).ok()??;
    std::thread::sleep(HOLDER_CONFIRM_DELAY);
    let second = write_lock_holder(path, SHARED_FIRST, SHARED_SIZE).ok()??;
    (second.pid == first.pid).then_some(second)
}

/// What an open decided for a database, shared by every handle to it: what holds for the whole
/// database, whatever each handle's per-connection settings.
pub(crate) struct Decided {
    pub(crate) key: Option<DecisionKey>,
    pub(crate) filesystem: Option<Filesystem>,
    /// The journal mode in force; `None` only for a read-only open whose mode SQLite named in a
    /// way this crate does not know.
    pub(crate) journal_mode: Option<JournalMode>,
    pub(crate) connection_limit: ConnectionLimit,
    /// The schema version as of the last open that decided or migrated.
    pub(crate) schema_version: AtomicU32,
    /// This client's claim on a database another machine can reach: every connection made
    /// under the decision holds a share ([`crate::ownership`]).
    pub(crate) ownership: Option<Arc<store_core::ownership::Ownership>>,
}

impl Decided {
    /// Registers the decision for its key, replacing a dead one.
    pub(crate) fn register(self) -> Arc<Decided> {
        let decided = Arc::new(self);
        if let Some(key) = decided.key {
            let mut decisions = DECISIONS.lock().unwrap_or_else(PoisonError::into_inner);
            decisions.retain(|_, decision| decision.strong_count() > 0);
            decisions.insert(key, Arc::downgrade(&decided));
        }
        decided
    }

    /// Drops the decision from the registry, so that the next open decides anew.
    fn forget(&self) {
        if let Some(key) = self.key {
            let mut decisions = DECISIONS.lock().unwrap_or_else(PoisonError::into_inner);
            decisions.remove(&key);
        }
    }
}

impl Drop for Decided {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            let mut decisions = DECISIONS.lock().unwrap_or_else(PoisonError::into_inner);
            if decisions
                .get(&key)
                .is_some_and(|decision| decision.strong_count() == 0)
            {
                decisions.remove(&key);
            }
        }
    }
}

/// A SQLite database whose open has decided its journal mode, locking and migrations; makes
/// connections with that decision applied. Cheap to clone; `Send` and `Sync`.
///
/// ```
/// use store_sqlite::SqliteOptions;
/// use store_sqlite::store_core::ConnectionLimit;
///
/// # let directory = tempfile::tempdir()?;
/// let (database, report) = SqliteOptions::new(directory.path().join("state.db")).database()?;
/// assert_eq!(database.connection_limit(), ConnectionLimit::Many);
/// database.connect()?.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)")?;
/// let writers: Vec<_> = (0..4)
///     .map(|writer| {
///         let database = database.clone();
///         std::thread::spawn(move || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///             let connection = database.connect()?;
///             for _ in 0..10 {
///                 connection.execute("INSERT INTO t (who) VALUES (?1)", [writer])?;
///             }
///             Ok(())
///         })
///     })
///     .collect();
/// for writer in writers {
///     writer.join().unwrap().unwrap();
/// }
/// let rows: i64 = database.connect()?.query_row("SELECT count(*) FROM t", [], |row| row.get(0))?;
/// assert_eq!(rows, 40);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SqliteDatabase {
    decided: Arc<Decided>,
    /// This handle's options: its per-connection settings (busy timeout, `synchronous`,
    /// initialisation), which may differ between handles of one decision.
    options: Arc<SqliteOptions>,
    /// `None` for a read-only database, which commits nothing.
    synchronous: Option<Synchronous>,
    /// The open's own connection, lent by the first `connect`: an open and its first connection
    /// cost one connection, and a one-connection decision hands out the one it holds.
    first: Arc<Mutex<Option<Connection>>>,
}

impl std::fmt::Debug for SqliteDatabase {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SqliteDatabase")
            .field("path", &self.options.common.path)
            .field("journal_mode", &self.decided.journal_mode)
            .field("connection_limit", &self.decided.connection_limit)
            .finish_non_exhaustive()
    }
}

impl SqliteDatabase {
    /// A handle on `decided` with `options`' per-connection settings, lending `first` (a
    /// connection with exactly those settings) to the first `connect`.
    pub(crate) fn new(
        decided: Arc<Decided>,
        options: &SqliteOptions,
        first: Option<Connection>,
    ) -> SqliteDatabase {
        let synchronous = match (options.common.read_only, decided.journal_mode) {
            (false, Some(mode)) => Some(options.synchronous_for(mode)),
            _ => None,
        };
        SqliteDatabase {
            decided,
            options: Arc::new(options.clone()),
            synchronous,
            first: Arc::new(Mutex::new(first)),
        }
    }

    /// Gives back a connection this handle made and has not lent (the one a reused open
    /// migrated with), for the next `connect` to lend.
    pub(crate) fn keep(&self, connection: Connection) {
        let mut first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            *first = Some(connection);
        }
    }

    /// Makes a connection with the decision applied: the busy timeout first, exclusive locking
    /// where the decision needs it, `synchronous`, the journal mode checked (never switched), then
    /// the options' [`on_connect`](SqliteOptions::on_connect) initialisation, and last
    /// `synchronous` read back: a connection not at the level [`durability`](Self::durability)
    /// states fails with [`ConnectError::SynchronousNotTaken`].
    ///
    /// Under a one-connection decision ([`ConnectionLimit::One`]) a second connection while the
    /// first is in use fails at once with [`ConnectError::HeldExclusively`]. A database whose
    /// journal mode another process changed fails with [`ConnectError::JournalModeChanged`], and
    /// the next open decides anew.
    pub fn connect(&self) -> Result<Connection, ConnectError> {
        let lent = self
            .first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match lent {
            Some(connection) => Ok(connection),
            None => self.new_connection(),
        }
    }

    fn new_connection(&self) -> Result<Connection, ConnectError> {
        let decided = &*self.decided;
        let options = &*self.options;
        let path = &options.common.path;
        let exclusive = decided.connection_limit == ConnectionLimit::One;
        let held = |holder| {
            ConnectError::HeldExclusively(ExclusivelyHeld {
                path: path.clone(),
                holder,
            })
        };
        // Under exclusive locking any step that reads the schema can be refused the lock: the
        // holder, when there is one, is the error, not the `Busy` that waited for it.
        let engine = |source: rusqlite::Error| {
            if let Some(holder) = exclusive.then(|| exclusive_holder(path)).flatten() {
                return held(holder);
            }
            ConnectError::Engine {
                path: path.clone(),
                class: classify_at(&source, Stage::Open, Some(path)).class,
                source,
            }
        };
        if exclusive && let Some(holder) = exclusive_holder(path) {
            return Err(held(holder));
        }
        let access = if options.common.read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        };
        let connection =
            Connection::open_with_flags(path, access | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(engine)?;
        connection
            .busy_timeout(options.busy_timeout)
            .map_err(engine)?;
        if exclusive {
            set_locking_mode(&connection, "exclusive").map_err(engine)?;
        }
        if let Some(synchronous) = self.synchronous {
            connection
                .pragma_update(None, "synchronous", synchronous.as_str())
                .map_err(engine)?;
        }
        if let Some(mode) = decided.journal_mode {
            let found = pragma_answer(&connection, "PRAGMA journal_mode").map_err(engine)?;
            if !found.eq_ignore_ascii_case(mode.pragma_value()) {
                decided.forget();
                return Err(ConnectError::JournalModeChanged {
                    path: path.clone(),
                    decided: mode,
                    found,
                });
            }
        }
        options
            .common
            .on_connect
            .run(&connection)
            .map_err(|source| ConnectError::Init {
                path: path.clone(),
                source,
            })?;
        if let Some(ownership) = &decided.ownership {
            crate::ownership::hold_with(&connection, ownership);
        }
        // Read back after the initialisation, which may have set it: what `durability()` and the
        // open's report state is what the connection handed out does.
        if let Some(asked) = self.synchronous {
            let answered = synchronous_level(&connection).map_err(engine)?;
            if Synchronous::from_level(answered) != Some(asked) {
                return Err(ConnectError::SynchronousNotTaken {
                    path: path.clone(),
                    asked,
                    answered,
                });
            }
        }
        Ok(connection)
    }

    /// What a pool runs before lending a connection: that its last user left no transaction open
    /// (its locks would stall every other connection, and the next user would commit into it).
    /// No query: a SQLite connection does not break the way a network connection does (a failed
    /// statement reports itself when it runs), and a `SELECT 1` made an r2d2 checkout 1.6 times
    /// a plain manager's (`cargo xtask bench`).
    pub fn check(connection: &Connection) -> Result<(), ConnectError> {
        if connection.is_autocommit() {
            return Ok(());
        }
        Err(ConnectError::InTransaction {
            path: connection.path().map(Into::into).unwrap_or_default(),
        })
    }

    /// How many connections the decision allows at once.
    pub fn connection_limit(&self) -> ConnectionLimit {
        self.decided.connection_limit
    }

    /// The journal mode decided (`None` only for a read-only open of a mode this crate does not
    /// name).
    pub fn journal_mode(&self) -> Option<JournalMode> {
        self.decided.journal_mode
    }

    /// What a power cut may do to commits made through this handle's connections; `None` for a
    /// read-only database.
    pub fn durability(&self) -> Option<Durability> {
        Some(self.synchronous?.durability_in(self.decided.journal_mode?))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.options.common.path
    }

    /// The label warnings and messages use.
    pub fn label(&self) -> String {
        self.options.label_or_file_name()
    }

    /// Whether connections are read-only.
    pub fn read_only(&self) -> bool {
        self.options.common.read_only
    }

    pub(crate) fn decided(&self) -> &Decided {
        &self.decided
    }
}

impl store_core::Database for SqliteDatabase {
    type Connection = Connection;
    type Error = ConnectError;

    fn connect(&self) -> Result<Connection, ConnectError> {
        SqliteDatabase::connect(self)
    }

    fn check(connection: &mut Connection) -> Result<(), ConnectError> {
        SqliteDatabase::check(connection)
    }

    fn left_in_transaction(connection: &mut Connection) -> bool {
        !connection.is_autocommit()
    }

    /// SQLite says whether a transaction is open: rolled back if one is, and asked again.
    fn roll_back_abandoned(connection: &mut Connection) -> bool {
        if !connection.is_autocommit() {
            // A refusal shows in the answer below.
            let _ = connection.execute_batch("ROLLBACK");
        }
        connection.is_autocommit()
    }

    fn connection_limit(&self) -> ConnectionLimit {
        SqliteDatabase::connection_limit(self)
    }
}

impl store_core::Open for SqliteOptions {
    type Database = SqliteDatabase;
    type Connection = Connection;
    type Error = crate::OpenError;
    const ENGINE: store_core::Engine = store_core::Engine::Sqlite;

    fn open_connection(&self) -> Result<(Connection, store_core::OpenReport), crate::OpenError> {
        self.open()
    }

    fn open_database(&self) -> Result<(SqliteDatabase, store_core::OpenReport), crate::OpenError> {
        self.database()
    }
}

impl store_core::Classify for crate::OpenError {
    fn class(&self) -> store_core::FailureClass {
        crate::OpenError::class(self)
    }
}

impl store_core::Classify for ConnectError {
    fn class(&self) -> store_core::FailureClass {
        ConnectError::class(self)
    }
}
