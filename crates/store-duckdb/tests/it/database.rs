//! Issue 15: engine settings passed through to every open, one instance configuration per file
//! per process (a mismatch is a typed error), a database handle to connect from many threads, and
//! a filesystem kind set by the options.

use std::collections::BTreeSet;
use std::path::Path;

use store_duckdb::store_core::{FailureClass, Filesystem, FsKind, KindSource};
use store_duckdb::{DuckDbDatabase, DuckDbOptions, InstanceConfig, OpenError, is_open};
use store_testkit::child;
use store_testkit::snapshot::assert_unchanged;

use crate::{TestResult, schema};

/// A table for the handle tests: no primary key, so that a row written twice would show as a
/// duplicate id rather than be refused.
fn rows_schema() -> store_duckdb::store_core::Migrations {
    store_duckdb::store_core::Migrations::new(vec![store_duckdb::store_core::Migration::new(
        1,
        "rows",
        "CREATE TABLE rows (id BIGINT NOT NULL, worker INTEGER NOT NULL)",
    )])
    .expect("valid migrations")
}

/// What DuckDB reads back for `memory_limit` once set to `limit` (it prints the limit its own way).
fn memory_limit_as_read_back(limit: &str) -> duckdb::Result<String> {
    let connection = duckdb::Connection::open_in_memory()?;
    connection.execute_batch(&format!("SET memory_limit = '{limit}'"))?;
    connection.query_row("SELECT current_setting('memory_limit')", [], |row| {
        row.get(0)
    })
}

/// Rows of `table` counted through a plain DuckDB connection (no settings).
fn count(path: &Path, table: &str) -> duckdb::Result<i64> {
    let connection = duckdb::Connection::open(path)?;
    connection.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
        row.get(0)
    })
}

/// Promise: the settings in the options are the instance's settings, read back from DuckDB.
#[test]
fn settings_are_in_force_on_the_instance_the_open_starts() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("settings.duckdb");
    let (connection, report) = DuckDbOptions::new(&path)
        .memory_limit("64MB")
        .threads(1)
        .open()?;
    let memory_limit: String =
        connection.query_row("SELECT current_setting('memory_limit')", [], |row| {
            row.get(0)
        })?;
    assert_eq!(memory_limit, memory_limit_as_read_back("64MB")?);
    assert_ne!(
        memory_limit,
        memory_limit_as_read_back("128MB")?,
        "the read-back tells limits apart"
    );
    let threads: i64 =
        connection.query_row("SELECT current_setting('threads')", [], |row| row.get(0))?;
    assert_eq!(threads, 1);
    assert!(!report.reused_decision, "{report}");
    Ok(())
}

/// Promise: the memory limit is in force at the open that replays the WAL, not set after it; and
/// a replay that runs out of memory is `OutOfMemory`, never mistaken for a damaged WAL: the
/// default recovery ladder leaves every file as it was (it salvaged the healthy WAL away, all
/// 300,000 rows, before the classification put resource failures first), and the WAL opens
/// under a larger limit.
#[test]
fn the_memory_limit_holds_while_the_wal_replays() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("replay.duckdb");
    {
        let connection = duckdb::Connection::open(&path)?;
        // Everything stays in the WAL: no automatic checkpoint, none at shutdown.
        connection.execute_batch(
            "SET checkpoint_threshold = '1TB';
             PRAGMA disable_checkpoint_on_shutdown;
             CREATE TABLE big (id INTEGER PRIMARY KEY, payload VARCHAR UNIQUE);
             CHECKPOINT;
             INSERT INTO big SELECT range, 'row ' || range FROM range(300000);",
        )?;
    }
    let error = assert_unchanged(directory.path(), || {
        DuckDbOptions::new(&path)
            .memory_limit("4MB")
            .open()
            .expect_err("the replay needs more than 4MB")
    });
    assert!(matches!(error, OpenError::Engine { .. }), "{error:?}");
    assert_eq!(error.class(), FailureClass::OutOfMemory, "{error:?}");
    assert!(
        error.cause_chain().contains("replaying WAL"),
        "{}",
        error.cause_chain()
    );
    let (connection, _) = DuckDbOptions::new(&path).memory_limit("1GB").open()?;
    let rows: i64 = connection.query_row("SELECT count(*) FROM big", [], |row| row.get(0))?;
    assert_eq!(rows, 300_000, "the WAL was fine; only the memory was short");
    Ok(())
}

