//! A reader of the DuckDB write-ahead log's framing: where the last whole, valid commit ends, and
//! what follows it. No DuckDB call: it reads bytes, so that store knows the WAL better than the
//! engine's error message does (which entry is damaged, and a torn tail DuckDB drops silently).
//!
//! The format, as the bundled DuckDB writes it (`src/storage/write_ahead_log.cpp`,
//! `src/storage/wal_replay.cpp`, `src/common/checksum.cpp` and
//! `src/common/serializer/binary_serializer.cpp` in the `libduckdb-sys` crate's sources):
//!
//! - A header, not checksummed: a `BinarySerializer` object whose field 100 (`wal_type`) is
//!   `WAL_VERSION` (98), field 101 the WAL version (2 plain, 3 encrypted), then the optional
//!   fields 102 (the database identifier, a list of bytes) and 103 (the checkpoint iteration), and
//!   the terminator `0xFFFF`. Field ids are little-endian `u16`; integers are unsigned LEB128.
//! - Then, in version 2, entries: a little-endian `u64` size, a `u64` checksum of the payload
//!   (`Checksum`: 5381 xor'ed with each 8-byte word times `0xbf58476d1ce4e5b9`, the remainder
//!   through a murmur-style hash), and the payload, a `BinarySerializer` object whose field 100 is
//!   the entry's `WALType`. An entry of type `WAL_FLUSH` (100) ends a committed transaction.
//!
//! DuckDB's replay scans the entries first: an entry whose size runs past the end of the file, or
//! an empty one, ends the scan silently (a torn tail: whatever follows the last `WAL_FLUSH` is
//! dropped); a checksum that does not match fails the open. Then it replays up to the end of the
//! last `WAL_FLUSH`.
//!
//! ```
//! use store_duckdb::wal::{WalReading, WalTail};
//!
//! # let directory = tempfile::tempdir()?;
//! # let path = directory.path().join("w.duckdb");
//! # {
//! #     let connection = duckdb::Connection::open(&path)?;
//! #     connection.execute_batch("PRAGMA disable_checkpoint_on_shutdown; SET checkpoint_threshold = '1TB';
//! #         CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);")?;
//! # }
//! let wal = std::fs::read(path.with_extension("duckdb.wal"))?;
//! let reading = WalReading::read(&wal)?;
//! assert_eq!(reading.commits, 3); // the CREATE TABLE and two inserts
//! assert_eq!(reading.last_commit_end, wal.len() as u64);
//! assert_eq!(reading.tail, WalTail::Clean);
//!
//! // Cut inside the last entry: two commits remain, and the torn bytes are named.
//! let torn = WalReading::read(&wal[..wal.len() - 3])?;
//! assert_eq!(torn.commits, 2);
//! assert!(matches!(torn.tail, WalTail::Torn { .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::path::Path;

/// The WAL versions this reader knows: 2, plain with checksums. Version 1 (no checksums) and 3
/// (encrypted) are reported as [`UnknownWal::Version`].
pub const KNOWN_WAL_VERSION: u64 = 2;

/// `WALType::WAL_VERSION`, the header's type.
const WAL_VERSION_TYPE: u64 = 98;
/// `WALType::CHECKPOINT`: a checkpoint was under way when the log was last written.
const CHECKPOINT_TYPE: u64 = 99;
/// `WALType::WAL_FLUSH`: the end of a committed transaction.
const WAL_FLUSH_TYPE: u64 = 100;
/// The field holding an object's `wal_type`, and the object terminator.
const WAL_TYPE_FIELD: u16 = 100;
const TERMINATOR: u16 = 0xFFFF;
/// An entry's frame: its size and its checksum, each a `u64`.
pub const ENTRY_HEADER_BYTES: u64 = 16;

