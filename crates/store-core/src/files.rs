//! Keeping files safe: atomic snapshots, moving aside without ever overwriting, sidecar listing,
//! and the explicit retention that is the only thing allowed to delete what was moved aside.
//!
//! ```no_run
//! use std::path::Path;
//! use store_core::files;
//!
//! let database = Path::new("/var/lib/app/system.duckdb");
//! // Before migrating: a durable copy beside the database, with the database's permissions.
//! files::snapshot_file(database, &files::sibling(database, ".pre-migrate"), files::Replace::Allowed)?;
//! // A WAL that cannot be replayed: out of the way, under a name that says when and why.
//! let moved = files::move_aside(database, &[".wal", ".wal.checkpoint"], "broken")?;
//! for file in &moved {
//!     println!("{} -> {}", file.from.display(), file.to.display());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::OsString;
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
pub struct Snapshot {
    /// Where the copy is.
    pub path: PathBuf,
    /// Its size, equal to the source's.
    pub bytes: u64,
    /// When it was made.
    pub taken_at: SystemTime,
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
/// directory fsynced. On Linux the copy uses `copy_file_range`, which reflinks where the filesystem
/// can (btrfs, xfs) and copies in the kernel elsewhere.
///
/// The caller makes sure the source does not change meanwhile (a checkpointed, closed database).
pub fn snapshot_file(
    source: &Path,
    destination: &Path,
    replace: Replace,
) -> Result<Snapshot, SnapshotError> {
    let metadata = match fs::metadata(source) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(SnapshotError::SourceMissing {
                path: source.to_owned(),
            });
        }
        Err(error) => return Err(io_error("read", source)(error)),
    };
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
    let result = copy_durably(source, &temporary, metadata.len(), &metadata.permissions())
        .and_then(|()| match replace {
            Replace::Allowed => {
                fs::rename(&temporary, destination).map_err(io_error("rename into", destination))
            }
            Replace::Refused => rename_no_replace(&temporary, destination).map_err(|error| {
                if error.kind() == io::ErrorKind::AlreadyExists {
                    SnapshotError::DestinationExists {
                        path: destination.to_owned(),
                    }
                } else {
                    io_error("rename into", destination)(error)
                }
            }),
        });
    if let Err(error) = result {
        // The temporary file is ours and incomplete; nothing of the user's is removed here.
        let _ = fs::remove_file(&temporary);
        return Err(error);
    }
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
        "snapshot taken"
    );
    Ok(Snapshot {
        path: destination.to_owned(),
        bytes: metadata.len(),
        taken_at: SystemTime::now(),
    })
}

fn copy_durably(
    source: &Path,
    temporary: &Path,
    expected_bytes: u64,
    permissions: &fs::Permissions,
) -> Result<(), SnapshotError> {
    let mut reader = File::open(source).map_err(io_error("open", source))?;
    let mut writer = create_private(temporary).map_err(io_error("create", temporary))?;
    let copied_bytes =
        io::copy(&mut reader, &mut writer).map_err(io_error("copy to", temporary))?;
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
    writer.sync_all().map_err(io_error("sync", temporary))
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

/// A file moved out of the way by [`move_aside`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedAside {
    /// Where it was.
    pub from: PathBuf,
    /// Where it is now.
    pub to: PathBuf,
}

