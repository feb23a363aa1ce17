//! Decide once, connect many: the database handle under real faults, in one process and across
//! processes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use store_core::{
    ConnectionLimit, FsKind, JournalLadder, JournalMode, KindSource, LockScope, MachineBoundary,
    Risk, ShareClient,
};
use store_sqlite::{ConnectError, OpenError, SqliteOptions, Synchronous};
use store_testkit::child;
use store_testkit::faults::sqlite::SqliteFault;
use store_testkit::isolated;
use store_testkit::logs::{self, CapturedEvent};
use tracing::Level;

use crate::{TestResult, count};

fn warnings(events: &[CapturedEvent]) -> Vec<&CapturedEvent> {
    logs::at_level(events, Level::WARN)
}

/// An existing database in WAL format, made with plain rusqlite (before any fault).
fn existing_wal_database(path: &Path) -> TestResult {
    let connection = Connection::open(path)?;
    let mode: String = connection.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
    assert_eq!(mode, "wal");
    connection.execute_batch("CREATE TABLE t (x INTEGER NOT NULL)")?;
    Ok(())
}

/// Waits until `path` exists: how one process tells another that it has reached a step.
fn wait_for_file(path: &Path) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Promise: while a handle lives, a second open of the same database in the process decides
/// nothing: under the no-shared-memory fault WAL is tried (and warned about) once, the second open
/// reports a reused decision with no fallback, and both handles' connections are in DELETE mode.
#[test]
fn a_live_handle_makes_later_opens_reuse_its_decision() {
    isolated!(a_live_handle_makes_later_opens_reuse_its_decision, {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("shared.db");
        let _fault = SqliteFault::NoSharedMemory.install().unwrap();
        let (opened, events) = logs::capture(|| {
            let first = SqliteOptions::new(&path).database()?;
            let second = SqliteOptions::new(&path).database()?;
            Ok::<_, OpenError>((first, second))
        });
        let ((first, first_report), (second, second_report)) = opened.unwrap();
        assert_eq!(first_report.journal_mode, Some(JournalMode::Delete));
        assert!(
            first_report.fell_back() && !first_report.reused_decision,
            "{first_report}"
        );
        assert!(second_report.reused_decision, "{second_report}");
        assert!(!second_report.fell_back(), "{second_report}");
        assert_eq!(second_report.journal_mode, Some(JournalMode::Delete));
        assert_eq!(warnings(&events).len(), 1, "{events:?}");
        for database in [&first, &second] {
            let connection = database.connect().unwrap();
            let mode: String = connection
                .query_row("PRAGMA journal_mode", [], |row| row.get(0))
                .unwrap();
            assert_eq!(mode, "delete");
        }
        // Once every handle is gone, the next open decides afresh.
        drop((first, second));
        let (_, third_report) = SqliteOptions::new(&path).database().unwrap();
        assert!(!third_report.reused_decision, "{third_report}");
    });
}

/// Promise: a connection from `connect` has the handle's settings applied (busy timeout,
/// `synchronous` at the power-safe default, the journal mode unchanged) and the options'
/// per-connection initialisation run, on the open's connection and on every later one.
#[test]
fn connect_applies_the_decision_and_the_per_connection_init() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("init.db");
    let (database, report) = SqliteOptions::new(&path)
        .busy_timeout(Duration::from_millis(1234))
        .on_connect(|connection| connection.pragma_update(None, "foreign_keys", "ON"))
        .on_connect(|connection| connection.pragma_update(None, "cache_size", "-4096"))
        .database()?;
    assert_eq!(report.journal_mode, Some(JournalMode::Wal));
    assert_eq!(report.connection_limit, ConnectionLimit::Many);
    assert_eq!(database.durability(), report.durability);
    for _ in 0..3 {
        let connection = database.connect()?;
        let foreign_keys: i64 = connection.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
        let cache_size: i64 = connection.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
        let synchronous: i64 = connection.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
        let timeout: i64 = connection.query_row("PRAGMA busy_timeout", [], |r| r.get(0))?;
        let mode: String = connection.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        assert_eq!(
            (
                foreign_keys,
                cache_size,
                synchronous,
                timeout,
                mode.as_str()
            ),
            (1, -4096, Synchronous::Full.level(), 1234, "wal")
        );
    }
    Ok(())
}

