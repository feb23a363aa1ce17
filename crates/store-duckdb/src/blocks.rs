//! The blocks of a DuckDB file: those its own headers name, read without DuckDB (a filter that
//! spares the open its query of the blocks in use when the file plainly holds them all), and a
//! file holding fewer than DuckDB has in use ([`BlocksMissing`]).
//!
//! The layout, from the bundled DuckDB's `src/storage/single_file_block_manager.cpp`
//! (`DatabaseHeader::Write`, `SingleFileBlockManager::WriteHeader`): a main header of 4 KiB, then
//! two database headers of 4 KiB each at bytes 4096 and 8192 (written in turns, the one with the
//! higher iteration is current), each an 8-byte checksum followed by little-endian `u64`s:
//! iteration, meta block, free list, block count, block allocation size (0 in old files: the
//! default), vector size, storage version. Blocks start at byte 12288.
//!
//! A header's block count is the file's size at that checkpoint; DuckDB may trim free blocks from
//! the end of the file after writing it, so a file shorter than a header names is not proof of a
//! cut: only DuckDB's count of blocks in use decides that. A file holding every block both
//! headers name needs no asking.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use crate::error::OpenError;

/// Bytes before the first block: the main header and the two database headers.
const HEADERS_BYTES: u64 = 3 * 4096;
/// DuckDB's default block allocation size (`DEFAULT_BLOCK_ALLOC_SIZE`).
pub(crate) const DEFAULT_BLOCK_BYTES: u64 = 256 * 1024;
/// Where each database header starts.
const DATABASE_HEADER_OFFSETS: [usize; 2] = [4096, 8192];
/// A database header's checksum, before its fields.
const CHECKSUM_BYTES: usize = 8;

/// The bytes a file must hold for every block its database headers name: the most either header
/// names (so that it does not matter which is current), or `None` when the headers cannot be
/// read (a file too short for them, or one the OS refuses): the caller then asks DuckDB. Reads
/// through `database`, a descriptor the caller keeps (see [`blocks_missing`]).
pub(crate) fn bytes_named(database: &File) -> Option<u64> {
    let mut headers = [0u8; HEADERS_BYTES as usize];
    database.read_exact_at(&mut headers, 0).ok()?;
    DATABASE_HEADER_OFFSETS
        .iter()
        .map(|offset| {
            let field = |index: usize| {
                let start = offset + CHECKSUM_BYTES + 8 * index;
                u64::from_le_bytes(headers[start..start + 8].try_into().expect("8 bytes"))
            };
            let (block_count, block_bytes) = (field(3), field(4));
            let block_bytes = if block_bytes == 0 {
                DEFAULT_BLOCK_BYTES
            } else {
                block_bytes
            };
            block_count
                .checked_mul(block_bytes)
                .and_then(|blocks| blocks.checked_add(HEADERS_BYTES))
        })
        .try_fold(0u64, |most, named| Some(most.max(named?)))
}

/// A database file that holds fewer whole blocks than DuckDB has in use: cut short (an
/// interrupted copy, a truncation). It would open, and fail at the first read of a missing block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BlocksMissing {
    /// The file's size.
    pub file_bytes: u64,
    /// DuckDB's block size for the file.
    pub block_size: u64,
    /// Blocks DuckDB says are in use.
    pub used_blocks: u64,
    /// Whole blocks the file holds after its headers.
    pub blocks_in_file: u64,
}

impl fmt::Display for BlocksMissing {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "the file is cut short: {} blocks of {} bytes in use, its {} bytes hold {}",
            self.used_blocks, self.block_size, self.file_bytes, self.blocks_in_file
        )
    }
}

/// Whether the database file open in `connection` (read-only will do) is cut short: it holds
/// fewer whole blocks than DuckDB has in use. A file holding every block its own headers name is
/// asked nothing (the query costs 7% of an open, `cargo xtask bench`); one holding fewer is cut
/// short or was trimmed of free blocks after its last checkpoint, and DuckDB's count of blocks in
/// use tells which. Changes nothing; an error only when DuckDB cannot be asked.
///
/// `database` is a descriptor of the file that the caller keeps open at least as long as the
/// instance: DuckDB's lock on the file is a POSIX lock, which the kernel drops for the whole
/// process when any descriptor of the file closes, so a descriptor opened and closed here would
/// let another process open the database beside this one.
pub fn blocks_missing(
    connection: &duckdb::Connection,
    database: &File,
) -> duckdb::Result<Option<BlocksMissing>> {
    let Ok(metadata) = database.metadata() else {
        return Ok(None);
    };
    let file_bytes = metadata.len();
    if bytes_named(database).is_some_and(|named| file_bytes >= named) {
        return Ok(None);
    }
    let (block_size, used_blocks): (u64, u64) = connection.query_row(
        "SELECT block_size, used_blocks FROM pragma_database_size() \
         WHERE database_name = current_database()",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let blocks_in_file = file_bytes.saturating_sub(HEADERS_BYTES) / block_size.max(1);
    Ok((used_blocks > blocks_in_file).then_some(BlocksMissing {
        file_bytes,
        block_size,
        used_blocks,
        blocks_in_file,
    }))
}

impl BlocksMissing {
    /// The open's error, with what a recovery tried and moved.
    pub(crate) fn into_error(
        self,
        path: &Path,
        recovery_failures: Vec<store_core::StepFailed>,
        moved_aside: Vec<store_core::MovedAside>,
    ) -> OpenError {
        OpenError::CutShort {
            path: path.to_owned(),
            file_bytes: self.file_bytes,
            block_size: self.block_size,
            used_blocks: self.used_blocks,
            blocks_in_file: self.blocks_in_file,
            recovery_failures,
            moved_aside,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Promise: the bytes named are those of the header naming the most blocks, in the header's
    /// own block size (the default where it says 0), and a header whose product overflows names
    /// nothing readable: the caller asks DuckDB.
    #[test]
    fn the_most_blocks_either_header_names_at_its_block_size() -> Result<(), std::io::Error> {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("headers");
        let write = |first: (u64, u64), second: (u64, u64)| -> Result<(), std::io::Error> {
            let mut bytes = vec![0u8; HEADERS_BYTES as usize];
            for (offset, (blocks, block_bytes)) in
                DATABASE_HEADER_OFFSETS.iter().zip([first, second])
            {
                let at = offset + CHECKSUM_BYTES + 24;
                bytes[at..at + 8].copy_from_slice(&blocks.to_le_bytes());
                bytes[at + 8..at + 16].copy_from_slice(&block_bytes.to_le_bytes());
            }
            std::fs::write(&path, bytes)
        };
        write((1, 0), (3, 0))?;
        assert_eq!(
            bytes_named(&File::open(&path)?),
            Some(HEADERS_BYTES + 3 * DEFAULT_BLOCK_BYTES)
        );
        write((5, 16384), (2, 0))?;
        assert_eq!(
            bytes_named(&File::open(&path)?),
            Some(HEADERS_BYTES + 2 * DEFAULT_BLOCK_BYTES)
        );
        write((u64::MAX, 2), (1, 0))?;
        assert_eq!(bytes_named(&File::open(&path)?), None);
        std::fs::write(&path, [0u8; 100])?;
        assert_eq!(bytes_named(&File::open(&path)?), None);
        Ok(())
    }
}
