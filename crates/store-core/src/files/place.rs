//! Atomic placement: renames that never replace, new files placed whole, durable small writes.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::{parent_directory, private_sibling};

/// Creates a new file readable and writable by its owner only; fails if it exists.
pub(super) fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::private_sibling;
    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

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
}
