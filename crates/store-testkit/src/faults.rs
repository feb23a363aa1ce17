//! Installing process-global faults, one at a time, removed when their guard drops.
//!
//! Every fault here makes the real engine fail the way a real deployment does: `sqlite` for
//! SQLite's (feature `sqlite`), `duckdb` for DuckDB's (feature `duckdb`: WAL damage, a lock held
//! elsewhere), [`mounts`] for the filesystem's (full, read-only).
//!
//! Process-global means every thread of the process sees the fault: install it in a child process
//! ([`isolated!`](crate::isolated)), never in a test that shares its process with others.

use std::io;
use std::sync::{Mutex, PoisonError};

use store_core::Engine;

#[cfg(feature = "duckdb")]
#[cfg_attr(docsrs, doc(cfg(feature = "duckdb")))]
pub mod duckdb;
pub mod mounts;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;

/// A fault could not be installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaultError {
    /// Another process-global fault is installed; two at once would make results unreadable.
    #[error("cannot install fault `{requested}` while `{installed}` is installed")]
    AlreadyInstalled {
        /// The fault asked for.
        requested: &'static str,
        /// The fault in place.
        installed: &'static str,
    },
    /// This machine cannot produce the fault (no mount rights, say). Not a pass: a test that
    /// needs the fault should report it.
    #[error("fault `{fault}` is unsupported here: {reason}")]
    Unsupported {
        /// The fault asked for.
        fault: &'static str,
        /// Why not.
        reason: String,
    },
    /// SQLite refused the hook.
    #[error("sqlite refused to install fault `{fault}` (code {code})")]
    Sqlite {
        /// The fault asked for.
        fault: &'static str,
        /// SQLite's result code.
        code: i32,
    },
    /// A system call failed while installing the fault.
    #[error("cannot install fault `{fault}`")]
    Io {
        /// The fault asked for.
        fault: &'static str,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

/// Every fault store-testkit produces for real, by name: the vocabulary shared by tests and the
/// fault matrix. Each names how it is made and what the engine then says; the functions that
/// make it live in `sqlite`, `duckdb` (each behind its feature) and [`mounts`].
///
/// ```
/// use store_testkit::faults::{Fault, Scope};
///
/// for fault in Fault::ALL {
///     println!("{:<24} {:?} {}", fault.name(), fault.scope(), fault.engine_says());
/// }
/// assert_eq!(Fault::NoSharedMemory.scope(), Scope::Process);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// SQLite: `mmap` fails, so the WAL index cannot be shared (NFS, SMB, some FUSE mounts).
    NoSharedMemory,
    /// SQLite: `fcntl` locks on `-shm` files fail with EAGAIN.
    LockProtocol,
    /// SQLite: every `fcntl` lock fails with ENOLCK (NFSv3 without a lock daemon).
    NoLocks,
    /// SQLite: an authorizer on every new connection denies setting `journal_mode`.
    JournalPragmaDenied,
    /// SQLite: the fault simulator fails the sync at commit.
    CommitIoError,
    /// Both: the database lives on a tmpfs too small for what is written.
    DiskFull,
    /// Both: the database's directory is remounted read-only.
    ReadOnlyFilesystem,
    /// DuckDB: 0xFF bytes appended to the WAL.
    WalGarbage,
    /// DuckDB: one WAL byte flipped, so its entry fails its checksum.
    WalFlippedByte,
    /// DuckDB: the WAL cut in the middle of an entry.
    TornWalTail,
    /// DuckDB: the WAL of another database file in place of this one's.
    ForeignWal,
    /// DuckDB: another process holds the database open.
    LockedByProcess,
    /// Both: the process is SIGKILLed at a named step of a migration.
    KilledMidMigration,
    /// Both: the power goes at a named point, on a [`LossyFs`](crate::lossyfs::LossyFs) mount
    /// that drops what was never fsynced.
    PowerLoss,
}

