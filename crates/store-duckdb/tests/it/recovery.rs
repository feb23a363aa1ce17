//! The recovery ladder, driven by real WAL damage. Ports of the seed's tests (restore the snapshot
//! on a WAL-replay error; an unrelated lock error propagates; no snapshot re-raises the original
//! error; a broken snapshot propagates its own error), and the steps beyond it.

use store_core::pending::{self, InterruptedRecovery, PendingRecovery};
use store_core::{DataLoss, FailureClass, RecoveryLadder, RecoveryStep, SalvageBoundary};
use store_duckdb::wal::{WalFile, WalTail};
use store_duckdb::{DuckDbOptions, OpenError, StepError};
use store_testkit::faults::duckdb::{
    LockHolder, WAL_GARBAGE, append_garbage_to_wal, checkpoint_wal_path, flip_wal_byte,
    interrupted_checkpoint_with_sidecar, replace_wal_with_foreign, serve_lock_holder, truncate_wal,
    wal_path, write_uncheckpointed_rows,
};
use store_testkit::{DirectorySnapshot, logs};

use crate::{TestResult, items, names_starting_with, schema};

/// A database at the current schema with 10 checkpointed rows and 5 more only in its WAL.
fn database_with_wal(
    directory: &std::path::Path,
) -> Result<(std::path::PathBuf, Vec<u64>), Box<dyn std::error::Error>> {
    let path = directory.join("system.duckdb");
    drop(DuckDbOptions::new(&path).migrations(schema()).open()?);
    let commit_ends = write_uncheckpointed_rows(&path, 10, 5)?;
    assert!(wal_path(&path).exists(), "rows left in the WAL");
    Ok((path, commit_ends))
}

#[test]
fn garbage_after_the_wal_is_salvaged_keeping_every_commit() -> TestResult {
    let directory = tempfile::tempdir()?;
    let (path, _) = database_with_wal(directory.path())?;
    append_garbage_to_wal(&path)?;
    let plain = duckdb::Connection::open(&path).map(drop).unwrap_err();
    assert_eq!(
        store_duckdb::classify(&plain),
        FailureClass::WalReplay,
        "{plain}"
    );

    let (result, events) = logs::capture(|| {
        DuckDbOptions::new(&path)
            // A label of its own: warnings are once per label per process, and tests share one.
            .label("salvage-garbage")
            .migrations(schema())
            .open()
    });
    let (connection, report) = result?;
    let recovery = report.recovery.as_ref().expect("recovered");
    assert_eq!(recovery.class, FailureClass::WalReplay);
    assert_eq!(recovery.step, RecoveryStep::SalvageWal, "{report}");
    // One pass over the WAL's framing found the cut, not replays of prefixes; and the cut is
    // where the garbage starts, no later.
    assert_eq!(
        recovery.salvage_boundary,
        Some(SalvageBoundary::WalReader),
        "{report}"
    );
    let wal_length = std::fs::read(&recovery.moved_aside[0].to)?.len() - WAL_GARBAGE.len();
    assert_eq!(
        recovery.lost,
        DataLoss::CommitsAfterWalByte {
            byte_offset: wal_length as u64
        },
        "{report}"
    );
    let count: i64 = connection.query_row("SELECT count(*) FROM items", [], |row| row.get(0))?;
    assert_eq!(count, 15, "all 15 committed rows survive");
    // The original WAL is kept aside, byte for byte.
    assert_eq!(recovery.moved_aside.len(), 1);
    assert!(
        recovery.moved_aside[0]
            .to
            .to_string_lossy()
            .contains(".salvaged-wal.")
    );
    assert!(std::fs::read(&recovery.moved_aside[0].to)?.ends_with(&WAL_GARBAGE));
    let warnings = logs::at_level(&events, tracing::Level::WARN);
    assert!(
        warnings.iter().any(|w| w.target == "store::recovery"),
        "{events:?}"
    );
    Ok(())
}