/// Promise: a failing per-connection initialisation is a typed error of the open, not a
/// connection half set up.
#[test]
fn a_failing_init_is_a_typed_open_error() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("bad-init.db");
    let opened = SqliteOptions::new(&path)
        .on_connect(|connection| connection.execute_batch("THIS IS NOT SQL"))
        .open();
    assert!(
        matches!(opened, Err(OpenError::Init { ref path, .. }) if path.ends_with("bad-init.db")),
        "{opened:?}"
    );
    Ok(())
}

/// Promise: a handle never switches the journal mode back: when another connection changed it,
/// `connect` says so with a typed error, and the next open decides anew.
#[test]
fn a_journal_mode_changed_behind_the_handle_is_said_not_undone() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("switched.db");
    let (database, _) = SqliteOptions::new(&path).database()?;
    drop(database.connect()?);
    let operator = Connection::open(&path)?;
    let mode: String = operator.query_row("PRAGMA journal_mode=DELETE", [], |row| row.get(0))?;
    assert_eq!(mode, "delete");
    drop(operator);
    match database.connect() {
        Err(ConnectError::JournalModeChanged { decided, found, .. }) => {
            assert_eq!((decided, found.as_str()), (JournalMode::Wal, "delete"));
        }
        other => panic!("expected JournalModeChanged, got {other:?}"),
    }
    let (again, report) = SqliteOptions::new(&path).database()?;
    assert!(!report.reused_decision, "{report}");
    assert_eq!(again.journal_mode(), Some(JournalMode::Wal));
    Ok(())
}

/// Promise: a WAL-exclusive decision allows one connection and says so: the handle's limit is
/// one, a second connection while the first is in use is `HeldExclusively` naming this process,
/// and once the first is dropped a new one connects and sees its rows.
#[test]
fn wal_exclusive_allows_one_connection_and_says_so() {
    isolated!(wal_exclusive_allows_one_connection_and_says_so, {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("exclusive.db");
        let _fault = SqliteFault::NoSharedMemory.install().unwrap();
        let (database, report) = SqliteOptions::new(&path)
            .journal_policy(JournalLadder::single_process())
            .busy_timeout(Duration::from_secs(30))
            .database()
            .unwrap();
        assert_eq!(report.journal_mode, Some(JournalMode::WalExclusive));
        assert_eq!(report.connection_limit, ConnectionLimit::One);
        assert!(
            report.to_string().contains("usable by one connection"),
            "{report}"
        );
        assert_eq!(database.connection_limit(), ConnectionLimit::One);
        let first = database.connect().unwrap();
        first
            .execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)")
            .unwrap();
        match database.connect() {
            Err(ConnectError::HeldExclusively(held)) => {
                assert!(held.holder.this_process, "{held}");
                assert!(
                    held.to_string().contains("converting_existing_wal"),
                    "{held}"
                );
            }
            other => panic!("expected HeldExclusively, got {other:?}"),
        }
        drop(first);
        let again = database.connect().unwrap();
        assert_eq!(count(&again, "t").unwrap(), 1);
    });
}

const HOLDER_TEST: &str = concat!(
    module_path!(),
    "::a_second_process_is_told_at_once_who_holds_an_exclusive_wal_database"
);

