//! Migrations: in order, each once, inside `BEGIN IMMEDIATE`, even with processes racing.

use std::time::Duration;

use store_core::{FailureClass, Migration, Migrations, MigrationsError};
use store_sqlite::{MigrateError, OpenError, SqliteOptions, schema_version};
use store_testkit::faults::sqlite::SqliteFault;
use store_testkit::{child, isolated};

use crate::TestResult;

fn ladder() -> Migrations {
    Migrations::new(vec![
        Migration::new(
            1,
            "tasks",
            "CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT NOT NULL)",
        ),
        Migration::new(
            2,
            "failures",
            "ALTER TABLE tasks ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0",
        ),
        Migration::new(3, "owner", "ALTER TABLE tasks ADD COLUMN owner TEXT"),
        Migration::new(4, "index", "CREATE INDEX tasks_owner ON tasks (owner)"),
    ])
    .expect("valid migrations")
}

#[test]
fn applies_in_order_once_and_reports() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("kanban.db");
    let (connection, report) = SqliteOptions::new(&path).migrations(ladder()).open()?;
    let applied: Vec<u32> = report
        .migrations_applied
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(applied, [1, 2, 3, 4]);
    assert_eq!(report.schema_version, 4);
    let rows: i64 =
        connection.query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))?;
    assert_eq!(rows, 4);
    drop(connection);

    let (_, again) = SqliteOptions::new(&path).migrations(ladder()).open()?;
    assert!(again.migrations_applied.is_empty());
    assert_eq!(again.schema_version, 4);
    Ok(())
}

#[test]
fn a_failing_migration_leaves_the_last_committed_version() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("broken.db");
    let broken = Migrations::new(vec![
        Migration::new(1, "tasks", "CREATE TABLE tasks (id INTEGER PRIMARY KEY)"),
        Migration::new(2, "typo", "ALTER TABLE taks ADD COLUMN owner TEXT"),
    ])?;
    let error = SqliteOptions::new(&path)
        .migrations(broken)
        .open()
        .unwrap_err();
    let OpenError::Migrate {
        source: MigrateError::Statement { version, .. },
        ..
    } = &error
    else {
        panic!("expected a migration statement error, got {error:?}");
    };
    assert_eq!(*version, 2);
    assert!(
        error.cause_chain().contains("no such table: taks"),
        "{}",
        error.cause_chain()
    );
    let connection = rusqlite::Connection::open(&path)?;
    assert_eq!(schema_version(&connection)?, 1);
    Ok(())
}

#[test]
fn a_database_from_a_newer_release_is_refused() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("newer.db");
    SqliteOptions::new(&path).migrations(ladder()).open()?;
    let older = Migrations::new(ladder().all()[..2].to_vec())?;
    let error = SqliteOptions::new(&path)
        .migrations(older)
        .open()
        .unwrap_err();
    assert!(
        matches!(
            error,
            OpenError::Migrate {
                source: MigrateError::Mismatch {
                    source: MigrationsError::DatabaseNewer {
                        database_version: 4,
                        latest_version: 2
                    }
                },
                ..
            }
        ),
        "{error:?}"
    );
    Ok(())
}

#[test]
fn an_io_error_at_commit_rolls_the_migration_back() {
    isolated!(an_io_error_at_commit_rolls_the_migration_back, {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("io.db");
        let first = Migrations::new(ladder().all()[..1].to_vec()).unwrap();
        SqliteOptions::new(&path).migrations(first).open().unwrap();
        {
            // Already in WAL format: the open commits nothing before migration 2.
            let _fault = SqliteFault::CommitIoError { skip: 0, fail: 1 }
                .install()
                .unwrap();
            let error = SqliteOptions::new(&path)
                .migrations(ladder())
                .open()
                .unwrap_err();
            let OpenError::Migrate { source, .. } = &error else {
                panic!("{error:?}")
            };
            assert!(
                matches!(
                    source,
                    MigrateError::Statement { .. } | MigrateError::SchemaVersion { .. }
                ),
                "{source:?}"
            );
            assert!(
                error.cause_chain().contains("disk I/O error"),
                "{}",
                error.cause_chain()
            );
        }
        let connection = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(
            schema_version(&connection).unwrap(),
            1,
            "migration 2 rolled back"
        );
        drop(connection);
        let (_, report) = SqliteOptions::new(&path)
            .migrations(ladder())
            .open()
            .unwrap();
        assert_eq!(report.schema_version, 4);
    });
}

#[test]
fn disk_full_during_a_migration_is_typed_and_leaves_the_database_usable() {
    isolated!(
        disk_full_during_a_migration_is_typed_and_leaves_the_database_usable,
        {
            let directory = tempfile::tempdir().unwrap();
            store_testkit::faults::mounts::mount_small_tmpfs(directory.path(), 256 * 1024).unwrap();
            let path = directory.path().join("full.db");
            let migrations = Migrations::new(vec![
                Migration::new(1, "blobs", "CREATE TABLE blobs (data BLOB)"),
                Migration::new(2, "fill", "INSERT INTO blobs VALUES (zeroblob(1048576))"),
            ])
            .unwrap();
            let error = SqliteOptions::new(&path)
                .migrations(migrations)
                .open()
                .unwrap_err();
            assert_eq!(
                error.class(),
                FailureClass::DiskFull,
                "{}",
                error.cause_chain()
            );
            let (connection, report) = SqliteOptions::new(&path).open().unwrap();
            assert_eq!(report.schema_version, 1);
            let rows: i64 = connection
                .query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
                .unwrap();
            assert_eq!(rows, 0);
        }
    );
}

const RACERS: usize = 8;

#[test]
fn processes_racing_to_migrate_apply_each_migration_once() -> TestResult {
    const TEST: &str = concat!(
        module_path!(),
        "::processes_racing_to_migrate_apply_each_migration_once"
    );
    if child::role().as_deref() == Some("racer") {
        let path = std::env::var_os("RACE_DATABASE").expect("database path");
        let (_, report) = SqliteOptions::new(path)
            .migrations(ladder())
            .busy_timeout(Duration::from_secs(30))
            .open()?;
        assert_eq!(report.schema_version, 4);
        let applied: Vec<String> = report
            .migrations_applied
            .iter()
            .map(|m| m.version.to_string())
            .collect();
        println!("applied: [{}]", applied.join(","));
        return Ok(());
    }
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("race.db");
    let children: Vec<_> = (0..RACERS)
        .map(|_| child::spawn_role(TEST, "racer", &[("RACE_DATABASE", path.clone().into())]))
        .collect::<Result<_, _>>()?;
    let mut applied_by_anyone = Vec::new();
    for process in children {
        let output = process.wait_with_output()?;
        child::assert_child_succeeded(TEST, &output);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stdout.contains("duplicate column") && !stderr.contains("duplicate column"));
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("applied: [").map(|(_, rest)| rest))
            .expect("report line");
        applied_by_anyone.extend(
            line.trim_end_matches(']')
                .split(',')
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
        );
    }
    applied_by_anyone.sort();
    assert_eq!(
        applied_by_anyone,
        ["1", "2", "3", "4"],
        "each migration applied by exactly one process"
    );
    let connection = rusqlite::Connection::open(&path)?;
    let versions: Vec<u32> = connection
        .prepare("SELECT version FROM schema_version ORDER BY version")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    assert_eq!(versions, [1, 2, 3, 4]);
    Ok(())
}
