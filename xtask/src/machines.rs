//! Two machines on one share: the fault matrix's share cells. A real share (`store_testkit::shares`:
//! sshd + sshfs, smbd + smbnetfs, glusterd + its FUSE client) is started on a private loopback,
//! two client mounts are made, and each is used by a writer on a host of its own (its own hostname,
//! PIDs and boot id): two machines. Each writer opens the database through store with its
//! defaults and commits rows, each a read-modify-write of a counter and a row, acknowledging each.
//!
//! The promise checked (issue 24): a second machine is refused at once with a typed error and
//! acknowledges nothing; every commit the first acknowledged is on the share, the counter equals
//! the rows, and the engine's own check passes ([`Promise::EveryAcknowledged`]: a loss is a loss,
//! reported or not).
//!
//! The child speaks in lines: `OPENED <report>`, `ACK <id>`, `REFUSED <class> <words>`,
//! `FAILED <words>`, `DONE`.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use store_core::{Engine, Migration, Migrations};
use store_duckdb::DuckDbOptions;
use store_sqlite::SqliteOptions;
use store_testkit::shares::{ClientMount, Host, Share, ShareError, ShareKind};

use crate::EngineArg;
use crate::limits::{CELL_TIME_LIMIT, run_within, skips_fail, wait_until};
use crate::oracle::{Ledger, Place, Promise};

/// Rows each writer commits.
const COMMITS: u64 = 60;
/// The pause between a writer's commits, so that the two machines' writes interleave.
const PAUSE_BETWEEN_COMMITS: Duration = Duration::from_millis(5);
/// The database's file name on the share.
fn file_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Duckdb => "shared.duckdb",
        _ => "shared.db",
    }
}

/// What happens on the two machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Machine A opens and writes; machine B opens while A still writes.
    TwoWritersAtOnce,
    /// Machine A opens, writes and closes; then machine B opens and writes.
    OwnerClosesThenOther,
    /// Machine A opens and writes and is SIGKILLed; A starts again on the same machine and
    /// mount: the crashed owner is taken over, and reported.
    OwnerKilledRestartedOnItsMachine,
    /// Machine A opens and writes and is SIGKILLed; machine B is refused, naming the dead owner
    /// (another machine's death cannot be seen from here); the operator frees it (what
    /// `store-doctor --release-ownership PATH --owner-machine-is-down` does), and B opens with
    /// nothing of A's lost.
    OwnerKilledOpenedElsewhere,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::TwoWritersAtOnce => "two-writers-at-once",
            Scenario::OwnerClosesThenOther => "owner-closes-then-other",
            Scenario::OwnerKilledRestartedOnItsMachine => "owner-killed-restarted-on-its-machine",
            Scenario::OwnerKilledOpenedElsewhere => "owner-killed-opened-elsewhere",
        }
    }

    const ALL: [Scenario; 4] = [
        Scenario::TwoWritersAtOnce,
        Scenario::OwnerClosesThenOther,
        Scenario::OwnerKilledRestartedOnItsMachine,
        Scenario::OwnerKilledOpenedElsewhere,
    ];
}

/// A share cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareCell {
    pub share: ShareKind,
    pub engine: Engine,
    pub scenario: Scenario,
}

impl ShareCell {
    pub fn name(&self) -> String {
        format!(
            "{}/share-{}/{}",
            self.engine,
            self.share.name(),
            self.scenario.name()
        )
    }

    /// Whether machine B's (first) open must be refused: while A holds the database, or after
    /// A died on another machine than B's.
    fn second_refused(&self) -> bool {
        matches!(
            self.scenario,
            Scenario::TwoWritersAtOnce | Scenario::OwnerKilledOpenedElsewhere
        )
    }

    /// Whether the engine cannot keep a database on this share at all (DuckDB on smbnetfs
    /// cannot open its WAL): then every open must be refused with a typed error saying so, and
    /// leave nothing at the name.
    fn engine_unsupported(&self) -> bool {
        self.engine == Engine::Duckdb && self.share == ShareKind::Smb
    }
}

/// Every share cell.
pub fn cells() -> Vec<ShareCell> {
    let mut cells = Vec::new();
    for share in ShareKind::ALL {
        for engine in [Engine::Sqlite, Engine::Duckdb] {
            for scenario in Scenario::ALL {
                cells.push(ShareCell {
                    share,
                    engine,
                    scenario,
                });
            }
        }
    }
    cells
}

/// What one machine's writer said.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterSaid {
    /// The open's report, or `None` when it was refused.
    pub opened: Option<String>,
    /// The class and words of a refusal.
    pub refused: Option<String>,
    pub acknowledged: Vec<u64>,
    /// What failed after the open.
    pub failed: Option<String>,
    pub timed_out: bool,
    /// What store logged at WARN in the writer (a release that failed, a takeover).
    #[serde(default)]
    pub logged: String,
    /// How the open came by the database's ownership (`created`, `joined`, `took-over`, `none`).
    #[serde(default)]
    pub claim: Option<String>,
    /// It was SIGKILLed by the cell, as planned.
    #[serde(default)]
    pub killed: bool,
    /// The lock scope store detected for the writer's mount (`this-client-only`...).
    #[serde(default)]
    pub lock_scope: Option<String>,
    /// The rows its open found before it wrote.
    #[serde(default)]
    pub present: Option<BTreeSet<u64>>,
}

