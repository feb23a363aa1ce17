//! The crash campaign: per engine, a child opens through store, migrates and commits rows,
//! logging each acknowledgement; it dies at a random moment or at a step store logs; the parent
//! checks that it died of that SIGKILL, reopens through store and checks that every acknowledged
//! row is there: a kill loses none, and a report naming a loss explains it without allowing it
//! ([`Promise::EveryAcknowledged`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime};

use store_core::files::sibling;
use store_core::{DataLoss, Engine};
use store_testkit::crash::{KillPoint, kill_at, was_killed};
use store_testkit::random::SplitMix64;
use thiserror::Error;

use super::database::{LATEST_VERSION, TortureResult, database_name, open, wal_bytes};
use super::{Settings, Tally, TortureChild, stopped_by_time_share};
use crate::EngineArg;
use crate::limits::{Finished, wait_until};
use crate::oracle::{Ledger, Place, Promise};
use crate::progress::Progress;

/// Crash iterations per database: then the campaign starts a new one from version 0.
const EPOCH_ITERATIONS: u32 = 16;
/// Rows a crash child commits at most: then it waits to be killed.
const ROWS_PER_CHILD: u64 = 2_000;
/// How long a crash child may take to die at its step (an open, a migration of a few hundred
/// thousand rows): one still running then is killed, and its iteration fails.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

/// How a crash child dies.
#[derive(Debug, Clone, Copy)]
enum Death {
    /// SIGKILL from the parent after this many milliseconds.
    TimedKill(u64),
    /// SIGKILL by itself right after store logs the pre-migration snapshot (DuckDB).
    Snapshot,
    /// SIGKILL by itself right after this migration commits.
    Migration(u32),
}

impl Death {
    /// What the child is told of it.
    fn in_child(self) -> ChildDeath {
        match self {
            Death::TimedKill(_) => ChildDeath::Parent,
            Death::Snapshot => ChildDeath::AfterSnapshot,
            Death::Migration(version) => ChildDeath::AfterMigration(version),
        }
    }
}

/// How the child dies, as it is told: `parent`, `after-snapshot` or `after-migration-N`. It never
/// exits by itself: a child that did was not killed where the campaign planned, and what its
/// files hold says nothing about a crash there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildDeath {
    /// The parent kills it; after its rows it waits for the kill.
    Parent,
    /// It kills itself as store logs the pre-migration snapshot.
    AfterSnapshot,
    /// It kills itself as this migration commits.
    AfterMigration(u32),
}

const AFTER_MIGRATION: &str = "after-migration-";

impl fmt::Display for ChildDeath {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildDeath::Parent => formatter.write_str("parent"),
            ChildDeath::AfterSnapshot => formatter.write_str("after-snapshot"),
            ChildDeath::AfterMigration(version) => write!(formatter, "{AFTER_MIGRATION}{version}"),
        }
    }
}

/// A death the child does not know.
#[derive(Debug, Error)]
#[error("unknown death `{0}` (parent, after-snapshot, after-migration-N)")]
pub(crate) struct UnknownDeath(String);

impl FromStr for ChildDeath {
    type Err = UnknownDeath;

    fn from_str(text: &str) -> Result<ChildDeath, UnknownDeath> {
        match text {
            "parent" => Ok(ChildDeath::Parent),
            "after-snapshot" => Ok(ChildDeath::AfterSnapshot),
            other => other
                .strip_prefix(AFTER_MIGRATION)
                .and_then(|version| version.parse().ok())
                .map(ChildDeath::AfterMigration)
                .ok_or_else(|| UnknownDeath(other.to_owned())),
        }
    }
}

/// `xtask __torture-child crash ENGINE DATABASE LOG LATEST FIRST_ID DEATH`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct CrashChild {
    #[arg(value_enum)]
    engine: EngineArg,
    database: PathBuf,
    /// Where each acknowledged row's id and the WAL's length after its commit go.
    log: PathBuf,
    /// The schema version to migrate to.
    latest: u32,
    first_id: u64,
    /// `parent`, `after-snapshot` or `after-migration-N`.
    death: ChildDeath,
}

