//! The journal ladder under real faults: the seed's TestApplyWalWithFallback, TestGetLastInitError
//! and TestSessionDbUsesWalFallback, each driven by a fault SQLite itself produces.

use std::time::Duration;

use rusqlite::Connection;
use store_core::{FailureClass, JournalLadder, JournalMode, Migration, Migrations};
use store_sqlite::{OpenError, SqliteOptions};
use store_testkit::faults::sqlite::SqliteFault;
use store_testkit::isolated;
use store_testkit::logs::{self, CapturedEvent};
use tracing::Level;

use crate::{TestResult, count, header_format, write_plain_rows};

fn warnings(events: &[CapturedEvent]) -> Vec<&CapturedEvent> {
    logs::at_level(events, Level::WARN)
}

#[test]
fn wal_on_a_local_filesystem_with_nothing_logged_at_warn() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("ok.db");
    let (result, events) = logs::capture(|| SqliteOptions::new(&path).open());
    let (connection, report) = result?;
    assert_eq!(report.journal_mode, Some(JournalMode::Wal));
    assert!(report.created && !report.fell_back(), "{report}");
    let mode: String = connection.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    assert_eq!(mode, "wal");
    assert_eq!(header_format(&path), (2, 2));
    assert!(warnings(&events).is_empty(), "{events:?}");
    Ok(())
}

#[test]
fn falls_back_to_delete_without_shared_memory_with_one_warning() {
    isolated!(
        falls_back_to_delete_without_shared_memory_with_one_warning,
        {
            let directory = tempfile::tempdir().unwrap();
            let path = directory.path().join("nfs.db");
            let _fault = SqliteFault::NoSharedMemory.install().unwrap();
            let (result, events) =
                logs::capture(|| SqliteOptions::new(&path).label("test.db").open());
            let (connection, report) = result.unwrap();
            assert_eq!(report.journal_mode, Some(JournalMode::Delete), "{report}");
            assert_eq!(report.fallbacks.len(), 1);
            assert_eq!(report.fallbacks[0].from, JournalMode::Wal);
            assert_eq!(report.fallbacks[0].class, FailureClass::WalUnsupported);
            assert!(
                report.fallbacks[0].cause.contains("disk I/O error"),
                "{report}"
            );
            // Created in rollback format: shared memory was found missing before anything
            // switched the file.
            assert_eq!(header_format(&path), (1, 1));

            let warnings = warnings(&events);
            assert_eq!(warnings.len(), 1, "{events:?}");
            let message = &warnings[0].text;
            assert!(message.contains("test.db"), "{message}");
            assert!(message.contains("journal_mode=DELETE"), "{message}");
            assert!(message.contains("disk I/O error"), "{message}");
            assert_eq!(warnings[0].target, "store::sqlite");

            // The database is usable for real writes afterwards, from this and another connection.
            write_plain_rows(&connection, 1).unwrap();
            assert_eq!(count(&connection, "t").unwrap(), 1);
            let other = Connection::open(&path).unwrap();
            assert_eq!(count(&other, "t").unwrap(), 1);
        }
    );
}

/// Promise: the first fallback open of a process never switches a rollback-format file into WAL
/// format and back (two durable header writes, 9 fsyncs): shared memory is asked of SQLite's VFS
/// on a scratch file first, and the file stays byte for byte as it was.
#[test]
fn the_first_fallback_leaves_a_rollback_file_untouched() {
    isolated!(the_first_fallback_leaves_a_rollback_file_untouched, {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nfs.db");
        let plain = Connection::open(&path).unwrap();
        write_plain_rows(&plain, 3).unwrap();
        drop(plain);
        let before = std::fs::read(&path).unwrap();
        assert_eq!(header_format(&path), (1, 1));

        let _fault = SqliteFault::NoSharedMemory.install().unwrap();
        let (connection, report) = SqliteOptions::new(&path).open().unwrap();
        assert_eq!(report.journal_mode, Some(JournalMode::Delete), "{report}");
        assert_eq!(report.fallbacks.len(), 1, "{report}");
        assert_eq!(report.fallbacks[0].from, JournalMode::Wal);
        assert_eq!(report.fallbacks[0].class, FailureClass::WalUnsupported);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "the open wrote to the file"
        );
        // Nothing of the check is left in the directory.
        let names: Vec<_> = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["nfs.db"], "{names:?}");
        assert_eq!(count(&connection, "t").unwrap(), 3);
    });
}