/// What a share cell found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareObserved {
    pub first: WriterSaid,
    pub second: WriterSaid,
    /// Machine B again, after the operator freed the database (`OwnerKilledOpenedElsewhere`).
    #[serde(default)]
    pub third: Option<WriterSaid>,
    /// Acknowledged rows (both machines) and those on the share afterwards.
    pub acknowledged: u64,
    pub kept: u64,
    pub lost: u64,
    /// The counter on the share (each commit adds one), and the rows.
    pub counter: Option<i64>,
    pub rows: u64,
    /// Everything that broke the promise, in words (empty: held).
    pub broken: Vec<String>,
}

/// A cell's result: observed, skipped (the share cannot run here) or not set up.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShareResult {
    Observed(Box<ShareObserved>),
    Skipped(String),
    Setup(String),
    TimedOut(String),
}

impl ShareResult {
    pub fn mark(&self) -> &'static str {
        match self {
            ShareResult::Observed(observed) if observed.broken.is_empty() => "ok",
            ShareResult::Observed(_) => "BROKEN",
            ShareResult::Skipped(_) => "skip",
            ShareResult::Setup(_) => "SETUP",
            ShareResult::TimedOut(_) => "TIMEOUT",
        }
    }

    pub fn failed(&self) -> bool {
        match self {
            ShareResult::Observed(observed) => !observed.broken.is_empty(),
            ShareResult::Skipped(_) => skips_fail(),
            ShareResult::Setup(_) | ShareResult::TimedOut(_) => true,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The writer: `xtask __share-writer ENGINE DATABASE FIRST_ID COUNT`, run on a host.

fn say(line: &str) {
    let mut standard_output = std::io::stdout().lock();
    let _ = writeln!(standard_output, "{line}");
    let _ = standard_output.flush();
}

/// `xtask __share-writer`: opens through store and commits, one machine's writer.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct WriterArgs {
    #[arg(value_enum)]
    engine: EngineArg,
    database: PathBuf,
    first_id: u64,
    count: u64,
}

impl WriterArgs {
    pub const COMMAND: &str = "__share-writer";
}

fn migrations() -> Migrations {
    Migrations::new(vec![Migration::new(
        1,
        "items and a counter",
        "CREATE TABLE items (id BIGINT PRIMARY KEY, machine VARCHAR NOT NULL);
         CREATE TABLE counter (n BIGINT NOT NULL);
         INSERT INTO counter VALUES (0);",
    )])
    .expect("one migration")
}

/// One machine's writer, in this process.
pub fn writer(arguments: WriterArgs) -> ExitCode {
    let WriterArgs {
        engine,
        database,
        first_id,
        count,
    } = arguments;
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let machine = machine.trim().to_owned();
    let ids = first_id..first_id + count;
    // What store logs at WARN (a release that failed, a takeover) goes to standard error, for
    // the cell's failure lines.
    let (result, events) = store_testkit::logs::capture(|| match Engine::from(engine) {
        Engine::Sqlite => match SqliteOptions::new(&database)
            .migrations(migrations())
            .open()
        {
            Err(error) => Err((error.class(), error.cause_chain())),
            Ok((connection, report)) => Ok(commit_rows(
                &report,
                store_testkit::fixtures::sqlite_ids(&connection, &database),
                ids,
                |id| {
                    connection
                        .execute_batch("BEGIN IMMEDIATE; UPDATE counter SET n = n + 1;")
                        .and_then(|()| {
                            connection.execute(
                                "INSERT INTO items (id, machine) VALUES (?1, ?2)",
                                rusqlite::params![id as i64, machine],
                            )
                        })
                        .and_then(|_| connection.execute_batch("COMMIT"))
                        .map_err(|error| {
                            let code = store_sqlite::extended_code(&error)
                                .map_or(String::new(), |code| format!(" (extended code {code})"));
                            format!("{error}{code}")
                        })
                },
            )),
        },
        _ => match DuckDbOptions::new(&database)
            .migrations(migrations())
            .open()
        {
            Err(error) => Err((error.class(), error.cause_chain())),
            Ok((connection, report)) => Ok(commit_rows(
                &report,
                store_testkit::fixtures::duckdb_ids(&connection, &database),
                ids,
                |id| {
                    connection
                        .execute_batch("BEGIN; UPDATE counter SET n = n + 1;")
                        .and_then(|()| {
                            connection.execute(
                                "INSERT INTO items (id, machine) VALUES (?1, ?2)",
                                duckdb::params![id as i64, machine],
                            )
                        })
                        .and_then(|_| connection.execute_batch("COMMIT"))
                        .map_err(|error| error.to_string())
                },
            )),
        },
    });
    for event in events
        .iter()
        .filter(|event| event.level.to_string() == "WARN")
    {
        eprintln!("{}: {}", event.target, event.text);
    }
    match result {
        Ok(true) => say("DONE"),
        // It said FAILED already.
        Ok(false) => {}
        Err((class, words)) => say(&format!("REFUSED {class} {}", one_line(&words))),
    }
    ExitCode::SUCCESS
}

/// Says what the open found (its report, its claim, the lock scope), then commits `ids` one
/// transaction each, acknowledging each; `false` when a commit failed (said as `FAILED`).
fn commit_rows(
    report: &store_core::OpenReport,
    present: Result<BTreeSet<u64>, store_testkit::FixtureError>,
    ids: std::ops::Range<u64>,
    commit: impl Fn(u64) -> Result<(), String>,
) -> bool {
    say(&format!("OPENED {report}"));
    // What this open finds, before it writes: the campaign checks every row acknowledged
    // before (on either machine) is there.
    match present {
        Ok(present) => say(&format!(
            "PRESENT {}",
            present
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )),
        Err(error) => say(&format!(
            "FAILED the rows do not read: {}",
            one_line(&store_core::cause_chain(&error))
        )),
    }
    say(&format!("CLAIM {}", claim_word(report)));
    if let Some(filesystem) = &report.filesystem {
        say(&format!("LOCKSCOPE {}", filesystem.lock_scope.as_str()));
    }
    for id in ids {
        if let Err(words) = commit(id) {
            say(&format!("FAILED {}", one_line(&words)));
            return false;
        }
        say(&format!("ACK {id}"));
        std::thread::sleep(PAUSE_BETWEEN_COMMITS);
    }
    true
}

/// How the open came by the ownership, in one word for the cell.
fn claim_word(report: &store_core::OpenReport) -> &'static str {
    match &report.ownership {
        None => "none",
        Some(store_core::ownership::Claim::Created) => "created",
        Some(store_core::ownership::Claim::TookOverCrashed { .. }) => "took-over",
        Some(_) => "joined",
    }
}

