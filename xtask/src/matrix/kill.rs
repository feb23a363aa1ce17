//! The killed cells: a migrating child process (`xtask __matrix-migrate-and-die PLAN ENGINE PATH`)
//! dies right after a migration commits or inside one, and the cell checks the files it left
//! (the version its commits imply, with exactly those migrations' effects) and store's reopen.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use store_core::Engine;
use store_core::files::sibling;
use store_duckdb::DuckDbOptions;
use store_sqlite::SqliteOptions;
use store_testkit::crash::{KillPoint, kill_at, was_killed};

use super::cells::MatrixFault;
use super::error::CellError;
use super::observe::{Check, CheckKind, sidecar_suffixes};
use super::schema::{
    SchemaState, duckdb_migrations, read_schema_state, schema_consistent, sqlite_migrations,
};
use crate::EngineArg;
use crate::names::named_enum;

named_enum! {
    /// Where a killed cell's migrating child dies.
    pub(crate) enum KillPlan: "kill plan" {
        /// SIGKILLed at store's own "migration applied" event for migration 3: its commit
        /// returned, and the checkpoint store makes after migrating never ran.
        AfterCommit => "after-commit",
        /// SIGKILLed by the cell once migration 4 (three statements, the second a long INSERT) has
        /// begun and its writes have reached the files, before its commit.
        Inside => "inside",
    }
}

/// The line a migrating child prints when migration `version` begins (`APPLYING 4`).
const APPLYING_LINE: &str = "APPLYING";
/// The line a migrating child prints when its open returned without being killed.
const OPENED_LINE: &str = "OPENED";

impl KillPlan {
    /// The plan of a cell's fault, if it kills.
    pub(super) fn of(fault: MatrixFault) -> Option<KillPlan> {
        match fault {
            MatrixFault::KilledMidMigration | MatrixFault::KilledMidMigrationWalGarbage => {
                Some(KillPlan::AfterCommit)
            }
            MatrixFault::KilledInsideMigration => Some(KillPlan::Inside),
            MatrixFault::None
            | MatrixFault::LockProtocol
            | MatrixFault::NoSharedMemory
            | MatrixFault::NoSharedMemoryExistingWal
            | MatrixFault::NoLocks
            | MatrixFault::JournalPragmaDenied
            | MatrixFault::CommitIoErrorOnce
            | MatrixFault::CommitIoError
            | MatrixFault::AnotherWriter
            | MatrixFault::DiskFull
            | MatrixFault::ReadOnlyFilesystem
            | MatrixFault::WalGarbage
            | MatrixFault::WalFlippedByte
            | MatrixFault::WalFlippedByteSeeded
            | MatrixFault::TornWalTail
            | MatrixFault::ForeignWal
            | MatrixFault::LockedByProcess => None,
        }
    }

    /// The migration the child dies in, or right after.
    fn migration(self) -> u32 {
        match self {
            KillPlan::AfterCommit => 3,
            KillPlan::Inside => 4,
        }
    }

    /// The schema the child and the reopen migrate to.
    pub(super) fn latest_version(self) -> u32 {
        self.migration()
    }

    /// The version the files hold after the kill: with the migration's commit, or without it.
    fn implied_version(self) -> u32 {
        match self {
            KillPlan::AfterCommit => self.migration(),
            KillPlan::Inside => self.migration() - 1,
        }
    }
}

/// `xtask __matrix-migrate-and-die PLAN ENGINE PATH`: migrates to the latest kill schema and dies
/// where the plan says.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct MigrateAndDie {
    /// `after-commit` or `inside`.
    plan: KillPlan,
    #[arg(value_enum)]
    engine: EngineArg,
    /// The database.
    path: PathBuf,
}

impl MigrateAndDie {
    /// The hidden command's name, as the parent spawns it.
    pub(crate) const COMMAND: &str = "__matrix-migrate-and-die";

    /// The command line that runs this child (after the executable).
    fn arguments(&self) -> Vec<std::ffi::OsString> {
        vec![
            Self::COMMAND.into(),
            self.plan.name().into(),
            self.engine.as_str().into(),
            self.path.clone().into(),
        ]
    }
}

/// The database and its sidecars.
fn family(engine: Engine, database: &Path) -> Vec<PathBuf> {
    std::iter::once(database.to_owned())
        .chain(
            sidecar_suffixes(engine)
                .iter()
                .map(|suffix| sibling(database, suffix)),
        )
        .collect()
}

