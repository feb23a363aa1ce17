//! The pools over a decided database (features `r2d2`, `deadpool`): one decision for the whole
//! pool, whatever the filesystem does; a pool sized to what the decision allows; every row
//! written through the pool there afterwards.

use std::collections::BTreeSet;
use std::path::Path;

use store::ConnectionLimit;
use store::sqlite::rusqlite::Connection;
use store::sqlite::{ConnectError, SqliteOptions};
use store_testkit::faults::sqlite::SqliteFault;
use store_testkit::fixtures::sqlite_ids;
use store_testkit::isolated;
use store_testkit::logs;
use tracing::Level;

/// The fixtures' table, with ids the workers choose: a lost or doubled insert shows in the ids.
const CREATE_ITEMS: &str =
    "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)";

/// Inserts rows `worker * per_worker + 1 ..= (worker + 1) * per_worker`, one statement each,
/// committed every `batch` rows (`BEGIN IMMEDIATE`, so that a writer waits for the write lock
/// before it reads) or, with a batch of one, each on its own.
fn insert_rows(
    connection: &Connection,
    worker: u64,
    per_worker: u64,
    batch: u64,
) -> store::sqlite::rusqlite::Result<()> {
    let mut insert = connection.prepare("INSERT INTO items (id, payload) VALUES (?1, ?2)")?;
    for n in 1..=per_worker {
        if batch > 1 && n % batch == 1 {
            connection.execute_batch("BEGIN IMMEDIATE")?;
        }
        let id = i64::try_from(worker * per_worker + n).expect("a small id");
        insert.execute((id, format!("worker {worker} row {n}")))?;
        if batch > 1 && (n % batch == 0 || n == per_worker) {
            connection.execute_batch("COMMIT")?;
        }
    }
    Ok(())
}

/// The ids every worker wrote.
fn all_ids(workers: u64, per_worker: u64) -> BTreeSet<u64> {
    (1..=workers * per_worker).collect()
}

fn ids(connection: &Connection, path: &Path) -> BTreeSet<u64> {
    sqlite_ids(connection, path).expect("the ids")
}

/// On a filesystem without shared memory, one open decides for the whole pool: `database()` runs
/// once (one open logged, one WARN about the fallback over the whole run), every pooled
/// connection is in the decided journal mode (`delete`), and 8 threads x 1,000 inserts through a
/// pool of 8 all land, with distinct ids.
#[cfg(feature = "r2d2")]
#[test]
fn an_r2d2_pool_without_shared_memory_decides_once_and_keeps_every_row() {
    isolated!(
        an_r2d2_pool_without_shared_memory_decides_once_and_keeps_every_row,
        {
            const WORKERS: u64 = 8;
            const PER_WORKER: u64 = 1_000;
            // Commits of 100 rows: 8 writers committing each row in DELETE mode starve one
            // another past the busy timeout (SQLite's busy handler polls; it does not queue).
            const BATCH: u64 = 100;
            logs::capture_process();
            let directory = tempfile::tempdir().unwrap();
            let path = directory.path().join("nfs.db");
            let _fault = SqliteFault::NoSharedMemory.install().unwrap();

            let (database, report) = SqliteOptions::new(&path)
                .label("pooled.db")
                .database()
                .unwrap();
            assert_eq!(
                report.journal_mode,
                Some(store::JournalMode::Delete),
                "{report}"
            );
            assert_eq!(report.fallbacks.len(), 1, "{report}");
            assert_eq!(report.connection_limit, ConnectionLimit::Many);

            let pool = store::pool::r2d2::pool(database, 8).unwrap();
            assert_eq!(pool.max_size(), 8);
            // Every connection the pool holds, checked out at once: each in the decided mode.
            let held: Vec<_> = (0..8).map(|_| pool.get().unwrap()).collect();
            for connection in &held {
                let mode: String = connection
                    .query_row("PRAGMA journal_mode", [], |row| row.get(0))
                    .unwrap();
                assert_eq!(mode, "delete");
            }
            held[0].execute_batch(CREATE_ITEMS).unwrap();
            drop(held);

            std::thread::scope(|scope| {
                for worker in 0..WORKERS {
                    let pool = &pool;
                    scope.spawn(move || {
                        let connection = pool.get().unwrap();
                        insert_rows(&connection, worker, PER_WORKER, BATCH).unwrap();
                    });
                }
            });
            assert_eq!(
                ids(&pool.get().unwrap(), &path),
                all_ids(WORKERS, PER_WORKER)
            );

            let events = logs::capture_process();
            let warnings = logs::at_level(&events, Level::WARN);
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(warnings[0].text.contains("pooled.db"), "{warnings:?}");
            let opens = events
                .iter()
                .filter(|event| event.target == "store::sqlite" && event.text.starts_with("opened"))
                .count();
            assert_eq!(opens, 1, "one decision, then connections only: {events:?}");
        }
    );
}

