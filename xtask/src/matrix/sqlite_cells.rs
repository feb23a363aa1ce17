//! The SQLite cells' body: a database of [`ROWS_BEFORE`] rows, the cell's fault, an open through
//! store under the cell's journal policy, and what the open left.

use std::path::Path;
use std::time::Duration;

use store_core::{Engine, JournalLadder, JournalMode, Migration, Migrations};
use store_sqlite::SqliteOptions;
use store_testkit::DirectorySnapshot;
use store_testkit::faults::mounts;
use store_testkit::faults::sqlite::{SqliteFault, commit_failures_injected};

use super::cells::{Cell, MatrixFault, MatrixPolicy, ROWS_BEFORE};
use super::error::{CellError, fault_or_skip};
use super::finish::{Opening, Prepared, finish};
use super::kill::{KillPlan, run_killed_migration};
use super::observe::{Check, CheckKind, Observed, required_rows};
use super::schema::sqlite_migrations;
use crate::oracle::{Ledger, Place};

/// The database file of a SQLite cell.
const SQLITE_FILE: &str = "cell.db";
/// The tmpfs of the disk-full cell: the migration's megabyte of ballast cannot fit.
const SMALL_DISK_BYTES: u64 = 256 * 1024;

/// What a SQLite cell's fault asks of its setup, decided in one exhaustive match.
#[derive(Debug, Default)]
struct Setup {
    /// Mount a tmpfs this small on the directory first, and fill it by a migration.
    small_disk_bytes: Option<u64>,
    /// The database is in WAL format before the fault.
    existing_wal: bool,
    /// Kill a migrating child before the open.
    kill: Option<KillPlan>,
    /// Remount the directory read-only before the open.
    read_only: bool,
    /// Hold an exclusive transaction on another connection during the open.
    another_writer: bool,
    /// The process-global SQLite fault installed during the open.
    injected: Option<SqliteFault>,
}

impl Setup {
    fn of(fault: MatrixFault) -> Result<Setup, CellError> {
        let injected = |fault| Setup {
            injected: Some(fault),
            ..Setup::default()
        };
        let setup = match fault {
            MatrixFault::None => Setup::default(),
            MatrixFault::LockProtocol => injected(SqliteFault::LockProtocol),
            MatrixFault::NoSharedMemory => injected(SqliteFault::NoSharedMemory),
            MatrixFault::NoSharedMemoryExistingWal => Setup {
                existing_wal: true,
                ..injected(SqliteFault::NoSharedMemory)
            },
            MatrixFault::NoLocks => injected(SqliteFault::NoLocks),
            MatrixFault::JournalPragmaDenied => injected(SqliteFault::JournalPragmaDenied),
            MatrixFault::CommitIoErrorOnce => {
                injected(SqliteFault::CommitIoError { skip: 0, fail: 1 })
            }
            MatrixFault::CommitIoError => injected(SqliteFault::CommitIoError {
                skip: 0,
                fail: 1000,
            }),
            MatrixFault::AnotherWriter => Setup {
                another_writer: true,
                ..Setup::default()
            },
            MatrixFault::DiskFull => Setup {
                small_disk_bytes: Some(SMALL_DISK_BYTES),
                ..Setup::default()
            },
            MatrixFault::ReadOnlyFilesystem => Setup {
                read_only: true,
                ..Setup::default()
            },
            MatrixFault::KilledInsideMigration | MatrixFault::KilledMidMigration => Setup {
                kill: KillPlan::of(fault),
                ..Setup::default()
            },
            MatrixFault::KilledMidMigrationWalGarbage
            | MatrixFault::WalGarbage
            | MatrixFault::WalFlippedByte
            | MatrixFault::WalFlippedByteSeeded
            | MatrixFault::TornWalTail
            | MatrixFault::ForeignWal
            | MatrixFault::LockedByProcess => {
                return Err(CellError::Setup(format!("{fault} is a DuckDB fault")));
            }
        };
        Ok(setup)
    }
}

