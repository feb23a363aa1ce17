//! Ownership records beside a database (`<db>.owner/record`, store-core's
//! [`ownership`](store_core::ownership)): what the checkup says of one, and the operator's
//! `store-doctor --release-ownership PATH [--owner-machine-is-down]`.
//!
//! The checkup only reads, through store-core's [`inspect_owner`]: the record read as a claim
//! reads it, and whether its owner lives as a claim asks it (its process with its start time, a
//! lock on the record). No lock is taken and nothing is written. The release is store-core's
//! [`release_ownership`], which refuses while the owner is provably alive.

use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};
use store_core::files::parent_directory;
use store_core::ownership::{
    Device, Evidence, MACHINE_DOWN_FLAG, OtherMachine, OwnerRecord, OwnerSeen, OwnershipError,
    RecordProblem, Released, inspect_owner, record_file, release_ownership,
};

use crate::verdict::EXIT_NO_INPUT;

/// Where the kernel says which boot this is.
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// The ownership record found beside a database, and what it means here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum OwnershipFinding {
    /// A whole record names the client that owns the database.
    Owned {
        /// The record's path.
        record: PathBuf,
        /// What it says.
        #[serde(serialize_with = "serialize_owner")]
        owner: OwnerRecord,
        /// Whether the owner is this machine, and alive.
        #[serde(flatten)]
        owner_is: OwnerIs,
    },
    /// What stands at the record's name is not a record store can use
    /// ([`RecordProblem`], as a claim would name it): a claim fails on it, and never
    /// overwrites it.
    BadRecord {
        /// The record, or its directory when that is what is wrong.
        path: PathBuf,
        /// What is wrong with it.
        #[serde(serialize_with = "serialize_problem")]
        problem: RecordProblem,
    },
    /// The record, or its directory, could not be read.
    Unreadable {
        /// What could not be read.
        path: PathBuf,
        /// What the operating system said.
        cause: String,
    },
}

/// Whose the owner in a record is, seen from the machine the doctor runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "owner_is", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum OwnerIs {
    /// This machine (the record's boot id is this boot's), and the owner is alive.
    ThisMachineAlive {
        /// What shows it alive.
        #[serde(serialize_with = "serialize_evidence")]
        evidence: Evidence,
        /// Whether it reaches the database through the mount the doctor does (the same
        /// device); another mount's owner refuses this mount's opens.
        through_this_mount: bool,
    },
    /// This machine, and the owner is gone (its process is not running and no process locks
    /// the record): the next open here takes it over and reports it.
    ThisMachineGone {
        /// Whether it reached the database through the mount the doctor does.
        through_this_mount: bool,
    },
    /// Another machine (another boot id): whether it lives cannot be seen from here.
    AnotherMachine,
}

fn serialize_owner<S: Serializer>(owner: &OwnerRecord, serializer: S) -> Result<S::Ok, S::Error> {
    OwnerFacts::from(owner).serialize(serializer)
}

/// An [`OwnerRecord`] in JSON.
#[derive(Debug, Serialize)]
struct OwnerFacts<'a> {
    host: &'a str,
    boot_id: &'a str,
    device: String,
    pid: u32,
    start_ticks: u64,
    since: String,
    record_inode: u64,
}

impl<'a> From<&'a OwnerRecord> for OwnerFacts<'a> {
    fn from(owner: &'a OwnerRecord) -> Self {
        OwnerFacts {
            host: &owner.host,
            boot_id: &owner.boot_id,
            device: owner.device.to_string(),
            pid: owner.pid,
            start_ticks: owner.start_ticks,
            since: owner.since_utc().rfc3339(),
            record_inode: owner.record_inode,
        }
    }
}

fn serialize_evidence<S: Serializer>(
    evidence: &Evidence,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(evidence_name(*evidence))
}

