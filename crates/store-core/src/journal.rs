//! SQLite journal modes, including WAL with exclusive locking as a mode of its own.

use std::fmt;
use std::str::FromStr;

/// How SQLite keeps its rollback information, as chosen by a [`JournalPolicy`](crate::JournalPolicy).
///
/// [`JournalMode::WalExclusive`] is not a SQLite journal mode of its own: it is WAL with
/// `PRAGMA locking_mode=EXCLUSIVE` set first, which keeps the WAL index in heap memory instead of a
/// shared `-shm` mapping. It works where shared memory does not (NFS, SMB, many FUSE mounts) at the
/// price of allowing only one connection, in one process, to use the database.
///
/// ```
/// use store_core::JournalMode;
///
/// let mode: JournalMode = "wal-exclusive".parse().unwrap();
/// assert_eq!(mode, JournalMode::WalExclusive);
/// assert_eq!(mode.pragma_value(), "wal");
/// assert!(mode.needs_exclusive_locking());
/// assert_eq!(JournalMode::Delete.to_string(), "delete");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum JournalMode {
    /// Write-ahead log with a shared-memory index: concurrent readers and one writer, fast commits.
    Wal,
    /// Write-ahead log with `locking_mode=EXCLUSIVE`: no shared memory, one connection only.
    WalExclusive,
    /// Rollback journal deleted at each commit: works everywhere, slowest commits.
    Delete,
    /// Rollback journal truncated to zero bytes at each commit.
    Truncate,
    /// Rollback journal kept and its header zeroed at each commit.
    Persist,
}

impl JournalMode {
    /// Every mode, in ladder order from fastest to most portable.
    pub const ALL: [JournalMode; 5] = [
        JournalMode::Wal,
        JournalMode::WalExclusive,
        JournalMode::Delete,
        JournalMode::Truncate,
        JournalMode::Persist,
    ];

    /// The name store uses for this mode (`wal`, `wal-exclusive`, `delete`, `truncate`, `persist`).
    pub fn as_str(self) -> &'static str {
        match self {
            JournalMode::Wal => "wal",
            JournalMode::WalExclusive => "wal-exclusive",
            JournalMode::Delete => "delete",
            JournalMode::Truncate => "truncate",
            JournalMode::Persist => "persist",
        }
    }

    /// The value to give `PRAGMA journal_mode`, and the value SQLite answers when it takes it.
    pub fn pragma_value(self) -> &'static str {
        match self {
            JournalMode::Wal | JournalMode::WalExclusive => "wal",
            other => other.as_str(),
        }
    }

    /// Whether `PRAGMA locking_mode=EXCLUSIVE` must be set before the journal mode.
    pub fn needs_exclusive_locking(self) -> bool {
        self == JournalMode::WalExclusive
    }

    /// Whether the database file is in WAL format (header bytes 18 and 19 are 2) in this mode.
    pub fn is_wal(self) -> bool {
        matches!(self, JournalMode::Wal | JournalMode::WalExclusive)
    }
}

impl fmt::Display for JournalMode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A journal mode name that is not one of [`JournalMode::as_str`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown journal mode `{input}` (expected one of: wal, wal-exclusive, delete, truncate, persist)"
)]
pub struct ParseJournalModeError {
    /// The text that was given.
    pub input: String,
}

impl FromStr for JournalMode {
    type Err = ParseJournalModeError;

    /// Parses a mode name case-insensitively; `wal_exclusive` is accepted for `wal-exclusive`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let normalized = input.trim().to_ascii_lowercase().replace('_', "-");
        JournalMode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == normalized)
            .ok_or_else(|| ParseJournalModeError {
                input: input.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_round_trips_through_its_name() -> Result<(), ParseJournalModeError> {
        for mode in JournalMode::ALL {
            assert_eq!(mode.as_str().parse::<JournalMode>()?, mode);
            assert_eq!(mode.to_string(), mode.as_str());
        }
        Ok(())
    }

    #[test]
    fn parsing_accepts_what_sqlite_answers() -> Result<(), ParseJournalModeError> {
        // SQLite answers `PRAGMA journal_mode` in lower case; users write it in any case.
        assert_eq!("WAL".parse::<JournalMode>()?, JournalMode::Wal);
        assert_eq!(" Delete ".parse::<JournalMode>()?, JournalMode::Delete);
        assert_eq!(
            "WAL_EXCLUSIVE".parse::<JournalMode>()?,
            JournalMode::WalExclusive
        );
        Ok(())
    }

    #[test]
    fn unknown_names_are_a_typed_error_naming_the_input() {
        let error = "memory".parse::<JournalMode>().unwrap_err();
        assert_eq!(error.input, "memory");
        assert!(error.to_string().contains("`memory`"), "{error}");
    }

    #[test]
    fn wal_exclusive_is_wal_on_disk_with_exclusive_locking() {
        assert_eq!(JournalMode::WalExclusive.pragma_value(), "wal");
        assert!(JournalMode::WalExclusive.is_wal());
        assert!(JournalMode::WalExclusive.needs_exclusive_locking());
        assert!(!JournalMode::Wal.needs_exclusive_locking());
        assert!(!JournalMode::Delete.is_wal());
    }
}
