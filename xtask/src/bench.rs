//! `cargo xtask bench`: what store's safety costs, measured side by side with a raw baseline in
//! one run, as medians with min and max, and the ratio of the medians.
//!
//! It runs in the release profile: a debug xtask re-runs itself with `cargo run --release`. Each
//! figure alternates store and baseline runs so that drift of the machine hits both. Figures
//! under a process-global fault run in a child process of xtask (`xtask __bench-child ...`) with
//! the fault installed, so that nothing else in the run is affected.
//!
//! Progress goes to standard error ([`crate::progress`]): a bar on a terminal, a line per section
//! elsewhere. Standard output gets the table, or under `--json` only this array (serde):
//!
//! ```text
//! [{
//!   "name": "sqlite open, new file (WAL)",
//!   "unit": "ms",                              ms, us or commits/s
//!   "store": {"median": 1.2345, "min": 1.1, "max": 1.5, "runs": 7},
//!   "baseline_name": "rusqlite open + same pragmas",
//!   "baseline": {"median": 1.2, "min": 1.1, "max": 1.4, "runs": 7},
//!   "ratio": 1.029,                            store median / baseline median
//!   "target": "<= 1.10x",                      or "-" where none is set
//!   "verdict": "ok"                            ok, OVER, UNDER, or "" without a target
//! }]
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use serde::Serialize;

use store_core::{JournalLadder, JournalMode, Migration, Migrations, RecoveryLadder, RecoveryStep};
use store_duckdb::DuckDbOptions;
use store_sqlite::{SqliteOptions, Synchronous};
use store_testkit::faults::duckdb::{append_garbage_to_wal, write_uncheckpointed_rows};
use store_testkit::faults::sqlite::SqliteFault;

use crate::progress::Progress;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Runs per side of each figure; the median is reported with min and max.
const RUNS: usize = 7;
/// Opens per run of an open figure (a run's value is their mean).
const SQLITE_OPENS_PER_RUN: usize = 40;
const DUCKDB_OPENS_PER_RUN: usize = 5;
/// Fewer runs for the 256 MiB copies: each is a quarter of a gigabyte written and fsynced.
const COPY_RUNS: usize = 5;
/// How long each commit-rate run commits for.
const COMMIT_WINDOW: Duration = Duration::from_millis(1500);
/// The size of the database the snapshot figures copy.
const SNAPSHOT_DATABASE_BYTES: u64 = 256 * 1024 * 1024;

/// One side of a figure: a value per run.
#[derive(Debug, Clone)]
struct Samples(Vec<f64>);

impl Samples {
    fn median(&self) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }

    fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn max(&self) -> f64 {
        self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }
}

/// What a figure measures, and so which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Time per operation: lower is better.
    Milliseconds,
    /// Time per operation, for the cheap ones (a pool checkout): lower is better.
    Microseconds,
    /// Commits per second: higher is better.
    CommitsPerSecond,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Milliseconds => "ms",
            Unit::Microseconds => "us",
            Unit::CommitsPerSecond => "commits/s",
        }
    }

    fn higher_is_better(self) -> bool {
        self == Unit::CommitsPerSecond
    }
}

/// A line of the table: store's samples, the baseline's, what the ratio is held to.
struct Figure {
    name: String,
    unit: Unit,
    store: Samples,
    baseline_name: String,
    baseline: Samples,
    /// The target (DESIGN.md section 7's where it sets one): the most the ratio may be for a
    /// time, the least for a rate.
    target: Option<f64>,
}

impl Figure {
    fn ratio(&self) -> f64 {
        self.store.median() / self.baseline.median()
    }

    fn verdict(&self) -> &'static str {
        match self.target {
            None => "",
            Some(floor) if self.unit.higher_is_better() => {
                if self.ratio() >= floor {
                    "ok"
                } else {
                    "UNDER"
                }
            }
            Some(limit) if self.ratio() <= limit => "ok",
            Some(_) => "OVER",
        }
    }

    fn target_text(&self) -> String {
        let relation = if self.unit.higher_is_better() {
            ">="
        } else {
            "<="
        };
        self.target
            .map_or_else(|| "-".to_owned(), |bound| format!("{relation} {bound:.2}x"))
    }
}

/// A group of figures measured together.
type Section = fn() -> BenchResult<Vec<Figure>>;

/// `cargo xtask bench`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct BenchArgs {
    /// Print the figures as JSON on standard output (progress stays on standard error).
    #[arg(long)]
    json: bool,
}

impl BenchArgs {
    /// The arguments after `bench` that ask for the same again.
    fn arguments(&self) -> Vec<&'static str> {
        if self.json { vec!["--json"] } else { vec![] }
    }
}

