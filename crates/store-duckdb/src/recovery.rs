//! The recovery ladder for a WAL DuckDB cannot replay: salvage the good part of the WAL, discard
//! it, or restore the pre-migration snapshot. Each step sets what it replaces aside (never deletes
//! it) through [`files::set_aside`], so that a crash mid-step never leaves a name without its
//! original or its complete replacement, and says what it lost. Before it changes anything, a
//! step writes its durable "recovery pending" record ([`pending`]), so that a crash or power cut
//! after its files are in place, before the open returns, is still reported by the next open.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use store_core::pending::{self, InterruptedRecovery, PendingRecovery};

use store_core::files::{self, SetAside, private_sibling, prune_moved_aside, sibling};
use store_core::{
    DataLoss, Engine, FailureClass, MovedAside, OpenReport, Recovery, RecoveryPolicy, RecoveryStep,
    SalvageBoundary, StepCause, StepFailed, WarnOnce, cause_chain, check_database_path,
};

use crate::SIDECAR_SUFFIXES;
use crate::blocks::BlocksMissing;
use crate::classify::{Diagnosis, diagnose};
use crate::error::{OpenError, StepError};
use crate::instance::connect;
use crate::migrate::{self, SNAPSHOT_SUFFIX};
use crate::options::DuckDbOptions;
use crate::wal::{self, WalDamage, WalFile, WalReading, WalTail};

/// The reasons moved-aside files are named by, one per step.
pub(crate) const REASON_SALVAGED: &str = "salvaged-wal";
pub(crate) const REASON_DISCARDED: &str = "discarded-wal";
pub(crate) const REASON_BROKEN: &str = "broken";

/// A step that opened the database.
struct Recovered {
    connection: duckdb::Connection,
    moved_aside: Vec<MovedAside>,
    lost: DataLoss,
    /// How a salvage found its cut; `None` for the other steps.
    salvage_boundary: Option<SalvageBoundary>,
}

/// A step that did not: why, what it moved before failing, and whether its error is the one to
/// report (a broken snapshot) rather than the original failure.
struct StepFailure {
    cause: StepCause,
    reason: String,
    moved_aside: Vec<MovedAside>,
    fatal: Option<(FailureClass, StepError)>,
}

impl StepFailure {
    /// The step had nothing to act on; nothing was moved.
    fn skipped(reason: impl Into<String>) -> StepFailure {
        StepFailure {
            cause: StepCause::NotApplicable,
            reason: reason.into(),
            moved_aside: Vec::new(),
            fatal: None,
        }
    }

    /// The step failed with `class` before it moved anything.
    fn failed(class: FailureClass, reason: impl Into<String>) -> StepFailure {
        StepFailure {
            cause: StepCause::Failed(class),
            reason: reason.into(),
            moved_aside: Vec::new(),
            fatal: None,
        }
    }
}

/// What every step of one recovery records before it changes a file: the failure that started it.
struct Intent<'a> {
    path: &'a Path,
    class: FailureClass,
    cause: &'a str,
}

impl Intent<'_> {
    /// Writes the durable record of `step` about to lose `lost`, its files to be named by
    /// `reason`. A step that cannot write it changes nothing: without it, a power cut after the
    /// step would leave its loss unreported.
    fn record(&self, step: RecoveryStep, lost: &DataLoss, reason: &str) -> Result<(), StepFailure> {
        let record = PendingRecovery {
            step,
            class: self.class,
            cause: self.cause.to_owned(),
            lost: lost.clone(),
            reason: reason.to_owned(),
            started_at: SystemTime::now(),
        };
        pending::record(self.path, &record).map_err(|error| {
            StepFailure::failed(
                FailureClass::from_error_chain(&error),
                format!(
                    "cannot record the recovery as pending: {}",
                    cause_chain(&error)
                ),
            )
        })
    }
}

/// After every step failed: the open returns an error that says what moved, so this recovery's
/// record goes; an earlier interrupted recovery's record this one replaced is written back, since
/// no report told of it.
fn settle_failed_recovery(options: &DuckDbOptions, report: &OpenReport) {
    let settled = match &report.interrupted_recovery {
        Some(InterruptedRecovery::Recorded(earlier)) => {
            pending::record(&options.common.path, earlier).map_err(|error| cause_chain(&error))
        }
        _ => pending::clear(&options.common.path).map_err(|error| cause_chain(&error)),
    };
    if let Err(error) = settled {
        tracing::warn!(
            target: "store::recovery",
            path = %options.common.path.display(),
            error = %error,
            "cannot settle the recovery record after a failed recovery"
        );
    }
}