fn evidence_name(evidence: Evidence) -> &'static str {
    match evidence {
        Evidence::ProcessAlive => "process-alive",
        Evidence::LockHeld => "lock-held",
        Evidence::ThisProcess => "this-process",
    }
}

/// `{"problem": "truncated", "why": "truncated (it ends before its `end` line)"}`.
fn serialize_problem<S: Serializer>(
    problem: &RecordProblem,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct ProblemFacts {
        kind: &'static str,
        why: String,
    }
    ProblemFacts {
        kind: problem_name(problem),
        why: problem.to_string(),
    }
    .serialize(serializer)
}

fn problem_name(problem: &RecordProblem) -> &'static str {
    match problem {
        RecordProblem::Truncated => "truncated",
        RecordProblem::Incomplete => "incomplete",
        RecordProblem::ForeignDirectory { .. } => "foreign-directory",
        RecordProblem::NotADirectory => "not-a-directory",
        RecordProblem::Foreign { .. } => "foreign",
        RecordProblem::Malformed { .. } => "malformed",
        RecordProblem::TooLarge { .. } => "too-large",
        RecordProblem::SymbolicLink => "symbolic-link",
        RecordProblem::NotRegularFile => "not-regular-file",
        _ => "other",
    }
}

/// The ownership record beside `database`, if anything stands at its name, read as a claim reads
/// it ([`inspect_owner`]). Reads only.
pub(crate) fn examine(database: &Path) -> Option<OwnershipFinding> {
    let (owner, seen) = match inspect_owner(database) {
        Ok(found) => found?,
        Err(OwnershipError::BadRecord { path, problem }) => {
            return Some(OwnershipFinding::BadRecord { path, problem });
        }
        Err(error) => {
            return Some(OwnershipFinding::Unreadable {
                path: record_file(database),
                cause: store_core::cause_chain(&error),
            });
        }
    };
    let through_this_mount = fs::metadata(parent_directory(database))
        .is_ok_and(|metadata| Device::of_dev(metadata.dev()) == owner.device);
    let owner_is = match seen {
        OwnerSeen::AnotherMachine => OwnerIs::AnotherMachine,
        OwnerSeen::ThisMachineAlive(evidence) => OwnerIs::ThisMachineAlive {
            evidence,
            through_this_mount,
        },
        OwnerSeen::ThisMachineGone => OwnerIs::ThisMachineGone { through_this_mount },
    };
    Some(OwnershipFinding::Owned {
        record: record_file(database),
        owner,
        owner_is,
    })
}

/// This boot's id, to tell a record of this machine from another's.
fn read_boot_id() -> Option<String> {
    fs::read_to_string(BOOT_ID_PATH)
        .ok()
        .map(|text| text.trim_end().to_owned())
}

/// The exit code of a release that the owner's liveness refused, or that a record changing
/// under it kept from finishing: `EX_TEMPFAIL`, try again once the owner has stopped.
pub const EXIT_OWNER_ALIVE: u8 = 75;

/// The exit code of a release refused because another machine owns the database and the
/// operator did not assert it is down: `EX_NOPERM`.
pub const EXIT_OWNER_ON_ANOTHER_MACHINE: u8 = 77;

/// The exit code of a release that found a record store cannot read (foreign, malformed,
/// truncated, a symbolic link, ...), left as it is: `EX_DATAERR`.
pub const EXIT_BAD_RECORD: u8 = 65;

/// The exit code of a release that an operating-system call failed: `EX_IOERR`.
pub const EXIT_IO: u8 = 74;

/// What `store-doctor --release-ownership PATH` did, as text (`Display`) and JSON.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct ReleaseReport {
    /// Always `release-ownership`: tells this document from a checkup's.
    pub command: &'static str,
    /// The database named.
    pub path: PathBuf,
    /// Its record's path (`<db>.owner/record`).
    pub record: PathBuf,
    /// The process exit code.
    pub exit_code: u8,
    /// What was done, or why not.
    #[serde(flatten)]
    pub outcome: ReleaseOutcome,
}