pub(crate) fn run(arguments: BenchArgs) -> ExitCode {
    if cfg!(debug_assertions) && std::env::var_os("STORE_BENCH_ANY_PROFILE").is_none() {
        return rerun_in_release(&arguments);
    }
    let started = Instant::now();
    let mut figures = Vec::new();
    let sections: [(&str, Section); 7] = [
        ("sqlite opens", sqlite_open_figures),
        ("sqlite connections and pools", connection_figures),
        ("sqlite fallback", fallback_figures),
        ("duckdb opens", duckdb_open_figures),
        ("duckdb recovery", recovery_figures),
        ("snapshots", snapshot_figures),
        ("commit rates", commit_rate_figures),
    ];
    let progress = Progress::new("bench", sections.len() as u64);
    for (section, measure) in sections {
        progress.stage(format!("measuring {section}"));
        match measure() {
            Ok(measured) => figures.extend(measured),
            Err(error) => {
                progress.println(format!("bench: cannot measure {section}: {error}"));
                return ExitCode::FAILURE;
            }
        }
        progress.step();
    }
    drop(progress);
    print_figures(&figures, arguments.json, started.elapsed());
    ExitCode::SUCCESS
}

/// Benchmarks in a debug build would measure the debug build: run the release xtask instead.
fn rerun_in_release(arguments: &BenchArgs) -> ExitCode {
    eprintln!(
        "bench: running the release build of xtask (the first build compiles the engines again \
         for the release profile; ccache makes that minutes, not half an hour)"
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "run",
            "--release",
            "--quiet",
            "--package",
            "xtask",
            "--",
            "bench",
        ])
        .args(arguments.arguments())
        .current_dir(package_directory())
        .status();
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("bench: cannot run cargo: {error}");
            ExitCode::FAILURE
        }
    }
}

/// xtask's directory in the clone that ran `cargo xtask`, read when it runs: `.ci/run` shares one
/// target directory between clones, so this binary may have been compiled in another clone, and
/// a path compiled in (`env!`) would point there.
fn package_directory() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| ".".into(), Into::into)
}

/// A scratch directory on the disk the project lives on, not a tmpfs: fsync is the cost that
/// matters.
fn scratch() -> BenchResult<tempfile::TempDir> {
    Ok(tempfile::tempdir_in(package_directory())?)
}

/// Runs `store` and `baseline` alternately, [`RUNS`] times each; each returns one run's value.
fn paired(
    runs: usize,
    mut store: impl FnMut(usize) -> BenchResult<f64>,
    mut baseline: impl FnMut(usize) -> BenchResult<f64>,
) -> BenchResult<(Samples, Samples)> {
    let mut store_runs = Vec::with_capacity(runs);
    let mut baseline_runs = Vec::with_capacity(runs);
    for run in 0..runs {
        // Alternate which side goes first, so that neither always gets the warmer cache.
        if run % 2 == 0 {
            store_runs.push(store(run)?);
            baseline_runs.push(baseline(run)?);
        } else {
            baseline_runs.push(baseline(run)?);
            store_runs.push(store(run)?);
        }
    }
    Ok((Samples(store_runs), Samples(baseline_runs)))
}

/// The mean time of `count` calls of `operation`, in milliseconds.
fn mean_milliseconds(
    count: usize,
    mut operation: impl FnMut(usize) -> BenchResult<()>,
) -> BenchResult<f64> {
    let started = Instant::now();
    for index in 0..count {
        operation(index)?;
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0 / count as f64)
}

