//! A library call must not change the application's state: examining a directory where opens
//! fail leaves the process's last open error as it was, and a directory where WAL fails is not
//! marked as such for the application's later opens. Each test runs in a process of its own: the
//! faults and the last-error record are process-wide.

use store_core::{Engine, FailureClass, JournalMode, OpenFailure};
use store_doctor::WalProbe;
use store_sqlite::SqliteOptions;
use store_testkit::faults::sqlite::SqliteFault;
use store_testkit::isolated;

/// The application's own earlier failure, which the doctor must leave in place.
fn applications_failure() -> OpenFailure {
    OpenFailure::new(
        Engine::Sqlite,
        "/srv/app/state.db",
        "state.db",
        FailureClass::Busy,
        "the application's own failure",
    )
}

/// Promise: where no database can be created (every `fcntl` lock fails, as on NFSv3 without a
/// lock daemon), the doctor's probe fails and says so, but the process's last open error, which
/// `store::unavailable_message` tells the user, is still the application's own. (The doctor's
/// earlier probe opened through store and recorded its failure there.)
#[test]
fn a_failing_probe_leaves_the_last_open_error_alone() {
    isolated!(a_failing_probe_leaves_the_last_open_error_alone, {
        let home = tempfile::tempdir().unwrap();
        let failure = applications_failure();
        store_core::record_open_failure(failure.clone());
        let message = store_core::unavailable_message("Session database not available");

        let _no_locks = SqliteFault::NoLocks.install().unwrap();
        let checkup = store_doctor::examine(home.path()).unwrap();
        assert!(
            matches!(checkup.wal, WalProbe::Fails { .. }),
            "{:?}",
            checkup.wal
        );
        assert_eq!(store_core::last_open_error(), Some(failure));
        assert_eq!(
            store_core::unavailable_message("Session database not available"),
            message
        );
    });
}

/// Promise: a DuckDB database whose open fails (another database's WAL beside it) is reported
/// without touching the process's last open error. (The doctor's earlier check opened it through
/// store, which recorded the failure.)
#[cfg(feature = "duckdb")]
#[test]
fn a_failing_duckdb_open_leaves_the_last_open_error_alone() {
    isolated!(a_failing_duckdb_open_leaves_the_last_open_error_alone, {
        use store_testkit::faults::duckdb::{replace_wal_with_foreign, write_uncheckpointed_rows};

        let home = tempfile::tempdir().unwrap();
        let path = home.path().join("system.duckdb");
        let other = home.path().join("other").join("system.duckdb");
        std::fs::create_dir(other.parent().unwrap()).unwrap();
        write_uncheckpointed_rows(&path, 10, 3).unwrap();
        write_uncheckpointed_rows(&other, 10, 3).unwrap();
        replace_wal_with_foreign(&path, &other).unwrap();
        let failure = applications_failure();
        store_core::record_open_failure(failure.clone());

        let checkup = store_doctor::examine(&path).unwrap();
        assert!(
            checkup.verdict() >= store_doctor::Verdict::WillRecover,
            "{checkup}"
        );
        assert_eq!(store_core::last_open_error(), Some(failure));
    });
}

/// Promise: after the doctor saw WAL fail in a directory (the no-shared-memory fault), the
/// application's next open there, once shared memory works again, still tries WAL and gets it:
/// the doctor left no "WAL failed here" verdict behind. (Its earlier probe opened through store,
/// whose per-directory memory then made every later open skip WAL with "failed in this directory
/// earlier in this process".)
#[test]
fn a_failed_wal_probe_leaves_no_verdict_on_the_directory() {
    isolated!(a_failed_wal_probe_leaves_no_verdict_on_the_directory, {
        let home = tempfile::tempdir().unwrap();
        let no_shared_memory = SqliteFault::NoSharedMemory.install().unwrap();
        let checkup = store_doctor::examine(home.path()).unwrap();
        match &checkup.wal {
            WalProbe::FallsBack { class, to, .. } => {
                assert_eq!(*class, FailureClass::WalUnsupported);
                assert_eq!(*to, JournalMode::Delete);
            }
            other => panic!("expected WAL to fail under the fault, got {other:?}"),
        }
        drop(no_shared_memory);

        let (_connection, report) = SqliteOptions::new(home.path().join("state.db"))
            .open()
            .unwrap();
        assert_eq!(report.journal_mode, Some(JournalMode::Wal), "{report}");
        assert!(report.fallbacks.is_empty(), "{report}");
    });
}