/// Promise: a new database is made in the format of the rung the open lands on, WAL on a healthy
/// disk and rollback where shared memory fails, so that the open at its name switches nothing.
#[test]
fn a_new_database_is_made_in_the_format_of_its_rung() {
    isolated!(a_new_database_is_made_in_the_format_of_its_rung, {
        let directory = tempfile::tempdir().unwrap();
        let (_, healthy) = SqliteOptions::new(directory.path().join("local.db"))
            .open()
            .unwrap();
        assert!(healthy.created && !healthy.fell_back(), "{healthy}");
        assert_eq!(header_format(&directory.path().join("local.db")), (2, 2));

        let _fault = SqliteFault::NoSharedMemory.install().unwrap();
        let path = directory.path().join("nfs.db");
        let (connection, report) = SqliteOptions::new(&path).open().unwrap();
        assert!(report.created, "{report}");
        assert_eq!(report.journal_mode, Some(JournalMode::Delete), "{report}");
        assert_eq!(header_format(&path), (1, 1));
        // The file change counter (header bytes 24..28) counts the write transactions a
        // rollback-format file has seen: the creation's one, no switch to WAL and back.
        let header = std::fs::read(&path).unwrap();
        assert_eq!(u32::from_be_bytes(header[24..28].try_into().unwrap()), 1);
        write_plain_rows(&connection, 2).unwrap();
        assert_eq!(count(&connection, "t").unwrap(), 2);
    });
}

/// Once WAL has failed in a directory, later opens there go straight to the next rung: the
/// file is not switched into WAL format and back (two durable writes) on every open.
#[test]
fn a_wal_failure_is_not_retried_in_the_same_directory() {
    isolated!(a_wal_failure_is_not_retried_in_the_same_directory, {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nfs.db");
        let _fault = SqliteFault::NoSharedMemory.install().unwrap();
        let (connection, first) = SqliteOptions::new(&path).open().unwrap();
        assert!(
            !first.fallbacks[0].cause.contains("not tried again"),
            "{first}"
        );
        write_plain_rows(&connection, 3).unwrap();
        drop(connection);

        let written = std::fs::metadata(&path).unwrap().modified().unwrap();
        let (connection, again) = SqliteOptions::new(&path).open().unwrap();
        assert_eq!(again.journal_mode, Some(JournalMode::Delete), "{again}");
        assert_eq!(again.fallbacks[0].class, FailureClass::WalUnsupported);
        assert!(
            again.fallbacks[0].cause.contains("not tried again"),
            "{again}"
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            written,
            "the reopen wrote to the file"
        );
        assert_eq!(count(&connection, "t").unwrap(), 3);

        // Another database in the same directory: the same shortcut, and it still works.
        let (other, report) = SqliteOptions::new(directory.path().join("other.db"))
            .open()
            .unwrap();
        assert_eq!(report.journal_mode, Some(JournalMode::Delete), "{report}");
        assert!(
            report.fallbacks[0].cause.contains("not tried again"),
            "{report}"
        );
        write_plain_rows(&other, 1).unwrap();

        // WAL as the only rung is still tried (and fails for real), not skipped.
        let strict = SqliteOptions::new(directory.path().join("strict.db"))
            .journal_policy(JournalLadder::strict(JournalMode::Wal))
            .open()
            .unwrap_err();
        assert_eq!(strict.class(), FailureClass::WalUnsupported, "{strict}");
    });
}

#[test]
fn falls_back_on_locking_protocol() {
    isolated!(falls_back_on_locking_protocol, {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nfs.db");
        let _fault = SqliteFault::LockProtocol.install().unwrap();
        let (result, events) = logs::capture(|| {
            SqliteOptions::new(&path)
                .label("state.db")
                .busy_timeout(Duration::from_millis(100))
                .open()
        });
        let (connection, report) = result.unwrap();
        assert_eq!(report.journal_mode, Some(JournalMode::Delete), "{report}");
        assert_eq!(report.fallbacks[0].class, FailureClass::WalUnsupported);
        let warnings = warnings(&events);
        assert_eq!(warnings.len(), 1, "{events:?}");
        assert!(
            warnings[0].text.contains("locking protocol"),
            "{}",
            warnings[0].text
        );
        assert!(
            warnings[0].text.contains("journal_mode=DELETE"),
            "{}",
            warnings[0].text
        );
        write_plain_rows(&connection, 3).unwrap();
        assert_eq!(count(&connection, "t").unwrap(), 3);
    });
}

