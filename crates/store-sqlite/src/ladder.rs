//! The journal ladder: rungs, retries, fallback warnings, the WAL verdict cache, the busy wait.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use store_core::locks::LockHolder;
use store_core::{FailureClass, Fallback, FileContent, FsKind, JournalMode, OpenReport, WarnOnce};

use crate::classify::{Stage, classify_at, extended_code};
use crate::database::exclusive_holder;
use crate::error::{ExclusivelyHeld, JournalError, OpenError};
use crate::migrate;
use crate::options::{SqliteOptions, Synchronous};
use crate::pragma::{pragma_answer, set_locking_mode};
use crate::shared_memory::shared_memory_fails;

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

    /// Notes in the report why an open that fell back tried the rungs it did, when they were not
    /// the policy's own (a WAL database kept in WAL format). An open that did not fall back has
    /// nothing to explain: the note would be made on every open of every WAL database.
    pub(crate) fn note_kept_ladder(
        &self,
        filesystem: FsKind,
        ladder: &[JournalMode],
        report: &mut OpenReport,
    ) {
        if !report.fell_back() || ladder == self.journal_policy.ladder(filesystem) {
            return;
        }
        let names: Vec<&str> = ladder.iter().map(|mode| mode.as_str()).collect();
        report.notes.push(format!(
            "existing WAL database kept in WAL format (policy `{}` does not convert it): tried {}",
            self.journal_policy.name(),
            names.join(", ")
        ));
    }

    /// Whether the ladder's WAL rung can be skipped without switching the file's format: WAL
    /// failed in this directory earlier in this process, or (for a file not in WAL format, which
    /// the attempt would switch to WAL and back) shared memory does not work here
    /// ([`shared_memory_fails`], asked of SQLite's VFS on a scratch file). `None` where WAL is
    /// the last rung (tried for real, so that its failure is the open's error), where the policy
    /// would not fall back on it, or where nothing says it fails.
    pub(crate) fn wal_ruled_out(
        &self,
        ladder: &[JournalMode],
        file_is_wal: bool,
    ) -> Option<Fallback> {
        let wal_rung = ladder.iter().position(|&mode| mode == JournalMode::Wal)?;
        if wal_rung + 1 == ladder.len()
            || !self
                .journal_policy
                .falls_back_on(FailureClass::WalUnsupported)
        {
            return None;
        }
        if let Some(earlier) = wal_failed_before(&self.common.path) {
            return Some(Fallback {
                cause: format!(
                    "{} (failed in this directory earlier in this process; not tried again)",
                    earlier.cause
                ),
                ..earlier
            });
        }
        if file_is_wal {
            return None;
        }
        let directory = store_core::files::parent_directory(&self.common.path);
        let failure = shared_memory_fails(&directory)?;
        let classified = classify_at(&failure, Stage::Journal, None);
        if classified.class != FailureClass::WalUnsupported || classified.transient {
            return None;
        }
        let fallback = Fallback {
            from: JournalMode::Wal,
            class: classified.class,
            cause: format!(
                "{failure}: {} (asked on a scratch file, before switching the database to WAL)",
                rusqlite::ffi::Error::new(extended_code(&failure).unwrap_or_default())
            ),
        };
        remember_wal_failure(&self.common.path, &fallback);
        Some(fallback)
    }

    /// Tries each rung in turn. `known_format`: whether the file is in WAL format, as the path
    /// check read it, which holds until a rung's attempt could have changed it: the first attempt
    /// reads nothing again (`None`: read the header). `wal_ruled_out`:
    /// [`wal_ruled_out`](Self::wal_ruled_out).
    pub(crate) fn walk_ladder(
        &self,
        ladder: &[JournalMode],
        known_format: Option<bool>,
        wal_ruled_out: Option<Fallback>,
        report: &mut OpenReport,
    ) -> Result<(Probed, JournalMode), OpenError> {
        let policy = &self.journal_policy;
        let mut known_format = known_format;
        let mut wal_ruled_out = wal_ruled_out;
        for (index, &mode) in ladder.iter().enumerate() {
            if mode == JournalMode::Wal
                && let Some(fallback) = wal_ruled_out.take()
            {
                self.warn_fallback(&report.label, &fallback, ladder[index + 1]);
                report.fallbacks.push(fallback);
                continue;
            }
            let (error, class) = match self.attempt_with_retries(mode, known_format.take()) {
                Ok(probed) => return Ok((probed, mode)),
                Err((JournalError::HeldExclusively { holder }, _)) => {
                    return Err(OpenError::HeldExclusively(ExclusivelyHeld {
                        path: self.common.path.clone(),
                        holder,
                    }));
                }
                Err(failure) => failure,
            };
            if !policy.falls_back_on(class) {
                return Err(OpenError::Journal {
                    path: self.common.path.clone(),
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
                    path: self.common.path.clone(),
                    policy: policy.name().to_owned(),
                    class,
                    attempts,
                    source: error,
                });
            };
            if mode == JournalMode::Wal && class == FailureClass::WalUnsupported {
                remember_wal_failure(&self.common.path, &fallback);
            }
            self.warn_fallback(&report.label, &fallback, next);
            report.fallbacks.push(fallback);
        }
        Err(OpenError::EmptyLadder {
            path: self.common.path.clone(),
            policy: policy.name().to_owned(),
        })
    }

    /// A WAL rung that failed after `journal_mode=WAL` took effect leaves the file in WAL format,
    /// which a filesystem without shared memory cannot even read. When the whole ladder failed,
    /// put a database that was not in WAL format back the way it was found.
    pub(crate) fn restore_rollback_format(&self) {
        let now_wal = matches!(
            FileContent::inspect_database(&self.common.path),
            Ok(FileContent::Sqlite { wal: true })
        );
        if !now_wal {
            return;
        }
        match self.attempt(JournalMode::Delete, None) {
            Ok(connection) => drop(connection),
            Err(error) => tracing::warn!(
                target: "store::sqlite",
                path = %self.common.path.display(),
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
                path = %self.common.path.display(),
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
                    let classified = classify_at(sqlite, Stage::Journal, Some(&self.common.path));
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
                FileContent::inspect_database(&self.common.path),
                Ok(FileContent::Sqlite { wal: true })
            )
        });
        let mut connection = Connection::open_with_flags(
            &self.common.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // A WAL database that another process (or connection) holds in exclusive locking mode
        // is said to be held at once, when the first lock is refused: every rung would only wait
        // out the busy timeout. Asked only then, so that an open nobody blocks pays nothing.
        let held = Arc::new(OnceLock::new());
        if file_is_wal {
            connection.busy_handler(Some(busy_wait_naming_holder(
                self.common.path.clone(),
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
        // A fresh connection takes its journal mode from the file: WAL from a file in WAL
        // format, DELETE (SQLite's default) from one in rollback format. That mode is not set
        // (a statement on every open, and a pragma some authorizers refuse) but checked after the
        // probe's read, from SQLite's own state: whether the read left a WAL open.
        let by_format = matches!(
            (mode, file_is_wal),
            (JournalMode::Wal, true) | (JournalMode::Delete, false)
        );
        let mut schema_version = None;
        if by_format || leaving_wal {
            // Leaving WAL, the read comes first too: before any read the pager answers its
            // default mode, and a `journal_mode=DELETE` it thinks already in force would change
            // nothing (the read goes through the WAL under exclusive locking, which needs no
            // shared memory).
            schema_version = Some(probe(&connection)?);
        }
        if !(by_format && holds_wal_open(&connection) == Some(mode.is_wal())) {
            set_journal_mode(&connection, mode)?;
            if leaving_wal {
                // Back to normal locking so that other processes can share the rollback
                // journal; the lock is released by the probe's read below.
                set_locking_mode(&connection, "normal")?;
            }
            // Proven again, in the mode set.
            schema_version = None;
        }
        let schema_version = match schema_version {
            Some(version) => version,
            None => probe(&connection)?,
        };
        let synchronous = synchronous_in_force(&connection, self.synchronous_for(mode))?;
        // The plain busy timeout from here on, for the connection's whole life.
        connection.busy_timeout(self.busy_timeout)?;
        Ok(Probed {
            connection,
            schema_version,
            synchronous,
        })
    }
}

/// Sets the journal mode and checks SQLite's answer.
fn set_journal_mode(connection: &Connection, mode: JournalMode) -> Result<(), JournalError> {
    let answered = match pragma_answer(
        connection,
        &format!("PRAGMA journal_mode={}", mode.pragma_value()),
    ) {
        Ok(answered) => answered,
        // An authorizer refusing the pragma (some sandboxes and FUSE front-ends) refuses no mode
        // already in force: read what is (after a read of the file, which the pager's answer
        // needs).
        Err(refused) if extended_code(&refused) == Some(rusqlite::ffi::SQLITE_AUTH) => {
            probe(connection)?;
            let current = pragma_answer(connection, "PRAGMA journal_mode")?;
            if !current.eq_ignore_ascii_case(mode.pragma_value()) {
                return Err(refused.into());
            }
            current
        }
        Err(error) => return Err(error.into()),
    };
    if !answered.eq_ignore_ascii_case(mode.pragma_value()) {
        return Err(JournalError::NotTaken {
            asked: mode,
            answered,
        });
    }
    Ok(())
}

/// Whether the connection holds a WAL open, from SQLite's own state: the journal file it names
/// (`SQLITE_FCNTL_JOURNAL_POINTER`) is the WAL's while one is open, else the rollback journal's,
/// which no read opens (`None` where SQLite does not answer). After a read, that is the journal
/// mode in force, WAL or rollback, without a statement.
fn holds_wal_open(connection: &Connection) -> Option<bool> {
    let mut journal: *mut rusqlite::ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: the handle is this live connection's, used on this thread only; the file control
    // writes one pointer to a file object SQLite owns, only read here while the connection lives.
    unsafe {
        let code = rusqlite::ffi::sqlite3_file_control(
            connection.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_JOURNAL_POINTER,
            (&raw mut journal).cast(),
        );
        if code != rusqlite::ffi::SQLITE_OK || journal.is_null() {
            return None;
        }
        Some(!(*journal).pMethods.is_null())
    }
}

/// A read that proves the journal mode works (a read through the mode's locks and, in WAL, its
/// shared memory), answering on the way the schema version the open's migrations start from:
/// one statement where the database has store's `schema_version` table, as every database store
/// creates does (each statement of an open costs about as much as all of store's own work).
pub(crate) fn probe(connection: &Connection) -> rusqlite::Result<u32> {
    // `max` of the primary key: one seek to the last row, no aggregate over the table.
    let in_one_read = connection.query_row("SELECT max(version) FROM schema_version", [], |row| {
        row.get::<_, Option<u32>>(0)
    });
    match in_one_read {
        Ok(version) => Ok(version.unwrap_or(0)),
        // No `schema_version` table (a database store did not create), or the read failed: the
        // long way, whose first statement reads `sqlite_schema` and fails as the read failed.
        Err(_) => migrate::schema_version(connection),
    }
}

/// Puts the `synchronous` level asked for in force and answers what SQLite then says (0 to 3 for
/// off to extra), read back after the probe's read (which applies the mode's default). SQLite's
/// default is not set again: asked for, it costs the read alone.
fn synchronous_in_force(connection: &Connection, asked: Synchronous) -> rusqlite::Result<i64> {
    /// SQLite's default in every journal mode in this build: libsqlite3-sys's bundled SQLite
    /// sets neither `SQLITE_DEFAULT_SYNCHRONOUS` nor `SQLITE_DEFAULT_WAL_SYNCHRONOUS` (FULL both).
    /// Only a saving: a connection that answers otherwise is set and read again.
    const SQLITE_DEFAULT: Synchronous = Synchronous::Full;
    let read = || connection.query_row("PRAGMA synchronous", [], |row| row.get(0));
    let set = || connection.pragma_update(None, "synchronous", asked.as_str());
    if asked != SQLITE_DEFAULT {
        set()?;
        return read();
    }
    let answered = read()?;
    if Synchronous::from_level(answered) == Some(asked) {
        return Ok(answered);
    }
    set()?;
    read()
}

/// A connection whose journal mode a read proved, and what that read found.
pub(crate) struct Probed {
    pub(crate) connection: Connection,
    pub(crate) schema_version: u32,
    pub(crate) synchronous: i64,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Promise: SQLite's own state tells the journal mode a read left in force, WAL or rollback,
    /// which the open checks instead of running a pragma.
    #[test]
    fn a_read_leaves_a_wal_open_only_in_wal_mode() -> Result<(), Box<dyn std::error::Error>> {
        let directory = tempfile::tempdir()?;
        for (mode, wal) in [("wal", true), ("delete", false), ("truncate", false)] {
            let path = directory.path().join(format!("{mode}.db"));
            let connection = Connection::open(&path)?;
            connection.query_row(&format!("PRAGMA journal_mode={mode}"), [], |_| Ok(()))?;
            connection.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")?;
            drop(connection);
            let connection = Connection::open(&path)?;
            connection.query_row("SELECT count(*) FROM t", [], |_| Ok(()))?;
            assert_eq!(holds_wal_open(&connection), Some(wal), "{mode}");
        }
        Ok(())
    }
}
