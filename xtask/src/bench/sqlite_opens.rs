//! SQLite opens on a healthy filesystem: of a new file, of an existing file repeated in one
//! process (where per-process caches hit: the filesystem detected per mount), and of an existing
//! file first in a fresh process (where nothing is cached), each against rusqlite doing by hand
//! what store sets.

use std::path::Path;
use std::time::Instant;

use store_core::JournalMode;
use store_sqlite::SqliteOptions;
use store_testkit::faults::sqlite::SqliteFault;

use super::Selection;
use super::child::{BenchChild, BenchSide, FirstOpen};
use super::figure::{Figure, Section, Spec, Target, Unit};
use super::samples::{Runs, mean_milliseconds, paired};
use super::support::{BenchResult, child_output, raw_sqlite_open, scratch};

/// Opens per run of a repeated-open figure (a run's value is their mean).
pub(super) const OPENS_PER_RUN: usize = 40;
/// Fresh processes a side of a first-open figure: one open each.
pub(super) const FIRST_OPEN_PROCESSES: usize = 15;
/// Runs a side of the repeated-open figures.
pub(super) const RUNS: Runs = Runs::Settling { min: 7, max: 15 };

const RAW_WAL_OPEN: &str = "rusqlite open + same pragmas";

pub(super) const NEW_FILE: Spec = Spec {
    name: "sqlite open, new file (WAL)",
    section: Section::SqliteOpens,
    unit: Unit::Milliseconds,
    target: Target::AtMost(1.5),
    reason: "Issue 17's bound. store creates a new database atomically, in the format of the \
             rung it will land on: written under a temporary name with no journal, switched to \
             WAL there and fsynced once (1), renamed into place with the directory fsynced (1); \
             the open at its name then switches nothing. 2 fsyncs against the baseline's 4 \
             (strace -f -e trace=fsync,fdatasync). The bound is the price atomic creation may \
             cost at most: half the baseline again.",
    baseline_name: RAW_WAL_OPEN,
    baseline_does: "rusqlite::Connection::open of a path that does not exist, busy_timeout, \
                    journal_mode=WAL, synchronous=FULL, a read of sqlite_schema, close; 40 new \
                    files a run",
};

pub(super) const EXISTING_REPEATED: Spec = Spec {
    name: "sqlite open, existing file (WAL), repeated in one process",
    section: Section::SqliteOpens,
    unit: Unit::Milliseconds,
    target: Target::AtMost(1.05),
    reason: "Issue 17's bound: the open an application makes most. Past the baseline's work \
             store stats the path once (the path check, the decision's key and the mount \
             detection is remembered by), reads the header through a kept descriptor, stats \
             the three sidecars (a symbolic link is refused), reads `synchronous` back and \
             registers the decision; it sets no journal mode the file's format already gives. \
             5% is all that may cost.",
    baseline_name: RAW_WAL_OPEN,
    baseline_does: "rusqlite::Connection::open of the same existing WAL database, busy_timeout, \
                    journal_mode=WAL, synchronous=FULL, a read of sqlite_schema, close; 40 opens \
                    a run in this process",
};

pub(super) const EXISTING_FIRST: Spec = Spec {
    name: "sqlite open, existing file (WAL), first in a fresh process",
    section: Section::SqliteOpens,
    unit: Unit::Milliseconds,
    target: Target::AtMost(1.05),
    reason: "The same bound as the repeated open: a process that opens its database once (a CLI, \
             a short job) pays the first open only, with nothing cached (the filesystem detected \
             by statmount(2), one syscall, where the kernel has it), and must not pay more for it.",
    baseline_name: "rusqlite open + same pragmas, fresh process",
    baseline_does: "in a fresh process, the same raw open of the same existing WAL database, \
                    once; only the open and close are timed, not the process's start; 15 \
                    processes a side, alternating with store's",
};

pub(super) const SPECS: &[&Spec] = &[&NEW_FILE, &EXISTING_REPEATED, &EXISTING_FIRST];

