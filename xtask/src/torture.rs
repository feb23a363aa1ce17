//! `cargo xtask torture`: campaigns that run for minutes and count what survived.
//!
//! - crash: per engine, a child process opens through store, migrates, and commits rows, writing
//!   each id and the WAL's length to a side log after its commit; it is SIGKILLed at a random
//!   moment or at a step store logs (a snapshot taken, a migration applied). The parent reopens
//!   through store and checks that the open succeeds at the latest schema version, that every
//!   acknowledged row is there unless it lies inside the loss the report names (a WAL offset
//!   excuses only the commits that end after it, a discarded WAL only the rows written since the
//!   last checkpoint, a restored snapshot only the rows written since it: [`crate::oracle`]), and
//!   (SQLite) `PRAGMA integrity_check`.
//! - concurrency: processes racing to open, migrate and write one database. SQLite: all succeed
//!   and each migration is applied once. DuckDB: the holders' peers get `Locked` and nothing is
//!   ever recovered or moved aside.
//! - bad-input: each bad path, file or sidecar gives a typed error or a reported recovery, and the
//!   directory changes only as the report says.
//!
//! Seeded and reproducible: `--seed N` replays a run; each failure prints the seed of its
//! iteration. `--short` is the CI version (fixed seed, small counts).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

use store_core::files::sibling;
use store_core::{DataLoss, Engine, FailureClass, Migration, Migrations, OpenReport};
use store_duckdb::DuckDbOptions;
use store_sqlite::SqliteOptions;
use store_testkit::crash::{KillPoint, kill_at};
use store_testkit::random::SplitMix64;
use store_testkit::snapshot::{Change, DirectorySnapshot};

use crate::oracle::{Ledger, Place};
use crate::power;

type TortureResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The highest schema version the crash campaign migrates to, a few versions at a time.
const LATEST_VERSION: u32 = 8;
/// Crash iterations per database: then the campaign starts a new one from version 0.
const EPOCH_ITERATIONS: u32 = 16;
/// Rows a crash child commits at most before it exits by itself.
const ROWS_PER_CHILD: u64 = 2_000;

struct Settings {
    seed: u64,
    crash_iterations: u32,
    concurrency_rounds: u32,
    racers: u32,
    time_limit: Duration,
    power_iterations: u32,
    /// Which pending pages the power cuts keep; `None`: each engine's default.
    tears: Option<power::Tears>,
    campaigns: Vec<String>,
}

const USAGE: &str = "usage: cargo xtask torture [--short] [--seed N] [--iterations N] \
[--rounds N] [--racers N] [--power-iterations N] [--tearing none|prefix|reordered|mixed] \
[--time-limit-s N] \
[--campaign crash|concurrency|bad-input|power]...";

