//! The open: check the path, create atomically, walk the journal ladder, migrate, report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use rusqlite::{Connection, OpenFlags};
use store_core::connect::deciding_lock;
use store_core::locks::LockHolder;
use store_core::opening::{CreateFailure, create_atomically};
use store_core::{
    ConnectionLimit, Durability, Engine, FailureClass, Fallback, FileContent, Filesystem, FsKind,
    JournalMode, OpenReport, WarnOnce, check_database_path,
};

use crate::classify::{Stage, classify_at};
use crate::database::{Decided, SqliteDatabase, decision_key, exclusive_holder, live_decision};
use crate::error::{CreateError, ExclusivelyHeld, JournalError, OpenError};
use crate::migrate;
use crate::options::{SqliteOptions, Synchronous};
use crate::pragma::{pragma_answer, set_locking_mode};

/// How often a transient I/O error while switching journals is retried before it counts.
const TRANSIENT_RETRIES: u32 = 2;
const TRANSIENT_RETRY_DELAY: Duration = Duration::from_millis(50);

/// Directories (with their device, so that a mount appearing over one is tried afresh) where
/// shared-memory WAL failed in this process, and how. A later open there skips that rung when
/// another follows: trying it again switches the file into WAL format and back, two durable
/// header writes, which made the fallback open 34 times as slow as a plain DELETE-mode open
/// (`cargo xtask bench`).
static WAL_FAILED_IN: Mutex<BTreeMap<(PathBuf, u64), Fallback>> = Mutex::new(BTreeMap::new());

fn wal_failure_key(database: &Path) -> Option<(PathBuf, u64)> {
    let directory = store_core::files::parent_directory(database)
        .canonicalize()
        .ok()?;
    #[cfg(unix)]
    let device = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(&directory).ok()?);
    #[cfg(not(unix))]
    let device = 0;
    Some((directory, device))
}

fn wal_failed_before(database: &Path) -> Option<Fallback> {
    let failed = WAL_FAILED_IN.lock().unwrap_or_else(PoisonError::into_inner);
    // The usual case, nothing failed anywhere: no canonicalize or stat on the happy open.
    if failed.is_empty() {
        return None;
    }
    failed.get(&wal_failure_key(database)?).cloned()
}

fn remember_wal_failure(database: &Path, fallback: &Fallback) {
    if let Some(key) = wal_failure_key(database) {
        let mut failed = WAL_FAILED_IN.lock().unwrap_or_else(PoisonError::into_inner);
        failed.entry(key).or_insert_with(|| fallback.clone());
    }
}

impl SqliteOptions {
    /// Opens the database: checks the path, creates the database if it is missing (never leaving a
    /// half-made file behind), walks the journal ladder until a mode works and is proven by a read,
    /// applies pending migrations, and reports every decision. The same as
    /// [`database`](Self::database) followed by one [`SqliteDatabase::connect`].
    ///
    /// A failure is recorded as the process's last open error
    /// ([`store_core::last_open_error`]) and logged at WARN once per label and class.
    pub fn open(&self) -> Result<(Connection, OpenReport), OpenError> {
        self.reporting(|report| {
            let database = self.decide_or_reuse(report)?;
            Ok(database.connect()?)
        })
    }

    /// Opens the database as [`open`](Self::open) does and returns the handle that holds the
    /// decision, from which to make connections ([`SqliteDatabase::connect`]) and pools. While a
    /// handle lives, every open of the same file in this process reuses its decision
    /// ([`OpenReport::reused_decision`](store_core::OpenReport::reused_decision)): nothing is
    /// walked or switched again, and only the migrations it lacks are applied.
    pub fn database(&self) -> Result<(SqliteDatabase, OpenReport), OpenError> {
        self.reporting(|report| self.decide_or_reuse(report))
    }

    /// Runs an open inside its span, fills in the elapsed time, and records a failure as the
    /// process's last open error ([`store_core::opening::reporting`]).
    fn reporting<T>(
        &self,
        body: impl FnOnce(&mut OpenReport) -> Result<T, OpenError>,
    ) -> Result<(T, OpenReport), OpenError> {
        store_core::opening::reporting(Engine::Sqlite, &self.path, self.label_or_file_name(), body)
    }

