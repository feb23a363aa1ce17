//! Who holds a byte-range lock on a file: what lets an open say "held exclusively by process N"
//! at once instead of failing with `Busy` after its timeout.
//!
//! On Linux the question is asked with an open-file-description lock query (`F_OFD_GETLK`), which
//! sees the POSIX locks of every process, this one included (a classic `F_GETLK` never reports
//! the asking process's own locks, and engines hold theirs as classic POSIX locks). Elsewhere it
//! falls back to `F_GETLK`, which sees only other processes.
//!
//! Closing any descriptor of a file drops every POSIX lock this process holds on that file,
//! SQLite's among them (POSIX, `fcntl(2)`). So the descriptor a query opens is never closed: one
//! per file asked about, kept for the life of the process.
//!
//! ```
//! use store_core::locks::write_lock_holder;
//!
//! let directory = tempfile::tempdir()?;
//! let path = directory.path().join("free.db");
//! std::fs::write(&path, b"nobody locks this")?;
//! assert_eq!(write_lock_holder(&path, 0, 1)?, None);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::path::Path;

/// A process that holds a write lock on part of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockHolder {
    /// The holder's process ID, when the operating system tells (it does not for a lock held
    /// through another machine's NFS client, nor for an open-file-description lock).
    pub pid: Option<u32>,
    /// Whether the holder is this process (another connection of it).
    pub this_process: bool,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.this_process, self.pid) {
            (true, _) => formatter.write_str("this process (another of its connections)"),
            (false, Some(pid)) => write!(formatter, "process {pid}"),
            (false, None) => formatter.write_str("another process (its ID is not known here)"),
        }
    }
}

/// The holder of a write lock on bytes `start .. start + length` of `path`, or `None` when no
/// process holds one there. Read locks are not reported: they are what sharing looks like.
#[cfg(unix)]
pub fn write_lock_holder(path: &Path, start: u64, length: u64) -> io::Result<Option<LockHolder>> {
    use std::collections::BTreeMap;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Mutex, PoisonError};

    /// Descriptors opened for queries, by (device, inode): never closed, see the module docs.
    static QUERY_FILES: Mutex<BTreeMap<(u64, u64), std::fs::File>> = Mutex::new(BTreeMap::new());

    let metadata = std::fs::metadata(path)?;
    let mut files = QUERY_FILES.lock().unwrap_or_else(PoisonError::into_inner);
    let file = match files.entry((metadata.dev(), metadata.ino())) {
        std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
        std::collections::btree_map::Entry::Vacant(entry) => {
            entry.insert(std::fs::File::open(path)?)
        }
    };
    // SAFETY: `flock` is plain data; all-zero is a valid value that the fields below overwrite.
    let mut query: libc::flock = unsafe { std::mem::zeroed() };
    // Asking for a read lock conflicts only with write locks.
    query.l_type = libc::F_RDLCK as libc::c_short;
    query.l_whence = libc::SEEK_SET as libc::c_short;
    query.l_start = libc::off_t::try_from(start).map_err(|_| io::ErrorKind::InvalidInput)?;
    query.l_len = libc::off_t::try_from(length).map_err(|_| io::ErrorKind::InvalidInput)?;
    #[cfg(target_os = "linux")]
    let command = libc::F_OFD_GETLK;
    #[cfg(not(target_os = "linux"))]
    let command = libc::F_GETLK;
    // SAFETY: a valid descriptor, a valid `flock`, a query that changes no lock.
    let answered = unsafe { libc::fcntl(file.as_raw_fd(), command, &mut query) };
    if answered == -1 {
        return Err(io::Error::last_os_error());
    }
    if query.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(None);
    }
    // An open-file-description lock has no owning process: `l_pid` is -1.
    let pid = u32::try_from(query.l_pid).ok().filter(|pid| *pid != 0);
    Ok(Some(LockHolder {
        pid,
        this_process: pid == Some(std::process::id()),
    }))
}

/// Without POSIX locks there is nothing to ask: no holder is ever reported.
#[cfg(not(unix))]
pub fn write_lock_holder(path: &Path, start: u64, length: u64) -> io::Result<Option<LockHolder>> {
    let _ = (path, start, length);
    Ok(None)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn lock(file: &std::fs::File, kind: libc::c_int, start: i64, length: i64) -> io::Result<()> {
        // SAFETY: as above; F_SETLK with a valid `flock`.
        let mut request: libc::flock = unsafe { std::mem::zeroed() };
        request.l_type = kind as libc::c_short;
        request.l_whence = libc::SEEK_SET as libc::c_short;
        request.l_start = start;
        request.l_len = length;
        let answered = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &request) };
        if answered == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The holder of this process's own classic POSIX write lock is found and named as this
    /// process; a read lock and a lock elsewhere in the file are not reported.
    #[test]
    #[cfg(target_os = "linux")]
    fn finds_this_processes_own_write_lock_and_ignores_read_locks() -> io::Result<()> {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("locked");
        std::fs::write(&path, b"x")?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)?;
        lock(&file, libc::F_WRLCK, 100, 10)?;
        lock(&file, libc::F_RDLCK, 200, 10)?;
        let holder = write_lock_holder(&path, 105, 1)?;
        assert_eq!(
            holder,
            Some(LockHolder {
                pid: Some(std::process::id()),
                this_process: true
            })
        );
        assert_eq!(write_lock_holder(&path, 200, 10)?, None);
        assert_eq!(write_lock_holder(&path, 0, 100)?, None);
        lock(&file, libc::F_UNLCK, 0, 0)?;
        assert_eq!(write_lock_holder(&path, 100, 10)?, None);
        Ok(())
    }
}
