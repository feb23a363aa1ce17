//! The one place a SQLite error becomes a [`FailureClass`]: from SQLite's extended result codes,
//! never from message text. Where the code alone is ambiguous (SQLITE_CANTOPEN), the filesystem
//! is asked why.

use std::path::Path;

use rusqlite::ffi;
use store_core::FailureClass;

/// Where in an open the error happened; the same code can mean different things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Opening the file, creating it, reading the schema.
    Open,
    /// Setting or proving a journal mode.
    Journal,
    /// Anything after the open (migrations, queries).
    Query,
}

/// A class, and whether the same call may succeed if simply retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Classified {
    pub(crate) class: FailureClass,
    pub(crate) transient: bool,
}

/// The class of a SQLite error, outside of any particular stage of an open.
///
/// ```
/// use store_sqlite::{classify, rusqlite};
/// use store_sqlite::store_core::FailureClass;
///
/// let connection = rusqlite::Connection::open_in_memory()?;
/// let error = connection.execute("SELECT * FROM missing", []).unwrap_err();
/// assert_eq!(classify(&error), FailureClass::Other);
/// # Ok::<(), rusqlite::Error>(())
/// ```
pub fn classify(error: &rusqlite::Error) -> FailureClass {
    classify_at(error, Stage::Query, None).class
}

/// The extended result code of a SQLite error, if it carries one.
pub fn extended_code(error: &rusqlite::Error) -> Option<i32> {
    match error {
        rusqlite::Error::SqliteFailure(failure, _) => Some(failure.extended_code),
        _ => None,
    }
}

pub(crate) fn classify_at(
    error: &rusqlite::Error,
    stage: Stage,
    path: Option<&Path>,
) -> Classified {
    let Some(extended) = extended_code(error) else {
        return Classified {
            class: FailureClass::Other,
            transient: false,
        };
    };
    let primary = extended & 0xFF;
    let (class, transient) = match (primary, extended) {
        // The WAL index cannot be shared: no shared memory, or its locks fail.
        (ffi::SQLITE_PROTOCOL, _) => (FailureClass::WalUnsupported, false),
        (
            _,
            ffi::SQLITE_IOERR_SHMOPEN
            | ffi::SQLITE_IOERR_SHMSIZE
            | ffi::SQLITE_IOERR_SHMMAP
            | ffi::SQLITE_IOERR_SHMLOCK,
        ) => (FailureClass::WalUnsupported, false),
        // A refused journal-mode pragma is how some FUSE mounts (and sandboxes) say no to WAL.
        (ffi::SQLITE_AUTH, _) if stage == Stage::Journal => (FailureClass::WalUnsupported, false),
        (ffi::SQLITE_AUTH | ffi::SQLITE_PERM, _) => (FailureClass::PermissionDenied, false),
        (ffi::SQLITE_BUSY, _) => (FailureClass::Busy, false),
        (ffi::SQLITE_LOCKED, _) => (FailureClass::Locked, false),
        (ffi::SQLITE_READONLY, _) => (FailureClass::ReadOnly, false),
        (ffi::SQLITE_FULL, _) => (FailureClass::DiskFull, false),
        (ffi::SQLITE_CORRUPT, _) => (FailureClass::Corrupt, false),
        (ffi::SQLITE_NOTADB, _) => (FailureClass::NotADatabase, false),
        (ffi::SQLITE_CANTOPEN, _) => (cannot_open_class(path), false),
        // A one-off I/O error may pass; one that persists while switching journals means the
        // filesystem cannot carry the mode.
        (ffi::SQLITE_IOERR, _) if stage == Stage::Journal => (FailureClass::WalUnsupported, true),
        (ffi::SQLITE_IOERR, _) => (FailureClass::Other, true),
        _ => (FailureClass::Other, false),
    };
    Classified { class, transient }
}

/// SQLITE_CANTOPEN says nothing of why: ask the directory.
fn cannot_open_class(path: Option<&Path>) -> FailureClass {
    let Some(directory) = path.and_then(Path::parent) else {
        return FailureClass::Other;
    };
    match store_core::fs::writability(directory) {
        store_core::fs::Writability::ReadOnlyFilesystem => FailureClass::ReadOnly,
        store_core::fs::Writability::PermissionDenied => FailureClass::PermissionDenied,
        _ => FailureClass::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(extended: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(extended), None)
    }

    #[test]
    fn codes_map_to_classes() {
        let cases = [
            (
                ffi::SQLITE_PROTOCOL,
                Stage::Journal,
                FailureClass::WalUnsupported,
            ),
            (
                ffi::SQLITE_IOERR_SHMMAP,
                Stage::Query,
                FailureClass::WalUnsupported,
            ),
            (
                ffi::SQLITE_IOERR_SHMOPEN,
                Stage::Open,
                FailureClass::WalUnsupported,
            ),
            (
                ffi::SQLITE_AUTH,
                Stage::Journal,
                FailureClass::WalUnsupported,
            ),
            (
                ffi::SQLITE_AUTH,
                Stage::Query,
                FailureClass::PermissionDenied,
            ),
            (ffi::SQLITE_BUSY, Stage::Journal, FailureClass::Busy),
            (ffi::SQLITE_BUSY_SNAPSHOT, Stage::Query, FailureClass::Busy),
            (ffi::SQLITE_LOCKED, Stage::Query, FailureClass::Locked),
            (
                ffi::SQLITE_READONLY_DBMOVED,
                Stage::Query,
                FailureClass::ReadOnly,
            ),
            (ffi::SQLITE_FULL, Stage::Query, FailureClass::DiskFull),
            (ffi::SQLITE_CORRUPT, Stage::Open, FailureClass::Corrupt),
            (ffi::SQLITE_NOTADB, Stage::Open, FailureClass::NotADatabase),
            (
                ffi::SQLITE_IOERR,
                Stage::Journal,
                FailureClass::WalUnsupported,
            ),
            (ffi::SQLITE_IOERR_FSYNC, Stage::Query, FailureClass::Other),
            (ffi::SQLITE_ERROR, Stage::Journal, FailureClass::Other),
        ];
        for (code, stage, class) in cases {
            assert_eq!(
                classify_at(&failure(code), stage, None).class,
                class,
                "{code} at {stage:?}"
            );
        }
    }

    #[test]
    fn only_plain_io_errors_are_worth_a_retry() {
        assert!(classify_at(&failure(ffi::SQLITE_IOERR), Stage::Journal, None).transient);
        assert!(!classify_at(&failure(ffi::SQLITE_IOERR_SHMMAP), Stage::Journal, None).transient);
        assert!(!classify_at(&failure(ffi::SQLITE_PROTOCOL), Stage::Journal, None).transient);
    }

    #[test]
    fn errors_without_a_code_are_other() {
        assert_eq!(
            classify(&rusqlite::Error::QueryReturnedNoRows),
            FailureClass::Other
        );
    }
}
