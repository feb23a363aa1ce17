//! Keeping files safe: atomic snapshots, setting files aside and replacing them so that a crash
//! never leaves a name empty or an original lost, sidecar listing, and the explicit retention that
//! is the only thing allowed to delete what was moved aside.
//!
//! ```no_run
//! use std::path::Path;
//! use store_core::files;
//!
//! let database = Path::new("/var/lib/app/system.duckdb");
//! // Before migrating: a durable copy beside the database, with the database's permissions.
//! files::snapshot_file(database, &files::sibling(database, ".pre-migrate"), files::Replace::Allowed)?;
//! // A WAL that cannot be replayed: out of the way, under a name that says when and why.
//! let moved = files::set_aside(
//!     database,
//!     "discarded-wal",
//!     &files::SetAside::all_emptied(&[".wal", ".wal.checkpoint"]),
//! )?;
//! for file in &moved {
//!     println!("{} -> {}", file.from.display(), file.to.display());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::time::UtcTime;

/// `path` with `suffix` appended to its file name: `sibling("a.db", "-wal")` is `a.db-wal`.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// The files `database + suffix` that exist, in the order of `suffixes`.
pub fn existing_sidecars(database: &Path, suffixes: &[&str]) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for suffix in suffixes {
        let candidate = sibling(database, suffix);
        match fs::symlink_metadata(&candidate) {
            Ok(_) => found.push(candidate),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(found)
}

/// Whether [`snapshot_file`] may replace an existing destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    /// Replace it atomically (a newer pre-migration snapshot supersedes the older one).
    Allowed,
    /// Fail with [`SnapshotError::DestinationExists`] (restoring into a database path).
    Refused,
}

/// A durable copy made by [`snapshot_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Snapshot {
    /// Where the copy is.
    pub path: PathBuf,
    /// Its size, equal to the source's.
    pub bytes: u64,
    /// When it was made.
    pub taken_at: SystemTime,
    /// How its bytes were made: cloned by the filesystem, or copied.
    pub copy: SnapshotCopy,
}

/// How [`snapshot_file`] made a copy's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotCopy {
    /// The filesystem cloned the file (`FICLONE`: btrfs, XFS with reflink, bcachefs): the copy
    /// shares the source's extents until either is written, and costs the same whatever the size.
    Cloned,
    /// The bytes were copied (`copy_file_range`: in the kernel, no round trip through user space).
    Copied,
}

impl fmt::Display for SnapshotCopy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            SnapshotCopy::Cloned => "cloned",
            SnapshotCopy::Copied => "copied",
        })
    }
}