#[test]
fn a_flipped_byte_is_salvaged_up_to_the_entry_duckdb_names() -> TestResult {
    let directory = tempfile::tempdir()?;
    let (path, commit_ends) = database_with_wal(directory.path())?;
    // Damage the fourth uncheckpointed commit: the three before it must survive.
    flip_wal_byte(&path, commit_ends[2] + 20)?;
    let plain = duckdb::Connection::open(&path).map(drop).unwrap_err();
    let diagnosis = store_duckdb::diagnose(&plain);
    assert_eq!(diagnosis.class, FailureClass::WalCorrupt, "{plain}");
    assert!(diagnosis.bad_wal_entry_offset.is_some(), "{plain}");

    let (connection, report) = DuckDbOptions::new(&path).migrations(schema()).open()?;
    let recovery = report.recovery.as_ref().expect("recovered");
    assert_eq!(recovery.step, RecoveryStep::SalvageWal, "{report}");
    assert_eq!(
        recovery.salvage_boundary,
        Some(SalvageBoundary::WalReader),
        "{report}"
    );
    // The cut is the end of the third commit: never inside or after the damaged entry.
    assert_eq!(
        recovery.lost,
        DataLoss::CommitsAfterWalByte {
            byte_offset: commit_ends[2]
        },
        "{report}"
    );
    let count: i64 = connection.query_row("SELECT count(*) FROM items", [], |row| row.get(0))?;
    assert_eq!(
        count, 13,
        "10 checkpointed + the 3 commits before the bad entry"
    );
    Ok(())
}

#[test]
fn a_foreign_wal_is_discarded_not_salvaged() -> TestResult {
    let directory = tempfile::tempdir()?;
    let (path, _) = database_with_wal(directory.path())?;
    let other = directory.path().join("other.duckdb");
    write_uncheckpointed_rows(&other, 1, 3)?;
    replace_wal_with_foreign(&path, &other)?;

    let (connection, report) = DuckDbOptions::new(&path).migrations(schema()).open()?;
    let recovery = report.recovery.as_ref().expect("recovered");
    assert_eq!(recovery.class, FailureClass::WalCorrupt);
    assert_eq!(recovery.step, RecoveryStep::DiscardWal, "{report}");
    assert_eq!(recovery.lost, DataLoss::UncheckpointedCommits);
    // The foreign WAL leaves salvage nothing of this database to keep: a fact, not only words.
    assert_eq!(recovery.steps_failed[0].step, RecoveryStep::SalvageWal);
    assert_eq!(
        recovery.steps_failed[0].cause,
        store_core::StepCause::NotApplicable
    );
    let count: i64 = connection.query_row("SELECT count(*) FROM items", [], |row| row.get(0))?;
    assert_eq!(count, 10, "the checkpointed rows");
    assert_eq!(
        names_starting_with(directory.path(), "system.duckdb.discarded-wal.").len(),
        1
    );
    Ok(())
}

/// Promise: a torn WAL tail, which DuckDB would drop without a word, is found by store's WAL
/// reader before the replay and reported as a recovery: the original WAL kept aside byte for
/// byte, the loss typed (where the last whole commit ends, how many bytes were cut off), the
/// commits before the cut all there. Under the strict policy the open refuses instead, and no
/// file changes.
#[test]
fn a_torn_tail_is_kept_aside_and_reported_not_dropped_silently() -> TestResult {
    let directory = tempfile::tempdir()?;
    let (path, commit_ends) = database_with_wal(directory.path())?;
    let cut = commit_ends[1] + 5;
    truncate_wal(&path, cut)?;

    let refused = store_testkit::snapshot::assert_unchanged(directory.path(), || {
        DuckDbOptions::new(&path)
            .migrations(schema())
            .recovery_policy(RecoveryLadder::strict())
            .open()
            .map(drop)
    });
    match refused {
        Err(store_duckdb::OpenError::WalTail { tail, .. }) => {
            assert_eq!(tail.damage_offset(), Some(commit_ends[1]));
        }
        other => panic!("expected OpenError::WalTail, got {other:?}"),
    }

    let (connection, report) = DuckDbOptions::new(&path).migrations(schema()).open()?;
    let recovery = report
        .recovery
        .as_ref()
        .expect("the torn tail is a recovery");
    assert_eq!(recovery.class, FailureClass::WalCorrupt, "{report}");
    assert_eq!(recovery.step, RecoveryStep::SalvageWal, "{report}");
    assert_eq!(
        recovery.salvage_boundary,
        Some(SalvageBoundary::WalReader),
        "{report}"
    );
    assert_eq!(
        recovery.lost,
        DataLoss::DroppedWalTail {
            byte_offset: commit_ends[1],
            bytes: 5,
            entries: 0
        },
        "{report}"
    );
    assert_eq!(recovery.moved_aside.len(), 1, "{report}");
    assert_eq!(
        std::fs::metadata(&recovery.moved_aside[0].to)?.len(),
        cut,
        "the original WAL, torn tail and all"
    );
    drop(connection);
    assert_eq!(items(&path)?, 12);
    Ok(())
}

