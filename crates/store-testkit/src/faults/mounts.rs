//! Filesystem faults made with real mounts in a private mount namespace: a tiny tmpfs that fills
//! up, a directory remounted read-only, a loop-mounted XFS or btrfs whose files clone.
//!
//! A mount namespace belongs to the thread that made it: call these in an isolated child
//! ([`isolated!`](crate::isolated)) and do the work on the same thread. Nothing outside the
//! thread sees the mounts, and they vanish when the process exits.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::FaultError;

fn c_path(fault: &'static str, path: &Path) -> Result<CString, FaultError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| FaultError::Io {
        fault,
        source: io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"),
    })
}

pub(crate) fn mount_call(
    fault: &'static str,
    source: Option<&CString>,
    target: &CString,
    filesystem: Option<&CString>,
    flags: libc::c_ulong,
    data: Option<&CString>,
) -> Result<(), FaultError> {
    let pointer = |value: Option<&CString>| value.map_or(std::ptr::null(), |text| text.as_ptr());
    // SAFETY: every pointer is null or a NUL-terminated string that outlives the call.
    let status = unsafe {
        libc::mount(
            pointer(source),
            target.as_ptr(),
            pointer(filesystem),
            flags,
            pointer(data).cast(),
        )
    };
    if status == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EPERM) {
        return Err(FaultError::Unsupported {
            fault,
            reason: format!("mount refused ({error}): needs root or a user namespace"),
        });
    }
    Err(FaultError::Io {
        fault,
        source: error,
    })
}

/// Moves the calling thread into a mount namespace of its own whose mounts do not propagate back.
pub(crate) fn enter_private_mount_namespace(fault: &'static str) -> Result<(), FaultError> {
    // SAFETY: unshare takes flags only.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        let error = io::Error::last_os_error();
        return Err(FaultError::Unsupported {
            fault,
            reason: format!("cannot make a private mount namespace ({error})"),
        });
    }
    let root = c_path(fault, Path::new("/"))?;
    mount_call(
        fault,
        None,
        &root,
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
}

/// Mounts a tmpfs of `size_bytes` on `directory` (which must exist), for disk-full faults:
/// SQLite then fails with SQLITE_FULL and DuckDB with "No space left on device".
pub fn mount_small_tmpfs(directory: &Path, size_bytes: u64) -> Result<(), FaultError> {
    const FAULT: &str = "disk-full";
    enter_private_mount_namespace(FAULT)?;
    let target = c_path(FAULT, directory)?;
    let tmpfs = CString::new("tmpfs").expect("no NUL");
    let options = CString::new(format!("size={size_bytes},mode=0700")).expect("no NUL");
    mount_call(
        FAULT,
        Some(&tmpfs),
        &target,
        Some(&tmpfs),
        0,
        Some(&options),
    )
}

/// Remounts `directory` read-only (a bind mount onto itself, then read-only): even root cannot
/// write there, unlike a chmod.
pub fn remount_read_only(directory: &Path) -> Result<(), FaultError> {
    const FAULT: &str = "read-only-filesystem";
    enter_private_mount_namespace(FAULT)?;
    let target = c_path(FAULT, directory)?;
    mount_call(FAULT, Some(&target), &target, None, libc::MS_BIND, None)?;
    mount_call(
        FAULT,
        None,
        &target,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
        None,
    )
}

/// A filesystem [`mount_loop_filesystem`] can make on an image file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoopFilesystem {
    /// XFS (`mkfs.xfs` from xfsprogs), with reflink: files clone.
    Xfs,
    /// btrfs (`mkfs.btrfs` from btrfs-progs): files clone.
    Btrfs,
}

