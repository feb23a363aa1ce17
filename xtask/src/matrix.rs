//! `cargo xtask fault-matrix`: every engine x fault x policy cell, each in a fresh child process of
//! xtask (`__matrix-cell NAME`) and its own temporary directory, judged against its written
//! expectation and against the promises store makes whatever the cell:
//!
//! - the outcome: opened, fell back, recovered by a step, or a propagated error class;
//! - the rows the cell's [`Keep`] requires are there, and no row that must not be;
//! - every acknowledged row that is missing lies inside the loss the open's report names
//!   ([`crate::oracle`]); any other is a silent loss and fails the cell (a torn DuckDB WAL tail
//!   included: store's WAL reader finds it before DuckDB drops it, and reports it);
//! - every file the report says it moved aside stands at its new name with the bytes that stood
//!   at the old one and permissions no wider, and a recovery moved at least what it replaced;
//! - after a migrating process is killed, the files hold the schema version its commits imply,
//!   with exactly the effects of the migrations up to it, and store's reopen reaches the latest
//!   version with every migration applied exactly once.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use store_core::files::sibling;
use store_core::{
    DataLoss, Engine, FailureClass, JournalLadder, JournalMode, Migration, Migrations, MovedAside,
    OpenReport, RecoveryLadder, RecoveryStep,
};
use store_duckdb::DuckDbOptions;
use store_sqlite::SqliteOptions;
use store_testkit::DirectorySnapshot;
use store_testkit::crash::{KillPoint, kill_at, was_killed};
use store_testkit::faults::duckdb as duckdb_faults;
use store_testkit::faults::sqlite::SqliteFault;
use store_testkit::faults::{FaultError, mounts};

use crate::oracle::{Ledger, Place};
use crate::power::{self, PowerRow};

/// Rows every cell's database holds before the fault: committed and acknowledged.
const ROWS_BEFORE: u64 = 100;
/// Of which, for DuckDB, this many live only in the WAL (committed after the last checkpoint).
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
/// The database file of a SQLite cell.
const SQLITE_FILE: &str = "cell.db";
/// The database file of a DuckDB cell.
const DUCKDB_FILE: &str = "cell.duckdb";

/// What a cell may lose and still be as expected, whatever the report says: the report must also
/// name every loss, but a report cannot lower this floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Every row acknowledged before the fault.
    All,
    /// The checkpointed rows and the WAL commits that end before the damaged byte.
    BeforeDamage,
    /// The checkpointed rows: the WAL's commits are lost with it.
    Checkpointed,
    /// Exactly the rows standing when the pre-migration snapshot was taken: not fewer, and none of
    /// those written after it (a database holding them was not restored from the snapshot).
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

/// What an open did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Opened without falling back or recovering, in this journal mode (SQLite).
    Opened(Option<JournalMode>),
    /// Opened after leaving the preferred journal mode, in this one.
    FellBack(JournalMode),
    /// Opened after this recovery step.
    Recovered(RecoveryStep),
    /// Refused, with this class.
    Propagated(FailureClass),
}

/// The DuckDB recovery steps, for reading an outcome back.
const RECOVERY_STEPS: [RecoveryStep; 3] = [
    RecoveryStep::SalvageWal,
    RecoveryStep::DiscardWal,
    RecoveryStep::RestoreSnapshot,
];

impl Outcome {
    /// What an open that succeeded did, from its report.
    pub(crate) fn of(report: &OpenReport) -> Outcome {
        match (&report.recovery, report.journal_mode) {
            (Some(recovery), _) => Outcome::Recovered(recovery.step),
            (None, Some(mode)) if report.fell_back() => Outcome::FellBack(mode),
            (None, mode) => Outcome::Opened(mode),
        }
    }

    /// Reads back what [`Outcome`]'s `Display` wrote.
    fn parse(text: &str) -> Option<Outcome> {
        let mut candidates = vec![Outcome::Opened(None)];
        for mode in JournalMode::ALL {
            candidates.extend([Outcome::Opened(Some(mode)), Outcome::FellBack(mode)]);
        }
        candidates.extend(RECOVERY_STEPS.map(Outcome::Recovered));
        candidates.extend(FailureClass::ALL.map(Outcome::Propagated));
        candidates
            .into_iter()
            .find(|outcome| outcome.to_string() == text)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Opened(None) => formatter.write_str("opened"),
            Outcome::Opened(Some(mode)) => write!(formatter, "opened({mode})"),
            Outcome::FellBack(mode) => write!(formatter, "fell-back({mode})"),
            Outcome::Recovered(step) => write!(formatter, "recovered({step})"),
            Outcome::Propagated(class) => write!(formatter, "propagated({class})"),
        }
    }
}

#[derive(Debug)]
struct Cell {
    engine: Engine,
    fault: &'static str,
    policy: &'static str,
    expected: Outcome,
    keep: Keep,
}

const fn sqlite(fault: &'static str, policy: &'static str, expected: Outcome, keep: Keep) -> Cell {
    Cell {
        engine: Engine::Sqlite,
        fault,
        policy,
        expected,
        keep,
    }
}

const fn duckdb(fault: &'static str, policy: &'static str, expected: Outcome, keep: Keep) -> Cell {
    Cell {
        engine: Engine::Duckdb,
        fault,
        policy,
        expected,
        keep,
    }
}

impl Cell {
    fn name(&self) -> String {
        format!("{}/{}/{}", self.engine, self.fault, self.policy)
    }
}

use Outcome::{FellBack, Opened, Propagated, Recovered};

const WAL: Option<JournalMode> = Some(JournalMode::Wal);

/// Every cell, slow ones (SQLite's ten seconds of lock-protocol retries, the long migrations of
/// the killed-inside cells) first so that the other worker drains the rest meanwhile.
const CELLS: &[Cell] = &[
    // Filesystems without what WAL needs (shared memory, working locks, the journal pragma): the
    // open falls back to a mode that works, or a strict policy refuses with WalUnsupported; no row
    // is lost either way.
    sqlite(
        "lock-protocol",
        "default",
        FellBack(JournalMode::Delete),
        Keep::All,
    ),
    sqlite(
        "lock-protocol",
        "strict-wal",
        Propagated(FailureClass::WalUnsupported),
        Keep::All,
    ),
    // A process killed right after a migration commits, or inside a multi-statement migration
    // before its commit: the files hold the version the commits imply (never a half-applied
    // migration), and store's reopen reaches the latest with each migration applied once.
    sqlite("killed-inside-migration", "default", Opened(WAL), Keep::All),
    duckdb(
        "killed-inside-migration",
        "default",
        Opened(None),
        Keep::All,
    ),
    sqlite("killed-mid-migration", "default", Opened(WAL), Keep::All),
    // No fault: the baseline opens as asked.
    sqlite("none", "default", Opened(WAL), Keep::All),
    sqlite("none", "strict-wal", Opened(WAL), Keep::All),
    sqlite(
        "no-shared-memory",
        "default",
        FellBack(JournalMode::Delete),
        Keep::All,
    ),
    sqlite(
        "no-shared-memory",
        "single-process",
        FellBack(JournalMode::WalExclusive),
        Keep::All,
    ),
    sqlite(
        "no-shared-memory",
        "strict-wal",
        Propagated(FailureClass::WalUnsupported),
        Keep::All,
    ),
    sqlite(
        "no-shared-memory-existing-wal",
        "default",
        FellBack(JournalMode::WalExclusive),
        Keep::All,
    ),
    sqlite(
        "no-shared-memory-existing-wal",
        "converting",
        FellBack(JournalMode::Delete),
        Keep::All,
    ),
    sqlite(
        "journal-pragma-denied",
        "default",
        FellBack(JournalMode::Delete),
        Keep::All,
    ),
    sqlite(
        "journal-pragma-denied",
        "strict-wal",
        Propagated(FailureClass::WalUnsupported),
        Keep::All,
    ),
    // Locks and busy writers are never recovered from: the open says so and nothing is lost.
    sqlite(
        "no-locks",
        "default",
        Propagated(FailureClass::Busy),
        Keep::All,
    ),
    // An I/O error at a commit: retried, or the ladder falls back; committed rows stay.
    sqlite("commit-io-error-once", "default", Opened(WAL), Keep::All),
    sqlite(
        "commit-io-error",
        "default",
        FellBack(JournalMode::Delete),
        Keep::All,
    ),
    sqlite(
        "another-writer",
        "default",
        Propagated(FailureClass::Busy),
        Keep::All,
    ),
    // A full disk or a read-only mount: a typed error, every committed row still readable.
    sqlite(
        "disk-full",
        "default",
        Propagated(FailureClass::DiskFull),
        Keep::All,
    ),
    sqlite(
        "read-only-filesystem",
        "default",
        Propagated(FailureClass::ReadOnly),
        Keep::All,
    ),
    duckdb("none", "default", Opened(None), Keep::All),
    // A WAL DuckDB cannot replay: each recovery step keeps what it promises, reports what it
    // loses (the oracle maps the report to rows), and moves aside what it replaces, whole; a
    // strict policy refuses and touches nothing.
    duckdb(
        "wal-garbage",
        "default",
        Recovered(RecoveryStep::SalvageWal),
        Keep::All,
    ),
    duckdb(
        "wal-garbage",
        "discard-only",
        Recovered(RecoveryStep::DiscardWal),
        Keep::Checkpointed,
    ),
    duckdb(
        "wal-garbage",
        "snapshot-only",
        Recovered(RecoveryStep::RestoreSnapshot),
        Keep::Snapshot,
    ),
    duckdb(
        "wal-garbage",
        "strict",
        Propagated(FailureClass::WalReplay),
        Keep::Untouched,
    ),
    duckdb(
        "wal-flipped-byte",
        "default",
        Recovered(RecoveryStep::SalvageWal),
        Keep::BeforeDamage,
    ),
    duckdb(
        "wal-flipped-byte",
        "strict",
        Propagated(FailureClass::WalCorrupt),
        Keep::Untouched,
    ),
    duckdb(
        "foreign-wal",
        "default",
        Recovered(RecoveryStep::DiscardWal),
        Keep::Checkpointed,
    ),
    // DuckDB would replay a torn WAL up to the cut and say nothing: store's WAL reader finds the
    // tail first, keeps the original WAL aside and reports what the cut dropped.
    duckdb(
        "torn-wal-tail",
        "default",
        Recovered(RecoveryStep::SalvageWal),
        Keep::BeforeDamage,
    ),
    // A WAL of 1,000 commits, one byte flipped at each of 20 seeded offsets (each on its own copy):
    // every salvage keeps each commit before the damaged entry, and the loss it reports starts
    // exactly where the last of them ends, never inside or after the damaged entry.
    duckdb(
        "wal-flipped-byte-seeded",
        "default",
        Recovered(RecoveryStep::SalvageWal),
        Keep::BeforeDamage,
    ),
    duckdb(
        "locked-by-process",
        "default",
        Propagated(FailureClass::Locked),
        Keep::Untouched,
    ),
    duckdb("killed-mid-migration", "default", Opened(None), Keep::All),
    duckdb(
        "killed-mid-migration-wal-garbage",
        "default",
        Recovered(RecoveryStep::SalvageWal),
        Keep::All,
    ),
    duckdb(
        "disk-full",
        "default",
        Propagated(FailureClass::DiskFull),
        Keep::All,
    ),
    duckdb(
        "read-only-filesystem",
        "default",
        Propagated(FailureClass::ReadOnly),
        Keep::All,
    ),
];