/// What a WAL holds, read once from start to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalReading {
    /// The WAL version in the header.
    pub version: u64,
    /// Where the header ends and the first entry starts.
    pub header_bytes: u64,
    /// Where the last whole, valid commit ends: the length of the longest prefix DuckDB replays
    /// completely. The header's end when no commit is whole.
    pub last_commit_end: u64,
    /// `WAL_FLUSH` entries before `last_commit_end`: the committed transactions, plus one for a
    /// checkpoint marker (DuckDB ends the marker with a flush of its own and replays one
    /// transaction fewer).
    pub commits: u64,
    /// Entries before `last_commit_end`.
    pub entries: u64,
    /// Whether a checkpoint marker lies before `last_commit_end` (DuckDB then reconciles with the
    /// data file and a `.wal.checkpoint` sidecar).
    pub has_checkpoint_marker: bool,
    /// What follows `last_commit_end`.
    pub tail: WalTail,
}

/// What follows the last whole, valid commit of a WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalTail {
    /// Nothing: the WAL ends with a commit.
    Clean,
    /// Whole, valid entries of a transaction that never committed (`entries` of them, `bytes`
    /// long), then the end of the file. DuckDB drops them; they were never acknowledged.
    Uncommitted {
        /// Entries after the last commit.
        entries: u64,
        /// Their bytes.
        bytes: u64,
    },
    /// An entry cut short at `offset` (or an empty one, or one whose checksummed payload is no
    /// object), after `entries` whole uncommitted entries; or, at offset 0, a header cut short or
    /// out of order: DuckDB drops everything after the last commit without a word.
    Torn {
        /// Where the cut entry starts.
        offset: u64,
        /// Whole entries between the last commit and the cut one.
        entries: u64,
        /// Bytes from the last commit's end to the end of the file.
        bytes: u64,
    },
    /// An entry at `offset` whose payload does not match its checksum: DuckDB refuses to open.
    ChecksumMismatch {
        /// Where the damaged entry starts.
        offset: u64,
        /// Whole valid entries between the last commit and the damaged one.
        entries: u64,
    },
    /// An entry at `offset` that DuckDB's replay fails on: a size so large that the end of the
    /// entry wraps around, or a checksummed payload of a type DuckDB does not know.
    Garbage {
        /// Where it starts.
        offset: u64,
    },
}

impl WalTail {
    /// Whether DuckDB would drop bytes without failing the open: the loss store must report.
    pub fn is_dropped_silently(self) -> bool {
        matches!(self, WalTail::Torn { .. } | WalTail::Uncommitted { .. })
    }

    /// The class of failure this tail is: `WalReplay` for garbage (DuckDB's replay fails on it),
    /// `WalCorrupt` for any other damage; `None` for a clean WAL.
    pub fn failure_class(self) -> Option<store_core::FailureClass> {
        match self {
            WalTail::Clean => None,
            WalTail::Garbage { .. } => Some(store_core::FailureClass::WalReplay),
            _ => Some(store_core::FailureClass::WalCorrupt),
        }
    }

    /// Where the first entry past the last commit that DuckDB cannot read starts, if there is
    /// one.
    pub fn damage_offset(self) -> Option<u64> {
        match self {
            WalTail::Torn { offset, .. }
            | WalTail::ChecksumMismatch { offset, .. }
            | WalTail::Garbage { offset } => Some(offset),
            WalTail::Clean | WalTail::Uncommitted { .. } => None,
        }
    }
}

impl fmt::Display for WalTail {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalTail::Clean => formatter.write_str("nothing after the last commit"),
            WalTail::Uncommitted { entries, bytes } => write!(
                formatter,
                "{entries} uncommitted entries ({bytes} bytes) after the last commit"
            ),
            WalTail::Torn {
                offset,
                entries,
                bytes,
            } => write!(
                formatter,
                "a torn entry at byte {offset} after {entries} uncommitted entries ({bytes} bytes \
                 after the last commit)"
            ),
            WalTail::ChecksumMismatch { offset, entries } => write!(
                formatter,
                "an entry at byte {offset} that fails its checksum, after {entries} uncommitted \
                 entries"
            ),
            WalTail::Garbage { offset } => {
                write!(formatter, "bytes that are no entry at byte {offset}")
            }
        }
    }
}