/// The pragmas store sets for WAL, done by hand: the baseline of a SQLite open.
fn raw_sqlite_open(
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

fn sqlite_open_figures() -> BenchResult<Vec<Figure>> {
    let directory = scratch()?;
    let fresh = |side: &str, run: usize, index: usize| {
        directory.path().join(format!("{side}-{run}-{index}.db"))
    };
    let (store_new, raw_new) = paired(
        RUNS,
        |run| {
            mean_milliseconds(SQLITE_OPENS_PER_RUN, |index| {
                let (connection, report) = SqliteOptions::new(fresh("store", run, index)).open()?;
                assert_eq!(report.journal_mode, Some(JournalMode::Wal), "{report}");
                drop(connection);
                Ok(())
            })
        },
        |run| {
            mean_milliseconds(SQLITE_OPENS_PER_RUN, |index| {
                drop(raw_sqlite_open(&fresh("raw", run, index), "wal", "full")?);
                Ok(())
            })
        },
    )?;
    let existing = directory.path().join("existing.db");
    drop(SqliteOptions::new(&existing).open()?);
    let (store_existing, raw_existing) = paired(
        RUNS,
        |_| {
            mean_milliseconds(SQLITE_OPENS_PER_RUN, |_| {
                let (connection, report) = SqliteOptions::new(&existing).open()?;
                assert!(!report.created);
                drop(connection);
                Ok(())
            })
        },
        |_| {
            mean_milliseconds(SQLITE_OPENS_PER_RUN, |_| {
                drop(raw_sqlite_open(&existing, "wal", "full")?);
                Ok(())
            })
        },
    )?;
    Ok(vec![
        Figure {
            name: "sqlite open, new file (WAL)".into(),
            unit: Unit::Milliseconds,
            store: store_new,
            baseline_name: "rusqlite open + same pragmas".into(),
            baseline: raw_new,
            target: Some(1.10),
        },
        Figure {
            name: "sqlite open, existing file (WAL)".into(),
            unit: Unit::Milliseconds,
            store: store_existing,
            baseline_name: "rusqlite open + same pragmas".into(),
            baseline: raw_existing,
            target: Some(1.10),
        },
    ])
}

/// Connections made from a decided database and pool checkouts, each against the same done by
/// hand: what deciding once saves every later connection, and what store's pool adds to r2d2.
fn connection_figures() -> BenchResult<Vec<Figure>> {
    let directory = scratch()?;
    let path = directory.path().join("pooled.db");
    let (database, report) = SqliteOptions::new(&path).database()?;
    assert_eq!(report.journal_mode, Some(JournalMode::Wal), "{report}");
    database.connect()?.execute_batch(
        "CREATE TABLE rows (id INTEGER PRIMARY KEY, writer INTEGER NOT NULL, payload TEXT NOT NULL)",
    )?;
    let (store_connect, raw_connect) = paired(
        RUNS,
        |_| {
            mean_milliseconds(SQLITE_OPENS_PER_RUN, |_| {
                drop(database.connect()?);
                Ok(())
            })
        },
        |_| {
            mean_milliseconds(SQLITE_OPENS_PER_RUN, |_| {
                drop(raw_sqlite_open(&path, "wal", "full")?);
                Ok(())
            })
        },
    )?;

    let store_pool = store::pool::r2d2::pool(database.clone(), POOL_SIZE)?;
    let raw_pool = r2d2::Pool::builder()
        .max_size(POOL_SIZE)
        .build(RawManager { path: path.clone() })?;
    let (store_checkout, raw_checkout) = paired(
        RUNS,
        |_| {
            let milliseconds = mean_milliseconds(CHECKOUTS_PER_RUN, |_| {
                drop(store_pool.get()?);
                Ok(())
            })?;
            Ok(milliseconds * 1000.0)
        },
        |_| {
            let milliseconds = mean_milliseconds(CHECKOUTS_PER_RUN, |_| {
                drop(raw_pool.get()?);
                Ok(())
            })?;
            Ok(milliseconds * 1000.0)
        },
    )?;
    // Every commit waits for an fsync: the disk's spread needs all the runs.
    let (store_writes, raw_writes) = paired(
        RUNS,
        |_| pooled_write_rate(&store_pool),
        |_| pooled_write_rate(&raw_pool),
    )?;
    Ok(vec![
        Figure {
            name: "sqlite connect() after the decision (WAL)".into(),
            unit: Unit::Milliseconds,
            store: store_connect,
            baseline_name: "rusqlite open + same pragmas".into(),
            baseline: raw_connect,
            target: Some(1.05),
        },
        Figure {
            name: format!("r2d2 checkout, pool of {POOL_SIZE} (WAL)"),
            unit: Unit::Microseconds,
            store: store_checkout,
            baseline_name: "r2d2 over a plain rusqlite manager".into(),
            baseline: raw_checkout,
            target: Some(1.05),
        },
        Figure {
            name: format!(
                "{WRITER_THREADS} threads writing through a pool of {POOL_SIZE} (WAL, synchronous=full)"
            ),
            unit: Unit::CommitsPerSecond,
            store: store_writes,
            baseline_name: "the same through the plain pool".into(),
            baseline: raw_writes,
            target: Some(0.95),
        },
    ])
}

/// Pool size of the pool figures, and threads of the write figure.
const POOL_SIZE: u32 = 4;
const WRITER_THREADS: i64 = 8;
/// Checkouts per run of the checkout figure (a run's value is their mean).
const CHECKOUTS_PER_RUN: usize = 200_000;

/// A pool manager as an application writes one over plain rusqlite (the pragmas by hand, and the
/// validity check `r2d2_sqlite` makes): the baseline of store's pools.
#[derive(Debug)]
struct RawManager {
    path: PathBuf,
}

impl r2d2::ManageConnection for RawManager {
    type Connection = rusqlite::Connection;
    type Error = rusqlite::Error;

    fn connect(&self) -> Result<rusqlite::Connection, rusqlite::Error> {
        let connection = rusqlite::Connection::open(&self.path)?;
        connection.busy_timeout(Duration::from_secs(5))?;
        connection.pragma_update(None, "journal_mode", "wal")?;
        connection.pragma_update(None, "synchronous", "full")?;
        Ok(connection)
    }

    fn is_valid(&self, connection: &mut rusqlite::Connection) -> Result<(), rusqlite::Error> {
        connection.execute_batch("")
    }

    fn has_broken(&self, _: &mut rusqlite::Connection) -> bool {
        false
    }
}

/// Commits per second of [`WRITER_THREADS`] threads, each checking out a connection per commit
/// for [`COMMIT_WINDOW`]; every commit is counted back from the table.
fn pooled_write_rate<M>(pool: &r2d2::Pool<M>) -> BenchResult<f64>
where
    M: r2d2::ManageConnection<Connection = rusqlite::Connection>,
{
    let before: i64 = pool
        .get()?
        .query_row("SELECT count(*) FROM rows", [], |row| row.get(0))?;
    let started = Instant::now();
    let commits = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITER_THREADS)
            .map(|writer| {
                scope.spawn(move || -> Result<u64, String> {
                    let mut commits = 0;
                    while started.elapsed() < COMMIT_WINDOW {
                        let connection = pool.get().map_err(|error| error.to_string())?;
                        connection
                            .execute(
                                "INSERT INTO rows (writer, payload) VALUES (?1, 'forty bytes of payload, more or less...')",
                                [writer],
                            )
                            .map_err(|error| error.to_string())?;
                        commits += 1;
                    }
                    Ok(commits)
                })
            })
            .collect();
        writers
            .into_iter()
            .map(|writer| writer.join().expect("writer thread"))
            .sum::<Result<u64, String>>()
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let after: i64 = pool
        .get()?
        .query_row("SELECT count(*) FROM rows", [], |row| row.get(0))?;
    assert_eq!(
        (after - before).unsigned_abs(),
        commits,
        "every pooled commit is readable"
    );
    Ok(commits as f64 / elapsed)
}

