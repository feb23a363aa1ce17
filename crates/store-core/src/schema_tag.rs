//! The schema version a pre-migration snapshot was taken at, kept with the file in an extended
//! attribute (`user.store.schema_version`), so that a restore can check the snapshot against its
//! policy without starting the engine on it (for DuckDB, an instance: most of a restore's cost).
//!
//! The tag names the file it was written for (its size and modification time with it): a file
//! overwritten in place since (same inode, other bytes) no longer matches, and a file without
//! a tag (another filesystem, one without extended attributes, a copy that dropped them) is
//! asked through the engine, as before. What the restored database says after the restore's
//! open is what migrations go by.

use std::path::Path;

/// The extended attribute's name.
const ATTRIBUTE: &str = "user.store.schema_version";

/// Tags `path` with `version`; whether the filesystem kept it (one without user extended
/// attributes refuses, and the restore then asks the engine).
pub fn tag(path: &Path, version: u32) -> bool {
    let Some(identity) = identity(path) else {
        return false;
    };
    set(path, format!("{version} {identity}").as_bytes())
}

/// The version `path` was tagged with, if it was, the tag reads as one, and the file is still
/// the one tagged (same size and modification time).
pub fn read(path: &Path) -> Option<u32> {
    let mut value = [0u8; 64];
    let length = get(path, &mut value)?;
    let (version, identity_then) = std::str::from_utf8(&value[..length])
        .ok()?
        .split_once(' ')?;
    (identity(path)? == identity_then)
        .then(|| version.parse().ok())
        .flatten()
}

/// What tells the file tagged from another written over it: its size and modification time
/// (to the nanosecond).
fn identity(path: &Path) -> Option<String> {
    let metadata = std::fs::metadata(path).ok()?;
    let modified = metadata
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!(
        "{} {}.{:09}",
        metadata.len(),
        modified.as_secs(),
        modified.subsec_nanos()
    ))
}

#[cfg(target_os = "linux")]
fn c_strings(path: &Path) -> Option<(std::ffi::CString, std::ffi::CString)> {
    use std::os::unix::ffi::OsStrExt;
    Some((
        std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?,
        std::ffi::CString::new(ATTRIBUTE).ok()?,
    ))
}

#[cfg(target_os = "linux")]
fn set(path: &Path, value: &[u8]) -> bool {
    let Some((path, name)) = c_strings(path) else {
        return false;
    };
    // SAFETY: both strings are NUL-terminated and `value` outlives the call.
    unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        ) == 0
    }
}

#[cfg(target_os = "linux")]
fn get(path: &Path, value: &mut [u8]) -> Option<usize> {
    let (path, name) = c_strings(path)?;
    // SAFETY: both strings are NUL-terminated; `value` is writable for its length.
    let length = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    usize::try_from(length).ok()
}

#[cfg(not(target_os = "linux"))]
fn set(_path: &Path, _value: &[u8]) -> bool {
    false
}

#[cfg(not(target_os = "linux"))]
fn get(_path: &Path, _value: &mut [u8]) -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Promise: a tag reads back as written where the filesystem keeps user attributes (this
    /// machine's ext4 does), and a file never tagged, written over since, or tagged with
    /// something else, reads as none, never as a version.
    #[test]
    fn a_tag_reads_back_and_an_untagged_file_reads_none() -> std::io::Result<()> {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("snapshot");
        std::fs::write(&path, b"bytes")?;
        assert_eq!(read(&path), None);
        assert!(tag(&path, 42), "ext4 keeps user extended attributes");
        assert_eq!(read(&path), Some(42));
        // Written over in place (same inode, so the attribute stays): no longer the file tagged.
        std::fs::write(&path, b"other bytes")?;
        assert_eq!(read(&path), None);
        assert!(set(&path, b"not a number"));
        assert_eq!(read(&path), None);
        assert_eq!(read(&directory.path().join("missing")), None);
        Ok(())
    }
}