/// Which of a database's logs: DuckDB commits to `<database>.wal`; while a checkpoint runs, it
/// commits to `<database>.wal.checkpoint` instead, and when a checkpoint marker ends the WAL (the
/// checkpoint never finished), its next open replays that sidecar after the WAL
/// (`WriteAheadLogReplayer::ReplayLog` in `src/storage/wal_replay.cpp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WalFile {
    /// `<database>.wal`.
    Wal,
    /// `<database>.wal.checkpoint`, replayed after a WAL that ends in a checkpoint marker.
    CheckpointWal,
}

impl WalFile {
    /// What the file's name adds to the database's.
    pub fn suffix(self) -> &'static str {
        match self {
            WalFile::Wal => ".wal",
            WalFile::CheckpointWal => ".wal.checkpoint",
        }
    }
}

impl fmt::Display for WalFile {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalFile::Wal => formatter.write_str("the WAL"),
            WalFile::CheckpointWal => formatter.write_str("the checkpoint WAL (.wal.checkpoint)"),
        }
    }
}

/// Whether either of `database`'s logs holds a byte: without one, a checkpoint has nothing to
/// move into the database file. A log that cannot be looked at counts as holding bytes. Looks at
/// the logs' sizes only, never at the database file: a descriptor of it opened and closed here
/// would drop DuckDB's lock on it.
pub(crate) fn logs_hold_bytes(database: &Path) -> bool {
    [WalFile::Wal, WalFile::CheckpointWal]
        .into_iter()
        .any(
            |file| match std::fs::metadata(store_core::files::sibling(database, file.suffix())) {
                Ok(metadata) => metadata.len() > 0,
                Err(error) => error.kind() != std::io::ErrorKind::NotFound,
            },
        )
}

/// What the WAL reader found wrong before a replay: which log, and what follows its last whole
/// commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalDamage {
    /// The log the damage is in.
    pub file: WalFile,
    /// What follows its last whole, valid commit (never [`WalTail::Clean`]).
    pub tail: WalTail,
}

impl fmt::Display for WalDamage {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} has {}", self.file, self.tail)
    }
}

/// What a read-write open finds wrong in `database`'s logs before DuckDB replays them: damage
/// after the last whole commit of the WAL, else, when the WAL ends in a checkpoint marker (so
/// that DuckDB replays the checkpoint WAL after it), of the checkpoint WAL. `None` when both are
/// whole, missing or empty. A log this reader does not know is an error: DuckDB then replays it
/// unread, and a tail it drops goes unreported. Reads the files; changes nothing.
pub fn damage_before_replay(database: &Path) -> Result<Option<WalDamage>, UnreadLog> {
    let Some(wal) = read_log(database, WalFile::Wal)? else {
        return Ok(None);
    };
    if wal.tail != WalTail::Clean {
        return Ok(Some(WalDamage {
            file: WalFile::Wal,
            tail: wal.tail,
        }));
    }
    if !wal.has_checkpoint_marker {
        return Ok(None);
    }
    Ok(read_log(database, WalFile::CheckpointWal)?
        .filter(|checkpoint_wal| checkpoint_wal.tail != WalTail::Clean)
        .map(|checkpoint_wal| WalDamage {
            file: WalFile::CheckpointWal,
            tail: checkpoint_wal.tail,
        }))
}

/// One of `database`'s logs, read; `None` when it is missing or empty.
fn read_log(database: &Path, file: WalFile) -> Result<Option<WalReading>, UnreadLog> {
    let Ok(bytes) = std::fs::read(store_core::files::sibling(database, file.suffix())) else {
        return Ok(None);
    };
    if bytes.is_empty() {
        return Ok(None);
    }
    WalReading::read(&bytes)
        .map(Some)
        .map_err(|reason| UnreadLog { file, reason })
}

/// A log [`damage_before_replay`] could not read: which, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file} was not read before replay ({reason})")]
pub struct UnreadLog {
    /// The log.
    pub file: WalFile,
    /// Why the reader cannot walk it.
    pub reason: UnknownWal,
}

/// A WAL this reader cannot walk: store then falls back to asking DuckDB.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnknownWal {
    /// A WAL version this reader does not know (1: no checksums; 3: encrypted).
    #[error("WAL version {version} is not one this reader knows (it knows {KNOWN_WAL_VERSION})")]
    Version {
        /// The version in the header.
        version: u64,
    },
}

