//! The "recovery pending" record, `<db>.recovery-pending`: written durably before a recovery step
//! changes any file, removed once the open that ran the step has returned its connection. A power
//! cut between the two leaves the step's files in place and a database that opens without
//! recovery; the record is how the next open still reports what the step lost.
//!
//! The record is a few `key value` lines that store parses back into types; the engine's words
//! (`cause`) are the only text kept as text. A record store cannot read is never deleted: it is
//! reported as "a recovery was interrupted; what it did is unknown" and set aside.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use store_core::pending::PendingRecovery;
//! use store_core::{DataLoss, FailureClass, RecoveryStep};
//!
//! let record = PendingRecovery {
//!     step: RecoveryStep::RestoreSnapshot,
//!     class: FailureClass::WalReplay,
//!     cause: "Failure while replaying WAL file".into(),
//!     lost: DataLoss::EverythingSinceSnapshot { taken_at: UNIX_EPOCH + Duration::from_secs(60) },
//!     reason: "broken".into(),
//!     started_at: UNIX_EPOCH + Duration::from_secs(90),
//! };
//! assert_eq!(PendingRecovery::parse(record.encode().as_bytes()), Ok(record));
//! ```

use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::files::{
    self, MoveAsideError, MovedAside, SetAside, WriteDurablyError, parent_directory, sibling,
    sync_directory,
};
use crate::time::UtcTime;
use crate::{DataLoss, FailureClass, Recovery, RecoveryStep};

/// Appended to the database path: `system.duckdb.recovery-pending`.
pub const PENDING_SUFFIX: &str = ".recovery-pending";

/// The reason an unreadable record is set aside under (`<db>.unreadable-record.<stamp>.recovery-pending`).
pub const UNREADABLE_REASON: &str = "unreadable-record";

/// The first line of every record, with the format's version.
const HEADER: &str = "store-recovery-pending 1";

/// A record is a few hundred bytes; anything far larger is not one of ours.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// The steps a record may name.
const STEPS: [RecoveryStep; 3] = [
    RecoveryStep::SalvageWal,
    RecoveryStep::DiscardWal,
    RecoveryStep::RestoreSnapshot,
];

fn parse_step(name: &str) -> Option<RecoveryStep> {
    let step = STEPS.into_iter().find(|step| step.as_str() == name)?;
    // Exhaustive on purpose: a step added to `RecoveryStep` stops this compiling until it is in
    // `STEPS`, so that every step a record is written for reads back.
    match step {
        RecoveryStep::SalvageWal | RecoveryStep::DiscardWal | RecoveryStep::RestoreSnapshot => {
            Some(step)
        }
    }
}

/// A recovery step about to change files, as its record says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecovery {
    /// The step.
    pub step: RecoveryStep,
    /// The class of the failure that started the recovery.
    pub class: FailureClass,
    /// The failure as the engine said it.
    pub cause: String,
    /// What the step loses once its files are in place.
    pub lost: DataLoss,
    /// The reason the step's moved-aside files are named by (`broken`, `salvaged-wal`).
    pub reason: String,
    /// When the record was written: the step's moved-aside files carry this stamp or a later one.
    pub started_at: SystemTime,
}

/// What is wrong with a record's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordDefect {
    /// Larger than any record store writes.
    #[error("larger than {MAX_RECORD_BYTES} bytes")]
    TooLarge,
    /// Not UTF-8 text.
    #[error("not UTF-8 text")]
    NotUtf8,
    /// The first line is not the header of a format this store reads.
    #[error("the first line is not `{HEADER}`")]
    Header,
    /// The last line has no newline: the record was cut short.
    #[error("the last line is not complete")]
    Truncated,
    /// A line that is not `key value`.
    #[error("line {line_number} is not `key value`")]
    NotKeyValue {
        /// 1-based.
        line_number: usize,
    },
    /// A key this format does not have.
    #[error("line {line_number} has an unknown key")]
    UnknownKey {
        /// 1-based.
        line_number: usize,
    },
    /// A key given twice.
    #[error("`{key}` is given twice")]
    Duplicate {
        /// The key.
        key: &'static str,
    },
    /// A key missing.
    #[error("`{key}` is missing")]
    Missing {
        /// The key.
        key: &'static str,
    },
    /// A value that does not parse.
    #[error("the value of `{key}` on line {line_number} does not parse")]
    BadValue {
        /// The key.
        key: &'static str,
        /// 1-based.
        line_number: usize,
    },
}