#[test]
fn recovery_restores_the_snapshot_on_a_wal_replay_error() -> TestResult {
    // The seed's case: the snapshot-only policy restores `<db>.pre-migrate`, moves the broken
    // database and WAL aside as `.broken.`, drops the WAL and lands at the current version.
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("system.duckdb");
    let older = store_core::Migrations::new(schema().all()[..2].to_vec())?;
    drop(DuckDbOptions::new(&path).migrations(older).open()?);
    // Migrating to version 3 takes the snapshot at version 2.
    drop(DuckDbOptions::new(&path).migrations(schema()).open()?);
    write_uncheckpointed_rows(&path, 0, 3)?;
    append_garbage_to_wal(&path)?;
    let snapshot = store_core::files::sibling(&path, ".pre-migrate");
    let snapshot_bytes = std::fs::read(&snapshot)?;

    let (connection, report) = DuckDbOptions::new(&path)
        .migrations(schema())
        .recovery_policy(RecoveryLadder::snapshot_only())
        .open()?;
    let recovery = report.recovery.as_ref().expect("recovered");
    assert_eq!(recovery.step, RecoveryStep::RestoreSnapshot, "{report}");
    // The database restored is the snapshot: it stands as the migration's snapshot, unchanged,
    // and no second one is taken.
    assert!(report.snapshot.is_none(), "{report}");
    assert_eq!(std::fs::read(&snapshot)?, snapshot_bytes);
    assert!(matches!(
        recovery.lost,
        DataLoss::EverythingSinceSnapshot { .. }
    ));
    assert_eq!(
        report.schema_version, 3,
        "migrated from the snapshot's 2 to 3"
    );
    assert_eq!(store_duckdb::schema_version(&connection)?, 3);

    let broken = names_starting_with(directory.path(), "system.duckdb.broken.");
    let broken_databases: Vec<_> = broken
        .iter()
        .filter(|name| !name.ends_with(".wal"))
        .collect();
    let broken_wals: Vec<_> = broken
        .iter()
        .filter(|name| name.ends_with(".wal"))
        .collect();
    assert_eq!(
        (broken_databases.len(), broken_wals.len()),
        (1, 1),
        "{broken:?}"
    );
    assert!(path.exists());
    // The broken WAL is not beside the database any more: the next start will not replay it.
    assert!(!wal_path(&path).exists() || std::fs::metadata(wal_path(&path))?.len() < 64);
    Ok(())
}

#[test]
fn recovery_does_not_fire_on_a_lock_held_by_another_process() -> TestResult {
    serve_lock_holder();
    const TEST: &str = concat!(
        module_path!(),
        "::recovery_does_not_fire_on_a_lock_held_by_another_process"
    );
    let directory = tempfile::tempdir()?;
    let (path, _) = database_with_wal(directory.path())?;
    let holder = LockHolder::spawn(TEST, &path)?;
    let before = DirectorySnapshot::take(directory.path())?;
    let error = DuckDbOptions::new(&path)
        .migrations(schema())
        .open()
        .unwrap_err();
    assert_eq!(error.class(), FailureClass::Locked, "{error}");
    assert!(
        error.cause_chain().contains("Could not set lock on file"),
        "{}",
        error.cause_chain()
    );
    assert!(
        error.cause_chain().contains(&holder.pid().to_string()),
        "{}",
        error.cause_chain()
    );
    assert!(error.moved_aside().is_empty());
    assert!(
        before
            .diff(&DirectorySnapshot::take(directory.path())?)
            .is_empty()
    );
    drop(holder);
    assert_eq!(
        items(&path)?,
        15,
        "nothing was lost to a recovery that must not happen"
    );
    Ok(())
}