/// The fallback path, in a child under the no-shared-memory fault.
fn fallback_figures() -> BenchResult<Vec<Figure>> {
    let (store, baseline) = paired_from_child(&BenchChild::FallbackOpen)?;
    Ok(vec![Figure {
        name: "sqlite open under no-shm, existing file (WAL fails -> DELETE)".into(),
        unit: Unit::Milliseconds,
        store,
        baseline_name: "rusqlite DELETE-mode open".into(),
        baseline,
        target: None,
    }])
}

fn fallback_open_in_child() -> BenchResult<(Samples, Samples)> {
    let _fault = SqliteFault::NoSharedMemory.install()?;
    let directory = scratch()?;
    let existing = directory.path().join("existing.db");
    let (connection, report) = SqliteOptions::new(&existing).open()?;
    assert_eq!(report.journal_mode, Some(JournalMode::Delete), "{report}");
    drop(connection);
    paired(
        RUNS,
        |_| {
            mean_milliseconds(SQLITE_OPENS_PER_RUN, |_| {
                let (connection, report) = SqliteOptions::new(&existing).open()?;
                assert!(report.fell_back(), "{report}");
                drop(connection);
                Ok(())
            })
        },
        |_| {
            mean_milliseconds(SQLITE_OPENS_PER_RUN, |_| {
                drop(raw_sqlite_open(&existing, "delete", "extra")?);
                Ok(())
            })
        },
    )
}