/// The record could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadPendingError {
    /// The operating system refused.
    #[error("cannot read {}", path.display())]
    Io {
        /// The record.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// Its content is not a record store wrote.
    #[error("{} is not a recovery record store can read", path.display())]
    Defect {
        /// The record.
        path: PathBuf,
        /// What is wrong.
        #[source]
        defect: RecordDefect,
    },
}

/// The record could not be written; the step must not change any file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordPendingError {
    /// The record would not read back as itself (a time before 1970, a reason with a dot).
    #[error("the recovery record for {} would not read back as written", path.display())]
    Unrepresentable {
        /// The record's path.
        path: PathBuf,
    },
    /// An unreadable record stood at the name and could not be set aside first.
    #[error("cannot set the unreadable recovery record aside")]
    SetAsideUnreadable(#[source] MoveAsideError),
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] WriteDurablyError),
    /// The record written does not read back.
    #[error("the recovery record does not read back")]
    ReadBack(#[source] ReadPendingError),
    /// The record written reads back as another.
    #[error("the recovery record at {} reads back differently", path.display())]
    ReadBackDiffers {
        /// The record's path.
        path: PathBuf,
    },
}

/// The record could not be removed (or, unreadable, set aside) after a successful open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClearPendingError {
    /// The operating system refused.
    #[error("cannot {operation} {}", path.display())]
    Io {
        /// `remove` or `sync`.
        operation: &'static str,
        /// The record or its directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// An unreadable record could not be set aside.
    #[error("cannot set the unreadable recovery record aside")]
    SetAsideUnreadable(#[source] MoveAsideError),
}

/// A recovery an earlier open began that a crash or power cut interrupted before that open
/// returned: found as a record at the start of an open.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InterruptedRecovery {
    /// Its record was read.
    Recorded(PendingRecovery),
    /// Its record could not be read: a recovery was interrupted, and what it did and lost is
    /// unknown. The record is set aside, never deleted.
    Unreadable {
        /// Why it could not be read, for a person.
        reason: String,
    },
}

/// `<database>.recovery-pending`.
pub fn record_path(database: &Path) -> PathBuf {
    sibling(database, PENDING_SUFFIX)
}

impl PendingRecovery {
    /// The record's text: a header line, then one `key value` line per field, the engine's cause
    /// last with backslashes, newlines and carriage returns escaped.
    pub fn encode(&self) -> String {
        format!(
            "{HEADER}\nstep {}\nclass {}\nlost {}\nreason {}\nstarted {}\ncause {}\n",
            self.step,
            self.class,
            encode_loss(&self.lost),
            self.reason,
            encode_time(self.started_at),
            escape(&self.cause),
        )
    }