/// Promise: a setting DuckDB does not take (unknown name, bad value, the access mode) is an
/// `OpenError::Setting` naming it, and no file is touched: an existing database keeps its bytes
/// and its WAL, a missing one is not created.
#[test]
fn a_refused_setting_is_a_typed_error_and_touches_nothing() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("existing.duckdb");
    store_testkit::faults::duckdb::write_uncheckpointed_rows(&path, 5, 5)?;
    let missing = directory.path().join("missing.duckdb");
    let refused = [
        ("no_such_setting", "1"),
        ("memory_limit", "a lot"),
        ("threads", "minus one"),
        ("access_mode", "read_only"),
    ];
    for database in [&path, &missing] {
        for (name, value) in refused {
            let error = assert_unchanged(directory.path(), || {
                DuckDbOptions::new(database)
                    .setting(name, value)
                    .open()
                    .expect_err("refused")
            });
            match &error {
                OpenError::Setting {
                    path: error_path,
                    name: error_name,
                    value: error_value,
                    ..
                } => {
                    assert_eq!(error_path, database);
                    assert_eq!((error_name.as_str(), error_value.as_str()), (name, value));
                }
                other => panic!("{name}={value}: expected a setting error, got {other:?}"),
            }
            let message = error.to_string();
            assert!(message.contains(name), "{message}");
            assert!(
                message.contains(&database.display().to_string()),
                "{message}"
            );
            assert!(!is_open(database));
        }
    }
    assert!(!missing.exists());
    // A good setting among them: the bad one is named, not the good one.
    let error = DuckDbOptions::new(&path)
        .memory_limit("64MB")
        .setting("no_such_setting", "1")
        .open()
        .expect_err("refused");
    assert!(
        matches!(&error, OpenError::Setting { name, .. } if name == "no_such_setting"),
        "{error:?}"
    );
    assert_eq!(count(&path, "items")?, 10, "every row is still there");
    Ok(())
}

/// Promise: a read-only open of a file this process has open read-write is refused with
/// `InstanceMismatch` (it would otherwise be handed a writable instance), touching nothing.
#[test]
fn a_read_only_open_of_a_file_open_read_write_is_refused() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("mode.duckdb");
    let (writer, _) = DuckDbOptions::new(&path).migrations(rows_schema()).open()?;
    let error = assert_unchanged(directory.path(), || {
        DuckDbOptions::new(&path)
            .read_only(true)
            .open()
            .expect_err("refused")
    });
    match &error {
        OpenError::InstanceMismatch { live, asked, .. } => {
            assert_eq!((live.read_only, asked.read_only), (false, true), "{error}");
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("already open in this process as read-write")
            && message.contains("asked for read-only"),
        "{message}"
    );
    // The live instance is untouched by the refusal.
    writer.execute("INSERT INTO rows VALUES (1, 0)", [])?;
    assert!(is_open(&path));
    Ok(())
}

