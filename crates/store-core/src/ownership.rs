//! Ownership by one client: which machine, through which mount of its filesystem, may use a
//! database, recorded beside it before an engine opens it.
//!
//! Two machines writing one database on a share lose commits without a word: each keeps its own
//! page cache, its own shared memory and, on many shares, its own byte-range locks (issue 24,
//! DESIGN.md section 10). The record `<database>.owner/record` names the one client that may use
//! the database; every other client is refused at once, and nothing of its files changes.
//!
//! - **The client** is a machine, named by its boot id (`/proc/sys/kernel/random/boot_id`, never
//!   its host name: two test hosts, or two containers, may share one), together with the
//!   filesystem it reaches the database through, named by the device of the database's directory.
//!   Two mounts of one share (two sshfs connections) are two devices, two page caches: two
//!   clients. A bind mount of the same mount, in this namespace or a container's, is the same
//!   device and the same page cache: one client (its statx mount id would differ; see
//!   [`OwnerRecord::device`]).
//! - **Processes of one client** share the database: the engine's own locks and shared memory
//!   coordinate them. Each holding process keeps a shared open-file-description lock
//!   (`F_OFD_SETLK`) on the record, never on the database file (closing any descriptor of the
//!   database would drop SQLite's POSIX locks), and an OFD lock survives the close of any other
//!   descriptor of the record. When the last [`Ownership`] of this process goes, it tries to
//!   lock the record exclusively; if no other process holds it, it removes the record, then its
//!   directory, and fsyncs the database's directory, so the next machine may open at once.
//! - **A crashed owner on this machine** (its process gone, or its PID reused by a process that
//!   started at another time, and no process holding the record's lock) is taken over, and the
//!   [`Claim`] says so for the open's report.
//! - **An owner on another machine** is never taken over: [`OwnershipError::OwnedElsewhere`]
//!   names it and the remedy, [`release_ownership`], which refuses while the owner is provably
//!   alive and frees another machine's record only when the operator asserts that machine is
//!   down.
//!
//! # Layout and creation
//!
//! The name beside the database, `<database>.owner` ([`RECORD_SUFFIX`]), is a directory, and the
//! record is the file [`RECORD_FILE`] inside it. The claim that creates the directory with
//! `mkdir` owns the database; it alone then creates the record in it as [`RECORD_WRITING`],
//! locks it (shared), writes it whole, fsyncs it, renames it to [`RECORD_FILE`] (so that no
//! client ever reads a part of it under that name: a client's cache keeps serving the part it
//! read, measured on sshfs and smbnetfs), and fsyncs the directory and the database's
//! directory. `mkdir`, not `O_CREAT|O_EXCL`: raced from two client mounts 100 times
//! (store-testkit's `shares` module), `mkdir` gave exactly one winner on sshfs, smbnetfs and
//! glusterfs, while `O_EXCL` gave two winners in most races on smbnetfs and, on sshfs, a loser
//! refused `EPERM` rather than `EEXIST` (`link` and `symlink` do not exist on smbnetfs).
//! Store-testkit's `ownership_on_shares` test races two machines, and two mounts of one
//! machine, for the record 100 times on each share.
//!
//! Every claim tries `mkdir` first and reads what stands there only when that fails: an
//! exclusive creation makes the kernel look the name up again, where a plain look may be
//! answered by the client's cache with a record another client has already removed (measured on
//! glusterfs). Client caches still show a removed record for a while to a client that had read
//! it (measured: about 0.2 s on glusterfs, 20 s on sshfs, sshfs's cache timeout): its claims
//! meanwhile are refused with a typed error (the former owner, or an incomplete record), never
//! given a second ownership; a client that had not read it claims at once.
//!
//! A release removes the record, then its directory, then fsyncs the database's directory. The
//! record goes while still open where the share allows it (libfuse's high-level clients,
//! sshfs and smbnetfs, keep a file removed while open as `.fuse_hidden*` until it closes; the
//! directory's removal waits for that); SMB refuses to remove an open file, so there it is
//! closed first, and a process of this client that opened it in that moment keeps it (SMB
//! refuses the removal while it is open), which is then that process's record.
//!
//! A directory without its complete record is being written: a claim waits for it (as long as
//! its writer's lock is visible, else a short grace, since the writer may be another client),
//! then gives up with [`RecordProblem::Incomplete`] (no record file) or
//! [`RecordProblem::Truncated`] (part of one). That is also how the rare race on glusterfs in
//! which both `mkdir`s fail `EEXIST` while the directory stands, made by neither, ends: both
//! claims refused with a typed error, never two owners.
//!
//! Bad input: a record that is unreadable, truncated, of another format, a symbolic link or
//! anything but a regular file, and at the name a symbolic link, a regular file (such as a
//! record of the format before this one) or a directory holding anything but the record, is a
//! typed error naming the path and what is wrong with it, and it is never overwritten or removed
//! by a claim.
//!
//! ```
//! use store_core::ownership::{Claim, Ownership, Release};
//!
//! let directory = tempfile::tempdir()?;
//! let database = directory.path().join("app.db");
//! let first = Ownership::claim(&database)?;
//! assert_eq!(first.claimed(), &Claim::Created);
//! let second = Ownership::claim(&database)?; // another connection of this process
//! assert!(matches!(second.claimed(), Claim::Joined { .. }));
//! assert_eq!(second.release()?, Release::StillHeldHere);
//! assert_eq!(first.release()?, Release::Removed);
//! assert!(!directory.path().join("app.db.owner").exists());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The record (`app.db.owner/record`), one `key value` line each, in this order, ending with
//! `end`:
//!
//! ```text
//! store-owner 1
//! host node-a
//! boot-id 8d401bf2-0c0a-44f6-a563-74ef1fb8d8bc
//! device 0:52
//! pid 4242
//! start-ticks 1234567
//! since 2026-12-06T10:00:00Z 1796551200
//! record-inode 98765
//! end
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::files::{parent_directory, sibling, sync_directory};
use crate::fs::PathStat;
use crate::time::UtcTime;

/// The suffix of the name beside a database that holds its record: `app.db` is owned through
/// the directory `app.db.owner`, whose creation (`mkdir`) is the claim.
pub const RECORD_SUFFIX: &str = ".owner";

/// The record's file name inside that directory: `app.db.owner/record`.
pub const RECORD_FILE: &str = "record";

/// The record's name in its directory while it is being written; renamed to [`RECORD_FILE`]
/// once whole and synced.
pub const RECORD_WRITING: &str = "record.writing";

/// The record of `database`: `<database>.owner/record`.
pub fn record_file(database: &Path) -> PathBuf {
    sibling(database, RECORD_SUFFIX).join(RECORD_FILE)
}

/// The first line of a record of this format, its version included.
pub const MAGIC: &str = "store-owner 1";

/// The operator's command that frees a database, as the errors name it (store-doctor's).
pub const RELEASE_COMMAND: &str = "store-doctor --release-ownership";

/// The flag by which the operator asserts that another machine owning a database is down.
pub const MACHINE_DOWN_FLAG: &str = "--owner-machine-is-down";

/// Where the kernel says which boot this is.
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// More than any record holds: a larger file is not one.
const MAX_RECORD_BYTES: u64 = 4096;

/// How long a claim waits for a record another process of this machine is writing, taking over
/// or removing (all three take moments) before it gives up with [`OwnershipError::Busy`].
const PATIENCE: Duration = Duration::from_secs(5);

/// How long an unfinished record that no process visibly locks may stay unfinished before it is
/// called truncated: its writer may be another client, whose locks this one cannot see.
const GRACE: Duration = Duration::from_secs(1);

/// The pause between two looks at a record that is changing.
const RETRY: Duration = Duration::from_millis(5);

/// The device a database's directory is on, as `major:minor` of its `st_dev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Device {
    /// The major number.
    pub major: u32,
    /// The minor number.
    pub minor: u32,
}

impl Device {
    /// The device number `st_dev` names, split as the kernel prints it.
    pub fn of_dev(dev: u64) -> Device {
        Device {
            major: libc::major(dev),
            minor: libc::minor(dev),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.major, self.minor)
    }
}