fn one_line(words: &str) -> String {
    words.replace('\n', " ")
}

// ---------------------------------------------------------------------------------------------
// The cell, in its own process: `xtask __share-cell NAME`.

/// `xtask __share-cell ENGINE/share-KIND/SCENARIO`: one share cell in this (fresh) process.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ShareCellArgs {
    #[arg(value_parser = cell_named, value_name = "ENGINE/share-KIND/SCENARIO")]
    cell: ShareCell,
}

impl ShareCellArgs {
    pub const COMMAND: &str = "__share-cell";
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::{Cli, Task};

    /// Promise: every share, engine and scenario has a cell, and each cell's child parses the
    /// name its parent gives it.
    #[test]
    fn every_share_engine_and_scenario_has_a_cell_its_child_parses() {
        assert_eq!(
            cells().len(),
            ShareKind::ALL.len() * 2 * Scenario::ALL.len()
        );
        for cell in cells() {
            let parsed = Cli::try_parse_from(["xtask", ShareCellArgs::COMMAND, &cell.name()])
                .unwrap_or_else(|error| panic!("{}: {error}", cell.name()));
            assert_eq!(parsed.task, Task::ShareCell(ShareCellArgs { cell }));
        }
    }

    /// Promise: a skipped share cell never passes under CI; a broken one always fails.
    #[test]
    fn a_skip_fails_under_ci_and_a_loss_everywhere() {
        let broken = ShareResult::Observed(Box::new(ShareObserved {
            broken: vec!["1 of 2 acknowledged commits are not on the share".into()],
            ..ShareObserved::default()
        }));
        assert!(broken.failed());
        assert_eq!(broken.mark(), "BROKEN");
        assert_eq!(ShareResult::Skipped("no sshfs".into()).mark(), "skip");
    }
}

fn cell_named(name: &str) -> Result<ShareCell, String> {
    cells()
        .into_iter()
        .find(|cell| cell.name() == name)
        .ok_or_else(|| format!("no share cell `{name}`"))
}

const LINE_PREFIX: &str = "SHARE ";

/// Runs one share cell and prints its result line.
pub fn cell_child(arguments: ShareCellArgs) -> ExitCode {
    let result = match run_cell(&arguments.cell) {
        Ok(observed) => ShareResult::Observed(Box::new(observed)),
        Err(ShareError::Unsupported { reason, .. }) => ShareResult::Skipped(reason),
        Err(other) => ShareResult::Setup(store_core::cause_chain(&other)),
    };
    say(&format!(
        "{LINE_PREFIX}{}",
        serde_json::to_string(&result).expect("strings and numbers")
    ));
    ExitCode::SUCCESS
}

/// A writer started on `host` against `database` through `client`.
fn spawn_writer(
    host: &Host,
    engine: Engine,
    database: &Path,
    first_id: u64,
) -> std::io::Result<std::process::Child> {
    spawn_writer_of(host, engine, database, first_id, COMMITS)
}

/// A writer of `count` commits started on `host` against `database`.
fn spawn_writer_of(
    host: &Host,
    engine: Engine,
    database: &Path,
    first_id: u64,
    count: u64,
) -> std::io::Result<std::process::Child> {
    let mut command: Command = host.command(std::env::current_exe()?);
    command
        .arg(WriterArgs::COMMAND)
        .arg(EngineArg::from(engine).as_str())
        .arg(database)
        .arg(first_id.to_string())
        .arg(count.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.spawn()
}

/// Reads a writer's lines until it ends (or its deadline kills it).
fn writer_said(child: std::process::Child) -> std::io::Result<WriterSaid> {
    let finished = wait_until(child, std::time::Instant::now() + CELL_TIME_LIMIT / 3)?;
    let lines: Vec<String> = BufReader::new(&finished.stdout[..])
        .lines()
        .map_while(Result::ok)
        .collect();
    let mut said = said_from_lines(&lines);
    said.timed_out = finished.timed_out;
    said.logged = String::from_utf8_lossy(&finished.stderr).trim().to_owned();
    if said.failed.as_deref() == Some("no word from the writer") {
        said.failed = Some(format!("no word from the writer{}", finished.last_words()));
    }
    Ok(said)
}

/// Moves this process (one thread so far) into a mount namespace of its own whose mounts do not
/// propagate back: the clients' FUSE mounts land in it, so that a cell or campaign killed at its
/// time limit leaves no mount behind.
fn enter_private_mount_namespace() -> Result<(), ShareError> {
    let io = |step| ShareError::io("share cell", step);
    // SAFETY: unshare takes flags only.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(io("make a private mount namespace")(
            std::io::Error::last_os_error(),
        ));
    }
    let private = Command::new("mount")
        .args(["--make-rprivate", "/"])
        .status()
        .map_err(io("make the mounts private"))?;
    if !private.success() {
        return Err(io("make the mounts private")(std::io::Error::other(
            "mount --make-rprivate / failed",
        )));
    }
    Ok(())
}

