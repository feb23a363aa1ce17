//! The classes an engine error falls into, which is all that policies decide on.
//!
//! Each engine crate has exactly one `classify` module that builds a [`FailureClass`] from an engine
//! error (SQLite extended result codes; DuckDB message prefixes, since its errors carry no code).
//! Nothing else matches on error text.

use std::fmt;

/// What kind of failure an engine error is, for the purpose of deciding what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FailureClass {
    /// The filesystem cannot support a write-ahead log: no shared memory for the WAL index, a
    /// locking protocol failure, or the journal-mode pragma refused.
    WalUnsupported,
    /// The engine could not replay its write-ahead log on open.
    WalReplay,
    /// The write-ahead log fails its checksums or does not belong to the database file.
    WalCorrupt,
    /// Another process holds a lock that excludes this one (DuckDB's file lock, SQLite's
    /// SQLITE_LOCKED). Never a reason to recover: the data is fine, just in use.
    Locked,
    /// The database is busy with another writer past the busy timeout.
    Busy,
    /// The database or its directory is read-only.
    ReadOnly,
    /// The disk or quota is full.
    DiskFull,
    /// The engine ran out of memory (its memory limit, or the machine's). Never a reason to
    /// recover: the files are fine, and a WAL too large to replay under the limit replays under a
    /// larger one.
    OutOfMemory,
    /// The database file itself is damaged.
    Corrupt,
    /// The file is not a database of this engine (text, another engine's file, an empty header).
    NotADatabase,
    /// The operating system refused access.
    PermissionDenied,
    /// The path is a directory, a socket or another file that is not a regular file, or a file
    /// the engine keeps beside the database (its WAL, its journal) is a symbolic link or not a
    /// regular file.
    NotAFile,
    /// The directory that should hold the database does not exist, or a read-only open's
    /// database does not.
    NotFound,
    /// Anything else.
    Other,
}

impl FailureClass {
    /// Every class, for tables and exhaustive tests.
    pub const ALL: [FailureClass; 14] = [
        FailureClass::WalUnsupported,
        FailureClass::WalReplay,
        FailureClass::WalCorrupt,
        FailureClass::Locked,
        FailureClass::Busy,
        FailureClass::ReadOnly,
        FailureClass::DiskFull,
        FailureClass::OutOfMemory,
        FailureClass::Corrupt,
        FailureClass::NotADatabase,
        FailureClass::PermissionDenied,
        FailureClass::NotAFile,
        FailureClass::NotFound,
        FailureClass::Other,
    ];

    /// The name used in reports, logs and the fault matrix (`WalUnsupported`, `Locked`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::WalUnsupported => "WalUnsupported",
            FailureClass::WalReplay => "WalReplay",
            FailureClass::WalCorrupt => "WalCorrupt",
            FailureClass::Locked => "Locked",
            FailureClass::Busy => "Busy",
            FailureClass::ReadOnly => "ReadOnly",
            FailureClass::DiskFull => "DiskFull",
            FailureClass::OutOfMemory => "OutOfMemory",
            FailureClass::Corrupt => "Corrupt",
            FailureClass::NotADatabase => "NotADatabase",
            FailureClass::PermissionDenied => "PermissionDenied",
            FailureClass::NotAFile => "NotAFile",
            FailureClass::NotFound => "NotFound",
            FailureClass::Other => "Other",
        }
    }

    /// The class of an operating-system error met outside the engine (copying a snapshot, moving
    /// files aside): a full disk, a read-only mount, a refused permission, or other.
    pub fn from_io_error(error: &std::io::Error) -> FailureClass {
        use std::io::ErrorKind;
        match error.kind() {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => FailureClass::DiskFull,
            ErrorKind::ReadOnlyFilesystem => FailureClass::ReadOnly,
            ErrorKind::PermissionDenied => FailureClass::PermissionDenied,
            _ => FailureClass::Other,
        }
    }

    /// The class of the first operating-system error in `error`'s chain of causes
    /// ([`from_io_error`](Self::from_io_error)); `Other` when there is none.
    pub fn from_error_chain(error: &(dyn std::error::Error + 'static)) -> FailureClass {
        let mut current = Some(error);
        while let Some(error) = current {
            if let Some(io) = error.downcast_ref::<std::io::Error>() {
                return FailureClass::from_io_error(io);
            }
            current = error.source();
        }
        FailureClass::Other
    }

    /// Whether the failure concerns the write-ahead log itself.
    pub fn is_wal(self) -> bool {
        matches!(
            self,
            FailureClass::WalUnsupported | FailureClass::WalReplay | FailureClass::WalCorrupt
        )
    }

    /// Whether recovery may ever act on this class. Only damage to the files qualifies: a lock,
    /// a busy writer or a refused permission means the data is fine and someone else is using or
    /// guarding it, and recovering would overwrite their work. Engines check this before asking
    /// a [`RecoveryPolicy`](crate::RecoveryPolicy), whatever the policy says.
    pub fn may_be_recovered(self) -> bool {
        matches!(
            self,
            FailureClass::WalReplay | FailureClass::WalCorrupt | FailureClass::Corrupt
        )
    }

    /// Whether the failure is about coordinating processes (WAL index, locks). On a network
    /// filesystem these are the symptoms of missing shared memory or byte-range locks.
    pub fn is_coordination(self) -> bool {
        matches!(
            self,
            FailureClass::WalUnsupported | FailureClass::Locked | FailureClass::Busy
        )
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_match_the_variant() {
        let names: HashSet<_> = FailureClass::ALL
            .iter()
            .map(|class| class.as_str())
            .collect();
        assert_eq!(names.len(), FailureClass::ALL.len());
        for class in FailureClass::ALL {
            assert_eq!(format!("{class:?}"), class.as_str());
        }
    }

    #[test]
    fn wal_and_coordination_groups() {
        let wal: Vec<_> = FailureClass::ALL
            .into_iter()
            .filter(|c| c.is_wal())
            .collect();
        assert_eq!(
            wal,
            [
                FailureClass::WalUnsupported,
                FailureClass::WalReplay,
                FailureClass::WalCorrupt
            ]
        );
        assert!(FailureClass::Busy.is_coordination());
        assert!(!FailureClass::Corrupt.is_coordination());
        assert!(!FailureClass::WalReplay.is_coordination());
    }

    #[test]
    fn operating_system_errors_classify() {
        let error = |code| std::io::Error::from_raw_os_error(code);
        assert_eq!(
            FailureClass::from_io_error(&error(libc::ENOSPC)),
            FailureClass::DiskFull
        );
        assert_eq!(
            FailureClass::from_io_error(&error(libc::EROFS)),
            FailureClass::ReadOnly
        );
        assert_eq!(
            FailureClass::from_io_error(&error(libc::EACCES)),
            FailureClass::PermissionDenied
        );
        assert_eq!(
            FailureClass::from_io_error(&error(libc::EIO)),
            FailureClass::Other
        );
    }

    #[test]
    fn locks_and_permissions_are_never_recoverable() {
        for class in [
            FailureClass::Locked,
            FailureClass::Busy,
            FailureClass::PermissionDenied,
            FailureClass::ReadOnly,
            FailureClass::DiskFull,
            FailureClass::WalUnsupported,
        ] {
            assert!(!class.may_be_recovered(), "{class}");
        }
        assert!(FailureClass::WalReplay.may_be_recovered());
    }
}