#[test]
fn without_a_snapshot_the_original_error_propagates() -> TestResult {
    let directory = tempfile::tempdir()?;
    let (path, _) = database_with_wal(directory.path())?;
    std::fs::remove_file(store_core::files::sibling(&path, ".pre-migrate"))?;
    append_garbage_to_wal(&path)?;
    let before = DirectorySnapshot::take(directory.path())?;
    let error = DuckDbOptions::new(&path)
        .migrations(schema())
        .recovery_policy(RecoveryLadder::snapshot_only())
        .open()
        .unwrap_err();
    // The original failure is the damage the WAL reader found before DuckDB replayed (garbage
    // DuckDB's replay fails on), not the missing snapshot.
    let OpenError::WalTail {
        tail,
        recovery_failures,
        ..
    } = &error
    else {
        panic!("expected the WAL damage that started it, got {error:?}");
    };
    assert!(matches!(tail, WalTail::Garbage { .. }), "{tail:?}");
    assert_eq!(error.class(), FailureClass::WalReplay);
    assert_eq!(recovery_failures.len(), 1);
    assert_eq!(recovery_failures[0].step, RecoveryStep::RestoreSnapshot);
    assert_eq!(
        recovery_failures[0].cause,
        store_core::StepCause::NotApplicable,
        "no snapshot to restore: {recovery_failures:?}"
    );
    assert!(
        before
            .diff(&DirectorySnapshot::take(directory.path())?)
            .is_empty()
    );
    Ok(())
}

#[test]
fn a_broken_snapshot_propagates_its_own_error_and_moves_nothing() -> TestResult {
    let directory = tempfile::tempdir()?;
    let (path, _) = database_with_wal(directory.path())?;
    std::fs::write(
        store_core::files::sibling(&path, ".pre-migrate"),
        b"also-corrupted",
    )?;
    append_garbage_to_wal(&path)?;
    let before = DirectorySnapshot::take(directory.path())?;
    let error = DuckDbOptions::new(&path)
        .migrations(schema())
        .recovery_policy(RecoveryLadder::snapshot_only())
        .open()
        .unwrap_err();
    assert!(
        matches!(
            error,
            OpenError::Snapshot {
                source: StepError::SnapshotNotADatabase,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        before
            .diff(&DirectorySnapshot::take(directory.path())?)
            .is_empty()
    );
    Ok(())
}

#[test]
fn a_snapshot_from_a_newer_schema_is_refused() -> TestResult {
    let directory = tempfile::tempdir()?;
    let (path, _) = database_with_wal(directory.path())?;
    // A snapshot at version 3 cannot serve a release whose migrations end at 2.
    let older = store_core::Migrations::new(schema().all()[..2].to_vec())?;
    std::fs::copy(&path, store_core::files::sibling(&path, ".pre-migrate"))?;
    append_garbage_to_wal(&path)?;
    let error = DuckDbOptions::new(&path)
        .migrations(older)
        .recovery_policy(RecoveryLadder::snapshot_only())
        .open()
        .unwrap_err();
    assert!(
        matches!(
            error,
            OpenError::Snapshot {
                source: StepError::SnapshotRejected {
                    snapshot_version: 3,
                    target_version: 2
                },
                ..
            }
        ),
        "{error:?}"
    );
    Ok(())
}

/// Promise: the restore checks a snapshot by the schema version it was tagged with when taken
/// (no DuckDB instance started on it), and refuses it by that version; a snapshot written over
/// since its tag is asked through DuckDB instead (the test above).
#[test]
fn a_snapshot_is_checked_by_the_version_it_was_tagged_with() -> TestResult {
    let directory = tempfile::tempdir()?;
    let (path, _) = database_with_wal(directory.path())?;
    let snapshot = store_core::files::sibling(&path, ".pre-migrate");
    assert_eq!(
        store_core::schema_tag::read(&snapshot),
        Some(0),
        "store's own pre-migration snapshot is tagged with the version it was taken at"
    );
    assert!(store_core::schema_tag::tag(&snapshot, 9));
    append_garbage_to_wal(&path)?;
    let error = DuckDbOptions::new(&path)
        .migrations(schema())
        .recovery_policy(RecoveryLadder::snapshot_only())
        .open()
        .unwrap_err();
    assert!(
        matches!(
            error,
            OpenError::Snapshot {
                source: StepError::SnapshotRejected {
                    snapshot_version: 9,
                    target_version: 3
                },
                ..
            }
        ),
        "{error:?}"
    );
    Ok(())
}

#[test]
fn a_strict_policy_never_recovers() -> TestResult {
    let directory = tempfile::tempdir()?;
    let (path, _) = database_with_wal(directory.path())?;
    append_garbage_to_wal(&path)?;
    let error = DuckDbOptions::new(&path)
        .recovery_policy(RecoveryLadder::strict())
        .open()
        .unwrap_err();
    assert_eq!(error.class(), FailureClass::WalReplay);
    assert!(wal_path(&path).exists());
    Ok(())
}

/// One more commit in `path`'s WAL, then the WAL replaced by a fresh one of another database
/// beside it: the foreign-WAL fault, which the default ladder recovers from by discarding.
fn commit_then_foreign_wal(path: &std::path::Path) -> TestResult {
    write_uncheckpointed_rows(path, 0, 1)?;
    let other = store_core::files::parent_directory(path).join("other.duckdb");
    let _ = std::fs::remove_file(&other);
    let _ = std::fs::remove_file(wal_path(&other));
    write_uncheckpointed_rows(&other, 0, 1)?;
    replace_wal_with_foreign(path, &other)?;
    Ok(())
}

#[test]
fn retention_caps_moved_aside_files() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("system.duckdb");
    drop(DuckDbOptions::new(&path).migrations(schema()).open()?);
    for _ in 0..4 {
        commit_then_foreign_wal(&path)?;
        let (_connection, report) = DuckDbOptions::new(&path)
            .retention(std::num::NonZeroUsize::new(2).expect("two"))
            .open()?;
        assert_eq!(
            report.recovery.map(|r| r.step),
            Some(RecoveryStep::DiscardWal)
        );
    }
    assert_eq!(
        names_starting_with(directory.path(), "system.duckdb.discarded-wal.").len(),
        2
    );
    Ok(())
}

/// A database at version 3 whose snapshot is at version 2, with rows only in a WAL that cannot
/// be replayed: the snapshot-only policy restores it.
fn database_to_restore(
    directory: &std::path::Path,
) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    let path = directory.join("system.duckdb");
    let older = store_core::Migrations::new(schema().all()[..2].to_vec())?;
    drop(DuckDbOptions::new(&path).migrations(older).open()?);
    drop(DuckDbOptions::new(&path).migrations(schema()).open()?);
    write_uncheckpointed_rows(&path, 0, 3)?;
    append_garbage_to_wal(&path)?;
    Ok(path)
}

