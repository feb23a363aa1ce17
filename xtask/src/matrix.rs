//! `cargo xtask fault-matrix`: every engine x fault x policy cell, each in a fresh child process of
//! xtask (`__matrix-cell NAME`) and its own temporary directory, compared with its written
//! expectation: the outcome, and which rows may be lost and why.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use store_core::{
    Engine, JournalLadder, JournalMode, Migration, Migrations, RecoveryLadder, RecoveryStep,
};
use store_duckdb::DuckDbOptions;
use store_sqlite::SqliteOptions;
use store_testkit::DirectorySnapshot;
use store_testkit::crash::{KillPoint, kill_at};
use store_testkit::faults::duckdb as duckdb_faults;
use store_testkit::faults::sqlite::SqliteFault;
use store_testkit::faults::{FaultError, mounts};

/// Rows every cell's database holds before the fault: committed and acknowledged.
const ROWS_BEFORE: u64 = 100;
/// Of which, for DuckDB, this many live only in the WAL (committed after the last checkpoint).
const DUCKDB_WAL_ROWS: u32 = 20;

/// What a cell may lose and still be as expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Every row committed before the fault.
    All,
    /// The checkpointed rows and the WAL commits before the damaged entry.
    BeforeDamage,
    /// The checkpointed rows: the WAL's commits are lost with it.
    Checkpointed,
    /// What the pre-migration snapshot holds: the rows written since are lost.
    Snapshot,
    /// The database cannot be opened without recovery, and nothing on disk may change.
    Untouched,
}

impl Keep {
    fn describe(self) -> &'static str {
        match self {
            Keep::All => "all",
            Keep::BeforeDamage => "before damage",
            Keep::Checkpointed => "checkpointed",
            Keep::Snapshot => "snapshot",
            Keep::Untouched => "untouched",
        }
    }
}

struct Cell {
    engine: Engine,
    fault: &'static str,
    policy: &'static str,
    expected: &'static str,
    keep: Keep,
}

const fn sqlite(
    fault: &'static str,
    policy: &'static str,
    expected: &'static str,
    keep: Keep,
) -> Cell {
    Cell {
        engine: Engine::Sqlite,
        fault,
        policy,
        expected,
        keep,
    }
}

const fn duckdb(
    fault: &'static str,
    policy: &'static str,
    expected: &'static str,
    keep: Keep,
) -> Cell {
    Cell {
        engine: Engine::Duckdb,
        fault,
        policy,
        expected,
        keep,
    }
}