/// What became of the acknowledged rows, counted by the child against its [`Ledger`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Rows {
    /// Rows acknowledged before the fault.
    acknowledged: u64,
    /// Of which the cell's [`Keep`] requires.
    required: u64,
    /// Acknowledged rows present after the open.
    kept: u64,
    /// Required rows missing.
    required_missing: u64,
    /// Missing rows inside the loss the report names.
    lost_reported: u64,
    /// Missing rows outside anything the report names.
    lost_silent: u64,
    /// Rows present that must not be: never acknowledged, or (for [`Keep::Snapshot`]) written
    /// after the snapshot the database was restored from.
    unexpected: u64,
}

impl Rows {
    /// The counts of two cases together.
    fn plus(self, other: Rows) -> Rows {
        Rows {
            acknowledged: self.acknowledged + other.acknowledged,
            required: self.required + other.required,
            kept: self.kept + other.kept,
            required_missing: self.required_missing + other.required_missing,
            lost_reported: self.lost_reported + other.lost_reported,
            lost_silent: self.lost_silent + other.lost_silent,
            unexpected: self.unexpected + other.unexpected,
        }
    }

    fn fields(&self) -> [(&'static str, u64); 7] {
        [
            ("acknowledged", self.acknowledged),
            ("required", self.required),
            ("kept", self.kept),
            ("required_missing", self.required_missing),
            ("lost_reported", self.lost_reported),
            ("lost_silent", self.lost_silent),
            ("unexpected", self.unexpected),
        ]
    }

    fn set(&mut self, name: &str, value: u64) -> bool {
        let field = match name {
            "acknowledged" => &mut self.acknowledged,
            "required" => &mut self.required,
            "kept" => &mut self.kept,
            "required_missing" => &mut self.required_missing,
            "lost_reported" => &mut self.lost_reported,
            "lost_silent" => &mut self.lost_silent,
            "unexpected" => &mut self.unexpected,
            _ => return false,
        };
        *field = value;
        true
    }
}

/// A promise the child checked beyond the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckKind {
    /// Files the report says it moved aside stand whole at their new names, no wider; a
    /// recovery moved at least what it replaced.
    MovedAside,
    /// Right after a kill, the files hold the version the migrations' commits imply, with exactly
    /// the effects of the migrations up to it.
    SchemaAfterKill,
    /// After store's reopen: the latest version, with the effects of every migration, once.
    SchemaAfterReopen,
    /// The reopen applied exactly the migrations that had not committed before the kill.
    MigrationsAppliedOnce,
    /// A salvage's reported loss starts exactly where the last commit before the damaged WAL
    /// entry ends: never inside or after that entry (the row count cannot see that, since no
    /// commit ends inside an entry).
    LossBoundary,
}

impl CheckKind {
    const ALL: [CheckKind; 5] = [
        CheckKind::MovedAside,
        CheckKind::SchemaAfterKill,
        CheckKind::SchemaAfterReopen,
        CheckKind::MigrationsAppliedOnce,
        CheckKind::LossBoundary,
    ];

    fn as_str(self) -> &'static str {
        match self {
            CheckKind::MovedAside => "moved-aside",
            CheckKind::SchemaAfterKill => "schema-after-kill",
            CheckKind::SchemaAfterReopen => "schema-after-reopen",
            CheckKind::MigrationsAppliedOnce => "migrations-applied-once",
            CheckKind::LossBoundary => "loss-boundary",
        }
    }

    fn verdict(self) -> Verdict {
        match self {
            CheckKind::MovedAside => Verdict::MovedAside,
            CheckKind::LossBoundary => Verdict::LossBoundary,
            CheckKind::SchemaAfterKill
            | CheckKind::SchemaAfterReopen
            | CheckKind::MigrationsAppliedOnce => Verdict::Schema,
        }
    }
}

/// One checked promise and what the child found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Check {
    kind: CheckKind,
    holds: bool,
    detail: String,
}

impl Check {
    fn new(kind: CheckKind, holds: bool, detail: impl Into<String>) -> Check {
        Check {
            kind,
            holds,
            detail: detail.into(),
        }
    }
}

/// What a cell's child reports.
#[derive(Debug, Clone, Default)]
struct Observed {
    /// What the open did; `None` when the cell did not get that far.
    outcome: Option<Outcome>,
    /// The acknowledged rows; `None` when they could not be read (a refused open of a database
    /// the cell must leave untouched is not read at all).
    rows: Option<Rows>,
    /// Files the report says were moved aside: old name, new name.
    moved_aside: Vec<(String, String)>,
    /// Promises checked beyond the rows.
    checks: Vec<Check>,
    directory_unchanged: bool,
    /// Why the cell could not run here (a capability missing).
    skipped: Option<String>,
    /// Why the cell could not set up its fault: a failure, never a pass.
    setup_failure: Option<String>,
    /// The report or the error, in words.
    detail: String,
}

/// The prefix of every line of a child's result on its standard output.
const RESULT_PREFIX: &str = "CELL";

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '\t' => escaped.push_str("\\t"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn unescape(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        if character != '\\' {
            plain.push(character);
            continue;
        }
        match characters.next() {
            Some('t') => plain.push('\t'),
            Some('n') => plain.push('\n'),
            Some('r') => plain.push('\r'),
            Some(other) => plain.push(other),
            None => plain.push('\\'),
        }
    }
    plain
}

impl Observed {
    /// This observation and a later case's of the same cell, as one: rows summed, moved files
    /// and checks joined, the directory unchanged only if both were; the later outcome (and its
    /// detail) wins when it is not the one expected, so that one case that differs fails the
    /// cell, and so do rows that could not be read in any case.
    fn and(mut self, cell: &Cell, later: Observed) -> Observed {
        self.rows = match (self.rows, later.rows) {
            (Some(rows), Some(more)) => Some(rows.plus(more)),
            _ => None,
        };
        self.moved_aside.extend(later.moved_aside);
        self.checks.extend(later.checks);
        self.directory_unchanged &= later.directory_unchanged;
        self.skipped = self.skipped.or(later.skipped);
        self.setup_failure = self.setup_failure.or(later.setup_failure);
        if self.outcome == Some(cell.expected) && later.outcome != Some(cell.expected) {
            self.outcome = later.outcome;
            self.detail = later.detail;
        }
        self
    }

    /// A cell that could not set itself up.
    fn setup_failed(reason: String) -> Observed {
        Observed {
            setup_failure: Some(reason),
            ..Observed::default()
        }
    }

    /// Lines of tab-separated, escaped fields, one record per line, the last one `end`.
    fn encode(&self) -> String {
        let mut lines = Vec::new();
        let mut line = |fields: &[&str]| {
            let fields: Vec<String> = fields.iter().map(|field| escape(field)).collect();
            lines.push(format!("{RESULT_PREFIX}\t{}", fields.join("\t")));
        };
        if let Some(outcome) = self.outcome {
            line(&["outcome", &outcome.to_string()]);
        }
        if let Some(rows) = &self.rows {
            let pairs: Vec<String> = rows
                .fields()
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            let mut fields = vec!["rows"];
            fields.extend(pairs.iter().map(String::as_str));
            line(&fields);
        }
        for (from, to) in &self.moved_aside {
            line(&["moved", from, to]);
        }
        for check in &self.checks {
            let holds = if check.holds { "holds" } else { "fails" };
            line(&["check", check.kind.as_str(), holds, &check.detail]);
        }
        line(&["unchanged", &self.directory_unchanged.to_string()]);
        if let Some(reason) = &self.skipped {
            line(&["skipped", reason]);
        }
        if let Some(reason) = &self.setup_failure {
            line(&["setup", reason]);
        }
        line(&["detail", &self.detail]);
        line(&["end"]);
        lines.join("\n")
    }