#[test]
fn a_step_records_itself_before_moving_anything_and_the_record_goes_when_the_open_returns()
-> TestResult {
    let directory = tempfile::tempdir()?;
    let path = database_to_restore(directory.path())?;
    let (result, events) = logs::capture(|| {
        DuckDbOptions::new(&path)
            .label("record-order")
            .migrations(schema())
            .recovery_policy(RecoveryLadder::snapshot_only())
            .open()
    });
    let (_connection, report) = result?;
    assert!(report.recovered(), "{report}");
    assert_eq!(report.interrupted_recovery, None, "{report}");
    assert!(!report.recovery.as_ref().expect("recovered").interrupted);
    let position = |words: &str| {
        events
            .iter()
            .position(|event| event.text.contains(words))
            .unwrap_or_else(|| panic!("no `{words}` event in {events:?}"))
    };
    assert!(
        position("recovery pending recorded") < position("moved aside"),
        "the record is durable before the first file moves: {events:?}"
    );
    assert!(position("recovered by") < position("recovery pending cleared"));
    assert!(
        !pending::record_path(&path).exists(),
        "gone once the open returned"
    );
    Ok(())
}

#[test]
fn a_restore_whose_open_never_returned_is_reported_by_the_next_open() -> TestResult {
    // The gap without a power cut: the restore completes its step, then its record is left on
    // disk as a cut before the open returned would leave it. The database the next open finds
    // is healthy; only the record tells that 3 rows went with the restore.
    let directory = tempfile::tempdir()?;
    let path = database_to_restore(directory.path())?;
    let started_at = std::time::SystemTime::now() - std::time::Duration::from_secs(2);
    let options = DuckDbOptions::new(&path)
        .label("interrupted-restore")
        .migrations(schema())
        .recovery_policy(RecoveryLadder::snapshot_only());
    let (connection, report) = options.open()?;
    let done = report.recovery.clone().expect("recovered");
    drop(connection);
    let left_by_the_cut = PendingRecovery {
        step: done.step,
        class: done.class,
        cause: done.cause.clone(),
        lost: done.lost.clone(),
        reason: "broken".into(),
        started_at,
    };
    pending::record(&path, &left_by_the_cut)?;

    // A read-only open reports it and leaves the record.
    let (reader, read_only) = options
        .clone()
        .label("interrupted-restore-read-only")
        .read_only(true)
        .open()?;
    drop(reader);
    let recovery = read_only.recovery.as_ref().expect("reported");
    assert!(recovery.interrupted, "{read_only}");
    assert!(
        pending::record_path(&path).exists(),
        "a read-only open writes nothing"
    );

    let (result, events) = logs::capture(|| options.open());
    let (_connection, report) = result?;
    let recovery = report
        .recovery
        .as_ref()
        .expect("the interrupted restore is reported");
    assert!(recovery.interrupted, "{report}");
    assert_eq!(recovery.step, RecoveryStep::RestoreSnapshot);
    assert_eq!(recovery.class, FailureClass::WalReplay);
    assert_eq!(recovery.lost, done.lost);
    assert_eq!(
        recovery.moved_aside, done.moved_aside,
        "found by name and stamp"
    );
    assert_eq!(
        report.interrupted_recovery,
        Some(InterruptedRecovery::Recorded(left_by_the_cut))
    );
    assert!(report.to_string().contains("interrupted"), "{report}");
    assert!(
        logs::at_level(&events, tracing::Level::WARN)
            .iter()
            .any(|event| event.target == "store::recovery" && event.text.contains("interrupted")),
        "{events:?}"
    );
    assert!(
        !pending::record_path(&path).exists(),
        "removed once reported"
    );
    let (_connection, after) = options.open()?;
    assert!(!after.recovered(), "reported once: {after}");
    Ok(())
}