/// What a release did, or why it did nothing.
#[derive(Debug, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ReleaseOutcome {
    /// The record was removed, durably: the next open from any machine claims the database.
    Removed {
        /// What the record said.
        #[serde(serialize_with = "serialize_owner")]
        owner: OwnerRecord,
        /// Whether it named this machine (else the operator asserted the other one down).
        this_machine: bool,
    },
    /// There was no record: the database was free. Nothing was changed.
    NoRecord,
    /// The owner is alive on this machine; nothing was changed.
    OwnerAlive {
        /// What the record says.
        #[serde(serialize_with = "serialize_owner")]
        owner: OwnerRecord,
        /// What shows it alive.
        #[serde(serialize_with = "serialize_evidence")]
        evidence: Evidence,
        /// store-core's words.
        error: String,
    },
    /// The owner is another machine, and it was not asserted down; nothing was changed.
    OwnerOnAnotherMachine {
        /// What the record says.
        #[serde(serialize_with = "serialize_owner")]
        owner: OwnerRecord,
        /// store-core's words, naming the flag that asserts it.
        error: String,
    },
    /// The record is not one store can read; it was left as it is.
    BadRecord {
        /// The record, or its directory.
        path: PathBuf,
        /// What is wrong with it.
        #[serde(serialize_with = "serialize_problem")]
        problem: RecordProblem,
        /// store-core's words.
        error: String,
    },
    /// The record kept changing while the release looked: try again.
    Busy {
        /// store-core's words.
        error: String,
    },
    /// Neither the database nor its directory exists.
    Missing {
        /// Why.
        error: String,
    },
    /// An operating-system call failed (reading or removing the record, reading the boot id).
    Failed {
        /// The error, with causes.
        error: String,
    },
}

impl ReleaseOutcome {
    /// The process exit code: 0 when the database is now free (removed, or no record),
    /// [`EXIT_OWNER_ALIVE`], [`EXIT_OWNER_ON_ANOTHER_MACHINE`], [`EXIT_BAD_RECORD`],
    /// [`EXIT_NO_INPUT`] or [`EXIT_IO`] otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ReleaseOutcome::Removed { .. } | ReleaseOutcome::NoRecord => 0,
            ReleaseOutcome::OwnerAlive { .. } | ReleaseOutcome::Busy { .. } => EXIT_OWNER_ALIVE,
            ReleaseOutcome::OwnerOnAnotherMachine { .. } => EXIT_OWNER_ON_ANOTHER_MACHINE,
            ReleaseOutcome::BadRecord { .. } => EXIT_BAD_RECORD,
            ReleaseOutcome::Missing { .. } => EXIT_NO_INPUT,
            ReleaseOutcome::Failed { .. } => EXIT_IO,
        }
    }

    /// Whether the database is now free (the exit code is 0).
    pub fn freed(&self) -> bool {
        self.exit_code() == 0
    }
}

/// Frees `database` for the next machine: [`release_ownership`] with
/// [`OtherMachine::Refuse`], or [`OtherMachine::AssertedDown`] when the operator asserts the
/// owner machine is down. Changes nothing but the record (and its directory), and that only
/// when it releases.
pub fn release(database: &Path, other_machine: OtherMachine) -> ReleaseReport {
    let record = record_file(database);
    let outcome = if parent_directory(database).is_dir() {
        let boot_id = read_boot_id();
        match release_ownership(database, other_machine) {
            Ok(Released::NoRecord) => ReleaseOutcome::NoRecord,
            Ok(Released::Removed { previous, .. }) => ReleaseOutcome::Removed {
                this_machine: boot_id.as_deref() == Some(previous.boot_id.as_str()),
                owner: previous,
            },
            Err(error) => refusal(error),
        }
    } else {
        ReleaseOutcome::Missing {
            error: format!(
                "{} does not exist, nor does its directory",
                database.display()
            ),
        }
    };
    ReleaseReport {
        command: "release-ownership",
        path: database.to_owned(),
        record,
        exit_code: outcome.exit_code(),
        outcome,
    }
}

