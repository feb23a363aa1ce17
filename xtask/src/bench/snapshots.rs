//! Snapshots where the filesystem copies (ext4 here): store's snapshot and restore of a 256 MiB
//! DuckDB file (`store_core::files::snapshot_file`: a temporary sibling, `copy_file_range`,
//! fsync, rename, fsync of the directory) against `cp --reflink=never` + `sync -f` of the same
//! file.

use std::path::Path;

use store_core::files::{Replace, SnapshotCopy, snapshot_file};

use super::Selection;
use super::figure::{Figure, Section, Spec, Target, Unit};
use super::samples::{Runs, mean_milliseconds, paired};
use super::support::{BenchResult, copy_with_cp, filesystem_of, scratch, settle};

/// The size of the database the figures copy (DuckDB grows it in blocks: a little more).
const DATABASE_BYTES: u64 = 256 * 1024 * 1024;
/// A copy's runs spread widely (a quarter of a gigabyte written and fsynced, the disk's write
/// cache): until the ratio settles.
pub(super) const COPY_RUNS: Runs = Runs::Settling { min: 5, max: 15 };

const CP_DOES: &str = "cp --reflink=never of the same file to a new name in the same directory \
                       (read and write through user space, 128 KiB at a time), then sync -f of \
                       the copy (one syncfs: the copy's data, its directory entry, the journal), \
                       after a sync that leaves nothing else dirty";

pub(super) const SNAPSHOT: Spec = Spec {
    name: "snapshot of a 256 MiB duckdb file, copied (ext4)",
    section: Section::Snapshots,
    unit: Unit::Milliseconds,
    target: Target::AtMost(1.05),
    reason: "Issue 17's bound. Where the filesystem cannot clone, a snapshot is a copy made \
             durable: FICLONE refused, copy_file_range in the kernel, fsync of the copy, rename, \
             fsync of the directory (2 fsyncs), against cp's copy and one syncfs. The bytes are \
             the cost; the rename and the directory's fsync may add 5%.",
    baseline_name: "cp --reflink=never + sync -f",
    baseline_does: CP_DOES,
};

pub(super) const RESTORE: Spec = Spec {
    name: "restore of a 256 MiB snapshot, copied (ext4)",
    section: Section::Snapshots,
    unit: Unit::Milliseconds,
    target: Target::AtMost(1.05),
    reason: "A restore copies the snapshot back with the same durable copy as a snapshot \
             (snapshot_file, refusing to replace): the snapshot's bound.",
    baseline_name: "cp --reflink=never + sync -f",
    baseline_does: CP_DOES,
};

pub(super) const SPECS: &[&Spec] = &[&SNAPSHOT, &RESTORE];

pub(super) fn measure(selection: &Selection) -> BenchResult<Vec<Figure>> {
    let directory = scratch()?;
    let database = directory.path().join("big.duckdb");
    make_database(&database)?;
    let megabytes = std::fs::metadata(&database)?.len() as f64 / (1024.0 * 1024.0);
    let filesystem = filesystem_of(&database);
    // How each of store's copies was made, per figure.
    let (mut snapshot_copies, mut restore_copies) = (Vec::new(), Vec::new());
    let copy_with_cp_at = |name: String| {
        settle()?;
        let target = directory.path().join(name);
        let milliseconds = copy_with_cp(&database, &target)?;
        std::fs::remove_file(&target)?;
        Ok(milliseconds)
    };
    let snapshot = directory.path().join("big.duckdb.pre-migrate");
    let mut figures = Vec::new();
    // The restore copies the snapshot back: made once here when only the restore is measured.
    if selection.wants(&SNAPSHOT) || selection.wants(&RESTORE) {
        let (store, cp) = paired(
            COPY_RUNS,
            |_| {
                // The snapshot before it goes first, untimed: the cp side copies to a new name too.
                if snapshot.exists() {
                    std::fs::remove_file(&snapshot)?;
                }
                settle()?;
                mean_milliseconds(1, |_| {
                    snapshot_copies
                        .push(snapshot_file(&database, &snapshot, Replace::Allowed)?.copy);
                    Ok(())
                })
            },
            |run| copy_with_cp_at(format!("cp-{run}")),
        )?;
        figures.push(Figure::measured(&SNAPSHOT, store, cp));
    }
    if selection.wants(&RESTORE) {
        let (store, cp) = paired(
            COPY_RUNS,
            |run| {
                let restored = directory.path().join(format!("restored-{run}"));
                settle()?;
                let milliseconds = mean_milliseconds(1, |_| {
                    restore_copies
                        .push(snapshot_file(&snapshot, &restored, Replace::Refused)?.copy);
                    Ok(())
                })?;
                std::fs::remove_file(&restored)?;
                Ok(milliseconds)
            },
            |run| copy_with_cp_at(format!("cp-restore-{run}")),
        )?;
        figures.push(Figure::measured(&RESTORE, store, cp));
    }
    Ok(figures
        .into_iter()
        .map(|figure| {
            let copies = if std::ptr::eq(figure.spec, &SNAPSHOT) {
                &snapshot_copies
            } else {
                &restore_copies
            };
            let cloned = copies
                .iter()
                .filter(|copy| **copy == SnapshotCopy::Cloned)
                .count();
            if cloned > 0 {
                // A clone against a copy says nothing about the copy: the clone figures measure
                // clones.
                Figure::skipped(
                    figure.spec,
                    format!(
                        "the scratch filesystem ({filesystem}) cloned {cloned} of {} snapshots: \
                         see the clone figures",
                        copies.len()
                    ),
                )
            } else {
                figure.with_note(format!(
                    "a {megabytes:.0} MiB file on {filesystem}; {} of {} snapshots copied, none \
                     cloned",
                    copies.len(),
                    copies.len()
                ))
            }
        })
        .collect())
}

/// A DuckDB database of [`DATABASE_BYTES`] or a little more, of random doubles (which barely
/// compress, so the file grows to the size asked for), checkpointed and closed.
fn make_database(database: &Path) -> BenchResult<()> {
    let connection = duckdb::Connection::open(database)?;
    let mut rows: u64 = 8_000_000;
    connection.execute_batch("CREATE TABLE filler (a DOUBLE, b DOUBLE)")?;
    while std::fs::metadata(database)?.len() < DATABASE_BYTES {
        connection.execute_batch(&format!(
            "INSERT INTO filler SELECT random(), random() FROM range({rows}); CHECKPOINT;"
        ))?;
        rows = 2_000_000;
    }
    Ok(())
}