/// An existing WAL database on a filesystem without shared memory, opened with the default
/// options, stays in WAL format with exclusive locking and allows one connection: a pool asked for
/// 8 gets 1 (and says why at INFO), serves 8 threads in turn (all 800 rows there), and while it
/// holds its connection, another connection fails at once with the typed `HeldExclusively`.
#[cfg(feature = "r2d2")]
#[test]
fn an_r2d2_pool_of_a_wal_exclusive_database_has_one_connection() {
    isolated!(
        an_r2d2_pool_of_a_wal_exclusive_database_has_one_connection,
        {
            const WORKERS: u64 = 8;
            const PER_WORKER: u64 = 100;
            let directory = tempfile::tempdir().unwrap();
            let path = directory.path().join("existing.db");
            {
                let plain = Connection::open(&path).unwrap();
                let mode: String = plain
                    .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
                    .unwrap();
                assert_eq!(mode, "wal");
                plain.execute_batch(CREATE_ITEMS).unwrap();
            }
            let _fault = SqliteFault::NoSharedMemory.install().unwrap();

            let (database, report) = SqliteOptions::new(&path).database().unwrap();
            assert_eq!(report.connection_limit, ConnectionLimit::One, "{report}");
            assert_eq!(
                report.journal_mode,
                Some(store::JournalMode::WalExclusive),
                "{report}"
            );

            let (pool, events) = logs::capture(|| store::pool::r2d2::pool(database.clone(), 8));
            let pool = pool.unwrap();
            assert_eq!(pool.max_size(), 1);
            let infos: Vec<_> = logs::at_level(&events, Level::INFO)
                .into_iter()
                .filter(|event| event.target == "store::pool")
                .collect();
            assert_eq!(infos.len(), 1, "{events:?}");
            assert!(infos[0].text.contains("gets 1"), "{infos:?}");
            assert!(infos[0].text.contains("exclusive locking"), "{infos:?}");

            std::thread::scope(|scope| {
                for worker in 0..WORKERS {
                    let pool = &pool;
                    scope.spawn(move || {
                        let connection = pool.get().unwrap();
                        insert_rows(&connection, worker, PER_WORKER, 1).unwrap();
                    });
                }
            });

            let held = pool.get().unwrap();
            assert_eq!(ids(&held, &path), all_ids(WORKERS, PER_WORKER));
            match database.connect() {
                Err(ConnectError::HeldExclusively(held)) => {
                    assert!(held.holder.this_process, "{held}")
                }
                Err(other) => panic!("expected HeldExclusively, got {other}"),
                Ok(_) => panic!("a second connection to a one-connection database"),
            }
            drop(held);
        }
    );
}

/// A deadpool pool serves tokio tasks: a pool of 4 on a local database, 8 tasks x 200 inserts,
/// each through a connection taken from the pool (and recycled, which runs the check), and every
/// row is there; the pool never made more than 4 connections.
#[cfg(feature = "deadpool")]
#[test]
fn a_deadpool_pool_serves_tokio_tasks() -> Result<(), Box<dyn std::error::Error>> {
    crate::multi_thread_runtime(2).block_on(async {
        const TASKS: u64 = 8;
        const PER_TASK: u64 = 200;
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("tasks.db");
        let (database, _) = SqliteOptions::new(&path).database()?;
        let pool = store::pool::deadpool::pool(database, 4)?;
        assert_eq!(pool.status().max_size, 4);
        pool.get()
            .await?
            .call(|c| c.execute_batch(CREATE_ITEMS))
            .await?;

        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    for n in 1..=PER_TASK {
                        let id = i64::try_from(task * PER_TASK + n).expect("a small id");
                        let connection = pool.get().await.expect("a pooled connection");
                        connection
                            .call(move |c| {
                                c.execute(
                                    "INSERT INTO items (id, payload) VALUES (?1, ?2)",
                                    (id, format!("task {task} row {n}")),
                                )
                            })
                            .await
                            .expect("an insert");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await?;
        }
        assert!(pool.status().size <= 4, "{:?}", pool.status());
        let path_for_read = path.clone();
        let written = pool
            .get()
            .await?
            .call(move |c| sqlite_ids(c, &path_for_read))
            .await?;
        assert_eq!(written, all_ids(TASKS, PER_TASK));
        Ok(())
    })
}

