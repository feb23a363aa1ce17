//! `cargo xtask bench`: what store's safety costs, measured in one run, as medians with min and max.
//!
//! Process-global faults are installed in a child process of xtask itself (`xtask
//! __bench-child ...`), one per measurement, so that every figure starts from a clean process.

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use store_core::{JournalLadder, JournalMode};
use store_sqlite::SqliteOptions;
use store_testkit::faults::sqlite::SqliteFault;

/// How long each commit-rate run commits for.
const COMMIT_WINDOW: Duration = Duration::from_millis(1500);
/// Runs per figure; the median is reported with min and max.
const RUNS: usize = 3;

struct CommitRateCase {
    mode: JournalMode,
    fault: Option<SqliteFault>,
}

const COMMIT_RATE_CASES: [CommitRateCase; 4] = [
    CommitRateCase {
        mode: JournalMode::Wal,
        fault: None,
    },
    CommitRateCase {
        mode: JournalMode::WalExclusive,
        fault: Some(SqliteFault::NoSharedMemory),
    },
    CommitRateCase {
        mode: JournalMode::Delete,
        fault: Some(SqliteFault::NoSharedMemory),
    },
    CommitRateCase {
        mode: JournalMode::Delete,
        fault: None,
    },
];

struct Figure {
    name: String,
    unit: &'static str,
    runs: Vec<f64>,
}

impl Figure {
    fn median(&self) -> f64 {
        let mut sorted = self.runs.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }

    fn min(&self) -> f64 {
        self.runs.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn max(&self) -> f64 {
        self.runs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }
}

pub fn run(arguments: &[String]) -> ExitCode {
    let json = arguments.iter().any(|argument| argument == "--json");
    let mut figures = Vec::new();
    for case in &COMMIT_RATE_CASES {
        let fault = case.fault.map_or("none", SqliteFault::name);
        let mut runs = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            match commit_rate_in_child(case.mode, fault) {
                Ok(rate) => runs.push(rate),
                Err(message) => {
                    eprintln!(
                        "bench: cannot measure {} under {fault}: {message}",
                        case.mode
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
        figures.push(Figure {
            name: format!("sqlite single-row commits, {} (fault: {fault})", case.mode),
            unit: "commits/s",
            runs,
        });
    }
    match snapshot_figures() {
        Ok(snapshot) => figures.extend(snapshot),
        Err(error) => {
            eprintln!("bench: cannot measure snapshots: {error}");
            return ExitCode::FAILURE;
        }
    }
    print_figures(&figures, json);
    ExitCode::SUCCESS
}

/// The size of the database the snapshot figures copy.
const SNAPSHOT_DATABASE_BYTES: u64 = 256 * 1024 * 1024;

/// Snapshot (copy to a temporary sibling, fsync, rename, fsync the directory) and restore of a
/// 256 MiB DuckDB database, against `cp` of the same file followed by an fsync of the copy.
fn snapshot_figures() -> Result<Vec<Figure>, Box<dyn std::error::Error>> {
    use store_core::files::{Replace, snapshot_file};
    let directory = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR"))?;
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
    let bytes = std::fs::metadata(&database)?.len();
    let megabytes = bytes as f64 / (1024.0 * 1024.0);
    let throughput = |run: &dyn Fn(usize) -> Result<(), Box<dyn std::error::Error>>| {
        let mut runs = Vec::with_capacity(RUNS);
        for index in 0..RUNS {
            let started = Instant::now();
            run(index)?;
            runs.push(megabytes / started.elapsed().as_secs_f64());
        }
        Ok::<_, Box<dyn std::error::Error>>(runs)
    };
    let copy_with_cp = throughput(&|index| {
        let target = directory.path().join(format!("cp-{index}"));
        let status = Command::new("cp").arg(&database).arg(&target).status()?;
        let synced = Command::new("sync").arg(&target).status()?;
        if !status.success() || !synced.success() {
            return Err("cp failed".into());
        }
        Ok(())
    })?;
    let snapshot = throughput(&|_| {
        snapshot_file(
            &database,
            &directory.path().join("big.duckdb.pre-migrate"),
            Replace::Allowed,
        )?;
        Ok(())
    })?;
    let restore = throughput(&|index| {
        let snapshot = directory.path().join("big.duckdb.pre-migrate");
        snapshot_file(
            &snapshot,
            &directory.path().join(format!("restored-{index}")),
            Replace::Refused,
        )?;
        Ok(())
    })?;
    let name = |what: &str| format!("{what} of a {megabytes:.0} MiB duckdb database");
    Ok(vec![
        Figure {
            name: name("cp + fsync"),
            unit: "MiB/s",
            runs: copy_with_cp,
        },
        Figure {
            name: name("store snapshot"),
            unit: "MiB/s",
            runs: snapshot,
        },
        Figure {
            name: name("store restore"),
            unit: "MiB/s",
            runs: restore,
        },
    ])
}

fn print_figures(figures: &[Figure], json: bool) {
    if json {
        let rows: Vec<String> = figures
            .iter()
            .map(|figure| {
                format!(
                    "{{\"name\":\"{}\",\"unit\":\"{}\",\"median\":{:.1},\"min\":{:.1},\"max\":{:.1},\"runs\":{}}}",
                    figure.name,
                    figure.unit,
                    figure.median(),
                    figure.min(),
                    figure.max(),
                    figure.runs.len()
                )
            })
            .collect();
        println!("[{}]", rows.join(","));
        return;
    }
    let width = figures.iter().map(|f| f.name.len()).max().unwrap_or(0);
    println!(
        "{:<width$}  {:>12}  {:>12}  {:>12}  unit",
        "figure", "median", "min", "max"
    );
    for figure in figures {
        println!(
            "{:<width$}  {:>12.0}  {:>12.0}  {:>12.0}  {}",
            figure.name,
            figure.median(),
            figure.min(),
            figure.max(),
            figure.unit
        );
    }
    println!(
        "({RUNS} runs each; commit rates over {} ms in a fresh process each; copies of a cached file)",
        COMMIT_WINDOW.as_millis()
    );
}

fn commit_rate_in_child(mode: JournalMode, fault: &str) -> Result<f64, String> {
    let executable = std::env::current_exe().map_err(|error| error.to_string())?;
    let output = Command::new(executable)
        .args(["__bench-child", "commit-rate", mode.as_str(), fault])
        .output()
        .map_err(|error| error.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse::<f64>()
        .map_err(|error| format!("unreadable child output: {error}"))
}

/// `xtask __bench-child commit-rate MODE FAULT`: prints commits per second.
pub fn child(arguments: &[String]) -> ExitCode {
    let [kind, mode, fault] = arguments else {
        eprintln!("usage: xtask __bench-child commit-rate MODE FAULT");
        return ExitCode::from(2);
    };
    if kind != "commit-rate" {
        eprintln!("unknown bench child `{kind}`");
        return ExitCode::from(2);
    }
    match commit_rate(mode, fault) {
        Ok(rate) => {
            println!("{rate:.1}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn commit_rate(mode: &str, fault: &str) -> Result<f64, Box<dyn std::error::Error>> {
    let mode: JournalMode = mode.parse()?;
    let _guard = match fault {
        "none" => None,
        "no-shared-memory" => Some(SqliteFault::NoSharedMemory.install()?),
        other => return Err(format!("unknown fault `{other}`").into()),
    };
    // Measured on the disk the project lives on, not on a tmpfs: fsync is the cost that matters.
    let directory = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR"))?;
    let path = directory.path().join("bench.db");
    let (connection, report) = SqliteOptions::new(&path)
        .journal_policy(JournalLadder::strict(mode))
        .open()?;
    assert_eq!(report.journal_mode, Some(mode), "{report}");
    connection
        .execute_batch("CREATE TABLE rows (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")?;
    commits_per_second(&connection, &path)
}

fn commits_per_second(
    connection: &rusqlite::Connection,
    path: &Path,
) -> Result<f64, Box<dyn std::error::Error>> {
    let mut statement = connection.prepare("INSERT INTO rows (payload) VALUES (?1)")?;
    let started = Instant::now();
    let mut commits = 0u64;
    while started.elapsed() < COMMIT_WINDOW {
        statement.execute(["a row of about forty bytes of payload...."])?;
        commits += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rows: u64 = connection
        .query_row("SELECT count(*) FROM rows", [], |row| row.get::<_, i64>(0))?
        .unsigned_abs();
    assert_eq!(
        rows,
        commits,
        "every commit of {} is readable",
        path.display()
    );
    Ok(commits as f64 / elapsed)
}