/// A snapshot could not be made. The destination is untouched; no temporary file is left behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The source is not there.
    #[error("nothing to snapshot: {} does not exist", path.display())]
    SourceMissing {
        /// The source path.
        path: PathBuf,
    },
    /// The source is a directory or another non-regular file.
    #[error("cannot snapshot {}: not a regular file", path.display())]
    NotAFile {
        /// The source path.
        path: PathBuf,
    },
    /// The destination exists and [`Replace::Refused`] was asked.
    #[error("will not overwrite {}", path.display())]
    DestinationExists {
        /// The destination path.
        path: PathBuf,
    },
    /// The copy came out shorter or longer than the source (the source changed while copying).
    #[error("copy of {} has {copied_bytes} bytes, expected {expected_bytes}", source_path.display())]
    SizeMismatch {
        /// The source path.
        source_path: PathBuf,
        /// The source's size.
        expected_bytes: u64,
        /// What arrived.
        copied_bytes: u64,
    },
    /// An operating-system call failed.
    #[error("cannot {operation} {}", path.display())]
    Io {
        /// What was being done (`read`, `create`, `copy to`, `sync`, `rename into`, ...).
        operation: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

impl SnapshotError {
    /// The failure class: from the operating system's error where there is one.
    pub fn class(&self) -> crate::FailureClass {
        match self {
            SnapshotError::Io { source, .. } => crate::FailureClass::from_io_error(source),
            _ => crate::FailureClass::Other,
        }
    }
}

fn io_error(operation: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SnapshotError {
    move |source| SnapshotError::Io {
        operation,
        path: path.to_owned(),
        source,
    }
}

/// Copies `source` to `destination` so that `destination` is, at every instant, either absent (or
/// its previous content) or a complete copy: a temporary file in the destination's directory,
/// written, checked for size, fsynced, given the source's permissions, renamed into place, and the
/// directory fsynced. The filesystem is asked to clone the file first (`FICLONE`: O(1) on btrfs
/// and XFS), then the bytes are copied (`copy_file_range`, in the kernel); the snapshot says which
/// ([`SnapshotCopy`]).
///
/// The caller makes sure the source does not change meanwhile (a checkpointed, closed database).
pub fn snapshot_file(
    source: &Path,
    destination: &Path,
    replace: Replace,
) -> Result<Snapshot, SnapshotError> {
    // Looked at before it is opened: opening a FIFO for reading would wait for a writer.
    match fs::metadata(source) {
        Ok(metadata) if !metadata.is_file() => {
            return Err(SnapshotError::NotAFile {
                path: source.to_owned(),
            });
        }
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(SnapshotError::SourceMissing {
                path: source.to_owned(),
            });
        }
        Err(error) => return Err(io_error("read", source)(error)),
    }
    let reader = File::open(source).map_err(io_error("open", source))?;
    snapshot_open_file(&reader, source, destination, replace)
}

/// [`snapshot_file`] from a descriptor of `source` that the caller opened and keeps: for a file
/// an engine in this process holds a POSIX lock on (DuckDB's), which the kernel drops for the
/// whole process when any descriptor of the file is closed. Reads from the start of the file;
/// the descriptor's position moves.
pub fn snapshot_open_file(
    reader: &File,
    source: &Path,
    destination: &Path,
    replace: Replace,
) -> Result<Snapshot, SnapshotError> {
    let metadata = reader.metadata().map_err(io_error("read", source))?;
    if !metadata.is_file() {
        return Err(SnapshotError::NotAFile {
            path: source.to_owned(),
        });
    }
    if replace == Replace::Refused && fs::symlink_metadata(destination).is_ok() {
        return Err(SnapshotError::DestinationExists {
            path: destination.to_owned(),
        });
    }
    let directory = parent_directory(destination);
    let temporary = private_sibling(destination, "tmp");
    let result = copy_durably(
        reader,
        source,
        &temporary,
        metadata.len(),
        &metadata.permissions(),
    )
    .and_then(|copy| match replace {
        Replace::Allowed => fs::rename(&temporary, destination)
            .map(|()| copy)
            .map_err(io_error("rename into", destination)),
        Replace::Refused => rename_no_replace(&temporary, destination)
            .map(|()| copy)
            .map_err(|error| {
                if error.kind() == io::ErrorKind::AlreadyExists {
                    SnapshotError::DestinationExists {
                        path: destination.to_owned(),
                    }
                } else {
                    io_error("rename into", destination)(error)
                }
            }),
    });
    let copy = match result {
        Ok(copy) => copy,
        Err(error) => {
            // The temporary file is ours and incomplete; nothing of the user's is removed here.
            let _ = fs::remove_file(&temporary);
            return Err(error);
        }
    };
    sync_directory(&directory).map_err(io_error("sync", &directory))?;
    let written = fs::metadata(destination).map_err(io_error("read back", destination))?;
    if written.len() != metadata.len() {
        return Err(SnapshotError::SizeMismatch {
            source_path: source.to_owned(),
            expected_bytes: metadata.len(),
            copied_bytes: written.len(),
        });
    }
    tracing::debug!(
        target: "store::recovery",
        source = %source.display(),
        destination = %destination.display(),
        bytes = metadata.len(),
        %copy,
        "snapshot taken"
    );
    Ok(Snapshot {
        path: destination.to_owned(),
        bytes: metadata.len(),
        taken_at: SystemTime::now(),
        copy,
    })
}

fn copy_durably(
    mut reader: &File,
    source: &Path,
    temporary: &Path,
    expected_bytes: u64,
    permissions: &fs::Permissions,
) -> Result<SnapshotCopy, SnapshotError> {
    use std::io::Seek as _;
    reader
        .seek(io::SeekFrom::Start(0))
        .map_err(io_error("read", source))?;
    let mut writer = create_private(temporary).map_err(io_error("create", temporary))?;
    let (copy, copied_bytes) = if clone_file(reader, &writer) {
        (
            SnapshotCopy::Cloned,
            writer
                .metadata()
                .map_err(io_error("read back", temporary))?
                .len(),
        )
    } else {
        let copied = io::copy(&mut reader, &mut writer).map_err(io_error("copy to", temporary))?;
        (SnapshotCopy::Copied, copied)
    };
    if copied_bytes != expected_bytes {
        return Err(SnapshotError::SizeMismatch {
            source_path: source.to_owned(),
            expected_bytes,
            copied_bytes,
        });
    }
    // Same permissions as the source; the file was private (0600) until now.
    writer
        .set_permissions(permissions.clone())
        .map_err(io_error("set permissions of", temporary))?;
    writer.sync_all().map_err(io_error("sync", temporary))?;
    Ok(copy)
}

/// Asks the filesystem to make `destination` (empty) a clone of `source`: whether it did. Any
/// refusal (a filesystem that cannot clone, two filesystems, an old kernel) leaves `destination`
/// empty, for the copy.
#[cfg(target_os = "linux")]
fn clone_file(source: &File, destination: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: both descriptors are open for the duration of the call; FICLONE reads an int.
    unsafe { libc::ioctl(destination.as_raw_fd(), libc::FICLONE, source.as_raw_fd()) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn clone_file(_source: &File, _destination: &File) -> bool {
    false
}

/// Creates a new file readable and writable by its owner only; fails if it exists.
fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// A sibling of `path` that no one else uses: `.<name>.<purpose>.<pid>.<counter>` in the same
/// directory (so that a rename from it is atomic). For temporary files and scratch directories.
pub fn private_sibling(path: &Path, purpose: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent_directory(path).join(format!(".{name}.{purpose}.{}.{unique}", std::process::id()))
}

/// A small file could not be written durably by [`write_durably`]. The destination holds what it
/// held before; the temporary sibling is removed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {operation} {}", path.display())]
pub struct WriteDurablyError {
    /// What was being done (`create`, `write`, `sync`, `rename into`).
    pub operation: &'static str,
    /// The file or directory it was done to.
    pub path: PathBuf,
    /// What the operating system said.
    #[source]
    pub source: io::Error,
}

/// The steps of [`write_durably`], for the test that checks their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteStage {
    /// The bytes are in the temporary sibling and fsynced; the destination is untouched.
    Prepared,
    /// The temporary sibling took the destination's name.
    Renamed,
    /// The directory was fsynced: the new name survives a power cut.
    Synced,
}

/// Writes `bytes` to `destination` so that, at every instant and across a power cut, it holds
/// either what it held before (or nothing) or all of `bytes`: a private temporary sibling (owner
/// only), written, fsynced, renamed over the name, and the directory fsynced. For store's own
/// small records beside a database, which a half-written file would make unreadable.
pub fn write_durably(destination: &Path, bytes: &[u8]) -> Result<(), WriteDurablyError> {
    write_durably_observed(destination, bytes, &mut |_| {})
}

fn write_durably_observed(
    destination: &Path,
    bytes: &[u8],
    observe: &mut dyn FnMut(WriteStage),
) -> Result<(), WriteDurablyError> {
    use std::io::Write as _;

    let failed = |operation: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| WriteDurablyError {
            operation,
            path,
            source,
        }
    };
    let directory = parent_directory(destination);
    let temporary = private_sibling(destination, "tmp");
    let prepared = create_private(&temporary)
        .map_err(failed("create", &temporary))
        .and_then(|mut file| {
            file.write_all(bytes).map_err(failed("write", &temporary))?;
            file.sync_all().map_err(failed("sync", &temporary))
        })
        .and_then(|()| {
            observe(WriteStage::Prepared);
            fs::rename(&temporary, destination).map_err(failed("rename into", destination))
        });
    if let Err(error) = prepared {
        // Ours and incomplete or unplaced: nothing of anyone else's is removed here.
        let _ = fs::remove_file(&temporary);
        return Err(error);
    }
    observe(WriteStage::Renamed);
    sync_directory(&directory).map_err(failed("sync", &directory))?;
    observe(WriteStage::Synced);
    Ok(())
}

/// What [`place_new_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// The file is now at its destination.
    Placed,
    /// Something already was at the destination (another process was first); the file was left
    /// where it was, for the caller to discard.
    DestinationTaken,
}

/// Moves a complete file from `temporary` to `destination` without ever replacing anything, and
/// makes the rename durable: how a new database comes into existence whole or not at all.
pub fn place_new_file(temporary: &Path, destination: &Path) -> io::Result<Placed> {
    match rename_no_replace(temporary, destination) {
        Ok(()) => {
            sync_directory(&parent_directory(destination))?;
            Ok(Placed::Placed)
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(Placed::DestinationTaken),
        Err(error) => Err(error),
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_directory(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Makes a rename in `directory` durable.
pub fn sync_directory(directory: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(directory)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = directory;
        Ok(())
    }
}

/// Renames `from` to `to`, failing with [`io::ErrorKind::AlreadyExists`] instead of replacing `to`.
///
/// Linux: `renameat2(RENAME_NOREPLACE)`; where the filesystem does not support it, a hard link
/// (which fails if `to` exists) and an unlink of `from`. Elsewhere, or where neither works, a check
/// then a rename, which a concurrent creator of `to` could race.
pub fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let c_from = std::ffi::CString::new(from.as_os_str().as_bytes())?;
        let c_to = std::ffi::CString::new(to.as_os_str().as_bytes())?;
        // SAFETY: both paths are NUL-terminated C strings that outlive the call.
        let status = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                c_from.as_ptr(),
                libc::AT_FDCWD,
                c_to.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if status == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => {}
            _ => return Err(error),
        }
        match fs::hard_link(from, to) {
            Ok(()) => return fs::remove_file(from),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return Err(error),
            Err(_) => {}
        }
    }
    if fs::symlink_metadata(to).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists", to.display()),
        ));
    }
    fs::rename(from, to)
}