fn run_cell(cell: &ShareCell) -> Result<ShareObserved, ShareError> {
    let io = |step| ShareError::io("share cell", step);
    enter_private_mount_namespace()?;
    let share = Share::start(cell.share)?;
    let (client_a, client_b): (ClientMount, ClientMount) =
        (share.mount_client()?, share.mount_client()?);
    let (host_a, host_b) = (Host::new("machine-a")?, Host::new("machine-b")?);
    let name = file_name(cell.engine);
    let (on_a, on_b) = (client_a.path().join(name), client_b.path().join(name));
    let mut first = spawn_writer(&host_a, cell.engine, &on_a, 1).map_err(io("start writer a"))?;
    let mut third = None;
    let (first_said, second_said) = match cell.scenario {
        Scenario::TwoWritersAtOnce => {
            // B starts once A has opened and committed once: A holds the database by then.
            let mut lines = BufReader::new(first.stdout.take().expect("piped")).lines();
            let mut seen = read_until_acks(&mut lines, 1);
            let second = spawn_writer(&host_b, cell.engine, &on_b, 1_000_001)
                .map_err(io("start writer b"))?;
            seen.extend(lines.map_while(Result::ok));
            let first_said = finish_read(first, &seen, false);
            (
                first_said,
                writer_said(second).map_err(io("wait for writer b"))?,
            )
        }
        Scenario::OwnerClosesThenOther => {
            let first_said = writer_said(first).map_err(io("wait for writer a"))?;
            let second = spawn_writer(&host_b, cell.engine, &on_b, 1_000_001)
                .map_err(io("start writer b"))?;
            (
                first_said,
                writer_said(second).map_err(io("wait for writer b"))?,
            )
        }
        Scenario::OwnerKilledRestartedOnItsMachine | Scenario::OwnerKilledOpenedElsewhere => {
            // A dies with its machine's processes (the host's PID namespace) a third of the way
            // through its commits.
            let mut lines = BufReader::new(first.stdout.take().expect("piped")).lines();
            let mut seen = read_until_acks(&mut lines, COMMITS / 3);
            first.kill().map_err(io("kill writer a"))?;
            seen.extend(lines.map_while(Result::ok));
            let first_said = finish_read(first, &seen, true);
            if cell.scenario == Scenario::OwnerKilledRestartedOnItsMachine {
                let again = spawn_writer(&host_a, cell.engine, &on_a, 1_000_001)
                    .map_err(io("restart writer a"))?;
                (
                    first_said,
                    writer_said(again).map_err(io("wait for writer a"))?,
                )
            } else {
                let second = spawn_writer(&host_b, cell.engine, &on_b, 1_000_001)
                    .map_err(io("start writer b"))?;
                let second_said = writer_said(second).map_err(io("wait for writer b"))?;
                // The operator, who knows machine A is down, frees the database.
                let _ = store_core::ownership::release_ownership(
                    &on_b,
                    store_core::ownership::OtherMachine::AssertedDown,
                );
                let again = spawn_writer(&host_b, cell.engine, &on_b, 2_000_001)
                    .map_err(io("start writer b again"))?;
                third = Some(writer_said(again).map_err(io("wait for writer b"))?);
                (first_said, second_said)
            }
        }
    };
    // The clients go before the server's copy is read: what they cached is written or gone.
    drop((client_a, client_b));
    let mut observed = judge(cell, &share, first_said, second_said, third);
    if matches!(
        cell.scenario,
        Scenario::OwnerKilledRestartedOnItsMachine | Scenario::OwnerKilledOpenedElsewhere
    ) && !cell.engine_unsupported()
        && !observed.first.killed
    {
        observed
            .broken
            .push("machine a was not killed as planned (it ended first)".into());
    }
    Ok(observed)
}

/// A writer's lines up to its `acks`-th acknowledgement (or its refusal or failure).
fn read_until_acks(
    lines: &mut std::io::Lines<BufReader<std::process::ChildStdout>>,
    acks: u64,
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut acknowledged = 0;
    for line in lines.by_ref().map_while(Result::ok) {
        acknowledged += u64::from(line.starts_with("ACK "));
        let ended = line.starts_with("REFUSED ") || line.starts_with("FAILED ");
        seen.push(line);
        if acknowledged >= acks || ended {
            break;
        }
    }
    seen
}