#[test]
fn a_recovery_needed_again_says_the_earlier_one_was_interrupted() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = database_to_restore(directory.path())?;
    let earlier = PendingRecovery {
        step: RecoveryStep::SalvageWal,
        class: FailureClass::WalCorrupt,
        cause: "an earlier failure".into(),
        lost: DataLoss::CommitsAfterWalByte { byte_offset: 77 },
        reason: "salvaged-wal".into(),
        started_at: std::time::SystemTime::now(),
    };
    pending::record(&path, &earlier)?;
    let (_connection, report) = DuckDbOptions::new(&path)
        .label("recovered-again")
        .migrations(schema())
        .recovery_policy(RecoveryLadder::snapshot_only())
        .open()?;
    let recovery = report.recovery.as_ref().expect("recovered");
    assert_eq!(recovery.step, RecoveryStep::RestoreSnapshot, "{report}");
    assert!(!recovery.interrupted, "this open's own recovery");
    assert_eq!(
        report.interrupted_recovery,
        Some(InterruptedRecovery::Recorded(earlier))
    );
    assert!(
        report
            .to_string()
            .contains("an earlier recovery by salvage-wal was interrupted"),
        "{report}"
    );
    assert!(!pending::record_path(&path).exists());
    Ok(())
}

#[test]
fn an_unreadable_record_is_reported_and_set_aside_never_deleted() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("system.duckdb");
    drop(DuckDbOptions::new(&path).migrations(schema()).open()?);
    let garbage = b"store-recovery-pending 1\nstep resto";
    std::fs::write(pending::record_path(&path), garbage)?;

    let (_connection, report) = DuckDbOptions::new(&path)
        .label("unreadable-record")
        .migrations(schema())
        .open()?;
    assert!(
        !report.recovered(),
        "nothing known to report as a step: {report}"
    );
    assert!(
        matches!(
            report.interrupted_recovery,
            Some(InterruptedRecovery::Unreadable { .. })
        ),
        "{report}"
    );
    assert!(report.to_string().contains("unknown"), "{report}");
    assert!(!pending::record_path(&path).exists());
    let aside = names_starting_with(directory.path(), "system.duckdb.unreadable-record.");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(directory.path().join(&aside[0]))?, garbage);
    Ok(())
}