/// Promise: a read-write open of a file this process has open read-only is refused with
/// `InstanceMismatch` (it could not write through the read-only instance).
#[test]
fn a_read_write_open_of_a_file_open_read_only_is_refused() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("mode.duckdb");
    drop(DuckDbOptions::new(&path).migrations(rows_schema()).open()?);
    let (reader, _) = DuckDbOptions::new(&path).read_only(true).open()?;
    let error = assert_unchanged(directory.path(), || {
        DuckDbOptions::new(&path)
            .migrations(rows_schema())
            .open()
            .expect_err("refused")
    });
    assert!(
        matches!(
            &error,
            OpenError::InstanceMismatch { live, asked, .. }
                if live.read_only && !asked.read_only
        ),
        "{error:?}"
    );
    let rows: i64 = reader.query_row("SELECT count(*) FROM rows", [], |row| row.get(0))?;
    assert_eq!(rows, 0);
    Ok(())
}

/// Promise: an open asking for another memory limit than the live instance's is refused with
/// `InstanceMismatch`, both configurations in the error and its message.
#[test]
fn an_open_with_another_memory_limit_is_refused() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("limit.duckdb");
    let (_live, _) = DuckDbOptions::new(&path).memory_limit("64MB").open()?;
    for asked in [
        DuckDbOptions::new(&path).memory_limit("128MB"),
        DuckDbOptions::new(&path),
    ] {
        let error = assert_unchanged(directory.path(), || asked.open().expect_err("refused"));
        let live_config = InstanceConfig {
            read_only: false,
            settings: [("memory_limit".to_owned(), "64MB".to_owned())].into(),
        };
        match &error {
            OpenError::InstanceMismatch {
                path: error_path,
                live,
                asked: asked_config,
            } => {
                assert_eq!(error_path, &path);
                assert_eq!(live, &live_config);
                assert_eq!(asked_config, &asked.instance_config());
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
        let message = error.to_string();
        assert!(
            message.contains("as read-write, memory_limit=64MB;"),
            "{message}"
        );
        assert!(
            message.contains(&format!("asked for {}", asked.instance_config())),
            "{message}"
        );
        assert_eq!(error.class(), store_duckdb::store_core::FailureClass::Other);
    }
    Ok(())
}

/// Promise: an open with the same access mode and settings shares the live instance, so writes
/// through one connection are seen through the other.
#[test]
fn an_open_with_the_same_options_shares_the_instance() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("same.duckdb");
    let options = DuckDbOptions::new(&path)
        .migrations(rows_schema())
        .memory_limit("64MB")
        .threads(2);
    let (first, _) = options.open()?;
    // Set in another order, and a name in capitals: the same settings.
    let (second, report) = DuckDbOptions::new(&path)
        .migrations(rows_schema())
        .setting("THREADS", "2")
        .memory_limit("64MB")
        .open()?;
    assert!(report.reused_decision, "{report}");
    first.execute("INSERT INTO rows VALUES (1, 1)", [])?;
    let seen: i64 = second.query_row("SELECT count(*) FROM rows", [], |row| row.get(0))?;
    assert_eq!(seen, 1);
    let threads: i64 =
        second.query_row("SELECT current_setting('threads')", [], |row| row.get(0))?;
    assert_eq!(threads, 2);
    Ok(())
}