/// What a writer whose standard output was read here said, once it has ended; `killed`: the
/// cell SIGKILLed it, and it must have died of that, not ended by itself.
fn finish_read(mut child: std::process::Child, seen: &[String], killed: bool) -> WriterSaid {
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    let status = child.wait();
    let mut said = said_from_lines(seen);
    said.logged = stderr.trim().to_owned();
    said.killed = killed
        && !seen.iter().any(|line| line == "DONE")
        && status.is_ok_and(|status| store_testkit::crash::was_killed(&status));
    said
}

/// What a writer's lines say.
fn said_from_lines(lines: &[String]) -> WriterSaid {
    let mut said = WriterSaid::default();
    for line in lines {
        if let Some(report) = line.strip_prefix("OPENED ") {
            said.opened = Some(report.to_owned());
        } else if let Some(id) = line.strip_prefix("ACK ") {
            said.acknowledged.extend(id.parse::<u64>().ok());
        } else if let Some(words) = line.strip_prefix("REFUSED ") {
            said.refused = Some(words.to_owned());
        } else if let Some(words) = line.strip_prefix("FAILED ") {
            said.failed = Some(words.to_owned());
        } else if let Some(word) = line.strip_prefix("CLAIM ") {
            said.claim = Some(word.to_owned());
        } else if let Some(word) = line.strip_prefix("LOCKSCOPE ") {
            said.lock_scope = Some(word.to_owned());
        } else if let Some(ids) = line.strip_prefix("PRESENT") {
            said.present = Some(
                ids.trim()
                    .split(',')
                    .filter_map(|id| id.parse().ok())
                    .collect(),
            );
        }
    }
    if said.opened.is_none() && said.refused.is_none() && said.failed.is_none() {
        said.failed = Some("no word from the writer".into());
    }
    said
}

/// What the share holds after both machines, read from the server's own directory.
fn judge(
    cell: &ShareCell,
    share: &Share,
    first: WriterSaid,
    second: WriterSaid,
    third: Option<WriterSaid>,
) -> ShareObserved {
    let mut observed = ShareObserved::default();
    let mut broken = Vec::new();
    let backing = share.backing_directory();
    // Whatever else stands on the share: the owner's record must be gone once every
    // connection closed, and a refused or failed open leaves nothing of its own.
    let name = file_name(cell.engine);
    let left: Vec<String> = std::fs::read_dir(backing)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|entry| !is_the_database_or_its_own(entry, name, cell.engine_unsupported()))
                .collect()
        })
        .unwrap_or_else(|error| vec![format!("(unreadable: {error})")]);
    if !left.is_empty() {
        broken.push(format!("left on the share: {}", left.join(", ")));
    }
    if cell.engine_unsupported() {
        for (machine, said) in [("a", &first), ("b", &second)] {
            let typed = said
                .refused
                .as_deref()
                .is_some_and(|words| words.starts_with("WalUnsupported "));
            if !typed {
                broken.push(format!(
                    "machine {machine} was not refused with WalUnsupported: {}",
                    said.refused
                        .as_deref()
                        .or(said.opened.as_deref())
                        .or(said.failed.as_deref())
                        .unwrap_or("?")
                ));
            }
        }
        observed.first = first;
        observed.second = second;
        observed.broken = broken;
        return observed;
    }
    if first.opened.is_none() {
        broken.push(format!(
            "machine a could not open: {}",
            first
                .refused
                .as_deref()
                .or(first.failed.as_deref())
                .unwrap_or("?")
        ));
    }
    if let Some(words) = &first.failed {
        broken.push(format!("machine a failed after its open: {words}"));
    }
    if cell.second_refused() {
        if second.opened.is_some() {
            broken.push(format!(
                "machine b opened while machine a held the database ({} commits acknowledged)",
                second.acknowledged.len()
            ));
        } else if !second
            .refused
            .as_deref()
            .is_some_and(|words| words.starts_with("Locked ") && words.contains("machine-a"))
        {
            broken.push(format!(
                "machine b was not refused as Locked naming machine-a: {}",
                second
                    .refused
                    .as_deref()
                    .or(second.failed.as_deref())
                    .unwrap_or("?")
            ));
        }
    } else if second.opened.is_none() {
        broken.push(format!(
            "machine b could not open after machine a closed: {}",
            second
                .refused
                .as_deref()
                .or(second.failed.as_deref())
                .unwrap_or("?")
        ));
    }
    let expected_claim = match cell.scenario {
        Scenario::OwnerKilledRestartedOnItsMachine => {
            Some(("machine a again", &second, "took-over"))
        }
        Scenario::OwnerKilledOpenedElsewhere => third
            .as_ref()
            .map(|third| ("machine b after the operator freed it", third, "created")),
        _ => None,
    };
    if cell.scenario == Scenario::OwnerKilledOpenedElsewhere && third.is_none() {
        broken.push("machine b did not open again after the operator freed it".into());
    }
    if let Some((who, said, claim)) = expected_claim
        && (said.opened.is_none() || said.claim.as_deref() != Some(claim))
    {
        broken.push(format!(
            "{who} should have opened with the ownership {claim}: {} ({})",
            said.claim.as_deref().unwrap_or("no claim"),
            said.refused
                .as_deref()
                .or(said.failed.as_deref())
                .unwrap_or("opened")
        ));
    }
    let third_acknowledged = third
        .as_ref()
        .map_or(&[][..], |third| &third.acknowledged[..]);
    if first.timed_out || second.timed_out || third.as_ref().is_some_and(|third| third.timed_out) {
        broken.push("a writer ran past its time limit".into());
    }
    let mut ledger = Ledger::default();
    for id in first
        .acknowledged
        .iter()
        .chain(&second.acknowledged)
        .chain(third_acknowledged)
    {
        ledger.acknowledge(*id, Place::DatabaseFile);
    }
    observed.acknowledged = ledger.rows().len() as u64;
    let database = share.backing_directory().join(file_name(cell.engine));
    match read_share(cell.engine, &database) {
        Ok((present, counter)) => {
            let judged = Promise::EveryAcknowledged.judge(&ledger, &present, None);
            observed.rows = present.len() as u64;
            observed.counter = Some(counter);
            observed.lost = judged.lost_beyond_promise.len() as u64;
            observed.kept = observed.acknowledged - observed.lost;
            if observed.lost > 0 {
                broken.push(format!(
                    "{} of {} acknowledged commits are not on the share",
                    observed.lost, observed.acknowledged
                ));
            }
            if counter != present.len() as i64 {
                broken.push(format!(
                    "the counter says {counter} commits, the share holds {} rows: lost updates",
                    present.len()
                ));
            }
        }
        Err(words) => broken.push(format!("the share's database does not read: {words}")),
    }
    observed.first = first;
    observed.second = second;
    observed.third = third;
    observed.broken = broken;
    observed
}

