//! One instance per file per process: a second open shares the first.

use store_duckdb::{DuckDbOptions, is_open};

use crate::{TestResult, schema};

#[test]
fn a_second_open_in_the_process_shares_the_instance_and_sees_its_writes() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("system.duckdb");
    let (first, _) = DuckDbOptions::new(&path).migrations(schema()).open()?;
    assert!(is_open(&path));
    let (second, report) = DuckDbOptions::new(&path).migrations(schema()).open()?;
    assert!(report.reused_decision, "{report}");
    first.execute("INSERT INTO runs (id, name) VALUES (1, 'a')", [])?;
    let seen: i64 = second.query_row("SELECT count(*) FROM runs", [], |row| row.get(0))?;
    assert_eq!(seen, 1);
    // From another thread too.
    let third = second.try_clone()?;
    std::thread::spawn(move || third.execute("INSERT INTO runs (id, name) VALUES (2, 'b')", []))
        .join()
        .expect("thread")?;
    drop(first);
    assert!(is_open(&path), "still used by the second connection");
    let seen: i64 = second.query_row("SELECT count(*) FROM runs", [], |row| row.get(0))?;
    assert_eq!(seen, 2);
    drop(second);
    assert!(
        !is_open(&path),
        "the instance closes with its last connection"
    );
    // Closed means checkpointed and released: a plain connection sees every row.
    let plain = duckdb::Connection::open(&path)?;
    let rows: i64 = plain.query_row("SELECT count(*) FROM runs", [], |row| row.get(0))?;
    assert_eq!(rows, 2);
    Ok(())
}

/// Another thread watching `is_open` must never see the file as closed while the instance is
/// still checkpointing: it would open a second instance on a half-closed file.
#[test]
fn not_open_means_the_instance_has_finished_closing() -> TestResult {
    let directory = tempfile::tempdir()?;
    for round in 0..20 {
        let path = directory.path().join(format!("closing-{round}.duckdb"));
        let (connection, _) = DuckDbOptions::new(&path).migrations(schema()).open()?;
        connection.execute_batch(
            "INSERT INTO runs (id, name) SELECT range, 'row ' || range FROM range(20000)",
        )?;
        let wal = store_duckdb::store_core::files::sibling(&path, ".wal");
        assert!(wal.exists(), "the rows are still in the WAL before closing");
        let closer = std::thread::spawn(move || drop(connection));
        while is_open(&path) {
            std::hint::spin_loop();
        }
        assert!(
            !wal.exists(),
            "round {round}: the registry forgot the file before its checkpoint finished"
        );
        closer.join().expect("closing thread");
    }
    Ok(())
}