/// A file [`set_aside`] moved out of the way: what stood at `from` is now at `to`, byte for byte
/// and with its permissions, and `from` holds its replacement or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedAside {
    /// Where it was.
    pub from: PathBuf,
    /// Where it is now.
    pub to: PathBuf,
}

/// One name [`set_aside`] clears, `database + suffix`, and what takes its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetAside<'a> {
    /// Appended to the database path: `""` is the database file itself, `".wal"` its WAL.
    pub suffix: &'a str,
    /// A complete file whose durable copy takes the name; `None` leaves the name empty.
    pub replacement: Option<&'a Path>,
}

impl<'a> SetAside<'a> {
    /// The file at `suffix` is set aside and its name left empty.
    pub fn emptied(suffix: &'a str) -> SetAside<'a> {
        SetAside {
            suffix,
            replacement: None,
        }
    }

    /// The file at `suffix` is set aside and a copy of `replacement` takes its name.
    pub fn replaced_by(suffix: &'a str, replacement: &'a Path) -> SetAside<'a> {
        SetAside {
            suffix,
            replacement: Some(replacement),
        }
    }

    /// Every file at `suffixes` set aside, every name left empty.
    pub fn all_emptied(suffixes: &[&'a str]) -> Vec<SetAside<'a>> {
        suffixes
            .iter()
            .map(|suffix| SetAside::emptied(suffix))
            .collect()
    }
}

/// Files could not be set aside or replaced. Unless [`MoveAsideError::already_moved`] lists
/// them, every original still stands at its name and no copy or temporary file of this call is
/// left behind (a copy that cannot be taken back is logged as a warning).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MoveAsideError {
    /// The reason is not a short lowercase word (`broken`, `discarded-wal`).
    #[error("invalid move-aside reason `{reason}` (expected lowercase letters, digits and dashes)")]
    InvalidReason {
        /// The reason given.
        reason: String,
    },
    /// The same suffix was given twice.
    #[error("suffix `{suffix}` given twice")]
    DuplicateSuffix {
        /// The suffix.
        suffix: String,
    },
    /// No free name was found (a thousand moves in one second).
    #[error("no free move-aside name for {} with reason `{reason}`", database.display())]
    NoFreeName {
        /// The database whose files were to move.
        database: PathBuf,
        /// The reason given.
        reason: String,
    },
    /// A file is not the size it must be: a set-aside copy not its original's, or a replaced
    /// name not its replacement's (something else wrote meanwhile).
    #[error("{} has {found_bytes} bytes, expected {expected_bytes}", path.display())]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// The size it must have.
        expected_bytes: u64,
        /// The size it has.
        found_bytes: u64,
        /// Files already replaced when this was found.
        already_moved: Vec<MovedAside>,
    },
    /// A copy (of an original, where hard links are refused, or of a replacement) failed.
    #[error("cannot copy {} to {}", from.display(), to.display())]
    Copy {
        /// What was copied.
        from: PathBuf,
        /// Where to.
        to: PathBuf,
        /// What failed.
        #[source]
        source: SnapshotError,
    },
    /// An operating-system call failed.
    #[error("cannot {operation} {}", path.display())]
    Io {
        /// What was being done (`read`, `link aside`, `sync`, `replace`, `empty`).
        operation: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// Files already replaced or emptied before the failure (they stay where this says).
        already_moved: Vec<MovedAside>,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

impl MoveAsideError {
    /// Files whose originals had left their names, each kept whole at its new name, when the
    /// failure came; the caller reports them.
    pub fn already_moved(&self) -> &[MovedAside] {
        match self {
            MoveAsideError::SizeMismatch { already_moved, .. }
            | MoveAsideError::Io { already_moved, .. } => already_moved,
            _ => &[],
        }
    }

    /// The failure class: from the operating system's error where there is one.
    pub fn class(&self) -> crate::FailureClass {
        match self {
            MoveAsideError::Io { source, .. } => crate::FailureClass::from_io_error(source),
            MoveAsideError::Copy { source, .. } => source.class(),
            _ => crate::FailureClass::Other,
        }
    }
}

/// What [`set_aside`] just did, for tests that check the state of the directory between steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// An original got its set-aside name (the original still stands).
    SetAside,
    /// The directory was fsynced.
    Synced,
    /// A replacement was written to a temporary sibling and fsynced.
    Prepared,
    /// A replacement took its name.
    Replaced,
    /// A name was left empty.
    Emptied,
}

/// How a set-aside copy was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Copied {
    /// A hard link: the same inode under a second name.
    Linked,
    /// A durable copy, where the filesystem refuses hard links.
    Duplicated,
}

/// One name of a [`set_aside`] call as it goes.
struct Member<'a> {
    from: PathBuf,
    suffix: &'a str,
    /// What stood at `from` before anything moved.
    original: Option<fs::Metadata>,
    replacement: Option<&'a Path>,
    /// The set-aside name and how the copy there was made.
    aside: Option<(PathBuf, Copied)>,
    /// The replacement's temporary sibling, complete and fsynced, and its size.
    prepared: Option<(PathBuf, u64)>,
    /// The original has left `from`.
    left: bool,
}

