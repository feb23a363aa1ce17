//! The concurrency campaign: processes racing to open, migrate and write one new database.
//! SQLite: all succeed and each migration is applied once. DuckDB: the holders' peers get
//! `Locked`, and nothing is ever recovered or moved aside. Every racer ends within
//! [`RACER_TIMEOUT`] (one that hangs is killed and fails its round), and each engine's rounds
//! within its share of the time limit.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use store_core::{Engine, FailureClass};

use super::database::{LATEST_VERSION, TortureResult, database_name, open};
use super::{Settings, Tally, TortureChild, stopped_by_time_share};
use crate::EngineArg;
use crate::limits::wait_until;
use crate::progress::Progress;

/// Rows each racer commits.
const RACE_ROWS: u64 = 20;
/// How long a round's racers may take, from their start: longer than the busy timeout a racer
/// waits out behind its peers ([`open`]'s 60 s), so that only a racer that hangs reaches it.
const RACER_TIMEOUT: Duration = Duration::from_secs(90);

/// `xtask __torture-child race ENGINE DATABASE ID_BASE HOLD_MS`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct RaceChild {
    #[arg(value_enum)]
    engine: EngineArg,
    database: PathBuf,
    /// The first id of its rows.
    id_base: u64,
    /// How long it keeps the database open after writing, so that racers overlap.
    hold_ms: u64,
}

impl RaceChild {
    /// The command line that runs this child (after the executable).
    fn arguments(&self) -> Vec<std::ffi::OsString> {
        vec![
            TortureChild::COMMAND.into(),
            "race".into(),
            self.engine.as_str().into(),
            self.database.clone().into(),
            self.id_base.to_string().into(),
            self.hold_ms.to_string().into(),
        ]
    }
}

/// One engine's rounds, stopped by `deadline` (this engine's share of the time limit): rounds
/// stopped before `settings.concurrency_rounds` fail, naming how many ran.
pub(super) fn campaign(
    engine: Engine,
    settings: &Settings,
    deadline: Instant,
    tally: &mut Tally,
    progress: &Progress,
) -> TortureResult<()> {
    progress.stage(format!(
        "concurrency/{}: {} rounds of {} processes",
        engine.as_str(),
        settings.concurrency_rounds,
        settings.racers
    ));
    let mut holders_total = 0;
    let mut locked_total = 0;
    let mut hung_total = 0;
    let mut rounds = 0;
    let started = Instant::now();
    let share = deadline.saturating_duration_since(started);
    for round in 0..settings.concurrency_rounds {
        if Instant::now() > deadline {
            tally.failures.push(stopped_by_time_share(
                &format!("concurrency/{}", engine.as_str()),
                round,
                settings.concurrency_rounds,
                "rounds",
                share,
            ));
            break;
        }
        rounds += 1;
        let directory = tempfile::tempdir()?;
        let path = directory.path().join(database_name(engine));
        // DuckDB racers keep the database open a while, so that they overlap.
        let hold_ms = if engine == Engine::Duckdb { 300 } else { 0 };
        let children: Vec<_> = (0..settings.racers)
            .map(|racer| {
                let arguments = RaceChild {
                    engine: EngineArg::from(engine),
                    database: path.clone(),
                    id_base: u64::from(racer) * 1_000,
                    hold_ms,
                };
                Command::new(std::env::current_exe()?)
                    .args(arguments.arguments())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
            })
            .collect::<Result<_, _>>()?;
        let racers_deadline = Instant::now() + RACER_TIMEOUT;
        let mut applied: Vec<u32> = Vec::new();
        let mut holders = 0;
        let mut problems = Vec::new();
        for (racer, child) in children.into_iter().enumerate() {
            let output = wait_until(child, racers_deadline)?;
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            if output.timed_out {
                hung_total += 1;
                problems.push(format!(
                    "racer {racer} had not ended {} s after the round began, and was killed then{}",
                    RACER_TIMEOUT.as_secs(),
                    output.last_words()
                ));
            } else if let Some(list) = stdout
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
                        "racer {racer} was refused ({class}): {}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    ));
                }
            } else {
                problems.push(format!(
                    "racer {racer} failed ({}){}",
                    output.status,
                    output.last_words()
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
        progress.step();
    }
    let mut line = String::new();
    let _ = write!(
        line,
        "concurrency/{}: {rounds} of {} rounds of {} processes in {:.0} s (its share: {:.0} s); \
         opened: {holders_total}; hung and killed (must be 0): {hung_total}",
        engine.as_str(),
        settings.concurrency_rounds,
        settings.racers,
        started.elapsed().as_secs_f64(),
        share.as_secs_f64()
    );
    if engine == Engine::Duckdb {
        let _ = write!(line, "; refused as locked: {locked_total}; recoveries: 0");
    }
    tally.lines.push(line);
    Ok(())
}

/// A racer: opens through store (printing `applied V,...` or `refused CLASS`), writes its rows and
/// holds the database a while.
pub(crate) fn race_child(arguments: RaceChild) -> TortureResult<()> {
    let RaceChild {
        engine,
        database,
        id_base,
        hold_ms,
    } = arguments;
    match open(Engine::from(engine), &database, LATEST_VERSION) {
        Ok((connection, report)) => {
            if report.recovered() {
                return Err(format!("a racer recovered: {report}").into());
            }
            for id in id_base..id_base + RACE_ROWS {
                connection.insert(id)?;
            }
            std::thread::sleep(Duration::from_millis(hold_ms));
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

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::{Cli, Task};

    #[test]
    fn the_child_parses_what_the_campaign_spawns() {
        let arguments = RaceChild {
            engine: EngineArg::Duckdb,
            database: "/tmp/x/torture.duckdb".into(),
            id_base: 3_000,
            hold_ms: 300,
        };
        let parsed =
            Cli::try_parse_from(std::iter::once("xtask".into()).chain(arguments.arguments()))
                .expect("parses");
        assert_eq!(
            parsed.task,
            Task::TortureChild(TortureChild::Race(arguments))
        );
    }
}