/// Promise: an existing WAL database on a filesystem without shared memory, opened with the
/// default policy, is kept in WAL format and held by one process, and the report says so; a
/// second process gets at once a typed `HeldExclusively` naming the holder's PID and the remedy
/// (with a 30 s busy timeout, the `Busy` path would be a `Journal` error instead); with the
/// converting policy both processes open one after the other and every row both wrote is there.
#[test]
fn a_second_process_is_told_at_once_who_holds_an_exclusive_wal_database() {
    if child::role().as_deref() == Some("holder") {
        hold_until_released();
        return;
    }
    isolated!(
        a_second_process_is_told_at_once_who_holds_an_exclusive_wal_database,
        {
            let directory = tempfile::tempdir().unwrap();
            let path = directory.path().join("held.db");
            existing_wal_database(&path).unwrap();
            let _fault = SqliteFault::NoSharedMemory.install().unwrap();
            let ready = directory.path().join("ready");
            let release = directory.path().join("release");
            let environment = [
                ("HOLD_DATABASE", path.clone().into_os_string()),
                ("HOLD_READY", ready.clone().into_os_string()),
                ("HOLD_RELEASE", release.clone().into_os_string()),
            ];
            let holder = child::spawn_role(HOLDER_TEST, "holder", &environment).unwrap();
            wait_for_file(&ready);
            let opened = SqliteOptions::new(&path)
                .busy_timeout(Duration::from_secs(30))
                .open();
            std::fs::write(&release, b"").unwrap();
            let output = holder.wait_with_output().unwrap();
            child::assert_child_succeeded(HOLDER_TEST, &output);
            let holder_pid = String::from_utf8_lossy(&output.stdout)
                .lines()
                // libtest prints the test's name on the same line first.
                .find_map(|line| {
                    line.split_once("holder pid: ")
                        .map(|(_, pid)| pid.to_owned())
                })
                .unwrap_or_else(|| {
                    panic!(
                        "the holder printed no pid: {}\n{}",
                        String::from_utf8_lossy(&output.stdout),
                        String::from_utf8_lossy(&output.stderr)
                    )
                });
            match opened {
                Err(OpenError::HeldExclusively(held)) => {
                    assert_eq!(held.holder.pid.map(|pid| pid.to_string()), Some(holder_pid));
                    assert!(!held.holder.this_process);
                    let message = held.to_string();
                    assert!(message.contains("cannot share WAL's memory"), "{message}");
                    assert!(message.contains("converting_existing_wal"), "{message}");
                }
                other => panic!("expected HeldExclusively, got {other:?}"),
            }

            // The remedy works: converted, both processes' writes land, one after the other.
            let converting = || {
                SqliteOptions::new(&path)
                    .journal_policy(JournalLadder::standard().converting_existing_wal(true))
            };
            let (connection, report) = converting().open().unwrap();
            assert_eq!(report.journal_mode, Some(JournalMode::Delete), "{report}");
            assert_eq!(report.connection_limit, ConnectionLimit::Many);
            connection.execute("INSERT INTO t VALUES (2)", []).unwrap();
            drop(connection);
            let second = child::spawn_role(
                HOLDER_TEST,
                "holder",
                &[
                    ("HOLD_DATABASE", path.clone().into_os_string()),
                    ("HOLD_CONVERTING", "1".into()),
                ],
            )
            .unwrap()
            .wait_with_output()
            .unwrap();
            child::assert_child_succeeded(HOLDER_TEST, &second);
            let rows: Vec<i64> = Connection::open(&path)
                .unwrap()
                .prepare("SELECT x FROM t ORDER BY x")
                .unwrap()
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(rows, [1, 2, 3]);
        }
    );
}

/// The holder role: opens the database as an application would, writes a row, says it holds
/// it, and waits to be released. With `HOLD_CONVERTING`, opens with the converting policy, writes
/// and returns.
fn hold_until_released() {
    let path = PathBuf::from(std::env::var_os("HOLD_DATABASE").expect("database path"));
    let _fault = SqliteFault::NoSharedMemory.install().unwrap();
    if std::env::var_os("HOLD_CONVERTING").is_some() {
        let (connection, report) = SqliteOptions::new(&path)
            .journal_policy(JournalLadder::standard().converting_existing_wal(true))
            .open()
            .unwrap();
        assert_eq!(report.journal_mode, Some(JournalMode::Delete), "{report}");
        connection.execute("INSERT INTO t VALUES (3)", []).unwrap();
        return;
    }
    let (connection, report) = SqliteOptions::new(&path).open().unwrap();
    assert_eq!(
        report.journal_mode,
        Some(JournalMode::WalExclusive),
        "{report}"
    );
    assert_eq!(report.connection_limit, ConnectionLimit::One, "{report}");
    connection.execute("INSERT INTO t VALUES (1)", []).unwrap();
    println!("holder pid: {}", std::process::id());
    let ready = PathBuf::from(std::env::var_os("HOLD_READY").expect("ready path"));
    let release = PathBuf::from(std::env::var_os("HOLD_RELEASE").expect("release path"));
    std::fs::write(&ready, b"").unwrap();
    wait_for_file(&release);
    drop(connection);
}

const SHARER_TEST: &str = concat!(
    module_path!(),
    "::two_processes_with_handles_share_a_wal_database_without_a_mode_flip"
);

