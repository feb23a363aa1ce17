//! Damage the doctor must not call healthy: a SQLite page overwritten with garbage (read with
//! `PRAGMA quick_check`, whose answer used to be thrown away), a DuckDB file cut short.

use store_doctor::{Outlook, Verdict};
use store_testkit::snapshot::assert_unchanged;

use crate::{PageKind, TestResult, corrupt_a_page, quick_check, sqlite_database_with_pages};

/// Promise: a SQLite file with a b-tree page of garbage (SQLite's own `quick_check` says it is not
/// ok) is reported corrupt, with `quick_check`'s first problems, whether `quick_check` names the
/// damage (an index page) or fails on it (a table page); its verdict is fails, and the doctor
/// changes nothing while finding out.
#[test]
fn a_sqlite_page_of_garbage_is_corrupt_not_healthy() -> TestResult {
    for kind in [PageKind::IndexLeaf, PageKind::TableLeaf] {
        let home = tempfile::tempdir()?;
        let path = home.path().join("state.db");
        sqlite_database_with_pages(&path)?;
        corrupt_a_page(&path, kind)?;
        let said = quick_check(&path);
        assert!(
            !matches!(said.as_deref(), Ok([ok]) if ok == "ok"),
            "the damage is real: {said:?}"
        );

        let checkup = assert_unchanged(home.path(), || store_doctor::examine(&path))?;
        let [database] = checkup.databases.as_slice() else {
            panic!("one database: {checkup}");
        };
        let Outlook::Corrupt { problems } = &database.outlook else {
            panic!("{kind:?}: expected corruption, got {:?}", database.outlook);
        };
        assert!(!problems.is_empty() && problems.len() <= 10, "{problems:?}");
        if kind == PageKind::IndexLeaf {
            assert!(problems[0].contains("btreeInitPage"), "{problems:?}");
        }
        assert_eq!(database.verdict, Verdict::Fails);
        assert_eq!(checkup.verdict().exit_code(), 3);
        let text = checkup.to_string();
        assert!(
            text.contains("find it corrupt (PRAGMA quick_check: "),
            "{text}"
        );
    }
    Ok(())
}

/// Promise: a DuckDB file cut short (an interrupted copy), with no snapshot to restore, is a
/// failing open, not a healthy one: DuckDB would open it and fail at the first read of a missing
/// block.
#[cfg(feature = "duckdb")]
#[test]
fn a_duckdb_file_cut_short_fails() -> TestResult {
    let home = tempfile::tempdir()?;
    let path = home.path().join("system.duckdb");
    {
        let connection = store_duckdb::duckdb::Connection::open(&path)?;
        connection.execute_batch(
            "CREATE TABLE notes AS SELECT i, md5(i::VARCHAR) AS text FROM range(300000) t(i);
             CHECKPOINT;",
        )?;
    }
    let length = std::fs::metadata(&path)?.len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)?
        .set_len(length / 2 - 100)?;

    let checkup = assert_unchanged(home.path(), || store_doctor::examine(&path))?;
    let database = &checkup.databases[0];
    assert!(
        matches!(database.outlook, Outlook::Fails { .. }),
        "{:?}",
        database.outlook
    );
    assert_eq!(checkup.verdict(), Verdict::Fails);
    Ok(())
}