/// Every cell, slow ones (SQLite's ten seconds of lock-protocol retries) first so that the other
/// worker drains the rest meanwhile.
const CELLS: &[Cell] = &[
    sqlite("lock-protocol", "default", "fell-back(delete)", Keep::All),
    sqlite(
        "lock-protocol",
        "strict-wal",
        "propagated(WalUnsupported)",
        Keep::All,
    ),
    sqlite("none", "default", "opened(wal)", Keep::All),
    sqlite("none", "strict-wal", "opened(wal)", Keep::All),
    sqlite(
        "no-shared-memory",
        "default",
        "fell-back(delete)",
        Keep::All,
    ),
    sqlite(
        "no-shared-memory",
        "single-process",
        "fell-back(wal-exclusive)",
        Keep::All,
    ),
    sqlite(
        "no-shared-memory",
        "strict-wal",
        "propagated(WalUnsupported)",
        Keep::All,
    ),
    sqlite(
        "no-shared-memory-existing-wal",
        "default",
        "fell-back(wal-exclusive)",
        Keep::All,
    ),
    sqlite(
        "no-shared-memory-existing-wal",
        "converting",
        "fell-back(delete)",
        Keep::All,
    ),
    sqlite(
        "journal-pragma-denied",
        "default",
        "fell-back(delete)",
        Keep::All,
    ),
    sqlite(
        "journal-pragma-denied",
        "strict-wal",
        "propagated(WalUnsupported)",
        Keep::All,
    ),
    sqlite("no-locks", "default", "propagated(Busy)", Keep::All),
    sqlite("commit-io-error-once", "default", "opened(wal)", Keep::All),
    sqlite("commit-io-error", "default", "fell-back(delete)", Keep::All),
    sqlite("another-writer", "default", "propagated(Busy)", Keep::All),
    sqlite("disk-full", "default", "propagated(DiskFull)", Keep::All),
    sqlite(
        "read-only-filesystem",
        "default",
        "propagated(ReadOnly)",
        Keep::All,
    ),
    duckdb("none", "default", "opened", Keep::All),
    duckdb(
        "wal-garbage",
        "default",
        "recovered(salvage-wal)",
        Keep::All,
    ),
    duckdb(
        "wal-garbage",
        "discard-only",
        "recovered(discard-wal)",
        Keep::Checkpointed,
    ),
    duckdb(
        "wal-garbage",
        "snapshot-only",
        "recovered(restore-snapshot)",
        Keep::Snapshot,
    ),
    duckdb(
        "wal-garbage",
        "strict",
        "propagated(WalReplay)",
        Keep::Untouched,
    ),
    duckdb(
        "wal-flipped-byte",
        "default",
        "recovered(salvage-wal)",
        Keep::BeforeDamage,
    ),
    duckdb(
        "wal-flipped-byte",
        "strict",
        "propagated(WalCorrupt)",
        Keep::Untouched,
    ),
    duckdb(
        "foreign-wal",
        "default",
        "recovered(discard-wal)",
        Keep::Checkpointed,
    ),
    duckdb("torn-wal-tail", "default", "opened", Keep::BeforeDamage),
    duckdb(
        "locked-by-process",
        "default",
        "propagated(Locked)",
        Keep::Untouched,
    ),
    duckdb("killed-mid-migration", "default", "opened", Keep::All),
    duckdb(
        "killed-mid-migration-wal-garbage",
        "default",
        "recovered(salvage-wal)",
        Keep::All,
    ),
    duckdb("disk-full", "default", "propagated(DiskFull)", Keep::All),
    duckdb(
        "read-only-filesystem",
        "default",
        "propagated(ReadOnly)",
        Keep::All,
    ),
];

impl Cell {
    fn name(&self) -> String {
        format!("{}/{}/{}", self.engine, self.fault, self.policy)
    }
}

/// What a cell's child reports.
#[derive(Debug, Default, Clone)]
struct Observed {
    outcome: String,
    /// Rows the cell's own rules say must survive (depends on where the damage fell).
    rows_required: u64,
    rows_after: Option<u64>,
    moved_aside: usize,
    directory_unchanged: bool,
    skipped: Option<String>,
    detail: String,
}

impl Observed {
    fn encode(&self) -> String {
        format!(
            "CELL\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.outcome,
            self.rows_required,
            self.rows_after
                .map_or("-".to_owned(), |rows| rows.to_string()),
            self.moved_aside,
            self.directory_unchanged,
            self.skipped.as_deref().unwrap_or("-"),
            self.detail.replace(['\t', '\n'], " ")
        )
    }

    fn decode(line: &str) -> Option<Observed> {
        let fields: Vec<&str> = line.strip_prefix("CELL\t")?.split('\t').collect();
        let [outcome, required, after, moved, unchanged, skipped, detail] = fields[..] else {
            return None;
        };
        Some(Observed {
            outcome: outcome.to_owned(),
            rows_required: required.parse().ok()?,
            rows_after: after.parse().ok(),
            moved_aside: moved.parse().ok()?,
            directory_unchanged: unchanged == "true",
            skipped: (skipped != "-").then(|| skipped.to_owned()),
            detail: detail.to_owned(),
        })
    }
}

struct Row {
    cell: &'static Cell,
    observed: Observed,
    elapsed: Duration,
    verdict: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    AsExpected,
    Differs,
    LostRows,
    Skipped,
}

