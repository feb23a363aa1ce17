//! The async face under a multi-threaded runtime: many concurrent callers, panics as typed
//! errors, the caller's span on the connection's thread, and a clean close.

use std::sync::Arc;
use std::time::{Duration, Instant};

use store::tokio::{AsyncConnection, CallError};
use store_testkit::isolated;

const CALLERS: i64 = 64;

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_serves_many_concurrent_callers() -> Result<(), Box<dyn std::error::Error>> {
    let directory = tempfile::tempdir()?;
    let options = store::sqlite::SqliteOptions::new(directory.path().join("state.db"));
    let (connection, report) = AsyncConnection::open(options).await?;
    assert_eq!(report.journal_mode, Some(store::JournalMode::Wal));
    connection
        .call(|c| c.execute_batch("CREATE TABLE hits (caller INTEGER)"))
        .await??;
    let connection = Arc::new(connection);
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let connection = Arc::clone(&connection);
            tokio::spawn(async move {
                connection
                    .call(move |c| c.execute("INSERT INTO hits VALUES (?1)", [caller]))
                    .await
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await???, 1);
    }
    let (count, distinct): (i64, i64) = connection
        .call(|c| {
            c.query_row(
                "SELECT count(*), count(DISTINCT caller) FROM hits",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
        })
        .await??;
    assert_eq!((count, distinct), (CALLERS, CALLERS));
    Ok(())
}

#[cfg(feature = "duckdb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duckdb_serves_many_concurrent_callers_and_checkpoints_on_close()
-> Result<(), Box<dyn std::error::Error>> {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("system.duckdb");
    let (connection, _) = AsyncConnection::open(store::duckdb::DuckDbOptions::new(&path)).await?;
    connection
        .call(|c| c.execute_batch("CREATE TABLE hits (caller BIGINT)"))
        .await??;
    let connection = Arc::new(connection);
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let connection = Arc::clone(&connection);
            tokio::spawn(async move {
                connection
                    .call(move |c| c.execute("INSERT INTO hits VALUES (?)", [caller]))
                    .await
            })
        })
        .collect();
    for caller in callers {
        caller.await???;
    }
    let connection = Arc::into_inner(connection).expect("the last handle");
    connection.close().await?;
    // Closed: the instance is gone from the registry, its WAL checkpointed, its lock released.
    assert!(!store::duckdb::is_open(&path));
    let plain = duckdb::Connection::open(&path)?;
    let count: i64 = plain.query_row("SELECT count(*) FROM hits", [], |row| row.get(0))?;
    assert_eq!(count, CALLERS);
    Ok(())
}

#[cfg(feature = "duckdb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handle_closes_the_connection() -> Result<(), Box<dyn std::error::Error>> {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("dropped.duckdb");
    let (connection, _) = AsyncConnection::open(store::duckdb::DuckDbOptions::new(&path)).await?;
    connection
        .call(|c| c.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)"))
        .await??;
    drop(connection);
    let deadline = Instant::now() + Duration::from_secs(10);
    while store::duckdb::is_open(&path) {
        assert!(
            Instant::now() < deadline,
            "the worker never closed the connection"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let plain = duckdb::Connection::open(&path)?;
    let count: i64 = plain.query_row("SELECT count(*) FROM t", [], |row| row.get(0))?;
    assert_eq!(count, 1);
    Ok(())
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_closure_is_a_typed_error_and_the_connection_goes_on()
-> Result<(), Box<dyn std::error::Error>> {
    let directory = tempfile::tempdir()?;
    let (connection, _) = AsyncConnection::open(store::sqlite::SqliteOptions::new(
        directory.path().join("p.db"),
    ))
    .await?;
    let outcome = connection
        .call(|_| -> i32 { panic!("boom in a closure") })
        .await;
    match outcome {
        Err(CallError::Panicked { message }) => assert_eq!(message, "boom in a closure"),
        other => panic!("expected a panic error, got {other:?}"),
    }
    let answer: i64 = connection
        .call(|c| c.query_row("SELECT 42", [], |row| row.get(0)))
        .await??;
    assert_eq!(answer, 42);
    Ok(())
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_failed_open_is_the_engines_typed_error() {
    let directory = tempfile::tempdir().expect("temp dir");
    let error = AsyncConnection::open(store::sqlite::SqliteOptions::new(directory.path()))
        .await
        .unwrap_err();
    match error {
        store::tokio::AsyncOpenError::Open(open) => {
            assert!(
                matches!(
                    open,
                    store::sqlite::OpenError::Path(store::PathError::IsADirectory { .. })
                ),
                "{open:?}"
            )
        }
        other => panic!("expected the open's error, got {other:?}"),
    }
}

#[cfg(feature = "sqlite")]
#[test]
fn the_callers_span_is_entered_on_the_connection_thread() {
    isolated!(the_callers_span_is_entered_on_the_connection_thread, {
        // A process-wide subscriber: the connection's thread is not the caller's.
        store_testkit::logs::capture_process();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        runtime.block_on(async {
            use tracing::Instrument;
            let directory = tempfile::tempdir().unwrap();
            let options = store::sqlite::SqliteOptions::new(directory.path().join("span.db"))
                .label("span.db");
            let (connection, _) = AsyncConnection::open(options)
                .instrument(tracing::info_span!("request", id = 42))
                .await
                .unwrap();
            connection
                .call(|_| tracing::info!(target: "app", "work on the connection thread"))
                .instrument(tracing::info_span!("request", id = 43))
                .await
                .unwrap();
        });
        let events = store_testkit::logs::capture_process();
        let work = events
            .iter()
            .find(|e| e.text == "work on the connection thread")
            .expect("event recorded");
        assert_eq!(work.spans, ["request{ id=43}"]);
        // The open on the worker thread happened inside the caller's span and store's own.
        let opened = events
            .iter()
            .find(|e| e.target == "store::sqlite" && e.text.starts_with("opened"))
            .expect("open logged");
        assert_eq!(opened.spans.len(), 2, "{:?}", opened.spans);
        assert_eq!(opened.spans[0], "request{ id=42}");
        assert!(
            opened.spans[1].starts_with("open{")
                && opened.spans[1].contains("label=span.db")
                && opened.spans[1].contains("engine=sqlite"),
            "{:?}",
            opened.spans
        );
    });
}