/// Sets files aside and puts their replacements in place so that a crash or power cut at any
/// instant leaves each name holding either its original or its complete replacement, and never
/// loses an original. For each of `files` whose `database + suffix` exists, the file gets the name
/// `database.<reason>.<UTC stamp><suffix>`, all with the same stamp; the empty suffix is the
/// database file itself. Never overwrites: when a name is taken the stamp gets `-1`, `-2`, ...
///
/// The order is what makes it crash-safe:
/// 1. each original is hard-linked to its set-aside name (a link fails instead of replacing; where
///    the filesystem refuses hard links, a durable copy is made instead), and the directory
///    fsynced: the set-aside copies are durable while every original still stands;
/// 2. each replacement is copied to a temporary sibling with the original's permissions (the
///    source's where there is no original) and fsynced; only now, so that the directory fsync of
///    step 1 never makes a temporary's name durable for a cut to leave behind;
/// 3. replacements are renamed over their names (atomic), in the order of `files`, and only then
///    are the names without a replacement emptied (restoring a database: a cut between leaves the
///    restored file beside a WAL DuckDB refuses as another database's, never the old database
///    without its WAL);
/// 4. the directory is fsynced.
///
/// Before step 3 any failure takes back the set-aside names it made (each a second name of a file
/// that still stands, or a redundant copy) and changes nothing. Returns what moved, in the order of
/// `files`.
pub fn set_aside(
    database: &Path,
    reason: &str,
    files: &[SetAside<'_>],
) -> Result<Vec<MovedAside>, MoveAsideError> {
    set_aside_observed(database, reason, files, &mut |_| {})
}

fn set_aside_observed(
    database: &Path,
    reason: &str,
    files: &[SetAside<'_>],
    observe: &mut dyn FnMut(Stage),
) -> Result<Vec<MovedAside>, MoveAsideError> {
    if !is_valid_reason(reason) {
        return Err(MoveAsideError::InvalidReason {
            reason: reason.to_owned(),
        });
    }
    for (index, file) in files.iter().enumerate() {
        if files[..index]
            .iter()
            .any(|earlier| earlier.suffix == file.suffix)
        {
            return Err(MoveAsideError::DuplicateSuffix {
                suffix: file.suffix.to_owned(),
            });
        }
    }
    let directory = parent_directory(database);
    let mut members = Vec::with_capacity(files.len());
    for file in files {
        let from = sibling(database, file.suffix);
        let original = match fs::symlink_metadata(&from) {
            Ok(metadata) => Some(metadata),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(MoveAsideError::Io {
                    operation: "read",
                    path: from,
                    already_moved: Vec::new(),
                    source,
                });
            }
        };
        members.push(Member {
            from,
            suffix: file.suffix,
            original,
            replacement: file.replacement,
            aside: None,
            prepared: None,
            left: false,
        });
    }

    // 1. Durable set-aside copies while every original still stands.
    let standing: Vec<&str> = members
        .iter()
        .filter(|member| member.original.is_some())
        .map(|member| member.suffix)
        .collect();
    if !standing.is_empty() {
        let stamp = free_stamp(database, reason, &standing)?;
        for index in 0..members.len() {
            if members[index].original.is_none() {
                continue;
            }
            let to = sibling(
                database,
                &format!(".{reason}.{stamp}{}", members[index].suffix),
            );
            match copy_aside(&members[index].from, &to) {
                Ok(copied) => {
                    // Tests pause on this event: the original has its second name, not yet durable.
                    tracing::info!(
                        target: "store::recovery",
                        from = %members[index].from.display(),
                        to = %to.display(),
                        "moved aside"
                    );
                    members[index].aside = Some((to, copied));
                    observe(Stage::SetAside);
                }
                Err(error) => return Err(undo(&directory, &members, error)),
            }
        }
        if let Err(source) = sync_directory(&directory) {
            let error = io_failure("sync", &directory, Vec::new(), source);
            return Err(undo(&directory, &members, error));
        }
        observe(Stage::Synced);
        // Read back: a copy shorter than its original must not stand in for it.
        for member in &members {
            if let (Some(original), Some((to, _))) = (&member.original, &member.aside) {
                let found_bytes = fs::symlink_metadata(to).map_or(0, |metadata| metadata.len());
                if found_bytes != original.len() {
                    let error = MoveAsideError::SizeMismatch {
                        path: to.clone(),
                        expected_bytes: original.len(),
                        found_bytes,
                        already_moved: Vec::new(),
                    };
                    return Err(undo(&directory, &members, error));
                }
            }
        }
    }

    // 2. Replacements complete and durable before any name changes.
    for index in 0..members.len() {
        let Some(source) = members[index].replacement else {
            continue;
        };
        let temporary = private_sibling(&members[index].from, "tmp");
        match prepare_replacement(source, &temporary, members[index].original.as_ref()) {
            Ok(bytes) => {
                members[index].prepared = Some((temporary, bytes));
                observe(Stage::Prepared);
            }
            Err(error) => {
                let _ = fs::remove_file(&temporary);
                return Err(undo(&directory, &members, error));
            }
        }
    }

    // 3. The point of no return: replacements first, then the names left empty.
    for index in 0..members.len() {
        let Some((temporary, _)) = &members[index].prepared else {
            continue;
        };
        let from = &members[index].from;
        // Where nothing stood, never replace what another process may have put there since.
        let placed = if members[index].original.is_some() {
            fs::rename(temporary, from)
        } else {
            rename_no_replace(temporary, from)
        };
        if let Err(source) = placed {
            let error = io_failure("replace", from, moved(&members), source);
            return Err(undo(&directory, &members, error));
        }
        tracing::debug!(target: "store::recovery", path = %from.display(), "replaced");
        members[index].left = true;
        observe(Stage::Replaced);
    }
    for index in 0..members.len() {
        if members[index].replacement.is_some() || members[index].aside.is_none() {
            continue;
        }
        if let Err(source) = fs::remove_file(&members[index].from) {
            let error = io_failure("empty", &members[index].from, moved(&members), source);
            return Err(undo(&directory, &members, error));
        }
        members[index].left = true;
        observe(Stage::Emptied);
    }

    // 4. The new names durable.
    if let Err(source) = sync_directory(&directory) {
        return Err(io_failure("sync", &directory, moved(&members), source));
    }
    observe(Stage::Synced);
    for member in &members {
        if let Some((_, expected_bytes)) = member.prepared {
            let found_bytes =
                fs::symlink_metadata(&member.from).map_or(0, |metadata| metadata.len());
            if found_bytes != expected_bytes {
                return Err(MoveAsideError::SizeMismatch {
                    path: member.from.clone(),
                    expected_bytes,
                    found_bytes,
                    already_moved: moved(&members),
                });
            }
        }
    }
    Ok(moved(&members))
}

/// The first stamp (`<now>`, then `<now>-1`, `<now>-2`, ...) under which every suffix's name is
/// free.
fn free_stamp(database: &Path, reason: &str, suffixes: &[&str]) -> Result<String, MoveAsideError> {
    let base_stamp = UtcTime::from_system_time(SystemTime::now()).compact();
    (0..1000)
        .map(|attempt| match attempt {
            0 => base_stamp.clone(),
            n => format!("{base_stamp}-{n}"),
        })
        .find(|stamp| {
            suffixes.iter().all(|suffix| {
                fs::symlink_metadata(sibling(database, &format!(".{reason}.{stamp}{suffix}")))
                    .is_err()
            })
        })
        .ok_or_else(|| MoveAsideError::NoFreeName {
            database: database.to_owned(),
            reason: reason.to_owned(),
        })
}

/// Gives the file at `from` a second name `to` without touching `from`: a hard link, which fails
/// rather than replace `to` and keeps the inode (so bytes and permissions); where the filesystem
/// refuses links, a durable copy that never replaces `to` either.
fn copy_aside(from: &Path, to: &Path) -> Result<Copied, MoveAsideError> {
    match fs::hard_link(from, to) {
        Ok(()) => Ok(Copied::Linked),
        Err(error) if links_refused(&error) => {
            tracing::debug!(
                target: "store::recovery",
                from = %from.display(),
                error = %error,
                "hard links refused; copying instead"
            );
            duplicate_aside(from, to)
        }
        Err(source) => Err(io_failure("link aside", from, Vec::new(), source)),
    }
}

/// The fallback of [`copy_aside`]: a complete, fsynced copy with the original's permissions,
/// renamed into place without replacing anything (never a rename of the original itself, which
/// would leave its name empty before a replacement stands).
fn duplicate_aside(from: &Path, to: &Path) -> Result<Copied, MoveAsideError> {
    snapshot_file(from, to, Replace::Refused)
        .map(|_| Copied::Duplicated)
        .map_err(|source| MoveAsideError::Copy {
            from: from.to_owned(),
            to: to.to_owned(),
            source,
        })
}

/// Whether a failed hard link means the filesystem does not do them (FAT, some network and FUSE
/// filesystems, a link limit), rather than that the name is taken or the disk failed.
fn links_refused(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::PermissionDenied
            | io::ErrorKind::Unsupported
            | io::ErrorKind::CrossesDevices
            | io::ErrorKind::TooManyLinks
    )
}