/// DuckDB's `Checksum(buffer, size)` (`src/common/checksum.cpp`).
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut result: u64 = 5381;
    for word in &mut words {
        let value = u64::from_le_bytes(word.try_into().expect("chunks of eight"));
        result ^= value.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    }
    let remainder = words.remainder();
    if !remainder.is_empty() {
        result ^= checksum_remainder(remainder);
    }
    result
}

/// `ChecksumRemainder`: robin-hood-hashing's murmur-style hash of the last 1 to 7 bytes.
fn checksum_remainder(bytes: &[u8]) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const SEED: u64 = 0xe17a_1465;
    const R: u32 = 47;
    debug_assert!(bytes.len() < 8);
    let mut h = SEED ^ (bytes.len() as u64).wrapping_mul(M);
    if !bytes.is_empty() {
        for (index, byte) in bytes.iter().enumerate().rev() {
            h ^= u64::from(*byte) << (8 * index);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// A cursor over a `BinarySerializer` object.
struct Fields<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Fields<'a> {
        Fields { bytes, position: 0 }
    }

    fn field_id(&mut self) -> Option<u16> {
        let bytes = self.bytes.get(self.position..self.position + 2)?;
        self.position += 2;
        Some(u16::from_le_bytes([bytes[0], bytes[1]]))
    }

    /// Unsigned LEB128, at most ten bytes for a `u64`.
    fn varint(&mut self) -> Option<u64> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self.bytes.get(self.position)?;
            self.position += 1;
            value |= u64::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
}

/// The header as DuckDB reads it (`ReplayVersion`): field 100 = `WAL_VERSION`, field 101 the
/// version, then optionally field 102 (the database identifier) and field 103 (the checkpoint
/// iteration), in that order, then the terminator. `Ok(None)` when it is cut short or out of
/// order: DuckDB then treats the whole WAL as a torn tail and drops it without a word.
fn read_header(bytes: &[u8]) -> Result<Option<(u64, u64)>, UnknownWal> {
    let mut fields = Fields::new(bytes);
    if fields.field_id() != Some(WAL_TYPE_FIELD) || fields.varint() != Some(WAL_VERSION_TYPE) {
        return Ok(None);
    }
    if fields.field_id() != Some(101) {
        return Ok(None);
    }
    let Some(version) = fields.varint() else {
        return Ok(None);
    };
    if version != KNOWN_WAL_VERSION {
        return Err(UnknownWal::Version { version });
    }
    let mut next = fields.field_id();
    if next == Some(102) {
        let Some(count) = fields.varint() else {
            return Ok(None);
        };
        for _ in 0..count {
            if fields.varint().is_none() {
                return Ok(None);
            }
        }
        next = fields.field_id();
    }
    if next == Some(103) {
        if fields.varint().is_none() {
            return Ok(None);
        }
        next = fields.field_id();
    }
    Ok((next == Some(TERMINATOR)).then_some((version, fields.position as u64)))
}

/// Whether DuckDB's replay knows an entry type (`WALType`, `wal_type.hpp`): any other fails it
/// with "Invalid WAL entry type!".
fn is_known_entry_type(wal_type: u64) -> bool {
    matches!(wal_type, 1..=6 | 8..=14 | 20..=31 | 98..=100)
}

/// An entry's type, from its payload: the `wal_type` field first, and a terminator last.
fn entry_type(payload: &[u8]) -> Option<u64> {
    let mut fields = Fields::new(payload);
    if fields.field_id()? != WAL_TYPE_FIELD {
        return None;
    }
    let wal_type = fields.varint()?;
    let ends_as_an_object = payload.len() >= 2 && payload[payload.len() - 2..] == [0xFF, 0xFF];
    ends_as_an_object.then_some(wal_type)
}

