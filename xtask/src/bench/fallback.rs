//! The fallback path under the no-shared-memory fault (WAL fails, DELETE): opens repeated in one
//! process, where the directory's WAL verdict is remembered and WAL is not tried again, and the
//! first open of a fresh process, which pays the failed WAL attempt. Each in child processes, so
//! that the process-global fault touches nothing else.

use store_core::JournalMode;
use store_sqlite::SqliteOptions;
use store_testkit::faults::sqlite::SqliteFault;

use super::Selection;
use super::child::{BenchChild, FirstOpen};
use super::figure::{Figure, Section, Spec, Target, Unit};
use super::samples::{Runs, Samples, mean_milliseconds, paired};
use super::sqlite_opens::{OPENS_PER_RUN, first_opens};
use super::support::{BenchResult, child_output, raw_sqlite_open, scratch};

/// Runs a side of the repeated figure, in its child.
const RUNS: Runs = Runs::Settling { min: 7, max: 15 };

pub(super) const REPEATED: Spec = Spec {
    name: "sqlite open under no-shm, existing file (WAL fails -> DELETE), repeated in one process",
    section: Section::Fallback,
    unit: Unit::Milliseconds,
    target: Target::AtMost(1.5),
    reason: "Issue 17's bound. The process remembers that WAL failed in the directory and goes \
             straight to DELETE; what is left is the fallback's bookkeeping (the verdict looked \
             up, the fallback reported and warned once), at most half a DELETE open again.",
    baseline_name: "rusqlite DELETE-mode open",
    baseline_does: "under the same fault, rusqlite::Connection::open of the same DELETE-mode \
                    database, busy_timeout, journal_mode=DELETE, synchronous=EXTRA, a read of \
                    sqlite_schema, close; 40 opens a run in the same child process",
};

pub(super) const FIRST: Spec = Spec {
    name: "sqlite open under no-shm, existing file (WAL fails -> DELETE), first in a fresh process",
    section: Section::Fallback,
    unit: Unit::Milliseconds,
    target: Target::AtMost(2.0),
    reason: "Issue 17's bound. The first fallback open of a process asks SQLite's VFS to map \
             a WAL index beside a scratch file in the directory (the syscalls WAL's shared \
             memory makes: create, lock, grow, mmap, remove), finds it fails and opens in \
             DELETE mode, the file untouched (before: journal_mode=WAL flipped the header and \
             the fallback flipped it back, 9 fsyncs). At most twice a DELETE open.",
    baseline_name: "rusqlite DELETE-mode open, fresh process",
    baseline_does: "in a fresh process under the same fault, the raw DELETE-mode open above, \
                    once; only the open and close are timed; 15 processes a side, alternating \
                    with store's",
};

pub(super) const SPECS: &[&Spec] = &[&REPEATED, &FIRST];

/// Store's samples and the baseline's, as the repeated child prints them.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct PairJson {
    store: Vec<f64>,
    baseline: Vec<f64>,
}

pub(super) fn measure(selection: &Selection) -> BenchResult<Vec<Figure>> {
    let mut figures = Vec::new();
    if selection.wants(&REPEATED) {
        let pair: PairJson = child_output(&BenchChild::FallbackOpen)?;
        figures.push(Figure::measured(
            &REPEATED,
            Samples(pair.store),
            Samples(pair.baseline),
        ));
    }
    if selection.wants(&FIRST) {
        let directory = scratch()?;
        // A DELETE-mode database, as a store open under the fault leaves it.
        let existing = directory.path().join("existing.db");
        let connection = rusqlite::Connection::open(&existing)?;
        connection.pragma_update(None, "journal_mode", "delete")?;
        connection.execute_batch("CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT)")?;
        drop(connection);
        let (store, raw) = first_opens(FirstOpen::Fallback, &existing)?;
        figures.push(Figure::measured(&FIRST, store, raw));
    }
    Ok(figures)
}

/// In the child: the repeated opens, store's and the baseline's, under the fault.
pub(super) fn repeated_in_child() -> BenchResult<PairJson> {
    let _fault = SqliteFault::NoSharedMemory.install()?;
    let directory = scratch()?;
    let existing = directory.path().join("existing.db");
    let (connection, report) = SqliteOptions::new(&existing).open()?;
    assert_eq!(report.journal_mode, Some(JournalMode::Delete), "{report}");
    drop(connection);
    let (store, baseline) = paired(
        RUNS,
        |_| {
            mean_milliseconds(OPENS_PER_RUN, |_| {
                let (connection, report) = SqliteOptions::new(&existing).open()?;
                assert!(report.fell_back(), "{report}");
                drop(connection);
                Ok(())
            })
        },
        |_| {
            mean_milliseconds(OPENS_PER_RUN, |_| {
                drop(raw_sqlite_open(&existing, "delete", "extra")?);
                Ok(())
            })
        },
    )?;
    Ok(PairJson {
        store: store.0,
        baseline: baseline.0,
    })
}