    /// Decides for the database, or reuses the live decision of this process for it.
    fn decide_or_reuse(&self, report: &mut OpenReport) -> Result<SqliteDatabase, OpenError> {
        // Keyed by the path as given (made absolute, no filesystem call): two spellings of one
        // file may decide at the same time, and the second to finish replaces the first's
        // registration with an equal decision.
        let deciding =
            deciding_lock(&std::path::absolute(&self.path).unwrap_or_else(|_| self.path.clone()));
        let _deciding = deciding.lock().unwrap_or_else(PoisonError::into_inner);
        let key = decision_key(&self.path, self.read_only);
        if let Some(decided) = key.and_then(live_decision) {
            return self.reuse(decided, report);
        }
        report.filesystem = Filesystem::detect_unless_set(&self.path, self.filesystem);
        let connection = self.open_reporting(report)?;
        let connection_limit = if report.journal_mode == Some(JournalMode::WalExclusive) {
            ConnectionLimit::One
        } else {
            ConnectionLimit::Many
        };
        report.connection_limit = connection_limit;
        let decided = Decided {
            // Asked again only for a file this open created: an existing one keeps its key.
            key: key.or_else(|| decision_key(&self.path, self.read_only)),
            filesystem: report.filesystem.clone(),
            journal_mode: report.journal_mode,
            connection_limit,
            schema_version: AtomicU32::new(report.schema_version),
        }
        .register();
        Ok(SqliteDatabase::new(decided, self, Some(connection)))
    }

    /// An open of a database this process has decided for and still holds a handle to: the
    /// decision stands; only the migrations it lacks are applied.
    fn reuse(
        &self,
        decided: Arc<Decided>,
        report: &mut OpenReport,
    ) -> Result<SqliteDatabase, OpenError> {
        report.reused_decision = true;
        report.filesystem = decided.filesystem.clone();
        report.journal_mode = decided.journal_mode;
        report.connection_limit = decided.connection_limit;
        report.schema_version = decided.schema_version.load(Ordering::Acquire);
        let database = SqliteDatabase::new(decided, self, None);
        report.durability = database.durability();
        if !self.read_only && !self.migrations.is_empty() {
            let connection = database.connect()?;
            migrate::apply(&connection, &self.migrations, report).map_err(|source| {
                OpenError::Migrate {
                    path: self.path.clone(),
                    source,
                }
            })?;
            database
                .decided()
                .schema_version
                .store(report.schema_version, Ordering::Release);
            database.keep(connection);
        }
        Ok(database)
    }

    fn open_reporting(&self, report: &mut OpenReport) -> Result<Connection, OpenError> {
        let content = check_database_path(
            &self.path,
            Engine::Sqlite,
            self.read_only,
            crate::SIDECAR_SUFFIXES,
        )?;
        if self.read_only {
            return self.open_read_only(content, report);
        }
        if content == FileContent::Missing {
            create_database(&self.path)?;
            report.created = true;
        }
        let was_wal = content == FileContent::Sqlite { wal: true };
        let filesystem = report
            .filesystem
            .as_ref()
            .map_or(FsKind::Unknown, |f| f.kind);
        let ladder = self.effective_ladder(filesystem, was_wal, report);
        let (
            Probed {
                connection,
                schema_version,
            },
            mode,
        ) = match self.walk_ladder(&ladder, was_wal, report) {
            Ok(found) => found,
            Err(error) => {
                if !was_wal {
                    self.restore_rollback_format();
                }
                return Err(error);
            }
        };
        report.journal_mode = Some(mode);
        report.durability =
            Some(self.set_synchronous(&connection, self.synchronous_for(mode), mode)?);
        self.run_on_connect(&connection)?;
        migrate::apply_from(&connection, &self.migrations, report, schema_version).map_err(
            |source| OpenError::Migrate {
                path: self.path.clone(),
                source,
            },
        )?;
        Ok(connection)
    }