/// Copies `source` to `temporary`, fsynced, with the permissions of the file it will replace (or
/// the source's where nothing stands), so that a replacement never widens access. Returns its size.
fn prepare_replacement(
    source: &Path,
    temporary: &Path,
    original: Option<&fs::Metadata>,
) -> Result<u64, MoveAsideError> {
    let copy_failed = |error: SnapshotError| MoveAsideError::Copy {
        from: source.to_owned(),
        to: temporary.to_owned(),
        source: error,
    };
    let metadata = match fs::metadata(source) {
        Ok(metadata) if metadata.is_file() => metadata,
        Ok(_) => {
            return Err(copy_failed(SnapshotError::NotAFile {
                path: source.to_owned(),
            }));
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(copy_failed(SnapshotError::SourceMissing {
                path: source.to_owned(),
            }));
        }
        Err(error) => return Err(copy_failed(io_error("read", source)(error))),
    };
    let permissions = match original {
        Some(original) if original.is_file() => original.permissions(),
        _ => metadata.permissions(),
    };
    let reader = File::open(source)
        .map_err(io_error("open", source))
        .map_err(copy_failed)?;
    copy_durably(&reader, source, temporary, metadata.len(), &permissions).map_err(copy_failed)?;
    Ok(metadata.len())
}

fn io_failure(
    operation: &'static str,
    path: &Path,
    already_moved: Vec<MovedAside>,
    source: io::Error,
) -> MoveAsideError {
    MoveAsideError::Io {
        operation,
        path: path.to_owned(),
        already_moved,
        source,
    }
}