/// What an ownership record says: which client owns the database, through which process, since
/// when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRecord {
    /// The owner's host name, for people: a machine is told by [`OwnerRecord::boot_id`].
    pub host: String,
    /// The owner machine's boot id: what tells one machine (and one boot of it) from another.
    pub boot_id: String,
    /// The device of the database's directory on the owner machine: with the boot id, the
    /// client. A device, not a statx mount id: the page cache and the kernel's locks belong to
    /// the filesystem instance (the superblock, one device), which every bind mount of it and
    /// every mount namespace shares, while each of those has a mount id of its own.
    pub device: Device,
    /// The process that wrote the record.
    pub pid: u32,
    /// When that process started, in clock ticks since boot (`/proc/PID/stat` field 22): a PID
    /// reused by a later process is not the owner.
    pub start_ticks: u64,
    /// When the record was written, to the second.
    pub since: SystemTime,
    /// The record file's inode as its writer sees it: with [`OwnerRecord::device`], where the
    /// kernel's lock table shows a lock on it, whichever mount the reader goes through.
    pub record_inode: u64,
}

impl OwnerRecord {
    /// [`OwnerRecord::since`] as a UTC calendar time.
    pub fn since_utc(&self) -> UtcTime {
        UtcTime::from_system_time(self.since)
    }

    fn since_seconds(&self) -> u64 {
        self.since
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs()
    }

    /// The record's bytes, in the format [`parse_record`] reads.
    pub fn render(&self) -> String {
        format!(
            "{MAGIC}\nhost {}\nboot-id {}\ndevice {}\npid {}\nstart-ticks {}\nsince {} {}\nrecord-inode {}\nend\n",
            self.host,
            self.boot_id,
            self.device,
            self.pid,
            self.start_ticks,
            self.since_utc().rfc3339(),
            self.since_seconds(),
            self.record_inode,
        )
    }
}

impl fmt::Display for OwnerRecord {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "host {} (boot id {}), process {}, since {}",
            self.host,
            self.boot_id,
            self.pid,
            self.since_utc().rfc3339()
        )
    }
}

/// What is wrong with a record, or with what stands at its directory's name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordProblem {
    /// It ends before its `end` line, and no writer finished it in time.
    Truncated,
    /// The record's directory stands without a record in it, and no writer made one in time: a
    /// claim that died between the two, or a `mkdir` raced on glusterfs that both racers lost
    /// while the directory was made.
    Incomplete,
    /// The record's directory holds something other than the record (and no record): not
    /// store's.
    ForeignDirectory {
        /// The names in it (lossily decoded, at most 5, sorted).
        entries: Vec<String>,
    },
    /// At the directory's name is something other than a directory: a regular file (a record
    /// of the format before this one, or another program's), a FIFO, a socket or a device.
    NotADirectory,
    /// Its first line is not [`MAGIC`]: another program's file, or another version's record.
    Foreign {
        /// Its first line (lossily decoded, at most 80 characters).
        first_line: String,
    },
    /// A line is not what the format puts there.
    Malformed {
        /// The line's number, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// It is larger than any record.
    TooLarge {
        /// Its size.
        bytes: u64,
    },
    /// It is a symbolic link.
    SymbolicLink,
    /// It is a directory, a FIFO, a socket or a device.
    NotRegularFile,
}

impl fmt::Display for RecordProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordProblem::Truncated => {
                formatter.write_str("truncated (it ends before its `end` line)")
            }
            RecordProblem::Incomplete => write!(
                formatter,
                "incomplete (a directory without its `{RECORD_FILE}`, which no claim finished; \
                 on a share, a client's cache may also show it for a while after another client \
                 removed it)"
            ),
            RecordProblem::ForeignDirectory { entries } => write!(
                formatter,
                "a directory that is not store's (it holds {}, not `{RECORD_FILE}`)",
                entries.join(", ")
            ),
            RecordProblem::NotADirectory => {
                formatter.write_str("not a directory (an ownership record's name holds one)")
            }
            RecordProblem::Foreign { first_line } => write!(
                formatter,
                "not an ownership record of this format (its first line is `{first_line}`, expected `{MAGIC}`)"
            ),
            RecordProblem::Malformed { line, reason } => {
                write!(formatter, "malformed at line {line}: {reason}")
            }
            RecordProblem::TooLarge { bytes } => {
                write!(formatter, "{bytes} bytes long, more than a record holds")
            }
            RecordProblem::SymbolicLink => formatter.write_str("a symbolic link"),
            RecordProblem::NotRegularFile => formatter.write_str("not a regular file"),
        }
    }
}

impl std::error::Error for RecordProblem {}

/// Where an owner that refuses a claim is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elsewhere {
    /// On another machine (another boot id): its liveness cannot be seen from here.
    OtherMachine,
    /// On this machine, through another mount of the filesystem (another device), and alive.
    OtherMount {
        /// The device this process reaches the database through.
        here: Device,
    },
}

/// What shows an owner on this machine to be alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// Its process runs (same PID, same start time).
    ProcessAlive,
    /// A process holds a lock on the record: another process of its client uses the database.
    LockHeld,
    /// This very process holds the record.
    ThisProcess,
}

impl fmt::Display for Evidence {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Evidence::ProcessAlive => "its process is running",
            Evidence::LockHeld => "a process holds the record's lock",
            Evidence::ThisProcess => "this process holds it",
        })
    }
}

/// Why ownership could not be claimed or released.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OwnershipError {
    /// Another client owns the database. No file was changed.
    #[error("{}", owned_elsewhere_message(.database, .owner, .elsewhere))]
    OwnedElsewhere {
        /// The database.
        database: PathBuf,
        /// What its record says.
        owner: OwnerRecord,
        /// Where the owner is.
        elsewhere: Elsewhere,
    },
    /// The file at the record's name is not a record store can read; it was left as it was.
    #[error(
        "ownership record {} is {problem}; it was left as it is: check that no other machine uses the database, then move it away",
        path.display()
    )]
    BadRecord {
        /// The record's path.
        path: PathBuf,
        /// What is wrong with it.
        problem: RecordProblem,
    },
    /// The record could not be read; it was left as it was.
    #[error("ownership record {} is unreadable; it was left as it is", path.display())]
    Unreadable {
        /// The record's path.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// [`release_ownership`] refused: the owner is provably alive.
    #[error(
        "ownership of {} not released: its owner is alive ({evidence}): {owner}",
        database.display()
    )]
    OwnerAlive {
        /// The database.
        database: PathBuf,
        /// What its record says.
        owner: OwnerRecord,
        /// What shows it alive.
        evidence: Evidence,
    },
    /// [`release_ownership`] refused: the owner is another machine, and the operator did not
    /// assert it is down.
    #[error(
        "ownership of {} not released: its owner is another machine ({owner}), whose processes cannot be seen from here; release it only if that machine is down, with {MACHINE_DOWN_FLAG}",
        database.display()
    )]
    OwnerOnAnotherMachine {
        /// The database.
        database: PathBuf,
        /// What its record says.
        owner: OwnerRecord,
    },
    /// The record kept changing, or stayed locked exclusively, for longer than a claim waits:
    /// other processes kept creating, taking over or removing it.
    #[error("ownership record {} kept changing for {waited:?}; try again", path.display())]
    Busy {
        /// The record's path.
        path: PathBuf,
        /// How long this waited.
        waited: Duration,
    },
    /// An operating-system call failed.
    #[error("cannot {operation} {}", path.display())]
    Io {
        /// What was being done (`create`, `write`, `sync`, `lock`, `remove`, `stat`, `read`).
        operation: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

fn owned_elsewhere_message(database: &Path, owner: &OwnerRecord, elsewhere: &Elsewhere) -> String {
    let database = database.display();
    match elsewhere {
        Elsewhere::OtherMachine => format!(
            "database {database} is owned by another machine: {owner}; a second machine writing it would lose commits. \
             if that machine is down, free it with `{RELEASE_COMMAND} {database} {MACHINE_DOWN_FLAG}`"
        ),
        Elsewhere::OtherMount { here } => format!(
            "database {database} is owned through another mount of its filesystem on this machine (device {}, this process goes through {here}): {owner}, still in use; \
             two mounts keep two page caches and would lose commits. open it through the owner's mount, or stop its processes \
             (`{RELEASE_COMMAND} {database}` frees it once they have stopped)",
            owner.device
        ),
    }
}

/// How an [`Ownership`] came about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// There was no record: this process wrote it, and this client owns the database.
    Created,
    /// The record names this client (this machine, this device): processes of one client share
    /// the database through the engine's own locks.
    Joined {
        /// What the record says.
        owner: OwnerRecord,
    },
    /// The record named a process of this machine that is gone and no process used the record:
    /// it was removed and this process wrote its own. The open should report it.
    TookOverCrashed {
        /// What the removed record said.
        previous: OwnerRecord,
    },
}

/// What releasing an [`Ownership`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Another [`Ownership`] of this process still holds the record.
    StillHeldHere,
    /// Another process of this client holds the record: it stays.
    InUseByAnotherProcess,
    /// No one else held it: the record is gone, durably, and the next client may claim.
    Removed,
    /// The name no longer held the record this process held: another process of this client
    /// releasing at the same moment, or an operator, removed it; whatever is there now was left
    /// alone.
    AlreadyGone,
}