/// The schema state of a copy of the database and its sidecars (SQLite's shared-memory index
/// left out: it is rebuilt), so that reading it replays nothing in the cell's own files.
fn schema_state_of_copy(engine: Engine, path: &Path) -> Result<SchemaState, CellError> {
    let scratch = tempfile::Builder::new()
        .prefix("store-matrix-copy-")
        .tempdir()?;
    let copy = scratch.path().join(path.file_name().unwrap_or_default());
    for file in family(engine, path) {
        if file.to_string_lossy().ends_with("-shm") || !file.exists() {
            continue;
        }
        let name = file.file_name().unwrap_or_default();
        std::fs::copy(&file, scratch.path().join(name))?;
    }
    read_schema_state(engine, &copy).map_err(CellError::Setup)
}

/// Runs the migrating child of a killed cell, lets it die where `plan` says, and checks the files
/// it left (from a copy): the version its commits imply, with exactly the effects of the
/// migrations up to it. A kill that landed after the commit it should have preceded is a setup
/// failure, never a pass.
pub(super) fn run_killed_migration(
    engine: Engine,
    path: &Path,
    plan: KillPlan,
    checks: &mut Vec<Check>,
) -> Result<(), CellError> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(
        MigrateAndDie {
            plan,
            engine: EngineArg::from(engine),
            path: path.to_owned(),
        }
        .arguments(),
    );
    let death = match plan {
        KillPlan::AfterCommit => {
            let status = command.status()?;
            if !was_killed(&status) {
                return Err(CellError::Setup(format!(
                    "the migrating child was not killed: {status}"
                )));
            }
            format!("killed as migration {} committed", plan.migration())
        }
        KillPlan::Inside => {
            let grown_bytes = kill_inside_migration(command, engine, path, plan.migration())?;
            format!(
                "killed inside migration {} once its files had grown by {grown_bytes} bytes",
                plan.migration()
            )
        }
    };
    let state = schema_state_of_copy(engine, path)?;
    let consistent = schema_consistent(engine, &state);
    if plan == KillPlan::Inside && state.version == plan.migration() && consistent.is_ok() {
        return Err(CellError::Setup(format!(
            "the kill landed after migration {} committed, not inside it",
            plan.migration()
        )));
    }
    let implied = plan.implied_version();
    let holds = state.version == implied && consistent.is_ok();
    checks.push(Check::new(
        CheckKind::SchemaAfterKill,
        holds,
        format!(
            "{death}: version {} ({implied} implied); {}",
            state.version,
            consistent
                .err()
                .unwrap_or_else(|| "effects consistent".into())
        ),
    ));
    Ok(())
}

/// Sums the sizes of the database's files.
fn family_bytes(engine: Engine, path: &Path) -> u64 {
    family(engine, path)
        .iter()
        .filter_map(|file| std::fs::metadata(file).ok())
        .map(|metadata| metadata.len())
        .sum()
}

