//! Connections made from a decided database and pool checkouts, each against the same done by
//! hand: what deciding once saves every later connection, and what store's pool adds to r2d2.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use store_core::JournalMode;
use store_sqlite::SqliteOptions;

use super::Selection;
use super::commit_rates::COMMIT_WINDOW;
use super::figure::{Figure, Section, Spec, Target, Unit};
use super::samples::{Runs, mean_milliseconds, paired};
use super::sqlite_opens::OPENS_PER_RUN;
use super::support::{BenchResult, raw_sqlite_open, scratch};

/// Pool size of the pool figures, and threads of the write figure.
pub(super) const POOL_SIZE: u32 = 4;
pub(super) const WRITER_THREADS: i64 = 8;
/// Checkouts per run of the checkout figure (a run's value is their mean).
pub(super) const CHECKOUTS_PER_RUN: usize = 200_000;
/// Runs a side of the cheap figures.
pub(super) const RUNS: Runs = Runs::Settling { min: 7, max: 15 };
/// Runs a side of the write figure: each is a commit window.
const WRITE_RUNS: Runs = Runs::Fixed(7);

pub(super) const CONNECT: Spec = Spec {
    name: "sqlite connect() after the decision (WAL)",
    section: Section::Connections,
    unit: Unit::Milliseconds,
    target: Target::AtMost(1.05),
    reason: "The README's promise: connect() on a decided database makes a connection at the \
             cost of a plain rusqlite open with the same pragmas (the journal mode read back, \
             never switched, nothing decided again). Within 5% of doing it by hand.",
    baseline_name: "rusqlite open + same pragmas",
    baseline_does: "rusqlite::Connection::open of the same WAL database, busy_timeout, \
                    journal_mode=WAL, synchronous=FULL, a read of sqlite_schema, close; 40 a run",
};

pub(super) const CHECKOUT: Spec = Spec {
    name: "r2d2 checkout, pool of 4 (WAL)",
    section: Section::Connections,
    unit: Unit::Microseconds,
    target: Target::AtMost(1.05),
    reason: "store's pool is r2d2 with store's manager; a checkout runs the manager's check \
             (Database::check) where r2d2_sqlite runs an empty batch. A checkout is a few hundred \
             nanoseconds: 5% is the most a check may add before it shows in a busy server.",
    baseline_name: "r2d2 over a plain rusqlite manager",
    baseline_does: "r2d2::Pool of 4 over a manager that opens rusqlite with the same pragmas \
                    and checks a connection with an empty batch (as r2d2_sqlite does); \
                    200,000 checkouts and returns a run",
};

pub(super) const POOLED_WRITES: Spec = Spec {
    name: "8 threads writing through a pool of 4 (WAL, synchronous=full)",
    section: Section::Connections,
    unit: Unit::CommitsPerSecond,
    target: Target::AtLeast(0.95),
    reason: "Every commit waits for an fsync, milliseconds against the microseconds a checkout \
             adds: store's pool must keep 95% of the plain pool's commit rate, the rest being \
             the disk's spread.",
    baseline_name: "the same through the plain pool",
    baseline_does: "8 threads each checking out a connection of the plain r2d2 pool above per \
                    single-row INSERT (autocommit, WAL, synchronous=FULL) for 1.5 s; every commit \
                    counted back from the table",
};

pub(super) const SPECS: &[&Spec] = &[&CONNECT, &CHECKOUT, &POOLED_WRITES];

