//! Filesystem faults made with real mounts in a private mount namespace: a tiny tmpfs that fills
//! up, a directory remounted read-only.
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
