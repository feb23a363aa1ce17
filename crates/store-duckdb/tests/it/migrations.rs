//! Migrations: checkpoint and snapshot before, checkpoint after; nothing extra when nothing is
//! pending; and a process killed mid-migration.

use store_core::{FailureClass, Migration, Migrations};
use store_duckdb::{DuckDbOptions, MigrateError, OpenError, SNAPSHOT_SUFFIX, schema_version};
use store_testkit::child;
use store_testkit::crash::{KillPoint, kill_at, was_killed};
use store_testkit::faults::duckdb::wal_path;

use crate::{TestResult, schema};

#[test]
fn pending_migrations_are_snapshotted_applied_and_checkpointed() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("system.duckdb");
    let (connection, report) = DuckDbOptions::new(&path).migrations(schema()).open()?;
    assert!(report.created);
    let applied: Vec<u32> = report
        .migrations_applied
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(applied, [1, 2, 3]);
    assert_eq!(report.schema_version, 3);
    let snapshot = store_core::files::sibling(&path, SNAPSHOT_SUFFIX);
    assert_eq!(
        report.snapshot.as_ref().map(|taken| taken.path.as_path()),
        Some(snapshot.as_path())
    );
    // This directory is on ext4 (or tmpfs): no clone, the bytes were copied, and the report
    // says so.
    assert_eq!(
        report.snapshot.as_ref().map(|taken| taken.copy),
        Some(store_core::SnapshotCopy::Copied),
        "{report}"
    );
    // The snapshot was taken before migrating: it is at version 0.
    let snapshot_connection = duckdb::Connection::open(&snapshot)?;
    assert_eq!(schema_version(&snapshot_connection)?, 0);
    drop(snapshot_connection);
    // Checkpointed right after: no ALTER waits in the WAL.
    let wal_bytes = std::fs::metadata(wal_path(&path))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(
        wal_bytes < 1024,
        "WAL holds {wal_bytes} bytes after the migrations' checkpoint"
    );
    drop(connection);
    Ok(())
}

#[test]
fn a_happy_open_logs_nothing_at_warn_inside_one_open_span() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("quiet.duckdb");
    let (result, events) =
        store_testkit::logs::capture(|| DuckDbOptions::new(&path).migrations(schema()).open());
    drop(result?);
    assert!(
        store_testkit::logs::at_level(&events, tracing::Level::WARN).is_empty(),
        "{events:?}"
    );
    let applied: Vec<_> = events
        .iter()
        .filter(|e| e.text.starts_with("migration applied"))
        .collect();
    assert_eq!(applied.len(), 3);
    for event in applied {
        assert_eq!(event.spans.len(), 1, "{event:?}");
        let span = &event.spans[0];
        assert!(
            span.starts_with("open{")
                && span.contains("engine=duckdb")
                && span.contains("label=quiet.duckdb"),
            "{span}"
        );
    }
    Ok(())
}

#[test]
fn nothing_pending_means_no_snapshot_and_no_checkpoint() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("system.duckdb");
    drop(DuckDbOptions::new(&path).migrations(schema()).open()?);
    let snapshot = store_core::files::sibling(&path, SNAPSHOT_SUFFIX);
    std::fs::remove_file(&snapshot)?;
    let (_, report) = DuckDbOptions::new(&path).migrations(schema()).open()?;
    assert!(report.migrations_applied.is_empty());
    assert!(report.snapshot.is_none());
    assert!(!snapshot.exists());
    Ok(())
}

/// Promise: the snapshot holds every commit, those still in a log included: a checkpoint runs
/// before it where a log holds bytes (here a shared instance's commits), and only there (a
/// database closed cleanly has no log to move into the file). A migration through a shared
/// instance, whose other connections may write, reads the version again inside its transaction
/// and reads back the version reached.
#[test]
fn the_snapshot_holds_the_logged_commits_and_a_checkpoint_runs_only_for_them() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("system.duckdb");
    let up_to = |version: usize| Migrations::new(schema().all()[..version].to_vec());
    drop(DuckDbOptions::new(&path).migrations(up_to(1)?).open()?);
    assert!(!wal_path(&path).exists(), "closed cleanly, checkpointed");
    let checkpoints_before = |events: &[store_testkit::logs::CapturedEvent]| {
        events
            .iter()
            .filter(|event| event.text.contains("checkpoint before migrating"))
            .count()
    };

    let two = up_to(2)?;
    let (opened, events) =
        store_testkit::logs::capture(|| DuckDbOptions::new(&path).migrations(two).open());
    let (connection, report) = opened?;
    assert_eq!(
        (report.schema_version, report.snapshot.is_some()),
        (2, true),
        "{report}"
    );
    assert_eq!(checkpoints_before(&events), 0, "{events:?}");

    connection.execute("INSERT INTO runs (id, name) VALUES (1, 'logged')", [])?;
    assert!(
        std::fs::metadata(wal_path(&path))?.len() > 0,
        "the row is in the WAL"
    );
    let (opened, events) =
        store_testkit::logs::capture(|| DuckDbOptions::new(&path).migrations(schema()).open());
    let (shared, report) = opened?;
    assert!(report.reused_decision, "{report}");
    assert_eq!(report.schema_version, 3, "{report}");
    assert_eq!(report.migrations_applied.len(), 1, "{report}");
    assert_eq!(checkpoints_before(&events), 1, "{events:?}");
    drop((connection, shared));

    let snapshot = duckdb::Connection::open(store_core::files::sibling(&path, SNAPSHOT_SUFFIX))?;
    assert_eq!(schema_version(&snapshot)?, 2);
    let rows: i64 = snapshot.query_row("SELECT count(*) FROM runs", [], |row| row.get(0))?;
    assert_eq!(
        rows, 1,
        "the snapshot holds the row that was only in the WAL"
    );
    Ok(())
}

