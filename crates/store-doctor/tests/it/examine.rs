//! The checkup of a healthy, a fallen-back and a recovered database, of bad paths and of a pending
//! recovery: what the doctor says, and that it changes nothing.

use std::time::SystemTime;

use store_core::pending::{self, InterruptedRecovery, PendingRecovery};
use store_core::{DataLoss, FailureClass, FileContent, JournalMode, RecoveryStep};
use store_doctor::{self as doctor, ExamineError, Outlook, Verdict, WalProbe};
use store_sqlite::SqliteOptions;
use store_testkit::isolated;
use store_testkit::snapshot::assert_unchanged;

use crate::{TestResult, migrations};

/// Promise: a healthy SQLite database is said to open in WAL mode at its schema version, its
/// verdict is healthy, and examining it changes no file in its directory.
#[test]
fn a_healthy_sqlite_database_opens_in_wal_mode_and_the_doctor_changes_nothing() -> TestResult {
    let home = tempfile::tempdir()?;
    let path = home.path().join("state.db");
    let (connection, _) = SqliteOptions::new(&path).migrations(migrations()).open()?;
    connection.execute("INSERT INTO notes VALUES ('kept')", [])?;
    drop(connection);

    let checkup = assert_unchanged(home.path(), || doctor::examine(&path))?;
    assert_eq!(checkup.wal, WalProbe::Works);
    let [database] = checkup.databases.as_slice() else {
        panic!("one database: {checkup}");
    };
    assert_eq!(database.content, FileContent::Sqlite { wal: true });
    assert!(database.moved_aside.is_empty());
    assert_eq!(
        database.outlook,
        Outlook::Opens {
            journal_mode: Some(JournalMode::Wal),
            falls_back: false,
            schema_version: 2,
        }
    );
    assert_eq!(database.verdict, Verdict::Healthy);
    assert_eq!(checkup.verdict(), Verdict::Healthy);
    let text = checkup.to_string();
    assert!(text.contains("SQLite WAL: works here"), "{text}");
    assert!(text.contains("in wal mode; schema version 2"), "{text}");
    Ok(())
}

