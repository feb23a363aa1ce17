//! Bad input gets a typed error naming the path, and every existing file stays byte-for-byte.

use std::path::Path;

use store_core::{Engine, FailureClass, PathError};
use store_sqlite::{OpenError, SqliteOptions};
use store_testkit::{assert_unchanged, isolated};

use crate::TestResult;

/// Opens `path`, expects an error, and checks that nothing in `directory` changed.
fn open_fails_without_change(
    directory: &Path,
    path: &Path,
) -> Result<OpenError, Box<dyn std::error::Error>> {
    let error = assert_unchanged(directory, || SqliteOptions::new(path).open().unwrap_err());
    assert_eq!(error.path(), path);
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
    Ok(error)
}

#[test]
fn a_directory_as_path() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("data");
    std::fs::create_dir(&path)?;
    let error = open_fails_without_change(directory.path(), &path)?;
    assert!(
        matches!(error, OpenError::Path(PathError::IsADirectory { .. })),
        "{error:?}"
    );
    assert_eq!(error.class(), FailureClass::NotAFile);
    Ok(())
}

#[test]
fn a_missing_parent_directory() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("missing/state.db");
    let error = open_fails_without_change(directory.path(), &path)?;
    assert!(
        matches!(error, OpenError::Path(PathError::MissingDirectory { .. })),
        "{error:?}"
    );
    assert_eq!(error.class(), FailureClass::NotFound);
    assert!(!directory.path().join("missing").exists());
    Ok(())
}

/// Promise: a symbolic link in place of the WAL (to a WAL elsewhere, or dangling) is refused
/// before SQLite follows or trips on it, with its own class and a message naming the link and
/// what to do; nothing changes, the link included.
#[test]
fn a_symlink_in_place_of_the_wal() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("state.db");
    drop(SqliteOptions::new(&path).open()?);
    let wal = directory.path().join("state.db-wal");
    std::os::unix::fs::symlink(directory.path().join("elsewhere-wal"), &wal)?;
    let error = open_fails_without_change(directory.path(), &path)?;
    match &error {
        OpenError::Path(PathError::SidecarNotAFile { sidecar, .. }) => assert_eq!(sidecar, &wal),
        other => panic!("expected SidecarNotAFile, got {other:?}"),
    }
    assert_eq!(error.class(), FailureClass::NotAFile);
    assert!(error.to_string().contains("state.db-wal"), "{error}");
    Ok(())
}

#[test]
fn a_text_file() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("notes.db");
    std::fs::write(&path, "these are my notes, not a database\n")?;
    let error = open_fails_without_change(directory.path(), &path)?;
    assert!(
        matches!(error, OpenError::Path(PathError::NotADatabase { .. })),
        "{error:?}"
    );
    assert_eq!(error.class(), FailureClass::NotADatabase);
    Ok(())
}

#[test]
fn a_duckdb_file() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("system.duckdb");
    {
        let connection = duckdb::Connection::open(&path)?;
        connection.execute_batch("CREATE TABLE t (x INTEGER); CHECKPOINT;")?;
    }
    let error = open_fails_without_change(directory.path(), &path)?;
    assert!(
        matches!(
            error,
            OpenError::Path(PathError::OtherEngine {
                found: Engine::Duckdb,
                ..
            })
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("duckdb database"), "{error}");
    Ok(())
}

#[test]
fn a_zero_byte_file() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("empty.db");
    std::fs::write(&path, b"")?;
    let error = open_fails_without_change(directory.path(), &path)?;
    assert!(
        matches!(error, OpenError::Path(PathError::EmptyFile { .. })),
        "{error:?}"
    );
    Ok(())
}

#[test]
fn a_truncated_sqlite_header() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("cut.db");
    std::fs::write(&path, b"SQLite format")?;
    let error = open_fails_without_change(directory.path(), &path)?;
    assert!(
        matches!(error, OpenError::Path(PathError::NotADatabase { .. })),
        "{error:?}"
    );
    Ok(())
}

#[test]
fn a_missing_database_opened_read_only() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("absent.db");
    let error = SqliteOptions::new(&path)
        .read_only(true)
        .open()
        .unwrap_err();
    assert!(
        matches!(error, OpenError::Path(PathError::NotFound { .. })),
        "{error:?}"
    );
    assert_eq!(error.class(), FailureClass::NotFound);
    assert!(!path.exists());
    Ok(())
}

#[test]
fn a_read_only_location() {
    isolated!(a_read_only_location, {
        let directory = tempfile::tempdir().unwrap();
        let existing = directory.path().join("existing.db");
        {
            let connection = rusqlite::Connection::open(&existing).unwrap();
            crate::write_plain_rows(&connection, 2).unwrap();
        }
        store_testkit::faults::mounts::remount_read_only(directory.path()).unwrap();

        // A new database cannot be created there.
        let error =
            open_fails_without_change(directory.path(), &directory.path().join("new.db")).unwrap();
        assert!(matches!(error, OpenError::Create { .. }), "{error:?}");
        assert_eq!(error.class(), FailureClass::ReadOnly);

        // An existing one cannot be put in WAL mode there; it is left as it was.
        let error = open_fails_without_change(directory.path(), &existing).unwrap();
        assert_eq!(error.class(), FailureClass::ReadOnly, "{error}");

        // It can still be read with a read-only open.
        let (connection, report) = SqliteOptions::new(&existing)
            .read_only(true)
            .open()
            .unwrap();
        assert_eq!(report.journal_mode, Some(store_core::JournalMode::Delete));
        assert_eq!(crate::count(&connection, "t").unwrap(), 2);
    });
}