fn schema(versions: u32) -> Migrations {
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
fn duckdb_database(path: &Path, versions: u32, rows: u32) -> BenchResult<()> {
    let (connection, _) = DuckDbOptions::new(path)
        .migrations(schema(versions))
        .open()?;
    connection.execute_batch(&format!(
        "INSERT INTO events (id, body) SELECT range, 'event ' || range FROM range({rows})"
    ))?;
    drop(connection);
    Ok(())
}

fn copy_database(from: &Path, to: &Path) -> BenchResult<()> {
    for suffix in ["", ".wal", store_duckdb::SNAPSHOT_SUFFIX] {
        let source = store_core::files::sibling(from, suffix);
        if source.exists() {
            std::fs::copy(&source, store_core::files::sibling(to, suffix))?;
        }
    }
    Ok(())
}

fn duckdb_open_figures() -> BenchResult<Vec<Figure>> {
    let directory = scratch()?;
    let current = directory.path().join("current.duckdb");
    duckdb_database(&current, 2, 100_000)?;
    let (store_current, raw_current) = paired(
        RUNS,
        |_| {
            mean_milliseconds(DUCKDB_OPENS_PER_RUN, |_| {
                let (connection, report) =
                    DuckDbOptions::new(&current).migrations(schema(2)).open()?;
                assert!(report.migrations_applied.is_empty() && report.snapshot.is_none());
                drop(connection);
                Ok(())
            })
        },
        |_| {
            mean_milliseconds(DUCKDB_OPENS_PER_RUN, |_| {
                let connection = duckdb::Connection::open(&current)?;
                let _: i64 = connection.query_row(
                    "SELECT coalesce(max(version), 0) FROM schema_version",
                    [],
                    |row| row.get(0),
                )?;
                drop(connection);
                Ok(())
            })
        },
    )?;
    // One pending migration: each run gets its own copy of a version-1 database.
    let behind = directory.path().join("behind.duckdb");
    duckdb_database(&behind, 1, 100_000)?;
    let copy_for = |side: &str, run: usize| -> BenchResult<PathBuf> {
        let copy = directory.path().join(format!("{side}-{run}.duckdb"));
        copy_database(&behind, &copy)?;
        Ok(copy)
    };
    let (store_migrate, raw_migrate) = paired(
        RUNS,
        |run| {
            let copy = copy_for("store", run)?;
            mean_milliseconds(1, |_| {
                let (connection, report) =
                    DuckDbOptions::new(&copy).migrations(schema(2)).open()?;
                assert_eq!(report.migrations_applied.len(), 1, "{report}");
                drop(connection);
                Ok(())
            })
        },
        |run| {
            let copy = copy_for("raw", run)?;
            mean_milliseconds(1, |_| {
                let connection = duckdb::Connection::open(&copy)?;
                connection.execute_batch(
                    "BEGIN TRANSACTION;
                     ALTER TABLE events ADD COLUMN kind VARCHAR;
                     INSERT INTO schema_version (version) VALUES (2);
                     COMMIT;
                     CHECKPOINT;",
                )?;
                drop(connection);
                Ok(())
            })
        },
    )?;
    let megabytes = std::fs::metadata(&behind)?.len() as f64 / (1024.0 * 1024.0);
    Ok(vec![
        Figure {
            name: "duckdb open, nothing to migrate".into(),
            unit: Unit::Milliseconds,
            store: store_current,
            baseline_name: "duckdb open + version query".into(),
            baseline: raw_current,
            target: Some(1.10),
        },
        Figure {
            name: format!("duckdb open, one pending migration ({megabytes:.1} MiB)"),
            unit: Unit::Milliseconds,
            store: store_migrate,
            baseline_name: "duckdb open + migration + checkpoint".into(),
            baseline: raw_migrate,
            target: None,
        },
    ])
}

/// Each recovery step alone, on copies of one damaged database: version 2 with a pre-migration
/// snapshot at version 1, rows in the WAL, and bytes after them that cannot be replayed. The
/// baseline is a raw open of the same database undamaged and checkpointed.
fn recovery_figures() -> BenchResult<Vec<Figure>> {
    let directory = scratch()?;
    let damaged = directory.path().join("damaged.duckdb");
    duckdb_database(&damaged, 1, 50_000)?;
    drop(DuckDbOptions::new(&damaged).migrations(schema(2)).open()?);
    let healthy = directory.path().join("healthy.duckdb");
    copy_database(&damaged, &healthy)?;
    write_uncheckpointed_rows(&damaged, 0, 50)?;
    append_garbage_to_wal(&damaged)?;
    let mut figures = Vec::new();
    for step in [
        RecoveryStep::SalvageWal,
        RecoveryStep::DiscardWal,
        RecoveryStep::RestoreSnapshot,
    ] {
        let (store, baseline) = paired(
            RUNS,
            |run| {
                let copy = directory.path().join(format!("{step}-{run}.duckdb"));
                copy_database(&damaged, &copy)?;
                mean_milliseconds(1, |_| {
                    let (connection, report) = DuckDbOptions::new(&copy)
                        .migrations(schema(2))
                        .recovery_policy(RecoveryLadder::new("bench", vec![step]))
                        .open()?;
                    let recovery = report.recovery.as_ref().expect("a recovery");
                    assert_eq!(recovery.step, step, "{report}");
                    drop(connection);
                    Ok(())
                })
            },
            |_| {
                mean_milliseconds(1, |_| {
                    let connection = duckdb::Connection::open(&healthy)?;
                    let _: i64 =
                        connection
                            .query_row("SELECT count(*) FROM events", [], |row| row.get(0))?;
                    drop(connection);
                    Ok(())
                })
            },
        )?;
        // Issue 17's targets: a salvage that reads the WAL's framing replays once (issue 18);
        // a discard moves files and opens; a restore copies the snapshot in and migrates.
        let target = match step {
            RecoveryStep::SalvageWal => 3.0,
            RecoveryStep::DiscardWal => 1.5,
            _ => 2.0,
        };
        figures.push(Figure {
            name: format!("duckdb recovery: {step} (damaged WAL)"),
            unit: Unit::Milliseconds,
            store,
            baseline_name: "duckdb open of the undamaged file".into(),
            baseline,
            target: Some(target),
        });
    }
    figures.push(wal_read_figure(directory.path())?);
    Ok(figures)
}

/// What reading a WAL before its replay costs (the torn-tail check every open with a WAL pays),
/// against the replay itself: a WAL of 2,000 single-row commits.
fn wal_read_figure(directory: &Path) -> BenchResult<Figure> {
    let database = directory.join("replayed.duckdb");
    write_uncheckpointed_rows(&database, 0, 2_000)?;
    let wal = store_core::files::sibling(&database, ".wal");
    let (read, replay) = paired(
        RUNS,
        |_| {
            mean_milliseconds(1, |_| {
                let bytes = std::fs::read(&wal)?;
                let reading = store_duckdb::wal::WalReading::read(&bytes)?;
                assert_eq!(reading.tail, store_duckdb::wal::WalTail::Clean);
                Ok(())
            })
        },
        |run| {
            let copy = directory.join(format!("replay-{run}.duckdb"));
            copy_database(&database, &copy)?;
            mean_milliseconds(1, |_| {
                drop(duckdb::Connection::open(&copy)?);
                Ok(())
            })
        },
    )?;
    Ok(Figure {
        name: "duckdb WAL read before replay (2,000 commits)".into(),
        unit: Unit::Milliseconds,
        store: read,
        baseline_name: "duckdb open replaying that WAL".into(),
        baseline: replay,
        target: Some(0.05),
    })
}

/// Snapshot (copy to a temporary sibling, fsync, rename, fsync the directory) and restore of a
/// 256 MiB DuckDB database, against `cp` of the same file followed by an fsync of the copy.
fn snapshot_figures() -> BenchResult<Vec<Figure>> {
    use store_core::files::{Replace, snapshot_file};
    let directory = scratch()?;
    let database = directory.path().join("big.duckdb");
    {
        let connection = duckdb::Connection::open(&database)?;
        // Random doubles barely compress: the file grows to the size asked for.
        let mut rows: u64 = 8_000_000;
        connection.execute_batch("CREATE TABLE filler (a DOUBLE, b DOUBLE)")?;
        while std::fs::metadata(&database)?.len() < SNAPSHOT_DATABASE_BYTES {
            connection.execute_batch(&format!(
                "INSERT INTO filler SELECT random(), random() FROM range({rows}); CHECKPOINT;"
            ))?;
            rows = 2_000_000;
        }
    }
    let megabytes = std::fs::metadata(&database)?.len() as f64 / (1024.0 * 1024.0);
    // Every copy starts with nothing dirty in the page cache: otherwise a run's fsync also pays
    // for writing back what the run before it (or the database's creation) left behind.
    let settle = || Command::new("sync").status().map(drop);
    settle()?;
    let copy_with_cp = |run: usize| {
        let target = directory.path().join(format!("cp-{run}"));
        settle()?;
        mean_milliseconds(1, |_| {
            let copied = Command::new("cp").arg(&database).arg(&target).status()?;
            let synced = Command::new("sync").arg(&target).status()?;
            if !copied.success() || !synced.success() {
                return Err("cp or sync failed".into());
            }
            Ok(())
        })
    };
    let snapshot = directory.path().join("big.duckdb.pre-migrate");
    let (store_snapshot, cp_for_snapshot) = paired(
        COPY_RUNS,
        |_| {
            settle()?;
            mean_milliseconds(1, |_| {
                snapshot_file(&database, &snapshot, Replace::Allowed)?;
                Ok(())
            })
        },
        copy_with_cp,
    )?;
    let (store_restore, cp_for_restore) = paired(
        COPY_RUNS,
        |run| {
            let restored = directory.path().join(format!("restored-{run}"));
            settle()?;
            mean_milliseconds(1, |_| {
                snapshot_file(&snapshot, &restored, Replace::Refused)?;
                Ok(())
            })
        },
        |run| copy_with_cp(run + COPY_RUNS),
    )?;
    // A time ratio of 1/0.9 is a throughput of 0.9x cp's.
    let target = Some(1.0 / 0.9);
    Ok(vec![
        Figure {
            name: format!("snapshot of a {megabytes:.0} MiB duckdb file"),
            unit: Unit::Milliseconds,
            store: store_snapshot,
            baseline_name: "cp + sync".into(),
            baseline: cp_for_snapshot,
            target,
        },
        Figure {
            name: format!("restore of a {megabytes:.0} MiB snapshot"),
            unit: Unit::Milliseconds,
            store: store_restore,
            baseline_name: "cp + sync".into(),
            baseline: cp_for_restore,
            target,
        },
    ])
}

/// The synchronous setting of a commit-rate run: store's default for the journal mode, or the
/// opt-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CommitSync {
    /// No `.synchronous(...)`: `FULL` in the WAL modes, `EXTRA` in the rollback modes.
    Default,
    /// `.synchronous(Synchronous::Normal)`.
    Normal,
}