/// How far a fault reaches, which decides where a test may install it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every thread of the process: install it in a child process ([`crate::isolated!`]).
    Process,
    /// The calling thread's mount namespace (and threads it spawns afterwards).
    Thread,
    /// Files in one directory: safe anywhere.
    Files,
    /// A child process does it (holds a lock, dies mid-migration).
    ChildProcess,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 14] = [
        Fault::NoSharedMemory,
        Fault::LockProtocol,
        Fault::NoLocks,
        Fault::JournalPragmaDenied,
        Fault::CommitIoError,
        Fault::DiskFull,
        Fault::ReadOnlyFilesystem,
        Fault::WalGarbage,
        Fault::WalFlippedByte,
        Fault::TornWalTail,
        Fault::ForeignWal,
        Fault::LockedByProcess,
        Fault::KilledMidMigration,
        Fault::PowerLoss,
    ];

    /// The fault's name in tables (`no-shared-memory`, `wal-garbage`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Fault::NoSharedMemory => "no-shared-memory",
            Fault::LockProtocol => "lock-protocol",
            Fault::NoLocks => "no-locks",
            Fault::JournalPragmaDenied => "journal-pragma-denied",
            Fault::CommitIoError => "commit-io-error",
            Fault::DiskFull => "disk-full",
            Fault::ReadOnlyFilesystem => "read-only-filesystem",
            Fault::WalGarbage => "wal-garbage",
            Fault::WalFlippedByte => "wal-flipped-byte",
            Fault::TornWalTail => "torn-wal-tail",
            Fault::ForeignWal => "foreign-wal",
            Fault::LockedByProcess => "locked-by-process",
            Fault::KilledMidMigration => "killed-mid-migration",
            Fault::PowerLoss => "power-loss",
        }
    }

    /// The engines the fault applies to.
    pub fn engines(self) -> &'static [Engine] {
        match self {
            Fault::NoSharedMemory
            | Fault::LockProtocol
            | Fault::NoLocks
            | Fault::JournalPragmaDenied
            | Fault::CommitIoError => &[Engine::Sqlite],
            Fault::DiskFull | Fault::ReadOnlyFilesystem | Fault::PowerLoss => {
                &[Engine::Sqlite, Engine::Duckdb]
            }
            Fault::WalGarbage
            | Fault::WalFlippedByte
            | Fault::TornWalTail
            | Fault::ForeignWal
            | Fault::LockedByProcess
            | Fault::KilledMidMigration => &[Engine::Duckdb],
        }
    }

    /// How far the fault reaches.
    pub fn scope(self) -> Scope {
        match self {
            Fault::NoSharedMemory
            | Fault::LockProtocol
            | Fault::NoLocks
            | Fault::JournalPragmaDenied
            | Fault::CommitIoError => Scope::Process,
            Fault::DiskFull | Fault::ReadOnlyFilesystem | Fault::PowerLoss => Scope::Thread,
            Fault::WalGarbage | Fault::WalFlippedByte | Fault::TornWalTail | Fault::ForeignWal => {
                Scope::Files
            }
            Fault::LockedByProcess | Fault::KilledMidMigration => Scope::ChildProcess,
        }
    }

    /// What the engine says under the fault, as measured on the machines this project runs on.
    pub fn engine_says(self) -> &'static str {
        match self {
            Fault::NoSharedMemory => {
                "SQLITE_IOERR_SHMMAP \"disk I/O error\" on the first read in WAL mode"
            }
            Fault::LockProtocol => {
                "SQLITE_PROTOCOL \"locking protocol\" after about 10 s of retries"
            }
            Fault::NoLocks => "SQLITE_BUSY \"database is locked\"",
            Fault::JournalPragmaDenied => "SQLITE_AUTH \"not authorized\"",
            Fault::CommitIoError => "SQLITE_IOERR \"disk I/O error\"; the transaction rolls back",
            Fault::DiskFull => "SQLITE_FULL / DuckDB \"No space left on device\"",
            Fault::ReadOnlyFilesystem => {
                "SQLITE_CANTOPEN or SQLITE_READONLY / DuckDB \"Read-only file system\""
            }
            Fault::WalGarbage => {
                "\"Failure while replaying WAL file\": requested allocation size out of range"
            }
            Fault::WalFlippedByte => {
                "\"Corrupt WAL file: entry at byte position N\" checksum mismatch"
            }
            Fault::TornWalTail => "nothing: DuckDB replays up to the cut, silently",
            Fault::ForeignWal => "\"WAL does not match database file\"",
            Fault::LockedByProcess => {
                "\"Could not set lock on file\": Conflicting lock is held (PID n)"
            }
            Fault::KilledMidMigration => "whatever the engine makes of the files on reopen",
            Fault::PowerLoss => {
                "EIO to everything after the cut; at the next mount, what was never fsynced is gone"
            }
        }
    }

    /// Whether this machine can produce the fault: the mount faults need a private mount namespace
    /// and the right to mount, probed for real on a throwaway thread; the others need nothing.
    pub fn probe(self) -> Result<(), FaultError> {
        match self {
            #[cfg(target_os = "linux")]
            Fault::PowerLoss => crate::lossyfs::probe(),
            _ if self.scope() == Scope::Thread => mounts::probe(),
            _ => Ok(()),
        }
    }
}

static INSTALLED: Mutex<Option<&'static str>> = Mutex::new(None);

/// An installed process-global fault; dropping it removes the fault.
#[must_use = "the fault is removed when the guard drops"]
pub struct FaultGuard {
    name: &'static str,
    uninstall: Option<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for FaultGuard {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FaultGuard")
            .field("name", &self.name)
            .finish()
    }
}

impl FaultGuard {
    /// Claims the process-wide slot for `name`, runs `install`, and returns the guard that will run
    /// the uninstaller it returns. The slot is released if installing fails.
    pub(crate) fn install(
        name: &'static str,
        install: impl FnOnce() -> Result<Box<dyn FnOnce() + Send>, FaultError>,
    ) -> Result<FaultGuard, FaultError> {
        {
            let mut slot = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(installed) = *slot {
                return Err(FaultError::AlreadyInstalled {
                    requested: name,
                    installed,
                });
            }
            *slot = Some(name);
        }
        match install() {
            Ok(uninstall) => Ok(FaultGuard {
                name,
                uninstall: Some(uninstall),
            }),
            Err(error) => {
                *INSTALLED.lock().unwrap_or_else(PoisonError::into_inner) = None;
                Err(error)
            }
        }
    }

    /// The fault's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        if let Some(uninstall) = self.uninstall.take() {
            uninstall();
        }
        *INSTALLED.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The name of the fault installed in this process, if any.
pub fn installed() -> Option<&'static str> {
    *INSTALLED.lock().unwrap_or_else(PoisonError::into_inner)
}