/// Promise: connections from one handle on many threads all reach the one instance, and every
/// committed row is there exactly once; the instance lives while the handle or a connection
/// does, closes after both are gone, and the file reopens with every row.
#[test]
fn eight_threads_connecting_through_one_handle_keep_every_row() -> TestResult {
    const WORKERS: i64 = 8;
    const ROWS_PER_WORKER: i64 = 200;
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("handle.duckdb");
    let (database, report) = DuckDbOptions::new(&path)
        .label("handle")
        .migrations(rows_schema())
        .database()?;
    assert!(report.created, "{report}");
    assert_eq!(report.schema_version, 1, "{report}");
    assert_eq!(database.path(), path);
    assert_eq!(database.label(), "handle");
    assert!(!database.read_only());
    assert!(is_open(&path));

    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let database = database.clone();
            std::thread::spawn(move || -> Result<(), String> {
                let connection = database.connect().map_err(|error| error.to_string())?;
                DuckDbDatabase::check(&connection).map_err(|error| error.to_string())?;
                for n in 0..ROWS_PER_WORKER {
                    connection
                        .execute(
                            "INSERT INTO rows VALUES (?, ?)",
                            [worker * ROWS_PER_WORKER + n, worker],
                        )
                        .map_err(|error| error.to_string())?;
                }
                Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker thread")?;
    }

    let connection = database.connect()?;
    let (rows, distinct): (i64, i64) =
        connection.query_row("SELECT count(*), count(DISTINCT id) FROM rows", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    assert_eq!(
        (rows, distinct),
        (WORKERS * ROWS_PER_WORKER, WORKERS * ROWS_PER_WORKER)
    );
    let ids: BTreeSet<i64> = connection
        .prepare("SELECT id FROM rows")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    assert_eq!(ids, (0..WORKERS * ROWS_PER_WORKER).collect());

    drop(database);
    assert!(is_open(&path), "a connection still holds the instance");
    drop(connection);
    assert!(
        !is_open(&path),
        "the instance closes with the handle and its connections"
    );
    assert_eq!(count(&path, "rows")?, WORKERS * ROWS_PER_WORKER);
    Ok(())
}

/// Promise: a filesystem kind set by the options is the report's, with the detected mount point
/// and type name kept, the detected kind remembered, and a note saying so; without it, the
/// detected kind is reported and no such note.
#[test]
fn a_filesystem_kind_set_by_the_options_is_reported() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("fs.duckdb");
    let detected = Filesystem::detect(directory.path())?;
    let set = if detected.kind == FsKind::Nfs {
        FsKind::Fuse
    } else {
        FsKind::Nfs
    };
    let (connection, report) = DuckDbOptions::new(&path).filesystem(set).open()?;
    drop(connection);
    let filesystem = report.filesystem.clone().expect("a filesystem");
    assert_eq!(filesystem.kind, set);
    assert_eq!(
        filesystem.kind_source,
        KindSource::SetByOptions {
            detected: detected.kind
        }
    );
    assert_eq!(filesystem.type_name, detected.type_name);
    assert_eq!(filesystem.mount_point, detected.mount_point);
    assert!(
        report.to_string().contains("set by the options"),
        "{report}"
    );

    let (_connection, report) = DuckDbOptions::new(&path).open()?;
    let filesystem = report.filesystem.clone().expect("a filesystem");
    assert_eq!(filesystem.kind, detected.kind);
    assert_eq!(filesystem.kind_source, KindSource::Detected);
    Ok(())
}

/// Promise: the per-connection initialisation runs on the open's connection and on every
/// connection the handle makes, and one that fails is a typed error, not a half-set connection.
#[test]
fn on_connect_runs_on_every_connection_and_its_failure_is_typed() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("init.duckdb");
    let (database, _) = DuckDbOptions::new(&path)
        .on_connect(|connection| {
            connection.execute_batch("CREATE OR REPLACE TEMP MACRO answer() AS 42")
        })
        .database()?;
    for _ in 0..3 {
        let connection = database.connect()?;
        let answer: i64 = connection.query_row("SELECT answer()", [], |row| row.get(0))?;
        assert_eq!(answer, 42);
    }
    drop(database);
    let failed = DuckDbOptions::new(&path)
        .on_connect(|connection| connection.execute_batch("THIS IS NOT SQL"))
        .open();
    assert!(
        matches!(failed, Err(OpenError::Init { ref path, .. }) if path.ends_with("init.duckdb")),
        "{failed:?}"
    );
    Ok(())
}

const LOCK_TEST: &str = concat!(
    module_path!(),
    "::a_database_open_here_stays_locked_against_other_processes"
);