impl LoopFilesystem {
    /// The program that makes one, and its arguments before the image's path.
    fn mkfs(self) -> (&'static str, &'static [&'static str]) {
        match self {
            LoopFilesystem::Xfs => ("mkfs.xfs", &["-q", "-f", "-m", "reflink=1"]),
            LoopFilesystem::Btrfs => ("mkfs.btrfs", &["-q", "-f"]),
        }
    }
}

/// Mounts a fresh `filesystem` of `size_bytes` (a sparse image file, loop-mounted) on
/// `directory` (which must exist), in the calling thread's private mount namespace: for what only
/// such a filesystem does (a snapshot that clones). The image is unlinked once mounted: it goes
/// with the mount, when the process exits. `Unsupported` when the filesystem's `mkfs` is missing
/// or the kernel cannot loop-mount it.
pub fn mount_loop_filesystem(
    directory: &Path,
    filesystem: LoopFilesystem,
    size_bytes: u64,
) -> Result<(), FaultError> {
    const FAULT: &str = "loop-filesystem";
    let io = |source| FaultError::Io {
        fault: FAULT,
        source,
    };
    enter_private_mount_namespace(FAULT)?;
    let images = tempfile::tempdir().map_err(io)?;
    let image = images.path().join("filesystem.img");
    std::fs::File::create(&image)
        .and_then(|file| file.set_len(size_bytes))
        .map_err(io)?;
    let (mkfs, arguments) = filesystem.mkfs();
    let run = |program: &str, arguments: &[&std::ffi::OsStr]| -> Result<(), FaultError> {
        // A child forked from this thread is in its mount namespace: `mount` mounts there.
        let output = std::process::Command::new(program)
            .args(arguments)
            .output()
            .map_err(|error| FaultError::Unsupported {
                fault: FAULT,
                reason: format!("cannot run {program} ({error}): install it"),
            })?;
        if output.status.success() {
            return Ok(());
        }
        Err(FaultError::Unsupported {
            fault: FAULT,
            reason: format!(
                "{program} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    };
    let mut mkfs_arguments: Vec<&std::ffi::OsStr> =
        arguments.iter().map(std::ffi::OsStr::new).collect();
    mkfs_arguments.push(image.as_os_str());
    run(mkfs, &mkfs_arguments)?;
    run(
        "mount",
        &[
            std::ffi::OsStr::new("-o"),
            std::ffi::OsStr::new("loop"),
            image.as_os_str(),
            directory.as_os_str(),
        ],
    )
}

/// Whether this process may make a private mount namespace and mount a tmpfs in it: tried on a
/// throwaway thread, whose namespace ends with it.
pub fn probe() -> Result<(), FaultError> {
    let directory = tempfile::tempdir().map_err(|source| FaultError::Io {
        fault: "mount-probe",
        source,
    })?;
    let target = directory.path().to_owned();
    std::thread::spawn(move || mount_small_tmpfs(&target, 64 * 1024))
        .join()
        .unwrap_or_else(|_| {
            Err(FaultError::Unsupported {
                fault: "mount-probe",
                reason: "the probe thread panicked".into(),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_only_remount_refuses_writes_even_to_root() {
        crate::isolated!(a_read_only_remount_refuses_writes_even_to_root, {
            let directory = tempfile::tempdir().expect("temp dir");
            std::fs::write(directory.path().join("before"), b"x").expect("writable at first");
            remount_read_only(directory.path()).expect("mount rights on this machine");
            let error = std::fs::write(directory.path().join("after"), b"x").unwrap_err();
            assert_eq!(error.raw_os_error(), Some(libc::EROFS), "{error}");
            assert_eq!(
                std::fs::read(directory.path().join("before")).expect("readable"),
                b"x"
            );
        });
    }

    #[test]
    fn this_machine_can_mount_and_the_probe_leaves_nothing_behind() {
        // CI and the developers' machines run as root with mount rights: the probe must say so.
        probe().expect("mount rights on this machine");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mount table");
        assert!(
            !mounts.contains("store-testkit-probe"),
            "no mount leaked into this thread"
        );
    }

    /// Promise: the loop-mounted filesystems are what they say: `cp --reflink=always`, which
    /// fails where the filesystem cannot clone, clones there.
    #[test]
    fn loop_mounted_xfs_and_btrfs_clone_files() {
        crate::isolated!(loop_mounted_xfs_and_btrfs_clone_files, {
            for filesystem in [LoopFilesystem::Xfs, LoopFilesystem::Btrfs] {
                let directory = tempfile::tempdir().expect("temp dir");
                mount_loop_filesystem(directory.path(), filesystem, 512 * 1024 * 1024)
                    .expect("mkfs and mount rights on this machine");
                let source = directory.path().join("source");
                std::fs::write(&source, vec![7u8; 1024 * 1024]).expect("writable");
                let cloned = std::process::Command::new("cp")
                    .arg("--reflink=always")
                    .arg(&source)
                    .arg(directory.path().join("clone"))
                    .status()
                    .expect("cp runs");
                assert!(cloned.success(), "{filesystem:?} clones");
            }
        });
    }

    /// Promise: filesystem detection, remembered per mount, sees a new mount at a path it
    /// detected before (the mount's id is the key, not the path), and a path not yet created
    /// below it is on the new mount too.
    #[test]
    fn detection_sees_a_new_mount_at_a_path_it_detected_before() {
        crate::isolated!(detection_sees_a_new_mount_at_a_path_it_detected_before, {
            let directory = tempfile::tempdir().expect("temp dir");
            let before = store_core::Filesystem::detect(directory.path()).expect("detected");
            assert_ne!(
                before.type_name, "tmpfs",
                "the test needs a directory not on tmpfs"
            );
            mount_small_tmpfs(directory.path(), 64 * 1024).expect("mount rights on this machine");
            let after = store_core::Filesystem::detect(directory.path()).expect("detected");
            assert_eq!(after.type_name, "tmpfs", "{after:?}");
            let not_yet = directory.path().join("new/state.db");
            let below = store_core::Filesystem::detect(&not_yet).expect("detected");
            assert_eq!(below.type_name, "tmpfs", "{below:?}");
        });
    }

    #[test]
    fn a_small_tmpfs_fills_up() {
        crate::isolated!(a_small_tmpfs_fills_up, {
            let directory = tempfile::tempdir().expect("temp dir");
            mount_small_tmpfs(directory.path(), 64 * 1024).expect("mount rights on this machine");
            let error =
                std::fs::write(directory.path().join("big"), vec![0u8; 256 * 1024]).unwrap_err();
            assert_eq!(error.raw_os_error(), Some(libc::ENOSPC), "{error}");
        });
    }
}
