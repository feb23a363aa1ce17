//! Durable by default: in every mode the ladder can pick, the open sets the `synchronous` level
//! under which an acknowledged commit survives a power cut, and the report says what is in force
//! as SQLite answers it. `Synchronous::Normal` is the opt-out, reported as not power-safe. (The
//! power cuts themselves are `cargo xtask fault-matrix --fault power-loss`.)

use rusqlite::Connection;
use store_core::{Durability, JournalLadder, JournalMode, SyncLevel};
use store_sqlite::{ConnectError, OpenError, SqliteOptions, Synchronous};
use store_testkit::faults::sqlite::SqliteFault;
use store_testkit::isolated;

use crate::{TestResult, count, write_plain_rows};

/// The level the connection itself answers.
fn synchronous_in_force(connection: &Connection) -> rusqlite::Result<Option<Synchronous>> {
    let level: i64 = connection.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
    Ok(Synchronous::from_level(level))
}

const POWER_SAFE_FULL: Durability = Durability::PowerSafe {
    sync: SyncLevel::Full,
};
const POWER_SAFE_EXTRA: Durability = Durability::PowerSafe {
    sync: SyncLevel::Extra,
};

#[test]
fn wal_by_default_is_full_and_reported_power_safe() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("state.db");
    let (connection, report) = SqliteOptions::new(&path).open()?;
    assert_eq!(report.journal_mode, Some(JournalMode::Wal), "{report}");
    assert_eq!(report.durability, Some(POWER_SAFE_FULL), "{report}");
    assert_eq!(synchronous_in_force(&connection)?, Some(Synchronous::Full));
    assert!(
        report
            .to_string()
            .contains("power-safe commits (sync full)"),
        "{report}"
    );
    write_plain_rows(&connection, 3)?;
    drop(connection);

    // The level belongs to the connection, not the file: a reopen sets it again.
    let (connection, again) = SqliteOptions::new(&path).open()?;
    assert!(!again.created, "{again}");
    assert_eq!(again.durability, Some(POWER_SAFE_FULL), "{again}");
    assert_eq!(synchronous_in_force(&connection)?, Some(Synchronous::Full));
    assert_eq!(count(&connection, "t")?, 3);
    Ok(())
}

#[test]
fn wal_exclusive_by_default_is_full_and_reported_power_safe() -> TestResult {
    let directory = tempfile::tempdir()?;
    let (connection, report) = SqliteOptions::new(directory.path().join("single.db"))
        .journal_policy(JournalLadder::strict(JournalMode::WalExclusive))
        .open()?;
    assert_eq!(
        report.journal_mode,
        Some(JournalMode::WalExclusive),
        "{report}"
    );
    assert_eq!(report.durability, Some(POWER_SAFE_FULL), "{report}");
    assert_eq!(synchronous_in_force(&connection)?, Some(Synchronous::Full));
    Ok(())
}

/// Under FULL the journal's deletion is not synced and a power cut can bring it back, rolling
/// the last acknowledged commit back: the rollback-journal modes get EXTRA.
#[test]
fn delete_by_default_is_extra_and_reported_power_safe() -> TestResult {
    let directory = tempfile::tempdir()?;
    let (connection, report) = SqliteOptions::new(directory.path().join("portable.db"))
        .journal_policy(JournalLadder::strict(JournalMode::Delete))
        .open()?;
    assert_eq!(report.journal_mode, Some(JournalMode::Delete), "{report}");
    assert_eq!(report.durability, Some(POWER_SAFE_EXTRA), "{report}");
    assert_eq!(synchronous_in_force(&connection)?, Some(Synchronous::Extra));
    assert!(
        report
            .to_string()
            .contains("power-safe commits (sync extra)"),
        "{report}"
    );
    Ok(())
}