    /// Reads what [`Observed::encode`] wrote, from among other lines; fails on anything it does
    /// not understand or on a result cut short.
    fn decode(output: &str) -> Result<Observed, String> {
        let mut observed = Observed::default();
        let mut ended = false;
        for line in output.lines() {
            let Some(rest) = line
                .strip_prefix(RESULT_PREFIX)
                .and_then(|rest| rest.strip_prefix('\t'))
            else {
                continue;
            };
            let fields: Vec<String> = rest.split('\t').map(unescape).collect();
            let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            match fields[..] {
                ["outcome", text] => {
                    observed.outcome = Some(
                        Outcome::parse(text).ok_or_else(|| format!("unknown outcome `{text}`"))?,
                    );
                }
                ["rows", ref pairs @ ..] => {
                    let mut rows = Rows::default();
                    for pair in pairs {
                        let parsed = pair
                            .split_once('=')
                            .and_then(|(name, value)| Some((name, value.parse().ok()?)));
                        match parsed {
                            Some((name, value)) if rows.set(name, value) => {}
                            _ => return Err(format!("unknown row count `{pair}`")),
                        }
                    }
                    observed.rows = Some(rows);
                }
                ["moved", from, to] => observed.moved_aside.push((from.into(), to.into())),
                ["check", kind, holds, detail] => {
                    let kind = CheckKind::ALL
                        .into_iter()
                        .find(|known| known.as_str() == kind)
                        .ok_or_else(|| format!("unknown check `{kind}`"))?;
                    observed
                        .checks
                        .push(Check::new(kind, holds == "holds", detail));
                }
                ["unchanged", value] => observed.directory_unchanged = value == "true",
                ["skipped", reason] => observed.skipped = Some(reason.into()),
                ["setup", reason] => observed.setup_failure = Some(reason.into()),
                ["detail", detail] => observed.detail = detail.into(),
                ["end"] => ended = true,
                _ => return Err(format!("unknown result line `{line}`")),
            }
        }
        if ended {
            Ok(observed)
        } else {
            Err("no complete result".into())
        }
    }
}

struct Row {
    cell: &'static Cell,
    observed: Observed,
    elapsed: Duration,
    judgement: Judgement,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    AsExpected,
    /// The cell could not run here (a capability is missing): neither a pass nor a failure.
    Skipped,
    /// The cell could not set up its fault (or the kill landed elsewhere): a failure.
    SetupFailed,
    /// Another outcome than the expected one.
    Differs,
    /// A cell that must leave the directory untouched changed it.
    Touched,
    /// Rows the cell's [`Keep`] requires are missing (or could not be read).
    LostRows,
    /// Rows are present that must not be.
    WrongRows,
    /// Acknowledged rows are missing outside anything the report names.
    SilentLoss,
    /// A moved-aside file is missing, altered or wider, or a recovery moved nothing aside.
    MovedAside,
    /// The schema version or a migration's effects are wrong after a kill or a reopen.
    Schema,
    /// A salvage reported a loss starting elsewhere than the end of the last commit before the
    /// damage.
    LossBoundary,
}

impl Verdict {
    fn failed(self) -> bool {
        !matches!(self, Verdict::AsExpected | Verdict::Skipped)
    }

    fn mark(self) -> &'static str {
        match self {
            Verdict::AsExpected => "ok",
            Verdict::Skipped => "skip",
            Verdict::SetupFailed => "SETUP",
            Verdict::Differs => "DIFF",
            Verdict::Touched => "TOUCH",
            Verdict::LostRows => "LOST",
            Verdict::WrongRows => "ROWS",
            Verdict::SilentLoss => "SILENT",
            Verdict::MovedAside => "MOVED",
            Verdict::Schema => "SCHEMA",
            Verdict::LossBoundary => "BOUND",
        }
    }
}

/// A cell's verdict (its first failure, if any) and every reason it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Judgement {
    verdict: Verdict,
    reasons: Vec<String>,
}