    /// The journal modes an open would try, in order, on `filesystem` for a file that is
    /// (`existing_wal`) or is not already in WAL format: the policy's ladder, except that a WAL
    /// database stays in WAL format unless the policy converts it (only the WAL rungs, with
    /// WAL-exclusive, which needs no shared memory, as the last resort).
    ///
    /// ```
    /// use store_sqlite::SqliteOptions;
    /// use store_sqlite::store_core::{FsKind, JournalMode};
    ///
    /// let options = SqliteOptions::new("state.db");
    /// assert_eq!(options.journal_ladder(FsKind::Local, false), [JournalMode::Wal, JournalMode::Delete]);
    /// assert_eq!(options.journal_ladder(FsKind::Local, true), [JournalMode::Wal, JournalMode::WalExclusive]);
    /// ```
    pub fn journal_ladder(&self, filesystem: FsKind, existing_wal: bool) -> Vec<JournalMode> {
        let ladder = self.journal_policy.ladder(filesystem);
        if !existing_wal || self.journal_policy.converts_existing_wal() {
            return ladder;
        }
        let mut kept: Vec<JournalMode> = ladder.iter().copied().filter(|m| m.is_wal()).collect();
        if !kept.contains(&JournalMode::WalExclusive) {
            kept.push(JournalMode::WalExclusive);
        }
        kept
    }

    /// [`journal_ladder`](Self::journal_ladder), with a note in the report when it is not the
    /// policy's own.
    fn effective_ladder(
        &self,
        filesystem: FsKind,
        was_wal: bool,
        report: &mut OpenReport,
    ) -> Vec<JournalMode> {
        let kept = self.journal_ladder(filesystem, was_wal);
        if kept != self.journal_policy.ladder(filesystem) {
            let names: Vec<&str> = kept.iter().map(|mode| mode.as_str()).collect();
            report.notes.push(format!(
                "existing WAL database kept in WAL format (policy `{}` does not convert it): trying {}",
                self.journal_policy.name(),
                names.join(", ")
            ));
        }
        kept
    }

    /// Tries each rung in turn. `was_wal`: the file's format as the path check read it, which
    /// holds until a rung's attempt could have changed it: the first attempt reads nothing again.
    fn walk_ladder(
        &self,
        ladder: &[JournalMode],
        was_wal: bool,
        report: &mut OpenReport,
    ) -> Result<(Probed, JournalMode), OpenError> {
        let policy = &self.journal_policy;
        let mut known_format = Some(was_wal);
        for (index, &mode) in ladder.iter().enumerate() {
            let has_next_rung = index + 1 < ladder.len();
            if mode == JournalMode::Wal
                && has_next_rung
                && let Some(earlier) = wal_failed_before(&self.path)
                && policy.falls_back_on(earlier.class)
            {
                let fallback = Fallback {
                    from: mode,
                    class: earlier.class,
                    cause: format!(
                        "{} (failed in this directory earlier in this process; not tried again)",
                        earlier.cause
                    ),
                };
                self.warn_fallback(&report.label, &fallback, ladder[index + 1]);
                report.fallbacks.push(fallback);
                continue;
            }
            let (error, class) = match self.attempt_with_retries(mode, known_format.take()) {
                Ok(probed) => return Ok((probed, mode)),
                Err((JournalError::HeldExclusively { holder }, _)) => {
                    return Err(OpenError::HeldExclusively(ExclusivelyHeld {
                        path: self.path.clone(),
                        holder,
                    }));
                }
                Err(failure) => failure,
            };
            if !policy.falls_back_on(class) {
                return Err(OpenError::Journal {
                    path: self.path.clone(),
                    mode,
                    class,
                    source: error,
                });
            }
            let fallback = Fallback {
                from: mode,
                class,
                cause: error.to_string(),
            };
            let Some(&next) = ladder.get(index + 1) else {
                let mut attempts = report.fallbacks.clone();
                attempts.push(fallback);
                return Err(OpenError::NoJournalMode {
                    path: self.path.clone(),
                    policy: policy.name().to_owned(),
                    class,
                    attempts,
                    source: error,
                });
            };
            if mode == JournalMode::Wal && class == FailureClass::WalUnsupported {
                remember_wal_failure(&self.path, &fallback);
            }
            self.warn_fallback(&report.label, &fallback, next);
            report.fallbacks.push(fallback);
        }
        Err(OpenError::EmptyLadder {
            path: self.path.clone(),
            policy: policy.name().to_owned(),
        })
    }