    /// Parses a record's bytes; any defect is an error (never a guess).
    pub fn parse(bytes: &[u8]) -> Result<PendingRecovery, RecordDefect> {
        if bytes.len() as u64 > MAX_RECORD_BYTES {
            return Err(RecordDefect::TooLarge);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| RecordDefect::NotUtf8)?;
        let body = text.strip_suffix('\n').ok_or(RecordDefect::Truncated)?;
        let mut lines = body.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(RecordDefect::Header);
        }
        let mut step = None;
        let mut class = None;
        let mut lost = None;
        let mut reason = None;
        let mut started_at = None;
        let mut cause = None;
        for (index, line) in lines.enumerate() {
            let line_number = index + 2;
            let (key, value) = line
                .split_once(' ')
                .ok_or(RecordDefect::NotKeyValue { line_number })?;
            match key {
                "step" => set(&mut step, "step", line_number, parse_step(value))?,
                "class" => set(
                    &mut class,
                    "class",
                    line_number,
                    FailureClass::ALL
                        .into_iter()
                        .find(|class| class.as_str() == value),
                )?,
                "lost" => set(&mut lost, "lost", line_number, parse_loss(value))?,
                "reason" => set(
                    &mut reason,
                    "reason",
                    line_number,
                    files::is_valid_reason(value).then(|| value.to_owned()),
                )?,
                "started" => set(&mut started_at, "started", line_number, parse_time(value))?,
                "cause" => set(&mut cause, "cause", line_number, unescape(value))?,
                _ => return Err(RecordDefect::UnknownKey { line_number }),
            }
        }
        Ok(PendingRecovery {
            step: step.ok_or(RecordDefect::Missing { key: "step" })?,
            class: class.ok_or(RecordDefect::Missing { key: "class" })?,
            cause: cause.ok_or(RecordDefect::Missing { key: "cause" })?,
            lost: lost.ok_or(RecordDefect::Missing { key: "lost" })?,
            reason: reason.ok_or(RecordDefect::Missing { key: "reason" })?,
            started_at: started_at.ok_or(RecordDefect::Missing { key: "started" })?,
        })
    }

    /// The files the step moved aside for `database`, found by their names: its reason, stamped
    /// no earlier than the record. Empty where the directory cannot be listed.
    pub fn moved_aside(&self, database: &Path) -> Vec<MovedAside> {
        let since = UtcTime::from_system_time(self.started_at).compact();
        files::moved_aside_files(database)
            .unwrap_or_default()
            .into_iter()
            .filter(|file| file.reason == self.reason && file.stamp >= since)
            .map(|file| MovedAside {
                from: file.moved_from(database),
                to: file.path,
            })
            .collect()
    }

    /// The recovery as an open that finds the step done reports it: `interrupted`, no failed
    /// steps known, the files it moved found by name.
    pub fn to_recovery(&self, database: &Path) -> Recovery {
        Recovery {
            class: self.class,
            cause: self.cause.clone(),
            step: self.step,
            steps_failed: Vec::new(),
            moved_aside: self.moved_aside(database),
            lost: self.lost.clone(),
            interrupted: true,
            salvage_boundary: None,
        }
    }
}

/// Fills a field of a record being parsed: once, with a value that parsed.
fn set<T>(
    slot: &mut Option<T>,
    key: &'static str,
    line_number: usize,
    parsed: Option<T>,
) -> Result<(), RecordDefect> {
    if slot.is_some() {
        return Err(RecordDefect::Duplicate { key });
    }
    *slot = Some(parsed.ok_or(RecordDefect::BadValue { key, line_number })?);
    Ok(())
}

/// Reads the record of `database`: `None` if there is none.
pub fn read(database: &Path) -> Result<Option<PendingRecovery>, ReadPendingError> {
    let path = record_path(database);
    let io_failed = |source| ReadPendingError::Io {
        path: path.clone(),
        source,
    };
    let file = match fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_failed(error)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_failed)?;
    PendingRecovery::parse(&bytes)
        .map(Some)
        .map_err(|defect| ReadPendingError::Defect {
            path: path.clone(),
            defect,
        })
}

/// What an open finds at its start: the interrupted recovery, if a record stands.
pub fn find(database: &Path) -> Option<InterruptedRecovery> {
    match read(database) {
        Ok(record) => record.map(InterruptedRecovery::Recorded),
        Err(error) => Some(InterruptedRecovery::Unreadable {
            reason: crate::cause_chain(&error),
        }),
    }
}

/// Writes the record of `database` durably, before a step changes anything: checked to read back
/// as itself before it is written and after. A record standing there that store cannot read is
/// set aside first (never overwritten); a readable one is replaced.
pub fn record(database: &Path, pending: &PendingRecovery) -> Result<(), RecordPendingError> {
    let path = record_path(database);
    let text = pending.encode();
    if PendingRecovery::parse(text.as_bytes()).as_ref() != Ok(pending) {
        return Err(RecordPendingError::Unrepresentable { path });
    }
    if matches!(read(database), Err(ReadPendingError::Defect { .. })) {
        set_aside_unreadable(database).map_err(RecordPendingError::SetAsideUnreadable)?;
    }
    files::write_durably(&path, text.as_bytes())?;
    match read(database) {
        Ok(Some(written)) if written == *pending => {}
        Ok(_) => return Err(RecordPendingError::ReadBackDiffers { path }),
        Err(error) => return Err(RecordPendingError::ReadBack(error)),
    }
    tracing::debug!(
        target: "store::recovery",
        path = %path.display(),
        step = %pending.step,
        "recovery pending recorded"
    );
    Ok(())
}