/// The ladder's own fallback (WAL fails for want of shared memory) lands on DELETE at EXTRA.
#[test]
fn the_delete_fallback_is_extra_and_reported_power_safe() {
    isolated!(the_delete_fallback_is_extra_and_reported_power_safe, {
        let directory = tempfile::tempdir().unwrap();
        let _fault = SqliteFault::NoSharedMemory.install().unwrap();
        let (connection, report) = SqliteOptions::new(directory.path().join("nfs.db"))
            .open()
            .unwrap();
        assert!(report.fell_back(), "{report}");
        assert_eq!(report.journal_mode, Some(JournalMode::Delete), "{report}");
        assert_eq!(report.durability, Some(POWER_SAFE_EXTRA), "{report}");
        assert_eq!(
            synchronous_in_force(&connection).unwrap(),
            Some(Synchronous::Extra)
        );
    });
}

#[test]
fn normal_is_the_opt_out_and_reported_as_not_power_safe() -> TestResult {
    let directory = tempfile::tempdir()?;
    let (connection, report) = SqliteOptions::new(directory.path().join("fast.db"))
        .synchronous(Synchronous::Normal)
        .open()?;
    assert_eq!(report.journal_mode, Some(JournalMode::Wal), "{report}");
    assert_eq!(
        report.durability,
        Some(Durability::RecentCommitsMayBeLost {
            sync: SyncLevel::Normal
        }),
        "{report}"
    );
    assert!(
        !report.durability.is_some_and(Durability::is_power_safe),
        "{report}"
    );
    assert_eq!(
        synchronous_in_force(&connection)?,
        Some(Synchronous::Normal)
    );
    assert!(
        report
            .to_string()
            .contains("a power cut may undo recent commits (sync normal)"),
        "{report}"
    );

    // In DELETE, NORMAL syncs the journal once for pages and header together: SQLite does not
    // promise that a power cut leaves the database whole.
    let (connection, report) = SqliteOptions::new(directory.path().join("fast-delete.db"))
        .journal_policy(JournalLadder::strict(JournalMode::Delete))
        .synchronous(Synchronous::Normal)
        .open()?;
    assert_eq!(
        report.durability,
        Some(Durability::MayCorrupt {
            sync: SyncLevel::Normal
        }),
        "{report}"
    );
    assert_eq!(
        synchronous_in_force(&connection)?,
        Some(Synchronous::Normal)
    );
    Ok(())
}

/// FULL, asked for explicitly in DELETE, is what it is there: the last commit may be rolled back.
#[test]
fn an_explicit_level_is_reported_for_what_it_does_in_the_mode_in_force() -> TestResult {
    let directory = tempfile::tempdir()?;
    let (connection, report) = SqliteOptions::new(directory.path().join("full-delete.db"))
        .journal_policy(JournalLadder::strict(JournalMode::Delete))
        .synchronous(Synchronous::Full)
        .open()?;
    assert_eq!(
        report.durability,
        Some(Durability::RecentCommitsMayBeLost {
            sync: SyncLevel::Full
        }),
        "{report}"
    );
    assert_eq!(synchronous_in_force(&connection)?, Some(Synchronous::Full));

    let (connection, report) = SqliteOptions::new(directory.path().join("extra-wal.db"))
        .synchronous(Synchronous::Extra)
        .open()?;
    assert_eq!(report.durability, Some(POWER_SAFE_EXTRA), "{report}");
    assert_eq!(synchronous_in_force(&connection)?, Some(Synchronous::Extra));
    Ok(())
}

#[test]
fn a_read_only_open_commits_nothing_and_reports_no_durability() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("state.db");
    drop(SqliteOptions::new(&path).open()?);
    let (_connection, report) = SqliteOptions::new(&path).read_only(true).open()?;
    assert_eq!(report.durability, None, "{report}");
    assert!(!report.to_string().contains("sync"), "{report}");
    Ok(())
}

/// An initialisation that lowers `synchronous` after store set it.
fn lowering_to_normal(connection: &Connection) -> rusqlite::Result<()> {
    connection.pragma_update(None, "synchronous", "normal")
}