/// Promise: two processes, each with one decision and four threads connecting from it, share a
/// WAL database on a local disk: both decide WAL, no write fails (a `Busy` beyond the timeout
/// would), the header stays in WAL format, and all 2 x 4 x 250 rows are there.
#[test]
fn two_processes_with_handles_share_a_wal_database_without_a_mode_flip() -> TestResult {
    if child::role().as_deref() == Some("sharer") {
        let path = PathBuf::from(std::env::var_os("SHARE_DATABASE").expect("database path"));
        let process: i64 = std::env::var("SHARE_PROCESS")?.parse()?;
        let (database, report) = SqliteOptions::new(&path)
            .busy_timeout(Duration::from_secs(30))
            .database()?;
        assert_eq!(report.journal_mode, Some(JournalMode::Wal), "{report}");
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let database = database.clone();
                std::thread::spawn(move || {
                    let connection = database.connect().unwrap();
                    for row in 0..250 {
                        connection
                            .execute(
                                "INSERT INTO t (process, thread, row) VALUES (?1, ?2, ?3)",
                                [process, thread, row],
                            )
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("writer thread");
        }
        return Ok(());
    }
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("shared.db");
    let (connection, _) = SqliteOptions::new(&path).open()?;
    connection.execute_batch(
        "CREATE TABLE t (process INTEGER, thread INTEGER, row INTEGER, UNIQUE (process, thread, row))",
    )?;
    drop(connection);
    let sharers: Vec<_> = (0..2)
        .map(|process| {
            child::spawn_role(
                SHARER_TEST,
                "sharer",
                &[
                    ("SHARE_DATABASE", path.clone().into_os_string()),
                    ("SHARE_PROCESS", process.to_string().into()),
                ],
            )
        })
        .collect::<Result<_, _>>()?;
    for sharer in sharers {
        child::assert_child_succeeded(SHARER_TEST, &sharer.wait_with_output()?);
    }
    assert_eq!(crate::header_format(&path), (2, 2));
    let connection = Connection::open(&path)?;
    assert_eq!(count(&connection, "t")?, 2 * 4 * 250);
    Ok(())
}

/// Promise: a filesystem kind set in the options is decided on: `FsKind::Nfs` sends a new
/// database straight to the default policy's network ladder (TRUNCATE, nothing tried and left), and
/// the report says the kind was set, not detected.
#[test]
fn a_forced_network_filesystem_opens_in_the_network_ladder() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("forced.db");
    let (_, report) = SqliteOptions::new(&path).filesystem(FsKind::Nfs).open()?;
    assert_eq!(report.journal_mode, Some(JournalMode::Truncate), "{report}");
    assert!(!report.fell_back(), "{report}");
    let filesystem = report.filesystem.as_ref().expect("a filesystem");
    assert_eq!(filesystem.kind, FsKind::Nfs);
    assert!(
        matches!(filesystem.kind_source, KindSource::SetByOptions { detected } if detected != FsKind::Nfs),
        "{filesystem:?}"
    );
    assert!(
        report.to_string().contains("set by the options"),
        "{report}"
    );
    assert_eq!(crate::header_format(&path), (1, 1));
    Ok(())
}

/// Promise: a new database on a filesystem that crosses a machine boundary (a network FUSE
/// client, set here by the options as the NFS test above does; virtiofs) is made in a rollback
/// journal (TRUNCATE), as on NFS, with nothing tried and left; the report names the client, the boundary and the lock
/// scope, and never calls its commits power-safe: another machine can write behind its back.
#[test]
fn a_new_database_on_a_network_fuse_share_or_a_vm_share_is_made_in_a_rollback_journal() -> TestResult
{
    let directory = tempfile::tempdir()?;
    let shares = [
        (
            FsKind::NetworkFuse(ShareClient::Sshfs),
            "on sshfs (set by the options",
            "a network share, locks held by this client only",
        ),
        (
            FsKind::NetworkFuse(ShareClient::Glusterfs),
            "on glusterfs (set by the options",
            "a network share, locks held by the server for every client",
        ),
        (
            FsKind::VirtioFs,
            "on virtiofs (set by the options",
            "shared with another VM's kernel, lock scope unknown",
        ),
    ];
    for (kind, named, scope) in shares {
        let path = directory.path().join(format!("{kind}.db"));
        let (_, report) = SqliteOptions::new(&path).filesystem(kind).open()?;
        assert_eq!(report.journal_mode, Some(JournalMode::Truncate), "{report}");
        assert!(!report.fell_back(), "{report}");
        assert_eq!(crate::header_format(&path), (1, 1), "{report}");
        assert!(
            report
                .machine_boundary()
                .is_some_and(MachineBoundary::is_crossed)
        );
        assert!(report.risks.is_empty(), "{report}");
        let text = report.to_string();
        assert!(text.contains(named) && text.contains(scope), "{text}");
        assert!(!text.contains("power-safe"), "{text}");
        assert!(text.contains("can write behind its back"), "{text}");
    }
    Ok(())
}

/// Promise: an existing WAL-format database on a network share is not switched live (it stays in
/// WAL format, opened exclusively), and the report says why it is at risk as a typed fact with
/// the boundary and the lock scope.
#[test]
fn an_existing_wal_database_on_a_share_stays_wal_and_is_reported_at_risk() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("shared.db");
    existing_wal_database(&path)?;
    let (_, report) = SqliteOptions::new(&path)
        .filesystem(FsKind::NetworkFuse(ShareClient::Smbnetfs))
        .open()?;
    assert!(
        report.journal_mode.is_some_and(JournalMode::is_wal),
        "{report}"
    );
    assert_eq!(crate::header_format(&path), (2, 2), "{report}");
    assert_eq!(
        report.risks,
        [Risk::WalAcrossMachineBoundary {
            boundary: MachineBoundary::NetworkShare,
            lock_scope: LockScope::ThisClientOnly,
        }],
        "{report}"
    );
    let text = report.to_string();
    assert!(
        text.contains("at risk: WAL on a network share (locks held by this client only"),
        "{text}"
    );
    Ok(())
}

