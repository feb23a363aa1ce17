//! The DuckDB cells' body: a database of [`ROWS_BEFORE`] rows (the last [`DUCKDB_WAL_ROWS`] only
//! in the WAL, each in the ledger with where its commit ends), the cell's damage, an open through
//! store under the cell's recovery policy, and what the open left. Also the lock holder's child,
//! `xtask __matrix-hold-lock`.

use std::path::Path;
use std::process::{Command, ExitCode};

use store_core::{DataLoss, Engine, Migration, Migrations, RecoveryLadder, RecoveryStep};
use store_duckdb::DuckDbOptions;
use store_testkit::DirectorySnapshot;
use store_testkit::faults::duckdb as duckdb_faults;
use store_testkit::faults::mounts;

use super::cells::{Cell, Keep, MatrixFault, MatrixPolicy, Outcome, ROWS_BEFORE};
use super::error::{CellError, fault_or_skip};
use super::finish::{Opening, Prepared, finish};
use super::kill::{KillPlan, run_killed_migration};
use super::observe::{Check, CheckKind, Observed, required_rows};
use super::schema::{duckdb_migrations, duckdb_schema};
use crate::oracle::{Ledger, Place};

/// Of the rows before the fault, this many live only in the WAL (committed after the last
/// checkpoint).
const DUCKDB_WAL_ROWS: u32 = 20;
/// Of which, in the snapshot cells, this many stand when the pre-migration snapshot is taken: at
/// least 50, so that a restore to an empty (or a much older) database cannot pass.
const SNAPSHOT_ROWS: u32 = 60;
/// The seeded-damage cell's WAL: this many single-row commits...
const SEEDED_WAL_COMMITS: u32 = 1_000;
/// ...damaged at this many seeded offsets, each on a fresh copy of the database and its WAL.
const SEEDED_DAMAGE_CASES: u32 = 20;
/// The seed of those offsets: fixed, so that a failing case can be run again.
const SEEDED_DAMAGE_SEED: u64 = 18;
/// The database file of a DuckDB cell.
pub(super) const DUCKDB_FILE: &str = "cell.duckdb";
/// The tmpfs of the disk-full cell: the migration's 30 MB of ballast cannot fit.
const SMALL_DISK_BYTES: u64 = 4 * 1024 * 1024;

/// What a cell does to the WAL before the open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum WalDamage {
    #[default]
    None,
    /// Garbage after the last commit.
    Garbage,
    /// One byte flipped inside the 11th commit: the 10 before it must survive.
    FlippedByte,
    /// Cut inside the 16th commit.
    Torn,
    /// Another database's WAL in its place.
    Foreign,
    /// The seeded-damage cell: a WAL of its own, flipped at seeded offsets on copies.
    SeededFlips,
}

/// What a DuckDB cell's fault asks of its setup, decided in one exhaustive match.
#[derive(Debug, Default)]
struct Setup {
    /// Mount a tmpfs this small on the directory first, and fill it by a migration.
    small_disk_bytes: Option<u64>,
    damage: WalDamage,
    /// Kill a migrating child before the open.
    kill: Option<KillPlan>,
    /// Append garbage to the WAL after the kill.
    garbage_after_kill: bool,
    /// Remount the directory read-only before the open.
    read_only: bool,
    /// Hold the database open in another process during the open.
    lock_holder: bool,
}

impl Setup {
    fn of(fault: MatrixFault) -> Result<Setup, CellError> {
        let damage = |damage| Setup {
            damage,
            ..Setup::default()
        };
        let setup = match fault {
            MatrixFault::None => Setup::default(),
            MatrixFault::DiskFull => Setup {
                small_disk_bytes: Some(SMALL_DISK_BYTES),
                ..Setup::default()
            },
            MatrixFault::ReadOnlyFilesystem => Setup {
                read_only: true,
                ..Setup::default()
            },
            MatrixFault::LockedByProcess => Setup {
                lock_holder: true,
                ..Setup::default()
            },
            MatrixFault::WalGarbage => damage(WalDamage::Garbage),
            MatrixFault::WalFlippedByte => damage(WalDamage::FlippedByte),
            MatrixFault::WalFlippedByteSeeded => damage(WalDamage::SeededFlips),
            MatrixFault::TornWalTail => damage(WalDamage::Torn),
            MatrixFault::ForeignWal => damage(WalDamage::Foreign),
            MatrixFault::KilledInsideMigration | MatrixFault::KilledMidMigration => Setup {
                kill: KillPlan::of(fault),
                ..Setup::default()
            },
            MatrixFault::KilledMidMigrationWalGarbage => Setup {
                kill: KillPlan::of(fault),
                garbage_after_kill: true,
                ..Setup::default()
            },
            MatrixFault::LockProtocol
            | MatrixFault::NoSharedMemory
            | MatrixFault::NoSharedMemoryExistingWal
            | MatrixFault::NoLocks
            | MatrixFault::JournalPragmaDenied
            | MatrixFault::CommitIoErrorOnce
            | MatrixFault::CommitIoError
            | MatrixFault::AnotherWriter => {
                return Err(CellError::Setup(format!("{fault} is a SQLite fault")));
            }
        };
        Ok(setup)
    }
}

