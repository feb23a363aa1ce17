//! `cargo xtask torture`: campaigns that run for minutes and count what survived.
//!
//! - crash ([`crash`]): per engine, a child process opens through store, migrates, and commits
//!   rows, writing each id and the WAL's length to a side log after its commit; it is SIGKILLed
//!   at a random moment or at a step store logs (a snapshot taken, a migration applied). The
//!   parent reopens through store and checks that the open succeeds at the latest schema version,
//!   that every acknowledged row is there unless it lies inside the loss the report names (a WAL
//!   offset excuses only the commits that end after it, a discarded WAL only the rows written
//!   since the last checkpoint, a restored snapshot only the rows written since it:
//!   [`crate::oracle`]), and (SQLite) `PRAGMA integrity_check`.
//! - concurrency ([`concurrency`]): processes racing to open, migrate and write one database.
//!   SQLite: all succeed and each migration is applied once. DuckDB: the holders' peers get
//!   `Locked` and nothing is ever recovered or moved aside.
//! - bad-input ([`bad_input`]): each bad path, file or sidecar gives a typed error or a reported
//!   recovery, and the directory changes only as the report says.
//! - power ([`power_cuts`]): power cuts at seeded points on a lossy FUSE mount
//!   ([`crate::power`]).
//!
//! Seeded and reproducible: `--seed N` replays a run; each failure prints the seed of its
//! iteration. `--short` is the CI version (fixed seed, small counts). Standard output gets the
//! results; progress goes to standard error ([`crate::progress`]).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use store_core::Engine;

use crate::power;
use crate::progress::Progress;

mod bad_input;
mod concurrency;
mod crash;
mod database;
mod power_cuts;

pub(crate) use concurrency::race_child;
pub(crate) use crash::crash_child;

/// The campaigns, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Campaign {
    /// Children killed at random moments and at the steps store logs; reopened through store.
    Crash,
    /// Processes racing to open, migrate and write one database.
    Concurrency,
    /// Bad paths, files and sidecars.
    BadInput,
    /// Power cuts on a lossy FUSE mount (needs root and /dev/fuse).
    Power,
}

impl Campaign {
    /// As `--campaign` names it.
    fn name(self) -> &'static str {
        match self {
            Campaign::Crash => "crash",
            Campaign::Concurrency => "concurrency",
            Campaign::BadInput => "bad-input",
            Campaign::Power => "power",
        }
    }
}

/// `cargo xtask torture`. `--short` sets CI's counts; a count given as well wins over it.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct TortureArgs {
    /// The CI version: 15 crash iterations, 3 rounds of 4 racers, 30 power iterations, 100 s.
    #[arg(long)]
    short: bool,
    /// The seed every choice derives from: the same seed replays a run.
    #[arg(long, default_value_t = 0x5EED)]
    seed: u64,
    /// Crash iterations per engine [default: 200, --short 15].
    #[arg(long, value_name = "N")]
    iterations: Option<u32>,
    /// Concurrency rounds per engine [default: 20, --short 3].
    #[arg(long, value_name = "N")]
    rounds: Option<u32>,
    /// Racing processes per round, at least 2 [default: 6, --short 4].
    #[arg(long, value_name = "N")]
    racers: Option<u32>,
    /// Power cuts per setup [default: 200, --short 30].
    #[arg(long, value_name = "N")]
    power_iterations: Option<u32>,
    /// Which unsynced pages a power cut keeps [default: each engine's own].
    #[arg(long, value_enum)]
    tearing: Option<power::Tears>,
    /// Stop every campaign after this many seconds [default: 900, --short 100].
    #[arg(long, value_name = "N")]
    time_limit_s: Option<u64>,
    /// Run this campaign (repeatable) [default: all].
    #[arg(long = "campaign", value_enum, value_name = "CAMPAIGN")]
    campaigns: Vec<Campaign>,
}

/// What a run does, from its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    seed: u64,
    crash_iterations: u32,
    concurrency_rounds: u32,
    racers: u32,
    time_limit: Duration,
    power_iterations: u32,
    /// Which pending pages the power cuts keep; `None`: each engine's default.
    tears: Option<power::Tears>,
    campaigns: Vec<Campaign>,
}

impl Settings {
    fn of(arguments: TortureArgs) -> Settings {
        let (crash_iterations, concurrency_rounds, racers, time_limit_s, power_iterations) =
            if arguments.short {
                (15, 3, 4, 100, 30)
            } else {
                (200, 20, 6, 15 * 60, 200)
            };
        let campaigns = if arguments.campaigns.is_empty() {
            vec![
                Campaign::Crash,
                Campaign::Concurrency,
                Campaign::BadInput,
                Campaign::Power,
            ]
        } else {
            arguments.campaigns
        };
        Settings {
            seed: arguments.seed,
            crash_iterations: arguments.iterations.unwrap_or(crash_iterations),
            concurrency_rounds: arguments.rounds.unwrap_or(concurrency_rounds),
            // A race needs two.
            racers: arguments.racers.unwrap_or(racers).max(2),
            time_limit: Duration::from_secs(arguments.time_limit_s.unwrap_or(time_limit_s)),
            power_iterations: arguments.power_iterations.unwrap_or(power_iterations),
            tears: arguments.tearing,
            campaigns,
        }
    }