/// The fault a commit-rate run measures under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BenchFault {
    /// A healthy filesystem.
    None,
    /// SQLite cannot map shared memory.
    NoSharedMemory,
}

impl BenchFault {
    fn as_str(self) -> &'static str {
        match self {
            BenchFault::None => "none",
            BenchFault::NoSharedMemory => "no-shared-memory",
        }
    }
}

impl CommitSync {
    fn as_str(self) -> &'static str {
        match self {
            CommitSync::Default => "default",
            CommitSync::Normal => "normal",
        }
    }

    /// How a figure names it in `mode`: the level, and whether it is the default.
    fn describe(self, mode: JournalMode) -> String {
        match self {
            CommitSync::Default => {
                format!("synchronous={} (default)", Synchronous::default_for(mode))
            }
            CommitSync::Normal => "synchronous=normal (opt-out)".to_owned(),
        }
    }
}

/// Commit rates at store's default synchronous setting under the no-shared-memory fault, each
/// against DELETE under the same fault, with WAL on a healthy filesystem for reference; and what
/// the opt-out (`Synchronous::Normal`) buys in each mode, against the default. One fresh child
/// process per run.
fn commit_rate_figures() -> BenchResult<Vec<Figure>> {
    let rate = |mode: JournalMode, fault: BenchFault, sync: CommitSync| -> BenchResult<f64> {
        let output = child_output(&BenchChild::CommitRate { mode, fault, sync })?;
        Ok(output.trim().parse::<f64>()?)
    };
    let runs = RUNS.min(3);
    let delete_no_shm = Samples(
        (0..runs)
            .map(|_| {
                rate(
                    JournalMode::Delete,
                    BenchFault::NoSharedMemory,
                    CommitSync::Default,
                )
            })
            .collect::<BenchResult<_>>()?,
    );
    let mut defaults = Vec::new();
    let mut opt_outs = Vec::new();
    for (mode, fault) in [
        (JournalMode::WalExclusive, BenchFault::NoSharedMemory),
        (JournalMode::Wal, BenchFault::None),
        (JournalMode::Delete, BenchFault::None),
    ] {
        let (default, normal) = paired(
            runs,
            |_| rate(mode, fault, CommitSync::Default),
            |_| rate(mode, fault, CommitSync::Normal),
        )?;
        let name = |sync: CommitSync| {
            format!(
                "sqlite single-row commits, {mode} (fault: {}), {}",
                fault.as_str(),
                sync.describe(mode)
            )
        };
        // What the opt-out is documented to buy: in the WAL modes a commit waits for no fsync
        // (20 to 30 times the default's rate on the disk measured here); in DELETE it saves two
        // of the five syncs a commit makes under EXTRA (at most 5/3 of the rate, where syncs are
        // all the cost).
        let opt_out_target = if mode.is_wal() { 2.0 } else { 1.2 };
        opt_outs.push(Figure {
            name: name(CommitSync::Normal),
            unit: Unit::CommitsPerSecond,
            store: normal,
            baseline_name: "the same at the default synchronous".into(),
            baseline: default.clone(),
            target: Some(opt_out_target),
        });
        // The WAL rungs are tried before DELETE because they commit faster (one sync a commit
        // against five). DELETE on a healthy filesystem is a reference: the fault does not touch
        // it, so its ratio is 1 give or take the disk's spread (single runs here ranged from 600
        // to 1100 commits/s), which no bound would judge fairly.
        let default_target = mode.is_wal().then_some(1.0);
        defaults.push(Figure {
            name: name(CommitSync::Default),
            unit: Unit::CommitsPerSecond,
            store: default,
            baseline_name: "delete under no-shm".into(),
            baseline: delete_no_shm.clone(),
            target: default_target,
        });
    }
    defaults.extend(opt_outs);
    Ok(defaults)
}