/// This process's share of a database's ownership: while it lives, this process holds a shared
/// lock on the record. Dropping it is [`Ownership::release`] with any error logged.
#[derive(Debug)]
#[must_use = "ownership is released when this is dropped"]
pub struct Ownership {
    claim: Claim,
    owner: OwnerRecord,
    record: PathBuf,
    key: Key,
    released: bool,
}

/// A record file's identity: device and inode.
type Key = (u64, u64);

/// What this process holds: one descriptor (and its OFD lock) per record, counted.
#[derive(Debug)]
struct Held {
    file: File,
    count: usize,
    owner: OwnerRecord,
    record: PathBuf,
}

/// The records this process holds. Entries go when their count reaches zero: the map is empty
/// whenever no [`Ownership`] lives. Its lock is held for moments only, never across a wait or
/// a filesystem call, so that a claim waiting on one database's record stalls no other.
fn held() -> MutexGuard<'static, BTreeMap<Key, Held>> {
    static HELD: Mutex<BTreeMap<Key, Held>> = Mutex::new(BTreeMap::new());
    HELD.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counts one more holder of `key` in this process, if this process holds it; its owner.
fn join_held(key: Key) -> Option<OwnerRecord> {
    let mut held = held();
    let entry = held.get_mut(&key)?;
    entry.count += 1;
    Some(entry.owner.clone())
}

/// Keeps `file` (locked shared) as this process's hold on `key`, or, when another thread of
/// this process got there first, counts one more holder of its entry (`file` closes without
/// dropping that entry's lock: an OFD lock belongs to its own descriptor) and returns its owner.
fn hold(key: Key, file: File, owner: &OwnerRecord, record: &Path) -> Option<OwnerRecord> {
    let mut held = held();
    if let Some(entry) = held.get_mut(&key) {
        entry.count += 1;
        return Some(entry.owner.clone());
    }
    held.insert(
        key,
        Held {
            file,
            count: 1,
            owner: owner.clone(),
            record: record.to_owned(),
        },
    );
    None
}

impl Ownership {
    /// Claims `database` for this client before an engine opens it: creates its record, joins
    /// this client's, or takes over a crashed owner's on this machine; refuses at once, changing
    /// no file, when another client owns it.
    pub fn claim(database: &Path) -> Result<Ownership, OwnershipError> {
        let record = record_file(database);
        let directory = parent_directory(database);
        let here = Here::now(&directory)?;
        let mut looking = Looking::new();
        let mut previous: Option<OwnerRecord> = None;
        loop {
            // `mkdir` first, then read what is there: a client's cache may still show a record
            // that another client has removed on the server (measured on glusterfs, whose
            // client served the removed record's bytes), while an exclusive creation makes the
            // kernel look the name up on the server again.
            let found = match create(database, &record, &directory, &here)? {
                Made::Claimed(file, owner, key) => {
                    // A new inode: no thread of this process can hold it yet.
                    if let Some(existing) = hold(key, file, &owner, &record) {
                        let claim = Claim::Joined {
                            owner: existing.clone(),
                        };
                        return Ok(Ownership::new(claim, existing, record, key));
                    }
                    let claim = match previous {
                        Some(previous) => Claim::TookOverCrashed { previous },
                        None => Claim::Created,
                    };
                    return Ok(Ownership::new(claim, owner, record, key));
                }
                // Another client or process was first: read what it writes (after a pause
                // when the name is gone again: it was being removed).
                Made::Taken => match look(&record, &mut looking)? {
                    Look::Absent => {
                        looking.pause(&record)?;
                        continue;
                    }
                    Look::Found(found) => found,
                },
                // This process may not create it (a read-only directory, say): a record there
                // may still let it join.
                Made::Refused(error) => match look(&record, &mut looking)? {
                    Look::Absent => return Err(error),
                    Look::Found(found) => found,
                },
            };
            if let Some(owner) = join_held(found.key) {
                // This process holds it already; the descriptor just opened closes without
                // dropping the held one's lock (an OFD lock belongs to its descriptor).
                let claim = Claim::Joined {
                    owner: owner.clone(),
                };
                return Ok(Ownership::new(claim, owner, record, found.key));
            }
            let Found { file, key, owner } = found;
            if owner.boot_id != here.boot_id {
                return Err(OwnershipError::OwnedElsewhere {
                    database: database.to_owned(),
                    owner,
                    elsewhere: Elsewhere::OtherMachine,
                });
            }
            let alive = liveness(&owner, &file, &record)?;
            if alive.is_some() {
                if owner.device != here.device {
                    return Err(OwnershipError::OwnedElsewhere {
                        database: database.to_owned(),
                        owner,
                        elsewhere: Elsewhere::OtherMount { here: here.device },
                    });
                }
                // Another process of this client: share it. A process releasing or taking it
                // over holds it exclusively for a moment; then look again.
                if !lock(&file, libc::F_RDLCK, &record)? || !still_names(&record, key)? {
                    looking.pause(&record)?;
                    continue;
                }
                let owner = hold(key, file, &owner, &record).unwrap_or(owner);
                let claim = Claim::Joined {
                    owner: owner.clone(),
                };
                return Ok(Ownership::new(claim, owner, record, key));
            }
            // Its process is gone and no process holds its lock: take it over. The exclusive
            // lock makes this process the only one doing so; the others look again.
            if !lock(&file, libc::F_WRLCK, &record)? || !still_names(&record, key)? {
                looking.pause(&record)?;
                continue;
            }
            if remove_record(&record, file)? != Removal::Removed {
                // Another process opened it meanwhile, or removed it: look again.
                looking.pause(&record)?;
                continue;
            }
            tracing::warn!(
                target: "store::ownership",
                record = %record.display(),
                owner = %owner,
                "taking over the ownership of a crashed process of this machine"
            );
            previous = Some(owner);
        }
    }

    fn new(claim: Claim, owner: OwnerRecord, record: PathBuf, key: Key) -> Ownership {
        Ownership {
            claim,
            owner,
            record,
            key,
            released: false,
        }
    }

    /// How this ownership came about.
    pub fn claimed(&self) -> &Claim {
        &self.claim
    }

    /// The record in force: this process's own, or the one it joined.
    pub fn owner(&self) -> &OwnerRecord {
        &self.owner
    }

    /// The record's path.
    pub fn record_path(&self) -> &Path {
        &self.record
    }

    /// Gives up this share. The last one of this process removes the record when no other
    /// process holds it.
    pub fn release(mut self) -> Result<Release, OwnershipError> {
        self.released = true;
        release_key(self.key)
    }
}

impl Drop for Ownership {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Err(error) = release_key(self.key) {
            tracing::warn!(
                target: "store::ownership",
                record = %self.record.display(),
                error = %crate::diagnostics::cause_chain(&error),
                "ownership record not released"
            );
        }
    }
}

fn release_key(key: Key) -> Result<Release, OwnershipError> {
    let entry = {
        let mut held = held();
        let Some(entry) = held.get_mut(&key) else {
            // Each Ownership counts once in its entry, which lives as long as any of them.
            return Ok(Release::StillHeldHere);
        };
        entry.count -= 1;
        if entry.count > 0 {
            return Ok(Release::StillHeldHere);
        }
        match held.remove(&key) {
            Some(entry) => entry,
            None => return Ok(Release::StillHeldHere),
        }
    };
    // From here on this process holds the record only through `entry.file`: a thread claiming
    // meanwhile takes a lock of its own, which keeps the record as another holder's would.
    // Dropped first, then asked for exclusively: the exclusive lock comes only when no other
    // descriptor, of any process of this client, holds one. Converting in place instead would
    // let two last holders releasing at once each see the other's shared lock and both leave
    // the record behind; dropped first, whichever asks last finds the other's lock gone.
    if !lock(&entry.file, libc::F_UNLCK, &entry.record)?
        || !lock(&entry.file, libc::F_WRLCK, &entry.record)?
    {
        return Ok(Release::InUseByAnotherProcess);
    }
    if !still_names(&entry.record, key)? {
        return Ok(Release::AlreadyGone);
    }
    Ok(match remove_record(&entry.record, entry.file)? {
        Removal::Removed => Release::Removed,
        Removal::Gone => Release::AlreadyGone,
        Removal::KeptOpen => Release::InUseByAnotherProcess,
    })
}

/// Whether [`release_ownership`] may free a database owned by another machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtherMachine {
    /// Refuse: the owner may be running there.
    Refuse,
    /// The operator asserts that the owner machine is down.
    AssertedDown,
}

