//! Snapshots where the filesystem clones: on a loop-mounted XFS (with reflink) and btrfs, in a
//! child process of its own (the mount lives in the child thread's private mount namespace),
//! store's snapshot of a 256 MiB and of a 1 GiB file, against each other (a clone costs the same
//! whatever the size) and against `cp --reflink=never` + `sync -f` of the same file. Where this
//! machine cannot mount, the figures are skipped with the reason, never passed.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use store_core::files::{Replace, SnapshotCopy, snapshot_file};
use store_testkit::faults::mounts::{LoopFilesystem, mount_loop_filesystem};
use store_testkit::random::SplitMix64;

use super::Selection;
use super::child::{BenchChild, CloneFilesystem};
use super::figure::{Figure, Section, Spec, Target, Unit};
use super::samples::{Runs, Samples};
use super::support::{BenchResult, child_output, copy_with_cp, settle};

const SMALL_BYTES: u64 = 256 * 1024 * 1024;
const LARGE_BYTES: u64 = 1024 * 1024 * 1024;
/// The loop image: both files, one `cp` copy of the large one at a time, room to spare. Sparse.
const IMAGE_BYTES: u64 = 4 * 1024 * 1024 * 1024;
/// Store's snapshots: a clone takes milliseconds and spreads with the filesystem's journal, so
/// more runs, until the ratio of the two sizes settles.
pub(super) const SNAPSHOT_RUNS: Runs = Runs::Settling { min: 15, max: 61 };
/// `cp` runs a size: each writes the whole file (1 GiB for the large one) and syncs it, and the
/// ratio it is held to has a margin of twenty.
pub(super) const CP_RUNS: usize = 5;

const CLONE_REASON: &str = "Where the filesystem clones, a snapshot shares the file's extents \
                            (FICLONE) and writes none of its bytes: it must cost under 5% of \
                            copying them, or the clone did not happen.";
const SIZE_REASON: &str = "A clone's cost does not grow with the file: the 1 GiB snapshot \
                           within 1.2x of the 256 MiB one, either way.";
const CP_NAME: &str = "cp --reflink=never + sync -f";
const CP_DOES: &str = "cp --reflink=never of the same file to a new name on the same mount, \
                       then sync -f of the copy (syncfs of the loop-mounted filesystem, which \
                       flushes the loop device), after a sync that leaves nothing else dirty; \
                       5 runs";
const SMALL_NAME: &str = "store's snapshot of the 256 MiB file";
const SMALL_DOES: &str = "store_core::files::snapshot_file of the 256 MiB file on the same \
                          mount, alternating run by run with the 1 GiB one";

pub(super) const XFS_SMALL: Spec = Spec {
    name: "snapshot of a 256 MiB file on XFS (clone)",
    section: Section::Clones,
    unit: Unit::Milliseconds,
    target: Target::AtMost(0.05),
    reason: CLONE_REASON,
    baseline_name: CP_NAME,
    baseline_does: CP_DOES,
};
pub(super) const XFS_LARGE: Spec = Spec {
    name: "snapshot of a 1 GiB file on XFS (clone)",
    ..XFS_SMALL
};
pub(super) const XFS_SIZES: Spec = Spec {
    name: "snapshot on XFS, 1 GiB against 256 MiB (clone)",
    target: Target::Within(1.2),
    reason: SIZE_REASON,
    baseline_name: SMALL_NAME,
    baseline_does: SMALL_DOES,
    ..XFS_SMALL
};
pub(super) const BTRFS_SMALL: Spec = Spec {
    name: "snapshot of a 256 MiB file on btrfs (clone)",
    ..XFS_SMALL
};
pub(super) const BTRFS_LARGE: Spec = Spec {
    name: "snapshot of a 1 GiB file on btrfs (clone)",
    ..XFS_SMALL
};
pub(super) const BTRFS_SIZES: Spec = Spec {
    name: "snapshot on btrfs, 1 GiB against 256 MiB (clone)",
    ..XFS_SIZES
};

pub(super) const SPECS: &[&Spec] = &[
    &XFS_SMALL,
    &XFS_LARGE,
    &XFS_SIZES,
    &BTRFS_SMALL,
    &BTRFS_LARGE,
    &BTRFS_SIZES,
];

/// What the child measured on one size.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct SizeJson {
    /// Store's snapshots, milliseconds.
    store: Vec<f64>,
    /// `cp --reflink=never` + `sync -f`, milliseconds.
    cp: Vec<f64>,
    /// How many of store's snapshots cloned.
    cloned: usize,
}

/// The child's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum CloneJson {
    /// It could not mount: why.
    Skipped {
        reason: String,
    },
    Measured {
        small: SizeJson,
        large: SizeJson,
    },
}