#[test]
fn falls_back_on_not_authorized() {
    isolated!(falls_back_on_not_authorized, {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("fuse.db");
        let _fault = SqliteFault::JournalPragmaDenied.install().unwrap();
        let (connection, report) = SqliteOptions::new(&path).open().unwrap();
        assert_eq!(report.journal_mode, Some(JournalMode::Delete), "{report}");
        assert_eq!(report.fallbacks[0].class, FailureClass::WalUnsupported);
        assert!(
            report.fallbacks[0].cause.contains("not authorized"),
            "{report}"
        );
        // DELETE was already in force, so the denied pragma was never needed for it.
        write_plain_rows(&connection, 1).unwrap();
    });
}

#[test]
fn falls_back_on_a_disk_io_error_that_persists() {
    isolated!(falls_back_on_a_disk_io_error_that_persists, {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("flaky.db");
        // Every commit's sync fails: the WAL switch (a commit) fails on each of its three tries.
        let fault = SqliteFault::CommitIoError {
            skip: 1,
            fail: 1000,
        }
        .install()
        .unwrap();
        let (connection, report) = SqliteOptions::new(&path).open().unwrap();
        assert_eq!(report.journal_mode, Some(JournalMode::Delete), "{report}");
        assert_eq!(report.fallbacks[0].class, FailureClass::WalUnsupported);
        assert!(
            report.fallbacks[0].cause.contains("disk I/O error"),
            "{report}"
        );
        drop(fault);
        write_plain_rows(&connection, 2).unwrap();
        assert_eq!(count(&connection, "t").unwrap(), 2);
    });
}

/// Promise: a one-off I/O error while switching to WAL is retried, and WAL is kept. The fault
/// must be seen to fire (once) and the retry to happen: an outcome equal to the no-fault one
/// proves nothing alone (the open of a new database switches nothing, and this test passed on it).
#[test]
fn a_one_off_io_error_is_retried_and_wal_kept() {
    isolated!(a_one_off_io_error_is_retried_and_wal_kept, {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("blip.db");
        // A rollback-format database with rows: the open's switch to WAL is a commit, the first.
        write_plain_rows(&Connection::open(&path).unwrap(), 3).unwrap();
        assert_eq!(header_format(&path), (1, 1));
        let _fault = SqliteFault::CommitIoError { skip: 0, fail: 1 }
            .install()
            .unwrap();
        let (result, events) = logs::capture(|| SqliteOptions::new(&path).open());
        let (connection, report) = result.unwrap();
        assert_eq!(
            store_testkit::faults::sqlite::commit_failures_injected(),
            1,
            "the fault fired once"
        );
        let retries: Vec<_> = events
            .iter()
            .filter(|event| {
                event.text.contains("transient I/O error") && event.text.contains("retrying")
            })
            .collect();
        assert_eq!(retries.len(), 1, "one retry logged: {events:?}");
        assert_eq!(report.journal_mode, Some(JournalMode::Wal), "{report}");
        assert!(!report.fell_back(), "{report}");
        assert_eq!(header_format(&path), (2, 2));
        assert_eq!(count(&connection, "t").unwrap(), 3);
    });
}