/// What [`release_ownership`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// There was no record: the database was free.
    NoRecord,
    /// The record was removed (durably); this is what it said.
    Removed {
        /// The record's path.
        record: PathBuf,
        /// What it said.
        previous: OwnerRecord,
    },
}

/// The operator's release of a database's ownership (`store-doctor --release-ownership`).
/// Refuses while the owner is provably alive: a process of this machine running with the
/// record's PID and start time, or holding the record's lock (a lock seen through this mount
/// refuses whatever machine holds it). A record of another machine is removed only under
/// [`OtherMachine::AssertedDown`]. A bad record is a typed error and stays.
pub fn release_ownership(
    database: &Path,
    other_machine: OtherMachine,
) -> Result<Released, OwnershipError> {
    let record = record_file(database);
    let boot_id = read_boot_id()?;
    let mut looking = Looking::new();
    loop {
        let Found { file, key, owner } = match look(&record, &mut looking)? {
            Look::Absent => return Ok(Released::NoRecord),
            Look::Found(found) => found,
        };
        let refuse = |evidence| OwnershipError::OwnerAlive {
            database: database.to_owned(),
            owner: owner.clone(),
            evidence,
        };
        if held().contains_key(&key) {
            return Err(refuse(Evidence::ThisProcess));
        }
        if owner.boot_id == boot_id {
            if let Some(evidence) = liveness(&owner, &file, &record)? {
                return Err(refuse(evidence));
            }
        } else if other_machine == OtherMachine::Refuse {
            return Err(OwnershipError::OwnerOnAnotherMachine {
                database: database.to_owned(),
                owner,
            });
        }
        if !lock(&file, libc::F_WRLCK, &record)? {
            return Err(refuse(Evidence::LockHeld));
        }
        if !still_names(&record, key)? {
            looking.pause(&record)?;
            continue;
        }
        match remove_record(&record, file)? {
            Removal::Removed => {}
            Removal::Gone => {
                looking.pause(&record)?;
                continue;
            }
            Removal::KeptOpen => return Err(refuse(Evidence::LockHeld)),
        }
        return Ok(Released::Removed {
            record,
            previous: owner,
        });
    }
}

/// This process, as a record names it.
#[derive(Debug)]
struct Here {
    host: String,
    boot_id: String,
    device: Device,
    pid: u32,
    start_ticks: u64,
}

impl Here {
    fn now(directory: &Path) -> Result<Here, OwnershipError> {
        let device = match PathStat::of(directory) {
            Ok(Some(stat)) => Device::of_dev(stat.dev),
            Ok(None) => {
                return Err(io_error("stat", directory)(io::Error::from(
                    io::ErrorKind::NotFound,
                )));
            }
            Err(source) => return Err(io_error("stat", directory)(source)),
        };
        let pid = std::process::id();
        let start_ticks = match process_start(pid) {
            Ok(Some((_, start))) => start,
            Ok(None) => {
                return Err(io_error("read", Path::new("/proc/self/stat"))(
                    io::Error::from(io::ErrorKind::NotFound),
                ));
            }
            Err(source) => return Err(io_error("read", Path::new("/proc/self/stat"))(source)),
        };
        Ok(Here {
            host: host_name(),
            boot_id: read_boot_id()?,
            device,
            pid,
            start_ticks,
        })
    }
}

fn io_error(operation: &'static str, path: &Path) -> impl FnOnce(io::Error) -> OwnershipError {
    let path = path.to_owned();
    move |source| OwnershipError::Io {
        operation,
        path,
        source,
    }
}

fn read_boot_id() -> Result<String, OwnershipError> {
    let path = Path::new(BOOT_ID_PATH);
    let text = fs::read_to_string(path).map_err(io_error("read", path))?;
    let boot_id = text.trim_end_matches('\n');
    if !is_boot_id(boot_id) {
        return Err(io_error("read", path)(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a boot id: {boot_id:?}"),
        )));
    }
    Ok(boot_id.to_owned())
}

/// A boot id as the kernel writes it: 36 lowercase hexadecimal digits and dashes, 8-4-4-4-12.
fn is_boot_id(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(index, byte)| match index {
            8 | 13 | 18 | 23 => byte == b'-',
            _ => byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte),
        })
}

/// The host name (this UTS namespace's), with anything a record line cannot hold replaced.
fn host_name() -> String {
    let mut buffer = [0_u8; 256];
    // SAFETY: the buffer is writable for its length.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if status != 0 {
        return "unknown".to_owned();
    }
    let length = buffer.iter().position(|byte| *byte == 0).unwrap_or(0);
    let name: String = String::from_utf8_lossy(&buffer[..length])
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if name.trim().is_empty() {
        "unknown".to_owned()
    } else {
        name
    }
}

/// The state letter and start time (clock ticks since boot) of process `pid`, from
/// `/proc/PID/stat`; `None` when there is no such process.
fn process_start(pid: u32) -> io::Result<Option<(char, u64)>> {
    let text = match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        // ESRCH: the process went while its file was read.
        Err(error) if error.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
        Err(error) => return Err(error),
    };
    Ok(parse_stat(&text))
}

/// Field 3 (state) and field 22 (start time) of a `/proc/PID/stat` line. The command name
/// (field 2) is in parentheses and may hold spaces and parentheses: fields are counted after
/// its last `)`.
fn parse_stat(text: &str) -> Option<(char, u64)> {
    let after_name = &text[text.rfind(')')? + 1..];
    let mut fields = after_name.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(22 - 4)?.parse().ok()?;
    Some((state, start))
}

/// Whether process `pid` is the one that started at `start_ticks` and still runs (a zombie has
/// closed its files, so holds no lock and uses no database).
fn process_alive(pid: u32, start_ticks: u64) -> io::Result<bool> {
    Ok(matches!(
        process_start(pid)?,
        Some((state, start)) if start == start_ticks && !matches!(state, 'Z' | 'X' | 'x')
    ))
}

/// Who a record's owner is, seen from this machine ([`inspect_owner`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerSeen {
    /// Another machine (another boot id), whose processes cannot be seen from here.
    AnotherMachine,
    /// This machine, and the owner is alive: why.
    ThisMachineAlive(Evidence),
    /// This machine, its process gone and no process holding the record: a claim takes it over.
    ThisMachineGone,
}

/// What stands at the ownership record of `database`, read as a claim reads it (a record being
/// written is waited for as a claim waits; a bad one is [`OwnershipError::BadRecord`]), and who
/// its owner is seen from here. Takes no lock and changes nothing: for an operator's tool.
pub fn inspect_owner(database: &Path) -> Result<Option<(OwnerRecord, OwnerSeen)>, OwnershipError> {
    let record = record_file(database);
    let Look::Found(found) = look(&record, &mut Looking::new())? else {
        return Ok(None);
    };
    let seen = if read_boot_id()? != found.owner.boot_id {
        OwnerSeen::AnotherMachine
    } else if found.owner.pid == std::process::id()
        && process_alive(found.owner.pid, found.owner.start_ticks).unwrap_or(false)
    {
        OwnerSeen::ThisMachineAlive(Evidence::ThisProcess)
    } else {
        match liveness(&found.owner, &found.file, &record)? {
            Some(evidence) => OwnerSeen::ThisMachineAlive(evidence),
            None => OwnerSeen::ThisMachineGone,
        }
    };
    Ok(Some((found.owner, seen)))
}

/// Why an owner of this machine is alive, or `None` when it provably is not.
fn liveness(
    owner: &OwnerRecord,
    file: &File,
    record: &Path,
) -> Result<Option<Evidence>, OwnershipError> {
    if process_alive(owner.pid, owner.start_ticks).map_err(io_error(
        "read",
        Path::new(&format!("/proc/{}/stat", owner.pid)),
    ))? {
        return Ok(Some(Evidence::ProcessAlive));
    }
    // Through this mount (any holder this client's kernel knows of), then in the kernel's table
    // under the device and inode its writer saw (a holder through another mount of this
    // machine).
    if lock_conflicts(file, record)?
        || lock_table_names(owner.device, owner.record_inode)
            .map_err(io_error("read", Path::new("/proc/locks")))?
    {
        return Ok(Some(Evidence::LockHeld));
    }
    Ok(None)
}

/// Takes (or converts to) an OFD lock of `kind` on the whole of `file` without waiting;
/// `false` when another descriptor holds a conflicting one.
fn lock(file: &File, kind: libc::c_int, path: &Path) -> Result<bool, OwnershipError> {
    let mut request = whole_file(kind);
    // SAFETY: F_OFD_SETLK with a valid descriptor and a `flock` whose l_pid is 0.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut request) } == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EAGAIN | libc::EACCES) => Ok(false),
        _ => Err(io_error("lock", path)(error)),
    }
}

