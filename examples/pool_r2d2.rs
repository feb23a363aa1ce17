//! An r2d2 pool over a decided SQLite database: the open decides once (journal mode, locking,
//! migrations) and reports it; then 8 threads write through a pool that makes connections
//! without deciding again.
//!
//! ```text
//! cargo run --example pool_r2d2 --features r2d2
//! ```

use store::sqlite::SqliteOptions;

const WORKERS: i64 = 8;
const ROWS_PER_WORKER: i64 = 250;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let directory = tempfile::tempdir()?;
    let (database, report) = SqliteOptions::new(directory.path().join("events.db")).database()?;
    println!("{report}");

    // Asked for 4; a database that allows one connection would get a pool of one.
    let pool = store::pool::r2d2::pool(database, 4)?;
    println!("a pool of {} connections", pool.max_size());
    pool.get()?
        .execute_batch("CREATE TABLE events (worker INTEGER NOT NULL, n INTEGER NOT NULL)")?;

    std::thread::scope(|scope| -> Result<(), Error> {
        let workers: Vec<_> = (0..WORKERS)
            .map(|worker| {
                let pool = &pool;
                scope.spawn(move || -> Result<(), Error> {
                    let connection = pool.get()?;
                    for n in 0..ROWS_PER_WORKER {
                        connection.execute("INSERT INTO events VALUES (?1, ?2)", [worker, n])?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("a worker panicked")?;
        }
        Ok(())
    })?;

    let rows: i64 = pool
        .get()?
        .query_row("SELECT count(*) FROM events", [], |row| row.get(0))?;
    println!("{rows} rows written by {WORKERS} threads");
    assert_eq!(rows, WORKERS * ROWS_PER_WORKER);
    Ok(())
}