    /// A WAL rung that failed after `journal_mode=WAL` took effect leaves the file in WAL format,
    /// which a filesystem without shared memory cannot even read. When the whole ladder failed,
    /// put a database that was not in WAL format back the way it was found.
    fn restore_rollback_format(&self) {
        let now_wal = matches!(
            FileContent::inspect_database(&self.path),
            Ok(FileContent::Sqlite { wal: true })
        );
        if !now_wal {
            return;
        }
        match self.attempt(JournalMode::Delete, None) {
            Ok(connection) => drop(connection),
            Err(error) => tracing::warn!(
                target: "store::sqlite",
                path = %self.path.display(),
                error = %error,
                "could not take the database back out of WAL format after a failed open"
            ),
        }
    }

    fn warn_fallback(&self, label: &str, fallback: &Fallback, next: JournalMode) {
        let one_process = if next.needs_exclusive_locking() {
            " (the database is then usable by this one connection of this one process)"
        } else {
            ""
        };
        let message = format!(
            "{label}: {} does not work here ({}: {}); using {}{one_process} instead. WAL needs \
             shared memory and byte-range locks that NFS/SMB and many FUSE mounts lack: \
             https://www.sqlite.org/wal.html",
            pragma_text(fallback.from),
            fallback.class,
            fallback.cause,
            pragma_text(next)
        );
        if WarnOnce::global().first(label, "journal-fallback") {
            tracing::warn!(
                target: "store::sqlite",
                label = %label,
                path = %self.path.display(),
                from = %fallback.from,
                to = %next,
                class = %fallback.class,
                "{message}"
            );
        } else {
            tracing::debug!(target: "store::sqlite", label = %label, "{message}");
        }
    }

    fn attempt_with_retries(
        &self,
        mode: JournalMode,
        mut known_format: Option<bool>,
    ) -> Result<Probed, (JournalError, FailureClass)> {
        let mut retries = 0;
        let started = Instant::now();
        let mut busy_pause = Duration::from_millis(5);
        loop {
            let error = match self.attempt(mode, known_format.take()) {
                Ok(probed) => return Ok(probed),
                Err(error) => error,
            };
            let (class, transient) = match &error {
                JournalError::Sqlite(sqlite) => {
                    let classified = classify_at(sqlite, Stage::Journal, Some(&self.path));
                    (classified.class, classified.transient)
                }
                JournalError::NotTaken { asked, .. } if asked.is_wal() => {
                    (FailureClass::WalUnsupported, false)
                }
                JournalError::NotTaken { .. } => (FailureClass::Other, false),
                JournalError::HeldExclusively { .. } => return Err((error, FailureClass::Locked)),
            };
            // Switching the journal mode while other processes open the same file can answer
            // SQLITE_BUSY without SQLite's busy handler ever waiting (`cargo xtask torture`'s
            // racing processes hit it): wait for it here, as long as the busy timeout allows.
            if class == FailureClass::Busy && started.elapsed() + busy_pause < self.busy_timeout {
                tracing::debug!(
                    target: "store::sqlite",
                    mode = %mode,
                    error = %error,
                    "database busy while setting the journal mode; waiting"
                );
                std::thread::sleep(busy_pause);
                busy_pause = (busy_pause * 2).min(Duration::from_millis(100));
                continue;
            }
            if transient && retries < TRANSIENT_RETRIES {
                retries += 1;
                tracing::debug!(
                    target: "store::sqlite",
                    mode = %mode,
                    retry = retries,
                    error = %error,
                    "transient I/O error while setting the journal mode; retrying"
                );
                std::thread::sleep(TRANSIENT_RETRY_DELAY);
                continue;
            }
            return Err((error, class));
        }
    }