fn judge(cell: &Cell, observed: &Observed) -> Verdict {
    if observed.skipped.is_some() {
        return Verdict::Skipped;
    }
    if observed.outcome != cell.expected {
        return Verdict::Differs;
    }
    let kept = match cell.keep {
        Keep::Untouched => observed.directory_unchanged,
        _ => observed
            .rows_after
            .is_some_and(|rows| rows >= observed.rows_required),
    };
    if kept {
        Verdict::AsExpected
    } else {
        Verdict::LostRows
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Table,
    Json,
    Markdown,
}

pub fn run(arguments: &[String]) -> ExitCode {
    let mut format = Format::Table;
    let mut engine_filter: Option<String> = None;
    let mut fault_filter: Option<String> = None;
    let mut index = 0;
    while index < arguments.len() {
        let value = arguments.get(index + 1).cloned();
        match (arguments[index].as_str(), value) {
            ("--format", Some(value)) => {
                format = match value.as_str() {
                    "table" => Format::Table,
                    "json" => Format::Json,
                    "markdown" => Format::Markdown,
                    other => return usage(&format!("unknown format `{other}`")),
                };
                index += 2;
            }
            ("--engine", Some(value)) => {
                engine_filter = Some(value);
                index += 2;
            }
            ("--fault", Some(value)) => {
                fault_filter = Some(value);
                index += 2;
            }
            (other, _) => return usage(&format!("unknown or incomplete option `{other}`")),
        }
    }
    let selected: Vec<&'static Cell> = CELLS
        .iter()
        .filter(|cell| {
            engine_filter
                .as_deref()
                .is_none_or(|engine| cell.engine.as_str() == engine)
        })
        .filter(|cell| {
            fault_filter
                .as_deref()
                .is_none_or(|fault| cell.fault.contains(fault))
        })
        .collect();
    if selected.is_empty() {
        return usage("no cell matches the filters");
    }
    let started = Instant::now();
    let rows = run_cells(&selected);
    let wall = started.elapsed();
    match format {
        Format::Table => print_table(&rows, wall),
        Format::Markdown => print_markdown(&rows, wall),
        Format::Json => print_json(&rows, wall),
    }
    let failed = rows
        .iter()
        .any(|row| matches!(row.verdict, Verdict::Differs | Verdict::LostRows));
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "fault-matrix: {problem}\nusage: cargo xtask fault-matrix [--format table|json|markdown] [--engine sqlite|duckdb] [--fault TEXT]"
    );
    ExitCode::from(2)
}

/// Runs the cells on two workers (this machine's cores), printing progress to stderr.
fn run_cells(cells: &[&'static Cell]) -> Vec<Row> {
    let queue = Mutex::new(
        cells
            .iter()
            .copied()
            .enumerate()
            .collect::<Vec<_>>()
            .into_iter(),
    );
    let results: Mutex<Vec<(usize, Row)>> = Mutex::new(Vec::new());
    let done = Mutex::new(0usize);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().expect("queue").next();
                    let Some((position, cell)) = next else { break };
                    let started = Instant::now();
                    let observed = run_cell_in_child(cell);
                    let elapsed = started.elapsed();
                    let verdict = judge(cell, &observed);
                    let mut finished = done.lock().expect("counter");
                    *finished += 1;
                    eprintln!(
                        "[{:>2}/{}] {} {:<50} {:>6} ms  {}",
                        *finished,
                        cells.len(),
                        mark(verdict),
                        cell.name(),
                        elapsed.as_millis(),
                        observed.outcome
                    );
                    drop(finished);
                    results.lock().expect("results").push((
                        position,
                        Row {
                            cell,
                            observed,
                            elapsed,
                            verdict,
                        },
                    ));
                }
            });
        }
    });
    let mut rows = results.into_inner().expect("results");
    rows.sort_by_key(|(position, _)| *position);
    rows.into_iter().map(|(_, row)| row).collect()
}