    /// The steps of a campaign, for the progress bar.
    fn steps(&self, campaign: Campaign) -> u64 {
        let per_engine = match campaign {
            Campaign::Crash => self.crash_iterations,
            Campaign::Concurrency => self.concurrency_rounds,
            Campaign::Power => self.power_iterations,
            Campaign::BadInput => return bad_input::count() as u64,
        };
        2 * u64::from(per_engine)
    }
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

/// The two engines, in the order every campaign runs them.
const ENGINES: [Engine; 2] = [Engine::Sqlite, Engine::Duckdb];

pub(crate) fn run(arguments: TortureArgs) -> ExitCode {
    let settings = Settings::of(arguments);
    let started = Instant::now();
    let deadline = started + settings.time_limit;
    let mut tally = Tally::default();
    println!(
        "torture: seed {} (replay with --seed {})",
        settings.seed, settings.seed
    );
    let total = settings
        .campaigns
        .iter()
        .map(|campaign| settings.steps(*campaign))
        .sum();
    let progress = Progress::new("torture", total);
    for campaign in &settings.campaigns {
        let outcome = match campaign {
            Campaign::Crash => ENGINES.into_iter().try_for_each(|engine| {
                crash::campaign(engine, &settings, deadline, &mut tally, &progress)
            }),
            Campaign::Concurrency => ENGINES.into_iter().try_for_each(|engine| {
                concurrency::campaign(engine, &settings, &mut tally, &progress)
            }),
            Campaign::Power => power_cuts::campaign(&settings, deadline, &mut tally, &progress),
            Campaign::BadInput => bad_input::campaign(&mut tally, &progress),
        };
        if let Err(error) = outcome {
            progress.println(format!(
                "torture: the {} campaign could not run: {error}",
                campaign.name()
            ));
            return ExitCode::FAILURE;
        }
    }
    drop(progress);
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

/// `xtask __torture-child crash|race ...`: a campaign's process of its own.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub(crate) enum TortureChild {
    /// Opens, migrates and commits until killed.
    Crash(crash::CrashChild),
    /// Races its peers to open, migrate and write.
    Race(concurrency::RaceChild),
}

impl TortureChild {
    /// The hidden command's name, as the campaigns spawn it.
    pub(crate) const COMMAND: &str = "__torture-child";
}

/// Runs a campaign's child.
pub(crate) fn child(child: TortureChild) -> ExitCode {
    let outcome = match child {
        TortureChild::Crash(arguments) => crash_child(arguments),
        TortureChild::Race(arguments) => race_child(arguments),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::{Cli, Task};

    fn settings(arguments: &[&str]) -> Result<Settings, clap::Error> {
        let cli = Cli::try_parse_from(["xtask", "torture"].iter().chain(arguments))?;
        match cli.task {
            Task::Torture(arguments) => Ok(Settings::of(arguments)),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn arguments_are_checked() {
        let short = settings(&["--short", "--seed", "9"]).expect("valid");
        assert_eq!((short.seed, short.crash_iterations), (9, 15));
        assert_eq!(
            short.campaigns.len(),
            4,
            "crash, concurrency, bad input, power"
        );
        assert_eq!(short.power_iterations, 30);
        assert_eq!(short.tears, None, "each engine's default");
        let torn = settings(&["--campaign", "power", "--tearing", "prefix"]).expect("valid");
        assert_eq!(
            (torn.campaigns, torn.tears),
            (vec![Campaign::Power], Some(power::Tears::Prefix))
        );
        let power = settings(&[
            "--campaign",
            "power",
            "--tearing",
            "reordered",
            "--power-iterations",
            "30",
        ])
        .expect("valid");
        assert_eq!(power.power_iterations, 30);
        // A count given with --short wins, wherever it stands.
        let longer = settings(&["--iterations", "50", "--short"]).expect("valid");
        assert_eq!(longer.crash_iterations, 50);
        assert_eq!(settings(&["--racers", "1"]).expect("valid").racers, 2);
        for (wrong, flag) in [
            (&["--tearing", "sometimes"][..], "--tearing"),
            (&["--campaign", "chaos"], "--campaign"),
            (&["--seed"], "--seed"),
            (&["--iterations", "many"], "--iterations"),
        ] {
            let error = settings(wrong).expect_err("invalid");
            assert!(error.to_string().contains(flag), "{wrong:?}: {error}");
        }
    }
}
