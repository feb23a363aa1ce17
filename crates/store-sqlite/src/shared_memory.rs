//! Whether WAL's shared memory can be made in a directory, asked of SQLite's own VFS on a scratch
//! file: [`shared_memory_fails`].
//!
//! A WAL rung on a database in rollback format switches the file's header to WAL before the first
//! read finds out whether the shared memory (the WAL index, `<db>-shm`) works; where it does not,
//! the fallback switches the header back: two durable header writes, 9 fsyncs, which made the
//! first fallback open of a process 13 times a plain DELETE-mode open (`cargo xtask bench`). This
//! asks first, for the price of the few syscalls the WAL index makes.

use std::ffi::{CString, c_int, c_void};
use std::path::Path;
use std::ptr;

use rusqlite::ffi;
use store_core::files::{private_sibling, sibling};

/// The size of one region of the WAL index, as SQLite's pager maps it (`WALINDEX_PGSZ`).
const WAL_INDEX_REGION_BYTES: c_int = 32 * 1024;

/// Maps the first region of a WAL index beside a scratch file in `directory` through SQLite's
/// default VFS (the open of `-shm`, its locks, its growth and its `mmap`: what a WAL connection
/// does, through the same system calls, faults included), then unmaps it and removes both files.
///
/// `Some(error)` when the mapping failed, with SQLite's code; `None` when it worked, or when the
/// question could not be asked (no scratch file could be made, a VFS without shared memory): the
/// journal ladder's own attempt then decides, as it would have without this.
pub(crate) fn shared_memory_fails(directory: &Path) -> Option<rusqlite::Error> {
    let scratch = private_sibling(&directory.join("store"), "shm-check");
    let name = |suffix: &str| {
        use std::os::unix::ffi::OsStrExt;
        CString::new(sibling(&scratch, suffix).as_os_str().as_bytes()).ok()
    };
    let (database, journal, wal) = (name("")?, name("-journal")?, name("-wal")?);
    // SAFETY: every pointer handed to SQLite below is valid for the call: the VFS is SQLite's
    // registered default (never unregistered by store), `file` is a zeroed buffer of the size
    // the VFS asks for and outlives its close, and `filename` (in the format xOpen requires,
    // made by `sqlite3_create_filename`) is freed only after the file is closed.
    unsafe {
        let vfs = ffi::sqlite3_vfs_find(ptr::null());
        if vfs.is_null() {
            return None;
        }
        let (Some(open), Some(delete)) = ((*vfs).xOpen, (*vfs).xDelete) else {
            return None;
        };
        let words = usize::try_from((*vfs).szOsFile).ok()?.div_ceil(8);
        let mut storage = vec![0_u64; words.max(1)];
        let file = storage.as_mut_ptr().cast::<ffi::sqlite3_file>();
        let filename = ffi::sqlite3_create_filename(
            database.as_ptr(),
            journal.as_ptr(),
            wal.as_ptr(),
            0,
            ptr::null_mut(),
        );
        if filename.is_null() {
            return None;
        }
        let flags = ffi::SQLITE_OPEN_READWRITE
            | ffi::SQLITE_OPEN_CREATE
            | ffi::SQLITE_OPEN_EXCLUSIVE
            | ffi::SQLITE_OPEN_MAIN_DB;
        let mut out_flags = 0;
        let failure = if open(vfs, filename, file, flags, &mut out_flags) != ffi::SQLITE_OK {
            None
        } else {
            let failure = map_region(file);
            if let Some(close) = (*(*file).pMethods).xClose {
                close(file);
            }
            delete(vfs, database.as_ptr(), 0);
            failure
        };
        ffi::sqlite3_free_filename(filename);
        failure
    }
}

/// Maps and unmaps the first WAL-index region of the open `file`; `Some` with SQLite's code when
/// the mapping fails.
///
/// # Safety
///
/// `file` is a file the VFS opened and has not closed.
unsafe fn map_region(file: *mut ffi::sqlite3_file) -> Option<rusqlite::Error> {
    // SAFETY: the caller's promise; `pMethods` is set by a successful xOpen.
    unsafe {
        let methods = &*(*file).pMethods;
        let (true, Some(map), Some(unmap)) =
            (methods.iVersion >= 2, methods.xShmMap, methods.xShmUnmap)
        else {
            return None;
        };
        let mut region: *mut c_void = ptr::null_mut();
        let code = map(file, 0, WAL_INDEX_REGION_BYTES, 1, &mut region);
        // Unmapped whatever happened (a failed map may have opened `-shm`), and `-shm` deleted:
        // the scratch file's index is nobody else's.
        unmap(file, 1);
        (code != ffi::SQLITE_OK).then(|| {
            rusqlite::Error::SqliteFailure(
                ffi::Error::new(code),
                Some("WAL's shared memory (the WAL index) cannot be mapped here".to_owned()),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Promise: on a local disk the check finds shared memory working and leaves no file behind.
    #[test]
    fn shared_memory_works_on_a_local_disk_and_the_check_leaves_nothing()
    -> Result<(), Box<dyn std::error::Error>> {
        let directory = tempfile::tempdir()?;
        assert!(shared_memory_fails(directory.path()).is_none());
        assert_eq!(std::fs::read_dir(directory.path())?.count(), 0);
        Ok(())
    }

    /// Promise: a directory where no scratch file can be made is no verdict (the ladder's own
    /// attempt decides), not a failure of shared memory.
    #[test]
    fn a_missing_directory_is_no_verdict() {
        let directory = tempfile::tempdir().unwrap();
        assert!(shared_memory_fails(&directory.path().join("gone")).is_none());
    }
}