/// The recovery ladder of a cell's policy.
fn recovery_ladder(policy: MatrixPolicy) -> Result<RecoveryLadder, CellError> {
    match policy {
        MatrixPolicy::Default => Ok(RecoveryLadder::default()),
        MatrixPolicy::SnapshotOnly => Ok(RecoveryLadder::snapshot_only()),
        MatrixPolicy::DiscardOnly => Ok(RecoveryLadder::new(
            "discard-only",
            vec![RecoveryStep::DiscardWal],
        )),
        MatrixPolicy::Strict => Ok(RecoveryLadder::strict()),
        MatrixPolicy::StrictWal | MatrixPolicy::SingleProcess | MatrixPolicy::Converting => Err(
            CellError::Setup(format!("{policy} is a SQLite journal policy")),
        ),
    }
}

/// Writes `checkpointed` rows (then a checkpoint) and `in_wal` more, one commit each, that live
/// only in the WAL, entering each in the ledger; returns where each WAL commit ends.
fn write_duckdb_rows(
    path: &Path,
    ledger: &mut Ledger,
    checkpointed: u32,
    in_wal: u32,
) -> Result<Vec<u64>, CellError> {
    // The fixture continues from the largest id present, as the ledger does.
    let next_id = ledger.rows().last().map_or(1, |row| row.id + 1);
    let commit_ends = duckdb_faults::write_uncheckpointed_rows(path, checkpointed, in_wal)?;
    for id in next_id..next_id + u64::from(checkpointed) {
        ledger.acknowledge(id, Place::DatabaseFile);
    }
    ledger.checkpoint();
    let first_in_wal = next_id + u64::from(checkpointed);
    for (offset, end) in commit_ends.iter().enumerate() {
        ledger.acknowledge(
            first_in_wal + offset as u64,
            Place::Wal {
                end_bytes: Some(*end),
            },
        );
    }
    Ok(commit_ends)
}

/// The snapshot cells' history: [`SNAPSHOT_ROWS`] rows, then a pending migration whose
/// pre-migration snapshot holds exactly them, then more rows (checkpointed, then in the WAL) that
/// only the live database holds. Returns where each WAL commit ends.
fn snapshot_history(path: &Path, ledger: &mut Ledger) -> Result<Vec<u64>, CellError> {
    drop(
        DuckDbOptions::new(path)
            .migrations(duckdb_migrations(2))
            .open()?,
    );
    write_duckdb_rows(path, ledger, SNAPSHOT_ROWS, 0)?;
    let (connection, report) = DuckDbOptions::new(path)
        .migrations(duckdb_schema())
        .open()?;
    drop(connection);
    if report.snapshot.is_none() {
        return Err(CellError::Setup(format!(
            "the pending migration took no snapshot: {report}"
        )));
    }
    ledger.snapshot();
    let after_snapshot = ROWS_BEFORE as u32 - SNAPSHOT_ROWS - DUCKDB_WAL_ROWS;
    write_duckdb_rows(path, ledger, after_snapshot, DUCKDB_WAL_ROWS)
}