#[test]
fn snapshots_keep_the_database_permissions() -> TestResult {
    use std::os::unix::fs::PermissionsExt;
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("system.duckdb");
    let first = Migrations::new(schema().all()[..1].to_vec())?;
    drop(DuckDbOptions::new(&path).migrations(first).open()?);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    drop(DuckDbOptions::new(&path).migrations(schema()).open()?);
    let snapshot = store_core::files::sibling(&path, SNAPSHOT_SUFFIX);
    assert_eq!(
        std::fs::metadata(&snapshot)?.permissions().mode() & 0o777,
        0o600
    );
    Ok(())
}

#[test]
fn a_failing_migration_is_rolled_back() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("system.duckdb");
    let broken = Migrations::new(vec![
        Migration::new(1, "runs", "CREATE TABLE runs (id INTEGER)"),
        Migration::new(2, "typo", "ALTER TABLE rnus ADD COLUMN status VARCHAR"),
    ])?;
    let error = DuckDbOptions::new(&path)
        .migrations(broken)
        .open()
        .unwrap_err();
    assert!(
        matches!(
            error,
            OpenError::Migrate {
                source: MigrateError::Statement { version: 2, .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.class(), FailureClass::Other);
    let connection = duckdb::Connection::open(&path)?;
    assert_eq!(schema_version(&connection)?, 1);
    Ok(())
}

const KILL_TEST: &str = concat!(
    module_path!(),
    "::a_process_killed_mid_migration_reopens_at_a_consistent_version"
);

#[test]
fn a_process_killed_mid_migration_reopens_at_a_consistent_version() -> TestResult {
    if child::role().as_deref() == Some("migrate-and-die") {
        let path = std::env::var_os("KILL_DATABASE").expect("database path");
        kill_at(KillPoint::after_migration(3), || {
            DuckDbOptions::new(path)
                .migrations(schema())
                .open()
                .map(drop)
        })?;
        unreachable!("killed after migration 3 committed");
    }
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("system.duckdb");
    let older = Migrations::new(schema().all()[..2].to_vec())?;
    drop(DuckDbOptions::new(&path).migrations(older).open()?);
    let output = child::spawn_role(
        KILL_TEST,
        "migrate-and-die",
        &[("KILL_DATABASE", path.clone().into())],
    )?
    .wait_with_output()?;
    assert!(was_killed(&output.status), "{output:?}");
    // Killed before the checkpoint that follows the migrations: the ALTER sits in the WAL.
    assert!(
        wal_path(&path).exists(),
        "the migration's WAL outlives the process"
    );

    let (connection, report) = DuckDbOptions::new(&path).migrations(schema()).open()?;
    assert_eq!(report.schema_version, 3, "{report}");
    let status: String = connection.query_row("SELECT column_name FROM duckdb_columns() WHERE table_name = 'runs' AND column_name = 'status'", [], |r| r.get(0))?;
    assert_eq!(status, "status");
    Ok(())
}

/// Promise: where the filesystem clones files (XFS with reflink, btrfs: loop-mounted here, in a
/// mount namespace of the test's own), the pre-migration snapshot is a clone, O(1) whatever the
/// size, and the report says so; the snapshot is a whole database at the version before.
#[test]
fn the_snapshot_is_a_clone_where_the_filesystem_clones() {
    use store_testkit::faults::mounts::{LoopFilesystem, mount_loop_filesystem};
    store_testkit::isolated!(the_snapshot_is_a_clone_where_the_filesystem_clones, {
        for filesystem in [LoopFilesystem::Xfs, LoopFilesystem::Btrfs] {
            let directory = tempfile::tempdir().unwrap();
            mount_loop_filesystem(directory.path(), filesystem, 512 * 1024 * 1024)
                .expect("mkfs and mount rights on this machine");
            let path = directory.path().join("system.duckdb");
            drop(
                DuckDbOptions::new(&path)
                    .migrations(Migrations::new(schema().all()[..2].to_vec()).unwrap())
                    .open()
                    .unwrap(),
            );
            let (connection, report) = DuckDbOptions::new(&path)
                .migrations(schema())
                .open()
                .unwrap();
            drop(connection);
            let snapshot = report
                .snapshot
                .as_ref()
                .expect("a pending migration: a snapshot");
            assert_eq!(
                snapshot.copy,
                store_core::SnapshotCopy::Cloned,
                "{filesystem:?}: {report}"
            );
            assert!(report.to_string().contains("cloned"), "{report}");
            let snapshot_connection = duckdb::Connection::open(&snapshot.path).unwrap();
            assert_eq!(schema_version(&snapshot_connection).unwrap(), 2);
        }
    });
}