/// An r2d2 pool serves threads on a healthy local database (a pool of 4, 8 threads, every row
/// there), and checks connections before lending them (`test_on_check_out`, the default): once
/// every pooled connection was given back inside a transaction its user left open (holding the
/// write lock), the next checkout gets a fresh connection outside any transaction, and a write
/// through it does not wait on those locks.
#[cfg(feature = "r2d2")]
#[test]
fn an_r2d2_pool_serves_threads_and_checks_connections_before_lending_them() {
    const WORKERS: u64 = 8;
    const PER_WORKER: u64 = 100;
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("threads.db");
    let (database, _) = SqliteOptions::new(&path).database().unwrap();
    let pool = store::pool::r2d2::pool(database, 4).unwrap();
    assert_eq!(pool.max_size(), 4);
    assert!(pool.test_on_check_out());
    pool.get().unwrap().execute_batch(CREATE_ITEMS).unwrap();

    std::thread::scope(|scope| {
        for worker in 0..WORKERS {
            let pool = &pool;
            scope.spawn(move || {
                let connection = pool.get().unwrap();
                insert_rows(&connection, worker, PER_WORKER, 1).unwrap();
            });
        }
    });
    assert_eq!(
        ids(&pool.get().unwrap(), &path),
        all_ids(WORKERS, PER_WORKER)
    );

    let left_open: Vec<_> = (0..4).map(|_| pool.get().unwrap()).collect();
    left_open[0]
        .execute_batch(
            "BEGIN IMMEDIATE; INSERT INTO items (id, payload) VALUES (0, 'never committed')",
        )
        .unwrap();
    for connection in &left_open[1..] {
        connection.execute_batch("BEGIN").unwrap();
    }
    drop(left_open);
    let lent = pool.get().unwrap();
    assert!(
        lent.is_autocommit(),
        "a connection left in a transaction was lent"
    );
    lent.execute("INSERT INTO items (id, payload) VALUES (-1, 'after')", [])
        .unwrap();
    let rows: i64 = lent
        .query_row("SELECT count(*) FROM items", [], |row| row.get(0))
        .unwrap();
    assert_eq!(
        rows.unsigned_abs(),
        WORKERS * PER_WORKER + 1,
        "the uncommitted row is gone"
    );
}

/// DuckDB pools share the one instance of the file in this process: an r2d2 pool of 4 and a
/// deadpool pool of 4 over one `DuckDbDatabase`, 8 threads and 8 tasks inserting, every row of
/// both there through either pool, and the instance closes (the file is no longer open in the
/// process) only once the handle and both pools are gone.
#[cfg(all(feature = "r2d2", feature = "deadpool", feature = "duckdb"))]
#[test]
fn duckdb_pools_share_the_one_instance() -> Result<(), Box<dyn std::error::Error>> {
    crate::multi_thread_runtime(2).block_on(async {
        use store::duckdb::DuckDbOptions;
        use store_testkit::fixtures::duckdb_ids;

        const WORKERS: u64 = 8;
        const PER_WORKER: u64 = 50;
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("pooled.duckdb");
        let (database, report) = DuckDbOptions::new(&path).database()?;
        assert_eq!(
            store::Database::connection_limit(&database),
            ConnectionLimit::Many
        );
        assert!(!report.reused_decision, "{report}");
        database.connect()?.execute_batch(CREATE_ITEMS)?;

        let threads_pool = store::pool::r2d2::pool(database.clone(), 4)?;
        let writers: Vec<_> = (0..WORKERS)
            .map(|worker| {
                let pool = threads_pool.clone();
                std::thread::spawn(move || {
                    let connection = pool.get().expect("a pooled connection");
                    for n in 1..=PER_WORKER {
                        let id = i64::try_from(worker * PER_WORKER + n).expect("a small id");
                        connection
                            .execute(
                                "INSERT INTO items (id, payload) VALUES (?1, ?2)",
                                store::duckdb::duckdb::params![
                                    id,
                                    format!("thread {worker} row {n}")
                                ],
                            )
                            .expect("an insert");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("writer thread");
        }

        let tasks_pool = store::pool::deadpool::pool(database.clone(), 4)?;
        let offset = WORKERS * PER_WORKER;
        let tasks: Vec<_> = (0..WORKERS)
            .map(|task| {
                let pool = tasks_pool.clone();
                tokio::spawn(async move {
                    let connection = pool.get().await.expect("a pooled connection");
                    connection
                        .call(move |c| {
                            for n in 1..=PER_WORKER {
                                let id = i64::try_from(offset + task * PER_WORKER + n)
                                    .expect("a small id");
                                c.execute(
                                    "INSERT INTO items (id, payload) VALUES (?1, ?2)",
                                    store::duckdb::duckdb::params![
                                        id,
                                        format!("task {task} row {n}")
                                    ],
                                )?;
                            }
                            Ok::<_, store::duckdb::duckdb::Error>(())
                        })
                        .await
                        .expect("inserts");
                })
            })
            .collect();
        for task in tasks {
            task.await?;
        }

        let expected = all_ids(2 * WORKERS, PER_WORKER);
        let pooled = threads_pool.get()?;
        let through_threads = duckdb_ids(&pooled, &path)?;
        drop(pooled);
        assert_eq!(through_threads, expected);
        let path_for_read = path.clone();
        let through_tasks = tasks_pool
            .get()
            .await?
            .call(move |c| duckdb_ids(c, &path_for_read))
            .await?;
        assert_eq!(through_tasks, expected);

        assert!(store::duckdb::is_open(&path));
        // A pooled AsyncConnection closes on its own thread after it drops; closing each one and
        // waiting makes the instance's end observable here.
        for connection in tasks_pool.retain(|_, _| false).removed {
            connection.close().await?;
        }
        drop((threads_pool, tasks_pool));
        assert!(
            store::duckdb::is_open(&path),
            "the handle keeps the instance"
        );
        drop(database);
        assert!(
            !store::duckdb::is_open(&path),
            "the last user closed the instance"
        );
        let reopened = duckdb::Connection::open(&path)?;
        assert_eq!(duckdb_ids(&reopened, &path)?, expected);
        Ok(())
    })
}