/// What set a recovery off.
pub(crate) enum Trigger {
    /// DuckDB failed to open the database.
    Engine(duckdb::Error),
    /// The WAL reader found damage after the last whole commit before DuckDB replayed it: a
    /// tail DuckDB would drop without a word (recovered from, so that it is kept aside and its
    /// loss said), or damage DuckDB would fail on (recovered from without first paying for the
    /// open that fails).
    WalDamage(WalDamage),
    /// The database file is shorter than the blocks in use (`OpenError::CutShort`): only a
    /// restore applies.
    CutShort(BlocksMissing),
}

impl Trigger {
    fn diagnosis(&self) -> Diagnosis {
        match self {
            Trigger::Engine(error) => diagnose(error),
            Trigger::WalDamage(damage) => Diagnosis {
                class: damage
                    .tail
                    .failure_class()
                    .unwrap_or(FailureClass::WalCorrupt),
                bad_wal_entry_offset: damage.tail.damage_offset(),
                foreign_wal: false,
            },
            Trigger::CutShort(_) => Diagnosis {
                class: FailureClass::Corrupt,
                bad_wal_entry_offset: None,
                foreign_wal: false,
            },
        }
    }

    fn cause(&self, database: &Path) -> String {
        match self {
            Trigger::Engine(error) => error.to_string(),
            Trigger::WalDamage(damage) if damage.tail.is_dropped_silently() => {
                format!("{damage}, which DuckDB would drop without a word")
            }
            Trigger::WalDamage(damage) => format!("{damage}, which DuckDB fails on"),
            Trigger::CutShort(missing) => missing
                .into_error(database, Vec::new(), Vec::new())
                .to_string(),
        }
    }

    /// The error of an open that did not recover from this.
    fn into_error(
        self,
        options: &DuckDbOptions,
        class: FailureClass,
        recovery_failures: Vec<StepFailed>,
        moved_aside: Vec<MovedAside>,
    ) -> OpenError {
        match self {
            Trigger::Engine(source) => OpenError::Engine {
                path: options.common.path.clone(),
                class,
                recovery_failures,
                moved_aside,
                source,
            },
            Trigger::CutShort(missing) => {
                missing.into_error(&options.common.path, recovery_failures, moved_aside)
            }
            Trigger::WalDamage(damage) => OpenError::WalTail {
                path: options.common.path.clone(),
                file: damage.file,
                tail: damage.tail,
                recovery_failures,
                moved_aside,
            },
        }
    }
}

/// What the WAL reader finds wrong before DuckDB replays the database's logs: damage after the
/// last whole commit of the WAL, else, when the WAL ends in a checkpoint marker (so that DuckDB
/// replays the checkpoint WAL after it), of the checkpoint WAL. A read-only open, which changes
/// nothing, does not look. A log the reader does not know is left to DuckDB, as before the
/// reader, with a note in the report.
pub(crate) fn damaged_tail(options: &DuckDbOptions, report: &mut OpenReport) -> Option<WalDamage> {
    if options.common.read_only {
        return None;
    }
    wal::damage_before_replay(&options.common.path).unwrap_or_else(|unread| {
        report
            .notes
            .push(format!("{unread}: a tail DuckDB drops would go unreported"));
        None
    })
}

/// The steps of `policy` an open would try on damage of `class` to the DuckDB database at
/// `path`, in the ladder's order (each may still fail on what it finds); none for a class
/// recovery never acts on, or one the policy does not recover from. Changes nothing: for tools
/// that tell what an open would do.
pub fn applicable_steps(
    policy: &dyn RecoveryPolicy,
    class: FailureClass,
    path: &Path,
) -> Vec<RecoveryStep> {
    if !(class.may_be_recovered() && policy.recovers_from(class)) {
        return Vec::new();
    }
    policy
        .steps()
        .into_iter()
        .filter(|step| inapplicable(*step, class, path).is_none())
        .collect()
}

/// Why `step` cannot act on damage of `class` to the database at `path`, if it cannot: the WAL
/// steps cannot mend a damaged database file, a restore needs a snapshot, and the other steps
/// are SQLite's.
fn inapplicable(step: RecoveryStep, class: FailureClass, path: &Path) -> Option<String> {
    match step {
        RecoveryStep::SalvageWal | RecoveryStep::DiscardWal if !class.is_wal() => {
            Some("the damage is in the database file, not in its WAL".to_owned())
        }
        RecoveryStep::SalvageWal | RecoveryStep::DiscardWal => None,
        RecoveryStep::RestoreSnapshot => {
            let snapshot = sibling(path, SNAPSHOT_SUFFIX);
            (!snapshot.exists()).then(|| format!("there is no snapshot at {}", snapshot.display()))
        }
        other => Some(format!("{other} is not a DuckDB recovery step")),
    }
}