#[test]
fn an_unrelated_error_propagates_instead_of_falling_back() -> TestResult {
    // Another connection holds an exclusive lock on a rollback-journal database: switching to WAL
    // needs that lock, so the switch fails with SQLITE_BUSY, which is not a reason to fall back.
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("other.db");
    let holder = Connection::open(&path)?;
    write_plain_rows(&holder, 1)?;
    holder.execute_batch("BEGIN EXCLUSIVE")?;
    let error = SqliteOptions::new(&path)
        .busy_timeout(Duration::from_millis(50))
        .open()
        .unwrap_err();
    assert_eq!(error.class(), FailureClass::Busy, "{error}");
    assert!(
        matches!(
            error,
            OpenError::Journal {
                mode: JournalMode::Wal,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        store_sqlite::extended_code(error.sqlite_error().unwrap()),
        Some(rusqlite::ffi::SQLITE_BUSY)
    );
    assert_eq!(error.path(), path);
    holder.execute_batch("COMMIT")?;
    assert_eq!(header_format(&path), (1, 1), "nothing was converted");
    Ok(())
}

#[test]
fn no_locks_propagates_busy() {
    isolated!(no_locks_propagates_busy, {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nolock.db");
        write_plain_rows(&Connection::open(&path).unwrap(), 1).unwrap();
        let _fault = SqliteFault::NoLocks.install().unwrap();
        let error = SqliteOptions::new(&path)
            .busy_timeout(Duration::from_millis(50))
            .open()
            .unwrap_err();
        assert_eq!(error.class(), FailureClass::Busy, "{error}");
        let recorded = store_core::last_open_error().expect("recorded");
        assert_eq!(recorded.class, FailureClass::Busy);
        assert!(
            recorded.cause.contains("database is locked"),
            "{}",
            recorded.cause
        );
    });
}

#[test]
fn warning_deduplicated_per_label_and_fires_per_label() {
    isolated!(warning_deduplicated_per_label_and_fires_per_label, {
        let directory = tempfile::tempdir().unwrap();
        let _fault = SqliteFault::NoSharedMemory.install().unwrap();
        let ((), events) = logs::capture(|| {
            for index in 0..3 {
                let path = directory.path().join(format!("dup-{index}.db"));
                let (_, report) = SqliteOptions::new(&path).label("shared.db").open().unwrap();
                assert_eq!(report.journal_mode, Some(JournalMode::Delete));
            }
            for label in ["state.db", "kanban.db"] {
                let path = directory.path().join(label);
                SqliteOptions::new(&path).label(label).open().unwrap();
            }
        });
        let warnings = warnings(&events);
        let mentioning = |label: &str| warnings.iter().filter(|w| w.text.contains(label)).count();
        assert_eq!(mentioning("shared.db"), 1, "{warnings:?}");
        assert_eq!(mentioning("state.db"), 1, "{warnings:?}");
        assert_eq!(mentioning("kanban.db"), 1, "{warnings:?}");
        assert_eq!(warnings.len(), 3);
    });
}

#[test]
fn single_process_policy_keeps_wal_with_exclusive_locking() {
    isolated!(single_process_policy_keeps_wal_with_exclusive_locking, {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("desktop.db");
        let _fault = SqliteFault::NoSharedMemory.install().unwrap();
        let (connection, report) = SqliteOptions::new(&path)
            .journal_policy(JournalLadder::single_process())
            .open()
            .unwrap();
        assert_eq!(
            report.journal_mode,
            Some(JournalMode::WalExclusive),
            "{report}"
        );
        assert_eq!(header_format(&path), (2, 2));
        let locking: String = connection
            .query_row("PRAGMA locking_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(locking, "exclusive");
        write_plain_rows(&connection, 5).unwrap();
        assert_eq!(count(&connection, "t").unwrap(), 5);
    });
}

#[test]
fn an_existing_wal_database_is_opened_exclusively_not_downgraded() {
    isolated!(
        an_existing_wal_database_is_opened_exclusively_not_downgraded,
        {
            let directory = tempfile::tempdir().unwrap();
            let path = directory.path().join("existing.db");
            {
                let (connection, report) = SqliteOptions::new(&path).open().unwrap();
                assert_eq!(report.journal_mode, Some(JournalMode::Wal));
                write_plain_rows(&connection, 4).unwrap();
            }
            let _fault = SqliteFault::NoSharedMemory.install().unwrap();
            let (connection, report) = SqliteOptions::new(&path).open().unwrap();
            assert_eq!(
                report.journal_mode,
                Some(JournalMode::WalExclusive),
                "{report}"
            );
            assert_eq!(report.fallbacks[0].from, JournalMode::Wal);
            // Kept in WAL format, so usable by one connection only: a typed fact of the report.
            assert_eq!(
                report.connection_limit,
                store_core::ConnectionLimit::One,
                "{report}"
            );
            assert_eq!(header_format(&path), (2, 2), "not downgraded");
            assert_eq!(count(&connection, "t").unwrap(), 4);
        }
    );
}

#[test]
fn an_existing_wal_database_is_converted_when_the_policy_allows() {
    isolated!(
        an_existing_wal_database_is_converted_when_the_policy_allows,
        {
            let directory = tempfile::tempdir().unwrap();
            let path = directory.path().join("existing.db");
            {
                let (connection, _) = SqliteOptions::new(&path).open().unwrap();
                write_plain_rows(&connection, 4).unwrap();
            }
            let _fault = SqliteFault::NoSharedMemory.install().unwrap();
            let (connection, report) = SqliteOptions::new(&path)
                .journal_policy(JournalLadder::default().converting_existing_wal(true))
                .open()
                .unwrap();
            assert_eq!(report.journal_mode, Some(JournalMode::Delete), "{report}");
            assert_eq!(header_format(&path), (1, 1));
            assert_eq!(count(&connection, "t").unwrap(), 4);
        }
    );
}

#[test]
fn strict_policy_fails_and_puts_the_file_back() {
    isolated!(strict_policy_fails_and_puts_the_file_back, {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("strict.db");
        write_plain_rows(&Connection::open(&path).unwrap(), 2).unwrap();
        let _fault = SqliteFault::NoSharedMemory.install().unwrap();
        let error = SqliteOptions::new(&path)
            .journal_policy(JournalLadder::strict(JournalMode::Wal))
            .open()
            .unwrap_err();
        // A strict policy falls back on nothing: the WAL failure propagates as it is.
        assert_eq!(error.class(), FailureClass::WalUnsupported, "{error}");
        assert_eq!(header_format(&path), (1, 1), "WAL flip undone");
        assert_eq!(count(&Connection::open(&path).unwrap(), "t").unwrap(), 2);
    });
}

#[test]
fn last_open_error_is_captured_and_not_cleared_by_a_later_success() {
    isolated!(
        last_open_error_is_captured_and_not_cleared_by_a_later_success,
        {
            store_core::clear_last_open_error();
            let writable = tempfile::tempdir().unwrap();
            let read_only = tempfile::tempdir().unwrap();
            store_testkit::faults::mounts::remount_read_only(read_only.path()).unwrap();

            let error = SqliteOptions::new(read_only.path().join("broken.db"))
                .open()
                .unwrap_err();
            assert_eq!(error.class(), FailureClass::ReadOnly, "{error}");
            let recorded = store_core::last_open_error().expect("captured");
            assert!(recorded.path.ends_with("broken.db"));
            assert_eq!(recorded.class, FailureClass::ReadOnly);

            // A later success, as from another request's thread, leaves the cause in place.
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    SqliteOptions::new(writable.path().join("ok.db"))
                        .open()
                        .unwrap()
                });
            });
            assert_eq!(store_core::last_open_error(), Some(recorded.clone()));
            let message = store_core::unavailable_message("Session database not available");
            assert!(
                message.starts_with("Session database not available: "),
                "{message}"
            );
            assert!(message.contains("broken.db"), "{message}");
        }
    );
}