fn parse(arguments: &[String]) -> Result<Settings, String> {
    let mut settings = Settings {
        seed: 0x5EED,
        crash_iterations: 200,
        concurrency_rounds: 20,
        racers: 6,
        time_limit: Duration::from_secs(15 * 60),
        power_iterations: 200,
        tears: None,
        campaigns: Vec::new(),
    };
    let mut rest = arguments.iter();
    while let Some(argument) = rest.next() {
        let mut value = || {
            rest.next()
                .ok_or_else(|| format!("{argument} needs a value"))
        };
        let number = |text: &String| {
            text.parse::<u64>()
                .map_err(|_| format!("{argument} wants a number, not `{text}`"))
        };
        match argument.as_str() {
            "--short" => {
                settings.crash_iterations = 15;
                settings.concurrency_rounds = 3;
                settings.racers = 4;
                settings.time_limit = Duration::from_secs(100);
                settings.power_iterations = 30;
            }
            "--seed" => settings.seed = number(value()?)?,
            "--iterations" => settings.crash_iterations = number(value()?)? as u32,
            "--rounds" => settings.concurrency_rounds = number(value()?)? as u32,
            "--racers" => settings.racers = number(value()?)?.max(2) as u32,
            "--power-iterations" => settings.power_iterations = number(value()?)? as u32,
            "--tearing" => {
                let name = value()?;
                settings.tears = Some(power::Tears::from_name(name).ok_or_else(|| {
                    format!("unknown tearing `{name}` (none, prefix, reordered, mixed)")
                })?);
            }
            "--time-limit-s" => settings.time_limit = Duration::from_secs(number(value()?)?),
            "--campaign" => {
                let name = value()?.clone();
                if !["crash", "concurrency", "bad-input", "power"].contains(&name.as_str()) {
                    return Err(format!("unknown campaign `{name}`"));
                }
                settings.campaigns.push(name);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if settings.campaigns.is_empty() {
        settings.campaigns = vec![
            "crash".into(),
            "concurrency".into(),
            "bad-input".into(),
            "power".into(),
        ];
    }
    Ok(settings)
}

/// What a campaign found.
#[derive(Default)]
struct Tally {
    lines: Vec<String>,
    failures: Vec<String>,
}

impl Tally {
    /// One failure for `context` listing its problems, if it has any.
    fn check(&mut self, context: String, problems: &[String]) {
        if !problems.is_empty() {
            self.failures
                .push(format!("{context}: {}", problems.join("; ")));
        }
    }
}

pub fn run(arguments: &[String]) -> ExitCode {
    let settings = match parse(arguments) {
        Ok(settings) => settings,
        Err(problem) => {
            eprintln!("torture: {problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let deadline = started + settings.time_limit;
    let mut tally = Tally::default();
    println!(
        "torture: seed {} (replay with --seed {})",
        settings.seed, settings.seed
    );
    for campaign in &settings.campaigns {
        let outcome = match campaign.as_str() {
            "crash" => [Engine::Sqlite, Engine::Duckdb]
                .into_iter()
                .try_for_each(|engine| crash_campaign(engine, &settings, deadline, &mut tally)),
            "concurrency" => [Engine::Sqlite, Engine::Duckdb]
                .into_iter()
                .try_for_each(|engine| concurrency_campaign(engine, &settings, &mut tally)),
            "power" => power_campaign(&settings, deadline, &mut tally),
            _ => bad_input_campaign(&mut tally),
        };
        if let Err(error) = outcome {
            eprintln!("torture: the {campaign} campaign could not run: {error}");
            return ExitCode::FAILURE;
        }
    }
    for line in &tally.lines {
        println!("{line}");
    }
    println!(
        "torture: {} failure(s) in {:.0} s",
        tally.failures.len(),
        started.elapsed().as_secs_f64()
    );
    for failure in &tally.failures {
        println!("FAILED {failure}");
    }
    if tally.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Power cuts at seeded points on a lossy FUSE mount, per engine: every row acknowledged before
/// a cut must be there after it (or be lost by the setup's documented design), with nothing that
/// was never acknowledged but the commit in flight.
fn power_campaign(settings: &Settings, deadline: Instant, tally: &mut Tally) -> TortureResult<()> {
    for setup in [power::Setup::SqliteWal, power::Setup::Duckdb] {
        let started = Instant::now();
        let tears = settings
            .tears
            .unwrap_or_else(|| power::Tears::default_for(setup.engine()));
        let found = match power::campaign(
            setup,
            tears,
            settings.power_iterations,
            settings.seed,
            deadline,
        ) {
            Ok(found) => found,
            Err(power::PowerError::Unsupported(reason)) => {
                // Never a pass: a machine without FUSE cannot say anything about power cuts.
                tally.failures.push(format!(
                    "power {}: skipped, cannot mount the lossy filesystem: {reason}",
                    setup.name()
                ));
                continue;
            }
            Err(power::PowerError::Setup(words)) => {
                tally
                    .failures
                    .push(format!("power {}: could not run: {words}", setup.name()));
                continue;
            }
        };
        tally.lines.push(format!(
            "power {:<7} {}, tearing {}: {} iterations ({} cut inside the work) in {:.0} s; \
             acknowledged rows: {} checked, {} lost by design, {} lost beyond the promise (must be \
             0), {} phantom",
            setup.engine(),
            setup.name(),
            tears.name(),
            found.iterations,
            found.cuts_inside,
            started.elapsed().as_secs_f64(),
            found.rows_checked,
            found.lost_by_design,
            found.lost_beyond_promise,
            found.phantom_rows
        ));
        tally.failures.extend(found.failures);
    }
    Ok(())
}

/// `ACKED` holds the rows; later versions add tables whose creation takes a while, so that kills
/// land inside migrations too.
fn migrations(engine: Engine, latest: u32) -> Migrations {
    let mut list = vec![Migration::new(
        1,
        "acked",
        "CREATE TABLE acked (id BIGINT PRIMARY KEY)",
    )];
    for version in 2..=latest {
        let rows = 200_000;
        let sql = match engine {
            Engine::Sqlite => format!(
                "CREATE TABLE filler_{version} AS WITH RECURSIVE c(x) AS \
                 (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) SELECT x FROM c"
            ),
            _ => format!("CREATE TABLE filler_{version} AS SELECT range AS x FROM range({rows})"),
        };
        list.push(Migration::owned(version, format!("filler {version}"), sql));
    }
    Migrations::new(list).expect("valid migrations")
}

/// An open through store of either engine, as the campaigns use it.
enum Opened {
    Sqlite(store_sqlite::rusqlite::Connection),
    Duckdb(store_duckdb::DuckDbConnection),
}

/// An open that failed: its class, whether it recovered or moved anything first, its words.
struct Refused {
    class: FailureClass,
    moved_anything: bool,
    cause: String,
}

fn open(engine: Engine, path: &Path, latest: u32) -> Result<(Opened, OpenReport), Refused> {
    match engine {
        Engine::Sqlite => SqliteOptions::new(path)
            .migrations(migrations(engine, latest))
            .busy_timeout(Duration::from_secs(60))
            .open()
            .map(|(connection, report)| (Opened::Sqlite(connection), report))
            .map_err(|error| Refused {
                class: error.class(),
                moved_anything: false,
                cause: error.cause_chain(),
            }),
        _ => DuckDbOptions::new(path)
            .migrations(migrations(engine, latest))
            .open()
            .map(|(connection, report)| (Opened::Duckdb(connection), report))
            .map_err(|error| Refused {
                class: error.class(),
                moved_anything: matches!(
                    &error,
                    store_duckdb::OpenError::Engine { moved_aside, .. } if !moved_aside.is_empty()
                ),
                cause: error.cause_chain(),
            }),
    }
}

impl Opened {
    fn insert(&self, id: u64) -> TortureResult<()> {
        let sql = "INSERT INTO acked (id) VALUES (?)";
        match self {
            Opened::Sqlite(connection) => connection.execute(sql, [id as i64]).map(drop)?,
            Opened::Duckdb(connection) => connection.execute(sql, [id as i64]).map(drop)?,
        }
        Ok(())
    }

    fn ids(&self) -> TortureResult<BTreeSet<u64>> {
        let sql = "SELECT id FROM acked";
        let ids: Vec<i64> = match self {
            Opened::Sqlite(connection) => {
                let mut statement = connection.prepare(sql)?;
                statement
                    .query_map([], |row| row.get(0))?
                    .collect::<Result<_, _>>()?
            }
            Opened::Duckdb(connection) => {
                let mut statement = connection.prepare(sql)?;
                statement
                    .query_map([], |row| row.get(0))?
                    .collect::<Result<_, _>>()?
            }
        };
        Ok(ids.into_iter().map(|id| id as u64).collect())
    }

    /// `PRAGMA integrity_check` for SQLite; DuckDB has no equivalent beyond reading everything.
    fn integrity(&self) -> TortureResult<String> {
        match self {
            Opened::Sqlite(connection) => {
                Ok(connection.query_row("PRAGMA integrity_check", [], |row| row.get(0))?)
            }
            Opened::Duckdb(_) => Ok("ok".into()),
        }
    }
}

fn engine_from(name: &str) -> Option<Engine> {
    match name {
        "sqlite" => Some(Engine::Sqlite),
        "duckdb" => Some(Engine::Duckdb),
        _ => None,
    }
}

fn database_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "torture.db",
        _ => "torture.duckdb",
    }
}

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

fn crash_campaign(
    engine: Engine,
    settings: &Settings,
    deadline: Instant,
    tally: &mut Tally,
) -> TortureResult<()> {
    let directory = tempfile::tempdir()?;
    let mut path = PathBuf::new();
    // Every row acknowledged in this epoch and not yet found lost, with where it lives.
    let mut ledger = Ledger::default();
    let mut checked_rows = 0usize;
    let mut reported_lost = 0usize;
    let mut unreported_lost = 0usize;
    let mut recoveries: std::collections::BTreeMap<String, u32> = Default::default();
    let mut deaths = [0u32; 3];
    let mut iterations = 0;
    // The version the last reopen left (the parent's own opens are the only other writer).
    let mut version_now = 0;
    let started = Instant::now();
    for iteration in 0..settings.crash_iterations {
        if Instant::now() > deadline {
            tally.lines.push(format!(
                "crash/{}: stopped by the time limit after {iteration} iterations",
                engine.as_str()
            ));
            break;
        }
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
        let mut child = Command::new(std::env::current_exe()?)
            .args(["__torture-child", "crash", engine.as_str()])
            .arg(&path)
            .arg(&log)
            .args([latest.to_string(), first_id.to_string(), death_text(death)])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        match death {
            Death::TimedKill(delay) => {
                std::thread::sleep(Duration::from_millis(delay));
                let _ = child.kill();
            }
            // It kills itself at the step; if the step never comes, it stops after its rows.
            Death::Snapshot | Death::Migration(_) => {}
        }
        let output = child.wait_with_output()?;
        if output.status.code().is_some_and(|code| code != 0) {
            tally.failures.push(format!(
                "crash/{} iteration {iteration} (seed {seed}): the child failed before its death: {}",
                engine.as_str(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
            continue;
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
                    "crash/{} iteration {iteration} (seed {seed}, {death:?}): reopen failed ({}): {}",
                    engine.as_str(),
                    refused.class,
                    refused.cause
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
        let account = ledger.account(&present, loss);
        reported_lost += account.lost_reported.len();
        unreported_lost += account.lost_silent.len();
        if let Some(first) = account.lost_silent.first() {
            problems.push(format!(
                "{} acknowledged row(s) missing beyond the reported loss ({}; first {first})",
                account.lost_silent.len(),
                loss.map_or("no recovery".into(), |loss| format!("lost {loss}"))
            ));
        }
        // Counted once: a lost row is not looked for again.
        let lost: BTreeSet<u64> = account
            .lost_reported
            .iter()
            .chain(&account.lost_silent)
            .copied()
            .collect();
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
        tally.check(
            format!(
                "crash/{} iteration {iteration} (seed {seed}, {death:?})",
                engine.as_str()
            ),
            &problems,
        );
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
        "crash/{}: {iterations} iterations in {:.0} s (kills: {} timed, {} after a snapshot, {} after a migration); \
         recoveries: {recovered}; acknowledged rows checked: {checked_rows}; lost with a report (excused): \
         {reported_lost}; lost beyond the report (must be 0): {unreported_lost}",
        engine.as_str(),
        started.elapsed().as_secs_f64(),
        deaths[0],
        deaths[1],
        deaths[2],
    ));
    Ok(())
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

/// The WAL's length in bytes, 0 when there is none.
fn wal_bytes(engine: Engine, database: &Path) -> u64 {
    let suffix = match engine {
        Engine::Sqlite => "-wal",
        _ => ".wal",
    };
    std::fs::metadata(sibling(database, suffix)).map_or(0, |metadata| metadata.len())
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

fn death_text(death: Death) -> String {
    match death {
        Death::TimedKill(_) => "parent".into(),
        Death::Snapshot => "after-snapshot".into(),
        Death::Migration(version) => format!("after-migration-{version}"),
    }
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

/// `xtask __torture-child crash ENGINE DATABASE LOG LATEST FIRST_ID DEATH` and
/// `xtask __torture-child race ENGINE DATABASE ID_BASE HOLD_MS`.
pub fn child(arguments: &[String]) -> ExitCode {
    let outcome = match arguments {
        [kind, engine, database, log, latest, first_id, death] if kind == "crash" => {
            crash_child(engine, database, log, latest, first_id, death)
        }
        [kind, engine, database, id_base, hold] if kind == "race" => {
            race_child(engine, database, id_base, hold)
        }
        _ => Err(format!("unknown torture child {arguments:?}").into()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn crash_child(
    engine: &str,
    database: &str,
    log: &str,
    latest: &str,
    first_id: &str,
    death: &str,
) -> TortureResult<()> {
    let engine = engine_from(engine).ok_or("unknown engine")?;
    let latest: u32 = latest.parse()?;
    let first_id: u64 = first_id.parse()?;
    let point = match death {
        "parent" => None,
        "after-snapshot" => Some(KillPoint::after_snapshot()),
        other => Some(KillPoint::after_migration(
            other
                .strip_prefix("after-migration-")
                .ok_or("unknown death")?
                .parse()?,
        )),
    };
    let path = Path::new(database);
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
    Ok(())
}

fn concurrency_campaign(
    engine: Engine,
    settings: &Settings,
    tally: &mut Tally,
) -> TortureResult<()> {
    let mut holders_total = 0;
    let mut locked_total = 0;
    let started = Instant::now();
    for round in 0..settings.concurrency_rounds {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join(database_name(engine));
        // DuckDB racers keep the database open a while, so that they overlap.
        let hold_milliseconds = if engine == Engine::Duckdb { 300 } else { 0 };
        let children: Vec<_> = (0..settings.racers)
            .map(|racer| {
                Command::new(std::env::current_exe()?)
                    .args(["__torture-child", "race", engine.as_str()])
                    .arg(&path)
                    .args([
                        (u64::from(racer) * 1_000).to_string(),
                        hold_milliseconds.to_string(),
                    ])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
            })
            .collect::<Result<_, _>>()?;
        let mut applied: Vec<u32> = Vec::new();
        let mut holders = 0;
        let mut problems = Vec::new();
        for child in children {
            let output = child.wait_with_output()?;
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            if let Some(list) = stdout
                .lines()
                .find_map(|line| line.strip_prefix("applied "))
            {
                holders += 1;
                applied.extend(list.split(',').filter_map(|v| v.parse::<u32>().ok()));
            } else if let Some(class) = stdout
                .lines()
                .find_map(|line| line.strip_prefix("refused "))
            {
                let expected_lock =
                    engine == Engine::Duckdb && class == FailureClass::Locked.to_string();
                if expected_lock {
                    locked_total += 1;
                } else {
                    problems.push(format!(
                        "a racer was refused ({class}): {}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    ));
                }
            } else {
                problems.push(format!(
                    "a racer failed: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
        }
        holders_total += holders;
        applied.sort_unstable();
        let once_each: Vec<u32> = (1..=LATEST_VERSION).collect();
        if applied != once_each {
            problems.push(format!(
                "migrations applied {applied:?}, expected each of 1..={LATEST_VERSION} once"
            ));
        }
        if engine == Engine::Sqlite && holders != settings.racers {
            problems.push(format!("{holders} of {} racers opened", settings.racers));
        }
        if holders == 0 {
            problems.push("nobody opened the database".into());
        }
        let moved = store_core::files::moved_aside_files(&path)?;
        if !moved.is_empty() {
            problems.push(format!("files were moved aside: {moved:?}"));
        }
        let (opened, _) = open(engine, &path, LATEST_VERSION).map_err(|refused| refused.cause)?;
        let rows = opened.ids()?.len();
        if rows != holders as usize * RACE_ROWS as usize {
            problems.push(format!("{rows} rows for {holders} writers of {RACE_ROWS}"));
        }
        drop(opened);
        tally.check(
            format!("concurrency/{} round {round}", engine.as_str()),
            &problems,
        );
    }
    let mut line = String::new();
    let _ = write!(
        line,
        "concurrency/{}: {} rounds of {} processes in {:.0} s; opened: {holders_total}",
        engine.as_str(),
        settings.concurrency_rounds,
        settings.racers,
        started.elapsed().as_secs_f64()
    );
    if engine == Engine::Duckdb {
        let _ = write!(line, "; refused as locked: {locked_total}; recoveries: 0");
    }
    tally.lines.push(line);
    Ok(())
}

/// Rows each racer commits.
const RACE_ROWS: u64 = 20;

fn race_child(engine: &str, database: &str, id_base: &str, hold: &str) -> TortureResult<()> {
    let engine = engine_from(engine).ok_or("unknown engine")?;
    let id_base: u64 = id_base.parse()?;
    let hold = Duration::from_millis(hold.parse()?);
    match open(engine, Path::new(database), LATEST_VERSION) {
        Ok((connection, report)) => {
            if report.recovered() {
                return Err(format!("a racer recovered: {report}").into());
            }
            for id in id_base..id_base + RACE_ROWS {
                connection.insert(id)?;
            }
            std::thread::sleep(hold);
            let versions: Vec<String> = report
                .migrations_applied
                .iter()
                .map(|migration| migration.version.to_string())
                .collect();
            println!("applied {}", versions.join(","));
        }
        Err(refused) => {
            if refused.moved_anything {
                return Err(format!("a refused racer moved files aside: {}", refused.cause).into());
            }
            println!("refused {}", refused.class);
            eprintln!("{}", refused.cause);
        }
    }
    Ok(())
}

/// One bad input: how to make it in a fresh directory, and which engine opens it.
struct BadInput {
    name: &'static str,
    engine: Engine,
    /// Makes the input in a fresh directory; returns the path to open.
    make: Box<MakeInput>,
}

/// Makes a bad input in a fresh directory and returns the path to open.
type MakeInput = dyn Fn(&Path) -> TortureResult<PathBuf>;

fn bad_input(
    name: &'static str,
    engine: Engine,
    make: impl Fn(&Path) -> TortureResult<PathBuf> + 'static,
) -> BadInput {
    BadInput {
        name,
        engine,
        make: Box::new(make),
    }
}

fn bad_inputs() -> Vec<BadInput> {
    let mut inputs = Vec::new();
    for engine in [Engine::Sqlite, Engine::Duckdb] {
        let other = match engine {
            Engine::Sqlite => Engine::Duckdb,
            _ => Engine::Sqlite,
        };
        let wal_suffix = match engine {
            Engine::Sqlite => "-wal",
            _ => ".wal",
        };
        inputs.extend([
            bad_input("a directory as the path", engine, |directory| {
                let path = directory.join("a directory");
                std::fs::create_dir(&path)?;
                Ok(path)
            }),
            bad_input("a missing parent directory", engine, |directory| {
                Ok(directory.join("missing").join("x.db"))
            }),
            bad_input("a zero-byte file", engine, |directory| {
                write_file(directory, "empty.db", &[])
            }),
            bad_input("a text file", engine, |directory| {
                write_file(
                    directory,
                    "notes.db",
                    b"dear diary, this is not a database\n",
                )
            }),
            bad_input("random bytes", engine, |directory| {
                let mut random = SplitMix64::new(7);
                let bytes: Vec<u8> = (0..64 * 1024).map(|_| random.next_u64() as u8).collect();
                write_file(directory, "random.db", &bytes)
            }),
            bad_input("the other engine's file", engine, move |directory| {
                healthy(other, directory)
            }),
            bad_input("a path with spaces and unicode", engine, |directory| {
                let nested = directory.join("données de l'app ✓");
                std::fs::create_dir(&nested)?;
                Ok(nested.join("état du jeu.db"))
            }),
            bad_input("a symlink in place of the WAL", engine, move |directory| {
                let path = healthy(engine, directory)?;
                let elsewhere = directory.join("elsewhere");
                std::fs::write(&elsewhere, b"someone else's file")?;
                std::os::unix::fs::symlink(&elsewhere, sibling(&path, wal_suffix))?;
                Ok(path)
            }),
        ]);
        for (name, fraction) in [
            ("truncated to 100 bytes", None),
            ("truncated to a tenth", Some(0.1)),
            ("truncated to half", Some(0.5)),
            ("truncated to nine tenths", Some(0.9)),
        ] {
            inputs.push(bad_input(name, engine, move |directory| {
                truncated(engine, directory, fraction)
            }));
        }
    }
    inputs.push(bad_input(
        "a damaged WAL and a snapshot of another schema version",
        Engine::Duckdb,
        |directory| {
            let path = healthy(Engine::Duckdb, directory)?;
            // A snapshot from a newer schema than the application knows.
            let snapshot = sibling(&path, store_duckdb::SNAPSHOT_SUFFIX);
            drop(
                DuckDbOptions::new(&snapshot)
                    .migrations(migrations(Engine::Duckdb, 3))
                    .open()
                    .map_err(|error| error.cause_chain())?,
            );
            store_testkit::faults::duckdb::write_uncheckpointed_rows(&path, 0, 5)?;
            store_testkit::faults::duckdb::append_garbage_to_wal(&path)?;
            Ok(path)
        },
    ));
    inputs
}

fn write_file(directory: &Path, name: &str, bytes: &[u8]) -> TortureResult<PathBuf> {
    let path = directory.join(name);
    std::fs::write(&path, bytes)?;
    Ok(path)
}

/// A database of `engine` at version 2 with rows, closed cleanly.
fn healthy(engine: Engine, directory: &Path) -> TortureResult<PathBuf> {
    let path = directory.join(database_name(engine));
    let (opened, _) = open(engine, &path, 2).map_err(|refused| refused.cause)?;
    for id in 1..=100 {
        opened.insert(id)?;
    }
    drop(opened);
    Ok(path)
}

/// A healthy database cut to `fraction` of its size (`None`: to 100 bytes).
fn truncated(engine: Engine, directory: &Path, fraction: Option<f64>) -> TortureResult<PathBuf> {
    let path = healthy(engine, directory)?;
    let length = std::fs::metadata(&path)?.len();
    let keep = fraction.map_or(100, |fraction| (length as f64 * fraction) as u64);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)?
        .set_len(keep)?;
    Ok(path)
}

fn bad_input_campaign(tally: &mut Tally) -> TortureResult<()> {
    let inputs = bad_inputs();
    let mut refused = 0;
    let mut opened = 0;
    let mut recovered = 0;
    let mut unreadable = 0;
    for input in &inputs {
        let directory = tempfile::tempdir()?;
        let path = (input.make)(directory.path())?;
        // The database's own directory when it exists (a nested one for the unicode path).
        let watched = Some(store_core::files::parent_directory(&path))
            .filter(|parent| parent.is_dir())
            .unwrap_or_else(|| directory.path().to_owned());
        let before = DirectorySnapshot::take(&watched)?;
        let outcome = open(input.engine, &path, 2);
        let after = DirectorySnapshot::take(&watched)?;
        let changes = before.diff(&after);
        let label = format!("bad-input/{} {}", input.engine.as_str(), input.name);
        let verdict = match &outcome {
            Err(refusal) => format!("refused ({})", refusal.class),
            Ok((_, report)) => match &report.recovery {
                Some(recovery) => format!("recovered ({}, lost: {})", recovery.step, recovery.lost),
                None => "opened".to_owned(),
            },
        };
        tally.lines.push(format!("  {label}: {verdict}"));
        match outcome {
            Err(refusal) => {
                refused += 1;
                if !changes.is_empty() && !refusal.moved_anything {
                    tally.failures.push(format!(
                        "{label}: refused ({}) but changed {}",
                        refusal.class,
                        changes_text(&changes)
                    ));
                }
            }
            Ok((connection, report)) => {
                opened += 1;
                if report.recovered() {
                    recovered += 1;
                }
                // Opened must mean usable: DuckDB reads blocks lazily, so a file cut short could
                // open and fail on its missing blocks later; store refuses such a file at open
                // (`OpenError::CutShort`), and one that still gets through is a failure.
                if let Err(error) = connection.ids() {
                    unreadable += 1;
                    tally.failures.push(format!(
                        "{label}: opened, but its rows do not read: {error}"
                    ));
                }
                drop(connection);
                let allowed = allowed_changes(input.engine, &path, &report);
                let unexplained: Vec<&Change> = changes
                    .iter()
                    .filter(|change| !allowed.iter().any(|name| change_name(change) == name))
                    .collect();
                if !unexplained.is_empty() {
                    tally.failures.push(format!(
                        "{label}: opened, but changed what the report does not name: {}",
                        unexplained
                            .iter()
                            .map(|change| change.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
    }
    tally.lines.push(format!(
        "bad-input: {} inputs; refused with a typed error: {refused}; opened: {opened} (of which recovered: {recovered}; unreadable later: {unreadable})",
        inputs.len()
    ));
    Ok(())
}

fn changes_text(changes: &[Change]) -> String {
    changes
        .iter()
        .map(Change::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn change_name(change: &Change) -> &str {
    match change {
        Change::Added(name) | Change::Removed(name) | Change::Modified(name) => name,
    }
}

/// The file names an open may change in the database's directory: the database and its
/// sidecars, and whatever the report says it moved or made.
fn allowed_changes(engine: Engine, path: &Path, report: &OpenReport) -> Vec<String> {
    let suffixes: &[&str] = match engine {
        Engine::Sqlite => store_sqlite::SIDECAR_SUFFIXES,
        _ => store_duckdb::SIDECAR_SUFFIXES,
    };
    let mut files: Vec<PathBuf> = std::iter::once(path.to_owned())
        .chain(suffixes.iter().map(|suffix| sibling(path, suffix)))
        .collect();
    files.extend(report.snapshot.clone());
    if let Some(recovery) = &report.recovery {
        for moved in &recovery.moved_aside {
            files.push(moved.from.clone());
            files.push(moved.to.clone());
        }
    }
    files
        .iter()
        .filter_map(|file| file.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn arguments_are_checked() {
        let arguments = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let short = parse(&arguments(&["--short", "--seed", "9"])).expect("valid");
        assert_eq!((short.seed, short.crash_iterations), (9, 15));
        assert_eq!(
            short.campaigns.len(),
            4,
            "crash, concurrency, bad input, power"
        );
        assert_eq!(short.power_iterations, 30);
        assert_eq!(short.tears, None, "each engine's default");
        let torn =
            parse(&arguments(&["--campaign", "power", "--tearing", "prefix"])).expect("valid");
        assert_eq!(
            (torn.campaigns.len(), torn.tears),
            (1, Some(power::Tears::Prefix))
        );
        assert!(parse(&arguments(&["--tearing", "sometimes"])).is_err());
        assert!(parse(&arguments(&["--campaign", "chaos"])).is_err());
        assert!(parse(&arguments(&["--seed"])).is_err());
        assert!(parse(&arguments(&["--iterations", "many"])).is_err());
    }
}
