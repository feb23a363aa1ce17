//! A deadpool pool over a decided SQLite database, for tokio: the open decides once (journal
//! mode, locking, migrations) and reports it; then 8 tasks write through a pool of connections
//! that each live on a thread of their own, made without deciding again.
//!
//! ```text
//! cargo run --example pool_deadpool --features deadpool
//! ```

use store::sqlite::SqliteOptions;

const WORKERS: i64 = 8;
const ROWS_PER_WORKER: i64 = 250;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    tokio::runtime::Runtime::new()?.block_on(run())
}

async fn run() -> Result<(), Error> {
    let directory = tempfile::tempdir()?;
    let (database, report) = SqliteOptions::new(directory.path().join("events.db")).database()?;
    println!("{report}");

    // Asked for 4; a database that allows one connection would get a pool of one.
    let pool = store::pool::deadpool::pool(database, 4)?;
    println!("a pool of {} connections", pool.status().max_size);
    pool.get()
        .await?
        .call(|c| {
            c.execute_batch("CREATE TABLE events (worker INTEGER NOT NULL, n INTEGER NOT NULL)")
        })
        .await?;

    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let pool = pool.clone();
            tokio::spawn(async move {
                for n in 0..ROWS_PER_WORKER {
                    // A connection per insert: taking one from the pool costs a check, not a
                    // connect.
                    let connection = pool.get().await?;
                    connection
                        .call(move |c| c.execute("INSERT INTO events VALUES (?1, ?2)", [worker, n]))
                        .await?;
                }
                Ok::<(), Error>(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }

    let rows: i64 = pool
        .get()
        .await?
        .call(|c| c.query_row("SELECT count(*) FROM events", [], |row| row.get(0)))
        .await?;
    println!("{rows} rows written by {WORKERS} tasks");
    assert_eq!(rows, WORKERS * ROWS_PER_WORKER);
    Ok(())
}
