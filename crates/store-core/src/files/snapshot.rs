//! Snapshots: a durable copy that is complete or absent, cloned by the filesystem where it can.

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::place::{create_private, rename_no_replace, sync_directory};
use super::{parent_directory, private_sibling};

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

pub(super) fn io_error(
    operation: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> SnapshotError {
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

pub(super) fn copy_durably(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::sibling;
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
}
