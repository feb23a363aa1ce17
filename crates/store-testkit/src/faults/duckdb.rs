//! DuckDB faults: real damage to a real write-ahead log, a lock held by another process, and a
//! process killed at a named step of store's open.
//!
//! DuckDB checkpoints its WAL into the database when the last connection closes, so a WAL to
//! damage is left by [`write_uncheckpointed_rows`] (checkpointing switched off, as a killed
//! process leaves it) or by a child killed with [`crate::crash::kill_at`].

use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

use store_core::files::sibling;

use crate::child;

/// The WAL of `database`: `<database>.wal`.
pub fn wal_path(database: &Path) -> PathBuf {
    sibling(database, ".wal")
}

/// Creates [`crate::ITEMS_TABLE`] if needed, commits `checkpointed` rows and checkpoints, then
/// commits `uncheckpointed` more rows one per transaction and closes without checkpointing: the
/// last rows exist only in the WAL, as after a crash. Returns the WAL's size after each of those
/// commits (the byte offset where each commit ends).
pub fn write_uncheckpointed_rows(
    database: &Path,
    checkpointed: u32,
    uncheckpointed: u32,
) -> Result<Vec<u64>, duckdb::Error> {
    let connection = duckdb::Connection::open(database)?;
    // Keep everything in the WAL: no automatic checkpoint, none at shutdown.
    connection.execute_batch(
        "SET checkpoint_threshold = '1TB';
         PRAGMA disable_checkpoint_on_shutdown;",
    )?;
    connection.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {} (id INTEGER PRIMARY KEY, payload VARCHAR NOT NULL)",
        crate::ITEMS_TABLE
    ))?;
    let next_id: i64 = connection.query_row(
        &format!(
            "SELECT coalesce(max(id), 0) + 1 FROM {}",
            crate::ITEMS_TABLE
        ),
        [],
        |row| row.get(0),
    )?;
    let insert = format!(
        "INSERT INTO {} (id, payload) VALUES (?, ?)",
        crate::ITEMS_TABLE
    );
    for offset in 0..i64::from(checkpointed) {
        connection.execute(
            &insert,
            duckdb::params![next_id + offset, format!("row {}", next_id + offset)],
        )?;
    }
    connection.execute_batch("CHECKPOINT")?;
    let mut commit_ends = Vec::new();
    let wal = wal_path(database);
    for offset in 0..i64::from(uncheckpointed) {
        let id = next_id + i64::from(checkpointed) + offset;
        connection.execute(&insert, duckdb::params![id, format!("row {id}")])?;
        commit_ends.push(fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    drop(connection);
    Ok(commit_ends)
}

/// The checkpoint sidecar of `database`: `<database>.wal.checkpoint`, where DuckDB logs the
/// commits made while a checkpoint runs.
pub fn checkpoint_wal_path(database: &Path) -> PathBuf {
    sibling(database, ".wal.checkpoint")
}

/// A checkpoint interrupted while commits went to its sidecar, as a crash in the middle of a
/// checkpoint under concurrent writes leaves it (DuckDB's `StorageManager::WALStartCheckpoint`):
/// `checkpointed` rows in the file and `before` more committed in the WAL (as
/// [`write_uncheckpointed_rows`]), then a checkpoint that wrote its marker at the end of the WAL
/// and died before the database header (`debug_checkpoint_abort = 'before_header'`), and a
/// `.wal.checkpoint` sidecar holding `during` more single-row commits. DuckDB's next open merges
/// the two logs and replays both. Returns where each of the sidecar's commits ends in it.
///
/// The sidecar is made, not raced for: the same commits logged by a copy of the database whose
/// checkpoint succeeded, so its header carries the next checkpoint iteration and the database's
/// identifier, as the sidecar of the interrupted checkpoint would.
pub fn interrupted_checkpoint_with_sidecar(
    database: &Path,
    checkpointed: u32,
    before: u32,
    during: u32,
) -> Result<Vec<u64>, SidecarError> {
    write_uncheckpointed_rows(database, checkpointed, before)?;
    let scratch = tempfile::tempdir_in(database.parent().unwrap_or(Path::new(".")))?;
    let copy = scratch.path().join("copy.duckdb");
    fs::copy(database, &copy)?;
    fs::copy(wal_path(database), wal_path(&copy))?;
    // The copy checkpoints for real, then logs the sidecar's commits.
    let sidecar_commit_ends = write_uncheckpointed_rows(&copy, 0, during)?;
    let sidecar = fs::read(wal_path(&copy))?;
    let connection = duckdb::Connection::open(database)?;
    connection.execute_batch(
        "SET checkpoint_threshold = '1TB';
         PRAGMA disable_checkpoint_on_shutdown;
         SET debug_checkpoint_abort = 'before_header';",
    )?;
    let wal_before = fs::metadata(wal_path(database))?.len();
    if connection.execute_batch("CHECKPOINT").is_ok() {
        return Err(SidecarError::NotInterrupted(
            "the checkpoint did not abort before its header",
        ));
    }
    drop(connection);
    if fs::metadata(wal_path(database))?.len() <= wal_before {
        return Err(SidecarError::NotInterrupted(
            "the aborted checkpoint wrote no marker to the WAL",
        ));
    }
    fs::write(checkpoint_wal_path(database), sidecar)?;
    Ok(sidecar_commit_ends)
}

/// [`interrupted_checkpoint_with_sidecar`] could not make its files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SidecarError {
    /// DuckDB refused a step.
    #[error("duckdb refused a step of the interrupted checkpoint")]
    Engine(#[from] duckdb::Error),
    /// A file could not be copied, read or written.
    #[error("cannot make the interrupted checkpoint's files")]
    Io(#[from] io::Error),
    /// The checkpoint was not interrupted as it must be.
    #[error("{0}")]
    NotInterrupted(&'static str),
}

/// The bytes [`append_garbage_to_wal`] appends: 64 bytes of 0xFF.
pub const WAL_GARBAGE: [u8; 64] = [0xFF; 64];

/// The [`Fault::WalGarbage`](crate::faults::Fault::WalGarbage) fault: appends [`WAL_GARBAGE`] to
/// the WAL. DuckDB reads an entry size it cannot allocate and fails with "Failure while replaying
/// WAL file"; every commit before the garbage is intact, so salvage keeps them all.
pub fn append_garbage_to_wal(database: &Path) -> io::Result<()> {
    append_to_wal(database, &WAL_GARBAGE)
}

/// Appends `bytes` to the WAL, synced.
pub fn append_to_wal(database: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut wal = OpenOptions::new().append(true).open(wal_path(database))?;
    wal.write_all(bytes)?;
    wal.sync_all()
}

/// Flips every bit of the WAL byte at `offset`: the entry holding it fails its checksum
/// ("Corrupt WAL file: entry at byte position N").
pub fn flip_wal_byte(database: &Path, offset: u64) -> io::Result<()> {
    let path = wal_path(database);
    let mut bytes = fs::read(&path)?;
    let index = usize::try_from(offset)
        .ok()
        .filter(|index| *index < bytes.len())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "offset past the WAL's end"))?;
    bytes[index] = !bytes[index];
    fs::write(&path, bytes)
}

/// Cuts the WAL to `length` bytes: a torn tail, which DuckDB replays up to the cut, silently.
pub fn truncate_wal(database: &Path, length: u64) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(wal_path(database))?
        .set_len(length)
}