/// Promise: salvage keeps every commit before the damaged entry, wherever the damage falls, and
/// never reports a loss that starts inside or after that entry. A WAL of 1,000 single-row
/// commits gets one byte flipped at each of 20 seeded offsets (each on a fresh copy): every open
/// recovers by a salvage whose cut was read from the WAL's framing, the loss it reports starts
/// exactly where the last commit before the damaged entry ends, and exactly those commits are
/// there.
#[test]
fn salvage_keeps_every_commit_before_the_damage_at_twenty_seeded_offsets() -> TestResult {
    const COMMITS: u32 = 1_000;
    let directory = tempfile::tempdir()?;
    let original = directory.path().join("original.duckdb");
    drop(DuckDbOptions::new(&original).migrations(schema()).open()?);
    let commit_ends = write_uncheckpointed_rows(&original, 0, COMMITS)?;
    let wal = std::fs::read(wal_path(&original))?;
    let reading = store_duckdb::wal::WalReading::read(&wal)?;
    assert_eq!(reading.commits, u64::from(COMMITS));
    assert_eq!(
        reading.last_commit_end,
        *commit_ends.last().expect("commits")
    );
    let mut random = store_testkit::random::SplitMix64::new(18);
    for case in 0..20 {
        // Past the first commit, so that there is always one to keep.
        let offset = commit_ends[0] + random.below(wal.len() as u64 - commit_ends[0]);
        let copy = directory.path().join(format!("case-{case}.duckdb"));
        std::fs::copy(&original, &copy)?;
        std::fs::write(wal_path(&copy), &wal)?;
        flip_wal_byte(&copy, offset)?;

        let (connection, report) = DuckDbOptions::new(&copy).migrations(schema()).open()?;
        let recovery = report.recovery.as_ref().expect("recovered");
        assert_eq!(recovery.step, RecoveryStep::SalvageWal, "{report}");
        assert_eq!(
            recovery.salvage_boundary,
            Some(SalvageBoundary::WalReader),
            "{report}"
        );
        // The damaged entry holds `offset`; no commit ends inside an entry, so the commits kept
        // are those ending at or before `offset`, and the cut is where the last of them ends.
        let kept: Vec<u64> = commit_ends
            .iter()
            .copied()
            .filter(|end| *end <= offset)
            .collect();
        let cut = *kept
            .last()
            .expect("the first commit ends before the damage");
        let reported = match recovery.lost {
            DataLoss::CommitsAfterWalByte { byte_offset }
            | DataLoss::DroppedWalTail { byte_offset, .. } => byte_offset,
            ref other => panic!("case {case} (byte {offset}): lost {other}"),
        };
        assert_eq!(
            reported, cut,
            "case {case}: damage at byte {offset}: {report}"
        );
        let rows: i64 = connection.query_row("SELECT count(*) FROM items", [], |row| row.get(0))?;
        assert_eq!(
            rows.unsigned_abs(),
            kept.len() as u64,
            "case {case}: damage at byte {offset}"
        );
    }
    Ok(())
}

/// Promise: by default recovery never deletes: four recoveries in a row leave all four groups of
/// moved-aside files beside the database, and each recovery warns with how many moved-aside files
/// there are (the count it warns grows with them).
#[test]
fn by_default_every_moved_aside_file_is_kept_and_counted() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("system.duckdb");
    drop(DuckDbOptions::new(&path).migrations(schema()).open()?);
    let mut counted = Vec::new();
    for _ in 0..4 {
        commit_then_foreign_wal(&path)?;
        let (opened, events) = logs::capture(|| DuckDbOptions::new(&path).open());
        let (_connection, report) = opened?;
        assert_eq!(
            report.recovery.map(|r| r.step),
            Some(RecoveryStep::DiscardWal)
        );
        let warning = logs::at_level(&events, tracing::Level::WARN)
            .into_iter()
            .find(|event| event.text.contains("moved-aside file(s)"))
            .expect("a warning naming the moved-aside files")
            .text
            .clone();
        counted.push(warning);
    }
    assert_eq!(
        names_starting_with(directory.path(), "system.duckdb.discarded-wal.").len(),
        4,
        "nothing deleted"
    );
    // The WAL each recovery moved aside is counted: one more file each time.
    for (recovery, warning) in counted.iter().enumerate() {
        assert!(
            warning.starts_with(&format!("{} moved-aside file(s)", recovery + 1)),
            "{warning}"
        );
    }
    Ok(())
}