#[test]
fn unavailable_message_after_a_wal_failure_carries_cause_and_hint() {
    isolated!(
        unavailable_message_after_a_wal_failure_carries_cause_and_hint,
        {
            let directory = tempfile::tempdir().unwrap();
            let _fault = SqliteFault::LockProtocol.install().unwrap();
            let error = SqliteOptions::new(directory.path().join("state.db"))
                .journal_policy(JournalLadder::strict(JournalMode::Wal))
                .busy_timeout(Duration::from_millis(50))
                .open()
                .unwrap_err();
            assert_eq!(error.class(), FailureClass::WalUnsupported);
            let message = store_core::unavailable_message("Cannot /resume");
            assert!(message.starts_with("Cannot /resume: "), "{message}");
            assert!(message.contains("locking protocol"), "{message}");
            assert!(
                message.contains("NFS/SMB") && message.contains("sqlite.org/wal.html"),
                "{message}"
            );
        }
    );
}

#[test]
fn usable_end_to_end_after_a_fallback_with_migrations() {
    isolated!(usable_end_to_end_after_a_fallback_with_migrations, {
        store_core::clear_last_open_error();
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nfs_style.db");
        let _fault = SqliteFault::NoSharedMemory.install().unwrap();
        let migrations = Migrations::new(vec![Migration::new(
            1,
            "sessions",
            "CREATE TABLE sessions (id TEXT PRIMARY KEY, source TEXT, model TEXT)",
        )])
        .unwrap();
        let (connection, report) = SqliteOptions::new(&path)
            .migrations(migrations)
            .open()
            .unwrap();
        assert!(report.fell_back());
        assert_eq!(report.schema_version, 1);
        connection
            .execute("INSERT INTO sessions VALUES ('s1', 'cli', 'test')", [])
            .unwrap();
        let source: String = connection
            .query_row("SELECT source FROM sessions WHERE id = 's1'", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(source, "cli");
        // The open succeeded through the fallback: no open error was recorded.
        assert_eq!(store_core::last_open_error(), None);
    });
}