/// Runs a DuckDB cell in `directory`.
pub(super) fn run(cell: &Cell, directory: &Path) -> Result<Observed, CellError> {
    let setup = Setup::of(cell.fault)?;
    // Another engine's policy fails the cell before any work.
    recovery_ladder(cell.policy)?;
    if setup.damage == WalDamage::SeededFlips {
        return seeded_damage_cell(cell, directory, &setup);
    }
    if let Some(bytes) = setup.small_disk_bytes {
        fault_or_skip(mounts::mount_small_tmpfs(directory, bytes))?;
    }
    let path = directory.join(DUCKDB_FILE);
    let mut ledger = Ledger::default();
    let commit_ends = if cell.keep == Keep::Snapshot {
        snapshot_history(&path, &mut ledger)?
    } else {
        let first_schema = if setup.kill.is_some() {
            duckdb_migrations(2)
        } else {
            duckdb_schema()
        };
        drop(DuckDbOptions::new(&path).migrations(first_schema).open()?);
        let checkpointed = ROWS_BEFORE as u32 - DUCKDB_WAL_ROWS;
        write_duckdb_rows(&path, &mut ledger, checkpointed, DUCKDB_WAL_ROWS)?
    };
    let mut checks = Vec::new();
    let mut damage_at_wal_byte = None;
    match setup.damage {
        WalDamage::None => {}
        WalDamage::Garbage => duckdb_faults::append_garbage_to_wal(&path)?,
        WalDamage::FlippedByte => {
            // Damage the 11th WAL commit: the 10 before it must survive.
            let damage = commit_ends[9] + 20;
            duckdb_faults::flip_wal_byte(&path, damage)?;
            damage_at_wal_byte = Some(damage);
        }
        WalDamage::Torn => {
            let cut = commit_ends[14] + 7;
            duckdb_faults::truncate_wal(&path, cut)?;
            damage_at_wal_byte = Some(cut);
        }
        WalDamage::Foreign => {
            let other = directory.join("other.duckdb");
            duckdb_faults::write_uncheckpointed_rows(&other, 1, 3)?;
            duckdb_faults::replace_wal_with_foreign(&path, &other)?;
        }
        WalDamage::SeededFlips => unreachable!("the seeded cell has a body of its own"),
    }
    if let Some(plan) = setup.kill {
        run_killed_migration(Engine::Duckdb, &path, plan, &mut checks)?;
        // The migrating child checkpointed before its snapshot: every row is in the file now.
        ledger.checkpoint();
        if setup.garbage_after_kill {
            duckdb_faults::append_garbage_to_wal(&path)?;
        }
    }
    let required = required_rows(cell.keep, &ledger, damage_at_wal_byte);
    let prepared = Prepared {
        engine: Engine::Duckdb,
        path,
        ledger,
        required,
        kill: setup.kill,
        checks,
    };
    let (mut observed, loss) = open_case(cell, directory, &setup, prepared)?;
    // A salvage of damage at a known byte reports its loss from the end of the last commit before
    // it: a loss reported from byte 0 would pass the row count (the rows before the damage are
    // still read) and must not pass the cell.
    if let Some(damage) = damage_at_wal_byte
        && cell.expected == Outcome::Recovered(RecoveryStep::SalvageWal)
    {
        observed
            .checks
            .push(loss_boundary_check(&commit_ends, damage, loss.as_ref(), ""));
    }
    Ok(observed)
}

/// Whether the reported loss starts exactly where the last commit ending at or before `damage`
/// ends (no commit ends inside an entry, so that is the last one before the damaged entry, and
/// the salvage's cut).
fn loss_boundary_check(
    commit_ends: &[u64],
    damage: u64,
    loss: Option<&DataLoss>,
    case: &str,
) -> Check {
    let cut = commit_ends
        .iter()
        .copied()
        .filter(|end| *end <= damage)
        .max();
    let reported = match loss {
        Some(
            DataLoss::CommitsAfterWalByte { byte_offset }
            | DataLoss::DroppedWalTail { byte_offset, .. },
        ) => Some(*byte_offset),
        _ => None,
    };
    Check::new(
        CheckKind::LossBoundary,
        cut.is_some() && reported == cut,
        format!(
            "{case}byte {damage} damaged; the last commit before it ends at {cut:?}; the report's \
             loss starts at {reported:?}"
        ),
    )
}