/// Promise: the checkpoint WAL (`.wal.checkpoint`, the commits logged while a checkpoint ran,
/// replayed after a WAL that ends in the checkpoint's marker) is read before the replay as the
/// WAL is. Whole, it opens with no recovery and every commit of both logs. Torn, which DuckDB
/// drops without a word (seen below on a raw open), the strict policy refuses naming the
/// checkpoint WAL and changes nothing; the default salvages it: the original set aside byte for
/// byte, the loss typed as the checkpoint WAL's tail, every commit before the cut kept. A byte
/// flipped in it, which DuckDB fails on, is salvaged the same way.
#[test]
fn the_checkpoint_wal_is_read_before_replay_and_its_torn_tail_reported() -> TestResult {
    let directory = tempfile::tempdir()?;
    let original = directory.path().join("original.duckdb");
    drop(DuckDbOptions::new(&original).migrations(schema()).open()?);
    let ends = interrupted_checkpoint_with_sidecar(&original, 10, 5, 4)?;
    let wal = std::fs::read(wal_path(&original))?;
    let sidecar = std::fs::read(checkpoint_wal_path(&original))?;
    assert!(store_duckdb::wal::WalReading::read(&wal)?.has_checkpoint_marker);
    let copy = |name: &str, sidecar: &[u8]| -> Result<std::path::PathBuf, std::io::Error> {
        let path = directory.path().join(format!("{name}.duckdb"));
        std::fs::copy(&original, &path)?;
        std::fs::write(wal_path(&path), &wal)?;
        std::fs::write(checkpoint_wal_path(&path), sidecar)?;
        Ok(path)
    };

    let whole = copy("whole", &sidecar)?;
    let (connection, report) = DuckDbOptions::new(&whole).migrations(schema()).open()?;
    assert!(report.recovery.is_none(), "{report}");
    drop(connection);
    assert_eq!(items(&whole)?, 19);

    let cut = ends[2] + 5;
    let raw = copy("raw", &sidecar[..cut as usize])?;
    assert_eq!(
        items(&raw)?,
        18,
        "DuckDB drops the torn commit without a word"
    );

    let torn = copy("torn", &sidecar[..cut as usize])?;
    let refused = store_testkit::snapshot::assert_unchanged(directory.path(), || {
        DuckDbOptions::new(&torn)
            .migrations(schema())
            .recovery_policy(RecoveryLadder::strict())
            .open()
            .map(drop)
    });
    match refused {
        Err(OpenError::WalTail { file, tail, .. }) => {
            assert_eq!(file, WalFile::CheckpointWal);
            assert_eq!(tail.damage_offset(), Some(ends[2]));
        }
        other => panic!("expected OpenError::WalTail, got {other:?}"),
    }
    let (connection, report) = DuckDbOptions::new(&torn).migrations(schema()).open()?;
    let recovery = report.recovery.as_ref().expect("a recovery");
    assert_eq!(recovery.step, RecoveryStep::SalvageWal, "{report}");
    assert_eq!(
        recovery.lost,
        DataLoss::CheckpointWalTail {
            byte_offset: ends[2],
            bytes: 5,
            entries: 0
        },
        "{report}"
    );
    assert_eq!(recovery.moved_aside.len(), 1, "{report}");
    assert_eq!(recovery.moved_aside[0].from, checkpoint_wal_path(&torn));
    assert_eq!(
        std::fs::read(&recovery.moved_aside[0].to)?,
        &sidecar[..cut as usize],
        "the original checkpoint WAL, torn tail and all"
    );
    drop(connection);
    assert_eq!(items(&torn)?, 18);

    let mut flipped_bytes = sidecar.clone();
    let damage = usize::try_from(ends[1] + 20)?;
    flipped_bytes[damage] = !flipped_bytes[damage];
    let flipped = copy("flipped", &flipped_bytes)?;
    let (connection, report) = DuckDbOptions::new(&flipped).migrations(schema()).open()?;
    let recovery = report.recovery.as_ref().expect("a recovery");
    assert_eq!(recovery.step, RecoveryStep::SalvageWal, "{report}");
    assert!(
        matches!(recovery.lost, DataLoss::CheckpointWalTail { byte_offset, .. } if byte_offset == ends[1]),
        "{report}"
    );
    drop(connection);
    assert_eq!(items(&flipped)?, 17);
    Ok(())
}
