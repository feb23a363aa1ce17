//! The one place a DuckDB error becomes a [`FailureClass`]. DuckDB's errors carry no useful code,
//! so this module reads the message's prefix and phrases, and nothing else in store does.

use store_core::FailureClass;

/// What an error says, beyond its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Diagnosis {
    /// The class.
    pub class: FailureClass,
    /// For a corrupt WAL entry, the byte offset where that entry starts in the WAL (DuckDB names
    /// the offset of the entry's data, after its 16-byte size and checksum header).
    pub bad_wal_entry_offset: Option<u64>,
    /// The WAL belongs to another database file.
    pub foreign_wal: bool,
}

/// The size of a WAL entry's header (size and checksum, 8 bytes each) in WAL format 2.
const WAL_ENTRY_HEADER_BYTES: u64 = 16;

/// The class of a DuckDB error.
///
/// ```
/// use store_duckdb::{classify, duckdb};
/// use store_duckdb::store_core::FailureClass;
///
/// let connection = duckdb::Connection::open_in_memory()?;
/// let error = connection.execute("SELECT * FROM missing", []).unwrap_err();
/// assert_eq!(classify(&error), FailureClass::Other);
/// # Ok::<(), duckdb::Error>(())
/// ```
pub fn classify(error: &duckdb::Error) -> FailureClass {
    diagnose(error).class
}

/// The class of a DuckDB error and what it says about the WAL.
pub fn diagnose(error: &duckdb::Error) -> Diagnosis {
    match error {
        duckdb::Error::DuckDBFailure(_, Some(message)) => diagnose_message(message),
        _ => Diagnosis {
            class: FailureClass::Other,
            bad_wal_entry_offset: None,
            foreign_wal: false,
        },
    }
}

/// Whether DuckDB refused a `ROLLBACK` because no transaction was active: after it, the
/// connection is in autocommit, which duckdb-rs cannot ask (its `is_autocommit` always answers
/// true).
pub(crate) fn no_transaction_active(error: &duckdb::Error) -> bool {
    matches!(
        error,
        duckdb::Error::DuckDBFailure(_, Some(message)) if message.contains("no transaction is active")
    )
}

pub(crate) fn diagnose_message(message: &str) -> Diagnosis {
    let contains = |phrase: &str| message.contains(phrase);
    let foreign_wal = contains("WAL does not match database file");
    let bad_wal_entry_offset = message
        .split_once("Corrupt WAL file: entry at byte position ")
        .and_then(|(_, rest)| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .map(|data_offset| data_offset.saturating_sub(WAL_ENTRY_HEADER_BYTES));
    // What the machine lacks (a lock, memory, space, permission) is checked before the WAL
    // classes: DuckDB wraps any failure during replay in "Failure while replaying WAL", and a
    // replay that ran out of memory or space must not be mistaken for a damaged WAL and recovered
    // from (a salvage there drops every commit of a healthy WAL).
    let class = if contains("Could not set lock on file") || contains("Conflicting lock is held") {
        FailureClass::Locked
    } else if contains("Out of Memory Error") || contains("could not allocate block") {
        FailureClass::OutOfMemory
    } else if contains("No space left on device") {
        FailureClass::DiskFull
    } else if contains("Read-only file system") || contains("read-only mode") {
        FailureClass::ReadOnly
    } else if contains("Permission denied") {
        FailureClass::PermissionDenied
    } else if foreign_wal || contains("Corrupt WAL file") {
        FailureClass::WalCorrupt
    } else if contains("Failure while replaying WAL") {
        FailureClass::WalReplay
    } else if contains("not a valid DuckDB database file") {
        FailureClass::NotADatabase
    } else if contains("Corrupt database file")
        || contains("checksum mismatch")
        || contains("Could not read enough bytes from file")
    {
        FailureClass::Corrupt
    } else {
        FailureClass::Other
    };
    Diagnosis {
        class,
        bad_wal_entry_offset,
        foreign_wal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages as DuckDB 2.0 prints them (recorded from the faults in store-testkit).
    #[test]
    fn recorded_messages_classify() {
        let cases = [
            (
                "IO Error: Could not set lock on file \"/d/system.duckdb\": Conflicting lock is held in /usr/bin/x (PID 42). See also https://duckdb.org/docs/stable/connect/concurrency",
                FailureClass::Locked,
            ),
            (
                "INTERNAL Error: Failure while replaying WAL file \"/d/system.duckdb.wal\": Requested allocation size of 18446744073709551615 is out of range - maximum allocation size is 281474976710656",
                FailureClass::WalReplay,
            ),
            (
                "Failure while replaying WAL file \"/d/system.duckdb.wal\": Corrupt WAL file: entry at byte position 1234 computed checksum 1 does not match stored checksum 2",
                FailureClass::WalCorrupt,
            ),
            (
                "TransactionContext Error: Failure while replaying WAL file \"/d/x.duckdb.wal\": Failed to commit: could not allocate block of size 256.0 KiB (7.5 MiB/7.6 MiB used)",
                FailureClass::OutOfMemory,
            ),
            (
                "INTERNAL Error: Failure while replaying WAL file \"/d/x.duckdb.wal\": Could not write file \"/d/x.duckdb\": No space left on device",
                FailureClass::DiskFull,
            ),
            (
                "IO Error: WAL does not match database file.",
                FailureClass::WalCorrupt,
            ),
            (
                "IO Error: The file \"/d/x.duckdb\" exists, but it is not a valid DuckDB database file!",
                FailureClass::NotADatabase,
            ),
            (
                "IO Error: Could not write file \"/d/x\": No space left on device",
                FailureClass::DiskFull,
            ),
            (
                "IO Error: Cannot open file \"/d/x\": Read-only file system",
                FailureClass::ReadOnly,
            ),
            (
                "IO Error: Cannot open file \"/d/x\": Permission denied",
                FailureClass::PermissionDenied,
            ),
            (
                "IO Error: Could not read enough bytes from file \"/d/x.duckdb\": attempted to read 262144 bytes from location 1060864",
                FailureClass::Corrupt,
            ),
            (
                "Catalog Error: Table with name missing does not exist!",
                FailureClass::Other,
            ),
        ];
        for (message, class) in cases {
            assert_eq!(diagnose_message(message).class, class, "{message}");
        }
    }

    #[test]
    fn a_corrupt_entry_names_where_it_starts() {
        let diagnosis = diagnose_message(
            "Failure while replaying WAL file \"w\": Corrupt WAL file: entry at byte position 1234 computed checksum 1 does not match stored checksum 2",
        );
        assert_eq!(diagnosis.bad_wal_entry_offset, Some(1234 - 16));
        assert!(!diagnosis.foreign_wal);
        assert!(diagnose_message("IO Error: WAL does not match database file.").foreign_wal);
        assert_eq!(
            diagnose_message("Failure while replaying WAL file").bad_wal_entry_offset,
            None
        );
    }
}
