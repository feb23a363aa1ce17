//! What a path holds, judged from its first bytes, before an engine is let near it: engines
//! happily "open" a text file or the other engine's database and fail later, or write into a
//! zero-byte file, so every open checks first and refuses with a typed error.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::fs::{PathKind, PathStat};
use crate::{Engine, FailureClass};

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
        FileContent::inspect_with(PathStat::of(path), |_| {
            let mut header = Vec::with_capacity(100);
            File::open(path)?.take(100).read_to_end(&mut header)?;
            Ok(FileContent::from_header(&header))
        })
    }

    /// [`inspect`](Self::inspect) for a database about to be opened, which an engine in this
    /// process may hold open already (a plain connection of the application's, another handle):
    /// SQLite's and DuckDB's locks are POSIX locks, which the kernel drops for the whole process
    /// when any descriptor of the file closes, so the descriptor this reads through is kept open,
    /// one per file (device and inode), and read through again by the next inspection of that
    /// file. Past [`KEPT_DESCRIPTORS`] files, the header is read through a descriptor that is
    /// closed, as `inspect` does.
    pub fn inspect_database(path: &Path) -> io::Result<FileContent> {
        FileContent::inspect_database_at(path, PathStat::of(path))
    }

    /// [`inspect_database`](Self::inspect_database) with the path's [`PathStat`], asked by the
    /// caller (once for its whole open).
    pub fn inspect_database_at(
        path: &Path,
        stat: io::Result<Option<PathStat>>,
    ) -> io::Result<FileContent> {
        FileContent::inspect_with(stat, |stat| {
            let mut header = [0u8; 100];
            let read = kept_descriptor(path, (stat.dev, stat.ino), |file| {
                use std::os::unix::fs::FileExt as _;
                let mut filled = 0;
                while filled < header.len() {
                    match file.read_at(&mut header[filled..], filled as u64)? {
                        0 => break,
                        count => filled += count,
                    }
                }
                Ok(filled)
            })?;
            Ok(FileContent::from_header(&header[..read]))
        })
    }

    /// What the path `stat` describes is, from `stat`, and from its first bytes, as
    /// `read_header` reads them, when it is a regular file that is not empty.
    fn inspect_with(
        stat: io::Result<Option<PathStat>>,
        read_header: impl FnOnce(&PathStat) -> io::Result<FileContent>,
    ) -> io::Result<FileContent> {
        let Some(stat) = stat? else {
            return Ok(FileContent::Missing);
        };
        match stat.kind {
            PathKind::Directory => Ok(FileContent::Directory),
            PathKind::Special => Ok(FileContent::Special),
            PathKind::File if stat.len == 0 => Ok(FileContent::Empty),
            PathKind::File => read_header(&stat),
        }
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

/// A path that cannot be opened as a database of the expected engine, found before the engine
/// touched anything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is a directory.
    #[error("{} is a directory, not a database file", path.display())]
    IsADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The path is a socket, device or other special file.
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The path given.
        path: PathBuf,
    },
    /// The directory that should hold the database does not exist.
    #[error("the directory holding {} does not exist", path.display())]
    MissingDirectory {
        /// The path given.
        path: PathBuf,
    },
    /// A read-only open of a database that does not exist.
    #[error("{} does not exist (and a read-only open does not create it)", path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// A zero-byte file: not a database, and store never writes into a file it did not create.
    #[error("{} is an empty file, not a {expected} database (remove it to let a new database be created)", path.display())]
    EmptyFile {
        /// The path given.
        path: PathBuf,
        /// The engine that was to open it.
        expected: Engine,
    },
    /// The other engine's database.
    #[error("{} is a {found} database, not a {expected} one", path.display())]
    OtherEngine {
        /// The path given.
        path: PathBuf,
        /// Whose database it is.
        found: Engine,
        /// The engine that was to open it.
        expected: Engine,
    },
    /// Bytes of no known database.
    #[error("{} is not a {expected} database", path.display())]
    NotADatabase {
        /// The path given.
        path: PathBuf,
        /// The engine that was to open it.
        expected: Engine,
    },
    /// A file the engine keeps beside the database (its WAL, its journal) is a symbolic link,
    /// a directory or another file that is not a regular file: the engine would follow it, or
    /// fail on it, somewhere other than beside the database.
    #[error(
        "{} is not a regular file (a symbolic link, a directory or a special file), so {} cannot \
         be opened through it: put the file it stands for in its place",
        sidecar.display(),
        path.display()
    )]
    SidecarNotAFile {
        /// The path given.
        path: PathBuf,
        /// The file beside it.
        sidecar: PathBuf,
    },
    /// The path could not be examined.
    #[error("cannot examine {}", path.display())]
    Inspect {
        /// The path given.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

impl PathError {
    /// The class: [`FailureClass::NotADatabase`] for files that are not `expected`'s,
    /// [`FailureClass::NotAFile`] for a directory, a special file or a sidecar that is no regular
    /// file, [`FailureClass::NotFound`] for what does not exist, and the operating system's
    /// answer for a path that could not be examined.
    pub fn class(&self) -> FailureClass {
        match self {
            PathError::EmptyFile { .. }
            | PathError::OtherEngine { .. }
            | PathError::NotADatabase { .. } => FailureClass::NotADatabase,
            PathError::IsADirectory { .. }
            | PathError::NotAFile { .. }
            | PathError::SidecarNotAFile { .. } => FailureClass::NotAFile,
            PathError::MissingDirectory { .. } | PathError::NotFound { .. } => {
                FailureClass::NotFound
            }
            PathError::Inspect { source, .. } => FailureClass::from_io_error(source),
        }
    }

    /// The path.
    pub fn path(&self) -> &Path {
        match self {
            PathError::IsADirectory { path }
            | PathError::NotAFile { path }
            | PathError::MissingDirectory { path }
            | PathError::NotFound { path }
            | PathError::EmptyFile { path, .. }
            | PathError::OtherEngine { path, .. }
            | PathError::NotADatabase { path, .. }
            | PathError::SidecarNotAFile { path, .. }
            | PathError::Inspect { path, .. } => path,
        }
    }
}

/// How many database files [`FileContent::inspect_database`] keeps a descriptor of.
pub const KEPT_DESCRIPTORS: usize = 256;

/// The descriptors [`FileContent::inspect_database`] keeps, by device and inode. A `BTreeMap`:
/// no hasher to seed (a `getrandom` in a fresh process) or to run on every open.
fn kept() -> std::sync::MutexGuard<'static, std::collections::BTreeMap<(u64, u64), File>> {
    use std::sync::{Mutex, PoisonError};
    static KEPT: Mutex<std::collections::BTreeMap<(u64, u64), File>> =
        Mutex::new(std::collections::BTreeMap::new());
    KEPT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `read` on a descriptor of the regular file at `path` (whose device and inode, `key`, were
/// just read) that is never closed while its file may be locked by this process: kept, per device
/// and inode, for the life of the process (at most [`KEPT_DESCRIPTORS`]; beyond, a descriptor of its
/// own that closes; on a FUSE filesystem too, see [`on_fuse`]).
fn kept_descriptor<T>(
    path: &Path,
    key: (u64, u64),
    read: impl FnOnce(&File) -> io::Result<T>,
) -> io::Result<T> {
    use std::os::unix::fs::MetadataExt as _;
    let mut kept = kept();
    if let Some(file) = kept.get(&key) {
        return read(file);
    }
    let file = File::open(path)?;
    // The file opened may not be the one whose metadata was read (replaced in between): kept
    // under its own key.
    let opened = file.metadata()?;
    let result = read(&file);
    if kept.len() < KEPT_DESCRIPTORS && !on_fuse(&file) {
        kept.insert((opened.dev(), opened.ino()), file);
    }
    result
}

/// Whether `file` is on a FUSE filesystem, where a descriptor is not kept: the process serving it
/// may be this one (or hold its device open), and a close at exit would then wait for an answer
/// no thread is left to give.
fn on_fuse(file: &File) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        /// `FUSE_SUPER_MAGIC` from `linux/magic.h`.
        const FUSE_SUPER_MAGIC: u64 = 0x6573_5546;
        let mut buffer = std::mem::MaybeUninit::<libc::statfs>::uninit();
        // SAFETY: the descriptor is open and `buffer` holds one `statfs`.
        if unsafe { libc::fstatfs(file.as_raw_fd(), buffer.as_mut_ptr()) } != 0 {
            return true;
        }
        // SAFETY: fstatfs returned 0, so it filled the buffer.
        let info = unsafe { buffer.assume_init() };
        (info.f_type as u64 & 0xFFFF_FFFF) == FUSE_SUPER_MAGIC
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        false
    }
}