impl WalReading {
    /// Reads a WAL's bytes once, start to end.
    pub fn read(bytes: &[u8]) -> Result<WalReading, UnknownWal> {
        let file_bytes = bytes.len() as u64;
        // A WAL with no whole commit: its header and nothing, then `tail`.
        let no_commit = |tail| WalReading {
            version: KNOWN_WAL_VERSION,
            header_bytes: 0,
            last_commit_end: 0,
            commits: 0,
            entries: 0,
            has_checkpoint_marker: false,
            tail,
        };
        if bytes.is_empty() {
            // DuckDB takes an empty WAL for none: nothing to replay, nothing dropped.
            return Ok(no_commit(WalTail::Clean));
        }
        let Some((version, header_bytes)) = read_header(bytes)? else {
            return Ok(no_commit(WalTail::Torn {
                offset: 0,
                entries: 0,
                bytes: file_bytes,
            }));
        };
        let mut reading = WalReading {
            version,
            header_bytes,
            last_commit_end: header_bytes,
            commits: 0,
            entries: 0,
            has_checkpoint_marker: false,
            tail: WalTail::Clean,
        };
        let mut offset = header_bytes;
        let mut pending_entries = 0u64;
        let mut pending_checkpoint = false;
        reading.tail = loop {
            if offset == file_bytes {
                break if pending_entries == 0 {
                    WalTail::Clean
                } else {
                    WalTail::Uncommitted {
                        entries: pending_entries,
                        bytes: offset - reading.last_commit_end,
                    }
                };
            }
            let torn = WalTail::Torn {
                offset,
                entries: pending_entries,
                bytes: file_bytes - reading.last_commit_end,
            };
            let start = offset as usize;
            let Some(frame) = bytes.get(start..start + ENTRY_HEADER_BYTES as usize) else {
                break torn;
            };
            let size = u64::from_le_bytes(frame[..8].try_into().expect("eight bytes"));
            let stored = u64::from_le_bytes(frame[8..].try_into().expect("eight bytes"));
            let payload_start = offset + ENTRY_HEADER_BYTES;
            // DuckDB adds the size to the offset without overflow checks: a size that wraps
            // around is no torn entry but garbage, which its replay fails on.
            let Some(payload_end) = payload_start.checked_add(size) else {
                break WalTail::Garbage { offset };
            };
            if size == 0 || payload_end > file_bytes {
                break torn;
            }
            let payload = &bytes[payload_start as usize..payload_end as usize];
            if checksum(payload) != stored {
                break WalTail::ChecksumMismatch {
                    offset,
                    entries: pending_entries,
                };
            }
            // A payload that is no object ends DuckDB's scan as a torn entry would; an object of
            // a type it does not know fails its replay.
            let Some(wal_type) = entry_type(payload) else {
                break torn;
            };
            if !is_known_entry_type(wal_type) {
                break WalTail::Garbage { offset };
            }
            offset = payload_end;
            pending_entries += 1;
            pending_checkpoint |= wal_type == CHECKPOINT_TYPE;
            if wal_type == WAL_FLUSH_TYPE {
                reading.commits += 1;
                reading.entries += pending_entries;
                reading.has_checkpoint_marker |= pending_checkpoint;
                reading.last_commit_end = offset;
                pending_entries = 0;
                pending_checkpoint = false;
            }
        };
        debug_assert!(reading.last_commit_end <= file_bytes);
        Ok(reading)
    }

