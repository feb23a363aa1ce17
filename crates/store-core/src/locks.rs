//! Who holds a byte-range lock on a file: what lets an open say "held exclusively by process N"
//! at once instead of failing with `Busy` after its timeout.
//!
//! On Linux the answer is read from the kernel's lock table, `/proc/locks`, which lists the POSIX
//! and open-file-description locks of every process with the holder's PID, this process's own
//! included. No descriptor of the file is opened: closing any descriptor of a file drops every
//! POSIX lock this process holds on it, SQLite's among them (`fcntl(2)`), and a descriptor kept
//! open would hold a FUSE mount busy and deadlock a process that serves that mount itself on its
//! way out. Elsewhere no holder is ever reported.
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
    /// lock, nor for a lock held through another machine's NFS client).
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
#[cfg(target_os = "linux")]
pub fn write_lock_holder(path: &Path, start: u64, length: u64) -> io::Result<Option<LockHolder>> {
    use std::os::unix::fs::MetadataExt;

    let metadata = std::fs::metadata(path)?;
    let file = FileId {
        major: libc::major(metadata.dev()),
        minor: libc::minor(metadata.dev()),
        inode: metadata.ino(),
    };
    let table = read_lock_table()?;
    let last = start.saturating_add(length.saturating_sub(1));
    Ok(table
        .lines()
        .filter_map(parse_lock_line)
        .find(|lock| lock.file == file && lock.write && lock.first <= last && start <= lock.last)
        .map(|lock| LockHolder {
            pid: lock.pid,
            this_process: lock.pid == Some(std::process::id()),
        }))
}

/// `/proc/locks` in one `read`: the kernel fills a read from the table as it stands, but between
/// reads (`read_to_string` starts with small ones) locks taken or dropped by other processes
/// shift the entries, and an entry can be skipped. Found by the pool tests: under the full test
/// suite the holder was missed one run in three, and the open waited out its busy timeout.
#[cfg(target_os = "linux")]
fn read_lock_table() -> io::Result<String> {
    use std::io::Read;

    let mut capacity = 64 * 1024;
    loop {
        let mut table = vec![0; capacity];
        let read = std::fs::File::open("/proc/locks")?.read(&mut table)?;
        if read < capacity {
            table.truncate(read);
            return String::from_utf8(table)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error));
        }
        capacity *= 4;
    }
}

/// Without a lock table to read, no holder is ever reported.
#[cfg(not(target_os = "linux"))]
pub fn write_lock_holder(path: &Path, start: u64, length: u64) -> io::Result<Option<LockHolder>> {
    let _ = (path, start, length);
    Ok(None)
}

/// A file as the kernel's lock table names it: device major and minor, inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    major: u32,
    minor: u32,
    inode: u64,
}

/// A granted byte-range lock of `/proc/locks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeldLock {
    file: FileId,
    write: bool,
    pid: Option<u32>,
    first: u64,
    last: u64,
}

/// One line of `/proc/locks` (`proc(5)`), e.g.
/// `3: POSIX  ADVISORY  WRITE 1234 00:2a:5678 1073741826 1073742335`: a granted POSIX or
/// open-file-description lock, or `None` for anything else (a waiter, marked `->`; `flock` and
/// lease entries, which are not byte ranges).
fn parse_lock_line(line: &str) -> Option<HeldLock> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [_, kind, _, access, pid, file, first, last] = fields.as_slice() else {
        return None;
    };
    if !matches!(*kind, "POSIX" | "OFDLCK") {
        return None;
    }
    let mut parts = file.split(':');
    let file = FileId {
        major: u32::from_str_radix(parts.next()?, 16).ok()?,
        minor: u32::from_str_radix(parts.next()?, 16).ok()?,
        inode: parts.next()?.parse().ok()?,
    };
    Some(HeldLock {
        file,
        write: *access == "WRITE",
        // An open-file-description lock has no owning process: the table says -1.
        pid: pid.parse::<u32>().ok().filter(|pid| *pid != 0),
        first: first.parse().ok()?,
        last: if *last == "EOF" {
            u64::MAX
        } else {
            last.parse().ok()?
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_table_lines_parse_as_the_kernel_writes_them() {
        assert_eq!(
            parse_lock_line("3: POSIX  ADVISORY  WRITE 1234 00:2a:5678 1073741826 1073742335"),
            Some(HeldLock {
                file: FileId {
                    major: 0,
                    minor: 0x2a,
                    inode: 5678
                },
                write: true,
                pid: Some(1234),
                first: 1_073_741_826,
                last: 1_073_742_335,
            })
        );
        let ofd = parse_lock_line("7: OFDLCK ADVISORY  READ -1 fd:01:99 0 EOF").unwrap();
        assert_eq!((ofd.write, ofd.pid, ofd.last), (false, None, u64::MAX));
        assert_eq!(
            parse_lock_line("7: -> POSIX  ADVISORY  WRITE 99 00:2a:5678 0 0"),
            None
        );
        assert_eq!(
            parse_lock_line("1: FLOCK  ADVISORY  WRITE 99 00:2a:5678 0 EOF"),
            None
        );
        assert_eq!(parse_lock_line(""), None);
    }

    /// The holder of this process's own POSIX write lock is found and named as this process; a
    /// read lock, a lock elsewhere in the file and a released lock are not reported.
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
