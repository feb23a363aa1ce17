//! DuckDB opens: with nothing to migrate, and with one pending migration, whose target adds the
//! cost of the pre-migration snapshot measured alone in the same runs.

use std::path::PathBuf;

use store_core::files::{Replace, sibling, snapshot_file};
use store_duckdb::DuckDbOptions;

use super::Selection;
use super::figure::{Figure, Section, Spec, Target, Unit};
use super::samples::{Runs, alternate, mean_milliseconds, paired};
use super::support::{BenchResult, copy_database, duckdb_database, schema, scratch};

/// Opens per run of the figure without migration (a run's value is their mean).
pub(super) const OPENS_PER_RUN: usize = 5;
/// Rows in the databases opened.
const ROWS: u32 = 100_000;
const RUNS: Runs = Runs::Settling { min: 7, max: 15 };
/// The pending migration's runs spread widely (a checkpoint and a snapshot's fsyncs each): more
/// of them, until the ratio settles.
pub(super) const MIGRATION_RUNS: Runs = Runs::Settling { min: 9, max: 41 };

pub(super) const NOTHING_TO_MIGRATE: Spec = Spec {
    name: "duckdb open, nothing to migrate",
    section: Section::DuckdbOpens,
    unit: Unit::Milliseconds,
    target: Target::AtMost(1.10),
    reason: "Past DuckDB's own open store reads the WAL's framing where there is one (none \
             here), the schema version with the fsync_mode it reports in one query (the \
             baseline's one query) and registers the instance: 10% of an open that loads a \
             100,000-row database.",
    baseline_name: "duckdb open + version query",
    baseline_does: "duckdb::Connection::open of the same database (100,000 rows, checkpointed), \
                    SELECT max(version) FROM schema_version, close; 5 opens a run",
};

pub(super) const PENDING_MIGRATION: Spec = Spec {
    name: "duckdb open, one pending migration",
    section: Section::DuckdbOpens,
    unit: Unit::Milliseconds,
    target: Target::AtMostPlusSnapshot(1.10),
    reason: "Issue 17's bound: store does the baseline's work plus a pre-migration snapshot \
             (copy, fsync, rename, directory fsync), whose cost depends on the file and the \
             disk, not on store; it is measured alone in the same runs (on a copy of the same \
             file) and added. Beyond it store may cost 10%, as an open without migration.",
    baseline_name: "duckdb open + migration + checkpoint",
    baseline_does: "duckdb::Connection::open of a fresh copy of the same version-1 database \
                    (100,000 rows), BEGIN; ALTER TABLE events ADD COLUMN kind; INSERT INTO \
                    schema_version; COMMIT; CHECKPOINT; close. One open a run, runs until the \
                    ratio settles",
};

pub(super) const SPECS: &[&Spec] = &[&NOTHING_TO_MIGRATE, &PENDING_MIGRATION];

pub(super) fn measure(selection: &Selection) -> BenchResult<Vec<Figure>> {
    let directory = scratch()?;
    let mut figures = Vec::new();
    if selection.wants(&NOTHING_TO_MIGRATE) {
        let current = directory.path().join("current.duckdb");
        duckdb_database(&current, 2, ROWS)?;
        let (store, raw) = paired(
            RUNS,
            |_| {
                mean_milliseconds(OPENS_PER_RUN, |_| {
                    let (connection, report) =
                        DuckDbOptions::new(&current).migrations(schema(2)).open()?;
                    assert!(report.migrations_applied.is_empty() && report.snapshot.is_none());
                    drop(connection);
                    Ok(())
                })
            },
            |_| {
                mean_milliseconds(OPENS_PER_RUN, |_| {
                    let connection = duckdb::Connection::open(&current)?;
                    let _: i64 = connection.query_row(
                        "SELECT coalesce(max(version), 0) FROM schema_version",
                        [],
                        |row| row.get(0),
                    )?;
                    drop(connection);
                    Ok(())
                })
            },
        )?;
        figures.push(Figure::measured(&NOTHING_TO_MIGRATE, store, raw));
    }
    if selection.wants(&PENDING_MIGRATION) {
        // One pending migration: each run of each side gets its own copy of a version-1 database.
        let behind = directory.path().join("behind.duckdb");
        duckdb_database(&behind, 1, ROWS)?;
        let copy_for = |side: &str, run: usize| -> BenchResult<PathBuf> {
            let copy = directory.path().join(format!("{side}-{run}.duckdb"));
            copy_database(&behind, &copy)?;
            Ok(copy)
        };
        let mut copies = Vec::new();
        let mut store = |run| {
            let copy = copy_for("store", run)?;
            mean_milliseconds(1, |_| {
                let (connection, report) =
                    DuckDbOptions::new(&copy).migrations(schema(2)).open()?;
                assert_eq!(report.migrations_applied.len(), 1, "{report}");
                if let Some(snapshot) = &report.snapshot {
                    copies.push(snapshot.copy);
                }
                drop(connection);
                Ok(())
            })
        };
        let mut raw = |run| {
            let copy = copy_for("raw", run)?;
            mean_milliseconds(1, |_| {
                let connection = duckdb::Connection::open(&copy)?;
                connection.execute_batch(
                    "BEGIN TRANSACTION;
                     ALTER TABLE events ADD COLUMN kind VARCHAR;
                     INSERT INTO schema_version (version) VALUES (2);
                     COMMIT;
                     CHECKPOINT;",
                )?;
                drop(connection);
                Ok(())
            })
        };
        // The snapshot store takes before migrating, alone: the same call on a fresh copy.
        let mut snapshot_alone = |run| {
            let copy = copy_for("snapshot", run)?;
            let destination = sibling(&copy, store_duckdb::SNAPSHOT_SUFFIX);
            mean_milliseconds(1, |_| {
                snapshot_file(&copy, &destination, Replace::Allowed)?;
                Ok(())
            })
        };
        let [store, raw, snapshot] =
            alternate(MIGRATION_RUNS, [&mut store, &mut raw, &mut snapshot_alone])?;
        let megabytes = std::fs::metadata(&behind)?.len() as f64 / (1024.0 * 1024.0);
        let cloned = copies
            .iter()
            .filter(|copy| **copy == store_core::files::SnapshotCopy::Cloned)
            .count();
        figures.push(
            Figure::measured(&PENDING_MIGRATION, store, raw)
                .with_snapshot(snapshot.clone())
                .with_note(format!(
                    "a {megabytes:.1} MiB file; the snapshot alone: {:.2} ms median \
                     ({:.2}-{:.2}), {} of {} store snapshots cloned",
                    snapshot.median(),
                    snapshot.min(),
                    snapshot.max(),
                    cloned,
                    copies.len()
                )),
        );
    }
    Ok(figures)
}