/// Removes the record of `database` once the open it belongs to has returned, and makes the
/// removal durable. A record store cannot read is set aside instead. No record: nothing to do.
pub fn clear(database: &Path) -> Result<(), ClearPendingError> {
    let path = record_path(database);
    match read(database) {
        Ok(None) => return Ok(()),
        Ok(Some(_)) => {}
        Err(ReadPendingError::Defect { .. }) => {
            return set_aside_unreadable(database)
                .map(drop)
                .map_err(ClearPendingError::SetAsideUnreadable);
        }
        // Unreadable for the operating system: leave it for the next open to try.
        Err(ReadPendingError::Io { source, .. }) => {
            return Err(ClearPendingError::Io {
                operation: "read",
                path,
                source,
            });
        }
    }
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ClearPendingError::Io {
                operation: "remove",
                path,
                source,
            });
        }
    }
    let directory = parent_directory(database);
    sync_directory(&directory).map_err(|source| ClearPendingError::Io {
        operation: "sync",
        path: directory,
        source,
    })?;
    tracing::debug!(target: "store::recovery", path = %path.display(), "recovery pending cleared");
    Ok(())
}

fn set_aside_unreadable(database: &Path) -> Result<Vec<MovedAside>, MoveAsideError> {
    let moved = files::set_aside(
        database,
        UNREADABLE_REASON,
        &[SetAside::emptied(PENDING_SUFFIX)],
    )?;
    for file in &moved {
        tracing::warn!(
            target: "store::recovery",
            from = %file.from.display(),
            to = %file.to.display(),
            "an unreadable recovery record was set aside"
        );
    }
    Ok(moved)
}

fn encode_time(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    format!(
        "{}.{:09}",
        since_epoch.as_secs(),
        since_epoch.subsec_nanos()
    )
}

fn parse_time(text: &str) -> Option<SystemTime> {
    let (seconds, nanoseconds) = text.split_once('.')?;
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    if !digits(seconds) || nanoseconds.len() != 9 || !digits(nanoseconds) {
        return None;
    }
    let since_epoch = Duration::new(seconds.parse().ok()?, nanoseconds.parse().ok()?);
    UNIX_EPOCH.checked_add(since_epoch)
}

fn encode_loss(lost: &DataLoss) -> String {
    match lost {
        DataLoss::Nothing => "nothing".to_owned(),
        DataLoss::CommitsAfterWalByte { byte_offset } => {
            format!("commits-after-wal-byte {byte_offset}")
        }
        DataLoss::DroppedWalTail {
            byte_offset,
            bytes,
            entries,
        } => format!("dropped-wal-tail {byte_offset},{bytes},{entries}"),
        DataLoss::CheckpointWalTail {
            byte_offset,
            bytes,
            entries,
        } => format!("checkpoint-wal-tail {byte_offset},{bytes},{entries}"),
        DataLoss::UncheckpointedCommits => "uncheckpointed-commits".to_owned(),
        DataLoss::EverythingSinceSnapshot { taken_at } => {
            format!("everything-since-snapshot {}", encode_time(*taken_at))
        }
    }
}

fn parse_loss(text: &str) -> Option<DataLoss> {
    let (kind, value) = match text.split_once(' ') {
        Some((kind, value)) => (kind, Some(value)),
        None => (text, None),
    };
    match (kind, value) {
        ("nothing", None) => Some(DataLoss::Nothing),
        ("uncheckpointed-commits", None) => Some(DataLoss::UncheckpointedCommits),
        ("commits-after-wal-byte", Some(offset))
            if offset.bytes().all(|byte| byte.is_ascii_digit()) =>
        {
            Some(DataLoss::CommitsAfterWalByte {
                byte_offset: offset.parse().ok()?,
            })
        }
        ("dropped-wal-tail", Some(numbers)) => {
            let [byte_offset, bytes, entries] = three_numbers(numbers)?;
            Some(DataLoss::DroppedWalTail {
                byte_offset,
                bytes,
                entries,
            })
        }
        ("checkpoint-wal-tail", Some(numbers)) => {
            let [byte_offset, bytes, entries] = three_numbers(numbers)?;
            Some(DataLoss::CheckpointWalTail {
                byte_offset,
                bytes,
                entries,
            })
        }
        ("everything-since-snapshot", Some(time)) => Some(DataLoss::EverythingSinceSnapshot {
            taken_at: parse_time(time)?,
        }),
        _ => None,
    }
}

