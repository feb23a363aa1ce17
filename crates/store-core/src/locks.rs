//! Who holds a byte-range lock on a file: what lets an open say "held exclusively by process N"
//! at once instead of failing with `Busy` after its timeout.
//!
//! On Linux the kernel is asked with `F_GETLK` on a descriptor of the file opened for the
//! question and closed after it, in a thread that first gave itself a descriptor table of its own,
//! an empty one (`close_range(2)` with `CLOSE_RANGE_UNSHARE`, Linux 5.9). POSIX locks belong to a
//! descriptor table, and closing any descriptor of a file drops every lock the table's owner holds
//! on it (`fcntl(2)`): asked through the process's own table, the question would drop SQLite's
//! locks. Asked from the private table, the close drops nothing (that table holds no lock), and
//! the process's own locks are another owner's, so they are answered as any other process's. No
//! descriptor is kept: one kept open would hold a FUSE mount busy and deadlock a process that
//! serves that mount itself on its way out.
//!
//! The kernel's lock table, `/proc/locks`, cannot answer exactly. A read of it returns about one
//! page (with 300 locks held, the first read of 64 KiB returned 80 lines of 305), and between
//! reads the locks other processes take and drop shift the lines, so a lock held throughout is
//! skipped: reading it to the end, 23 of 1,000 lookups missed a holder among 2,000 other locks
//! while a third process took and dropped locks. And it names a file by its superblock's device
//! and inode number, which on btrfs two files of two subvolumes share (both printed `00:28:257`,
//! while `stat` gave them devices `0:41` and `0:42`). `F_GETLK` asks about the inode itself.
//!
//! Elsewhere no holder is ever reported.
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
    /// The holder's process ID, when the kernel tells (it does not for an open-file-description
    /// lock, nor for a lock held through another machine's NFS client, nor for a process outside
    /// this one's PID namespace).
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
/// process holds one there (an empty range included). Read locks are not reported: they are what
/// sharing looks like. The answer is the kernel's, for the file itself, at one instant.
///
/// Needs read permission on `path`; fails with `Unsupported` on Linux before 5.9, where a thread
/// cannot give itself an empty descriptor table.
#[cfg(target_os = "linux")]
pub fn write_lock_holder(path: &Path, start: u64, length: u64) -> io::Result<Option<LockHolder>> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("store-lock-holder".to_owned())
            .spawn_scoped(scope, || {
                ask_from_private_descriptor_table(path, start, length)
            })?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// [`write_lock_holder`]'s question, asked on the calling thread, which it leaves with a
/// descriptor table of its own: only for a thread spawned for it.
#[cfg(target_os = "linux")]
fn ask_from_private_descriptor_table(
    path: &Path,
    start: u64,
    length: u64,
) -> io::Result<Option<LockHolder>> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;

    // Where no lock can be: an empty range, or one past the largest offset a lock can take.
    let Ok(first) = libc::off_t::try_from(start) else {
        return Ok(None);
    };
    if length == 0 {
        return Ok(None);
    }
    // From the first byte to the last, or to the end of every file (`l_len` 0) where the range
    // runs past what an offset can say.
    let length = libc::off_t::try_from(length)
        .ok()
        .filter(|length| first.checked_add(*length).is_some())
        .unwrap_or(0);
    // Gives this thread a table of its own that holds none of the process's descriptors (the
    // kernel copies only those below the first it is asked to close, 0): nothing of the process's
    // table is closed or flushed, and the thread's table goes with the thread.
    // SAFETY: close_range takes plain integers; it changes only the calling thread's table.
    let unshared = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            0_u32,
            u32::MAX,
            libc::CLOSE_RANGE_UNSHARE,
        )
    };
    if unshared != 0 {
        let error = io::Error::last_os_error();
        return Err(match error.raw_os_error() {
            Some(libc::ENOSYS | libc::EINVAL) => io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "asking who holds a lock needs close_range(CLOSE_RANGE_UNSHARE), Linux 5.9: {error}"
                ),
            ),
            _ => error,
        });
    }
    // Non-blocking: a FIFO put where the database was must not hang the open.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    // SAFETY: `flock` is plain data, all zeroes a valid value.
    let mut request: libc::flock = unsafe { std::mem::zeroed() };
    // A read lock would conflict with exactly the write locks of every other owner.
    request.l_type = libc::F_RDLCK as libc::c_short;
    request.l_whence = libc::SEEK_SET as libc::c_short;
    request.l_start = first;
    request.l_len = length;
    // SAFETY: F_GETLK with a valid descriptor and a `flock` it may overwrite.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut request) } == -1 {
        return Err(io::Error::last_os_error());
    }
    if request.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(None);
    }
    // An open-file-description lock has no owning process (-1), nor has a lock the kernel cannot
    // place in this PID namespace (0).
    let pid = u32::try_from(request.l_pid).ok().filter(|pid| *pid != 0);
    Ok(Some(LockHolder {
        pid,
        this_process: pid == Some(std::process::id()),
    }))
}

/// Without a way to ask, no holder is ever reported.
#[cfg(not(target_os = "linux"))]
pub fn write_lock_holder(path: &Path, start: u64, length: u64) -> io::Result<Option<LockHolder>> {
    let _ = (path, start, length);
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The holder of this process's own POSIX write lock is found and named as this process; a
    /// read lock, a lock elsewhere in the file and a released lock are not reported; and asking,
    /// which opens and closes a descriptor of the file, drops none of the process's locks.
    #[test]
    #[cfg(target_os = "linux")]
    fn finds_this_processes_own_write_lock_and_ignores_read_locks() -> io::Result<()> {
        use std::os::fd::AsRawFd;

        fn lock(
            file: &std::fs::File,
            kind: libc::c_int,
            start: i64,
            length: i64,
        ) -> io::Result<()> {
            // SAFETY: `flock` is plain data; F_SETLK with a valid descriptor and `flock`.
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

        let directory = tempfile::tempdir()?;
        let path = directory.path().join("locked");
        std::fs::write(&path, b"x")?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)?;
        lock(&file, libc::F_WRLCK, 100, 10)?;
        lock(&file, libc::F_RDLCK, 200, 10)?;
        let this_process = Some(LockHolder {
            pid: Some(std::process::id()),
            this_process: true,
        });
        assert_eq!(write_lock_holder(&path, 105, 1)?, this_process);
        assert_eq!(write_lock_holder(&path, 200, 10)?, None);
        assert_eq!(write_lock_holder(&path, 0, 100)?, None);
        assert_eq!(write_lock_holder(&path, 100, 0)?, None, "an empty range");
        assert_eq!(
            write_lock_holder(&path, 0, u64::MAX)?,
            this_process,
            "a range past the largest offset"
        );
        // Four questions later the lock is still there: none of their closes dropped it.
        assert_eq!(write_lock_holder(&path, 109, 1)?, this_process);
        lock(&file, libc::F_UNLCK, 0, 0)?;
        assert_eq!(write_lock_holder(&path, 100, 10)?, None);
        Ok(())
    }
}