/// The open's report says what its connection does after the user's `on_connect` ran: an
/// initialisation that lowers `synchronous` below the level asked fails the open, naming both,
/// rather than hand out a NORMAL connection under a report that says power-safe.
#[test]
fn an_on_connect_that_lowers_synchronous_fails_the_open() -> TestResult {
    let directory = tempfile::tempdir()?;
    let opened = SqliteOptions::new(directory.path().join("lowered.db"))
        .on_connect(lowering_to_normal)
        .open();
    match opened {
        Err(OpenError::SynchronousNotTaken {
            asked: Synchronous::Full,
            answered: 1,
            ..
        }) => {}
        Err(other) => panic!("refused for another reason: {other:?}"),
        Ok((connection, report)) => panic!(
            "handed out a connection at {:?} under a report of {:?}",
            synchronous_in_force(&connection)?,
            report.durability
        ),
    }
    Ok(())
}

/// A reused decision (another open of a file whose handle lives) reads the level back after
/// `on_connect` as the first open does: the connection it hands out is at the level its report
/// states, or the open fails.
#[test]
fn a_reused_decision_reads_synchronous_back_after_on_connect() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("reused.db");
    let (_held, first) = SqliteOptions::new(&path).database()?;
    assert_eq!(first.durability, Some(POWER_SAFE_FULL), "{first}");
    let opened = SqliteOptions::new(&path)
        .on_connect(lowering_to_normal)
        .open();
    match opened {
        Err(OpenError::Connect(ConnectError::SynchronousNotTaken {
            asked: Synchronous::Full,
            answered: 1,
            ..
        })) => {}
        Err(other) => panic!("refused for another reason: {other:?}"),
        Ok((connection, report)) => panic!(
            "reused: {}; handed out a connection at {:?} under a report of {:?}",
            report.reused_decision,
            synchronous_in_force(&connection)?,
            report.durability
        ),
    }
    Ok(())
}

/// Every connection a handle makes is at the level the handle's `durability()` states, read
/// back after `on_connect`: one whose initialisation lowered it is refused.
#[test]
fn connect_reads_synchronous_back_after_on_connect() -> TestResult {
    let directory = tempfile::tempdir()?;
    // The open's own connection keeps the level; every later one is lowered.
    let calls = std::sync::atomic::AtomicU32::new(0);
    let (database, report) = SqliteOptions::new(directory.path().join("connect.db"))
        .on_connect(move |connection| {
            if calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0 {
                return Ok(());
            }
            lowering_to_normal(connection)
        })
        .database()?;
    assert_eq!(report.durability, Some(POWER_SAFE_FULL), "{report}");
    // The first connect lends the open's connection.
    let first = database.connect()?;
    assert_eq!(synchronous_in_force(&first)?, Some(Synchronous::Full));
    match database.connect() {
        Err(ConnectError::SynchronousNotTaken {
            asked: Synchronous::Full,
            answered: 1,
            ..
        }) => {}
        Err(other) => panic!("refused for another reason: {other:?}"),
        Ok(connection) => panic!(
            "connect() handed out a connection at {:?} while the handle says {:?}",
            synchronous_in_force(&connection)?,
            database.durability()
        ),
    }
    Ok(())
}

/// An initialisation that sets the level the options ask for, or other pragmas, is no change:
/// the open and every connection go on as asked.
#[test]
fn an_on_connect_that_keeps_the_level_asked_is_accepted() -> TestResult {
    let directory = tempfile::tempdir()?;
    let (database, report) = SqliteOptions::new(directory.path().join("kept.db"))
        .synchronous(Synchronous::Normal)
        .on_connect(lowering_to_normal)
        .on_connect(|connection| connection.pragma_update(None, "foreign_keys", "ON"))
        .database()?;
    assert_eq!(
        report.durability,
        Some(Durability::RecentCommitsMayBeLost {
            sync: SyncLevel::Normal
        }),
        "{report}"
    );
    let first = database.connect()?;
    let second = database.connect()?;
    for connection in [&first, &second] {
        assert_eq!(synchronous_in_force(connection)?, Some(Synchronous::Normal));
    }
    Ok(())
}