    /// Bytes after the last whole, valid commit.
    pub fn bytes_after_last_commit(&self, file_bytes: u64) -> u64 {
        file_bytes.saturating_sub(self.last_commit_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DuckDB's checksum of known inputs, computed by the C++ source's arithmetic by hand for
    /// the word path, and pinned for the remainder path (which a real WAL entry exercises in
    /// the integration tests: every entry's stored checksum must match).
    #[test]
    fn checksum_follows_duckdb() {
        assert_eq!(checksum(&[]), 5381);
        let word = 0x0102_0304_0506_0708u64;
        assert_eq!(
            checksum(&word.to_le_bytes()),
            5381 ^ word.wrapping_mul(0xbf58_476d_1ce4_e5b9)
        );
        assert_ne!(checksum(&[1]), checksum(&[2]));
        assert_ne!(checksum(&[1, 0]), checksum(&[1]));
    }

    #[test]
    fn leb128_and_headers_parse() {
        let mut fields = Fields::new(&[0xE5, 0x8E, 0x26, 0x7F]);
        assert_eq!(fields.varint(), Some(624_485));
        assert_eq!(fields.varint(), Some(127));
        assert_eq!(fields.varint(), None);
        // field 100 = 98, field 101 = 2, terminator
        let header = [100, 0, 98, 101, 0, 2, 0xFF, 0xFF];
        assert_eq!(read_header(&header), Ok(Some((2, 8))));
        // with an identifier of two bytes and a checkpoint iteration
        let full = [
            100, 0, 98, 101, 0, 2, 102, 0, 2, 7, 9, 103, 0, 5, 0xFF, 0xFF,
        ];
        assert_eq!(read_header(&full), Ok(Some((2, 16))));
        let encrypted = [100, 0, 98, 101, 0, 3, 0xFF, 0xFF];
        assert_eq!(
            read_header(&encrypted),
            Err(UnknownWal::Version { version: 3 })
        );
        // Cut short, or fields out of DuckDB's order: a torn header.
        assert_eq!(read_header(&[1, 2, 3]), Ok(None));
        assert_eq!(read_header(&header[..7]), Ok(None));
        let repeated = [100, 0, 98, 101, 0, 2, 102, 0, 0, 102, 0, 0, 0xFF, 0xFF];
        assert_eq!(read_header(&repeated), Ok(None));
        let whole = WalReading::read(&[9; 20]).unwrap();
        assert_eq!(
            (whole.last_commit_end, whole.tail),
            (
                0,
                WalTail::Torn {
                    offset: 0,
                    entries: 0,
                    bytes: 20
                }
            )
        );
    }

    fn entry(wal_type: u8) -> Vec<u8> {
        framed(vec![100, 0, wal_type, 0xFF, 0xFF])
    }

    fn framed(payload: Vec<u8>) -> Vec<u8> {
        let mut framed = (payload.len() as u64).to_le_bytes().to_vec();
        framed.extend(checksum(&payload).to_le_bytes());
        framed.extend(payload);
        framed
    }

    #[test]
    fn commits_and_tails_are_told_apart() {
        let mut wal = vec![100, 0, 98, 101, 0, 2, 0xFF, 0xFF];
        wal.extend(entry(1));
        wal.extend(entry(100));
        let committed = wal.len() as u64;
        wal.extend(entry(26));
        let reading = WalReading::read(&wal).unwrap();
        assert_eq!((reading.commits, reading.entries), (1, 2));
        assert_eq!(reading.last_commit_end, committed);
        assert_eq!(
            reading.tail,
            WalTail::Uncommitted {
                entries: 1,
                bytes: 21
            }
        );
        let torn = WalReading::read(&wal[..wal.len() - 1]).unwrap();
        assert_eq!(
            torn.tail,
            WalTail::Torn {
                offset: committed,
                entries: 0,
                bytes: 20
            }
        );
        let mut flipped = wal.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 1;
        assert_eq!(
            WalReading::read(&flipped).unwrap().tail,
            WalTail::ChecksumMismatch {
                offset: committed,
                entries: 0
            }
        );
        let mut garbage = wal[..committed as usize].to_vec();
        garbage.extend([0xFF; 40]);
        assert_eq!(
            WalReading::read(&garbage).unwrap().tail,
            WalTail::Garbage { offset: committed }
        );
        // A type DuckDB does not know fails its replay; a payload that is no object ends its
        // scan silently, as a cut would.
        let mut unknown = wal[..committed as usize].to_vec();
        unknown.extend(entry(77));
        assert_eq!(
            WalReading::read(&unknown).unwrap().tail,
            WalTail::Garbage { offset: committed }
        );
        let mut no_object = wal[..committed as usize].to_vec();
        no_object.extend(framed(vec![5, 0, 26]));
        assert!(matches!(
            WalReading::read(&no_object).unwrap().tail,
            WalTail::Torn { offset, .. } if offset == committed
        ));
    }
}