/// Walks the policy's ladder after `trigger` made the open fail (or, for a dropped tail, would
/// have lost data silently). Returns the opened connection (with `report.recovery` filled in) or
/// the error to propagate: the original one unless a step found a more specific one.
pub(crate) fn recover(
    options: &DuckDbOptions,
    trigger: Trigger,
    report: &mut OpenReport,
) -> Result<duckdb::Connection, OpenError> {
    let diagnosis = trigger.diagnosis();
    let damaged_file = match &trigger {
        Trigger::WalDamage(damage) => damage.file,
        _ => WalFile::Wal,
    };
    let class = diagnosis.class;
    let policy = &options.recovery_policy;
    if !(class.may_be_recovered() && policy.recovers_from(class)) {
        return Err(match trigger {
            Trigger::Engine(original) => options.engine_error(original),
            other => other.into_error(options, class, Vec::new(), Vec::new()),
        });
    }
    let cause = trigger.cause(&options.common.path);
    if WarnOnce::global().first(&report.label, "recovery") {
        tracing::warn!(
            target: "store::recovery",
            label = %report.label,
            path = %options.common.path.display(),
            class = %class,
            "{}: the write-ahead log cannot be replayed ({cause}); recovering with policy `{}`",
            report.label,
            policy.name()
        );
    }
    let mut failures: Vec<StepFailed> = Vec::new();
    let mut moved: Vec<MovedAside> = Vec::new();
    let intent = Intent {
        path: &options.common.path,
        class,
        cause: &cause,
    };
    for step in policy.steps() {
        let outcome = match (step, inapplicable(step, class, &options.common.path)) {
            (_, Some(reason)) => Err(StepFailure::skipped(reason)),
            (RecoveryStep::SalvageWal, None) => {
                salvage_wal(options, &diagnosis, damaged_file, &intent)
            }
            (RecoveryStep::DiscardWal, None) => discard_wal(options, &intent),
            (_, None) => restore_snapshot(options, &intent),
        };
        match outcome {
            Ok(recovered) => {
                moved.extend(recovered.moved_aside);
                let message = format!(
                    "{}: recovered by {step}; lost {}",
                    report.label, recovered.lost
                );
                // A crash loop recovers on every start: warn once per label and step, then inform.
                if WarnOnce::global().first(&report.label, &format!("recovered-by-{step}")) {
                    tracing::warn!(
                        target: "store::recovery",
                        label = %report.label,
                        step = %step,
                        moved_aside = moved.len(),
                        "{message}"
                    );
                } else {
                    tracing::info!(target: "store::recovery", label = %report.label, step = %step, "{message}");
                }
                report.recovery = Some(Recovery {
                    class,
                    cause,
                    step,
                    steps_failed: failures,
                    moved_aside: moved,
                    lost: recovered.lost,
                    interrupted: false,
                    salvage_boundary: recovered.salvage_boundary,
                });
                apply_retention(options);
                return Ok(recovered.connection);
            }
            Err(failure) => {
                tracing::info!(
                    target: "store::recovery",
                    step = %step,
                    reason = %failure.reason,
                    "recovery step did not open the database"
                );
                moved.extend(failure.moved_aside);
                failures.push(StepFailed::new(step, failure.cause, failure.reason));
                if let Some((class, source)) = failure.fatal {
                    settle_failed_recovery(options, report);
                    return Err(OpenError::Snapshot {
                        path: options.common.path.clone(),
                        snapshot: sibling(&options.common.path, SNAPSHOT_SUFFIX),
                        class,
                        recovery_failures: failures,
                        moved_aside: moved,
                        source,
                    });
                }
            }
        }
    }
    settle_failed_recovery(options, report);
    Err(trigger.into_error(options, class, failures, moved))
}