    /// One rung: a fresh connection, the mode set only if not already in force, and proven by a
    /// read. A file left in WAL format by a failed WAL rung is converted out of it under an
    /// exclusive lock, which needs no shared memory.
    /// `known_format`: whether the file is in WAL format, where nothing since that was read
    /// could have changed it; read from the header otherwise.
    fn attempt(
        &self,
        mode: JournalMode,
        known_format: Option<bool>,
    ) -> Result<Probed, JournalError> {
        let file_is_wal = known_format.unwrap_or_else(|| {
            matches!(
                FileContent::inspect_database(&self.path),
                Ok(FileContent::Sqlite { wal: true })
            )
        });
        let mut connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // A WAL database that another process (or connection) holds in exclusive locking mode
        // is said to be held at once, when the first lock is refused: every rung would only wait
        // out the busy timeout. Asked only then, so that an open nobody blocks pays nothing.
        let held = Arc::new(OnceLock::new());
        if file_is_wal {
            connection.busy_handler(Some(busy_wait_naming_holder(
                self.path.clone(),
                self.busy_timeout,
                Arc::clone(&held),
            )))?;
        } else {
            connection.busy_timeout(self.busy_timeout)?;
        }
        let attempted = self.attempt_on(connection, mode, file_is_wal);
        match held.get() {
            Some(&holder) => Err(JournalError::HeldExclusively { holder }),
            None => attempted,
        }
    }

    fn attempt_on(
        &self,
        connection: Connection,
        mode: JournalMode,
        file_is_wal: bool,
    ) -> Result<Probed, JournalError> {
        let leaving_wal = file_is_wal && !mode.is_wal();
        if mode.needs_exclusive_locking() || leaving_wal {
            set_locking_mode(&connection, "exclusive")?;
        }
        let mut schema_version = probe(&connection)?;
        let current = pragma_answer(&connection, "PRAGMA journal_mode")?;
        if !current.eq_ignore_ascii_case(mode.pragma_value()) {
            let answered = pragma_answer(
                &connection,
                &format!("PRAGMA journal_mode={}", mode.pragma_value()),
            )?;
            if !answered.eq_ignore_ascii_case(mode.pragma_value()) {
                return Err(JournalError::NotTaken {
                    asked: mode,
                    answered,
                });
            }
            schema_version = probe(&connection)?;
        }
        if leaving_wal {
            // Back to normal locking so that other processes can share the rollback journal;
            // the lock is released by the next access.
            set_locking_mode(&connection, "normal")?;
            schema_version = probe(&connection)?;
        }
        // The plain busy timeout from here on, for the connection's whole life.
        connection.busy_timeout(self.busy_timeout)?;
        Ok(Probed {
            connection,
            schema_version,
        })
    }

    fn open_read_only(
        &self,
        content: FileContent,
        report: &mut OpenReport,
    ) -> Result<Connection, OpenError> {
        let attempt = |exclusive: bool| -> rusqlite::Result<Connection> {
            let connection = Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            connection.busy_timeout(self.busy_timeout)?;
            if exclusive {
                set_locking_mode(&connection, "exclusive")?;
            }
            probe(&connection)?;
            Ok(connection)
        };
        let was_wal = content == FileContent::Sqlite { wal: true };
        let (connection, exclusive) = match attempt(false) {
            Ok(connection) => (connection, false),
            Err(error) => {
                let class = classify_at(&error, Stage::Journal, Some(&self.path)).class;
                if !(was_wal && class == FailureClass::WalUnsupported) {
                    return Err(self.engine_error(Stage::Open, error));
                }
                report.fallbacks.push(Fallback {
                    from: JournalMode::Wal,
                    class,
                    cause: error.to_string(),
                });
                let connection =
                    attempt(true).map_err(|error| self.engine_error(Stage::Open, error))?;
                (connection, true)
            }
        };
        let current = pragma_answer(&connection, "PRAGMA journal_mode")
            .map_err(|error| self.engine_error(Stage::Query, error))?;
        let mode = current.parse::<JournalMode>().ok().map(|mode| {
            if exclusive && mode == JournalMode::Wal {
                JournalMode::WalExclusive
            } else {
                mode
            }
        });
        report.journal_mode = mode;
        self.run_on_connect(&connection)?;
        migrate::report_read_only(&connection, &self.migrations, report).map_err(|source| {
            OpenError::Migrate {
                path: self.path.clone(),
                source,
            }
        })?;
        Ok(connection)
    }

