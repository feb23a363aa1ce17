//! Bad input gets a typed error naming the path, and every existing file stays byte-for-byte.

use std::path::Path;

use store_core::{Engine, FailureClass, PathError};
use store_duckdb::{DuckDbOptions, OpenError};
use store_testkit::{assert_unchanged, isolated};

use crate::TestResult;

fn open_fails_without_change(
    directory: &Path,
    path: &Path,
) -> Result<OpenError, Box<dyn std::error::Error>> {
    let error = assert_unchanged(directory, || DuckDbOptions::new(path).open().unwrap_err());
    assert_eq!(error.path(), path);
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
    Ok(error)
}

#[test]
fn a_directory_a_missing_parent_a_text_file_and_an_empty_file() -> TestResult {
    let directory = tempfile::tempdir()?;
    let folder = directory.path().join("data");
    std::fs::create_dir(&folder)?;
    let error = open_fails_without_change(directory.path(), &folder)?;
    assert!(
        matches!(error, OpenError::Path(PathError::IsADirectory { .. })),
        "{error:?}"
    );
    assert_eq!(error.class(), FailureClass::NotAFile);

    let orphan = directory.path().join("missing/system.duckdb");
    let error = open_fails_without_change(directory.path(), &orphan)?;
    assert!(
        matches!(error, OpenError::Path(PathError::MissingDirectory { .. })),
        "{error:?}"
    );
    assert_eq!(error.class(), FailureClass::NotFound);

    let text = directory.path().join("notes.duckdb");
    std::fs::write(&text, "not a database\n")?;
    let error = open_fails_without_change(directory.path(), &text)?;
    assert!(
        matches!(error, OpenError::Path(PathError::NotADatabase { .. })),
        "{error:?}"
    );

    let empty = directory.path().join("empty.duckdb");
    std::fs::write(&empty, b"")?;
    let error = open_fails_without_change(directory.path(), &empty)?;
    assert!(
        matches!(error, OpenError::Path(PathError::EmptyFile { .. })),
        "{error:?}"
    );
    assert_eq!(error.class(), FailureClass::NotADatabase);
    Ok(())
}

/// Promise: a symbolic link in place of the WAL is refused before DuckDB follows it (it would
/// replay, or recreate, a WAL somewhere else), with its own class and a message naming the link;
/// nothing changes, the link and what it points to included.
#[test]
fn a_symlink_in_place_of_the_wal() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("system.duckdb");
    drop(
        DuckDbOptions::new(&path)
            .migrations(crate::schema())
            .open()?,
    );
    store_testkit::faults::duckdb::write_uncheckpointed_rows(&path, 1, 2)?;
    let wal = directory.path().join("system.duckdb.wal");
    let elsewhere = directory.path().join("elsewhere.wal");
    std::fs::rename(&wal, &elsewhere)?;
    std::os::unix::fs::symlink(&elsewhere, &wal)?;
    let error = open_fails_without_change(directory.path(), &path)?;
    match &error {
        OpenError::Path(PathError::SidecarNotAFile { sidecar, .. }) => assert_eq!(sidecar, &wal),
        other => panic!("expected SidecarNotAFile, got {other:?}"),
    }
    assert_eq!(error.class(), FailureClass::NotAFile);
    assert!(error.to_string().contains("system.duckdb.wal"), "{error}");
    Ok(())
}

#[test]
fn a_sqlite_file() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("state.db");
    rusqlite::Connection::open(&path)?.execute_batch("CREATE TABLE t (x INTEGER)")?;
    let error = open_fails_without_change(directory.path(), &path)?;
    assert!(
        matches!(
            error,
            OpenError::Path(PathError::OtherEngine {
                found: Engine::Sqlite,
                ..
            })
        ),
        "{error:?}"
    );
    Ok(())
}

#[test]
fn a_garbage_database_with_a_valid_magic() -> TestResult {
    // DuckDB's magic in the right place, and garbage everywhere else.
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("garbage.duckdb");
    let mut bytes = vec![0xA5u8; 64 * 1024];
    bytes[8..12].copy_from_slice(b"DUCK");
    std::fs::write(&path, &bytes)?;
    let error = open_fails_without_change(directory.path(), &path)?;
    assert!(matches!(error, OpenError::Engine { .. }), "{error:?}");
    Ok(())
}

#[test]
fn a_missing_database_opened_read_only() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("absent.duckdb");
    let error = DuckDbOptions::new(&path)
        .read_only(true)
        .open()
        .unwrap_err();
    assert!(
        matches!(error, OpenError::Path(PathError::NotFound { .. })),
        "{error:?}"
    );
    assert!(!path.exists());
    Ok(())
}