/// `xtask __bench-child KIND ...`: measurements that need a process of their own.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub(crate) enum BenchChild {
    /// Opens of an existing file under the no-shared-memory fault (WAL fails, DELETE) against
    /// raw DELETE-mode opens: two lines of samples, store's then the baseline's.
    FallbackOpen,
    /// Commits per second for [`COMMIT_WINDOW`] in one journal mode, under a fault.
    CommitRate {
        /// The journal mode, strictly (`wal`, `wal-exclusive`, `delete`...).
        mode: JournalMode,
        #[arg(value_enum)]
        fault: BenchFault,
        #[arg(value_enum)]
        sync: CommitSync,
    },
}

impl BenchChild {
    /// The hidden command's name, as the bench spawns it.
    pub(crate) const COMMAND: &str = "__bench-child";

    /// The command line that runs this child (after the executable).
    fn arguments(&self) -> Vec<&'static str> {
        match self {
            BenchChild::FallbackOpen => vec![Self::COMMAND, "fallback-open"],
            BenchChild::CommitRate { mode, fault, sync } => vec![
                Self::COMMAND,
                "commit-rate",
                mode.as_str(),
                fault.as_str(),
                sync.as_str(),
            ],
        }
    }
}

fn child_output(child: &BenchChild) -> BenchResult<String> {
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
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A child's paired samples: two lines, store's values then the baseline's.
fn paired_from_child(child: &BenchChild) -> BenchResult<(Samples, Samples)> {
    let output = child_output(child)?;
    let mut lines = output.lines().map(|line| {
        line.split_whitespace()
            .map(str::parse::<f64>)
            .collect::<Result<Vec<_>, _>>()
    });
    match (lines.next(), lines.next()) {
        (Some(store), Some(baseline)) => Ok((Samples(store?), Samples(baseline?))),
        _ => Err(format!("bench child {child:?} printed {output:?}").into()),
    }
}

/// One side of a figure in the JSON.
#[derive(Debug, Serialize)]
struct SamplesJson {
    median: f64,
    min: f64,
    max: f64,
    runs: usize,
}

impl SamplesJson {
    fn of(samples: &Samples) -> SamplesJson {
        SamplesJson {
            median: rounded(samples.median(), 4),
            min: rounded(samples.min(), 4),
            max: rounded(samples.max(), 4),
            runs: samples.0.len(),
        }
    }
}

/// One figure in the JSON (the shape is in the module's documentation).
#[derive(Debug, Serialize)]
struct FigureJson<'a> {
    name: &'a str,
    unit: &'static str,
    store: SamplesJson,
    baseline_name: &'a str,
    baseline: SamplesJson,
    ratio: f64,
    target: String,
    verdict: &'static str,
}