/// Whether another descriptor (of any process this kernel serves) holds a lock on `file`.
fn lock_conflicts(file: &File, path: &Path) -> Result<bool, OwnershipError> {
    let mut request = whole_file(libc::F_WRLCK);
    // SAFETY: F_OFD_GETLK with a valid descriptor and a `flock` it may overwrite.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut request) } == -1 {
        return Err(io_error("query the lock of", path)(
            io::Error::last_os_error(),
        ));
    }
    Ok(request.l_type != libc::F_UNLCK as libc::c_short)
}

fn whole_file(kind: libc::c_int) -> libc::flock {
    // SAFETY: `flock` is plain data, all zeroes a valid value (l_pid 0, as OFD locks require).
    let mut request: libc::flock = unsafe { std::mem::zeroed() };
    request.l_type = kind as libc::c_short;
    request.l_whence = libc::SEEK_SET as libc::c_short;
    request
}

/// Whether the kernel's lock table (`/proc/locks`) lists a held lock on inode `inode` of
/// `device`. OFD locks are listed whatever the reader's PID namespace.
fn lock_table_names(device: Device, inode: u64) -> io::Result<bool> {
    Ok(read_lock_table()?
        .lines()
        .filter_map(parse_lock_line)
        .any(|held| held == (device, inode)))
}

/// `/proc/locks` in one `read`, so that entries do not shift between reads.
fn read_lock_table() -> io::Result<String> {
    let mut capacity = 64 * 1024;
    loop {
        let mut table = vec![0; capacity];
        let read = File::open("/proc/locks")?.read(&mut table)?;
        if read < capacity {
            table.truncate(read);
            return Ok(String::from_utf8_lossy(&table).into_owned());
        }
        capacity *= 4;
    }
}

/// The device and inode of a held lock in a `/proc/locks` line (`1: OFDLCK ADVISORY READ -1
/// fe:00:1234 0 EOF`: major and minor in hex, inode in decimal); `None` for a request still
/// waiting (`->`) or a line not understood.
fn parse_lock_line(line: &str) -> Option<(Device, u64)> {
    if line.contains("->") {
        return None;
    }
    line.split_ascii_whitespace().find_map(|field| {
        let mut parts = field.split(':');
        let major = u32::from_str_radix(parts.next()?, 16).ok()?;
        let minor = u32::from_str_radix(parts.next()?, 16).ok()?;
        let inode = parts.next()?.parse().ok()?;
        parts
            .next()
            .is_none()
            .then_some((Device { major, minor }, inode))
    })
}

/// Whether `path` still names the file `key` (not removed, or replaced, meanwhile).
fn still_names(path: &Path, key: Key) -> Result<bool, OwnershipError> {
    match fs::symlink_metadata(path) {
        Ok(metadata) => Ok((metadata.dev(), metadata.ino()) == key),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(io_error("stat", path)(source)),
    }
}

/// What [`remove_record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    /// The record and its directory are gone, durably.
    Removed,
    /// The record was no longer at its name.
    Gone,
    /// The share refuses to remove a file that is open, and another descriptor (a process of
    /// this client that opened it meanwhile) keeps it open: it stays, that process's.
    KeptOpen,
}

/// The prefix of the name libfuse's high-level filesystems (sshfs, smbnetfs) give a file
/// removed while open, until its last descriptor closes.
const FUSE_HIDDEN_PREFIX: &str = ".fuse_hidden";

/// Removes the record `file` (locked exclusively, so no other descriptor of this client locks
/// it), then its directory, and fsyncs the database's directory.
///
/// The record goes while still open where the filesystem allows it, so that a process of this
/// client that opens it meanwhile finds the name gone (an open file removed through libfuse's
/// high-level filesystems, sshfs and smbnetfs, lingers as a `.fuse_hidden*` file until closed:
/// the directory's removal waits for it). SMB refuses to remove an open file: there it is
/// closed first, and a process of this client that opened it in that moment keeps it open, so
/// that the removal fails and the record stays, that process's ([`Removal::KeptOpen`]).
fn remove_record(record: &Path, file: File) -> Result<Removal, OwnershipError> {
    let name = parent_directory(record);
    let directory = parent_directory(&name);
    match fs::remove_file(record) {
        Ok(()) => drop(file),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Removal::Gone),
        Err(while_open) => {
            drop(file);
            let started = Instant::now();
            loop {
                match fs::remove_file(record) {
                    Ok(()) => break,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {
                        return Ok(Removal::Gone);
                    }
                    Err(error)
                        if error.raw_os_error() == while_open.raw_os_error()
                            && started.elapsed() < GRACE =>
                    {
                        // Still open somewhere: a process of this client that joined (it
                        // locks it), or a reader, of any client, about to close it.
                        let joined = match open_record(record) {
                            Ok(probe) => lock_conflicts(&probe, record)?,
                            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                                return Ok(Removal::Gone);
                            }
                            Err(source) => return Err(io_error("open", record)(source)),
                        };
                        if joined {
                            return Ok(Removal::KeptOpen);
                        }
                        std::thread::sleep(RETRY);
                    }
                    Err(source) => return Err(io_error("remove", record)(source)),
                }
            }
        }
    }
    let started = Instant::now();
    loop {
        match fs::remove_dir(&name) {
            Ok(()) => break,
            // An operator's removal meanwhile: gone all the same.
            Err(error) if error.kind() == io::ErrorKind::NotFound => break,
            Err(error)
                if error.kind() == io::ErrorKind::DirectoryNotEmpty
                    && started.elapsed() < PATIENCE
                    && only_fuse_hidden(&name) =>
            {
                std::thread::sleep(RETRY);
            }
            Err(source) => return Err(io_error("remove", &name)(source)),
        }
    }
    sync_directory(&directory).map_err(io_error("sync", &directory))?;
    Ok(Removal::Removed)
}

/// Whether the kernel's lock table shows a lock on the record being written at `writing`: its
/// writer is a process of this machine through this mount, at work. Never opened: on SMB an
/// open would keep its writer from renaming it.
fn writer_locks(writing: &Path) -> bool {
    fs::symlink_metadata(writing).is_ok_and(|metadata| {
        lock_table_names(Device::of_dev(metadata.dev()), metadata.ino()).unwrap_or(false)
    })
}

/// Whether every entry of `name` is a file libfuse hides until its last descriptor closes.
fn only_fuse_hidden(name: &Path) -> bool {
    fs::read_dir(name).is_ok_and(|entries| {
        entries.into_iter().all(|entry| {
            entry.is_ok_and(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(FUSE_HIDDEN_PREFIX)
            })
        })
    })
}

/// Claims the database by creating the record's directory with `mkdir` (the one creation that
/// is exclusive across clients on every share measured); [`Made::Taken`] when something is
/// already at its name. Only then is the record created in it, locked (shared) before a byte is written,
/// so that a reader of this machine that finds it unfinished sees a live writer; then it is
/// written whole, fsynced, its directory and the database's directory fsynced. The record's
/// permissions are the database's (owner read-write, others read, when there is none yet), the
/// directory's the same with search permission wherever they allow reading.
fn create(
    database: &Path,
    record: &Path,
    directory: &Path,
    here: &Here,
) -> Result<Made, OwnershipError> {
    let database_mode = match fs::metadata(database) {
        Ok(metadata) => Some(metadata.permissions().mode() & 0o666),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(source) => return Err(io_error("stat", database)(source)),
    };
    let name = parent_directory(record);
    let file_mode = database_mode.unwrap_or(0o644);
    let directory_mode = file_mode | ((file_mode & 0o444) >> 2);
    match fs::DirBuilder::new().mode(directory_mode).create(&name) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return Ok(Made::Taken),
        Err(source) => return Ok(Made::Refused(io_error("create", &name)(source))),
    }
    // This claim made the directory: the database is this client's, and only this process
    // writes in it. Whatever fails from here removes what it made, and nothing else.
    let made = (|| {
        if database_mode.is_some() {
            // Exactly the database's, whatever the umask.
            fs::set_permissions(&name, fs::Permissions::from_mode(directory_mode))
                .map_err(io_error("set the permissions of", &name))?;
        }
        let writing = name.join(RECORD_WRITING);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(file_mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&writing)
            .map_err(io_error("create", &writing))?;
        let published = fill(&file, &writing, here, database_mode)
            .and_then(|(owner, key)| Ok((publish(file, &writing, record)?, owner, key)));
        let (file, owner, key) = match published {
            Ok(published) => published,
            Err(error) => {
                let _ = fs::remove_file(&writing);
                let _ = fs::remove_file(record);
                return Err(error);
            }
        };
        sync_directory(&name).map_err(io_error("sync", &name))?;
        sync_directory(directory).map_err(io_error("sync", directory))?;
        Ok((file, owner, key))
    })();
    match made {
        Ok((file, owner, key)) => Ok(Made::Claimed(file, owner, key)),
        Err(error) => {
            // Removed only when empty: never anything but what this claim made.
            let _ = fs::remove_dir(&name);
            Err(error)
        }
    }
}