fn judge(cell: &Cell, observed: &Observed) -> Judgement {
    if let Some(reason) = &observed.skipped {
        return Judgement {
            verdict: Verdict::Skipped,
            reasons: vec![reason.clone()],
        };
    }
    if let Some(reason) = &observed.setup_failure {
        return Judgement {
            verdict: Verdict::SetupFailed,
            reasons: vec![reason.clone()],
        };
    }
    let mut failures: Vec<(Verdict, String)> = Vec::new();
    if observed.outcome != Some(cell.expected) {
        failures.push((
            Verdict::Differs,
            format!(
                "expected {}, got {}",
                cell.expected,
                observed
                    .outcome
                    .map_or("nothing".into(), |outcome| outcome.to_string())
            ),
        ));
    }
    if cell.keep == Keep::Untouched && !observed.directory_unchanged {
        failures.push((
            Verdict::Touched,
            "the directory changed, though the database must be left untouched".into(),
        ));
    }
    match &observed.rows {
        None if cell.keep != Keep::Untouched => failures.push((
            Verdict::LostRows,
            "the rows could not be read after the open".into(),
        )),
        None => {}
        Some(rows) => {
            if rows.required_missing > 0 {
                failures.push((
                    Verdict::LostRows,
                    format!(
                        "{} of {} required rows missing",
                        rows.required_missing, rows.required
                    ),
                ));
            }
            if rows.unexpected > 0 {
                failures.push((
                    Verdict::WrongRows,
                    format!("{} rows present that must not be", rows.unexpected),
                ));
            }
            if rows.lost_silent > 0 {
                failures.push((
                    Verdict::SilentLoss,
                    format!(
                        "{} acknowledged rows lost without a report naming them",
                        rows.lost_silent
                    ),
                ));
            }
        }
    }
    for check in observed.checks.iter().filter(|check| !check.holds) {
        failures.push((
            check.kind.verdict(),
            format!("{}: {}", check.kind.as_str(), check.detail),
        ));
    }
    Judgement {
        verdict: failures
            .first()
            .map_or(Verdict::AsExpected, |(verdict, _)| *verdict),
        reasons: failures.into_iter().map(|(_, reason)| reason).collect(),
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
    let power_selected = power::CELLS.iter().any(|cell| {
        engine_filter
            .as_deref()
            .is_none_or(|engine| cell.setup.engine().as_str() == engine)
            && fault_filter
                .as_deref()
                .is_none_or(|fault| cell.point.name().contains(fault))
    });
    if selected.is_empty() && !power_selected {
        return usage("no cell matches the filters");
    }
    let started = Instant::now();
    let rows = run_cells(&selected);
    // Power cuts run after the other cells: they mount FUSE filesystems, one per cell.
    let power_rows = power::run_matrix(engine_filter.as_deref(), fault_filter.as_deref());
    let wall = started.elapsed();
    match format {
        Format::Table => {
            print_table(&rows, wall);
            print_power_table(&power_rows);
        }
        Format::Markdown => {
            print_markdown(&rows, wall);
            print_power_markdown(&power_rows);
        }
        Format::Json => print_json(&rows, &power_rows, wall),
    }
    if rows.iter().any(|row| row.judgement.verdict.failed())
        || power_rows.iter().any(|row| row.verdict().failed())
    {
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
                    let judgement = judge(cell, &observed);
                    let mut finished = done.lock().expect("counter");
                    *finished += 1;
                    eprintln!(
                        "[{:>2}/{}] {:<6} {:<50} {:>6} ms  {}",
                        *finished,
                        cells.len(),
                        judgement.verdict.mark(),
                        cell.name(),
                        elapsed.as_millis(),
                        actual_text(&observed)
                    );
                    drop(finished);
                    results.lock().expect("results").push((
                        position,
                        Row {
                            cell,
                            observed,
                            elapsed,
                            judgement,
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
    let executable = match std::env::current_exe() {
        Ok(executable) => executable,
        Err(error) => return Observed::setup_failed(error.to_string()),
    };
    let output = match Command::new(executable)
        .args(["__matrix-cell", &cell.name()])
        .output()
    {
        Ok(output) => output,
        Err(error) => return Observed::setup_failed(error.to_string()),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    Observed::decode(&stdout).unwrap_or_else(|problem| {
        Observed::setup_failed(format!(
            "the cell's child exited with {} ({problem}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ))
    })
}

/// The outcome as the table shows it.
fn actual_text(observed: &Observed) -> String {
    if let Some(reason) = &observed.skipped {
        return format!("skipped: {reason}");
    }
    if observed.setup_failure.is_some() {
        return "cell-failed".into();
    }
    observed
        .outcome
        .map_or("-".into(), |outcome| outcome.to_string())
}

/// The row counts as the table shows them: acknowledged, required, kept, lost with a report,
/// lost without one (`-` where the rows were not read).
fn row_columns(rows: Option<&Rows>) -> [String; 5] {
    match rows {
        Some(rows) => [
            rows.acknowledged,
            rows.required,
            rows.kept,
            rows.lost_reported,
            rows.lost_silent,
        ]
        .map(|count| count.to_string()),
        None => ["-", "-", "-", "-", "-"].map(str::to_owned),
    }
}

/// Checks that held, of those made (`-` when none was made).
fn checks_text(observed: &Observed) -> String {
    if observed.checks.is_empty() {
        return "-".into();
    }
    let held = observed.checks.iter().filter(|check| check.holds).count();
    format!("{held}/{}", observed.checks.len())
}

fn summary(rows: &[Row], wall: Duration) -> String {
    let count = |verdict| {
        rows.iter()
            .filter(|row| row.judgement.verdict == verdict)
            .count()
    };
    let failed = rows
        .iter()
        .filter(|row| row.judgement.verdict.failed())
        .count();
    let counted = |field: fn(&Rows) -> u64| {
        rows.iter()
            .filter_map(|row| row.observed.rows.as_ref())
            .map(field)
            .sum::<u64>()
    };
    format!(
        "{} cells, {} as expected, {failed} failed, {} skipped; acknowledged rows: {} checked, \
         {} lost beyond expectation, {} lost with a report, {} lost silently ({:.1} s)",
        rows.len(),
        count(Verdict::AsExpected),
        count(Verdict::Skipped),
        counted(|rows| rows.acknowledged),
        counted(|rows| rows.required_missing),
        counted(|rows| rows.lost_reported),
        counted(|rows| rows.lost_silent),
        wall.as_secs_f64()
    )
}

const COLUMNS: [&str; 15] = [
    "",
    "engine",
    "fault",
    "policy",
    "expected",
    "actual",
    "keep",
    "acked",
    "required",
    "kept",
    "lost reported",
    "lost silent",
    "moved",
    "checks",
    "ms",
];

fn columns(row: &Row) -> [String; 15] {
    let [acknowledged, required, kept, lost_reported, lost_silent] =
        row_columns(row.observed.rows.as_ref());
    [
        row.judgement.verdict.mark().to_owned(),
        row.cell.engine.to_string(),
        row.cell.fault.to_owned(),
        row.cell.policy.to_owned(),
        row.cell.expected.to_string(),
        actual_text(&row.observed),
        row.cell.keep.describe().to_owned(),
        acknowledged,
        required,
        kept,
        lost_reported,
        lost_silent,
        row.observed.moved_aside.len().to_string(),
        checks_text(&row.observed),
        row.elapsed.as_millis().to_string(),
    ]
}

/// Prints `body` under `header`, each column as wide as its widest cell.
fn print_aligned<const N: usize>(header: &[&str; N], body: &[[String; N]]) {
    let widths: Vec<usize> = (0..N)
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
    print_line(header);
    for line in body {
        print_line(&line.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

fn print_table(rows: &[Row], wall: Duration) {
    let body: Vec<[String; 15]> = rows.iter().map(columns).collect();
    print_aligned(&COLUMNS, &body);
    for row in rows.iter().filter(|row| row.judgement.verdict.failed()) {
        println!(
            "  {}: {}; {}",
            row.cell.name(),
            row.judgement.reasons.join("; "),
            row.observed.detail
        );
    }
    println!("{}", summary(rows, wall));
}

fn print_power_table(rows: &[PowerRow]) {
    let body: Vec<[String; 13]> = rows.iter().map(power::power_columns).collect();
    println!();
    print_aligned(&power::POWER_COLUMNS, &body);
    for problem in power::power_problems(rows) {
        println!("  {problem}");
    }
    println!("{}", power::power_summary(rows));
}

fn print_power_markdown(rows: &[PowerRow]) {
    println!("\n| {} |", power::POWER_COLUMNS.join(" | "));
    println!("|{}", "---|".repeat(power::POWER_COLUMNS.len()));
    for row in rows {
        println!("| {} |", power::power_columns(row).join(" | "));
    }
    println!("\n{}", power::power_summary(rows));
}

fn print_markdown(rows: &[Row], wall: Duration) {
    println!("| {} |", COLUMNS.join(" | "));
    println!("|{}", "---|".repeat(COLUMNS.len()));
    for row in rows {
        let mut cells = columns(row);
        for code in [4, 5] {
            cells[code] = format!("`{}`", cells[code]);
        }
        println!("| {} |", cells.join(" | "));
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

fn json_list(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(","))
}

fn print_json(rows: &[Row], power_rows: &[PowerRow], wall: Duration) {
    let cells: Vec<String> = rows
        .iter()
        .map(|row| {
            let counts = row.observed.rows.as_ref().map_or("null".into(), |rows| {
                let fields: Vec<String> = rows
                    .fields()
                    .iter()
                    .map(|(name, value)| format!("{}:{value}", json_string(name)))
                    .collect();
                format!("{{{}}}", fields.join(","))
            });
            let moved = json_list(row.observed.moved_aside.iter().map(|(from, to)| {
                format!("{{\"from\":{},\"to\":{}}}", json_string(from), json_string(to))
            }));
            let checks = json_list(row.observed.checks.iter().map(|check| {
                format!(
                    "{{\"kind\":{},\"holds\":{},\"detail\":{}}}",
                    json_string(check.kind.as_str()),
                    check.holds,
                    json_string(&check.detail)
                )
            }));
            format!(
                "{{\"engine\":{},\"fault\":{},\"policy\":{},\"expected\":{},\"actual\":{},\"verdict\":{},\"reasons\":{},\"keep\":{},\"rows\":{counts},\"moved_aside\":{moved},\"checks\":{checks},\"skipped\":{},\"elapsed_ms\":{},\"detail\":{}}}",
                json_string(row.cell.engine.as_str()),
                json_string(row.cell.fault),
                json_string(row.cell.policy),
                json_string(&row.cell.expected.to_string()),
                json_string(&actual_text(&row.observed)),
                json_string(row.judgement.verdict.mark()),
                json_list(row.judgement.reasons.iter().map(|reason| json_string(reason))),
                json_string(row.cell.keep.describe()),
                row.observed
                    .skipped
                    .as_deref()
                    .map_or("null".into(), json_string),
                row.elapsed.as_millis(),
                json_string(&row.observed.detail)
            )
        })
        .collect();
    let power_cells = json_list(power_rows.iter().map(|row| {
        let fields: Vec<String> = power::POWER_COLUMNS
            .iter()
            .zip(power::power_columns(row))
            .map(|(name, value)| {
                let name = if name.is_empty() { "verdict" } else { name };
                format!(
                    "{}:{}",
                    json_string(&name.replace(' ', "_")),
                    json_string(&value)
                )
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    }));
    println!(
        "{{\"summary\":{},\"cells\":[{}],\"power_summary\":{},\"power_cells\":{power_cells}}}",
        json_string(&summary(rows, wall)),
        cells.join(","),
        json_string(&power::power_summary(power_rows))
    );
}

/// `xtask __matrix-cell ENGINE/FAULT/POLICY`: runs one cell in this (fresh) process and prints its
/// result lines.
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
            skipped: Some(reason),
            ..Observed::default()
        },
        Err(CellError::Setup(detail)) => Observed::setup_failed(detail),
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

/// The ids in the fixtures' `items` table, read with the engine directly and read-only (it must
/// work on a read-only mount, and never checkpoint).
fn read_ids(engine: Engine, path: &Path) -> Result<BTreeSet<u64>, String> {
    store_testkit::fixtures::read_ids(engine, path).map_err(|error| store_core::cause_chain(&error))
}

/// The rows a cell's [`Keep`] requires.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Required {
    ids: BTreeSet<u64>,
    /// No other acknowledged row may be present ([`Keep::Snapshot`]).
    exact: bool,
}

/// The rows a cell's [`Keep`] requires, from the ledger as it stood when the fault came.
/// `damage_at_wal_byte`: where a [`Keep::BeforeDamage`] cell damaged its WAL.
fn required_rows(keep: Keep, ledger: &Ledger, damage_at_wal_byte: Option<u64>) -> Required {
    let select = |keep_row: &dyn Fn(&crate::oracle::AckedRow) -> bool| {
        ledger
            .rows()
            .iter()
            .filter(|row| keep_row(row))
            .map(|row| row.id)
            .collect()
    };
    let ids = match keep {
        Keep::All | Keep::Untouched => ledger.ids(),
        Keep::BeforeDamage => select(&|row| match (row.place, damage_at_wal_byte) {
            (Place::DatabaseFile, _) | (_, None) => true,
            (Place::Wal { end_bytes }, Some(damage)) => end_bytes.is_some_and(|end| end <= damage),
        }),
        Keep::Checkpointed => select(&|row| row.place == Place::DatabaseFile),
        Keep::Snapshot => select(&|row| row.in_snapshot),
    };
    Required {
        ids,
        exact: keep == Keep::Snapshot,
    }
}

/// Counts what became of the acknowledged rows: against the cell's floor, and against the loss
/// the report names.
fn account_rows(
    ledger: &Ledger,
    required: &Required,
    present: &BTreeSet<u64>,
    loss: Option<&DataLoss>,
) -> Rows {
    let acknowledged = ledger.ids();
    let account = ledger.account(present, loss);
    let never_acknowledged = present.difference(&acknowledged).count();
    let beyond_exact = if required.exact {
        present
            .intersection(&acknowledged)
            .filter(|id| !required.ids.contains(id))
            .count()
    } else {
        0
    };
    Rows {
        acknowledged: acknowledged.len() as u64,
        required: required.ids.len() as u64,
        kept: present.intersection(&acknowledged).count() as u64,
        required_missing: required.ids.difference(present).count() as u64,
        lost_reported: account.lost_reported.len() as u64,
        lost_silent: account.lost_silent.len() as u64,
        unexpected: (never_acknowledged + beyond_exact) as u64,
    }
}

/// The moved-aside promise, judged from the directory before and after the open: every file the
/// report says it moved stands whole at its new name, no wider; and a recovery step moved aside at
/// least every file it replaced that stood before (the database's sidecars, and for a restore the
/// database too), so that one that deleted or overwrote instead fails even if it says nothing.
fn moved_aside_checks(
    engine: Engine,
    database: &Path,
    outcome: Option<Outcome>,
    before: &DirectorySnapshot,
    after: &DirectorySnapshot,
    moved: &[MovedAside],
) -> Vec<Check> {
    let mut checks = Vec::new();
    let recovered = match outcome {
        Some(Outcome::Recovered(step)) => Some(step),
        _ => None,
    };
    if !moved.is_empty() || recovered.is_some() {
        let problems = before.check_moved_aside(after, moved);
        let detail = if problems.is_empty() {
            format!("{} file(s) moved aside whole", moved.len())
        } else {
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        };
        checks.push(Check::new(
            CheckKind::MovedAside,
            problems.is_empty(),
            detail,
        ));
    }
    if let Some(step) = recovered {
        let sidecars: &[&str] = match engine {
            Engine::Sqlite => store_sqlite::SIDECAR_SUFFIXES,
            _ => store_duckdb::SIDECAR_SUFFIXES,
        };
        let mut replaced: Vec<PathBuf> = sidecars
            .iter()
            .map(|suffix| sibling(database, suffix))
            .collect();
        if step == RecoveryStep::RestoreSnapshot {
            replaced.push(database.to_owned());
        }
        let name = |path: &Path| {
            path.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        };
        let unmoved: Vec<String> = replaced
            .iter()
            .filter_map(|path| name(path))
            .filter(|file| before.entries.contains_key(file))
            .filter(|file| !moved.iter().any(|m| name(&m.from).as_ref() == Some(file)))
            .collect();
        let detail = if unmoved.is_empty() {
            format!("{step} moved aside every file it replaced")
        } else {
            format!(
                "{step} replaced {} without moving it aside",
                unmoved.join(", ")
            )
        };
        checks.push(Check::new(
            CheckKind::MovedAside,
            unmoved.is_empty(),
            detail,
        ));
    }
    checks
}

/// What a cell prepared before its open.
struct Prepared {
    engine: Engine,
    /// The database file.
    path: PathBuf,
    /// Every row acknowledged before the fault, where it lived when the fault came.
    ledger: Ledger,
    /// The rows the cell's [`Keep`] requires.
    required: Required,
    /// How the migrating child died, in a killed cell.
    kill: Option<KillPlan>,
    /// Promises checked before the open (the schema right after a kill).
    checks: Vec<Check>,
}

/// What the open said, in the terms the judge needs.
struct Opening {
    outcome: Outcome,
    moved: Vec<MovedAside>,
    loss: Option<DataLoss>,
    schema_version: Option<u32>,
    migrations_applied: Vec<u32>,
    detail: String,
}

impl Opening {
    /// What an open that succeeded did, from its report.
    fn of(report: &OpenReport) -> Opening {
        Opening {
            outcome: Outcome::of(report),
            moved: report
                .recovery
                .as_ref()
                .map(|recovery| recovery.moved_aside.clone())
                .unwrap_or_default(),
            loss: report
                .recovery
                .as_ref()
                .map(|recovery| recovery.lost.clone()),
            schema_version: Some(report.schema_version),
            migrations_applied: report
                .migrations_applied
                .iter()
                .map(|migration| migration.version)
                .collect(),
            detail: report.to_string(),
        }
    }
}

fn sqlite_cell(cell: &Cell, directory: &Path) -> Result<Observed, CellError> {
    if cell.fault == "disk-full" {
        fault_or_skip(mounts::mount_small_tmpfs(directory, 256 * 1024))?;
    }
    let path = directory.join(SQLITE_FILE);
    {
        let connection = rusqlite::Connection::open(&path)?;
        if cell.fault == "no-shared-memory-existing-wal" {
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
    let kill = KillPlan::of(cell.fault);
    if let Some(plan) = kill {
        run_killed_migration(Engine::Sqlite, &path, plan, &mut checks)?;
    }
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
    if let Some(plan) = kill {
        options = options.migrations(sqlite_migrations(plan.latest_version()));
    } else if cell.fault == "disk-full" {
        options = options.migrations(Migrations::new(vec![Migration::new(
            1,
            "fill the disk",
            "CREATE TABLE ballast (data BLOB); INSERT INTO ballast VALUES (zeroblob(1048576))",
        )])?);
    }
    let before = DirectorySnapshot::take(directory)?;
    let guard = fault.map(SqliteFault::install).transpose();
    let guard = fault_or_skip(guard)?;
    let opening = match options.open() {
        Ok((connection, report)) => {
            drop(connection);
            Opening::of(&report)
        }
        Err(error) => Opening {
            outcome: Outcome::Propagated(error.class()),
            moved: Vec::new(),
            loss: None,
            schema_version: None,
            migrations_applied: Vec::new(),
            detail: error.cause_chain(),
        },
    };
    drop(guard);
    drop(holder);
    let after = DirectorySnapshot::take(directory)?;
    let prepared = Prepared {
        engine: Engine::Sqlite,
        required: required_rows(cell.keep, &ledger, None),
        path,
        ledger,
        kill,
        checks,
    };
    Ok(finish(cell, prepared, &before, &after, opening))
}

/// Judges what every cell shares once its open returned: the rows against the ledger and the
/// report, the moved-aside files, and (after a kill) the schema.
fn finish(
    cell: &Cell,
    prepared: Prepared,
    before: &DirectorySnapshot,
    after: &DirectorySnapshot,
    opening: Opening,
) -> Observed {
    let Prepared {
        engine,
        path,
        ledger,
        required,
        kill,
        mut checks,
    } = prepared;
    let path = path.as_path();
    let directory_unchanged = before.diff(after).is_empty();
    checks.extend(moved_aside_checks(
        engine,
        path,
        Some(opening.outcome),
        before,
        after,
        &opening.moved,
    ));
    let refused = matches!(opening.outcome, Outcome::Propagated(_));
    let mut detail = opening.detail;
    let rows = if refused && cell.keep == Keep::Untouched {
        // Reading would replay the damage the cell must leave alone.
        None
    } else {
        match read_ids(engine, path) {
            Ok(present) => Some(account_rows(
                &ledger,
                &required,
                &present,
                opening.loss.as_ref(),
            )),
            Err(error) => {
                detail.push_str(&format!("; the rows do not read: {error}"));
                None
            }
        }
    };
    if let (Some(plan), Some(version)) = (kill, opening.schema_version) {
        checks.extend(reopened_checks(
            engine,
            path,
            plan,
            version,
            &opening.migrations_applied,
        ));
    }
    let name = |path: &Path| {
        path.file_name().map_or_else(
            || path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        )
    };
    Observed {
        outcome: Some(opening.outcome),
        rows,
        moved_aside: opening
            .moved
            .iter()
            .map(|moved| (name(&moved.from), name(&moved.to)))
            .collect(),
        checks,
        directory_unchanged,
        skipped: None,
        setup_failure: None,
        detail,
    }
}

/// The DuckDB schema every DuckDB cell migrates to.
fn duckdb_schema() -> Migrations {
    duckdb_migrations(3)
}

/// Rows the long migration of the killed-inside cells inserts, per engine: enough that its writes
/// reach the files well before its commit.
fn bulk_rows(engine: Engine) -> u64 {
    match engine {
        Engine::Sqlite => 400_000,
        _ => 3_000_000,
    }
}

/// Migration 4 of the kill schemas: three statements, the second a long INSERT that spills to the
/// files before the commit, the third a record of its count.
fn bulk_migration(engine: Engine) -> Migration {
    let rows = bulk_rows(engine);
    let sql = match engine {
        Engine::Sqlite => format!(
            "CREATE TABLE bulk (id INTEGER NOT NULL, payload TEXT NOT NULL);
             INSERT INTO bulk (id, payload) WITH RECURSIVE c(x) AS
               (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows})
               SELECT x, hex(randomblob(16)) FROM c;
             CREATE TABLE bulk_done AS SELECT count(*) AS n FROM bulk;"
        ),
        _ => format!(
            "CREATE TABLE bulk (id BIGINT NOT NULL, payload VARCHAR NOT NULL);
             INSERT INTO bulk SELECT range, md5(range::VARCHAR) FROM range({rows});
             CREATE TABLE bulk_done AS SELECT count(*) AS n FROM bulk;"
        ),
    };
    Migration::owned(4, "bulk", sql)
}

/// The first `latest` of: 1 `runs`, 2 `items`, 3 `runs.status`, 4 the long bulk migration.
fn duckdb_migrations(latest: u32) -> Migrations {
    let all = vec![
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
        bulk_migration(Engine::Duckdb),
    ];
    Migrations::new(all.into_iter().take(latest as usize).collect()).expect("valid migrations")
}

/// The SQLite twin of [`duckdb_migrations`].
fn sqlite_migrations(latest: u32) -> Migrations {
    let all = vec![
        Migration::new(
            1,
            "runs",
            "CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)",
        ),
        Migration::new(
            2,
            "items",
            "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)",
        ),
        Migration::new(3, "runs status", "ALTER TABLE runs ADD COLUMN status TEXT"),
        bulk_migration(Engine::Sqlite),
    ];
    Migrations::new(all.into_iter().take(latest as usize).collect()).expect("valid migrations")
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

fn duckdb_cell(cell: &Cell, directory: &Path) -> Result<Observed, CellError> {
    if cell.fault == "wal-flipped-byte-seeded" {
        return seeded_damage_cell(cell, directory);
    }
    if cell.fault == "disk-full" {
        fault_or_skip(mounts::mount_small_tmpfs(directory, 4 * 1024 * 1024))?;
    }
    let path = directory.join(DUCKDB_FILE);
    let kill = KillPlan::of(cell.fault);
    let mut ledger = Ledger::default();
    let commit_ends = if cell.keep == Keep::Snapshot {
        snapshot_history(&path, &mut ledger)?
    } else {
        let first_schema = if kill.is_some() {
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
    match cell.fault {
        "wal-garbage" => duckdb_faults::append_garbage_to_wal(&path)?,
        "wal-flipped-byte" => {
            // Damage the 11th WAL commit: the 10 before it must survive.
            let damage = commit_ends[9] + 20;
            duckdb_faults::flip_wal_byte(&path, damage)?;
            damage_at_wal_byte = Some(damage);
        }
        "torn-wal-tail" => {
            let cut = commit_ends[14] + 7;
            duckdb_faults::truncate_wal(&path, cut)?;
            damage_at_wal_byte = Some(cut);
        }
        "foreign-wal" => {
            let other = directory.join("other.duckdb");
            duckdb_faults::write_uncheckpointed_rows(&other, 1, 3)?;
            duckdb_faults::replace_wal_with_foreign(&path, &other)?;
        }
        _ => {}
    }
    if let Some(plan) = kill {
        run_killed_migration(Engine::Duckdb, &path, plan, &mut checks)?;
        // The migrating child checkpointed before its snapshot: every row is in the file now.
        ledger.checkpoint();
        if cell.fault.ends_with("wal-garbage") {
            duckdb_faults::append_garbage_to_wal(&path)?;
        }
    }
    let required = required_rows(cell.keep, &ledger, damage_at_wal_byte);
    let prepared = Prepared {
        engine: Engine::Duckdb,
        path,
        ledger,
        required,
        kill,
        checks,
    };
    open_duckdb_cell(cell, directory, prepared)
}

/// The seeded-damage cell: a WAL of [`SEEDED_WAL_COMMITS`] commits, one byte flipped at each of
/// [`SEEDED_DAMAGE_CASES`] seeded offsets, each on a copy of its own in `case-K/`, each opened and
/// judged as a cell of its own; the observations add up (rows summed, checks and moved files
/// joined), and an outcome other than the expected one in any case is the cell's.
fn seeded_damage_cell(cell: &Cell, directory: &Path) -> Result<Observed, CellError> {
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
        // No commit ends inside an entry: the last commit ending at or before the damaged byte
        // is the last one before the damaged entry, and the salvage's cut.
        let cut = commit_ends
            .iter()
            .copied()
            .filter(|end| *end <= damage)
            .max()
            .expect("the first commit ends before the damage");
        let prepared = Prepared {
            engine: Engine::Duckdb,
            path,
            required: required_rows(cell.keep, &ledger, Some(damage)),
            ledger: ledger.clone(),
            kill: None,
            checks: Vec::new(),
        };
        let (mut observed, loss) = open_duckdb_case(cell, &case_directory, prepared)?;
        let reported = match loss {
            Some(
                DataLoss::CommitsAfterWalByte { byte_offset }
                | DataLoss::DroppedWalTail { byte_offset, .. },
            ) => Some(byte_offset),
            _ => None,
        };
        observed.checks.push(Check::new(
            CheckKind::LossBoundary,
            reported == Some(cut),
            format!(
                "case {case}: byte {damage} flipped; the last commit before it ends at {cut}; \
                 the report's loss starts at {reported:?}"
            ),
        ));
        observed.detail = format!("case {case} (byte {damage}): {}", observed.detail);
        merged = Some(match merged {
            None => observed,
            Some(so_far) => so_far.and(cell, observed),
        });
    }
    Ok(merged.expect("at least one case"))
}

/// Opens a prepared DuckDB cell under its fault and policy and judges what it finds.
fn open_duckdb_cell(
    cell: &Cell,
    directory: &Path,
    prepared: Prepared,
) -> Result<Observed, CellError> {
    open_duckdb_case(cell, directory, prepared).map(|(observed, _)| observed)
}

/// [`open_duckdb_cell`], also returning the loss the report named.
fn open_duckdb_case(
    cell: &Cell,
    directory: &Path,
    prepared: Prepared,
) -> Result<(Observed, Option<DataLoss>), CellError> {
    let path = prepared.path.clone();
    let kill = prepared.kill;
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
    let migrations = match kill {
        Some(plan) => duckdb_migrations(plan.latest_version()),
        None => duckdb_schema(),
    };
    let mut options = DuckDbOptions::new(&path)
        .migrations(migrations)
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
    let opening = match options.open() {
        Ok((connection, report)) => {
            drop(connection);
            Opening::of(&report)
        }
        Err(error) => Opening {
            outcome: Outcome::Propagated(error.class()),
            moved: error.moved_aside().to_vec(),
            loss: None,
            schema_version: None,
            migrations_applied: Vec::new(),
            detail: error.cause_chain(),
        },
    };
    drop(holder);
    let after = DirectorySnapshot::take(directory)?;
    let loss = opening.loss.clone();
    Ok((finish(cell, prepared, &before, &after, opening), loss))
}

/// Where a killed cell's migrating child dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillPlan {
    /// SIGKILLed at store's own "migration applied" event for migration 3: its commit returned,
    /// and the checkpoint store makes after migrating never ran.
    AfterCommit,
    /// SIGKILLed by the cell once migration 4 (three statements, the second a long INSERT) has
    /// begun and its writes have reached the files, before its commit.
    Inside,
}

/// The line a migrating child prints when migration `version` begins (`APPLYING 4`).
const APPLYING_LINE: &str = "APPLYING";
/// The line a migrating child prints when its open returned without being killed.
const OPENED_LINE: &str = "OPENED";

impl KillPlan {
    fn of(fault: &str) -> Option<KillPlan> {
        if fault.starts_with("killed-mid-migration") {
            Some(KillPlan::AfterCommit)
        } else if fault.starts_with("killed-inside-migration") {
            Some(KillPlan::Inside)
        } else {
            None
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            KillPlan::AfterCommit => "after-commit",
            KillPlan::Inside => "inside",
        }
    }

    fn parse(text: &str) -> Option<KillPlan> {
        [KillPlan::AfterCommit, KillPlan::Inside]
            .into_iter()
            .find(|plan| plan.as_str() == text)
    }

    /// The migration the child dies in, or right after.
    fn migration(self) -> u32 {
        match self {
            KillPlan::AfterCommit => 3,
            KillPlan::Inside => 4,
        }
    }

    /// The schema the child and the reopen migrate to.
    fn latest_version(self) -> u32 {
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

/// What a database's schema holds, as the kill schemas shape it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct SchemaState {
    /// `schema_version` as store reads it.
    version: u32,
    /// Every version recorded in the `schema_version` table, in order.
    recorded: Vec<u32>,
    /// Migration 1's table.
    runs: bool,
    /// Migration 3's column.
    status_column: bool,
    /// Migration 4's rows, if its table exists.
    bulk_rows: Option<u64>,
    /// Migration 4's third statement's record of them, if its table exists.
    bulk_done: Option<u64>,
}

/// Whether `state` holds exactly the effects of migrations 1 to its version, each once: nothing
/// of a later migration (a half-applied one), nothing missing, nothing twice.
fn schema_consistent(engine: Engine, state: &SchemaState) -> Result<(), String> {
    let mut problems = Vec::new();
    let expected: Vec<u32> = (1..=state.version).collect();
    if state.recorded != expected {
        problems.push(format!(
            "schema_version records {:?}, not {expected:?}",
            state.recorded
        ));
    }
    if state.runs != (state.version >= 1) {
        problems.push(format!("table runs present: {}", state.runs));
    }
    if state.status_column != (state.version >= 3) {
        problems.push(format!(
            "column runs.status present: {}",
            state.status_column
        ));
    }
    let bulk = if state.version >= 4 {
        Some(bulk_rows(engine))
    } else {
        None
    };
    if state.bulk_rows != bulk || state.bulk_done != bulk {
        problems.push(format!(
            "bulk rows {:?} and recorded count {:?}, not {bulk:?}",
            state.bulk_rows, state.bulk_done
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Reads the schema state of the database at `path` with the engine directly.
fn read_schema_state(engine: Engine, path: &Path) -> Result<SchemaState, String> {
    let text = |error: &dyn fmt::Display| error.to_string();
    match engine {
        Engine::Sqlite => {
            let connection = rusqlite::Connection::open(path).map_err(|e| text(&e))?;
            let query = |sql: &str| -> Result<Vec<i64>, String> {
                let mut statement = connection.prepare(sql).map_err(|e| text(&e))?;
                statement
                    .query_map([], |row| row.get::<_, i64>(0))
                    .and_then(|rows| rows.collect())
                    .map_err(|e| text(&e))
            };
            let version = store_sqlite::schema_version(&connection).map_err(|e| text(&e))?;
            schema_state(
                version,
                &query,
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ",
                "SELECT count(*) FROM pragma_table_info('runs') WHERE name = 'status'",
            )
        }
        _ => {
            let connection = duckdb::Connection::open(path).map_err(|e| text(&e))?;
            let query = |sql: &str| -> Result<Vec<i64>, String> {
                let mut statement = connection.prepare(sql).map_err(|e| text(&e))?;
                statement
                    .query_map([], |row| row.get::<_, i64>(0))
                    .and_then(|rows| rows.collect())
                    .map_err(|e| text(&e))
            };
            let version = store_duckdb::schema_version(&connection).map_err(|e| text(&e))?;
            schema_state(
                version,
                &query,
                "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ",
                "SELECT count(*) FROM duckdb_columns() WHERE schema_name = 'main' \
                 AND table_name = 'runs' AND column_name = 'status'",
            )
        }
    }
}

/// The schema state, given a query that answers integers, the start of the engine's "is there a
/// table named ..." count (the quoted name follows), and its "has `runs` a `status` column" count.
fn schema_state(
    version: u32,
    query: &dyn Fn(&str) -> Result<Vec<i64>, String>,
    table_count_sql: &str,
    status_count_sql: &str,
) -> Result<SchemaState, String> {
    let single = |sql: &str| -> Result<u64, String> {
        match query(sql)?[..] {
            [value] => Ok(value as u64),
            ref other => Err(format!("`{sql}` answered {other:?}")),
        }
    };
    let exists = |table: &str| single(&format!("{table_count_sql}'{table}'")).map(|n| n > 0);
    let recorded = if exists("schema_version")? {
        query("SELECT version FROM schema_version ORDER BY version")?
            .into_iter()
            .map(|version| version as u32)
            .collect()
    } else {
        Vec::new()
    };
    let runs = exists("runs")?;
    Ok(SchemaState {
        version,
        recorded,
        runs,
        status_column: runs && single(status_count_sql)? > 0,
        bulk_rows: exists("bulk")?
            .then(|| single("SELECT count(*) FROM bulk"))
            .transpose()?,
        bulk_done: exists("bulk_done")?
            .then(|| single("SELECT max(n) FROM bulk_done"))
            .transpose()?,
    })
}

/// The database and its sidecars.
fn family(engine: Engine, database: &Path) -> Vec<PathBuf> {
    let sidecars: &[&str] = match engine {
        Engine::Sqlite => store_sqlite::SIDECAR_SUFFIXES,
        _ => store_duckdb::SIDECAR_SUFFIXES,
    };
    std::iter::once(database.to_owned())
        .chain(sidecars.iter().map(|suffix| sibling(database, suffix)))
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
fn run_killed_migration(
    engine: Engine,
    path: &Path,
    plan: KillPlan,
    checks: &mut Vec<Check>,
) -> Result<(), CellError> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["__matrix-migrate-and-die", plan.as_str(), engine.as_str()])
        .arg(path);
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
fn reopened_checks(
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
fn open_migrating(engine: Engine, path: &str, latest: u32) -> Result<(), String> {
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

/// `xtask __matrix-migrate-and-die after-commit|inside sqlite|duckdb PATH`: migrates to the
/// latest kill schema and dies where the plan says: SIGKILLed by itself right after migration 3
/// commits (before the checkpoint that follows), or by the cell inside migration 4. The cell
/// judges the files it leaves.
pub fn migrate_and_die(arguments: &[String]) -> ExitCode {
    let [plan, engine, path] = arguments else {
        eprintln!("usage: __matrix-migrate-and-die after-commit|inside sqlite|duckdb PATH");
        return ExitCode::from(2);
    };
    let (Some(plan), Some(engine)) = (
        KillPlan::parse(plan),
        [Engine::Sqlite, Engine::Duckdb]
            .into_iter()
            .find(|known| known.as_str() == engine),
    ) else {
        eprintln!("unknown plan or engine: {arguments:?}");
        return ExitCode::from(2);
    };
    let latest = plan.latest_version();
    match plan {
        KillPlan::AfterCommit => {
            let result = kill_at(KillPoint::after_migration(3), || {
                open_migrating(engine, path, latest)
            });
            eprintln!("survived the kill point: {result:?}");
            ExitCode::SUCCESS
        }
        KillPlan::Inside => {
            // Every thread's events from now on, so that a watcher sees the migration begin.
            let _ = store_testkit::logs::capture_process();
            let version = plan.migration();
            std::thread::spawn(move || announce_when_applying(version));
            match open_migrating(engine, path, latest) {
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

    fn cell(name: &str) -> &'static Cell {
        CELLS
            .iter()
            .find(|cell| cell.name() == name)
            .unwrap_or_else(|| panic!("no cell {name}"))
    }

    /// What a cell that kept its promises observes.
    fn as_expected(cell: &Cell, rows: Rows) -> Observed {
        Observed {
            outcome: Some(cell.expected),
            rows: Some(rows),
            directory_unchanged: cell.keep == Keep::Untouched,
            ..Observed::default()
        }
    }

    fn all_kept() -> Rows {
        Rows {
            acknowledged: 100,
            required: 100,
            kept: 100,
            ..Rows::default()
        }
    }

    #[test]
    fn every_fault_of_the_vocabulary_has_a_cell_per_engine_it_applies_to() {
        for fault in Fault::ALL {
            for engine in fault.engines() {
                assert!(
                    CELLS
                        .iter()
                        .any(|cell| cell.engine == *engine && cell.fault.starts_with(fault.name()))
                        || power::CELLS.iter().any(|cell| {
                            cell.setup.engine() == *engine
                                && cell.point.name().starts_with(fault.name())
                        }),
                    "no {engine} cell for {}",
                    fault.name()
                );
            }
        }
    }

    #[test]
    fn every_cell_has_a_runner_for_its_kill_and_a_known_expected_outcome() {
        for cell in CELLS {
            assert_eq!(
                Outcome::parse(&cell.expected.to_string()),
                Some(cell.expected),
                "{}",
                cell.name()
            );
        }
        let killed: Vec<_> = CELLS
            .iter()
            .filter_map(|cell| KillPlan::of(cell.fault).map(|plan| (cell.engine, plan)))
            .collect();
        for engine in [Engine::Sqlite, Engine::Duckdb] {
            for plan in [KillPlan::AfterCommit, KillPlan::Inside] {
                assert!(killed.contains(&(engine, plan)), "{engine} {plan:?}");
                assert_eq!(KillPlan::parse(plan.as_str()), Some(plan));
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
            outcome: Some(Outcome::Recovered(RecoveryStep::SalvageWal)),
            rows: Some(Rows {
                acknowledged: 100,
                required: 95,
                kept: 95,
                required_missing: 0,
                lost_reported: 3,
                lost_silent: 2,
                unexpected: 1,
            }),
            moved_aside: vec![("cell.duckdb.wal".into(), "cell.duckdb.x\t.wal".into())],
            checks: vec![Check::new(
                CheckKind::SchemaAfterKill,
                false,
                "a\ttab\nand a line",
            )],
            directory_unchanged: false,
            skipped: None,
            setup_failure: Some("back\\slash".into()),
            detail: "a\ttab".into(),
        };
        let decoded = Observed::decode(&format!("noise\n{}\nmore noise", observed.encode()))
            .expect("decodes");
        assert_eq!(decoded.outcome, observed.outcome);
        assert_eq!(decoded.rows, observed.rows);
        assert_eq!(decoded.moved_aside, observed.moved_aside);
        assert_eq!(decoded.checks, observed.checks);
        assert_eq!(decoded.setup_failure, observed.setup_failure);
        assert_eq!(decoded.detail, "a\ttab");
        // A result cut short (a child that died mid-print) is no result.
        let encoded = observed.encode();
        let cut = encoded.rsplit_once('\n').expect("lines").0;
        assert!(Observed::decode(cut).is_err());
    }

    #[test]
    fn judging_follows_the_written_expectation() {
        let cell = cell("duckdb/wal-flipped-byte/default");
        let rows = Rows {
            acknowledged: 100,
            required: 90,
            kept: 90,
            lost_reported: 10,
            ..Rows::default()
        };
        let mut observed = as_expected(cell, rows);
        assert_eq!(judge(cell, &observed).verdict, Verdict::AsExpected);
        observed.rows = Some(Rows {
            kept: 89,
            required_missing: 1,
            lost_reported: 11,
            ..rows
        });
        assert_eq!(judge(cell, &observed).verdict, Verdict::LostRows);
        observed.outcome = Some(Outcome::Opened(None));
        assert_eq!(judge(cell, &observed).verdict, Verdict::Differs);
        observed.skipped = Some("no mount rights".into());
        assert_eq!(judge(cell, &observed).verdict, Verdict::Skipped);
    }

    #[test]
    fn a_silent_loss_fails_every_cell_the_torn_tail_included() {
        let silent = Rows {
            kept: 95,
            required: 95,
            lost_silent: 5,
            ..all_kept()
        };
        // A loss the report does not name fails a cell even above its floor: since the WAL
        // reader, the torn tail's too.
        for name in ["duckdb/wal-garbage/default", "duckdb/torn-wal-tail/default"] {
            let cell = cell(name);
            let judgement = judge(cell, &as_expected(cell, silent));
            assert_eq!(
                judgement.verdict,
                Verdict::SilentLoss,
                "{name}: {judgement:?}"
            );
        }
    }

    #[test]
    fn a_snapshot_restore_must_bring_back_exactly_the_snapshot_rows() {
        let cell = cell("duckdb/wal-garbage/snapshot-only");
        // The history the snapshot cells write: 60 rows, the snapshot, 20 checkpointed and 20 in
        // the WAL.
        let mut ledger = Ledger::default();
        for id in 1..=60 {
            ledger.acknowledge(id, Place::DatabaseFile);
        }
        ledger.snapshot();
        for id in 61..=80 {
            ledger.acknowledge(id, Place::DatabaseFile);
        }
        for id in 81..=100 {
            ledger.acknowledge(
                id,
                Place::Wal {
                    end_bytes: Some(id * 100),
                },
            );
        }
        let required = required_rows(Keep::Snapshot, &ledger, None);
        assert_eq!(required.ids, (1..=60).collect());
        let loss = DataLoss::EverythingSinceSnapshot {
            taken_at: std::time::SystemTime::UNIX_EPOCH,
        };
        let verdict = |present: BTreeSet<u64>| {
            let rows = account_rows(&ledger, &required, &present, Some(&loss));
            judge(cell, &as_expected(cell, rows)).verdict
        };
        assert_eq!(verdict((1..=60).collect()), Verdict::AsExpected);
        // A restore that produced an empty database.
        assert_eq!(verdict(BTreeSet::new()), Verdict::LostRows);
        // One that lost a row the snapshot held.
        assert_eq!(verdict((2..=60).collect()), Verdict::LostRows);
        // One that kept rows written after the snapshot: not the snapshot's database.
        assert_eq!(verdict((1..=61).collect()), Verdict::WrongRows);
        // Rows nobody acknowledged.
        assert_eq!(
            verdict((1..=60).chain([1000]).collect()),
            Verdict::WrongRows
        );
    }

    #[test]
    fn a_report_excuses_only_the_rows_inside_its_loss() {
        let cell = cell("duckdb/wal-garbage/discard-only");
        let mut ledger = Ledger::default();
        for id in 1..=80 {
            ledger.acknowledge(id, Place::DatabaseFile);
        }
        for id in 81..=100 {
            ledger.acknowledge(
                id,
                Place::Wal {
                    end_bytes: Some(id),
                },
            );
        }
        let required = required_rows(Keep::Checkpointed, &ledger, None);
        let present: BTreeSet<u64> = (2..=80).collect();
        let rows = account_rows(
            &ledger,
            &required,
            &present,
            Some(&DataLoss::UncheckpointedCommits),
        );
        assert_eq!((rows.lost_reported, rows.lost_silent), (20, 1));
        let judgement = judge(cell, &as_expected(cell, rows));
        assert_eq!(judgement.verdict, Verdict::LostRows);
        assert!(
            judgement
                .reasons
                .iter()
                .any(|reason| reason.contains("without a report")),
            "{judgement:?}"
        );
    }

    /// A DuckDB directory with a WAL that a recovery then treats as `handle` says, and the
    /// report's list of what it moved.
    fn recovery_leaving(
        handle: impl FnOnce(&Path, &Path) -> std::io::Result<()>,
    ) -> std::io::Result<Vec<Check>> {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join(DUCKDB_FILE);
        let wal = sibling(&database, ".wal");
        std::fs::write(&database, b"database")?;
        std::fs::write(&wal, b"a WAL that does not replay")?;
        let before = DirectorySnapshot::take(directory.path())?;
        let moved_to = sibling(&database, ".discarded-wal.20260101T000000Z.wal");
        handle(&wal, &moved_to)?;
        let after = DirectorySnapshot::take(directory.path())?;
        let reported = [MovedAside {
            from: wal,
            to: moved_to,
        }];
        Ok(moved_aside_checks(
            Engine::Duckdb,
            &database,
            Some(Outcome::Recovered(RecoveryStep::DiscardWal)),
            &before,
            &after,
            &reported,
        ))
    }

    #[test]
    fn a_moved_aside_file_that_is_missing_or_altered_fails_the_cell() -> std::io::Result<()> {
        let cell = cell("duckdb/wal-garbage/discard-only");
        let verdict = |checks: Vec<Check>| {
            let rows = Rows {
                required: 80,
                kept: 80,
                lost_reported: 20,
                ..all_kept()
            };
            let observed = Observed {
                checks,
                ..as_expected(cell, rows)
            };
            judge(cell, &observed).verdict
        };
        let moved = recovery_leaving(|from, to| std::fs::rename(from, to))?;
        assert!(moved.iter().all(|check| check.holds), "{moved:?}");
        assert_eq!(verdict(moved), Verdict::AsExpected);

        let deleted = recovery_leaving(|from, _| std::fs::remove_file(from))?;
        assert_eq!(verdict(deleted), Verdict::MovedAside);
        let truncated = recovery_leaving(|from, to| {
            std::fs::rename(from, to)?;
            std::fs::OpenOptions::new().write(true).open(to)?.set_len(3)
        })?;
        assert_eq!(verdict(truncated), Verdict::MovedAside);
        Ok(())
    }

    #[test]
    fn a_recovery_that_moved_nothing_aside_fails_the_cell() -> std::io::Result<()> {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join(DUCKDB_FILE);
        std::fs::write(&database, b"database")?;
        std::fs::write(sibling(&database, ".wal"), b"a WAL that does not replay")?;
        let before = DirectorySnapshot::take(directory.path())?;
        std::fs::remove_file(sibling(&database, ".wal"))?;
        let after = DirectorySnapshot::take(directory.path())?;
        let checks = moved_aside_checks(
            Engine::Duckdb,
            &database,
            Some(Outcome::Recovered(RecoveryStep::DiscardWal)),
            &before,
            &after,
            &[],
        );
        assert!(checks.iter().any(|check| !check.holds), "{checks:?}");
        // A restore must move the database itself aside too.
        std::fs::write(sibling(&database, ".wal"), b"a WAL that does not replay")?;
        let before = DirectorySnapshot::take(directory.path())?;
        let moved_to = sibling(&database, ".broken.20260101T000000Z.wal");
        std::fs::rename(sibling(&database, ".wal"), &moved_to)?;
        let after = DirectorySnapshot::take(directory.path())?;
        let checks = moved_aside_checks(
            Engine::Duckdb,
            &database,
            Some(Outcome::Recovered(RecoveryStep::RestoreSnapshot)),
            &before,
            &after,
            &[MovedAside {
                from: sibling(&database, ".wal"),
                to: moved_to,
            }],
        );
        let failed: Vec<&Check> = checks.iter().filter(|check| !check.holds).collect();
        assert_eq!(failed.len(), 1, "{checks:?}");
        assert!(failed[0].detail.contains(DUCKDB_FILE), "{failed:?}");
        Ok(())
    }

    #[test]
    fn a_schema_is_consistent_only_with_exactly_the_migrations_its_version_names() {
        let engine = Engine::Duckdb;
        let bulk = bulk_rows(engine);
        let at_three = SchemaState {
            version: 3,
            recorded: vec![1, 2, 3],
            runs: true,
            status_column: true,
            bulk_rows: None,
            bulk_done: None,
        };
        assert!(schema_consistent(engine, &at_three).is_ok());
        // Migration 4 half-applied: its table is there, its version is not.
        let half = SchemaState {
            bulk_rows: Some(bulk / 2),
            ..at_three.clone()
        };
        assert!(schema_consistent(engine, &half).is_err());
        // Version 4 recorded but its third statement missing.
        let at_four = SchemaState {
            version: 4,
            recorded: vec![1, 2, 3, 4],
            bulk_rows: Some(bulk),
            bulk_done: Some(bulk),
            ..at_three.clone()
        };
        assert!(schema_consistent(engine, &at_four).is_ok());
        let unfinished = SchemaState {
            bulk_done: None,
            ..at_four.clone()
        };
        assert!(schema_consistent(engine, &unfinished).is_err());
        // Applied twice.
        let twice = SchemaState {
            bulk_rows: Some(2 * bulk),
            ..at_four.clone()
        };
        assert!(schema_consistent(engine, &twice).is_err());
        // A version missing from the table.
        let gap = SchemaState {
            recorded: vec![1, 3],
            ..at_three
        };
        assert!(schema_consistent(engine, &gap).is_err());
    }

    /// Promise: the seeded-damage cell fails when one case's salvage reports its loss starting
    /// anywhere but the end of the last commit before the damage, even with every row accounted
    /// for; and one case whose outcome differs makes the merged cell's outcome differ.
    #[test]
    fn the_seeded_damage_cell_fails_on_a_wrong_loss_boundary_or_one_differing_case() {
        let cell = cell("duckdb/wal-flipped-byte-seeded/default");
        let case = |boundary_holds: bool| Observed {
            checks: vec![Check::new(
                CheckKind::LossBoundary,
                boundary_holds,
                "the report's loss starts at Some(4242)",
            )],
            ..as_expected(cell, all_kept())
        };
        let right = case(true).and(cell, case(true));
        assert_eq!(judge(cell, &right).verdict, Verdict::AsExpected);
        let wrong = case(true).and(cell, case(false));
        assert_eq!(judge(cell, &wrong).verdict, Verdict::LossBoundary);
        let differing = Observed {
            outcome: Some(Outcome::Opened(None)),
            ..case(true)
        };
        let merged = case(true).and(cell, differing).and(cell, case(true));
        assert_eq!(judge(cell, &merged).verdict, Verdict::Differs);
        assert_eq!(
            merged.rows.map(|rows| rows.acknowledged),
            Some(all_kept().acknowledged * 3)
        );
    }

    #[test]
    fn a_killed_cell_fails_on_a_wrong_schema_check() {
        let cell = cell("duckdb/killed-inside-migration/default");
        let observed = Observed {
            checks: vec![
                Check::new(CheckKind::SchemaAfterKill, true, "version 3"),
                Check::new(CheckKind::SchemaAfterReopen, true, "version 4"),
                Check::new(CheckKind::MigrationsAppliedOnce, false, "applied [3, 4]"),
            ],
            ..as_expected(cell, all_kept())
        };
        let judgement = judge(cell, &observed);
        assert_eq!(judgement.verdict, Verdict::Schema);
        assert_eq!(judgement.reasons.len(), 1, "{judgement:?}");
        // A cell that could not set up its kill fails too, never passes.
        let setup = Observed::setup_failed("the kill landed after the commit".into());
        assert_eq!(judge(cell, &setup).verdict, Verdict::SetupFailed);
        assert!(Verdict::SetupFailed.failed());
    }

    #[test]
    fn an_untouched_cell_fails_when_the_directory_changed() {
        let cell = cell("duckdb/wal-garbage/strict");
        let mut observed = Observed {
            outcome: Some(cell.expected),
            directory_unchanged: true,
            ..Observed::default()
        };
        assert_eq!(judge(cell, &observed).verdict, Verdict::AsExpected);
        observed.directory_unchanged = false;
        assert_eq!(judge(cell, &observed).verdict, Verdict::Touched);
        // Elsewhere, rows that cannot be read count as lost.
        let other = cell_named_all();
        let unread = Observed {
            rows: None,
            ..as_expected(other, all_kept())
        };
        assert_eq!(judge(other, &unread).verdict, Verdict::LostRows);
    }

    fn cell_named_all() -> &'static Cell {
        cell("sqlite/none/default")
    }
}