#[test]
fn a_read_only_location() {
    isolated!(a_read_only_location, {
        let directory = tempfile::tempdir().unwrap();
        let existing = directory.path().join("existing.duckdb");
        drop(
            DuckDbOptions::new(&existing)
                .migrations(crate::schema())
                .open()
                .unwrap(),
        );
        store_testkit::faults::mounts::remount_read_only(directory.path()).unwrap();

        let error =
            open_fails_without_change(directory.path(), &directory.path().join("new.duckdb"))
                .unwrap();
        assert_eq!(
            error.class(),
            FailureClass::ReadOnly,
            "{}",
            error.cause_chain()
        );

        let error = open_fails_without_change(directory.path(), &existing).unwrap();
        assert_eq!(
            error.class(),
            FailureClass::ReadOnly,
            "{}",
            error.cause_chain()
        );

        let (connection, report) = DuckDbOptions::new(&existing)
            .read_only(true)
            .open()
            .unwrap();
        assert_eq!(report.schema_version, 3);
        let tables: i64 = connection
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(tables, 0);
    });
}

/// Promise: a database file cut short (an interrupted copy) is caught at open, not at its first
/// read, wherever the cut falls (mid-block, or exactly at a block boundary, one block short):
/// under the strict policy it is refused with a typed `CutShort` (class `Corrupt`) naming the
/// blocks in use and the blocks the file holds, and nothing changes; under the default policy it
/// goes down the recovery ladder, where only the restore applies: the pre-migration snapshot
/// comes back, the cut file is kept aside byte for byte, and the loss is said. Without the check
/// it opened, and its first query that reached a missing block failed ("Could not read enough
/// bytes from file").
#[test]
fn a_database_file_cut_short_is_caught_at_open() -> TestResult {
    const HEADERS_BYTES: u64 = 3 * 4096;
    const BLOCK_BYTES: u64 = 256 * 1024;
    let mid_block = |length: u64| length / 2 + 1;
    let one_block_short =
        |length: u64| HEADERS_BYTES + ((length - HEADERS_BYTES) / BLOCK_BYTES - 1) * BLOCK_BYTES;
    for cut in [mid_block, one_block_short] {
        cut_short_is_caught_at_open(cut)?;
    }
    Ok(())
}

fn cut_short_is_caught_at_open(cut: impl Fn(u64) -> u64) -> TestResult {
    use store_core::{DataLoss, RecoveryLadder, RecoveryStep};

    let directory = tempfile::tempdir()?;
    let path = directory.path().join("cut.duckdb");
    {
        let (connection, _) = DuckDbOptions::new(&path)
            .migrations(crate::schema())
            .open()?;
        for id in 1..=100 {
            connection.execute("INSERT INTO items (id, payload) VALUES (?, 'x')", [id])?;
        }
    }
    let length = std::fs::metadata(&path)?.len();
    let keep = cut(length);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)?
        .set_len(keep)?;

    let error = assert_unchanged(directory.path(), || {
        DuckDbOptions::new(&path)
            .migrations(crate::schema())
            .recovery_policy(RecoveryLadder::strict())
            .open()
            .unwrap_err()
    });
    assert_eq!(error.class(), FailureClass::Corrupt, "{error:?}");
    match error {
        OpenError::CutShort {
            file_bytes,
            used_blocks,
            blocks_in_file,
            ..
        } => {
            assert_eq!(file_bytes, keep);
            assert!(
                used_blocks > blocks_in_file,
                "{used_blocks} <= {blocks_in_file}"
            );
        }
        other => panic!("expected CutShort, got {other:?}"),
    }

    let (connection, report) = DuckDbOptions::new(&path)
        .migrations(crate::schema())
        .open()?;
    let recovery = report.recovery.as_ref().expect("recovered");
    assert_eq!(recovery.class, FailureClass::Corrupt, "{report}");
    assert_eq!(recovery.step, RecoveryStep::RestoreSnapshot, "{report}");
    assert!(
        matches!(recovery.lost, DataLoss::EverythingSinceSnapshot { .. }),
        "{report}"
    );
    let cut_aside = recovery
        .moved_aside
        .iter()
        .find(|moved| moved.from == path)
        .expect("the cut file kept aside");
    assert_eq!(std::fs::metadata(&cut_aside.to)?.len(), keep);
    // The snapshot was taken before the schema existed: the schema is back, the rows written
    // after the snapshot are what the report says was lost.
    let rows: i64 = connection.query_row("SELECT count(*) FROM items", [], |row| row.get(0))?;
    assert_eq!(rows, 0);
    Ok(())
}