/// Gives the record written whole at `writing` its name, `record`, so that no client ever
/// reads a part of it there: a client's cache would keep serving the part it read (measured on
/// sshfs and smbnetfs: a racer that read the record while it was written kept reading it
/// truncated). The file keeps its inode, and with it the lock. Where the share refuses to
/// rename an open file (SMB), it is closed, renamed, opened again and locked again.
fn publish(file: File, writing: &Path, record: &Path) -> Result<File, OwnershipError> {
    if fs::rename(writing, record).is_ok() {
        return Ok(file);
    }
    drop(file);
    fs::rename(writing, record).map_err(io_error("rename", writing))?;
    let file = open_record(record).map_err(io_error("open", record))?;
    if !lock(&file, libc::F_RDLCK, record)? {
        return Err(io_error("lock", record)(io::Error::from(
            io::ErrorKind::WouldBlock,
        )));
    }
    Ok(file)
}

/// What a claim's `mkdir` of the record's directory gave.
#[derive(Debug)]
enum Made {
    /// This claim made it and wrote the record: the database is this client's.
    Claimed(File, OwnerRecord, Key),
    /// Something stands at its name.
    Taken,
    /// The directory could not be made (not for standing there).
    Refused(OwnershipError),
}

/// Locks, writes and syncs a record just created at `record` (its name while being written).
fn fill(
    file: &File,
    record: &Path,
    here: &Here,
    database_mode: Option<u32>,
) -> Result<(OwnerRecord, Key), OwnershipError> {
    if !lock(file, libc::F_RDLCK, record)? {
        return Err(io_error("lock", record)(io::Error::from(
            io::ErrorKind::WouldBlock,
        )));
    }
    let metadata = file.metadata().map_err(io_error("stat", record))?;
    if let Some(mode) = database_mode {
        // Exactly the database's: a umask narrower than the database's mode would keep the
        // database's other users from reading who owns it.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_error("set the permissions of", record))?;
    }
    let since = UNIX_EPOCH
        + Duration::from_secs(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_secs(),
        );
    let owner = OwnerRecord {
        host: here.host.clone(),
        boot_id: here.boot_id.clone(),
        device: here.device,
        pid: here.pid,
        start_ticks: here.start_ticks,
        since,
        record_inode: metadata.ino(),
    };
    (&*file)
        .write_all(owner.render().as_bytes())
        .map_err(io_error("write", record))?;
    file.sync_all().map_err(io_error("sync", record))?;
    Ok((owner, (metadata.dev(), metadata.ino())))
}

/// A record as found at its name: its descriptor (not locked), identity and content.
#[derive(Debug)]
struct Found {
    file: File,
    key: Key,
    owner: OwnerRecord,
}

#[derive(Debug)]
enum Look {
    Absent,
    Found(Found),
}

/// The clock of one claim or release: how long it has looked, and since when the record has
/// been unfinished.
#[derive(Debug)]
struct Looking {
    started: Instant,
    unfinished_since: Option<Instant>,
}

impl Looking {
    fn new() -> Looking {
        Looking {
            started: Instant::now(),
            unfinished_since: None,
        }
    }

    /// Waits a moment before looking again, or gives up past [`PATIENCE`].
    fn pause(&mut self, record: &Path) -> Result<(), OwnershipError> {
        let waited = self.started.elapsed();
        if waited > PATIENCE {
            return Err(OwnershipError::Busy {
                path: record.to_owned(),
                waited,
            });
        }
        std::thread::sleep(RETRY);
        Ok(())
    }
}

/// Reads what is at the record's name, strictly: at the directory's name a symbolic link,
/// anything but a directory, a directory holding anything but the record; at the record's a
/// symbolic link, anything but a regular file, an unreadable, foreign or malformed record: each
/// an error. A directory without its record, or an unfinished record, is waited for while its
/// writer may still be writing.
fn look(record: &Path, looking: &mut Looking) -> Result<Look, OwnershipError> {
    let name = parent_directory(record);
    let bad = |problem| OwnershipError::BadRecord {
        path: record.to_owned(),
        problem,
    };
    let bad_name = |problem| OwnershipError::BadRecord {
        path: name.clone(),
        problem,
    };
    let unreadable_name = |source| OwnershipError::Unreadable {
        path: name.clone(),
        source,
    };
    loop {
        match fs::symlink_metadata(&name) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                return Err(bad_name(RecordProblem::SymbolicLink));
            }
            Ok(metadata) if !metadata.file_type().is_dir() => {
                return Err(bad_name(RecordProblem::NotADirectory));
            }
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Look::Absent),
            Err(source) => return Err(unreadable_name(source)),
        }
        match fs::symlink_metadata(record) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                return Err(bad(RecordProblem::SymbolicLink));
            }
            Ok(metadata) if !metadata.file_type().is_file() => {
                return Err(bad(RecordProblem::NotRegularFile));
            }
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                // The directory without its record: its claim is writing it (or removing it),
                // unless something else is in it. Its writer's lock cannot be seen before the
                // record exists: a short grace, then incomplete.
                let mut entries = match fs::read_dir(&name) {
                    Ok(entries) => entries
                        .map(|entry| entry.map(|entry| entry.file_name()))
                        .collect::<io::Result<Vec<_>>>()
                        .map_err(unreadable_name)?,
                    // Gone on the server while this client's cache still shows it: removed
                    // meanwhile, or a while ago by another client.
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {
                        looking.pause(record)?;
                        continue;
                    }
                    Err(source) => return Err(unreadable_name(source)),
                };
                // A record removed while open lingers as `.fuse_hidden*` on sshfs and smbnetfs
                // until closed: the directory is being removed.
                let writer_locks = entries
                    .iter()
                    .any(|entry| entry.as_os_str() == RECORD_WRITING)
                    && writer_locks(&name.join(RECORD_WRITING));
                entries.retain(|entry| {
                    entry.as_os_str() != RECORD_FILE
                        && entry.as_os_str() != RECORD_WRITING
                        && !entry.to_string_lossy().starts_with(FUSE_HIDDEN_PREFIX)
                });
                if !entries.is_empty() {
                    let mut entries: Vec<String> = entries
                        .iter()
                        .map(|entry| shorten(&entry.to_string_lossy()))
                        .collect();
                    entries.sort();
                    entries.truncate(5);
                    return Err(bad_name(RecordProblem::ForeignDirectory { entries }));
                }
                let since = *looking.unfinished_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= if writer_locks { PATIENCE } else { GRACE } {
                    return Err(bad_name(RecordProblem::Incomplete));
                }
                looking.pause(record)?;
                continue;
            }
            Err(source) => {
                return Err(OwnershipError::Unreadable {
                    path: record.to_owned(),
                    source,
                });
            }
        }
        let file = match open_record(record) {
            Ok(file) => file,
            // Removed between the two looks (or a client's cache still showed it): look again.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                looking.pause(record)?;
                continue;
            }
            Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
                return Err(bad(RecordProblem::SymbolicLink));
            }
            Err(source) => {
                return Err(OwnershipError::Unreadable {
                    path: record.to_owned(),
                    source,
                });
            }
        };
        let unreadable = |source| OwnershipError::Unreadable {
            path: record.to_owned(),
            source,
        };
        let metadata = file.metadata().map_err(unreadable)?;
        if !metadata.file_type().is_file() {
            return Err(bad(RecordProblem::NotRegularFile));
        }
        let mut bytes = Vec::new();
        (&file)
            .take(MAX_RECORD_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        if bytes.len() as u64 > MAX_RECORD_BYTES {
            return Err(bad(RecordProblem::TooLarge {
                bytes: metadata.len().max(bytes.len() as u64),
            }));
        }
        match parse_record(&bytes) {
            Ok(Some(owner)) => {
                looking.unfinished_since = None;
                return Ok(Look::Found(Found {
                    file,
                    key: (metadata.dev(), metadata.ino()),
                    owner,
                }));
            }
            Err(problem) => return Err(bad(problem)),
            Ok(None) => {
                // Unfinished: its writer locked it before writing, so a visible lock means one
                // is at work. Without one it may be another client's writer (its locks are its
                // own): a short grace, then truncated.
                let since = *looking.unfinished_since.get_or_insert_with(Instant::now);
                let limit = if lock_conflicts(&file, record)? {
                    PATIENCE
                } else {
                    GRACE
                };
                if since.elapsed() >= limit {
                    return Err(bad(RecordProblem::Truncated));
                }
                looking.pause(record)?;
            }
        }
    }
}