/// Exactly three decimal numbers separated by commas.
fn three_numbers(text: &str) -> Option<[u64; 3]> {
    let mut numbers = text.split(',').map(|number| {
        number
            .bytes()
            .all(|byte| byte.is_ascii_digit())
            .then(|| number.parse::<u64>().ok())
            .flatten()
    });
    let three = [numbers.next()??, numbers.next()??, numbers.next()??];
    numbers.next().is_none().then_some(three)
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn unescape(text: &str) -> Option<String> {
    let mut unescaped = String::with_capacity(text.len());
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        if character != '\\' {
            unescaped.push(character);
            continue;
        }
        match characters.next()? {
            '\\' => unescaped.push('\\'),
            'n' => unescaped.push('\n'),
            'r' => unescaped.push('\r'),
            _ => return None,
        }
    }
    Some(unescaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn restore() -> PendingRecovery {
        PendingRecovery {
            step: RecoveryStep::RestoreSnapshot,
            class: FailureClass::WalReplay,
            cause: "Failure while replaying WAL file \"a.wal\":\nline two \\ with a backslash\r"
                .into(),
            lost: DataLoss::EverythingSinceSnapshot {
                taken_at: UNIX_EPOCH + Duration::new(1_795_297_863, 123_456_789),
            },
            reason: "broken".into(),
            started_at: UNIX_EPOCH + Duration::new(1_795_297_900, 5),
        }
    }

    #[test]
    fn every_step_class_and_loss_reads_back_as_written() {
        let losses = [
            DataLoss::Nothing,
            DataLoss::CommitsAfterWalByte { byte_offset: 4096 },
            DataLoss::DroppedWalTail {
                byte_offset: 4096,
                bytes: 77,
                entries: 2,
            },
            DataLoss::CheckpointWalTail {
                byte_offset: 37,
                bytes: 140,
                entries: 3,
            },
            DataLoss::UncheckpointedCommits,
            DataLoss::EverythingSinceSnapshot {
                taken_at: UNIX_EPOCH,
            },
        ];
        for step in STEPS {
            for class in FailureClass::ALL {
                for lost in &losses {
                    let record = PendingRecovery {
                        step,
                        class,
                        lost: lost.clone(),
                        ..restore()
                    };
                    let text = record.encode();
                    assert_eq!(
                        PendingRecovery::parse(text.as_bytes()),
                        Ok(record),
                        "{text}"
                    );
                }
            }
        }
        let text = restore().encode();
        assert_eq!(
            text.lines().count(),
            7,
            "the cause stays on one line: {text}"
        );
    }

    #[test]
    fn bad_content_is_a_typed_defect() {
        let good = restore().encode();
        let cases: Vec<(Vec<u8>, RecordDefect)> = vec![
            (Vec::new(), RecordDefect::Truncated),
            (vec![0xff, b'\n'], RecordDefect::NotUtf8),
            (
                vec![b'x'; MAX_RECORD_BYTES as usize + 1],
                RecordDefect::TooLarge,
            ),
            (b"store-recovery-pending 2\n".to_vec(), RecordDefect::Header),
            (
                good.trim_end_matches('\n').as_bytes().to_vec(),
                RecordDefect::Truncated,
            ),
            (
                good.replace("restore-snapshot", "reboot").into_bytes(),
                RecordDefect::BadValue {
                    key: "step",
                    line_number: 2,
                },
            ),
            (
                good.replace("WalReplay", "walreplay").into_bytes(),
                RecordDefect::BadValue {
                    key: "class",
                    line_number: 3,
                },
            ),
            (
                good.replace("123456789", "1234").into_bytes(),
                RecordDefect::BadValue {
                    key: "lost",
                    line_number: 4,
                },
            ),
            (
                good.replace("reason broken", "reason ../x").into_bytes(),
                RecordDefect::BadValue {
                    key: "reason",
                    line_number: 5,
                },
            ),
            (
                good.replace("\\n", "\\q").into_bytes(),
                RecordDefect::BadValue {
                    key: "cause",
                    line_number: 7,
                },
            ),
            (
                good.replace("reason broken\n", "").into_bytes(),
                RecordDefect::Missing { key: "reason" },
            ),
            (
                format!("{good}step discard-wal\n").into_bytes(),
                RecordDefect::Duplicate { key: "step" },
            ),
            (
                format!("{good}colour blue\n").into_bytes(),
                RecordDefect::UnknownKey { line_number: 8 },
            ),
            (
                format!("{good}\n").into_bytes(),
                RecordDefect::NotKeyValue { line_number: 8 },
            ),
        ];
        for (bytes, defect) in cases {
            assert_eq!(
                PendingRecovery::parse(&bytes),
                Err(defect.clone()),
                "{}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            );
        }
    }

    #[test]
    fn a_record_is_written_read_and_cleared_durably() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("system.duckdb");
        assert!(read(&database)?.is_none());
        assert_eq!(find(&database), None);
        clear(&database)?;

        record(&database, &restore())?;
        assert_eq!(read(&database)?, Some(restore()));
        assert_eq!(
            find(&database),
            Some(InterruptedRecovery::Recorded(restore()))
        );
        // A later step of the same ladder replaces it.
        let discard = PendingRecovery {
            step: RecoveryStep::DiscardWal,
            lost: DataLoss::UncheckpointedCommits,
            reason: "discarded-wal".into(),
            ..restore()
        };
        record(&database, &discard)?;
        assert_eq!(read(&database)?, Some(discard));
        clear(&database)?;
        assert!(!record_path(&database).exists());
        let names: Vec<_> = fs::read_dir(directory.path())?.collect();
        assert!(names.is_empty(), "nothing left: {names:?}");
        Ok(())
    }

    #[test]
    fn a_record_that_cannot_be_read_is_reported_and_set_aside_never_deleted() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("system.duckdb");
        let garbage = b"store-recovery-pending 1\nstep rest";
        fs::write(record_path(&database), garbage)?;
        let error = read(&database).unwrap_err();
        assert!(
            matches!(
                error,
                ReadPendingError::Defect {
                    defect: RecordDefect::Truncated,
                    ..
                }
            ),
            "{error:?}"
        );
        let Some(InterruptedRecovery::Unreadable { reason }) = find(&database) else {
            panic!("an unreadable record is an interrupted recovery");
        };
        assert!(reason.contains("not complete"), "{reason}");

        // Writing a new record keeps the old bytes under a set-aside name.
        record(&database, &restore())?;
        let aside = files::moved_aside_files(&database)?;
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(aside[0].reason, UNREADABLE_REASON);
        assert_eq!(aside[0].suffix, PENDING_SUFFIX);
        assert_eq!(fs::read(&aside[0].path)?, garbage);
        assert_eq!(read(&database)?, Some(restore()));

        // Clearing an unreadable record sets it aside too.
        fs::write(record_path(&database), b"\xff")?;
        clear(&database)?;
        assert!(!record_path(&database).exists());
        let aside = files::moved_aside_files(&database)?;
        assert_eq!(aside.len(), 2, "{aside:?}");
        assert!(
            aside
                .iter()
                .any(|file| fs::read(&file.path).ok() == Some(b"\xff".to_vec()))
        );
        Ok(())
    }

    #[test]
    fn a_record_that_would_not_read_back_is_refused_before_writing() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("system.duckdb");
        let odd = PendingRecovery {
            reason: "not.a.reason".into(),
            ..restore()
        };
        assert!(matches!(
            record(&database, &odd),
            Err(RecordPendingError::Unrepresentable { .. })
        ));
        assert!(!record_path(&database).exists());
        Ok(())
    }

    #[test]
    fn the_moved_files_of_the_step_are_found_by_reason_and_stamp() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("system.duckdb");
        let pending = restore();
        let stamp = UtcTime::from_system_time(pending.started_at).compact();
        for name in [
            format!("system.duckdb.broken.{stamp}"),
            format!("system.duckdb.broken.{stamp}.wal"),
            // Older than the record, or another reason: not the step's.
            "system.duckdb.broken.20200101T000000Z".to_owned(),
            format!("system.duckdb.discarded-wal.{stamp}.wal"),
        ] {
            fs::write(directory.path().join(name), b"x")?;
        }
        let recovery = pending.to_recovery(&database);
        assert!(recovery.interrupted);
        assert_eq!(recovery.step, RecoveryStep::RestoreSnapshot);
        assert_eq!(recovery.lost, pending.lost);
        assert_eq!(
            recovery.moved_aside,
            [
                MovedAside {
                    from: database.clone(),
                    to: directory
                        .path()
                        .join(format!("system.duckdb.broken.{stamp}")),
                },
                MovedAside {
                    from: sibling(&database, ".wal"),
                    to: directory
                        .path()
                        .join(format!("system.duckdb.broken.{stamp}.wal")),
                },
            ]
        );
        Ok(())
    }
}