impl<'a> FigureJson<'a> {
    fn of(figure: &'a Figure) -> FigureJson<'a> {
        FigureJson {
            name: &figure.name,
            unit: figure.unit.as_str(),
            store: SamplesJson::of(&figure.store),
            baseline_name: &figure.baseline_name,
            baseline: SamplesJson::of(&figure.baseline),
            ratio: rounded(figure.ratio(), 3),
            target: figure.target_text(),
            verdict: figure.verdict(),
        }
    }
}

/// `value` to `decimals` places: the runs' spread makes more digits noise.
fn rounded(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

fn print_figures(figures: &[Figure], json: bool, elapsed: Duration) {
    if json {
        let figures: Vec<FigureJson<'_>> = figures.iter().map(FigureJson::of).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&figures).expect("figures are strings and numbers")
        );
        return;
    }
    let number = |value: f64| {
        if value >= 100.0 {
            format!("{value:.0}")
        } else {
            format!("{value:.3}")
        }
    };
    let spread = |samples: &Samples| {
        format!(
            "{} ({}-{})",
            number(samples.median()),
            number(samples.min()),
            number(samples.max())
        )
    };
    let name_width = figures.iter().map(|f| f.name.len()).max().unwrap_or(0);
    let baseline_width = figures
        .iter()
        .map(|f| f.baseline_name.len())
        .max()
        .unwrap_or(0);
    println!(
        "| {:<name_width$} | {:>26} | {:<baseline_width$} | {:>26} | {:>6} | {:>8} | unit |",
        "figure",
        "store median (min-max)",
        "baseline",
        "baseline median (min-max)",
        "ratio",
        "target"
    );
    println!(
        "|{}|{}|{}|{}|{}|{}|------|",
        "-".repeat(name_width + 2),
        "-".repeat(28),
        "-".repeat(baseline_width + 2),
        "-".repeat(28),
        "-".repeat(8),
        "-".repeat(10)
    );
    for figure in figures {
        println!(
            "| {:<name_width$} | {:>26} | {:<baseline_width$} | {:>26} | {:>5.2}x | {:>8} | {} {}",
            figure.name,
            spread(&figure.store),
            figure.baseline_name,
            spread(&figure.baseline),
            figure.ratio(),
            figure.target_text(),
            figure.unit.as_str(),
            figure.verdict()
        );
    }
    println!(
        "\nratio = store median / baseline median. {RUNS} runs a side (copies: {COPY_RUNS}, commit \
         rates: 3 fresh processes of {} ms); open figures are the mean of {SQLITE_OPENS_PER_RUN} \
         (sqlite) or {DUCKDB_OPENS_PER_RUN} (duckdb) opens per run, checkouts of \
         {CHECKOUTS_PER_RUN}. A target bounds a time \
         ratio from above and a rate ratio from below. The opt-out rows are store at \
         synchronous=normal against store at its default: what giving up power-safe commits buys. \
         Whole bench: {:.0} s.",
        COMMIT_WINDOW.as_millis(),
        elapsed.as_secs_f64()
    );
}

/// Runs a measurement child and prints what it measured.
pub(crate) fn child(child: BenchChild) -> ExitCode {
    let outcome: BenchResult<String> = match child {
        BenchChild::FallbackOpen => fallback_open_in_child().map(|(store, baseline)| {
            let line = |samples: &Samples| {
                samples
                    .0
                    .iter()
                    .map(f64::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            format!("{}\n{}", line(&store), line(&baseline))
        }),
        BenchChild::CommitRate { mode, fault, sync } => {
            commit_rate(mode, fault, sync).map(|rate| format!("{rate:.1}"))
        }
    };
    match outcome {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn commit_rate(mode: JournalMode, fault: BenchFault, sync: CommitSync) -> BenchResult<f64> {
    let _guard = match fault {
        BenchFault::None => None,
        BenchFault::NoSharedMemory => Some(SqliteFault::NoSharedMemory.install()?),
    };
    let directory = scratch()?;
    let path = directory.path().join("bench.db");
    let mut options = SqliteOptions::new(&path).journal_policy(JournalLadder::strict(mode));
    if sync == CommitSync::Normal {
        options = options.synchronous(Synchronous::Normal);
    }
    let (connection, report) = options.open()?;
    assert_eq!(report.journal_mode, Some(mode), "{report}");
    let expected = match sync {
        CommitSync::Default => Synchronous::default_for(mode),
        CommitSync::Normal => Synchronous::Normal,
    };
    assert_eq!(
        report.durability,
        Some(expected.durability_in(mode)),
        "{report}"
    );
    connection
        .execute_batch("CREATE TABLE rows (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")?;
    let mut statement = connection.prepare("INSERT INTO rows (payload) VALUES (?1)")?;
    let started = Instant::now();
    let mut commits = 0u64;
    while started.elapsed() < COMMIT_WINDOW {
        statement.execute(["a row of about forty bytes of payload...."])?;
        commits += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rows: i64 = connection.query_row("SELECT count(*) FROM rows", [], |row| row.get(0))?;
    assert_eq!(
        rows.unsigned_abs(),
        commits,
        "every commit of {} is readable",
        path.display()
    );
    Ok(commits as f64 / elapsed)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::{Cli, Task};

    #[test]
    fn the_children_parse_what_the_bench_spawns() {
        let mut children = vec![BenchChild::FallbackOpen];
        for mode in [
            JournalMode::Wal,
            JournalMode::WalExclusive,
            JournalMode::Delete,
        ] {
            for fault in [BenchFault::None, BenchFault::NoSharedMemory] {
                for sync in [CommitSync::Default, CommitSync::Normal] {
                    children.push(BenchChild::CommitRate { mode, fault, sync });
                }
            }
        }
        for child in children {
            let parsed = Cli::try_parse_from(std::iter::once("xtask").chain(child.arguments()))
                .unwrap_or_else(|error| panic!("{child:?}: {error}"));
            assert_eq!(parsed.task, Task::BenchChild(child));
        }
    }

    #[test]
    fn the_json_is_an_array_of_figures_from_serde() {
        let figure = Figure {
            name: "a \"quoted\" figure".into(),
            unit: Unit::Milliseconds,
            store: Samples(vec![1.0, 2.0, 3.000_04]),
            baseline_name: "baseline".into(),
            baseline: Samples(vec![2.0, 2.0, 2.0]),
            target: Some(1.1),
        };
        let json = serde_json::to_value(vec![FigureJson::of(&figure)]).expect("serializes");
        assert_eq!(json[0]["name"], "a \"quoted\" figure");
        assert_eq!(json[0]["store"]["max"], 3.0);
        assert_eq!(json[0]["ratio"], 1.0);
        assert_eq!(json[0]["target"], "<= 1.10x");
        assert_eq!(json[0]["verdict"], "ok");
    }
}
