//! What several sections share: the scratch directory, the raw SQLite open, DuckDB databases to
//! measure on, the `cp` baseline of the snapshot figures, and spawning a measurement child.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use store_core::{Migration, Migrations};
use store_duckdb::DuckDbOptions;

use super::child::BenchChild;

pub(super) type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// xtask's directory in the clone that ran `cargo xtask`, read when it runs: `.ci/run` shares one
/// target directory between clones, so this binary may have been compiled in another clone, and
/// a path compiled in (`env!`) would point there. The current directory when run directly.
pub(super) fn package_directory() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| ".".into(), Into::into)
}

/// A scratch directory on the disk the project lives on, not a tmpfs: fsync is the cost that
/// matters.
pub(super) fn scratch() -> BenchResult<tempfile::TempDir> {
    Ok(tempfile::tempdir_in(package_directory())?)
}

/// The filesystem type a path is on, as the mount table names it (`ext4`).
pub(super) fn filesystem_of(path: &Path) -> String {
    store_core::Filesystem::detect(path).map_or_else(
        |error| format!("unknown ({error})"),
        |found| found.type_name,
    )
}

/// What store sets for a journal mode, done by hand: the baseline of a SQLite open.
/// `rusqlite::Connection::open`, a 5 s busy timeout, `journal_mode`, `synchronous`, and a read
/// of `sqlite_schema` (store proves the mode by a read).
pub(super) fn raw_sqlite_open(
    path: &Path,
    mode: &str,
    synchronous: &str,
) -> BenchResult<rusqlite::Connection> {
    let connection = rusqlite::Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(5))?;
    let answered: String =
        connection.query_row(&format!("PRAGMA journal_mode={mode}"), [], |row| row.get(0))?;
    assert!(
        answered.eq_ignore_ascii_case(mode),
        "journal mode {answered}"
    );
    connection.pragma_update(None, "synchronous", synchronous)?;
    connection.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
    Ok(connection)
}

/// Writes back everything dirty, so that a run's fsync pays only for its own writes and not for
/// what the run before it (or the file's creation) left behind. Not timed.
pub(super) fn settle() -> BenchResult<()> {
    if Command::new("sync").status()?.success() {
        Ok(())
    } else {
        Err("sync failed".into())
    }
}

/// The baseline of every snapshot figure, in milliseconds: `cp --reflink=never SOURCE TARGET`
/// (coreutils' cp clones by default where the filesystem can, so plain `cp` is no copy), then
/// `sync -f TARGET` (syncfs of TARGET's filesystem: its data, its directory entry, the journal).
/// Called after [`settle`], so that the syncfs finds nothing of anyone else's to write.
pub(super) fn copy_with_cp(source: &Path, target: &Path) -> BenchResult<f64> {
    let started = Instant::now();
    let copied = Command::new("cp")
        .arg("--reflink=never")
        .arg(source)
        .arg(target)
        .status()?;
    let synced = Command::new("sync").arg("-f").arg(target).status()?;
    let elapsed = started.elapsed();
    if !copied.success() || !synced.success() {
        return Err(format!("cp or sync of {} failed", target.display()).into());
    }
    Ok(elapsed.as_secs_f64() * 1000.0)
}

/// Runs a measurement child and reads the one JSON value it prints.
pub(super) fn child_output<T: DeserializeOwned>(child: &BenchChild) -> BenchResult<T> {
    let output = Command::new(std::env::current_exe()?)
        .args(child.arguments())
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "bench child {child:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    serde_json::from_slice(&output.stdout).map_err(|error| {
        format!(
            "bench child {child:?} printed {:?}: {error}",
            String::from_utf8_lossy(&output.stdout)
        )
        .into()
    })
}

/// The DuckDB figures' schema, up to `versions`.
pub(super) fn schema(versions: u32) -> Migrations {
    let all = [
        Migration::new(
            1,
            "events",
            "CREATE TABLE events (id INTEGER PRIMARY KEY, body VARCHAR NOT NULL)",
        ),
        Migration::new(
            2,
            "events kind",
            "ALTER TABLE events ADD COLUMN kind VARCHAR",
        ),
    ];
    Migrations::new(all.into_iter().take(versions as usize).collect()).expect("valid migrations")
}

/// A DuckDB database made by store at `versions`, with `rows` events, closed (checkpointed).
pub(super) fn duckdb_database(path: &Path, versions: u32, rows: u32) -> BenchResult<()> {
    let (connection, _) = DuckDbOptions::new(path)
        .migrations(schema(versions))
        .open()?;
    connection.execute_batch(&format!(
        "INSERT INTO events (id, body) SELECT range, 'event ' || range FROM range({rows})"
    ))?;
    drop(connection);
    Ok(())
}

/// Copies a DuckDB database with its WAL and pre-migration snapshot, where they exist.
pub(super) fn copy_database(from: &Path, to: &Path) -> BenchResult<()> {
    for suffix in ["", ".wal", store_duckdb::SNAPSHOT_SUFFIX] {
        let source = store_core::files::sibling(from, suffix);
        if source.exists() {
            std::fs::copy(&source, store_core::files::sibling(to, suffix))?;
        }
    }
    Ok(())
}