/// Promise: the check a pool runs before lending a connection refuses one that its last user left
/// inside a transaction (its locks would stall everyone, and the next user would commit into it),
/// and passes it again once the transaction ends.
#[test]
fn the_pool_check_refuses_a_connection_left_inside_a_transaction() -> TestResult {
    let directory = tempfile::tempdir()?;
    let (database, _) = SqliteOptions::new(directory.path().join("check.db")).database()?;
    let connection = database.connect()?;
    store_sqlite::SqliteDatabase::check(&connection)?;
    connection.execute_batch("CREATE TABLE t (x INTEGER); BEGIN; INSERT INTO t VALUES (1);")?;
    assert!(
        matches!(
            store_sqlite::SqliteDatabase::check(&connection),
            Err(ConnectError::InTransaction { .. })
        ),
        "a connection inside a transaction passed the check"
    );
    connection.execute_batch("COMMIT")?;
    store_sqlite::SqliteDatabase::check(&connection)?;
    Ok(())
}

/// The locks this process holds on `path`'s inode, from the kernel's lock table.
fn own_locks_on(path: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    use std::os::unix::fs::MetadataExt as _;
    let inode = format!(":{}", std::fs::metadata(path)?.ino());
    let pid = std::process::id().to_string();
    Ok(std::fs::read_to_string("/proc/locks")?
        .lines()
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(4) == Some(&pid.as_str())
                && fields.get(5).is_some_and(|file| file.ends_with(&inode))
        })
        // Without the line's number, which is its place in the whole machine's table.
        .map(|line| {
            line.split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect())
}

/// Promise: a second open of a database this process already holds a connection to (no handle
/// kept, so the open reads the file's header again) leaves that connection's locks in place.
/// SQLite's locks are POSIX locks, which the kernel drops for the whole process when any
/// descriptor of the file closes: a connection in WAL mode holds a read lock on the database
/// file for its whole life (another process closing its last connection takes the file as
/// unused, checkpoints and deletes the WAL, unless it finds that lock), and a header read that
/// closed its descriptor dropped it.
#[test]
fn another_open_here_keeps_this_processs_locks() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("kept.db");
    let (first, report) = SqliteOptions::new(&path).open()?;
    assert_eq!(report.journal_mode, Some(JournalMode::Wal), "{report}");
    first.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")?;
    let held = own_locks_on(&path)?;
    assert!(
        !held.is_empty(),
        "a WAL connection holds a lock on the database file"
    );
    let (second, _) = SqliteOptions::new(&path).open()?;
    assert_eq!(
        own_locks_on(&path)?,
        held,
        "the first connection's locks are all still held"
    );
    drop(second);
    drop(first);
    Ok(())
}
