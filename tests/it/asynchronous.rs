//! The async face under a multi-threaded runtime: many concurrent callers through clones of one
//! handle, a bounded queue that makes callers wait, closures' errors and panics as typed errors,
//! the caller's span on the connection's thread, and a clean close.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use store::tokio::{AsyncConnection, CallError};
use store_testkit::isolated;

const CALLERS: i64 = 64;

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_serves_many_concurrent_callers() -> Result<(), Box<dyn std::error::Error>> {
    crate::multi_thread_runtime(4).block_on(async {
        let directory = tempfile::tempdir()?;
        let options = store::sqlite::SqliteOptions::new(directory.path().join("state.db"));
        let (connection, report) = AsyncConnection::open(options).await?;
        assert_eq!(report.journal_mode, Some(store::JournalMode::Wal));
        connection
            .call(|c| c.execute_batch("CREATE TABLE hits (caller INTEGER)"))
            .await?;
        let callers: Vec<_> = (0..CALLERS)
            .map(|caller| {
                let connection = connection.clone();
                tokio::spawn(async move {
                    connection
                        .call(move |c| c.execute("INSERT INTO hits VALUES (?1)", [caller]))
                        .await
                })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await??, 1);
        }
        let (count, distinct): (i64, i64) = connection
            .call(|c| {
                c.query_row(
                    "SELECT count(*), count(DISTINCT caller) FROM hits",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
            })
            .await?;
        assert_eq!((count, distinct), (CALLERS, CALLERS));
        Ok(())
    })
}

#[cfg(feature = "duckdb")]
#[test]
fn duckdb_serves_many_concurrent_callers_and_checkpoints_on_close()
-> Result<(), Box<dyn std::error::Error>> {
    crate::multi_thread_runtime(4).block_on(async {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("system.duckdb");
        let (connection, _) =
            AsyncConnection::open(store::duckdb::DuckDbOptions::new(&path)).await?;
        connection
            .call(|c| c.execute_batch("CREATE TABLE hits (caller BIGINT)"))
            .await?;
        let callers: Vec<_> = (0..CALLERS)
            .map(|caller| {
                let connection = connection.clone();
                tokio::spawn(async move {
                    connection
                        .call(move |c| c.execute("INSERT INTO hits VALUES (?)", [caller]))
                        .await
                })
            })
            .collect();
        for caller in callers {
            caller.await??;
        }
        connection.close().await?;
        // Closed: the instance is gone from the registry, its WAL checkpointed, its lock released.
        assert!(!store::duckdb::is_open(&path));
        let plain = duckdb::Connection::open(&path)?;
        let count: i64 = plain.query_row("SELECT count(*) FROM hits", [], |row| row.get(0))?;
        assert_eq!(count, CALLERS);
        Ok(())
    })
}

#[cfg(feature = "duckdb")]
#[test]
fn dropping_the_last_handle_closes_the_connection() -> Result<(), Box<dyn std::error::Error>> {
    crate::multi_thread_runtime(2).block_on(async {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("dropped.duckdb");
        let (connection, _) =
            AsyncConnection::open(store::duckdb::DuckDbOptions::new(&path)).await?;
        let clone = connection.clone();
        connection
            .call(|c| c.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1)"))
            .await?;
        drop(connection);
        // The clone keeps the connection open and working.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(store::duckdb::is_open(&path));
        let count: i64 = clone
            .call(|c| c.query_row("SELECT count(*) FROM t", [], |row| row.get(0)))
            .await?;
        assert_eq!(count, 1);
        drop(clone);
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
    })
}

#[cfg(feature = "sqlite")]
#[test]
fn a_panicking_closure_is_a_typed_error_and_the_connection_goes_on()
-> Result<(), Box<dyn std::error::Error>> {
    crate::multi_thread_runtime(2).block_on(async {
        let directory = tempfile::tempdir()?;
        let (connection, _) = AsyncConnection::open(store::sqlite::SqliteOptions::new(
            directory.path().join("p.db"),
        ))
        .await?;
        let outcome = connection
            .call(|_| -> Result<i32, Infallible> { panic!("boom in a closure") })
            .await;
        match outcome {
            Err(CallError::Panicked { message }) => assert_eq!(message, "boom in a closure"),
            other => panic!("expected a panic error, got {other:?}"),
        }
        let answer: i64 = connection
            .call(|c| c.query_row("SELECT 42", [], |row| row.get(0)))
            .await?;
        assert_eq!(answer, 42);
        Ok(())
    })
}

#[cfg(feature = "sqlite")]
#[test]
fn a_failed_open_is_the_engines_typed_error() {
    crate::current_thread_runtime().block_on(async {
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
    })
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
                .call(|_| {
                    tracing::info!(target: "app", "work on the connection thread");
                    Ok::<_, Infallible>(())
                })
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

/// Clones share one connection, not just the file: a row one task wrote inside a transaction it
/// has not committed is visible to the other task's clone, and to no other connection.
#[cfg(feature = "sqlite")]
#[test]
fn clones_from_two_tasks_share_one_connection() -> Result<(), Box<dyn std::error::Error>> {
    crate::multi_thread_runtime(2).block_on(async {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("shared.db");
        let (connection, _) =
            AsyncConnection::open(store::sqlite::SqliteOptions::new(&path)).await?;
        connection
            .call(|c| c.execute_batch("CREATE TABLE t (who TEXT); BEGIN"))
            .await?;
        let both_wrote = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let tasks: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|who| {
                let connection = connection.clone();
                let both_wrote = std::sync::Arc::clone(&both_wrote);
                tokio::spawn(async move {
                    connection
                        .call(move |c| c.execute("INSERT INTO t VALUES (?1)", [who]))
                        .await?;
                    both_wrote.wait().await;
                    connection
                        .call(|c| {
                            let mut statement = c.prepare("SELECT who FROM t ORDER BY who")?;
                            statement
                                .query_map([], |row| row.get::<_, String>(0))?
                                .collect::<Result<Vec<_>, _>>()
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await??, ["a", "b"]);
        }
        // Uncommitted: another connection sees nothing yet.
        let other = store::sqlite::rusqlite::Connection::open(&path)?;
        let count = |c: &store::sqlite::rusqlite::Connection| {
            c.query_row("SELECT count(*) FROM t", [], |row| row.get::<_, i64>(0))
        };
        assert_eq!(count(&other)?, 0);
        connection.call(|c| c.execute_batch("COMMIT")).await?;
        assert_eq!(count(&other)?, 2);
        Ok(())
    })
}

/// A full queue makes callers wait for room, in the order they called, without blocking the
/// runtime and without failing: on a one-thread runtime, with a queue of one and the connection
/// busy, five more callers wait while this task goes on (and is the one that frees the
/// connection: a `call` that blocked the thread would never let it).
#[cfg(feature = "sqlite")]
#[test]
fn a_full_queue_makes_callers_wait_in_order_without_blocking_the_runtime()
-> Result<(), Box<dyn std::error::Error>> {
    crate::current_thread_runtime().block_on(async {
        const WAITING: i64 = 5;
        let directory = tempfile::tempdir()?;
        let options = store::sqlite::SqliteOptions::new(directory.path().join("queue.db"));
        let (connection, _) = AsyncConnection::open_with_capacity(options, 1).await?;
        connection
            .call(|c| c.execute_batch("CREATE TABLE calls (seq INTEGER)"))
            .await?;

        let (started, has_started) = tokio::sync::oneshot::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let connection = connection.clone();
            async move {
                connection
                    .call(move |_| {
                        let _ = started.send(());
                        released
                            .recv_timeout(Duration::from_secs(10))
                            .map_err(|_| "never released: the runtime was blocked")
                    })
                    .await
            }
        });
        has_started.await?;

        // The worker is busy: the first of these fills the queue, the others wait for room.
        let mut callers = Vec::new();
        for seq in 0..WAITING {
            let connection = connection.clone();
            callers.push(tokio::spawn(async move {
                connection
                    .call(move |c| c.execute("INSERT INTO calls VALUES (?1)", [seq]))
                    .await
            }));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            callers.iter().all(|caller| !caller.is_finished()),
            "a caller finished while the connection was busy"
        );

        release.send(())?;
        busy.await?.expect("the busy call, released");
        for caller in callers {
            assert_eq!(caller.await??, 1);
        }
        let order: Vec<i64> = connection
            .call(|c| {
                let mut statement = c.prepare("SELECT seq FROM calls ORDER BY rowid")?;
                statement
                    .query_map([], |row| row.get(0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        assert_eq!(order, (0..WAITING).collect::<Vec<_>>());
        Ok(())
    })
}

/// A closure's error comes back as `CallError::Failed` with the engine's error inside, as the
/// error's source; the connection goes on serving.
#[cfg(feature = "sqlite")]
#[test]
fn a_closures_error_is_failed_with_the_engine_error_inside()
-> Result<(), Box<dyn std::error::Error>> {
    crate::multi_thread_runtime(2).block_on(async {
        let directory = tempfile::tempdir()?;
        let (connection, _) = AsyncConnection::open(store::sqlite::SqliteOptions::new(
            directory.path().join("failed.db"),
        ))
        .await?;
        let error = connection
            .call(|c| c.execute("INSERT INTO missing VALUES (1)", []))
            .await
            .unwrap_err();
        match &error {
            CallError::Failed(store::sqlite::rusqlite::Error::SqliteFailure(_, Some(message))) => {
                assert!(message.contains("no such table: missing"), "{message}")
            }
            other => panic!("expected the engine's error, got {other:?}"),
        }
        let source = std::error::Error::source(&error).expect("the engine's error as the source");
        assert!(source.to_string().contains("no such table"), "{source}");
        let answer: i64 = connection
            .call(|c| c.query_row("SELECT 7", [], |row| row.get(0)))
            .await?;
        assert_eq!(answer, 7);
        Ok(())
    })
}

/// `close` closes the connection for every clone: it waits until the connection is closed, a
/// clone's later call fails with `Closed`, and closing again succeeds.
#[cfg(feature = "sqlite")]
#[test]
fn close_closes_the_connection_for_every_clone() -> Result<(), Box<dyn std::error::Error>> {
    crate::multi_thread_runtime(2).block_on(async {
        let directory = tempfile::tempdir()?;
        let (connection, _) = AsyncConnection::open(store::sqlite::SqliteOptions::new(
            directory.path().join("closed.db"),
        ))
        .await?;
        let clone = connection.clone();
        connection
            .call(|c| c.execute_batch("CREATE TABLE t (x INTEGER)"))
            .await?;
        connection.close().await?;
        let refused = clone
            .call(|c| c.execute("INSERT INTO t VALUES (1)", []))
            .await;
        assert!(matches!(refused, Err(CallError::Closed)), "{refused:?}");
        clone.close().await?;
        Ok(())
    })
}

/// Promise: a closure that panics between its `BEGIN` and its end leaves no transaction behind
/// for the next call: the transaction is rolled back before the connection serves again, so the
/// first closure's insert is gone and the next call's insert commits on its own (autocommit).
#[cfg(feature = "sqlite")]
#[test]
fn sqlite_a_panic_inside_a_transaction_rolls_it_back_before_the_next_call()
-> Result<(), Box<dyn std::error::Error>> {
    use store::sqlite::rusqlite;
    crate::multi_thread_runtime(2).block_on(async {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("panicked.db");
        let (connection, _) =
            AsyncConnection::open(store::sqlite::SqliteOptions::new(&path)).await?;
        connection
            .call(|c| c.execute_batch("CREATE TABLE t (x INTEGER)"))
            .await?;
        let outcome = connection
            .call(|c| -> Result<(), rusqlite::Error> {
                c.execute_batch("BEGIN; INSERT INTO t VALUES (1)")?;
                panic!("boom inside a transaction")
            })
            .await;
        assert!(
            matches!(outcome, Err(CallError::Panicked { .. })),
            "{outcome:?}"
        );
        connection
            .call(|c| c.execute("INSERT INTO t VALUES (2)", []))
            .await?;
        connection.close().await?;
        let plain = rusqlite::Connection::open(&path)?;
        let mut statement = plain.prepare("SELECT x FROM t ORDER BY x")?;
        let rows = statement
            .query_map([], |row| row.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        assert_eq!(rows, [2], "after the panic, the second call's row alone");
        Ok(())
    })
}

/// Promise: the same for DuckDB, whose client API cannot say whether a connection is inside a
/// transaction: the transaction a panicking closure began is rolled back before the next call.
#[cfg(feature = "duckdb")]
#[test]
fn duckdb_a_panic_inside_a_transaction_rolls_it_back_before_the_next_call()
-> Result<(), Box<dyn std::error::Error>> {
    crate::multi_thread_runtime(2).block_on(async {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("panicked.duckdb");
        let (connection, _) =
            AsyncConnection::open(store::duckdb::DuckDbOptions::new(&path)).await?;
        connection
            .call(|c| c.execute_batch("CREATE TABLE t (x BIGINT)"))
            .await?;
        let outcome = connection
            .call(|c| -> Result<(), duckdb::Error> {
                c.execute_batch("BEGIN TRANSACTION; INSERT INTO t VALUES (1)")?;
                panic!("boom inside a transaction")
            })
            .await;
        assert!(
            matches!(outcome, Err(CallError::Panicked { .. })),
            "{outcome:?}"
        );
        connection
            .call(|c| c.execute("INSERT INTO t VALUES (2)", []))
            .await?;
        connection.close().await?;
        let plain = duckdb::Connection::open(&path)?;
        let mut statement = plain.prepare("SELECT x FROM t ORDER BY x")?;
        let rows = statement
            .query_map([], |row| row.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        assert_eq!(rows, [2], "after the panic, the second call's row alone");
        Ok(())
    })
}

/// A database whose engine cannot say whether a connection is outside a transaction (the
/// trait's default `roll_back_abandoned`): what the async face must do when a rollback cannot be
/// made sure.
#[derive(Clone)]
struct CannotTell;

impl store::Database for CannotTell {
    type Connection = Vec<&'static str>;
    type Error = std::io::Error;

    fn connect(&self) -> Result<Vec<&'static str>, std::io::Error> {
        Ok(Vec::new())
    }

    fn check(_: &mut Vec<&'static str>) -> Result<(), std::io::Error> {
        Ok(())
    }

    fn connection_limit(&self) -> store::ConnectionLimit {
        store::ConnectionLimit::Many
    }
}

/// Promise: where a panic's transaction cannot be made sure to be rolled back, the connection is
/// closed, and every later call (queued behind the panic, or made after) is refused with
/// `ClosedAfterPanic` naming the panic, never run on the connection.
#[test]
fn a_panic_whose_transaction_cannot_be_rolled_back_closes_the_connection()
-> Result<(), Box<dyn std::error::Error>> {
    crate::multi_thread_runtime(2).block_on(async {
        let connection = AsyncConnection::connect(CannotTell).await?;
        connection
            .call(|c| {
                c.push("before");
                Ok::<_, Infallible>(())
            })
            .await?;
        let outcome = connection
            .call(|_| -> Result<(), Infallible> { panic!("boom mid-transaction") })
            .await;
        assert!(
            matches!(&outcome, Err(CallError::Panicked { message }) if message == "boom mid-transaction"),
            "{outcome:?}"
        );
        let refused = connection
            .call(|c| {
                c.push("after");
                Ok::<_, Infallible>(c.len())
            })
            .await;
        match refused {
            Err(CallError::ClosedAfterPanic { message }) => {
                assert_eq!(message, "boom mid-transaction")
            }
            other => panic!("expected the call refused after the panic, got {other:?}"),
        }
        let refused = connection.clone().call(|c| Ok::<_, Infallible>(c.len())).await;
        assert!(
            matches!(refused, Err(CallError::ClosedAfterPanic { .. })),
            "{refused:?}"
        );
        connection.close().await?;
        Ok(())
    })
}