/// Promise: while this process holds a DuckDB database open through store, no other process can
/// open it, whatever store does meanwhile in this process: another open of the same file (which
/// checks the path), a migration (which copies the file into its snapshot). DuckDB's lock is a
/// POSIX lock, which the kernel drops for the whole process when any descriptor of the file is
/// closed; a store that opened and closed the file behind DuckDB's back let a second process in,
/// two writers on one file.
#[test]
fn a_database_open_here_stays_locked_against_other_processes() -> TestResult {
    if child::role().as_deref() == Some("try-to-open") {
        let path = std::env::var_os("LOCKED_DATABASE").expect("database path");
        // Only DuckDB's own lock refusal counts as "held": any other refusal (a damaged file,
        // a missing directory) would pass the check while proving nothing about the lock.
        match duckdb::Connection::open(&path) {
            Ok(_) => println!("OPENED"),
            Err(error) if store_duckdb::classify(&error) == FailureClass::Locked => {
                println!("LOCKED: {error}")
            }
            Err(error) => println!("REFUSED OTHERWISE: {error}"),
        }
        return Ok(());
    }
    let other_process_opens = |path: &std::path::Path| -> Result<bool, Box<dyn std::error::Error>> {
        let output = child::spawn_role(
            LOCK_TEST,
            "try-to-open",
            &[("LOCKED_DATABASE", path.as_os_str().to_owned())],
        )?
        .wait_with_output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("OPENED") || stdout.contains("LOCKED"),
            "neither opened nor refused by the lock: {stdout}"
        );
        Ok(stdout.contains("OPENED"))
    };
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("held.duckdb");
    let older = store_core::Migrations::new(schema().all()[..2].to_vec())?;
    let (first, _) = DuckDbOptions::new(&path).migrations(older).open()?;
    assert!(!other_process_opens(&path)?, "held after the first open");
    // Another open in this process: it shares the instance, after checking the path.
    let same = store_core::Migrations::new(schema().all()[..2].to_vec())?;
    let (second, _) = DuckDbOptions::new(&path).migrations(same).open()?;
    assert!(!other_process_opens(&path)?, "held after a second open");
    drop(second);
    drop(first);
    // A migration copies the file into its snapshot while the instance holds it.
    let (migrated, report) = DuckDbOptions::new(&path).migrations(schema()).open()?;
    assert!(report.snapshot.is_some(), "{report}");
    assert!(!other_process_opens(&path)?, "held after migrating");
    drop(migrated);
    assert!(other_process_opens(&path)?, "free once closed");
    Ok(())
}

/// Promise: the last connection's close of one file's instance (a checkpoint, which can take
/// long) does not hold the process's registry of instances: at the moment the close begins,
/// another thread asks the registry about another file and is answered. Were the registry
/// locked through the close, that thread could not answer until the close ended, while the
/// close waits for its answer: the wait runs out and the test fails.
#[test]
fn closing_one_instance_stalls_no_open_of_another() -> TestResult {
    use std::sync::{Arc, Mutex, mpsc};
    use std::time::Duration;

    let directory = tempfile::tempdir()?;
    let other = directory.path().join("other.duckdb");
    let closing = directory.path().join("closing.duckdb");
    let (other_connection, _) = DuckDbOptions::new(&other).open()?;
    let (closing_connection, _) = DuckDbOptions::new(&closing).open()?;
    let answer = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&answer);
    let asked_about = other.clone();
    let ((), _) = store_testkit::logs::capture_with_hook(
        "closing the instance",
        move || {
            let (sender, receiver) = mpsc::channel();
            let path = asked_about.clone();
            std::thread::spawn(move || {
                let _ = sender.send(is_open(&path));
            });
            *slot.lock().expect("one hook at a time") =
                Some(receiver.recv_timeout(Duration::from_secs(10)));
        },
        || drop(closing_connection),
    );
    let answered = answer
        .lock()
        .expect("the hook is done")
        .take()
        .expect("the close was logged");
    assert_eq!(
        answered,
        Ok(true),
        "another thread asked the registry while an instance closed"
    );
    assert!(!is_open(&closing));
    drop(other_connection);
    Ok(())
}