/// Puts the WAL of another database in place of this one's ("WAL does not match database file").
pub fn replace_wal_with_foreign(database: &Path, other_database: &Path) -> io::Result<()> {
    fs::copy(wal_path(other_database), wal_path(database)).map(drop)
}

/// The role a lock-holding child plays; see [`LockHolder`].
pub const HOLD_LOCK_ROLE: &str = "store-testkit-hold-duckdb-lock";
const HOLD_LOCK_DATABASE_ENV: &str = "STORE_TESTKIT_LOCK_DATABASE";
const LOCKED_LINE: &str = "store-testkit: lock held";

/// Another process holding a DuckDB database open, so that opens here fail with "Could not set
/// lock on file ... Conflicting lock is held". Killed when dropped.
#[derive(Debug)]
pub struct LockHolder {
    child: Child,
}

impl LockHolder {
    /// Re-executes the test `full_path` (see [`crate::child`]) as the lock holder for `database`
    /// and waits until it holds the lock. The test must call [`serve_lock_holder`] first thing.
    pub fn spawn(full_path: &str, database: &Path) -> io::Result<LockHolder> {
        LockHolder::from_command(child::test_command(full_path), database)
    }

    /// Runs `command` as the lock holder for `database` and waits until it holds the lock. The
    /// program `command` runs must call [`serve_lock_holder`] before anything else.
    pub fn from_command(mut command: Command, database: &Path) -> io::Result<LockHolder> {
        command
            .env(child::ROLE_ENV, HOLD_LOCK_ROLE)
            .env(HOLD_LOCK_DATABASE_ENV, database.as_os_str())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn()?;
        let stdout: ChildStdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("the lock holder has no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains(LOCKED_LINE) => break,
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Err(error),
                None => {
                    let status = child.wait()?;
                    return Err(io::Error::other(format!(
                        "the lock holder exited before holding the lock ({status})"
                    )));
                }
            }
        }
        Ok(LockHolder { child })
    }

    /// The holder's process id (DuckDB names it in its error).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In a lock-holder child: opens the database, says so, and holds it until killed. Elsewhere:
/// returns at once. Call it first thing in a test that spawns a [`LockHolder`].
pub fn serve_lock_holder() {
    if child::role().as_deref() != Some(HOLD_LOCK_ROLE) {
        return;
    }
    let database = std::env::var_os(HOLD_LOCK_DATABASE_ENV).expect("lock holder needs a database");
    let _connection = duckdb::Connection::open(&database).expect("lock holder opens the database");
    println!("{LOCKED_LINE}");
    let _ = io::stdout().flush();
    loop {
        std::thread::park();
    }
}