pub(super) fn measure(selection: &Selection) -> BenchResult<Vec<Figure>> {
    let directory = scratch()?;
    let path = directory.path().join("pooled.db");
    let (database, report) = SqliteOptions::new(&path).database()?;
    assert_eq!(report.journal_mode, Some(JournalMode::Wal), "{report}");
    database.connect()?.execute_batch(
        "CREATE TABLE rows (id INTEGER PRIMARY KEY, writer INTEGER NOT NULL, payload TEXT NOT NULL)",
    )?;
    let mut figures = Vec::new();
    if selection.wants(&CONNECT) {
        let (store, raw) = paired(
            RUNS,
            |_| {
                mean_milliseconds(OPENS_PER_RUN, |_| {
                    drop(database.connect()?);
                    Ok(())
                })
            },
            |_| {
                mean_milliseconds(OPENS_PER_RUN, |_| {
                    drop(raw_sqlite_open(&path, "wal", "full")?);
                    Ok(())
                })
            },
        )?;
        figures.push(Figure::measured(&CONNECT, store, raw));
    }

    let store_pool = store::pool::r2d2::pool(database.clone(), POOL_SIZE)?;
    let raw_pool = r2d2::Pool::builder()
        .max_size(POOL_SIZE)
        .build(RawManager { path: path.clone() })?;
    if selection.wants(&CHECKOUT) {
        let checkouts = |pool: &dyn Fn() -> BenchResult<()>| -> BenchResult<f64> {
            let milliseconds = mean_milliseconds(CHECKOUTS_PER_RUN, |_| pool())?;
            Ok(milliseconds * 1000.0)
        };
        let (store, raw) = paired(
            RUNS,
            |_| {
                checkouts(&|| {
                    drop(store_pool.get()?);
                    Ok(())
                })
            },
            |_| {
                checkouts(&|| {
                    drop(raw_pool.get()?);
                    Ok(())
                })
            },
        )?;
        figures.push(Figure::measured(&CHECKOUT, store, raw));
    }
    if selection.wants(&POOLED_WRITES) {
        let (store, raw) = paired(
            WRITE_RUNS,
            |_| pooled_write_rate(&store_pool),
            |_| pooled_write_rate(&raw_pool),
        )?;
        figures.push(Figure::measured(&POOLED_WRITES, store, raw));
    }
    Ok(figures)
}

/// A pool manager as an application writes one over plain rusqlite (the pragmas by hand, and the
/// validity check `r2d2_sqlite` makes): the baseline of store's pools.
#[derive(Debug)]
struct RawManager {
    path: PathBuf,
}

impl r2d2::ManageConnection for RawManager {
    type Connection = rusqlite::Connection;
    type Error = rusqlite::Error;

    fn connect(&self) -> Result<rusqlite::Connection, rusqlite::Error> {
        let connection = rusqlite::Connection::open(&self.path)?;
        connection.busy_timeout(Duration::from_secs(5))?;
        connection.pragma_update(None, "journal_mode", "wal")?;
        connection.pragma_update(None, "synchronous", "full")?;
        Ok(connection)
    }

    fn is_valid(&self, connection: &mut rusqlite::Connection) -> Result<(), rusqlite::Error> {
        connection.execute_batch("")
    }

    fn has_broken(&self, _: &mut rusqlite::Connection) -> bool {
        false
    }
}

/// Commits per second of [`WRITER_THREADS`] threads, each checking out a connection per commit
/// for [`COMMIT_WINDOW`]; every commit is counted back from the table.
fn pooled_write_rate<M>(pool: &r2d2::Pool<M>) -> BenchResult<f64>
where
    M: r2d2::ManageConnection<Connection = rusqlite::Connection>,
{
    let before: i64 = pool
        .get()?
        .query_row("SELECT count(*) FROM rows", [], |row| row.get(0))?;
    let started = Instant::now();
    let commits = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITER_THREADS)
            .map(|writer| {
                scope.spawn(move || -> Result<u64, String> {
                    let mut commits = 0;
                    while started.elapsed() < COMMIT_WINDOW {
                        let connection = pool.get().map_err(|error| error.to_string())?;
                        connection
                            .execute(
                                "INSERT INTO rows (writer, payload) VALUES (?1, 'forty bytes of payload, more or less...')",
                                [writer],
                            )
                            .map_err(|error| error.to_string())?;
                        commits += 1;
                    }
                    Ok(commits)
                })
            })
            .collect();
        writers
            .into_iter()
            .map(|writer| writer.join().expect("writer thread"))
            .sum::<Result<u64, String>>()
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let after: i64 = pool
        .get()?
        .query_row("SELECT count(*) FROM rows", [], |row| row.get(0))?;
    assert_eq!(
        (after - before).unsigned_abs(),
        commits,
        "every pooled commit is readable"
    );
    Ok(commits as f64 / elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_say_the_constants() {
        assert!(CHECKOUT.name.contains(&format!("pool of {POOL_SIZE}")));
        assert!(
            POOLED_WRITES
                .name
                .contains(&format!("{WRITER_THREADS} threads"))
        );
        assert!(POOLED_WRITES.name.contains(&format!("pool of {POOL_SIZE}")));
        assert!(CHECKOUT.baseline_does.contains("200,000"));
        assert_eq!(CHECKOUTS_PER_RUN, 200_000);
    }
}