fn refusal(error: OwnershipError) -> ReleaseOutcome {
    let words = store_core::cause_chain(&error);
    match error {
        OwnershipError::OwnerAlive {
            owner, evidence, ..
        } => ReleaseOutcome::OwnerAlive {
            owner,
            evidence,
            error: words,
        },
        OwnershipError::OwnerOnAnotherMachine { owner, .. } => {
            ReleaseOutcome::OwnerOnAnotherMachine {
                owner,
                error: words,
            }
        }
        OwnershipError::BadRecord { path, problem } => ReleaseOutcome::BadRecord {
            path,
            problem,
            error: words,
        },
        OwnershipError::Busy { .. } => ReleaseOutcome::Busy { error: words },
        _ => ReleaseOutcome::Failed { error: words },
    }
}

impl fmt::Display for ReleaseReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let database = self.path.display();
        let record = self.record.display();
        match &self.outcome {
            ReleaseOutcome::Removed {
                owner,
                this_machine,
            } => {
                let whose = if *this_machine {
                    "this machine; no process of it uses the database".to_owned()
                } else {
                    format!("another machine, asserted down with {MACHINE_DOWN_FLAG}")
                };
                writeln!(
                    formatter,
                    "ownership record {record} said: {owner} ({whose})"
                )?;
                writeln!(
                    formatter,
                    "removed: {database} is free; the next open, from any machine, claims it"
                )
            }
            ReleaseOutcome::NoRecord => writeln!(
                formatter,
                "no ownership record at {record}: {database} is owned by no one; nothing was changed"
            ),
            ReleaseOutcome::OwnerAlive { error, .. } => writeln!(
                formatter,
                "{error}\nnothing was changed: stop the owner's processes, then run this again"
            ),
            ReleaseOutcome::OwnerOnAnotherMachine { error, .. } => {
                writeln!(formatter, "{error}\nnothing was changed")
            }
            ReleaseOutcome::BadRecord { error, .. } | ReleaseOutcome::Busy { error } => {
                writeln!(formatter, "{error}\nnothing was changed")
            }
            ReleaseOutcome::Missing { error } | ReleaseOutcome::Failed { error } => {
                writeln!(formatter, "{error}")
            }
        }
    }
}

impl fmt::Display for OwnershipFinding {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OwnershipFinding::Owned {
                owner, owner_is, ..
            } => {
                write!(formatter, "owned by {owner}: ")?;
                match owner_is {
                    OwnerIs::ThisMachineAlive {
                        evidence,
                        through_this_mount: true,
                    } => write!(
                        formatter,
                        "this machine, alive ({evidence}); its processes share it"
                    ),
                    OwnerIs::ThisMachineAlive {
                        evidence,
                        through_this_mount: false,
                    } => write!(
                        formatter,
                        "this machine through another mount (device {}), alive ({evidence}); \
                         an open through this mount is refused while it is",
                        owner.device
                    ),
                    OwnerIs::ThisMachineGone { .. } => formatter.write_str(
                        "this machine, its process gone and no process holding the record: \
                         the next open here takes it over and reports it",
                    ),
                    OwnerIs::AnotherMachine => formatter.write_str(
                        "another machine, whose processes cannot be seen from here; an open \
                         from this machine is refused while it owns the database",
                    ),
                }
            }
            OwnershipFinding::BadRecord { path, problem } => write!(
                formatter,
                "ownership record {} is {problem}: an open that claims the database fails on it \
                 and never overwrites it; check that no other machine uses the database, then \
                 move it away",
                path.display()
            ),
            OwnershipFinding::Unreadable { path, cause } => write!(
                formatter,
                "ownership record {} is unreadable ({cause}): an open that claims the database \
                 fails on it",
                path.display()
            ),
        }
    }
}
