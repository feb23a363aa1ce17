//! Each DuckDB recovery step alone, on copies of one damaged database, against an open of the
//! same database undamaged; and what reading a WAL before its replay costs against the replay.

use std::path::Path;

use store_core::files::sibling;
use store_core::{RecoveryLadder, RecoveryStep};
use store_duckdb::DuckDbOptions;
use store_testkit::faults::duckdb::{append_garbage_to_wal, write_uncheckpointed_rows};

use super::Selection;
use super::figure::{Figure, Section, Spec, Target, Unit};
use super::samples::{Runs, mean_milliseconds, paired};
use super::support::{BenchResult, copy_database, duckdb_database, schema, scratch};

/// A recovery's runs spread widely (moves, fsyncs, a replay): until the ratio settles.
pub(super) const RUNS: Runs = Runs::Settling { min: 7, max: 21 };

const UNDAMAGED_OPEN: &str = "duckdb open of the undamaged file";
const UNDAMAGED_DOES: &str = "duckdb::Connection::open of the same database before the damage \
                              (version 2, 50,000 rows, checkpointed, no WAL), SELECT count(*) \
                              FROM events, close";

pub(super) const SALVAGE: Spec = Spec {
    name: "duckdb recovery: salvage-wal (damaged WAL)",
    section: Section::Recovery,
    unit: Unit::Milliseconds,
    target: Target::AtMost(3.0),
    reason: "Issue 17's bound. A salvage sets the WAL aside (a hard link, fsyncs), writes its \
             whole-commit prefix in its place, replays it once (the WAL's framing is read, not \
             bisected) and checkpoints: three opens' worth at most.",
    baseline_name: UNDAMAGED_OPEN,
    baseline_does: UNDAMAGED_DOES,
};

pub(super) const DISCARD: Spec = Spec {
    name: "duckdb recovery: discard-wal (damaged WAL)",
    section: Section::Recovery,
    unit: Unit::Milliseconds,
    target: Target::AtMost(1.5),
    reason: "Issue 17's bound. A discard moves the WAL aside (link, fsyncs, the recovery \
             record) and opens the file as checkpointed: half an open more at most.",
    baseline_name: UNDAMAGED_OPEN,
    baseline_does: UNDAMAGED_DOES,
};

pub(super) const RESTORE: Spec = Spec {
    name: "duckdb recovery: restore-snapshot (damaged WAL)",
    section: Section::Recovery,
    unit: Unit::Milliseconds,
    target: Target::AtMost(2.0),
    reason: "Issue 17's bound. A restore checks the snapshot, sets the file and its WAL aside, \
             copies the snapshot in durably and opens it, then migrates it again: twice an \
             open at most.",
    baseline_name: UNDAMAGED_OPEN,
    baseline_does: UNDAMAGED_DOES,
};

pub(super) const WAL_READ: Spec = Spec {
    name: "duckdb WAL read before replay (2,000 commits)",
    section: Section::Recovery,
    unit: Unit::Milliseconds,
    target: Target::AtMost(0.05),
    reason: "Every open that finds a WAL reads its framing before DuckDB replays it, to catch \
             a torn tail DuckDB would drop without a word. It must stay a small part (5%) of \
             the replay it precedes.",
    baseline_name: "duckdb open replaying that WAL",
    baseline_does: "duckdb::Connection::open of a fresh copy of a database whose WAL holds \
                    2,000 single-row commits (the replay), close; store's side reads the same \
                    WAL file and its framing (store_duckdb::wal::WalReading::read)",
};

pub(super) const SPECS: &[&Spec] = &[&SALVAGE, &DISCARD, &RESTORE, &WAL_READ];

/// Each recovery step alone, on copies of one damaged database: version 2 with a pre-migration
/// snapshot at version 1, rows in the WAL, and bytes after them that cannot be replayed. The
/// baseline is a raw open of the same database undamaged and checkpointed.
pub(super) fn measure(selection: &Selection) -> BenchResult<Vec<Figure>> {
    let directory = scratch()?;
    let mut figures = Vec::new();
    let steps = [
        (RecoveryStep::SalvageWal, &SALVAGE),
        (RecoveryStep::DiscardWal, &DISCARD),
        (RecoveryStep::RestoreSnapshot, &RESTORE),
    ];
    if steps.iter().any(|(_, spec)| selection.wants(spec)) {
        let damaged = directory.path().join("damaged.duckdb");
        duckdb_database(&damaged, 1, 50_000)?;
        drop(DuckDbOptions::new(&damaged).migrations(schema(2)).open()?);
        let healthy = directory.path().join("healthy.duckdb");
        copy_database(&damaged, &healthy)?;
        write_uncheckpointed_rows(&damaged, 0, 50)?;
        append_garbage_to_wal(&damaged)?;
        // The schema version store tagged its snapshot with (a copy drops the tag: it is an
        // extended attribute, bound to the file's size and modification time).
        let snapshot_version =
            store_core::schema_tag::read(&sibling(&damaged, store_duckdb::SNAPSHOT_SUFFIX));
        for (step, spec) in steps {
            if !selection.wants(spec) {
                continue;
            }
            let (store, baseline) = paired(
                RUNS,
                |run| {
                    let copy = directory.path().join(format!("{step}-{run}.duckdb"));
                    copy_database(&damaged, &copy)?;
                    // The copy's snapshot as store left it, tagged where the original was: a
                    // restore then checks its version without an instance, as it would in place.
                    if let Some(version) = snapshot_version {
                        store_core::schema_tag::tag(
                            &sibling(&copy, store_duckdb::SNAPSHOT_SUFFIX),
                            version,
                        );
                    }
                    mean_milliseconds(1, |_| {
                        let (connection, report) = DuckDbOptions::new(&copy)
                            .migrations(schema(2))
                            .recovery_policy(RecoveryLadder::new("bench", vec![step]))
                            .open()?;
                        let recovery = report.recovery.as_ref().expect("a recovery");
                        assert_eq!(recovery.step, step, "{report}");
                        drop(connection);
                        Ok(())
                    })
                },
                |_| {
                    mean_milliseconds(1, |_| {
                        let connection = duckdb::Connection::open(&healthy)?;
                        let _: i64 =
                            connection
                                .query_row("SELECT count(*) FROM events", [], |row| row.get(0))?;
                        drop(connection);
                        Ok(())
                    })
                },
            )?;
            figures.push(Figure::measured(spec, store, baseline));
        }
    }
    if selection.wants(&WAL_READ) {
        figures.push(wal_read_figure(directory.path())?);
    }
    Ok(figures)
}

/// What reading a WAL before its replay costs (the torn-tail check every open with a WAL pays),
/// against the replay itself: a WAL of 2,000 single-row commits.
fn wal_read_figure(directory: &Path) -> BenchResult<Figure> {
    let database = directory.join("replayed.duckdb");
    write_uncheckpointed_rows(&database, 0, 2_000)?;
    let wal = sibling(&database, ".wal");
    let (read, replay) = paired(
        Runs::Fixed(7),
        |_| {
            mean_milliseconds(1, |_| {
                let bytes = std::fs::read(&wal)?;
                let reading = store_duckdb::wal::WalReading::read(&bytes)?;
                assert_eq!(reading.tail, store_duckdb::wal::WalTail::Clean);
                Ok(())
            })
        },
        |run| {
            let copy = directory.join(format!("replay-{run}.duckdb"));
            copy_database(&database, &copy)?;
            mean_milliseconds(1, |_| {
                drop(duckdb::Connection::open(&copy)?);
                Ok(())
            })
        },
    )?;
    Ok(Figure::measured(&WAL_READ, read, replay))
}