/// Prunes moved-aside groups when the user set a retention; otherwise (the default, keep
/// everything) says what lies beside the database, so that a crash loop filling the disk is seen
/// long before the disk is full.
fn apply_retention(options: &DuckDbOptions) {
    let Some(keep) = options.retention else {
        let kept = files::moved_aside_files(&options.common.path).unwrap_or_default();
        let bytes: u64 = kept
            .iter()
            .filter_map(|file| fs::metadata(&file.path).ok())
            .map(|metadata| metadata.len())
            .sum();
        tracing::warn!(
            target: "store::recovery",
            path = %options.common.path.display(),
            files = kept.len(),
            bytes,
            "{} moved-aside file(s), {bytes} bytes, are kept beside {}: nothing is deleted unless a \
             retention is set (DuckDbOptions::retention)",
            kept.len(),
            options.common.path.display()
        );
        return;
    };
    for reason in [REASON_SALVAGED, REASON_DISCARDED, REASON_BROKEN] {
        if let Err(error) = prune_moved_aside(&options.common.path, reason, keep) {
            tracing::warn!(target: "store::recovery", reason, error = %error, "retention could not prune");
        }
    }
}

/// A scratch directory of ours beside the database, removed on drop (it only ever holds copies).
struct Scratch(PathBuf);