/// Opens an existing record for reading and, where permitted, writing (an exclusive OFD lock
/// needs a descriptor open for writing). Never follows a symbolic link, never blocks on a FIFO.
fn open_record(record: &Path) -> io::Result<File> {
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
    match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags)
        .open(record)
    {
        Err(error)
            if matches!(
                error.raw_os_error(),
                Some(libc::EACCES | libc::EPERM | libc::EROFS | libc::EISDIR)
            ) =>
        {
            OpenOptions::new()
                .read(true)
                .custom_flags(flags)
                .open(record)
        }
        opened => opened,
    }
}

/// The keys of a record's lines, in order, after [`MAGIC`].
const KEYS: [&str; 7] = [
    "host",
    "boot-id",
    "device",
    "pid",
    "start-ticks",
    "since",
    "record-inode",
];

/// Reads a record strictly: `Ok(Some)` a whole record, `Ok(None)` one not finished (empty, or a
/// well-formed beginning without its `end` line), `Err` anything else.
pub fn parse_record(bytes: &[u8]) -> Result<Option<OwnerRecord>, RecordProblem> {
    // Lines ending in a newline are whole; what follows the last newline is being written.
    let whole_end = bytes
        .iter()
        .rposition(|byte| *byte == b'\n')
        .map_or(0, |index| index + 1);
    let (whole, partial) = bytes.split_at(whole_end);
    let mut lines = whole
        .split(|byte| *byte == b'\n')
        .take(whole.iter().filter(|byte| **byte == b'\n').count());

    let Some(first) = lines.next() else {
        // Not even the first line: a prefix of the magic is unfinished, anything else foreign.
        return if MAGIC.as_bytes().starts_with(partial) {
            Ok(None)
        } else {
            Err(foreign(partial))
        };
    };
    if first != MAGIC.as_bytes() {
        return Err(foreign(first));
    }
    let mut values: Vec<&str> = Vec::with_capacity(KEYS.len());
    let mut line_number = 1;
    let mut ended = false;
    for line in lines {
        line_number += 1;
        if ended {
            return Err(malformed(line_number, "a line after `end`".to_owned()));
        }
        let Ok(line) = std::str::from_utf8(line) else {
            return Err(malformed(line_number, "not UTF-8".to_owned()));
        };
        if values.len() == KEYS.len() {
            if line != "end" {
                return Err(malformed(
                    line_number,
                    format!("`{line}` where `end` belongs"),
                ));
            }
            ended = true;
            continue;
        }
        let key = KEYS[values.len()];
        match line
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(' '))
        {
            Some(value) => values.push(value),
            None => {
                return Err(malformed(
                    line_number,
                    format!("`{}` where `{key}` belongs", shorten(line)),
                ));
            }
        }
    }
    if !ended {
        return Ok(None);
    }
    if !partial.is_empty() {
        return Err(malformed(line_number + 1, "bytes after `end`".to_owned()));
    }
    record_from(&values)
}

fn record_from(values: &[&str]) -> Result<Option<OwnerRecord>, RecordProblem> {
    // Line numbers: the magic is line 1, KEYS[i] is line i + 2.
    let field =
        |index: usize, reason: &str| malformed(index + 2, format!("{} {reason}", KEYS[index]));
    let host = values[0];
    if host.is_empty() || host.chars().any(char::is_control) {
        return Err(field(0, "is empty or holds control characters"));
    }
    let boot_id = values[1];
    if !is_boot_id(boot_id) {
        return Err(field(1, "is not a boot id"));
    }
    let device = values[2]
        .split_once(':')
        .and_then(|(major, minor)| {
            Some(Device {
                major: decimal(major)?,
                minor: decimal(minor)?,
            })
        })
        .ok_or_else(|| field(2, "is not major:minor"))?;
    let pid: u32 = decimal(values[3])
        .filter(|pid| *pid > 0)
        .ok_or_else(|| field(3, "is not a process id"))?;
    let start_ticks = decimal(values[4]).ok_or_else(|| field(4, "is not a number"))?;
    let since = values[5]
        .split_once(' ')
        .and_then(|(calendar, seconds)| {
            let seconds: u64 = decimal(seconds)?;
            let since = UNIX_EPOCH + Duration::from_secs(seconds);
            (UtcTime::from_system_time(since).rfc3339() == calendar).then_some(since)
        })
        .ok_or_else(|| field(5, "is not `UTC-TIME SECONDS` of one instant"))?;
    let record_inode = decimal(values[6]).ok_or_else(|| field(6, "is not a number"))?;
    Ok(Some(OwnerRecord {
        host: host.to_owned(),
        boot_id: boot_id.to_owned(),
        device,
        pid,
        start_ticks,
        since,
        record_inode,
    }))
}

/// A decimal number of ASCII digits only (no sign, no spaces).
fn decimal<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn foreign(first_line: &[u8]) -> RecordProblem {
    RecordProblem::Foreign {
        first_line: shorten(&String::from_utf8_lossy(first_line)),
    }
}

fn malformed(line: usize, reason: String) -> RecordProblem {
    RecordProblem::Malformed { line, reason }
}

fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn sample() -> OwnerRecord {
        OwnerRecord {
            host: "node-a".to_owned(),
            boot_id: "8d401bf2-0c0a-44f6-a563-74ef1fb8d8bc".to_owned(),
            device: Device {
                major: 0,
                minor: 52,
            },
            pid: 4242,
            start_ticks: 1_234_567,
            since: UNIX_EPOCH + Duration::from_secs(1_796_551_200),
            record_inode: 98_765,
        }
    }

    /// A rendered record reads back equal, in the documented layout, and every cut of it
    /// short of its last byte reads as unfinished, never as a record nor as damage.
    #[test]
    fn a_record_reads_back_and_every_cut_of_it_is_unfinished() {
        let record = sample();
        let text = record.render();
        assert_eq!(
            text,
            "store-owner 1\nhost node-a\nboot-id 8d401bf2-0c0a-44f6-a563-74ef1fb8d8bc\ndevice 0:52\n\
             pid 4242\nstart-ticks 1234567\nsince 2026-12-06T10:00:00Z 1796551200\nrecord-inode 98765\nend\n"
        );
        assert_eq!(parse_record(text.as_bytes()), Ok(Some(record)));
        for cut in 0..text.len() {
            assert_eq!(
                parse_record(&text.as_bytes()[..cut]),
                Ok(None),
                "cut at {cut}: {:?}",
                &text[..cut]
            );
        }
    }

    /// Anything but a record of this format is named for what it is: another program's file or
    /// version as foreign, a wrong, missing, repeated or extra line as malformed with its
    /// number, data after the end as malformed.
    #[test]
    fn a_record_that_is_not_this_format_is_named_for_what_is_wrong() {
        let good = sample().render();
        let problem = |text: &str| {
            parse_record(text.as_bytes()).expect_err(&format!("{text:?} was accepted"))
        };
        assert_eq!(
            problem("store-owner 2\nhost x\n"),
            RecordProblem::Foreign {
                first_line: "store-owner 2".to_owned()
            }
        );
        assert_eq!(
            problem("12345 otherhost\n"),
            RecordProblem::Foreign {
                first_line: "12345 otherhost".to_owned()
            }
        );
        assert!(matches!(problem("lock"), RecordProblem::Foreign { .. }));
        let cases = [
            (good.replace("pid 4242", "pid -1"), 5),
            (good.replace("pid 4242", "pid 0"), 5),
            (good.replace("pid 4242", "pid +42"), 5),
            (good.replace("device 0:52", "device 52"), 4),
            (good.replace("boot-id 8d4", "boot-id 8D4"), 3),
            (good.replace("host node-a\n", ""), 2),
            (
                good.replace("2026-12-06T10:00:00Z", "2026-12-06T10:00:01Z"),
                7,
            ),
            (good.replace("end\n", "end\nend\n"), 10),
            (good.replace("end\n", "fin\n"), 9),
            (format!("{good}x"), 10),
        ];
        for (text, line) in cases {
            match problem(&text) {
                RecordProblem::Malformed { line: found, .. } => {
                    assert_eq!(found, line, "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn stat_lines_with_odd_command_names_give_state_and_start() {
        let line = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194304 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 \
                    18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
        assert_eq!(parse_stat(line), Some(('S', 987_654)));
        let (state, start) = process_start(std::process::id()).unwrap().unwrap();
        assert_ne!(state, 'Z');
        assert!(start > 0);
        assert!(process_alive(std::process::id(), start).unwrap());
        assert!(!process_alive(std::process::id(), start + 1).unwrap());
    }

    #[test]
    fn lock_lines_name_device_and_inode() {
        assert_eq!(
            parse_lock_line("1: OFDLCK ADVISORY  READ -1 fe:0a:10117129 0 EOF"),
            Some((
                Device {
                    major: 0xfe,
                    minor: 10
                },
                10_117_129
            ))
        );
        assert_eq!(
            parse_lock_line("1: -> OFDLCK ADVISORY  WRITE -1 00:2f:7 0 EOF"),
            None
        );
    }

    fn database_in(directory: &tempfile::TempDir) -> PathBuf {
        directory.path().join("app.db")
    }

    /// One process claims, claims again, and releases twice: the first claim creates the record
    /// naming this process and machine, the second joins it, the record stays until the last
    /// release removes it, and the process's map of held records is empty again after.
    #[test]
    fn create_join_and_release_in_one_process() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = database_in(&directory);
        let first = Ownership::claim(&database)?;
        assert_eq!(first.claimed(), &Claim::Created);
        let owner = first.owner().clone();
        assert_eq!(owner.pid, std::process::id());
        assert_eq!(owner.boot_id, read_boot_id()?);
        assert_eq!(owner.host, host_name());
        let record = record_file(&database);
        let name = sibling(&database, RECORD_SUFFIX);
        assert!(fs::symlink_metadata(&name)?.is_dir());
        assert_eq!(parse_record(&fs::read(&record)?), Ok(Some(owner.clone())));
        assert_eq!(owner.record_inode, fs::metadata(&record)?.ino());

        let second = Ownership::claim(&database)?;
        assert_eq!(
            second.claimed(),
            &Claim::Joined {
                owner: owner.clone()
            }
        );
        assert_eq!(first.release()?, Release::StillHeldHere);
        assert!(record.exists(), "the second holder still owns it");
        assert_eq!(second.release()?, Release::Removed);
        assert!(!record.exists());
        assert!(!name.exists(), "its directory goes with it");

        // Dropping releases too.
        let third = Ownership::claim(&database)?;
        assert_eq!(third.claimed(), &Claim::Created);
        drop(third);
        assert!(!record.exists());
        let key = (fs::metadata(directory.path())?.dev(), owner.record_inode);
        assert!(!held().contains_key(&key), "the map shrinks back");
        Ok(())
    }

    /// A claim waiting for one database's unfinished record (up to its grace) stalls no claim
    /// of another database in the process. Found by the integration tests: a claim held the
    /// process's map for the whole wait, and another test's claim took over a second.
    #[test]
    fn a_claim_waiting_on_one_record_stalls_no_other() -> TestResult {
        let directory = tempfile::tempdir()?;
        let waiting = directory.path().join("waiting.db");
        fs::create_dir(sibling(&waiting, RECORD_SUFFIX))?;
        fs::write(record_file(&waiting), &MAGIC.as_bytes()[..5])?;
        let started = Instant::now();
        let waiter = std::thread::spawn(move || Ownership::claim(&waiting).map(|_| ()));
        std::thread::sleep(Duration::from_millis(100));
        let other = Ownership::claim(&database_in(&directory))?;
        let took = started.elapsed();
        assert_eq!(other.claimed(), &Claim::Created);
        assert!(took < GRACE, "the other claim took {took:?}");
        match waiter.join().expect("the waiting claim returns") {
            Err(OwnershipError::BadRecord {
                problem: RecordProblem::Truncated,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        Ok(())
    }

    /// The record is no wider open than the database: a 0600 database gets a 0600 record in a
    /// 0700 directory, a 0640 one a 0640 record in a 0750 directory.
    #[test]
    fn the_record_has_the_databases_permissions() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = database_in(&directory);
        for (mode, directory_mode) in [(0o600, 0o700), (0o640, 0o750)] {
            fs::write(&database, b"")?;
            fs::set_permissions(&database, fs::Permissions::from_mode(mode))?;
            let ownership = Ownership::claim(&database)?;
            let found = fs::metadata(ownership.record_path())?.permissions().mode() & 0o777;
            assert_eq!(format!("{found:o}"), format!("{mode:o}"));
            let name = sibling(&database, RECORD_SUFFIX);
            let found = fs::metadata(&name)?.permissions().mode() & 0o777;
            assert_eq!(format!("{found:o}"), format!("{directory_mode:o}"));
            drop(ownership);
        }
        Ok(())
    }

    /// A record of this client whose process is gone but whose lock another descriptor holds
    /// (another process of the client, here another open file description) is alive: the claim
    /// joins it rather than taking it over.
    #[test]
    fn a_dead_pid_whose_lock_is_held_is_alive_and_joined() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = database_in(&directory);
        let record = record_file(&database);
        let here = Here::now(directory.path())?;
        let written = write_record(&record, &here, u32::MAX / 2)?;
        let holder = File::open(&record)?;
        assert!(lock(&holder, libc::F_RDLCK, &record)?);

        let ownership = Ownership::claim(&database)?;
        assert!(
            matches!(ownership.claimed(), Claim::Joined { owner } if owner.pid == u32::MAX / 2),
            "{:?}",
            ownership.claimed()
        );
        assert_eq!(ownership.release()?, Release::InUseByAnotherProcess);
        assert_eq!(fs::read_to_string(&record)?, written);
        drop(holder);

        // Without the lock the same record is a crashed owner's: taken over, and said so.
        let ownership = Ownership::claim(&database)?;
        assert!(
            matches!(ownership.claimed(), Claim::TookOverCrashed { previous } if previous.pid == u32::MAX / 2),
            "{:?}",
            ownership.claimed()
        );
        assert_eq!(ownership.owner().pid, std::process::id());
        Ok(())
    }

    /// A record naming this machine written by this test with a PID that is not running.
    fn write_record(record: &Path, here: &Here, pid: u32) -> io::Result<String> {
        fs::create_dir_all(parent_directory(record))?;
        fs::write(record, b"")?;
        let owner = OwnerRecord {
            host: here.host.clone(),
            boot_id: here.boot_id.clone(),
            device: here.device,
            pid,
            start_ticks: 1,
            since: UNIX_EPOCH + Duration::from_secs(1_796_551_200),
            record_inode: fs::metadata(record)?.ino(),
        };
        let text = owner.render();
        fs::write(record, &text)?;
        Ok(text)
    }

    /// The operator's release refuses this process's own live claim and another machine's
    /// record unless that machine is asserted down; then it removes the record and returns what
    /// it said. A record of this machine whose owner is gone is released without assertion.
    #[test]
    fn the_operator_release_refuses_a_live_owner_and_an_unasserted_other_machine() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = database_in(&directory);
        let record = record_file(&database);
        assert_eq!(
            release_ownership(&database, OtherMachine::AssertedDown)?,
            Released::NoRecord
        );

        let ownership = Ownership::claim(&database)?;
        let error = release_ownership(&database, OtherMachine::AssertedDown).unwrap_err();
        assert!(
            matches!(
                error,
                OwnershipError::OwnerAlive {
                    evidence: Evidence::ThisProcess,
                    ..
                }
            ),
            "{error}"
        );
        drop(ownership);

        let mut other = sample();
        other.boot_id = "00000000-0000-4000-8000-000000000001".to_owned();
        fs::create_dir(parent_directory(&record))?;
        fs::write(&record, other.render())?;
        let error = release_ownership(&database, OtherMachine::Refuse).unwrap_err();
        assert!(
            matches!(error, OwnershipError::OwnerOnAnotherMachine { .. }),
            "{error}"
        );
        assert!(error.to_string().contains(MACHINE_DOWN_FLAG), "{error}");
        assert_eq!(fs::read_to_string(&record)?, other.render());
        assert_eq!(
            release_ownership(&database, OtherMachine::AssertedDown)?,
            Released::Removed {
                record: record.clone(),
                previous: other
            }
        );
        assert!(!record.exists());

        let here = Here::now(directory.path())?;
        write_record(&record, &here, u32::MAX / 2)?;
        assert!(matches!(
            release_ownership(&database, OtherMachine::Refuse)?,
            Released::Removed { previous, .. } if previous.pid == u32::MAX / 2
        ));
        Ok(())
    }
}