impl CrashChild {
    /// The command line that runs this child (after the executable).
    fn arguments(&self) -> Vec<std::ffi::OsString> {
        vec![
            TortureChild::COMMAND.into(),
            "crash".into(),
            self.engine.as_str().into(),
            self.database.clone().into(),
            self.log.clone().into(),
            self.latest.to_string().into(),
            self.first_id.to_string().into(),
            self.death.to_string().into(),
        ]
    }
}

/// One engine's crash loop, stopped by `deadline` (this engine's share of the time limit): a
/// loop stopped before `settings.crash_iterations` fails, naming how many ran.
pub(super) fn campaign(
    engine: Engine,
    settings: &Settings,
    deadline: Instant,
    tally: &mut Tally,
    progress: &Progress,
) -> TortureResult<()> {
    progress.stage(format!(
        "crash/{}: {} iterations",
        engine.as_str(),
        settings.crash_iterations
    ));
    let share = deadline.saturating_duration_since(Instant::now());
    let directory = tempfile::tempdir()?;
    let mut path = PathBuf::new();
    // Every row acknowledged in this epoch and not yet found lost, with where it lives.
    let mut ledger = Ledger::default();
    let mut checked_rows = 0usize;
    let mut reported_lost = 0usize;
    let mut unreported_lost = 0usize;
    let mut recoveries: BTreeMap<String, u32> = BTreeMap::new();
    let mut deaths = [0u32; 3];
    let mut iterations = 0;
    // The version the last reopen left (the parent's own opens are the only other writer).
    let mut version_now = 0;
    let started = Instant::now();
    for iteration in 0..settings.crash_iterations {
        if Instant::now() > deadline {
            tally.failures.push(stopped_by_time_share(
                &format!("crash/{}", engine.as_str()),
                iteration,
                settings.crash_iterations,
                "iterations",
                share,
            ));
            break;
        }
        // Counted as it begins: an iteration that ends the loop early is done too.
        progress.step();
        iterations += 1;
        let seed =
            settings.seed ^ (u64::from(iteration) << 32) ^ u64::from(engine == Engine::Duckdb);
        let mut random = SplitMix64::new(seed);
        // Each epoch is a new database whose target version climbs from 1 to the latest, so
        // that a run of any length migrates (and dies mid-migration) again and again.
        let epoch = iteration / EPOCH_ITERATIONS;
        let step = iteration % EPOCH_ITERATIONS;
        if step == 0 {
            ledger = Ledger::default();
            version_now = 0;
            path = directory
                .path()
                .join(format!("{epoch}-{}", database_name(engine)));
        }
        let log = directory
            .path()
            .join(format!("{iteration}-acknowledged.log"));
        let latest = (1 + step * LATEST_VERSION / EPOCH_ITERATIONS).min(LATEST_VERSION);
        let migrating = latest > version_now;
        let death = match (migrating, random.below(3)) {
            (true, 0) if engine == Engine::Duckdb => Death::Snapshot,
            (true, 1) => Death::Migration(latest),
            _ => Death::TimedKill(random.below(250)),
        };
        deaths[match death {
            Death::TimedKill(_) => 0,
            Death::Snapshot => 1,
            Death::Migration(_) => 2,
        }] += 1;
        let first_id = u64::from(iteration) * 1_000_000 + 1;
        let snapshot_before = snapshot_identity(engine, &path);
        let arguments = CrashChild {
            engine: EngineArg::from(engine),
            database: path.clone(),
            log: log.clone(),
            latest,
            first_id,
            death: death.in_child(),
        };
        let mut child = Command::new(std::env::current_exe()?)
            .args(arguments.arguments())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let spawned = Instant::now();
        match death {
            Death::TimedKill(delay) => {
                std::thread::sleep(Duration::from_millis(delay));
                // A child that ended already is not signalled again (its status says how it
                // ended); one that is still running gets the SIGKILL its death plans.
                if child.try_wait()?.is_none() {
                    child.kill()?;
                }
            }
            // It kills itself at the step; if the step never comes, it exits after its rows.
            Death::Snapshot | Death::Migration(_) => {}
        }
        let ended = wait_until(child, spawned + CHILD_TIMEOUT)?;
        let context = format!(
            "crash/{} iteration {iteration} (seed {seed}, {death:?})",
            engine.as_str()
        );
        // A death not as planned fails the iteration; its files are still reopened and checked,
        // so that the ledger and the version follow what the child did.
        if let Err(problem) = judge_death(&ended) {
            tally.failures.push(format!("{context}: {problem}"));
        }
        // A snapshot the child took (at its open, before its first acknowledgement) holds every
        // row so far: store checkpoints before taking it.
        if snapshot_identity(engine, &path) != snapshot_before {
            ledger.snapshot();
        }
        let acknowledged = read_acknowledged(&log)?;
        checked_rows += acknowledged.len();
        for (id, wal_bytes) in acknowledged {
            enter(engine, &mut ledger, id, wal_bytes);
        }
        // The parent reopens through store, as the application's next start would.
        let (opened, report) = match open(engine, &path, latest) {
            Ok(opened) => opened,
            Err(refused) => {
                tally.failures.push(format!(
                    "{context}: reopen failed ({}): {}",
                    refused.class, refused.cause
                ));
                break;
            }
        };
        version_now = report.schema_version;
        if let Some(recovery) = &report.recovery {
            *recoveries.entry(recovery.step.to_string()).or_default() += 1;
        }
        let mut problems = Vec::new();
        if report.schema_version != latest {
            problems.push(format!(
                "schema version {} instead of {latest}",
                report.schema_version
            ));
        }
        let present = opened.ids()?;
        let loss: Option<&DataLoss> = report.recovery.as_ref().map(|recovery| &recovery.lost);
        // A SIGKILL leaves every acknowledged commit in the page cache: store's promise is that
        // none is lost, and a report that names a loss explains it without allowing it.
        let judged = Promise::EveryAcknowledged.judge(&ledger, &present, loss);
        reported_lost += judged.account.lost_reported.len();
        unreported_lost += judged.account.lost_silent.len();
        if let Some(first) = judged.lost_beyond_promise.first() {
            problems.push(format!(
                "{} acknowledged row(s) missing ({} of them named by the report: {}; first {first})",
                judged.lost_beyond_promise.len(),
                judged.account.lost_reported.len(),
                loss.map_or("no recovery".into(), |loss| format!("lost {loss}"))
            ));
        }
        // Counted once: a lost row is not looked for again.
        let lost: BTreeSet<u64> = judged.lost_beyond_promise.iter().copied().collect();
        ledger.forget(&lost);
        // A recovery leaves what it kept in the database file (salvage and restore checkpoint,
        // discard opens at the checkpoint), and a migrating open snapshots what stands.
        if report.recovered() {
            ledger.checkpoint();
        }
        if report.snapshot.is_some() {
            ledger.snapshot();
        }
        let integrity = opened.integrity()?;
        if integrity != "ok" {
            problems.push(format!("integrity_check: {integrity}"));
        }
        drop(opened);
        // DuckDB checkpoints as the last connection closes and leaves no WAL: what the next
        // child's WAL offsets count from.
        if engine == Engine::Duckdb && wal_bytes(engine, &path) == 0 {
            ledger.checkpoint();
        }
        tally.check(context, &problems);
    }
    let recovered: String = if recoveries.is_empty() {
        "none".into()
    } else {
        recoveries
            .iter()
            .map(|(step, count)| format!("{step} {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    tally.lines.push(format!(
        "crash/{}: {iterations} of {} iterations in {:.0} s (its share: {:.0} s; kills: {} timed, {} after a snapshot, {} after a migration); \
         recoveries: {recovered}; acknowledged rows checked: {checked_rows}; lost with a report: \
         {reported_lost}, lost without one: {unreported_lost} (both must be 0: a kill loses no acknowledged commit)",
        engine.as_str(),
        settings.crash_iterations,
        started.elapsed().as_secs_f64(),
        share.as_secs_f64(),
        deaths[0],
        deaths[1],
        deaths[2],
    ));
    Ok(())
}

/// Checks that a crash child died of a SIGKILL, its own at its step or the parent's, as each
/// iteration plans: a child that exited by itself (done, or failed), died of another signal or
/// hung until [`CHILD_TIMEOUT`] was not killed where the campaign says, and its files say nothing
/// about a crash there.
fn judge_death(ended: &Finished) -> Result<(), String> {
    let said = ended.last_words();
    if ended.timed_out {
        return Err(format!(
            "the child had not died {} s after it started, and was killed then{said}",
            CHILD_TIMEOUT.as_secs()
        ));
    }
    if was_killed(&ended.status) {
        return Ok(());
    }
    Err(match ended.status.code() {
        Some(0) => format!("the child exited by itself where a SIGKILL was planned{said}"),
        Some(_) => format!("the child failed before its death ({}){said}", ended.status),
        None => format!(
            "the child died of {}, not of the SIGKILL planned{said}",
            ended.status
        ),
    })
}

/// Enters a row the child acknowledged with the WAL's length after its commit. DuckDB's WAL only
/// grows between checkpoints, so a shorter one means a checkpoint came between: the rows before
/// are in the database file. SQLite's WAL is recycled and its length says nothing about where a
/// commit lies, and store reports no SQLite loss: its rows count as in the database file, so that
/// nothing excuses their loss.
fn enter(engine: Engine, ledger: &mut Ledger, id: u64, wal_bytes: u64) {
    if engine == Engine::Sqlite {
        ledger.acknowledge(id, Place::DatabaseFile);
        return;
    }
    if ledger
        .last_wal_end_bytes()
        .is_some_and(|last| wal_bytes < last)
    {
        ledger.checkpoint();
    }
    ledger.acknowledge(
        id,
        Place::Wal {
            end_bytes: Some(wal_bytes),
        },
    );
}

/// Which file stands as DuckDB's pre-migration snapshot (a new snapshot is a new file, renamed
/// into place), `None` when there is none or the engine takes none.
fn snapshot_identity(engine: Engine, database: &Path) -> Option<(u64, u64, SystemTime)> {
    if engine == Engine::Sqlite {
        return None;
    }
    let metadata = std::fs::metadata(sibling(database, store_duckdb::SNAPSHOT_SUFFIX)).ok()?;
    Some((metadata.ino(), metadata.len(), metadata.modified().ok()?))
}

/// The child's acknowledgements: each row's id and the WAL's length after its commit.
fn read_acknowledged(log: &Path) -> TortureResult<Vec<(u64, u64)>> {
    let text = match std::fs::read_to_string(log) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error.into()),
    };
    // A kill can cut the last line short: only whole lines count.
    Ok(text
        .split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .filter_map(|line| {
            let (id, wal_bytes) = line.trim().split_once(' ')?;
            Some((id.parse().ok()?, wal_bytes.parse().ok()?))
        })
        .collect())
}