/// Promise: a database the application still has open is read without touching its live `-wal`
/// and `-shm`, and the doctor says that what it read may be older.
#[test]
fn a_database_in_use_is_read_without_disturbing_its_wal() -> TestResult {
    let home = tempfile::tempdir()?;
    let path = home.path().join("state.db");
    let (connection, _) = SqliteOptions::new(&path).migrations(migrations()).open()?;
    connection.execute("INSERT INTO notes VALUES ('in the wal')", [])?;
    let checkup = assert_unchanged(home.path(), || doctor::examine(&path))?;
    let database = &checkup.databases[0];
    let sidecar_names: Vec<String> = database
        .sidecars
        .iter()
        .map(|file| {
            file.path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(sidecar_names, ["state.db-wal", "state.db-shm"]);
    assert!(database.sidecars[0].bytes > 0);
    assert!(
        checkup.to_string().contains("not yet checkpointed"),
        "{checkup}"
    );
    drop(connection);
    Ok(())
}

/// Promise: "my app on NFS": for a database store created under the no-shared-memory fault (it
/// fell back to a rollback journal), the doctor, under the same fault, says why, that the next
/// open falls back too, and gives the verdict falls-back.
#[test]
fn a_fallen_back_sqlite_database_is_explained() {
    isolated!(a_fallen_back_sqlite_database_is_explained, {
        use store_testkit::faults::sqlite::SqliteFault;

        let home = tempfile::tempdir().unwrap();
        let path = home.path().join("state.db");
        let _nfs = SqliteFault::NoSharedMemory.install().unwrap();
        let (connection, report) = SqliteOptions::new(&path).open().unwrap();
        assert!(report.fell_back(), "{report}");
        drop(connection);

        let checkup = assert_unchanged(home.path(), || doctor::examine(&path)).unwrap();
        match &checkup.wal {
            WalProbe::FallsBack { class, to, .. } => {
                assert_eq!(*class, FailureClass::WalUnsupported);
                assert_eq!(*to, JournalMode::Delete);
            }
            other => panic!("expected the probe to fall back, got {other:?}"),
        }
        let database = &checkup.databases[0];
        assert_eq!(database.content, FileContent::Sqlite { wal: false });
        assert_eq!(
            database.outlook,
            Outlook::Opens {
                journal_mode: Some(JournalMode::Delete),
                falls_back: true,
                schema_version: 0,
            }
        );
        assert_eq!(checkup.verdict(), Verdict::FallsBack);
        let text = checkup.to_string();
        assert!(text.contains("does not work here"), "{text}");
        assert!(text.contains("rollback-journal format"), "{text}");
        assert!(
            text.contains("(a fallback: WAL does not work here)"),
            "{text}"
        );
    });
}

/// Promise: for a DuckDB database whose WAL cannot be replayed, the doctor says an open would
/// recover (verdict will-recover) and recovers nothing itself; after store's open it lists what
/// was moved aside and the database is healthy.
#[cfg(feature = "duckdb")]
#[test]
fn a_damaged_then_recovered_duckdb_database_is_explained() -> TestResult {
    use store_testkit::faults::duckdb::{append_garbage_to_wal, write_uncheckpointed_rows};

    let home = tempfile::tempdir()?;
    let path = home.path().join("system.duckdb");
    let (connection, _) = store_duckdb::DuckDbOptions::new(&path)
        .migrations(migrations())
        .open()?;
    drop(connection);
    write_uncheckpointed_rows(&path, 10, 5)?;
    append_garbage_to_wal(&path)?;

    let before = assert_unchanged(home.path(), || doctor::examine(home.path()))?;
    let [damaged] = before.databases.as_slice() else {
        panic!("one database, its snapshot not counted as another: {before}");
    };
    let snapshot = damaged
        .snapshot
        .as_ref()
        .expect("the pre-migration snapshot");
    assert_eq!(snapshot.schema_version.as_ref().ok(), Some(&0));
    assert!(
        damaged
            .sidecars
            .iter()
            .any(|file| file.path.ends_with("system.duckdb.wal"))
    );
    match &damaged.outlook {
        Outlook::Recovers { class, steps, .. } => {
            assert_eq!(*class, FailureClass::WalReplay);
            assert_eq!(steps.first(), Some(&RecoveryStep::SalvageWal));
        }
        other => panic!("expected a recovery outlook, got {other:?}"),
    }
    assert_eq!(before.verdict(), Verdict::WillRecover);

    let (connection, report) = store_duckdb::DuckDbOptions::new(&path)
        .migrations(migrations())
        .open()?;
    assert!(report.recovered(), "{report}");
    drop(connection);

    let after = assert_unchanged(home.path(), || doctor::examine(home.path()))?;
    let [recovered] = after.databases.as_slice() else {
        panic!("one database, moved-aside files not counted as others: {after}");
    };
    assert!(!recovered.moved_aside.is_empty(), "{after}");
    for moved in &recovered.moved_aside {
        assert_eq!(moved.reason, "salvaged-wal");
        assert!(moved.file.bytes > 0);
        assert!(moved.file.age().is_some());
    }
    assert_eq!(
        recovered.outlook,
        Outlook::Opens {
            journal_mode: None,
            falls_back: false,
            schema_version: 2,
        }
    );
    assert_eq!(after.verdict(), Verdict::Healthy);
    let text = after.to_string();
    assert!(text.contains("moved aside (salvaged-wal, at "), "{text}");
    assert!(text.contains("modified "), "{text}");
    Ok(())
}

/// Promise: a path whose directory is missing is a typed error; a text file, an empty file, a
/// missing file and an empty directory get plain answers (not a database: fails; nothing yet: no
/// database; an empty directory: the WAL probe's verdict), and none of them is changed.
#[test]
fn bad_paths_are_typed_errors_or_plain_answers() -> TestResult {
    let home = tempfile::tempdir()?;
    let missing = home.path().join("no such directory").join("state.db");
    assert!(matches!(
        doctor::examine(&missing),
        Err(ExamineError::Missing { path }) if path == missing
    ));

    let text_file = home.path().join("notes.txt");
    std::fs::write(
        &text_file,
        "not a database, but long enough to have a header",
    )?;
    let empty = home.path().join("empty.db");
    std::fs::write(&empty, "")?;
    for (path, content) in [
        (&text_file, FileContent::Unrecognized),
        (&empty, FileContent::Empty),
    ] {
        let checkup = assert_unchanged(home.path(), || doctor::examine(path))?;
        assert_eq!(checkup.databases[0].content, content);
        assert_eq!(checkup.databases[0].outlook, Outlook::NotADatabase);
        assert_eq!(checkup.verdict(), Verdict::Fails);
    }

    let new_file = home.path().join("new.db");
    let checkup = assert_unchanged(home.path(), || doctor::examine(&new_file))?;
    assert_eq!(
        checkup.databases[0].outlook,
        Outlook::Creates {
            journal_modes: vec![JournalMode::Wal, JournalMode::Delete]
        }
    );
    assert_eq!(checkup.verdict(), Verdict::NoDatabase);
    // A directory with no database in it is examined, not refused.
    let checkup = assert_unchanged(home.path(), || doctor::examine(home.path()))?;
    assert!(checkup.databases.is_empty());
    assert_eq!(checkup.verdict(), Verdict::Healthy);
    assert!(
        checkup
            .to_string()
            .contains("no SQLite or DuckDB database here")
    );
    Ok(())
}

/// Promise: on a read-only mount (even root cannot write there) the probe is skipped, not failed,
/// and the database is still read and healthy.
#[test]
fn a_read_only_location_is_examined_without_a_probe() {
    isolated!(a_read_only_location_is_examined_without_a_probe, {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join("state.db");
        drop(SqliteOptions::new(&path).open().unwrap());
        store_testkit::faults::mounts::remount_read_only(home.path()).unwrap();
        let checkup = assert_unchanged(home.path(), || doctor::examine(&path)).unwrap();
        match &checkup.wal {
            WalProbe::NotProbed { reason } => assert!(reason.contains("ReadOnlyFilesystem")),
            other => panic!("expected no probe, got {other:?}"),
        }
        assert_eq!(
            checkup.databases[0].outlook,
            Outlook::Opens {
                journal_mode: None,
                falls_back: false,
                schema_version: 0,
            }
        );
    });
}

/// Promise: for a DuckDB database the application holds open read-write in this same process,
/// the doctor says so and starts no second instance beside it, and the application's connection
/// keeps working.
#[cfg(feature = "duckdb")]
#[test]
fn a_duckdb_database_open_in_this_process_is_not_opened_twice() -> TestResult {
    let home = tempfile::tempdir()?;
    let path = home.path().join("system.duckdb");
    let (connection, _) = store_duckdb::DuckDbOptions::new(&path)
        .migrations(migrations())
        .open()?;
    let checkup = doctor::examine(home.path())?;
    let [open] = checkup.databases.as_slice() else {
        panic!("one database: {checkup}");
    };
    assert!(
        matches!(open.outlook, Outlook::OpenInThisProcess),
        "{:?}",
        open.outlook
    );
    let one: i64 = connection.query_row("SELECT 1", [], |row| row.get(0))?;
    assert_eq!(one, 1);
    Ok(())
}

/// Promise: a record left by an interrupted recovery gets its line, makes the verdict
/// will-recover even though the database itself is missing nothing, and stays where it is.
#[test]
fn a_pending_recovery_record_gets_its_line_and_stays() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("state.db");
    drop(SqliteOptions::new(&path).open()?);
    let record = PendingRecovery {
        step: RecoveryStep::RestoreSnapshot,
        class: FailureClass::WalReplay,
        cause: "Failure while replaying WAL file".into(),
        lost: DataLoss::UncheckpointedCommits,
        reason: "broken".into(),
        started_at: SystemTime::now(),
    };
    pending::record(&path, &record)?;
    let checkup = doctor::examine(&path)?;
    assert_eq!(
        checkup.databases[0].recovery_pending,
        Some(InterruptedRecovery::Recorded(record))
    );
    assert_eq!(checkup.verdict(), Verdict::WillRecover);
    let text = checkup.to_string();
    assert!(
        text.contains("recovery pending: a recovery by restore-snapshot (lost uncheckpointed commits) was interrupted"),
        "{text}"
    );
    assert!(
        pending::record_path(&path).exists(),
        "the doctor changes nothing"
    );
    Ok(())
}