pub(super) fn measure(selection: &Selection) -> BenchResult<Vec<Figure>> {
    let mut figures = Vec::new();
    for (filesystem, [small, large, sizes]) in [
        (CloneFilesystem::Xfs, [&XFS_SMALL, &XFS_LARGE, &XFS_SIZES]),
        (
            CloneFilesystem::Btrfs,
            [&BTRFS_SMALL, &BTRFS_LARGE, &BTRFS_SIZES],
        ),
    ] {
        if ![small, large, sizes]
            .iter()
            .any(|spec| selection.wants(spec))
        {
            continue;
        }
        match child_output::<CloneJson>(&BenchChild::CloneSnapshots { filesystem })? {
            CloneJson::Skipped { reason } => {
                figures.extend([small, large, sizes].map(|spec| Figure::skipped(spec, &reason)));
            }
            CloneJson::Measured {
                small: small_json,
                large: large_json,
            } => {
                let note = |size: &SizeJson| {
                    format!("{} of {} snapshots cloned", size.cloned, size.store.len())
                };
                let small_note = note(&small_json);
                let large_note = note(&large_json);
                figures.push(
                    Figure::measured(
                        small,
                        Samples(small_json.store.clone()),
                        Samples(small_json.cp),
                    )
                    .with_note(small_note.clone()),
                );
                figures.push(
                    Figure::measured(
                        large,
                        Samples(large_json.store.clone()),
                        Samples(large_json.cp),
                    )
                    .with_note(large_note.clone()),
                );
                figures.push(
                    Figure::measured(sizes, Samples(large_json.store), Samples(small_json.store))
                        .with_note(format!("1 GiB: {large_note}; 256 MiB: {small_note}")),
                );
            }
        }
    }
    Ok(figures)
}

/// In the child: mount, write the two files, measure, unmount.
pub(super) fn measure_in_child(filesystem: CloneFilesystem) -> BenchResult<CloneJson> {
    let mount_point = tempfile::tempdir()?;
    let kind = match filesystem {
        CloneFilesystem::Xfs => LoopFilesystem::Xfs,
        CloneFilesystem::Btrfs => LoopFilesystem::Btrfs,
    };
    // On this (the child's main) thread: the mount is in its private namespace, and so are the
    // `cp` and `sync` it forks.
    if let Err(error) = mount_loop_filesystem(mount_point.path(), kind, IMAGE_BYTES) {
        return Ok(CloneJson::Skipped {
            reason: error.to_string(),
        });
    }
    let measured = measure_mounted(mount_point.path());
    // Unmounted before the directory goes, so that no mount point is left in /tmp; the mount
    // would go with the process anyway.
    let _ = Command::new("umount").arg(mount_point.path()).status();
    measured
}

fn measure_mounted(directory: &Path) -> BenchResult<CloneJson> {
    let small_file = directory.join("small");
    let large_file = directory.join("large");
    write_random(&small_file, SMALL_BYTES, 1)?;
    write_random(&large_file, LARGE_BYTES, 2)?;
    let mut small = SizeJson::default();
    let mut large = SizeJson::default();
    let mut run = 0;
    while run < CP_RUNS
        || SNAPSHOT_RUNS.wants_more(run, &[large.store.clone(), small.store.clone()])
    {
        // The order turns over from run to run: the large file first in even runs.
        for large_now in [run % 2 == 0, run % 2 == 1] {
            let (source, size) = if large_now {
                (&large_file, &mut large)
            } else {
                (&small_file, &mut small)
            };
            snapshot_run(source, size, run)?;
            if run < CP_RUNS {
                cp_run(source, size, run)?;
            }
        }
        run += 1;
    }
    Ok(CloneJson::Measured { small, large })
}

/// One timed snapshot of `source` to a new name; the snapshot is removed after, untimed.
fn snapshot_run(source: &Path, size: &mut SizeJson, run: usize) -> BenchResult<()> {
    let destination = source.with_extension(format!("snapshot-{run}"));
    settle()?;
    let started = Instant::now();
    let snapshot = snapshot_file(source, &destination, Replace::Refused)?;
    size.store.push(started.elapsed().as_secs_f64() * 1000.0);
    if snapshot.copy == SnapshotCopy::Cloned {
        size.cloned += 1;
    }
    std::fs::remove_file(&destination)?;
    Ok(())
}

/// One timed `cp --reflink=never` + `sync -f` of `source`; the copy is removed after, untimed.
fn cp_run(source: &Path, size: &mut SizeJson, run: usize) -> BenchResult<()> {
    let destination = source.with_extension(format!("cp-{run}"));
    settle()?;
    size.cp.push(copy_with_cp(source, &destination)?);
    std::fs::remove_file(&destination)?;
    Ok(())
}

/// `bytes` of seeded noise, written and synced: nothing for a filesystem to compress or skip.
fn write_random(path: &Path, bytes: u64, seed: u64) -> BenchResult<()> {
    const CHUNK: usize = 1024 * 1024;
    let mut random = SplitMix64::new(seed);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut chunk = vec![0u8; CHUNK];
    for _ in 0..bytes / CHUNK as u64 {
        for word in chunk.chunks_exact_mut(8) {
            word.copy_from_slice(&random.next_u64().to_le_bytes());
        }
        file.write_all(&chunk)?;
    }
    file.into_inner()
        .map_err(|error| error.into_error())?
        .sync_all()?;
    Ok(())
}
