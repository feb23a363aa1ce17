//! What a path holds, judged from its first bytes, before an engine is let near it: engines
//! happily "open" a text file or the other engine's database and fail later, or write into a
//! zero-byte file, so every open checks first and refuses with a typed error.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::Engine;

/// The first 16 bytes of every SQLite database.
pub const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// DuckDB's magic, at [`DUCKDB_MAGIC_OFFSET`] (after an 8-byte checksum).
pub const DUCKDB_MAGIC: &[u8; 4] = b"DUCK";

/// Where [`DUCKDB_MAGIC`] sits in a DuckDB database file.
pub const DUCKDB_MAGIC_OFFSET: usize = 8;

/// What a database path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileContent {
    /// Nothing: the database would be created.
    Missing,
    /// A directory.
    Directory,
    /// Something that is neither a regular file nor a directory (a socket, a device).
    Special,
    /// A regular file of zero bytes.
    Empty,
    /// A SQLite database; `wal` when header bytes 18 and 19 say WAL format (2).
    Sqlite {
        /// Whether the file is in WAL format.
        wal: bool,
    },
    /// A DuckDB database.
    Duckdb,
    /// Bytes of no known database (text, a truncated header, random data).
    Unrecognized,
}

impl FileContent {
    /// Looks at `path` without changing anything (not even its access time beyond a read).
    pub fn inspect(path: &Path) -> io::Result<FileContent> {
        let metadata = match std::fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(FileContent::Missing);
            }
            Err(error) => return Err(error),
        };
        if metadata.is_dir() {
            return Ok(FileContent::Directory);
        }
        if !metadata.is_file() {
            return Ok(FileContent::Special);
        }
        if metadata.len() == 0 {
            return Ok(FileContent::Empty);
        }
        let mut header = Vec::with_capacity(100);
        File::open(path)?.take(100).read_to_end(&mut header)?;
        Ok(FileContent::from_header(&header))
    }

    /// Classifies the first bytes of a non-empty file.
    pub fn from_header(header: &[u8]) -> FileContent {
        if header.is_empty() {
            FileContent::Empty
        } else if header.starts_with(SQLITE_MAGIC) && header.len() >= 20 {
            FileContent::Sqlite {
                wal: header[18] == 2 && header[19] == 2,
            }
        } else if header.get(DUCKDB_MAGIC_OFFSET..DUCKDB_MAGIC_OFFSET + DUCKDB_MAGIC.len())
            == Some(DUCKDB_MAGIC)
        {
            FileContent::Duckdb
        } else {
            FileContent::Unrecognized
        }
    }

    /// The engine whose database this is, if any.
    pub fn engine(self) -> Option<Engine> {
        match self {
            FileContent::Sqlite { .. } => Some(Engine::Sqlite),
            FileContent::Duckdb => Some(Engine::Duckdb),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_told_apart() {
        let mut sqlite = SQLITE_MAGIC.to_vec();
        sqlite.extend_from_slice(&[0x10, 0x00, 1, 1]);
        assert_eq!(
            FileContent::from_header(&sqlite),
            FileContent::Sqlite { wal: false }
        );
        sqlite[18] = 2;
        sqlite[19] = 2;
        assert_eq!(
            FileContent::from_header(&sqlite),
            FileContent::Sqlite { wal: true }
        );
        // A truncated SQLite header is not a database.
        assert_eq!(
            FileContent::from_header(&sqlite[..17]),
            FileContent::Unrecognized
        );

        let mut duckdb = vec![0u8; 8];
        duckdb.extend_from_slice(b"DUCK");
        duckdb.extend_from_slice(&[0u8; 20]);
        assert_eq!(FileContent::from_header(&duckdb), FileContent::Duckdb);
        assert_eq!(FileContent::Duckdb.engine(), Some(Engine::Duckdb));

        assert_eq!(
            FileContent::from_header(b"hello, world\n"),
            FileContent::Unrecognized
        );
        assert_eq!(FileContent::from_header(b""), FileContent::Empty);
    }

    #[test]
    fn paths_are_inspected_without_change() -> io::Result<()> {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("x");
        assert_eq!(FileContent::inspect(&path)?, FileContent::Missing);
        assert_eq!(
            FileContent::inspect(directory.path())?,
            FileContent::Directory
        );
        std::fs::write(&path, b"")?;
        assert_eq!(FileContent::inspect(&path)?, FileContent::Empty);
        std::fs::write(&path, b"not a database")?;
        assert_eq!(FileContent::inspect(&path)?, FileContent::Unrecognized);
        assert_eq!(std::fs::read(&path)?, b"not a database");
        Ok(())
    }
}