fn run_cell_in_child(cell: &Cell) -> Observed {
    let failure = |detail: String| Observed {
        outcome: "cell-failed".into(),
        detail,
        ..Observed::default()
    };
    let executable = match std::env::current_exe() {
        Ok(executable) => executable,
        Err(error) => return failure(error.to_string()),
    };
    let output = match Command::new(executable)
        .args(["__matrix-cell", &cell.name()])
        .output()
    {
        Ok(output) => output,
        Err(error) => return failure(error.to_string()),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().find_map(Observed::decode) {
        Some(observed) => observed,
        None => failure(format!(
            "child exited with {} and no result: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        )),
    }
}

fn mark(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::AsExpected => "ok  ",
        Verdict::Differs => "DIFF",
        Verdict::LostRows => "LOST",
        Verdict::Skipped => "skip",
    }
}

fn rows_text(observed: &Observed) -> String {
    observed
        .rows_after
        .map_or("-".into(), |rows| rows.to_string())
}

fn summary(rows: &[Row], wall: Duration) -> String {
    let count = |verdict| rows.iter().filter(|row| row.verdict == verdict).count();
    let skipped = count(Verdict::Skipped);
    format!(
        "{} cells, {} as expected, {} differ, {} skipped, {} rows lost beyond expectation ({:.1} s)",
        rows.len(),
        count(Verdict::AsExpected),
        count(Verdict::Differs),
        skipped,
        rows.iter()
            .filter(|row| row.verdict == Verdict::LostRows)
            .map(|row| row
                .observed
                .rows_required
                .saturating_sub(row.observed.rows_after.unwrap_or(0)))
            .sum::<u64>(),
        wall.as_secs_f64()
    )
}

fn print_table(rows: &[Row], wall: Duration) {
    let header = [
        "",
        "engine",
        "fault",
        "policy",
        "expected",
        "actual",
        "keep",
        "rows before",
        "after",
        "moved",
        "ms",
    ];
    let body: Vec<[String; 11]> = rows
        .iter()
        .map(|row| {
            [
                mark(row.verdict).trim().to_owned(),
                row.cell.engine.to_string(),
                row.cell.fault.to_owned(),
                row.cell.policy.to_owned(),
                row.cell.expected.to_owned(),
                row.observed
                    .skipped
                    .as_ref()
                    .map_or(row.observed.outcome.clone(), |why| {
                        format!("skipped: {why}")
                    }),
                row.cell.keep.describe().to_owned(),
                ROWS_BEFORE.to_string(),
                rows_text(&row.observed),
                row.observed.moved_aside.to_string(),
                row.elapsed.as_millis().to_string(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            body.iter()
                .map(|line| line[column].len())
                .chain([header[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let print_line = |cells: &[&str]| {
        let line: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    };
    print_line(&header);
    for line in &body {
        print_line(&line.iter().map(String::as_str).collect::<Vec<_>>());
    }
    for row in rows
        .iter()
        .filter(|row| matches!(row.verdict, Verdict::Differs | Verdict::LostRows))
    {
        println!("  {}: {}", row.cell.name(), row.observed.detail);
    }
    println!("{}", summary(rows, wall));
}

fn print_markdown(rows: &[Row], wall: Duration) {
    println!(
        "| | engine | fault | policy | expected | actual | keep | rows before | after | moved | ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | `{}` | `{}` | {} | {} | {} | {} | {} |",
            mark(row.verdict).trim(),
            row.cell.engine,
            row.cell.fault,
            row.cell.policy,
            row.cell.expected,
            row.observed
                .skipped
                .as_ref()
                .map_or(row.observed.outcome.clone(), |why| format!(
                    "skipped: {why}"
                )),
            row.cell.keep.describe(),
            ROWS_BEFORE,
            rows_text(&row.observed),
            row.observed.moved_aside,
            row.elapsed.as_millis()
        );
    }
    println!("\n{}", summary(rows, wall));
}

fn json_string(text: &str) -> String {
    let mut quoted = String::from("\"");
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            control if control.is_control() => {
                quoted.push_str(&format!("\\u{:04x}", control as u32))
            }
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

fn print_json(rows: &[Row], wall: Duration) {
    let cells: Vec<String> = rows
        .iter()
        .map(|row| {
            format!(
                "{{\"engine\":{},\"fault\":{},\"policy\":{},\"expected\":{},\"actual\":{},\"verdict\":{},\"keep\":{},\"rows_before\":{},\"rows_required\":{},\"rows_after\":{},\"moved_aside\":{},\"skipped\":{},\"elapsed_ms\":{},\"detail\":{}}}",
                json_string(row.cell.engine.as_str()),
                json_string(row.cell.fault),
                json_string(row.cell.policy),
                json_string(row.cell.expected),
                json_string(&row.observed.outcome),
                json_string(mark(row.verdict).trim()),
                json_string(row.cell.keep.describe()),
                ROWS_BEFORE,
                row.observed.rows_required,
                row.observed.rows_after.map_or("null".into(), |rows| rows.to_string()),
                row.observed.moved_aside,
                row.observed.skipped.as_deref().map_or("null".into(), json_string),
                row.elapsed.as_millis(),
                json_string(&row.observed.detail)
            )
        })
        .collect();
    println!(
        "{{\"summary\":{},\"cells\":[{}]}}",
        json_string(&summary(rows, wall)),
        cells.join(",")
    );
}

/// `xtask __matrix-cell ENGINE/FAULT/POLICY`: runs one cell in this (fresh) process and prints its
/// result line.
pub fn cell_child(arguments: &[String]) -> ExitCode {
    let Some(cell) = arguments
        .first()
        .and_then(|name| CELLS.iter().find(|cell| cell.name() == *name))
    else {
        eprintln!("unknown cell {arguments:?}");
        return ExitCode::from(2);
    };
    let observed = match run_cell(cell) {
        Ok(observed) => observed,
        Err(CellError::Unsupported(reason)) => Observed {
            outcome: "skipped".into(),
            skipped: Some(reason),
            ..Observed::default()
        },
        Err(CellError::Setup(detail)) => Observed {
            outcome: "cell-failed".into(),
            detail,
            ..Observed::default()
        },
    };
    println!("{}", observed.encode());
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}

enum CellError {
    Unsupported(String),
    Setup(String),
}

impl<E: std::fmt::Display> From<E> for CellError {
    fn from(error: E) -> CellError {
        CellError::Setup(error.to_string())
    }
}

fn fault_or_skip<T>(result: Result<T, FaultError>) -> Result<T, CellError> {
    match result {
        Ok(value) => Ok(value),
        Err(FaultError::Unsupported { reason, .. }) => Err(CellError::Unsupported(reason)),
        Err(other) => Err(CellError::Setup(other.to_string())),
    }
}

fn run_cell(cell: &Cell) -> Result<Observed, CellError> {
    let directory = tempfile::Builder::new().prefix("store-matrix-").tempdir()?;
    match cell.engine {
        Engine::Sqlite => sqlite_cell(cell, directory.path()),
        _ => duckdb_cell(cell, directory.path()),
    }
}

fn sqlite_cell(cell: &Cell, directory: &Path) -> Result<Observed, CellError> {
    if cell.fault == "disk-full" {
        fault_or_skip(mounts::mount_small_tmpfs(directory, 256 * 1024))?;
    }
    let path = directory.join("cell.db");
    {
        let connection = rusqlite::Connection::open(&path)?;
        if cell.fault == "no-shared-memory-existing-wal" {
            connection.pragma_update(None, "journal_mode", "wal")?;
        }
    }
    store_testkit::write_rows(Engine::Sqlite, &path, ROWS_BEFORE as u32)?;
    if cell.fault == "read-only-filesystem" {
        fault_or_skip(mounts::remount_read_only(directory))?;
    }
    let holder = if cell.fault == "another-writer" {
        let holder = rusqlite::Connection::open(&path)?;
        holder.execute_batch("BEGIN EXCLUSIVE")?;
        Some(holder)
    } else {
        None
    };
    let fault = match cell.fault {
        "no-shared-memory" | "no-shared-memory-existing-wal" => Some(SqliteFault::NoSharedMemory),
        "lock-protocol" => Some(SqliteFault::LockProtocol),
        "no-locks" => Some(SqliteFault::NoLocks),
        "journal-pragma-denied" => Some(SqliteFault::JournalPragmaDenied),
        "commit-io-error-once" => Some(SqliteFault::CommitIoError { skip: 0, fail: 1 }),
        "commit-io-error" => Some(SqliteFault::CommitIoError {
            skip: 0,
            fail: 1000,
        }),
        _ => None,
    };
    let policy = match cell.policy {
        "single-process" => JournalLadder::single_process(),
        "strict-wal" => JournalLadder::strict(JournalMode::Wal),
        "converting" => JournalLadder::default().converting_existing_wal(true),
        _ => JournalLadder::default(),
    };
    let mut options = SqliteOptions::new(&path)
        .journal_policy(policy)
        .busy_timeout(Duration::from_millis(100));
    if cell.fault == "disk-full" {
        options = options.migrations(Migrations::new(vec![Migration::new(
            1,
            "fill the disk",
            "CREATE TABLE ballast (data BLOB); INSERT INTO ballast VALUES (zeroblob(1048576))",
        )])?);
    }
    let before = DirectorySnapshot::take(directory)?;
    let guard = fault.map(SqliteFault::install).transpose();
    let guard = fault_or_skip(guard)?;
    let (outcome, detail) = match options.open() {
        Ok((connection, report)) => {
            let mode = report.journal_mode.map_or("?", JournalMode::as_str);
            let verb = if report.fell_back() {
                "fell-back"
            } else {
                "opened"
            };
            drop(connection);
            (format!("{verb}({mode})"), report.to_string())
        }
        Err(error) => (
            format!("propagated({})", error.class()),
            error.cause_chain(),
        ),
    };
    drop(guard);
    drop(holder);
    let directory_unchanged = before.diff(&DirectorySnapshot::take(directory)?).is_empty();
    let rows_after = store_testkit::count_rows(Engine::Sqlite, &path).ok();
    Ok(Observed {
        outcome,
        rows_required: ROWS_BEFORE,
        rows_after,
        moved_aside: 0,
        directory_unchanged,
        skipped: None,
        detail,
    })
}

fn duckdb_schema() -> Migrations {
    Migrations::new(vec![
        Migration::new(
            1,
            "runs",
            "CREATE TABLE runs (id INTEGER PRIMARY KEY, name VARCHAR)",
        ),
        Migration::new(
            2,
            "items",
            "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, payload VARCHAR NOT NULL)",
        ),
        Migration::new(
            3,
            "runs status",
            "ALTER TABLE runs ADD COLUMN status VARCHAR",
        ),
    ])
    .expect("valid migrations")
}

fn duckdb_cell(cell: &Cell, directory: &Path) -> Result<Observed, CellError> {
    if cell.fault == "disk-full" {
        fault_or_skip(mounts::mount_small_tmpfs(directory, 4 * 1024 * 1024))?;
    }
    let path = directory.join("cell.duckdb");
    let killed = cell.fault.starts_with("killed-mid-migration");
    let first_schema = if killed {
        Migrations::new(duckdb_schema().all()[..2].to_vec())?
    } else {
        duckdb_schema()
    };
    drop(DuckDbOptions::new(&path).migrations(first_schema).open()?);
    let checkpointed = (ROWS_BEFORE - u64::from(DUCKDB_WAL_ROWS)) as u32;
    let commit_ends =
        duckdb_faults::write_uncheckpointed_rows(&path, checkpointed, DUCKDB_WAL_ROWS)?;
    let mut rows_required = ROWS_BEFORE;
    match cell.fault {
        "wal-garbage" => duckdb_faults::append_garbage_to_wal(&path)?,
        "wal-flipped-byte" => {
            // Damage the 11th WAL commit: the 10 before it must survive.
            duckdb_faults::flip_wal_byte(&path, commit_ends[9] + 20)?;
            rows_required = u64::from(checkpointed) + 10;
        }
        "torn-wal-tail" => {
            duckdb_faults::truncate_wal(&path, commit_ends[14] + 7)?;
            rows_required = u64::from(checkpointed) + 15;
        }
        "foreign-wal" => {
            let other = directory.join("other.duckdb");
            duckdb_faults::write_uncheckpointed_rows(&other, 1, 3)?;
            duckdb_faults::replace_wal_with_foreign(&path, &other)?;
        }
        "killed-mid-migration" | "killed-mid-migration-wal-garbage" => {
            let executable = std::env::current_exe()?;
            let status = Command::new(executable)
                .args(["__matrix-migrate-and-die".as_ref(), path.as_os_str()])
                .status()?;
            if !store_testkit::crash::was_killed(&status) {
                return Err(CellError::Setup(format!(
                    "the migrating child was not killed: {status}"
                )));
            }
            if cell.fault.ends_with("wal-garbage") {
                duckdb_faults::append_garbage_to_wal(&path)?;
            }
        }
        _ => {}
    }
    // A step that gives up more than the damage took lowers the floor, by what it says it loses.
    match cell.keep {
        // The WAL's commits go with the WAL.
        Keep::Checkpointed => rows_required = u64::from(checkpointed),
        // The snapshot holds what the last migration saw: the rows written since are lost.
        Keep::Snapshot => rows_required = 0,
        Keep::All | Keep::BeforeDamage | Keep::Untouched => {}
    }
    if cell.fault == "read-only-filesystem" {
        fault_or_skip(mounts::remount_read_only(directory))?;
    }
    let holder = if cell.fault == "locked-by-process" {
        let mut command = Command::new(std::env::current_exe()?);
        command.arg("__matrix-hold-lock");
        Some(duckdb_faults::LockHolder::from_command(command, &path)?)
    } else {
        None
    };
    let policy = match cell.policy {
        "snapshot-only" => RecoveryLadder::snapshot_only(),
        "discard-only" => RecoveryLadder::new("discard-only", vec![RecoveryStep::DiscardWal]),
        "strict" => RecoveryLadder::strict(),
        _ => RecoveryLadder::default(),
    };
    let mut options = DuckDbOptions::new(&path)
        .migrations(duckdb_schema())
        .recovery_policy(policy);
    if cell.fault == "disk-full" {
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
    let (outcome, moved_aside, detail) = match options.open() {
        Ok((connection, report)) => {
            let outcome = match &report.recovery {
                Some(recovery) => format!("recovered({})", recovery.step),
                None => "opened".to_owned(),
            };
            let moved = report
                .recovery
                .as_ref()
                .map_or(0, |recovery| recovery.moved_aside.len());
            drop(connection);
            (outcome, moved, report.to_string())
        }
        Err(error) => (
            format!("propagated({})", error.class()),
            error.moved_aside().len(),
            error.cause_chain(),
        ),
    };
    drop(holder);
    let directory_unchanged = before.diff(&DirectorySnapshot::take(directory)?).is_empty();
    let rows_after = if outcome.starts_with("propagated") && cell.keep == Keep::Untouched {
        None
    } else {
        store_testkit::count_rows(Engine::Duckdb, &path).ok()
    };
    Ok(Observed {
        outcome,
        rows_required,
        rows_after,
        moved_aside,
        directory_unchanged,
        skipped: None,
        detail,
    })
}

/// `xtask __matrix-migrate-and-die PATH`: migrates to the latest schema and is SIGKILLed right
/// after migration 3 commits, before the checkpoint that follows.
pub fn migrate_and_die(arguments: &[String]) -> ExitCode {
    let Some(path) = arguments.first() else {
        return ExitCode::from(2);
    };
    let result = kill_at(KillPoint::after_migration(3), || {
        DuckDbOptions::new(path)
            .migrations(duckdb_schema())
            .open()
            .map(drop)
    });
    eprintln!("survived the kill point: {result:?}");
    ExitCode::SUCCESS
}

/// `xtask __matrix-hold-lock`: holds a DuckDB database open until killed.
pub fn hold_lock() -> ExitCode {
    duckdb_faults::serve_lock_holder();
    eprintln!("__matrix-hold-lock needs the lock holder's environment");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use store_testkit::faults::Fault;

    #[test]
    fn every_fault_of_the_vocabulary_has_a_cell_per_engine_it_applies_to() {
        for fault in Fault::ALL {
            for engine in fault.engines() {
                assert!(
                    CELLS
                        .iter()
                        .any(|cell| cell.engine == *engine && cell.fault.starts_with(fault.name())),
                    "no {engine} cell for {}",
                    fault.name()
                );
            }
        }
    }

    #[test]
    fn cell_names_are_unique_and_results_round_trip() {
        let mut names: Vec<String> = CELLS.iter().map(Cell::name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CELLS.len());
        let observed = Observed {
            outcome: "recovered(salvage-wal)".into(),
            rows_required: 90,
            rows_after: Some(95),
            moved_aside: 1,
            directory_unchanged: false,
            skipped: None,
            detail: "a\ttab".into(),
        };
        let decoded = Observed::decode(&observed.encode()).expect("decodes");
        assert_eq!(decoded.outcome, observed.outcome);
        assert_eq!(decoded.rows_after, Some(95));
        assert_eq!(decoded.detail, "a tab");
    }

    #[test]
    fn judging_follows_the_written_expectation() {
        let cell = &CELLS
            .iter()
            .find(|c| c.name() == "duckdb/wal-flipped-byte/default")
            .expect("cell");
        let mut observed = Observed {
            outcome: cell.expected.into(),
            rows_required: 90,
            rows_after: Some(90),
            ..Observed::default()
        };
        assert_eq!(judge(cell, &observed), Verdict::AsExpected);
        observed.rows_after = Some(89);
        assert_eq!(judge(cell, &observed), Verdict::LostRows);
        observed.outcome = "opened".into();
        assert_eq!(judge(cell, &observed), Verdict::Differs);
        observed.skipped = Some("no mount rights".into());
        assert_eq!(judge(cell, &observed), Verdict::Skipped);
    }
}