/// Files could not be moved aside. Files already moved are listed, so the caller can report them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MoveAsideError {
    /// The reason is not a short lowercase word (`broken`, `discarded-wal`).
    #[error("invalid move-aside reason `{reason}` (expected lowercase letters, digits and dashes)")]
    InvalidReason {
        /// The reason given.
        reason: String,
    },
    /// No free name was found (a thousand moves in one second).
    #[error("no free move-aside name for {} with reason `{reason}`", database.display())]
    NoFreeName {
        /// The database whose files were to move.
        database: PathBuf,
        /// The reason given.
        reason: String,
    },
    /// A rename failed.
    #[error("cannot move {} aside to {}", from.display(), to.display())]
    Rename {
        /// The file being moved.
        from: PathBuf,
        /// Its intended new name.
        to: PathBuf,
        /// Files moved before the failure (they stay where this says).
        already_moved: Vec<MovedAside>,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

/// Moves `database + suffix`, for each suffix whose file exists, to
/// `database.<reason>.<UTC stamp><suffix>`, all with the same stamp; the empty suffix is the
/// database file itself. Never overwrites: when a name is taken the stamp gets `-1`, `-2`, ...
/// Renames keep each file's permissions. Returns what moved, in the order of `suffixes`.
pub fn move_aside(
    database: &Path,
    suffixes: &[&str],
    reason: &str,
) -> Result<Vec<MovedAside>, MoveAsideError> {
    if !is_valid_reason(reason) {
        return Err(MoveAsideError::InvalidReason {
            reason: reason.to_owned(),
        });
    }
    let members: Vec<(&str, PathBuf)> = suffixes
        .iter()
        .map(|suffix| (*suffix, sibling(database, suffix)))
        .filter(|(_, path)| fs::symlink_metadata(path).is_ok())
        .collect();
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let base_stamp = UtcTime::from_system_time(SystemTime::now()).compact();
    let target =
        |stamp: &str, suffix: &str| sibling(database, &format!(".{reason}.{stamp}{suffix}"));
    let stamp = (0..1000)
        .map(|attempt| match attempt {
            0 => base_stamp.clone(),
            n => format!("{base_stamp}-{n}"),
        })
        .find(|stamp| {
            members
                .iter()
                .all(|(suffix, _)| fs::symlink_metadata(target(stamp, suffix)).is_err())
        })
        .ok_or_else(|| MoveAsideError::NoFreeName {
            database: database.to_owned(),
            reason: reason.to_owned(),
        })?;
    let mut moved = Vec::with_capacity(members.len());
    for (suffix, from) in members {
        let to = target(&stamp, suffix);
        if let Err(source) = rename_no_replace(&from, &to) {
            return Err(MoveAsideError::Rename {
                from,
                to,
                already_moved: moved,
                source,
            });
        }
        tracing::info!(
            target: "store::recovery",
            from = %from.display(),
            to = %to.display(),
            "moved aside"
        );
        moved.push(MovedAside { from, to });
    }
    let _ = sync_directory(&parent_directory(database));
    Ok(moved)
}

/// A file that [`move_aside`] made, found by its name.
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
}

/// Every file [`move_aside`] made for `database`, whatever the reason, oldest first (by stamp,
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
        if let Some((reason, stamp, counter)) = file_name
            .strip_prefix(&prefix)
            .and_then(parse_moved_aside_name)
        {
            found.push(MovedAsideFile {
                path: entry.path(),
                reason: reason.to_owned(),
                stamp: stamp.to_owned(),
                counter,
            });
        }
    }
    found.sort_by(|a, b| (&a.stamp, a.counter, &a.path).cmp(&(&b.stamp, b.counter, &b.path)));
    Ok(found)
}

/// Splits what follows `<database name>.` in a moved-aside name, `<reason>.<16-char stamp>[-N]<suffix>`,
/// into the reason, the stamp and the counter.
fn parse_moved_aside_name(rest: &str) -> Option<(&str, &str, u32)> {
    let (reason, after_reason) = rest.split_once('.')?;
    if !is_valid_reason(reason) {
        return None;
    }
    let stamp = after_reason
        .get(..16)
        .filter(|stamp| stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T')?;
    let counter = after_reason[16..]
        .strip_prefix('-')
        .map(|tail| {
            tail.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0);
    Some((reason, stamp, counter))
}

/// A reason is a short word of lowercase letters, digits and dashes, so that it never contains
/// the dot that ends it in a file name.
fn is_valid_reason(reason: &str) -> bool {
    !reason.is_empty()
        && reason
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
}

/// The groups of files [`move_aside`] made for `database` and `reason`, oldest first; each group
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
    fn move_aside_moves_a_group_under_one_stamp_keeping_permissions() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("system.duckdb");
        fs::write(&database, b"db")?;
        fs::write(sibling(&database, ".wal"), b"wal")?;
        #[cfg(unix)]
        fs::set_permissions(&database, fs::Permissions::from_mode(0o600))?;
        let moved = move_aside(&database, &["", ".wal", ".wal.checkpoint"], "broken")?;
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
    fn move_aside_never_overwrites() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("a.db");
        let mut stamps = Vec::new();
        for round in 0..3u8 {
            fs::write(&database, [round])?;
            let moved = move_aside(&database, &[""], "broken")?;
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
    fn move_aside_rejects_odd_reasons_and_tolerates_nothing_to_move() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("a.db");
        for reason in ["", "Broken", "a/b", "x.y"] {
            let error = move_aside(&database, &[""], reason).unwrap_err();
            assert!(
                matches!(error, MoveAsideError::InvalidReason { .. }),
                "{reason}"
            );
        }
        assert!(move_aside(&database, &["", "-wal"], "broken")?.is_empty());
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