impl Scratch {
    fn new(database: &Path) -> Result<Scratch, std::io::Error> {
        let path = private_sibling(database, "salvage");
        fs::create_dir(&path)?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Keeps every commit before the first bad entry of the damaged log: the WAL reader names where
/// the last whole, valid commit ends (for a WAL it does not know, the longest prefix that
/// replays is found on copies in a scratch directory opened read-only, never on the original:
/// the entry DuckDB named first, else by bisection); then the original log is set aside with the
/// prefix taking its name (at no instant is there no log), and the database opens, replaying it
/// once, and checkpoints. A damaged WAL takes its sidecars aside with it (they belong to the log
/// being replaced); a damaged checkpoint WAL goes aside alone, the WAL before it being whole.
fn salvage_wal(
    options: &DuckDbOptions,
    diagnosis: &Diagnosis,
    file: WalFile,
    intent: &Intent<'_>,
) -> Result<Recovered, StepFailure> {
    let path = &options.common.path;
    let log = sibling(path, file.suffix());
    if diagnosis.foreign_wal {
        return Err(StepFailure::skipped(
            "the WAL belongs to another database file: nothing in it can be replayed here",
        ));
    }
    let log_bytes = fs::read(&log).map_err(|error| {
        StepFailure::failed(
            FailureClass::from_io_error(&error),
            format!("cannot read {}: {error}", log.display()),
        )
    })?;
    let scratch = Scratch::new(path).map_err(|error| {
        StepFailure::failed(
            FailureClass::from_io_error(&error),
            format!("cannot make a scratch directory: {error}"),
        )
    })?;
    let reading = WalReading::read(&log_bytes);
    let (length, boundary) = match (reading.clone(), file) {
        // One pass over the framing names the end of the last whole, valid commit; the open of
        // the prefix below is its one replay (a prefix that does not open fails the step after
        // the original log is set aside, and the ladder goes on).
        (Ok(reading), _) if reading.commits > 0 => {
            tracing::debug!(
                target: "store::recovery",
                %file,
                commits = reading.commits,
                kept_bytes = reading.last_commit_end,
                tail = %reading.tail,
                "salvage cut read from the log's framing"
            );
            (reading.last_commit_end as usize, SalvageBoundary::WalReader)
        }
        // DuckDB replays an empty checkpoint WAL as none: every commit of the WAL before it
        // stays.
        (Ok(_), WalFile::CheckpointWal) => (0, SalvageBoundary::WalReader),
        (Ok(reading), _) => {
            return Err(StepFailure::skipped(format!(
                "{file} holds no whole commit before {}",
                reading.tail
            )));
        }
        (Err(unknown), WalFile::CheckpointWal) => {
            return Err(StepFailure::skipped(format!(
                "{file} cannot be cut: {unknown}"
            )));
        }
        (Err(unknown), _) => {
            tracing::info!(
                target: "store::recovery",
                reason = %unknown,
                "the WAL reader cannot cut this WAL; finding the cut by replaying prefixes"
            );
            // Replays of prefixes on a copy in the scratch directory, opened read-only: a plain
            // copy, since the directory is ours and goes when the step ends.
            let copy = scratch.0.join("database");
            fs::copy(path, &copy).map_err(|error| {
                StepFailure::failed(
                    FailureClass::from_io_error(&error),
                    format!("cannot copy the database: {error}"),
                )
            })?;
            let replays = |length: usize| -> bool {
                let copy_wal = sibling(&copy, ".wal");
                if fs::write(&copy_wal, &log_bytes[..length]).is_err() {
                    return false;
                }
                connect(&copy, true, &options.settings).is_ok()
            };
            let (length, boundary) = bisect(&log_bytes, diagnosis, replays)?;
            if length == 0 {
                return Err(StepFailure::skipped("no prefix of the WAL replays"));
            }
            (length, boundary)
        }
    };
    let prefix = scratch.0.join("prefix.wal");
    fs::write(&prefix, &log_bytes[..length]).map_err(|error| {
        StepFailure::failed(
            FailureClass::from_io_error(&error),
            format!("cannot write the salvaged log: {error}"),
        )
    })?;
    let (byte_offset, bytes) = (length as u64, (log_bytes.len() - length) as u64);
    let entries = match reading.as_ref().map(|reading| reading.tail) {
        Ok(
            WalTail::Torn { entries, .. }
            | WalTail::Uncommitted { entries, .. }
            | WalTail::ChecksumMismatch { entries, .. },
        ) => entries,
        _ => 0,
    };
    let lost = match (file, reading) {
        (WalFile::CheckpointWal, _) => DataLoss::CheckpointWalTail {
            byte_offset,
            bytes,
            entries,
        },
        // What DuckDB would have dropped without a word: said in bytes and entries.
        (_, Ok(reading))
            if boundary == SalvageBoundary::WalReader && reading.tail.is_dropped_silently() =>
        {
            DataLoss::DroppedWalTail {
                byte_offset,
                bytes,
                entries,
            }
        }
        _ => DataLoss::CommitsAfterWalByte { byte_offset },
    };
    intent.record(RecoveryStep::SalvageWal, &lost, REASON_SALVAGED)?;
    let replaced: Vec<SetAside<'_>> = match file {
        WalFile::CheckpointWal => vec![SetAside::replaced_by(file.suffix(), &prefix)],
        _ => SIDECAR_SUFFIXES
            .iter()
            .map(|suffix| match *suffix {
                ".wal" => SetAside::replaced_by(suffix, &prefix),
                _ => SetAside::emptied(suffix),
            })
            .collect(),
    };
    let moved =
        files::set_aside(path, REASON_SALVAGED, &replaced).map_err(|error| StepFailure {
            cause: StepCause::Failed(error.class()),
            reason: format!(
                "cannot put the salvaged WAL in place: {}",
                cause_chain(&error)
            ),
            moved_aside: error.already_moved().to_vec(),
            fatal: None,
        })?;
    let fail_after_move = |error: duckdb::Error, what: &str| StepFailure {
        cause: StepCause::Failed(crate::classify(&error)),
        reason: format!("{what}: {error}"),
        moved_aside: moved.clone(),
        fatal: None,
    };
    let connection = connect(path, false, &options.settings)
        .map_err(|error| fail_after_move(error, "the salvaged WAL does not open"))?;
    connection
        .execute_batch("CHECKPOINT")
        .map_err(|error| fail_after_move(error, "cannot checkpoint the salvaged WAL"))?;
    Ok(Recovered {
        connection,
        moved_aside: moved,
        lost,
        salvage_boundary: Some(boundary),
    })
}

/// The longest prefix of the WAL that replays, by asking DuckDB: the entry it named first, else
/// bisection. For a WAL the reader does not know (another version, an encrypted one), or one
/// whose reading did not replay.
fn bisect(
    wal_bytes: &[u8],
    diagnosis: &Diagnosis,
    mut replays: impl FnMut(usize) -> bool,
) -> Result<(usize, SalvageBoundary), StepFailure> {
    let mut count = 0u32;
    let mut replays = |length: usize| {
        count += 1;
        replays(length)
    };
    let named = diagnosis
        .bad_wal_entry_offset
        .and_then(|offset| usize::try_from(offset).ok())
        .filter(|offset| *offset <= wal_bytes.len());
    let length = match named {
        Some(offset) if replays(offset) => offset,
        _ => {
            // Invariant: the prefix of `good` bytes replays, the one of `bad` bytes does not.
            let (mut good, mut bad) = (0usize, wal_bytes.len());
            if !replays(good) {
                return Err(StepFailure::skipped("even an empty WAL does not replay"));
            }
            while bad - good > 1 {
                let middle = good + (bad - good) / 2;
                if replays(middle) {
                    good = middle;
                } else {
                    bad = middle;
                }
            }
            good
        }
    };
    Ok((length, SalvageBoundary::Bisection { replays: count }))
}

/// Sets the WAL and its sidecars aside, leaving their names empty, and opens at the last
/// checkpoint.
fn discard_wal(options: &DuckDbOptions, intent: &Intent<'_>) -> Result<Recovered, StepFailure> {
    let path = &options.common.path;
    if files::existing_sidecars(path, SIDECAR_SUFFIXES).is_ok_and(|found| found.is_empty()) {
        return Err(StepFailure::skipped("there is no WAL to discard"));
    }
    let lost = DataLoss::UncheckpointedCommits;
    intent.record(RecoveryStep::DiscardWal, &lost, REASON_DISCARDED)?;
    let moved = files::set_aside(
        path,
        REASON_DISCARDED,
        &SetAside::all_emptied(SIDECAR_SUFFIXES),
    )
    .map_err(|error| StepFailure {
        cause: StepCause::Failed(error.class()),
        reason: format!("cannot move the WAL aside: {}", cause_chain(&error)),
        moved_aside: error.already_moved().to_vec(),
        fatal: None,
    })?;
    if moved.is_empty() {
        return Err(StepFailure::skipped("there is no WAL to discard"));
    }
    match connect(path, false, &options.settings) {
        Ok(connection) => Ok(Recovered {
            connection,
            moved_aside: moved,
            lost,
            salvage_boundary: None,
        }),
        Err(error) => Err(StepFailure {
            cause: StepCause::Failed(crate::classify(&error)),
            reason: format!("the database does not open without its WAL: {error}"),
            moved_aside: moved,
            fatal: None,
        }),
    }
}

/// Restores `<db>.pre-migrate` after checking it: a DuckDB file whose schema version the policy
/// accepts. Only then are the database and its WAL set aside as `<db>.broken.<stamp>`, a copy of
/// the snapshot taking the database's name before the old WAL leaves its own (a cut between leaves
/// the restored file with a WAL DuckDB refuses as not its own, which the ladder discards with a
/// report); the caller migrates the restored database to the current version.
fn restore_snapshot(
    options: &DuckDbOptions,
    intent: &Intent<'_>,
) -> Result<Recovered, StepFailure> {
    let path = &options.common.path;
    let snapshot = sibling(path, SNAPSHOT_SUFFIX);
    let fatal = |class: FailureClass, error: StepError| StepFailure {
        cause: StepCause::Failed(class),
        reason: error.to_string(),
        moved_aside: Vec::new(),
        fatal: Some((class, error)),
    };
    if check_database_path(&snapshot, Engine::Duckdb, true, &[]).is_err() {
        return Err(fatal(
            FailureClass::NotADatabase,
            StepError::SnapshotNotADatabase,
        ));
    }
    // The version the snapshot was tagged with when it was taken, else asked of an instance.
    let snapshot_version = match store_core::schema_tag::read(&snapshot) {
        Some(version) => version,
        None => connect(&snapshot, true, &options.settings)
            .and_then(|connection| migrate::schema_version(&connection))
            .map_err(|error| fatal(crate::classify(&error), StepError::Duckdb(error)))?,
    };
    let target_version = options.common.migrations.latest_version();
    if !options
        .recovery_policy
        .accepts_snapshot(snapshot_version, target_version)
    {
        return Err(fatal(
            FailureClass::Other,
            StepError::SnapshotRejected {
                snapshot_version,
                target_version,
            },
        ));
    }
    let taken_at = fs::metadata(&snapshot)
        .and_then(|metadata| metadata.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let lost = DataLoss::EverythingSinceSnapshot { taken_at };
    intent.record(RecoveryStep::RestoreSnapshot, &lost, REASON_BROKEN)?;
    let mut replaced = vec![SetAside::replaced_by("", &snapshot)];
    replaced.extend(
        SIDECAR_SUFFIXES
            .iter()
            .map(|suffix| SetAside::emptied(suffix)),
    );
    let moved = files::set_aside(path, REASON_BROKEN, &replaced).map_err(|error| StepFailure {
        cause: StepCause::Failed(error.class()),
        reason: cause_chain(&error),
        moved_aside: error.already_moved().to_vec(),
        fatal: Some((error.class(), StepError::MoveAside(error))),
    })?;
    let fail_after_move = |class: FailureClass, error: StepError| StepFailure {
        cause: StepCause::Failed(class),
        reason: error.to_string(),
        moved_aside: moved.clone(),
        fatal: Some((class, error)),
    };
    let connection = connect(path, false, &options.settings)
        .map_err(|error| fail_after_move(crate::classify(&error), StepError::Duckdb(error)))?;
    Ok(Recovered {
        connection,
        moved_aside: moved,
        lost,
        salvage_boundary: None,
    })
}