/// Whether the commit fault fired: exactly once where it fails one commit, and then the open
/// logged its retry (the outcome of an absorbed fault is the no-fault one, which proves nothing
/// alone); at least once where it fails every commit.
fn commit_fault_fired(
    planned_failures: u32,
    events: &[store_testkit::logs::CapturedEvent],
) -> Check {
    let injected = commit_failures_injected();
    let retries = events
        .iter()
        .filter(|event| {
            event.target == "store::sqlite"
                && event.text.contains("transient I/O error")
                && event.text.contains("retrying")
        })
        .count();
    let holds = if planned_failures == 1 {
        injected == 1 && retries == 1
    } else {
        injected >= 1
    };
    Check::new(
        CheckKind::FaultFired,
        holds,
        format!(
            "{injected} commit(s) failed of {planned_failures} planned; {retries} retry logged"
        ),
    )
}

/// The journal ladder of a cell's policy.
fn journal_ladder(policy: MatrixPolicy) -> Result<JournalLadder, CellError> {
    match policy {
        MatrixPolicy::Default => Ok(JournalLadder::default()),
        MatrixPolicy::SingleProcess => Ok(JournalLadder::single_process()),
        MatrixPolicy::StrictWal => Ok(JournalLadder::strict(JournalMode::Wal)),
        MatrixPolicy::Converting => Ok(JournalLadder::default().converting_existing_wal(true)),
        MatrixPolicy::DiscardOnly | MatrixPolicy::SnapshotOnly | MatrixPolicy::Strict => Err(
            CellError::Setup(format!("{policy} is a DuckDB recovery policy")),
        ),
    }
}

/// Runs a SQLite cell in `directory`.
pub(super) fn run(cell: &Cell, directory: &Path) -> Result<Observed, CellError> {
    let setup = Setup::of(cell.fault)?;
    let policy = journal_ladder(cell.policy)?;
    if let Some(bytes) = setup.small_disk_bytes {
        fault_or_skip(mounts::mount_small_tmpfs(directory, bytes))?;
    }
    let path = directory.join(SQLITE_FILE);
    {
        let connection = rusqlite::Connection::open(&path)?;
        if setup.existing_wal {
            connection.pragma_update(None, "journal_mode", "wal")?;
        }
    }
    store_testkit::write_rows(Engine::Sqlite, &path, ROWS_BEFORE as u32)?;
    // The fixture's ids start at 1; every row is in the database file (or SQLite's own WAL,
    // which no loss of store's names).
    let mut ledger = Ledger::default();
    for id in 1..=ROWS_BEFORE {
        ledger.acknowledge(id, Place::DatabaseFile);
    }
    let mut checks = Vec::new();
    if let Some(plan) = setup.kill {
        run_killed_migration(Engine::Sqlite, &path, plan, &mut checks)?;
    }
    if setup.read_only {
        fault_or_skip(mounts::remount_read_only(directory))?;
    }
    let holder = if setup.another_writer {
        let holder = rusqlite::Connection::open(&path)?;
        holder.execute_batch("BEGIN EXCLUSIVE")?;
        Some(holder)
    } else {
        None
    };
    let mut options = SqliteOptions::new(&path)
        .journal_policy(policy)
        .busy_timeout(Duration::from_millis(100));
    if let Some(plan) = setup.kill {
        options = options.migrations(sqlite_migrations(plan.latest_version()));
    } else if setup.small_disk_bytes.is_some() {
        options = options.migrations(Migrations::new(vec![Migration::new(
            1,
            "fill the disk",
            "CREATE TABLE ballast (data BLOB); INSERT INTO ballast VALUES (zeroblob(1048576))",
        )])?);
    }
    let before = DirectorySnapshot::take(directory)?;
    let guard = fault_or_skip(setup.injected.map(SqliteFault::install).transpose())?;
    let (opening, events) = store_testkit::logs::capture(|| match options.open() {
        Ok((connection, report)) => {
            drop(connection);
            Opening::of(&report)
        }
        Err(error) => Opening::refused(error.class(), Vec::new(), error.cause_chain()),
    });
    if let Some(SqliteFault::CommitIoError { fail, .. }) = setup.injected {
        checks.push(commit_fault_fired(fail, &events));
    }
    drop(guard);
    drop(holder);
    let after = DirectorySnapshot::take(directory)?;
    let prepared = Prepared {
        engine: Engine::Sqlite,
        required: required_rows(cell.keep, &ledger, None),
        path,
        ledger,
        kill: setup.kill,
        checks,
    };
    Ok(finish(cell, prepared, &before, &after, opening))
}