/// Whether `entry` on the share is the database or a file the engine keeps beside it (its
/// journal or WAL, the pre-migration snapshot), or the server's own; where the engine cannot
/// work there, nothing of the database's may stand.
fn is_the_database_or_its_own(entry: &str, database: &str, unsupported: bool) -> bool {
    // GlusterFS's brick keeps its own metadata in the exported directory.
    if entry == ".glusterfs" {
        return true;
    }
    if unsupported {
        return false;
    }
    entry == database
        || entry.strip_prefix(database).is_some_and(|suffix| {
            ["-journal", "-wal", "-shm", ".wal", ".pre-migrate"].contains(&suffix)
        })
}

/// The ids and the counter in the server's copy, read-only (and for SQLite immutable: no
/// journal or WAL is made beside it), after the engine's own check.
fn read_share(engine: Engine, database: &Path) -> Result<(BTreeSet<u64>, i64), String> {
    let text = |error: &dyn std::fmt::Display| error.to_string();
    match engine {
        Engine::Sqlite => {
            let connection = rusqlite::Connection::open_with_flags(
                database,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .map_err(|error| text(&error))?;
            let check: String = connection
                .query_row("PRAGMA integrity_check", [], |row| row.get(0))
                .map_err(|error| text(&error))?;
            if check != "ok" {
                return Err(format!("integrity_check: {check}"));
            }
            let counter = connection
                .query_row("SELECT n FROM counter", [], |row| row.get(0))
                .map_err(|error| text(&error))?;
            let ids = store_testkit::fixtures::sqlite_ids(&connection, database)
                .map_err(|error| text(&error))?;
            Ok((ids, counter))
        }
        _ => {
            let config = duckdb::Config::default()
                .access_mode(duckdb::AccessMode::ReadOnly)
                .map_err(|error| text(&error))?;
            let connection = duckdb::Connection::open_with_flags(database, config)
                .map_err(|error| text(&error))?;
            let counter = connection
                .query_row("SELECT n FROM counter", [], |row| row.get(0))
                .map_err(|error| text(&error))?;
            let ids = store_testkit::fixtures::duckdb_ids(&connection, database)
                .map_err(|error| text(&error))?;
            Ok((ids, counter))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parent.

/// A share cell's row.
pub struct ShareRow {
    pub cell: ShareCell,
    pub result: ShareResult,
    pub elapsed: Duration,
}

/// A share cell's row in the matrix's JSON.
#[derive(Debug, Serialize)]
pub struct ShareRowJson<'a> {
    cell: String,
    verdict: &'static str,
    result: &'a ShareResult,
    elapsed_ms: u128,
}

impl ShareRow {
    pub fn json(&self) -> ShareRowJson<'_> {
        ShareRowJson {
            cell: self.cell.name(),
            verdict: self.result.mark(),
            result: &self.result,
            elapsed_ms: self.elapsed.as_millis(),
        }
    }
}

fn run_in_child(cell: &ShareCell) -> ShareResult {
    let executable = match std::env::current_exe() {
        Ok(executable) => executable,
        Err(error) => return ShareResult::Setup(error.to_string()),
    };
    let finished = match run_within(
        Command::new(executable)
            .arg(ShareCellArgs::COMMAND)
            .arg(cell.name()),
        CELL_TIME_LIMIT,
    ) {
        Ok(finished) => finished,
        Err(error) => return ShareResult::Setup(error.to_string()),
    };
    if finished.timed_out {
        return ShareResult::TimedOut(finished.why_no_result(CELL_TIME_LIMIT));
    }
    String::from_utf8_lossy(&finished.stdout)
        .lines()
        .find_map(|line| serde_json::from_str(line.strip_prefix(LINE_PREFIX)?).ok())
        .unwrap_or_else(|| ShareResult::Setup(finished.why_no_result(CELL_TIME_LIMIT)))
}

/// The share cells of `engine` (all when `None`) whose name contains `fault` (`share`,
/// `share-smb`, `two-writers`...).
pub fn selected_cells(engine: Option<Engine>, fault: Option<&str>) -> Vec<ShareCell> {
    cells()
        .into_iter()
        .filter(|cell| engine.is_none_or(|engine| cell.engine == engine))
        .filter(|cell| fault.is_none_or(|fault| cell.name().contains(fault)))
        .collect()
}

/// Runs the share cells, one at a time (each starts servers).
pub fn run_matrix(cells: &[ShareCell]) -> Vec<ShareRow> {
    cells
        .iter()
        .copied()
        .map(|cell| {
            let started = std::time::Instant::now();
            let result = run_in_child(&cell);
            eprintln!(
                "[share] {:<7} {:<50} {:>6} ms",
                result.mark(),
                cell.name(),
                started.elapsed().as_millis()
            );
            ShareRow {
                cell,
                result,
                elapsed: started.elapsed(),
            }
        })
        .collect()
}

/// Prints the share table and each failure's reasons.
pub fn print_table(rows: &[ShareRow]) {
    if rows.is_empty() {
        return;
    }
    println!();
    println!(
        "{:<7} {:<7} {:<8} {:<16} {:<37} {:<24} {:<24} {:>6} {:>6} {:>5} {:>8} {:>5}  ms",
        "",
        "engine",
        "share",
        "lock scope",
        "scenario",
        "machine a",
        "machine b",
        "acked",
        "kept",
        "lost",
        "counter",
        "rows"
    );
    for row in rows {
        let scope = match &row.result {
            ShareResult::Observed(observed) => observed
                .first
                .lock_scope
                .clone()
                .unwrap_or_else(|| "-".into()),
            _ => "-".into(),
        };
        let (a, b, acked, kept, lost, counter, kept_rows) = match &row.result {
            ShareResult::Observed(observed) => (
                machine_outcome(&observed.first),
                machine_outcome(&observed.second),
                observed.acknowledged.to_string(),
                observed.kept.to_string(),
                observed.lost.to_string(),
                observed
                    .counter
                    .map_or("-".into(), |counter| counter.to_string()),
                observed.rows.to_string(),
            ),
            other => (
                format!("{other:?}").chars().take(60).collect(),
                String::new(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ),
        };
        println!(
            "{:<7} {:<7} {:<8} {:<16} {:<37} {:<24} {:<24} {:>6} {:>6} {:>5} {:>8} {:>5}  {}",
            row.result.mark(),
            row.cell.engine.as_str(),
            row.cell.share.name(),
            scope,
            row.cell.scenario.name(),
            a,
            b,
            acked,
            kept,
            lost,
            counter,
            kept_rows,
            row.elapsed.as_millis()
        );
    }
    let count = |mark: &str| rows.iter().filter(|row| row.result.mark() == mark).count();
    println!(
        "{} share cells (two machines on a real share), {} held, {} broken, {} skipped",
        rows.len(),
        count("ok"),
        rows.iter().filter(|row| row.result.failed()).count(),
        count("skip")
    );
    for row in rows.iter().filter(|row| row.result.failed()) {
        match &row.result {
            ShareResult::Observed(observed) => println!(
                "  {}: {}; machine a: {}; machine b: {}",
                row.cell.name(),
                observed.broken.join("; "),
                observed
                    .first
                    .opened
                    .as_deref()
                    .or(observed.first.refused.as_deref())
                    .unwrap_or("-"),
                observed
                    .second
                    .opened
                    .as_deref()
                    .or(observed.second.refused.as_deref())
                    .unwrap_or("-"),
            ),
            other => println!("  {}: {other:?}", row.cell.name()),
        }
    }
}

/// `opened`, `refused(Class)` or `failed`, for the table.
fn machine_outcome(said: &WriterSaid) -> String {
    match (&said.opened, &said.refused) {
        (Some(_), _) if said.failed.is_some() => "failed".into(),
        (Some(_), _) => "opened".into(),
        (None, Some(words)) => format!(
            "refused({})",
            words.split_whitespace().next().unwrap_or("?")
        ),
        (None, None) => "failed".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The torture's two-machine campaign: `xtask __share-torture KIND ENGINE ROUNDS SEED`.

/// `xtask __share-torture`: random writers on two machines of one share, some SIGKILLed.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ShareTortureArgs {
    /// `sftp`, `smb` or `gluster`.
    #[arg(value_parser = share_kind_named)]
    share: ShareKind,
    #[arg(value_enum)]
    engine: EngineArg,
    rounds: u32,
    seed: u64,
}

impl ShareTortureArgs {
    pub const COMMAND: &str = "__share-torture";

    /// The command line that runs the campaign of `share` and `engine` (after the executable).
    pub fn arguments(share: ShareKind, engine: Engine, rounds: u32, seed: u64) -> Vec<String> {
        vec![
            Self::COMMAND.to_owned(),
            share.name().to_owned(),
            EngineArg::from(engine).as_str().to_owned(),
            rounds.to_string(),
            seed.to_string(),
        ]
    }
}

fn share_kind_named(name: &str) -> Result<ShareKind, String> {
    ShareKind::ALL
        .into_iter()
        .find(|kind| kind.name() == name)
        .ok_or_else(|| format!("no share `{name}`"))
}

/// Whether the engine can keep a database on the share at all (not DuckDB on smbnetfs).
pub fn engine_works_on(engine: Engine, share: ShareKind) -> bool {
    !(ShareCell {
        share,
        engine,
        scenario: Scenario::TwoWritersAtOnce,
    })
    .engine_unsupported()
}

/// What the two-machine campaign found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareTortureTally {
    pub rounds: u32,
    pub kills: u32,
    /// Opens that took over a crashed owner of their own machine.
    pub takeovers: u32,
    /// Opens refused because the other machine's (dead) writer owned the database, each
    /// followed by the operator's release.
    pub refused_then_released: u32,
    pub acknowledged: u64,
    /// Acknowledged rows an open did not find (must be 0).
    pub lost: u64,
    pub failures: Vec<String>,
}

/// The result line's prefix.
pub const TORTURE_LINE_PREFIX: &str = "SHARE-TORTURE ";

/// Runs the campaign in this (fresh) process and prints its tally.
pub fn torture_child(arguments: ShareTortureArgs) -> ExitCode {
    let result = run_torture(&arguments).map_err(|error| store_core::cause_chain(&error));
    say(&format!(
        "{TORTURE_LINE_PREFIX}{}",
        serde_json::to_string(&result).expect("strings and numbers")
    ));
    ExitCode::SUCCESS
}

fn run_torture(arguments: &ShareTortureArgs) -> Result<ShareTortureTally, ShareError> {
    let io = |step| ShareError::io("share torture", step);
    enter_private_mount_namespace()?;
    let engine = Engine::from(arguments.engine);
    let share = Share::start(arguments.share)?;
    let clients = [share.mount_client()?, share.mount_client()?];
    let hosts = [Host::new("machine-a")?, Host::new("machine-b")?];
    let name = file_name(engine);
    let paths = [clients[0].path().join(name), clients[1].path().join(name)];
    // Each share and engine its own choices from the run's seed.
    let mut random = store_testkit::random::SplitMix64::new(
        arguments.seed ^ (arguments.share as u64) << 8 ^ (engine == Engine::Duckdb) as u64,
    );
    let mut tally = ShareTortureTally::default();
    let mut acknowledged: BTreeSet<u64> = BTreeSet::new();
    let mut next_id = 1;
    let mut released_this_round = false;
    // The last round writes nothing: it only checks what the others left.
    let mut round = 0;
    while round <= arguments.rounds {
        let last = round == arguments.rounds;
        let machine = if last { 0 } else { random.below(2) as usize };
        let count = if last { 0 } else { 3 + random.below(12) };
        // Half the writers die after a seeded number of their commits.
        let kill_after = (!last && random.below(2) == 0).then(|| random.below(count));
        let mut child = spawn_writer_of(&hosts[machine], engine, &paths[machine], next_id, count)
            .map_err(io("start a writer"))?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut seen = Vec::new();
        let mut killed = false;
        let mut acks = 0;
        for line in lines.by_ref().map_while(Result::ok) {
            acks += u64::from(line.starts_with("ACK "));
            let present_seen = line.starts_with("PRESENT");
            seen.push(line);
            if kill_after.is_some_and(|after| acks >= after && (acks > 0 || present_seen)) {
                child.kill().map_err(io("kill a writer"))?;
                killed = true;
                break;
            }
        }
        seen.extend(lines.map_while(Result::ok));
        let said = finish_read(child, &seen, killed);
        let context = format!(
            "{}/{} round {round} (seed {}, machine {})",
            engine,
            arguments.share.name(),
            arguments.seed,
            ["a", "b"][machine]
        );
        if let Some(refused) = &said.refused {
            let owner = ["machine-b", "machine-a"][machine];
            if refused.starts_with("Locked ") && refused.contains(owner) && !released_this_round {
                // The other machine's writer died holding the database: the operator, who
                // knows it is down, frees it, and the round runs again.
                let _ = store_core::ownership::release_ownership(
                    &paths[machine],
                    store_core::ownership::OtherMachine::AssertedDown,
                );
                tally.refused_then_released += 1;
                released_this_round = true;
                continue;
            }
            tally
                .failures
                .push(format!("{context}: refused: {refused}"));
            break;
        }
        released_this_round = false;
        match &said.present {
            Some(present) => {
                let missing: Vec<u64> = acknowledged.difference(present).copied().collect();
                if let Some(first) = missing.first() {
                    tally.lost += missing.len() as u64;
                    tally.failures.push(format!(
                        "{context}: {} acknowledged rows missing (first {first})",
                        missing.len()
                    ));
                }
            }
            None => tally.failures.push(format!(
                "{context}: the open read no rows: {}{}",
                said.failed.as_deref().unwrap_or("-"),
                said.logged
            )),
        }
        if said.failed.is_some() && !killed {
            tally.failures.push(format!(
                "{context}: failed: {}",
                said.failed.as_deref().unwrap_or("-")
            ));
        }
        if killed && !said.killed {
            tally
                .failures
                .push(format!("{context}: the writer was not killed as planned"));
        }
        eprintln!(
            "{context}: count {count}, kill after {kill_after:?}, killed {}, claim {:?}, present {}, acked {:?}",
            said.killed,
            said.claim,
            said.present.as_ref().map_or(0, BTreeSet::len),
            said.acknowledged
        );
        tally.kills += u32::from(said.killed);
        tally.takeovers += u32::from(said.claim.as_deref() == Some("took-over"));
        acknowledged.extend(&said.acknowledged);
        next_id += count;
        if !last {
            tally.rounds += 1;
        }
        round += 1;
    }
    tally.acknowledged = acknowledged.len() as u64;
    Ok(tally)
}