/// What has moved so far: the members whose originals left their names, in the order given.
fn moved(members: &[Member<'_>]) -> Vec<MovedAside> {
    members
        .iter()
        .filter(|member| member.left)
        .filter_map(|member| {
            member.aside.as_ref().map(|(to, _)| MovedAside {
                from: member.from.clone(),
                to: to.clone(),
            })
        })
        .collect()
}

/// After a failure: removes the temporary replacements, and the set-aside names of originals
/// that still stand, so that nothing of this call is left but what moved. No byte of the user's
/// goes: a link is removed only while its original still has the same inode, a copy only while
/// its original still stands. Returns `error`.
fn undo(directory: &Path, members: &[Member<'_>], error: MoveAsideError) -> MoveAsideError {
    for member in members {
        if let Some((temporary, _)) = &member.prepared
            && !member.left
        {
            let _ = fs::remove_file(temporary);
        }
        let Some((to, copied)) = &member.aside else {
            continue;
        };
        let redundant = !member.left
            && match copied {
                Copied::Linked => same_file(&member.from, to),
                Copied::Duplicated => fs::symlink_metadata(&member.from).is_ok(),
            };
        if redundant && fs::remove_file(to).is_ok() {
            tracing::debug!(
                target: "store::recovery",
                path = %to.display(),
                "set-aside copy taken back"
            );
        } else if !member.left {
            tracing::warn!(
                target: "store::recovery",
                from = %member.from.display(),
                to = %to.display(),
                "a copy of a file that still stands is left at its set-aside name"
            );
        }
    }
    let _ = sync_directory(directory);
    error
}

/// Whether two paths name the same inode.
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (fs::symlink_metadata(a), fs::symlink_metadata(b)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

/// A file that [`set_aside`] made, found by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedAsideFile {
    /// Where it is.
    pub path: PathBuf,
    /// Why it was moved (`broken`, `discarded-wal`).
    pub reason: String,
    /// The UTC stamp of the move, `YYYYMMDDTHHMMSSZ`.
    pub stamp: String,
    /// 0, or the `-N` that made the name free when the stamp was taken.
    pub counter: u32,
    /// What follows the stamp and counter: the suffix of the name it was moved from (`""` for
    /// the database file itself, `".wal"`).
    pub suffix: String,
}

impl MovedAsideFile {
    /// Where it stood before it was moved: `database + suffix`.
    pub fn moved_from(&self, database: &Path) -> PathBuf {
        sibling(database, &self.suffix)
    }
}

/// Every file [`set_aside`] made for `database`, whatever the reason, oldest first (by stamp,
/// then counter, then name).
///
/// ```no_run
/// use std::path::Path;
///
/// for file in store_core::files::moved_aside_files(Path::new("/var/lib/app/system.duckdb"))? {
///     println!("{} ({}, at {})", file.path.display(), file.reason, file.stamp);
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn moved_aside_files(database: &Path) -> io::Result<Vec<MovedAsideFile>> {
    let Some(name) = database.file_name() else {
        return Ok(Vec::new());
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut found = Vec::new();
    for entry in fs::read_dir(parent_directory(database))? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if let Some((reason, stamp, counter, suffix)) = file_name
            .strip_prefix(&prefix)
            .and_then(parse_moved_aside_name)
        {
            found.push(MovedAsideFile {
                path: entry.path(),
                reason: reason.to_owned(),
                stamp: stamp.to_owned(),
                counter,
                suffix: suffix.to_owned(),
            });
        }
    }
    found.sort_by(|a, b| (&a.stamp, a.counter, &a.path).cmp(&(&b.stamp, b.counter, &b.path)));
    Ok(found)
}

/// Splits what follows `<database name>.` in a moved-aside name, `<reason>.<16-char stamp>[-N]<suffix>`,
/// into the reason, the stamp, the counter and the suffix.
fn parse_moved_aside_name(rest: &str) -> Option<(&str, &str, u32, &str)> {
    let (reason, after_reason) = rest.split_once('.')?;
    if !is_valid_reason(reason) {
        return None;
    }
    let stamp = after_reason
        .get(..16)
        .filter(|stamp| stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T')?;
    let after_stamp = &after_reason[16..];
    let (counter, suffix) = match after_stamp.strip_prefix('-') {
        Some(tail) => {
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            match tail[..digits].parse() {
                Ok(counter) => (counter, &tail[digits..]),
                Err(_) => (0, after_stamp),
            }
        }
        None => (0, after_stamp),
    };
    Some((reason, stamp, counter, suffix))
}

/// A reason is a short word of lowercase letters, digits and dashes, so that it never contains
/// the dot that ends it in a file name.
pub(crate) fn is_valid_reason(reason: &str) -> bool {
    !reason.is_empty()
        && reason
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
}

/// The groups of files [`set_aside`] made for `database` and `reason`, oldest first; each group
/// is the files that share one stamp.
pub fn moved_aside_groups(database: &Path, reason: &str) -> io::Result<Vec<Vec<PathBuf>>> {
    let mut groups: std::collections::BTreeMap<(String, u32), Vec<PathBuf>> = Default::default();
    for file in moved_aside_files(database)? {
        if file.reason == reason {
            groups
                .entry((file.stamp, file.counter))
                .or_default()
                .push(file.path);
        }
    }
    Ok(groups.into_values().collect())
}

/// Deletes the oldest groups of files moved aside for `database` and `reason`, keeping the
/// `keep` newest: the explicit retention setting, the only code that deletes such files.
/// Returns the files deleted.
pub fn prune_moved_aside(database: &Path, reason: &str, keep: usize) -> io::Result<Vec<PathBuf>> {
    let groups = moved_aside_groups(database, reason)?;
    let excess = groups.len().saturating_sub(keep);
    let mut deleted = Vec::new();
    for group in groups.into_iter().take(excess) {
        for path in group {
            fs::remove_file(&path)?;
            tracing::info!(target: "store::recovery", path = %path.display(), "pruned by retention");
            deleted.push(path);
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn snapshot_copies_content_and_permissions_and_leaves_no_temporary() -> TestResult {
        let directory = tempfile::tempdir()?;
        let source = directory.path().join("system.duckdb");
        let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&source, &content)?;
        #[cfg(unix)]
        fs::set_permissions(&source, fs::Permissions::from_mode(0o640))?;
        let destination = sibling(&source, ".pre-migrate");
        let snapshot = snapshot_file(&source, &destination, Replace::Allowed)?;
        assert_eq!(snapshot.bytes, content.len() as u64);
        assert_eq!(fs::read(&destination)?, content);
        #[cfg(unix)]
        assert_eq!(
            fs::metadata(&destination)?.permissions().mode() & 0o777,
            0o640
        );
        let names: Vec<_> = fs::read_dir(directory.path())?
            .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        assert_eq!(names.len(), 2, "{names:?}");
        Ok(())
    }

    #[test]
    fn snapshot_replaces_only_when_allowed() -> TestResult {
        let directory = tempfile::tempdir()?;
        let source = directory.path().join("a.db");
        let destination = directory.path().join("b.db");
        fs::write(&source, b"new")?;
        fs::write(&destination, b"old")?;
        let refused = snapshot_file(&source, &destination, Replace::Refused).unwrap_err();
        assert!(
            matches!(refused, SnapshotError::DestinationExists { .. }),
            "{refused}"
        );
        assert_eq!(fs::read(&destination)?, b"old");
        snapshot_file(&source, &destination, Replace::Allowed)?;
        assert_eq!(fs::read(&destination)?, b"new");
        Ok(())
    }

    #[test]
    fn snapshot_of_bad_sources_is_a_typed_error_and_changes_nothing() -> TestResult {
        let directory = tempfile::tempdir()?;
        let destination = directory.path().join("snap");
        let missing = snapshot_file(
            &directory.path().join("nope"),
            &destination,
            Replace::Allowed,
        )
        .unwrap_err();
        assert!(
            matches!(missing, SnapshotError::SourceMissing { .. }),
            "{missing}"
        );
        let not_a_file =
            snapshot_file(directory.path(), &destination, Replace::Allowed).unwrap_err();
        assert!(
            matches!(not_a_file, SnapshotError::NotAFile { .. }),
            "{not_a_file}"
        );
        assert!(
            not_a_file
                .to_string()
                .contains(&directory.path().display().to_string())
        );
        assert_eq!(fs::read_dir(directory.path())?.count(), 0);
        Ok(())
    }

    #[test]
    fn snapshot_into_a_missing_directory_names_it_and_leaves_nothing() -> TestResult {
        let directory = tempfile::tempdir()?;
        let source = directory.path().join("a.db");
        fs::write(&source, b"x")?;
        let destination = directory.path().join("missing/snap");
        let error = snapshot_file(&source, &destination, Replace::Allowed).unwrap_err();
        assert!(
            matches!(
                error,
                SnapshotError::Io {
                    operation: "create",
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(fs::read_dir(directory.path())?.count(), 1);
        Ok(())
    }

    #[test]
    fn set_aside_moves_a_group_under_one_stamp_keeping_permissions() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("system.duckdb");
        fs::write(&database, b"db")?;
        fs::write(sibling(&database, ".wal"), b"wal")?;
        #[cfg(unix)]
        fs::set_permissions(&database, fs::Permissions::from_mode(0o600))?;
        let moved = set_aside(
            &database,
            "broken",
            &SetAside::all_emptied(&["", ".wal", ".wal.checkpoint"]),
        )?;
        assert_eq!(moved.len(), 2, "the missing .wal.checkpoint is skipped");
        assert!(!database.exists() && !sibling(&database, ".wal").exists());
        let database_name = moved[0]
            .to
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let wal_name = moved[1]
            .to
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            database_name.starts_with("system.duckdb.broken."),
            "{database_name}"
        );
        assert_eq!(wal_name, format!("{database_name}.wal"));
        assert_eq!(fs::read(&moved[1].to)?, b"wal");
        #[cfg(unix)]
        assert_eq!(
            fs::metadata(&moved[0].to)?.permissions().mode() & 0o777,
            0o600
        );
        Ok(())
    }

    #[test]
    fn set_aside_never_overwrites() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("a.db");
        let mut stamps = Vec::new();
        for round in 0..3u8 {
            fs::write(&database, [round])?;
            let moved = set_aside(&database, "broken", &[SetAside::emptied("")])?;
            stamps.push(moved[0].to.clone());
        }
        // Three moves within (most likely) one second: three distinct files, each intact.
        for (round, path) in stamps.iter().enumerate() {
            assert_eq!(fs::read(path)?, [round as u8], "{}", path.display());
        }
        assert_eq!(moved_aside_groups(&database, "broken")?.len(), 3);
        Ok(())
    }

    #[test]
    fn set_aside_rejects_odd_reasons_and_tolerates_nothing_to_move() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("a.db");
        for reason in ["", "Broken", "a/b", "x.y"] {
            let error = set_aside(&database, reason, &[SetAside::emptied("")]).unwrap_err();
            assert!(
                matches!(error, MoveAsideError::InvalidReason { .. }),
                "{reason}"
            );
        }
        let twice = set_aside(
            &database,
            "broken",
            &SetAside::all_emptied(&["-wal", "-wal"]),
        );
        assert!(
            matches!(twice, Err(MoveAsideError::DuplicateSuffix { .. })),
            "{twice:?}"
        );
        assert!(set_aside(&database, "broken", &SetAside::all_emptied(&["", "-wal"]))?.is_empty());
        Ok(())
    }

    /// One name of a [`set_aside`] case: what stands there before, and what replaces it.
    struct Case {
        suffix: &'static str,
        original: Option<&'static [u8]>,
        replacement: Option<&'static [u8]>,
    }

    /// Runs `set_aside` on `cases` and checks the directory after every step it takes: each name
    /// holds its original or its complete replacement; a name without a replacement is empty only
    /// once every replacement stands; every set-aside file holds its whole original; and the
    /// set-aside copies are made durable before any original leaves its name.
    fn check_every_step(cases: &[Case]) -> TestResult {
        let directory = tempfile::tempdir()?;
        let sources = tempfile::tempdir()?;
        let database = directory.path().join("system.duckdb");
        for case in cases {
            if let Some(original) = case.original {
                fs::write(sibling(&database, case.suffix), original)?;
                #[cfg(unix)]
                fs::set_permissions(
                    sibling(&database, case.suffix),
                    fs::Permissions::from_mode(0o640),
                )?;
            }
            if let Some(replacement) = case.replacement {
                fs::write(
                    sources.path().join(format!("source{}", case.suffix)),
                    replacement,
                )?;
            }
        }
        let source_paths: Vec<PathBuf> = cases
            .iter()
            .map(|case| sources.path().join(format!("source{}", case.suffix)))
            .collect();
        let files: Vec<SetAside<'_>> = cases
            .iter()
            .zip(&source_paths)
            .map(|(case, source)| match case.replacement {
                Some(_) => SetAside::replaced_by(case.suffix, source),
                None => SetAside::emptied(case.suffix),
            })
            .collect();
        let check = |stage: Stage| {
            let read = |path: &Path| fs::read(path).ok();
            let every_replacement_stands = cases.iter().all(|case| {
                case.replacement.is_none_or(|bytes| {
                    read(&sibling(&database, case.suffix)).as_deref() == Some(bytes)
                })
            });
            for case in cases {
                let now = read(&sibling(&database, case.suffix));
                let allowed = now.as_deref() == case.original
                    || (case.replacement.is_some() && now.as_deref() == case.replacement)
                    || (case.replacement.is_none() && now.is_none() && every_replacement_stands);
                assert!(allowed, "after {stage:?}, `{}` holds {now:?}", case.suffix);
            }
            for file in moved_aside_files(&database).expect("listable") {
                let name = file.path.to_string_lossy().into_owned();
                let case = cases
                    .iter()
                    .filter(|case| name.ends_with(case.suffix))
                    .max_by_key(|case| case.suffix.len())
                    .expect("a set-aside name ends with a suffix given");
                assert_eq!(
                    read(&file.path).as_deref(),
                    case.original,
                    "after {stage:?}: {name}"
                );
            }
        };
        let mut stages = Vec::new();
        let moved = set_aside_observed(&database, "broken", &files, &mut |stage| {
            check(stage);
            stages.push(stage);
        })?;

        let standing = cases.iter().filter(|case| case.original.is_some()).count();
        let replaced = cases
            .iter()
            .filter(|case| case.replacement.is_some())
            .count();
        let emptied = cases
            .iter()
            .filter(|case| case.original.is_some() && case.replacement.is_none())
            .count();
        let mut expected = vec![Stage::SetAside; standing];
        if standing > 0 {
            expected.push(Stage::Synced);
        }
        expected.extend(vec![Stage::Prepared; replaced]);
        expected.extend(vec![Stage::Replaced; replaced]);
        expected.extend(vec![Stage::Emptied; emptied]);
        expected.push(Stage::Synced);
        assert_eq!(stages, expected);

        assert_eq!(moved.len(), standing);
        for file in &moved {
            let case = cases
                .iter()
                .find(|case| sibling(&database, case.suffix) == file.from)
                .expect("moved from a name given");
            assert_eq!(fs::read(&file.to)?, case.original.expect("it stood"));
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                let metadata = fs::metadata(&file.to)?;
                assert_eq!(metadata.mode() & 0o777, 0o640, "the original's permissions");
                assert_eq!(
                    metadata.nlink(),
                    1,
                    "no name shares the set-aside inode any more"
                );
            }
        }
        for case in cases {
            let path = sibling(&database, case.suffix);
            match case.replacement {
                Some(bytes) => {
                    assert_eq!(fs::read(&path)?, bytes);
                    #[cfg(unix)]
                    if case.original.is_some() {
                        assert_eq!(
                            fs::metadata(&path)?.permissions().mode() & 0o777,
                            0o640,
                            "a replacement takes its original's permissions"
                        );
                    }
                }
                None => assert!(!path.exists(), "{}", path.display()),
            }
        }
        let leftovers: Vec<String> = fs::read_dir(directory.path())?
            .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|name| name.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        Ok(())
    }

    #[test]
    fn a_restored_database_stands_before_its_old_wal_leaves() -> TestResult {
        check_every_step(&[
            Case {
                suffix: "",
                original: Some(b"the broken database"),
                replacement: Some(b"the snapshot"),
            },
            Case {
                suffix: ".wal",
                original: Some(b"the broken WAL"),
                replacement: None,
            },
            Case {
                suffix: ".wal.checkpoint",
                original: None,
                replacement: None,
            },
        ])
    }

    #[test]
    fn a_salvaged_wal_replaces_the_original_with_no_instant_without_one() -> TestResult {
        check_every_step(&[
            Case {
                suffix: ".wal",
                original: Some(b"good entries, then garbage"),
                replacement: Some(b"good entries"),
            },
            Case {
                suffix: ".wal.checkpoint",
                original: Some(b"a checkpoint WAL"),
                replacement: None,
            },
        ])
    }

    #[test]
    fn a_discarded_wal_is_set_aside_before_its_name_is_emptied() -> TestResult {
        check_every_step(&[Case {
            suffix: ".wal",
            original: Some(b"a foreign WAL"),
            replacement: None,
        }])
    }

    #[test]
    fn a_replacement_where_nothing_stood_is_placed_and_nothing_is_set_aside() -> TestResult {
        check_every_step(&[Case {
            suffix: "",
            original: None,
            replacement: Some(b"the snapshot"),
        }])
    }

    #[test]
    fn set_aside_copies_are_byte_identical_with_permissions_and_never_replace() -> TestResult {
        let directory = tempfile::tempdir()?;
        let original = directory.path().join("a.db");
        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        fs::write(&original, &content)?;
        #[cfg(unix)]
        fs::set_permissions(&original, fs::Permissions::from_mode(0o640))?;
        // The hard link, and the copy made where links are refused.
        let linked = directory.path().join("a.db.broken.20260101T000000Z");
        let duplicated = directory.path().join("a.db.broken.20260101T000000Z-1");
        assert_eq!(copy_aside(&original, &linked)?, Copied::Linked);
        assert_eq!(duplicate_aside(&original, &duplicated)?, Copied::Duplicated);
        for copy in [&linked, &duplicated] {
            assert_eq!(fs::read(copy)?, content, "{}", copy.display());
            #[cfg(unix)]
            assert_eq!(fs::metadata(copy)?.permissions().mode() & 0o777, 0o640);
        }
        assert_eq!(fs::read(&original)?, content, "the original still stands");
        // A taken name is never replaced, by either way.
        let taken = directory.path().join("a.db.broken.20260101T000000Z-2");
        fs::write(&taken, b"someone else's")?;
        let by_link = copy_aside(&original, &taken).unwrap_err();
        assert!(
            matches!(
                &by_link,
                MoveAsideError::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists
            ),
            "{by_link:?}"
        );
        let by_copy = duplicate_aside(&original, &taken).unwrap_err();
        assert!(
            matches!(
                by_copy,
                MoveAsideError::Copy {
                    source: SnapshotError::DestinationExists { .. },
                    ..
                }
            ),
            "{by_copy:?}"
        );
        assert_eq!(fs::read(&taken)?, b"someone else's");
        Ok(())
    }

    #[test]
    fn a_replacement_that_cannot_be_copied_changes_nothing() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("a.db");
        fs::write(&database, b"db")?;
        fs::write(sibling(&database, ".wal"), b"wal")?;
        let before: Vec<_> = {
            let mut names: Vec<_> = fs::read_dir(directory.path())?
                .map(|entry| entry.map(|e| e.file_name()))
                .collect::<Result<_, _>>()?;
            names.sort();
            names
        };
        let missing = directory.path().join("no-such-snapshot");
        let error = set_aside(
            &database,
            "broken",
            &[
                SetAside::replaced_by("", &missing),
                SetAside::emptied(".wal"),
            ],
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                MoveAsideError::Copy {
                    source: SnapshotError::SourceMissing { .. },
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.already_moved().is_empty());
        let mut after: Vec<_> = fs::read_dir(directory.path())?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        after.sort();
        assert_eq!(after, before, "the set-aside links were taken back");
        assert_eq!(fs::read(&database)?, b"db");
        assert_eq!(fs::read(sibling(&database, ".wal"))?, b"wal");
        Ok(())
    }

    #[test]
    fn rename_no_replace_refuses_an_existing_target() -> TestResult {
        let directory = tempfile::tempdir()?;
        let from = directory.path().join("from");
        let to = directory.path().join("to");
        fs::write(&from, b"from")?;
        fs::write(&to, b"to")?;
        let error = rename_no_replace(&from, &to).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(
            (fs::read(&from)?, fs::read(&to)?),
            (b"from".to_vec(), b"to".to_vec())
        );
        fs::remove_file(&to)?;
        rename_no_replace(&from, &to)?;
        assert!(!from.exists());
        Ok(())
    }

    #[test]
    fn moved_aside_files_are_found_for_every_reason_oldest_first() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("a.db");
        for name in [
            "a.db.broken.20260102T000000Z-1.wal",
            "a.db.discarded-wal.20250101T000000Z.wal",
            "a.db.broken.20260102T000000Z",
            "a.db.Broken.20260102T000000Z",
            "a.db.broken.notastamp",
            "b.db.broken.20260102T000000Z",
            "a.db-wal",
        ] {
            fs::write(directory.path().join(name), name)?;
        }
        let found = moved_aside_files(&database)?;
        let seen: Vec<(String, &str, &str, u32)> = found
            .iter()
            .map(|file| {
                (
                    file.path
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                    file.reason.as_str(),
                    file.stamp.as_str(),
                    file.counter,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "a.db.discarded-wal.20250101T000000Z.wal".to_owned(),
                    "discarded-wal",
                    "20250101T000000Z",
                    0
                ),
                (
                    "a.db.broken.20260102T000000Z".to_owned(),
                    "broken",
                    "20260102T000000Z",
                    0
                ),
                (
                    "a.db.broken.20260102T000000Z-1.wal".to_owned(),
                    "broken",
                    "20260102T000000Z",
                    1
                ),
            ]
        );
        let suffixes: Vec<&str> = found.iter().map(|file| file.suffix.as_str()).collect();
        assert_eq!(suffixes, [".wal", "", ".wal"]);
        assert_eq!(
            found[2].moved_from(&database),
            directory.path().join("a.db.wal")
        );
        // SQLite's sidecars start with a dash, which is not a counter.
        assert_eq!(
            parse_moved_aside_name("broken.20260102T000000Z-wal"),
            Some(("broken", "20260102T000000Z", 0, "-wal"))
        );
        assert_eq!(
            parse_moved_aside_name("broken.20260102T000000Z-2-wal"),
            Some(("broken", "20260102T000000Z", 2, "-wal"))
        );
        Ok(())
    }

    #[test]
    fn a_durable_write_replaces_the_name_whole_and_syncs_the_directory_last() -> TestResult {
        let directory = tempfile::tempdir()?;
        let destination = directory.path().join("a.db.record");
        fs::write(&destination, b"old")?;
        let mut stages = Vec::new();
        write_durably_observed(&destination, b"new content", &mut |stage| {
            let now = fs::read(&destination).expect("the name always holds a whole file");
            match stage {
                // The new bytes are durable before the name changes.
                WriteStage::Prepared => assert_eq!(now, b"old"),
                WriteStage::Renamed | WriteStage::Synced => assert_eq!(now, b"new content"),
            }
            stages.push(stage);
        })?;
        assert_eq!(
            stages,
            [
                WriteStage::Prepared,
                WriteStage::Renamed,
                WriteStage::Synced
            ]
        );
        #[cfg(unix)]
        assert_eq!(
            fs::metadata(&destination)?.permissions().mode() & 0o777,
            0o600,
            "owner only"
        );
        let names: Vec<String> = fs::read_dir(directory.path())?
            .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        assert_eq!(names, ["a.db.record"], "no temporary left");

        let missing_directory = directory.path().join("gone").join("a.db.record");
        let error = write_durably(&missing_directory, b"x").unwrap_err();
        assert_eq!(error.operation, "create", "{error}");
        assert!(!missing_directory.exists());
        Ok(())
    }

    #[test]
    fn retention_deletes_only_the_oldest_groups_of_its_reason() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("a.db");
        for name in [
            "a.db.broken.20260101T000000Z",
            "a.db.broken.20260101T000000Z.wal",
            "a.db.broken.20260102T000000Z",
            "a.db.broken.20260102T000000Z-1",
            "a.db.discarded-wal.20250101T000000Z.wal",
            "a.db.broken.notastamp",
        ] {
            fs::write(directory.path().join(name), name)?;
        }
        let groups = moved_aside_groups(&database, "broken")?;
        assert_eq!(groups.len(), 3);
        let deleted = prune_moved_aside(&database, "broken", 1)?;
        let mut deleted_names: Vec<_> = deleted
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        deleted_names.sort();
        assert_eq!(
            deleted_names,
            [
                "a.db.broken.20260101T000000Z",
                "a.db.broken.20260101T000000Z.wal",
                "a.db.broken.20260102T000000Z"
            ]
        );
        assert!(
            directory
                .path()
                .join("a.db.broken.20260102T000000Z-1")
                .exists()
        );
        assert!(
            directory
                .path()
                .join("a.db.discarded-wal.20250101T000000Z.wal")
                .exists()
        );
        assert!(directory.path().join("a.db.broken.notastamp").exists());
        Ok(())
    }

    #[test]
    fn placing_a_new_file_never_replaces_and_names_are_private() -> TestResult {
        let directory = tempfile::tempdir()?;
        let destination = directory.path().join("state.db");
        let first = private_sibling(&destination, "creating");
        let second = private_sibling(&destination, "creating");
        assert_ne!(first, second);
        assert!(
            first
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".state.db.creating.")
        );
        fs::write(&first, b"first")?;
        fs::write(&second, b"second")?;
        assert_eq!(place_new_file(&first, &destination)?, Placed::Placed);
        assert_eq!(
            place_new_file(&second, &destination)?,
            Placed::DestinationTaken
        );
        assert_eq!(fs::read(&destination)?, b"first");
        assert_eq!(
            fs::read(&second)?,
            b"second",
            "the loser is left for its owner to discard"
        );
        Ok(())
    }

    #[test]
    fn existing_sidecars_lists_only_present_files_in_order() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("a.db");
        fs::write(sibling(&database, "-shm"), b"")?;
        fs::write(sibling(&database, "-wal"), b"")?;
        let found = existing_sidecars(&database, &["-wal", "-journal", "-shm"])?;
        assert_eq!(
            found,
            [sibling(&database, "-wal"), sibling(&database, "-shm")]
        );
        Ok(())
    }
}