    /// Sets `PRAGMA synchronous` and reads it back: the durability reported is the one SQLite
    /// answers, and an answer other than the level asked for fails the open rather than leave
    /// commits less durable than the caller was told.
    fn set_synchronous(
        &self,
        connection: &Connection,
        asked: Synchronous,
        mode: JournalMode,
    ) -> Result<Durability, OpenError> {
        connection
            .pragma_update(None, "synchronous", asked.as_str())
            .map_err(|source| self.engine_error(Stage::Query, source))?;
        let answered: i64 = connection
            .query_row("PRAGMA synchronous", [], |row| row.get(0))
            .map_err(|source| self.engine_error(Stage::Query, source))?;
        match Synchronous::from_level(answered) {
            Some(in_force) if in_force == asked => Ok(in_force.durability_in(mode)),
            _ => Err(OpenError::SynchronousNotTaken {
                path: self.path.clone(),
                asked,
                answered,
            }),
        }
    }

    /// The options' per-connection initialisation, on the open's own connection.
    fn run_on_connect(&self, connection: &Connection) -> Result<(), OpenError> {
        self.on_connect
            .run(connection)
            .map_err(|source| OpenError::Init {
                path: self.path.clone(),
                source,
            })
    }

    fn engine_error(&self, stage: Stage, source: rusqlite::Error) -> OpenError {
        OpenError::Engine {
            path: self.path.clone(),
            class: classify_at(&source, stage, Some(&self.path)).class,
            source,
        }
    }
}

/// A read that proves the journal mode works (a read of `sqlite_schema` through the mode's locks
/// and, in WAL, its shared memory), answering the schema version on the way: the open's
/// migrations start from it instead of asking again.
fn probe(connection: &Connection) -> rusqlite::Result<u32> {
    migrate::schema_version(connection)
}

/// A connection whose journal mode a read proved, and the schema version that read found.
struct Probed {
    connection: Connection,
    schema_version: u32,
}

/// SQLite's busy wait (a growing sleep until `timeout` per locking event), except that the first
/// refusal of each event asks who holds the database: a process holding it in exclusive locking
/// mode will not let go before the timeout, so the wait stops at once with the holder in `held`.
fn busy_wait_naming_holder(
    path: PathBuf,
    timeout: Duration,
    held: Arc<OnceLock<LockHolder>>,
) -> impl FnMut(i32) -> bool + Send + 'static {
    let mut event_started = Instant::now();
    move |count| {
        if count == 0 {
            event_started = Instant::now();
            if let Some(holder) = exclusive_holder(&path) {
                let _ = held.set(holder);
                return false;
            }
        }
        let waited = event_started.elapsed();
        if waited >= timeout {
            return false;
        }
        let pause = Duration::from_millis(1 << count.clamp(0, 6));
        std::thread::sleep(pause.min(timeout - waited));
        true
    }
}

/// How a mode reads in a warning: the pragmas a person would type.
fn pragma_text(mode: JournalMode) -> String {
    let journal = format!("journal_mode={}", mode.pragma_value().to_ascii_uppercase());
    if mode.needs_exclusive_locking() {
        format!("{journal} with locking_mode=EXCLUSIVE")
    } else {
        journal
    }
}

/// Creates a new database atomically ([`store_core::opening::create_atomically`]): `path` is
/// either absent or a valid SQLite file at every instant.
fn create_database(path: &Path) -> Result<(), OpenError> {
    create_atomically(path, Engine::Sqlite, crate::SIDECAR_SUFFIXES, |temporary| {
        Connection::open_with_flags(
            temporary,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|connection| {
            connection.execute_batch(migrate::SCHEMA_VERSION_DDL)?;
            connection.close().map_err(|(_, error)| error)
        })
    })
    .map_err(|failure| match failure {
        CreateFailure::Initialise(source) => OpenError::Create {
            path: path.to_owned(),
            class: classify_at(&source, Stage::Open, Some(path)).class,
            source: CreateError::Sqlite { source },
        },
        CreateFailure::Place(source) => OpenError::Create {
            path: path.to_owned(),
            class: FailureClass::from_io_error(&source),
            source: CreateError::Rename { source },
        },
    })
}