/// The seeded-damage cell: a WAL of [`SEEDED_WAL_COMMITS`] commits, one byte flipped at each of
/// [`SEEDED_DAMAGE_CASES`] seeded offsets, each on a copy of its own in `case-K/`, each opened and
/// judged as a cell of its own; the observations add up (rows summed, checks and moved files
/// joined), and an outcome other than the expected one in any case is the cell's.
fn seeded_damage_cell(cell: &Cell, directory: &Path, setup: &Setup) -> Result<Observed, CellError> {
    let original_directory = directory.join("original");
    std::fs::create_dir(&original_directory)?;
    let original = original_directory.join(DUCKDB_FILE);
    let mut ledger = Ledger::default();
    drop(
        DuckDbOptions::new(&original)
            .migrations(duckdb_schema())
            .open()?,
    );
    let checkpointed = ROWS_BEFORE as u32 - DUCKDB_WAL_ROWS;
    let commit_ends = write_duckdb_rows(&original, &mut ledger, checkpointed, SEEDED_WAL_COMMITS)?;
    let wal = std::fs::read(duckdb_faults::wal_path(&original))?;
    let first_end = commit_ends[0];
    let mut random = store_testkit::random::SplitMix64::new(SEEDED_DAMAGE_SEED);
    let mut merged: Option<Observed> = None;
    for case in 0..SEEDED_DAMAGE_CASES {
        // Past the first commit, so that there is always one to keep.
        let damage = first_end + random.below(wal.len() as u64 - first_end);
        let case_directory = directory.join(format!("case-{case}"));
        std::fs::create_dir(&case_directory)?;
        let path = case_directory.join(DUCKDB_FILE);
        std::fs::copy(&original, &path)?;
        std::fs::write(duckdb_faults::wal_path(&path), &wal)?;
        duckdb_faults::flip_wal_byte(&path, damage)?;
        let prepared = Prepared {
            engine: Engine::Duckdb,
            path,
            required: required_rows(cell.keep, &ledger, Some(damage)),
            ledger: ledger.clone(),
            kill: None,
            checks: Vec::new(),
        };
        let (mut observed, loss) = open_case(cell, &case_directory, setup, prepared)?;
        observed.checks.push(loss_boundary_check(
            &commit_ends,
            damage,
            loss.as_ref(),
            &format!("case {case}: "),
        ));
        observed.detail = format!("case {case} (byte {damage}): {}", observed.detail);
        merged = Some(match merged {
            None => observed,
            Some(so_far) => so_far.and(cell, observed),
        });
    }
    Ok(merged.expect("at least one case"))
}

/// Opens a prepared DuckDB case under the cell's fault and policy and judges what it finds;
/// also returns the loss the report named.
fn open_case(
    cell: &Cell,
    directory: &Path,
    setup: &Setup,
    prepared: Prepared,
) -> Result<(Observed, Option<DataLoss>), CellError> {
    let policy = recovery_ladder(cell.policy)?;
    let path = prepared.path.clone();
    if setup.read_only {
        fault_or_skip(mounts::remount_read_only(directory))?;
    }
    let holder = if setup.lock_holder {
        let mut command = Command::new(std::env::current_exe()?);
        command.arg(HOLD_LOCK_COMMAND);
        Some(duckdb_faults::LockHolder::from_command(command, &path)?)
    } else {
        None
    };
    let migrations = match prepared.kill {
        Some(plan) => duckdb_migrations(plan.latest_version()),
        None => duckdb_schema(),
    };
    let mut options = DuckDbOptions::new(&path)
        .migrations(migrations)
        .recovery_policy(policy);
    if setup.small_disk_bytes.is_some() {
        let mut filling = duckdb_schema().all().to_vec();
        filling.push(Migration::new(
            4,
            "fill the disk",
            // Random hex does not compress away: about 30 MB for a 4 MiB disk.
            "CREATE TABLE ballast AS SELECT range AS id, md5(random()::VARCHAR) || md5(random()::VARCHAR) AS padding FROM range(500000)",
        ));
        options = options.migrations(Migrations::new(filling)?);
    }
    let before = DirectorySnapshot::take(directory)?;
    let opening = match options.open() {
        Ok((connection, report)) => {
            drop(connection);
            Opening::of(&report)
        }
        Err(error) => Opening::refused(
            error.class(),
            error.moved_aside().to_vec(),
            error.cause_chain(),
        ),
    };
    drop(holder);
    let after = DirectorySnapshot::take(directory)?;
    let loss = opening.loss.clone();
    Ok((finish(cell, prepared, &before, &after, opening), loss))
}

/// The hidden command of the lock holder's child.
pub(crate) const HOLD_LOCK_COMMAND: &str = "__matrix-hold-lock";

/// `xtask __matrix-hold-lock`: holds a DuckDB database open until killed.
pub(crate) fn hold_lock() -> ExitCode {
    duckdb_faults::serve_lock_holder();
    eprintln!("{HOLD_LOCK_COMMAND} needs the lock holder's environment");
    ExitCode::from(2)
}