/// The crash child: opens (dying at its kill point, if it has one), then commits rows one by
/// one, logging each after its commit returned, until killed or done.
pub(crate) fn crash_child(arguments: CrashChild) -> TortureResult<()> {
    let CrashChild {
        engine,
        database,
        log,
        latest,
        first_id,
        death,
    } = arguments;
    let engine = Engine::from(engine);
    let point = match death {
        ChildDeath::Parent => None,
        ChildDeath::AfterSnapshot => Some(KillPoint::after_snapshot()),
        ChildDeath::AfterMigration(version) => Some(KillPoint::after_migration(u64::from(version))),
    };
    let path = database.as_path();
    let opened = match point {
        Some(point) => kill_at(point, || open(engine, path, latest)),
        None => open(engine, path, latest),
    };
    let (connection, _) = opened.map_err(|refused| {
        format!(
            "open before the kill failed ({}): {}",
            refused.class, refused.cause
        )
    })?;
    let mut acknowledgements = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    for id in first_id..first_id + ROWS_PER_CHILD {
        connection.insert(id)?;
        // Acknowledged only after the commit returned: a line here is a promise store must keep.
        // With the WAL's length, so that a loss the report names by WAL offset maps to rows.
        let wal = wal_bytes(engine, path);
        acknowledgements.write_all(format!("{id} {wal}\n").as_bytes())?;
    }
    match death {
        // Until the parent's SIGKILL: it must die of it, however early its rows ran out.
        ChildDeath::Parent => loop {
            std::thread::park();
        },
        // Its step never came: it exits, and the campaign fails the iteration.
        ChildDeath::AfterSnapshot | ChildDeath::AfterMigration(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::{Cli, Task};

    #[test]
    fn a_line_cut_by_the_kill_is_not_an_acknowledgement() -> TortureResult<()> {
        let directory = tempfile::tempdir()?;
        let log = directory.path().join("acknowledged.log");
        assert!(read_acknowledged(&log)?.is_empty(), "no log, no promise");
        std::fs::write(&log, "1 100\n2 250\n3 4")?;
        assert_eq!(read_acknowledged(&log)?, [(1, 100), (2, 250)]);
        Ok(())
    }

    #[test]
    fn a_reported_wal_loss_excuses_only_the_commits_after_its_offset() {
        let mut ledger = Ledger::default();
        // A first child's rows, then a checkpoint (its WAL restarts shorter), then a second's.
        for (id, wal) in [(1, 300), (2, 400), (3, 200), (4, 300), (5, 400)] {
            enter(Engine::Duckdb, &mut ledger, id, wal);
        }
        let present: BTreeSet<u64> = [1, 2, 3].into();
        let account = ledger.account(
            &present,
            Some(&DataLoss::CommitsAfterWalByte { byte_offset: 250 }),
        );
        assert_eq!(account.lost_reported, [4, 5]);
        assert!(account.lost_silent.is_empty());
        // The checkpointed rows of the first child are no WAL commits of the second's WAL.
        let account = ledger.account(
            &[3].into(),
            Some(&DataLoss::CommitsAfterWalByte { byte_offset: 250 }),
        );
        assert_eq!(account.lost_silent, [1, 2]);
        // SQLite reports no loss: nothing excuses a missing SQLite row.
        let mut sqlite = Ledger::default();
        enter(Engine::Sqlite, &mut sqlite, 1, 4096);
        let account = sqlite.account(&BTreeSet::new(), Some(&DataLoss::UncheckpointedCommits));
        assert_eq!(account.lost_silent, [1]);
    }

    fn ended(status: i32, hung: bool) -> Finished {
        use std::os::unix::process::ExitStatusExt as _;
        Finished {
            status: std::process::ExitStatus::from_raw(status),
            timed_out: hung,
            stdout: Vec::new(),
            stderr: b"its last words".to_vec(),
        }
    }

    /// Promise: only a child that died of a SIGKILL died as planned; one that exited by itself,
    /// failed, died of another signal or hung fails its iteration.
    #[test]
    fn only_a_sigkill_is_a_planned_death() {
        // A wait status: the signal in the low 7 bits, an exit code in the next 8.
        assert_eq!(judge_death(&ended(libc::SIGKILL, false)), Ok(()));
        let exited = judge_death(&ended(0, false)).expect_err("exited by itself");
        assert!(exited.contains("exited by itself"), "{exited}");
        let failed = judge_death(&ended(1 << 8, false)).expect_err("failed");
        assert!(failed.contains("failed before its death"), "{failed}");
        assert!(failed.contains("its last words"), "{failed}");
        let signalled = judge_death(&ended(libc::SIGSEGV, false)).expect_err("another signal");
        assert!(signalled.contains("not of the SIGKILL"), "{signalled}");
        // Killed, but by the timeout: not the death planned.
        let hung = judge_death(&ended(libc::SIGKILL, true)).expect_err("hung");
        assert!(hung.contains("had not died"), "{hung}");
    }

    #[test]
    fn a_seed_replays_the_same_choices() {
        let draw = |seed| {
            let mut random = SplitMix64::new(seed);
            (0..8).map(|_| random.below(250)).collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
        assert!(draw(7).iter().all(|value| *value < 250));
    }

    #[test]
    fn the_child_parses_what_the_campaign_spawns() {
        for death in [Death::TimedKill(7), Death::Snapshot, Death::Migration(5)] {
            let arguments = CrashChild {
                engine: EngineArg::Sqlite,
                database: "/tmp/x/0-torture.db".into(),
                log: "/tmp/x/0-acknowledged.log".into(),
                latest: 5,
                first_id: 1_000_001,
                death: death.in_child(),
            };
            let parsed =
                Cli::try_parse_from(std::iter::once("xtask".into()).chain(arguments.arguments()))
                    .expect("parses");
            assert_eq!(
                parsed.task,
                Task::TortureChild(TortureChild::Crash(arguments))
            );
        }
        assert!("after-migration-x".parse::<ChildDeath>().is_err());
    }
}