pub(super) fn measure(selection: &Selection) -> BenchResult<Vec<Figure>> {
    let directory = scratch()?;
    let mut figures = Vec::new();
    if selection.wants(&NEW_FILE) {
        let fresh = |side: &str, run: usize, index: usize| {
            directory.path().join(format!("{side}-{run}-{index}.db"))
        };
        let (store, raw) = paired(
            RUNS,
            |run| {
                mean_milliseconds(OPENS_PER_RUN, |index| {
                    let (connection, report) =
                        SqliteOptions::new(fresh("store", run, index)).open()?;
                    assert!(report.created, "{report}");
                    assert_eq!(report.journal_mode, Some(JournalMode::Wal), "{report}");
                    drop(connection);
                    Ok(())
                })
            },
            |run| {
                mean_milliseconds(OPENS_PER_RUN, |index| {
                    drop(raw_sqlite_open(&fresh("raw", run, index), "wal", "full")?);
                    Ok(())
                })
            },
        )?;
        figures.push(Figure::measured(&NEW_FILE, store, raw));
    }
    let existing = directory.path().join("existing.db");
    drop(SqliteOptions::new(&existing).open()?);
    if selection.wants(&EXISTING_REPEATED) {
        let (store, raw) = paired(
            RUNS,
            |_| {
                mean_milliseconds(OPENS_PER_RUN, |_| {
                    let (connection, report) = SqliteOptions::new(&existing).open()?;
                    assert!(!report.created, "{report}");
                    drop(connection);
                    Ok(())
                })
            },
            |_| {
                mean_milliseconds(OPENS_PER_RUN, |_| {
                    drop(raw_sqlite_open(&existing, "wal", "full")?);
                    Ok(())
                })
            },
        )?;
        figures.push(Figure::measured(&EXISTING_REPEATED, store, raw));
    }
    if selection.wants(&EXISTING_FIRST) {
        let (store, raw) = first_opens(FirstOpen::Existing, &existing)?;
        figures.push(Figure::measured(&EXISTING_FIRST, store, raw));
    }
    Ok(figures)
}

/// [`FIRST_OPEN_PROCESSES`] fresh processes a side, alternating, each timing its one open.
pub(super) fn first_opens(
    kind: FirstOpen,
    path: &Path,
) -> BenchResult<(super::samples::Samples, super::samples::Samples)> {
    let spawn = |side: BenchSide| {
        child_output::<f64>(&BenchChild::FirstOpen {
            side,
            kind,
            path: path.to_owned(),
        })
    };
    paired(
        Runs::Fixed(FIRST_OPEN_PROCESSES),
        |_| spawn(BenchSide::Store),
        |_| spawn(BenchSide::Raw),
    )
}

/// In a fresh child: the milliseconds of this process's first open (and close) of `path`.
pub(super) fn first_open(side: BenchSide, kind: FirstOpen, path: &Path) -> BenchResult<f64> {
    let _fault = match kind {
        FirstOpen::Fallback => Some(SqliteFault::NoSharedMemory.install()?),
        FirstOpen::Existing | FirstOpen::New => None,
    };
    let (mode, synchronous) = match kind {
        FirstOpen::Existing | FirstOpen::New => ("wal", "full"),
        FirstOpen::Fallback => ("delete", "extra"),
    };
    let started = Instant::now();
    let report = match side {
        BenchSide::Store => {
            let (connection, report) = SqliteOptions::new(path).open()?;
            drop(connection);
            Some(report)
        }
        BenchSide::Raw => {
            drop(raw_sqlite_open(path, mode, synchronous)?);
            None
        }
    };
    let elapsed = started.elapsed();
    if let Some(report) = report {
        assert_eq!(report.created, kind == FirstOpen::New, "{report}");
        match kind {
            FirstOpen::Existing | FirstOpen::New => {
                assert_eq!(report.journal_mode, Some(JournalMode::Wal), "{report}");
            }
            FirstOpen::Fallback => {
                assert_eq!(report.journal_mode, Some(JournalMode::Delete), "{report}");
                // The first fallback of a process tries WAL for real; later ones skip it.
                assert!(
                    report.fell_back() && !report.fallbacks[0].cause.contains("not tried again"),
                    "{report}"
                );
            }
        }
    }
    Ok(elapsed.as_secs_f64() * 1000.0)
}