/// Spawns the migrating child, waits until it says migration `version` began, then until the
/// database's files grow (the migration's writes have reached them), and SIGKILLs it. Returns by
/// how many bytes they had grown.
fn kill_inside_migration(
    mut command: Command,
    engine: Engine,
    path: &Path,
    version: u32,
) -> Result<u64, CellError> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| CellError::Setup("the migrating child has no stdout".into()))?;
    let (sender, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let applying = format!("{APPLYING_LINE} {version}");
    let mut finished = false;
    loop {
        match lines.recv_timeout(Duration::from_millis(5)) {
            Ok(line) if line == applying => break,
            Ok(line) if line.starts_with(OPENED_LINE) => {
                // Its start went unseen: kill anyway, and the files will say the commit landed.
                finished = true;
                break;
            }
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait()?;
                return Err(CellError::Setup(format!(
                    "the migrating child ended before migration {version} began: {status}"
                )));
            }
        }
        if let Some(status) = child.try_wait()? {
            return Err(CellError::Setup(format!(
                "the migrating child ended before migration {version} began: {status}"
            )));
        }
    }
    let baseline_bytes = family_bytes(engine, path);
    let mut now_bytes = baseline_bytes;
    while !finished && now_bytes <= baseline_bytes {
        if lines
            .try_recv()
            .is_ok_and(|line| line.starts_with(OPENED_LINE))
        {
            finished = true;
        }
        if let Some(status) = child.try_wait()? {
            return Err(CellError::Setup(format!(
                "the migrating child ended inside migration {version} without being killed: {status}"
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
        now_bytes = family_bytes(engine, path);
    }
    child.kill()?;
    let status = child.wait()?;
    if !was_killed(&status) {
        return Err(CellError::Setup(format!(
            "the migrating child was not killed: {status}"
        )));
    }
    Ok(now_bytes.saturating_sub(baseline_bytes))
}

/// After store's reopen of a killed cell: the latest version, with the effects of every
/// migration exactly once, and the reopen applied exactly those that had not committed.
pub(super) fn reopened_checks(
    engine: Engine,
    path: &Path,
    plan: KillPlan,
    reported_version: u32,
    applied: &[u32],
) -> Vec<Check> {
    let latest = plan.latest_version();
    let state = match read_schema_state(engine, path) {
        Ok(state) => state,
        Err(error) => {
            return vec![Check::new(
                CheckKind::SchemaAfterReopen,
                false,
                format!("cannot read the schema after the reopen: {error}"),
            )];
        }
    };
    let consistent = schema_consistent(engine, &state);
    let expected_applied: Vec<u32> = (plan.implied_version() + 1..=latest).collect();
    vec![
        Check::new(
            CheckKind::SchemaAfterReopen,
            reported_version == latest && state.version == latest && consistent.is_ok(),
            format!(
                "version {} (reported {reported_version}, latest {latest}); {}",
                state.version,
                consistent
                    .err()
                    .unwrap_or_else(|| "effects consistent".into())
            ),
        ),
        Check::new(
            CheckKind::MigrationsAppliedOnce,
            applied == expected_applied,
            format!("the reopen applied {applied:?}, expected {expected_applied:?}"),
        ),
    ]
}

/// Opens through store, migrating to `latest` of the kill schemas.
fn open_migrating(engine: Engine, path: &Path, latest: u32) -> Result<(), String> {
    match engine {
        Engine::Sqlite => SqliteOptions::new(path)
            .migrations(sqlite_migrations(latest))
            .open()
            .map(drop)
            .map_err(|error| error.cause_chain()),
        _ => DuckDbOptions::new(path)
            .migrations(duckdb_migrations(latest))
            .open()
            .map(drop)
            .map_err(|error| error.cause_chain()),
    }
}

/// Prints [`APPLYING_LINE`] once store logs that migration `version` begins.
fn announce_when_applying(version: u32) {
    let field = format!("version={version}");
    loop {
        let begun = store_testkit::logs::capture_process().iter().any(|event| {
            event.text.contains("applying migration")
                && event.text.split_whitespace().any(|word| word == field)
        });
        if begun {
            println!("{APPLYING_LINE} {version}");
            let _ = std::io::stdout().flush();
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The migrating child: SIGKILLed by itself right after migration 3 commits (before the
/// checkpoint that follows), or by the cell inside migration 4. The cell judges the files it
/// leaves.
pub(crate) fn migrate_and_die(arguments: MigrateAndDie) -> ExitCode {
    let MigrateAndDie { plan, engine, path } = arguments;
    let engine = Engine::from(engine);
    let latest = plan.latest_version();
    match plan {
        KillPlan::AfterCommit => {
            let result = kill_at(KillPoint::after_migration(3), || {
                open_migrating(engine, &path, latest)
            });
            eprintln!("survived the kill point: {result:?}");
            ExitCode::SUCCESS
        }
        KillPlan::Inside => {
            // Every thread's events from now on, so that a watcher sees the migration begin.
            let _ = store_testkit::logs::capture_process();
            let version = plan.migration();
            std::thread::spawn(move || announce_when_applying(version));
            match open_migrating(engine, &path, latest) {
                Ok(()) => {
                    println!("{OPENED_LINE}");
                    let _ = std::io::stdout().flush();
                    // Until the cell kills it: it must die by SIGKILL either way.
                    loop {
                        std::thread::park();
                    }
                }
                Err(error) => {
                    eprintln!("the migrating open failed: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::matrix::cells::CELLS;
    use crate::{Cli, Task};

    #[test]
    fn every_kill_plan_has_a_cell_per_engine() {
        let killed: Vec<_> = CELLS
            .iter()
            .filter_map(|cell| KillPlan::of(cell.fault).map(|plan| (cell.engine, plan)))
            .collect();
        for engine in [Engine::Sqlite, Engine::Duckdb] {
            for plan in KillPlan::ALL {
                assert!(killed.contains(&(engine, *plan)), "{engine} {plan:?}");
            }
        }
    }

    #[test]
    fn the_child_parses_what_the_cell_spawns() {
        for plan in KillPlan::ALL {
            let arguments = MigrateAndDie {
                plan: *plan,
                engine: EngineArg::Duckdb,
                path: "/tmp/a cell/cell.duckdb".into(),
            };
            let parsed =
                Cli::try_parse_from(std::iter::once("xtask".into()).chain(arguments.arguments()))
                    .expect("parses");
            assert_eq!(parsed.task, Task::MatrixMigrateAndDie(arguments));
        }
    }
}