/// Checks that `path` can be opened as a database of `expected`: an existing database of that
/// engine, or nothing yet in an existing directory (unless `must_exist`), and that each of its
/// `sidecars` (the suffixes of the files the engine keeps beside it) is a regular file where
/// one exists. Reads at most the first 100 bytes ([`FileContent::inspect_database`], which
/// closes no descriptor of a file an engine may hold); changes nothing.
pub fn check_database_path(
    path: &Path,
    expected: Engine,
    must_exist: bool,
    sidecars: &[&str],
) -> Result<FileContent, PathError> {
    check_database_path_at(path, PathStat::of(path), expected, must_exist, sidecars)
}

/// [`check_database_path`] with the path's [`PathStat`], asked by the caller (once for its whole
/// open).
pub fn check_database_path_at(
    path: &Path,
    stat: io::Result<Option<PathStat>>,
    expected: Engine,
    must_exist: bool,
    sidecars: &[&str],
) -> Result<FileContent, PathError> {
    let content =
        FileContent::inspect_database_at(path, stat).map_err(|source| PathError::Inspect {
            path: path.to_owned(),
            source,
        })?;
    let path_buf = || path.to_owned();
    for suffix in sidecars {
        let sidecar = crate::files::sibling(path, suffix);
        // Not following links: a symbolic link is refused whatever it points to.
        if std::fs::symlink_metadata(&sidecar).is_ok_and(|metadata| !metadata.is_file()) {
            return Err(PathError::SidecarNotAFile {
                path: path_buf(),
                sidecar,
            });
        }
    }
    match content {
        FileContent::Missing if must_exist => Err(PathError::NotFound { path: path_buf() }),
        FileContent::Missing => {
            if crate::files::parent_directory(path).is_dir() {
                Ok(content)
            } else {
                Err(PathError::MissingDirectory { path: path_buf() })
            }
        }
        FileContent::Directory => Err(PathError::IsADirectory { path: path_buf() }),
        FileContent::Special => Err(PathError::NotAFile { path: path_buf() }),
        FileContent::Empty => Err(PathError::EmptyFile {
            path: path_buf(),
            expected,
        }),
        FileContent::Unrecognized => Err(PathError::NotADatabase {
            path: path_buf(),
            expected,
        }),
        found => match found.engine() {
            Some(engine) if engine == expected => Ok(content),
            Some(engine) => Err(PathError::OtherEngine {
                path: path_buf(),
                found: engine,
                expected,
            }),
            None => Err(PathError::NotADatabase {
                path: path_buf(),
                expected,
            }),
        },
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

    #[test]
    fn checks_name_the_path_and_the_engines() -> io::Result<()> {
        let directory = tempfile::tempdir()?;
        let missing = directory.path().join("new.db");
        assert_eq!(
            check_database_path(&missing, Engine::Sqlite, false, &[]).ok(),
            Some(FileContent::Missing)
        );
        let error = check_database_path(&missing, Engine::Sqlite, true, &[]).unwrap_err();
        assert!(matches!(error, PathError::NotFound { .. }), "{error}");
        let orphan = directory.path().join("no/such/dir/new.db");
        let error = check_database_path(&orphan, Engine::Duckdb, false, &[]).unwrap_err();
        assert!(
            matches!(error, PathError::MissingDirectory { .. }),
            "{error}"
        );
        assert_eq!(error.path(), orphan);

        let mut duckdb_header = vec![0u8; 8];
        duckdb_header.extend_from_slice(b"DUCK");
        duckdb_header.resize(64, 0);
        std::fs::write(&missing, &duckdb_header)?;
        let error = check_database_path(&missing, Engine::Sqlite, false, &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{} is a duckdb database, not a sqlite one",
                missing.display()
            )
        );
        assert_eq!(error.class(), FailureClass::NotADatabase);
        assert_eq!(
            check_database_path(&missing, Engine::Duckdb, false, &[]).ok(),
            Some(FileContent::Duckdb)
        );
        Ok(())
    }
}
