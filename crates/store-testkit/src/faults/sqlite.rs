//! SQLite faults, each produced by SQLite's own machinery: system-call hooks on the default unix
//! VFS (`xSetSystemCall`), an authorizer installed on every new connection
//! (`sqlite3_auto_extension`), and SQLite's fault simulator (`SQLITE_TESTCTRL_FAULT_INSTALL`).
//!
//! ```no_run
//! use store_testkit::faults::sqlite::SqliteFault;
//!
//! // In a child process (store_testkit::isolated!): this process now behaves like one whose
//! // database lives on an NFS mount without shared memory.
//! let _fault = SqliteFault::NoSharedMemory.install()?;
//! let connection = rusqlite::Connection::open("/tmp/x.db")?;
//! connection.pragma_update(None, "journal_mode", "wal")?;
//! let read = connection.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get::<_, i64>(0));
//! assert!(read.is_err(), "SQLITE_IOERR_SHMMAP: the WAL index cannot be mapped");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::atomic::{AtomicU32, Ordering};

use rusqlite::ffi;

use super::{FaultError, FaultGuard};

/// A fault SQLite produces for real, process-wide while its guard lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SqliteFault {
    /// `mmap` fails with ENODEV: the WAL index cannot be shared, as on NFS, SMB and FUSE mounts
    /// without shared mappings. `journal_mode=WAL` is accepted and the next read fails with
    /// SQLITE_IOERR_SHMMAP; WAL works with `locking_mode=EXCLUSIVE` set first.
    NoSharedMemory,
    /// `fcntl` locks on `-shm` files fail with EAGAIN: SQLITE_PROTOCOL "locking protocol" after
    /// about ten seconds of SQLite's own retries.
    LockProtocol,
    /// Every `fcntl` lock fails with ENOLCK, as on NFSv3 without a lock daemon: SQLITE_BUSY
    /// "database is locked" once the busy timeout runs out.
    NoLocks,
    /// Every new connection gets an authorizer that denies setting `journal_mode`: SQLITE_AUTH
    /// "not authorized", as some sandboxes and FUSE front-ends do.
    JournalPragmaDenied,
    /// SQLite's fault simulator fails the sync at commit (`sqlite3PagerCommitPhaseOne`) with
    /// SQLITE_IOERR, `fail` times after letting `skip` commits through. The transaction rolls
    /// back.
    CommitIoError {
        /// Commits to let through first.
        skip: u32,
        /// Commits to fail after that.
        fail: u32,
    },
}

impl SqliteFault {
    /// The fault's name in tables and errors.
    pub fn name(self) -> &'static str {
        match self {
            SqliteFault::NoSharedMemory => "no-shared-memory",
            SqliteFault::LockProtocol => "lock-protocol",
            SqliteFault::NoLocks => "no-locks",
            SqliteFault::JournalPragmaDenied => "journal-pragma-denied",
            SqliteFault::CommitIoError { .. } => "commit-io-error",
        }
    }

    /// Installs the fault for the whole process until the guard drops. Install it before opening
    /// the connections it should affect, in a process of its own.
    pub fn install(self) -> Result<FaultGuard, FaultError> {
        let name = self.name();
        FaultGuard::install(name, || match self {
            SqliteFault::NoSharedMemory => {
                let hook: MmapFunction = failing_mmap;
                // SAFETY: same signature as mmap(2), which is what SQLite calls through "mmap".
                replace_system_call(name, c"mmap", unsafe {
                    std::mem::transmute::<MmapFunction, unsafe extern "C" fn()>(hook)
                })
            }
            SqliteFault::LockProtocol => {
                let hook: FcntlFunction = shm_lock_fails_fcntl;
                // SAFETY: SQLite calls "fcntl" with (fd, cmd, one pointer-sized argument).
                replace_system_call(name, c"fcntl", unsafe {
                    std::mem::transmute::<FcntlFunction, unsafe extern "C" fn()>(hook)
                })
            }
            SqliteFault::NoLocks => {
                let hook: FcntlFunction = no_locks_fcntl;
                // SAFETY: as above.
                replace_system_call(name, c"fcntl", unsafe {
                    std::mem::transmute::<FcntlFunction, unsafe extern "C" fn()>(hook)
                })
            }
            SqliteFault::JournalPragmaDenied => {
                // SAFETY: the entry point has the signature sqlite3_auto_extension expects.
                let code = unsafe { ffi::sqlite3_auto_extension(Some(deny_journal_mode_entry)) };
                if code != ffi::SQLITE_OK {
                    return Err(FaultError::Sqlite { fault: name, code });
                }
                Ok(Box::new(|| {
                    // SAFETY: cancels the entry point registered above.
                    unsafe { ffi::sqlite3_cancel_auto_extension(Some(deny_journal_mode_entry)) };
                }))
            }
            SqliteFault::CommitIoError { skip, fail } => {
                COMMITS_TO_SKIP.store(skip, Ordering::SeqCst);
                COMMITS_TO_FAIL.store(fail, Ordering::SeqCst);
                COMMITS_FAILED.store(0, Ordering::SeqCst);
                let callback: FaultCallback = fail_commit_sync;
                // SAFETY: FAULT_INSTALL takes one `int (*)(int)` argument.
                let code = unsafe {
                    ffi::sqlite3_test_control(ffi::SQLITE_TESTCTRL_FAULT_INSTALL, callback)
                };
                if code != ffi::SQLITE_OK {
                    return Err(FaultError::Sqlite { fault: name, code });
                }
                Ok(Box::new(|| {
                    // SAFETY: a null callback removes the fault simulator.
                    unsafe {
                        ffi::sqlite3_test_control(
                            ffi::SQLITE_TESTCTRL_FAULT_INSTALL,
                            std::ptr::null::<c_void>(),
                        )
                    };
                }))
            }
        })
    }
}

type MmapFunction =
    unsafe extern "C" fn(*mut c_void, usize, c_int, c_int, c_int, libc::off_t) -> *mut c_void;
type FcntlFunction = unsafe extern "C" fn(c_int, c_int, *mut c_void) -> c_int;
type FaultCallback = extern "C" fn(c_int) -> c_int;

/// Replaces one system call of the default VFS; the uninstaller puts the original back.
fn replace_system_call(
    fault: &'static str,
    name: &'static CStr,
    replacement: unsafe extern "C" fn(),
) -> Result<Box<dyn FnOnce() + Send>, FaultError> {
    // SAFETY: the default VFS lives for the whole process; its system-call table accessors take
    // a NUL-terminated name. Callers install faults before opening the connections they affect.
    unsafe {
        let vfs = ffi::sqlite3_vfs_find(std::ptr::null());
        if vfs.is_null() {
            return Err(FaultError::Unsupported {
                fault,
                reason: "sqlite has no default VFS".into(),
            });
        }
        let (Some(get), Some(set)) = ((*vfs).xGetSystemCall, (*vfs).xSetSystemCall) else {
            return Err(FaultError::Unsupported {
                fault,
                reason: "the default VFS has no system-call hooks".into(),
            });
        };
        let original = get(vfs, name.as_ptr());
        let code = set(vfs, name.as_ptr(), Some(replacement));
        if code != ffi::SQLITE_OK {
            return Err(FaultError::Sqlite { fault, code });
        }
        let vfs_address = vfs as usize;
        Ok(Box::new(move || {
            let vfs = vfs_address as *mut ffi::sqlite3_vfs;
            if let Some(set) = (*vfs).xSetSystemCall {
                set(vfs, name.as_ptr(), original);
            }
        }))
    }
}

fn set_errno(value: c_int) {
    // SAFETY: errno is thread-local and always writable.
    unsafe { *libc::__errno_location() = value };
}

unsafe extern "C" fn failing_mmap(
    _address: *mut c_void,
    _length: usize,
    _protection: c_int,
    _flags: c_int,
    _descriptor: c_int,
    _offset: libc::off_t,
) -> *mut c_void {
    set_errno(libc::ENODEV);
    libc::MAP_FAILED
}

fn is_lock_command(command: c_int) -> bool {
    command == libc::F_SETLK || command == libc::F_SETLKW || command == libc::F_GETLK
}

fn is_shared_memory_file(descriptor: c_int) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{descriptor}"))
        .is_ok_and(|target| target.to_string_lossy().ends_with("-shm"))
}

unsafe extern "C" fn shm_lock_fails_fcntl(
    descriptor: c_int,
    command: c_int,
    argument: *mut c_void,
) -> c_int {
    if command != libc::F_GETLK && is_lock_command(command) && is_shared_memory_file(descriptor) {
        set_errno(libc::EAGAIN);
        return -1;
    }
    // SAFETY: forwards the call SQLite made, unchanged.
    unsafe { libc::fcntl(descriptor, command, argument) }
}

unsafe extern "C" fn no_locks_fcntl(
    descriptor: c_int,
    command: c_int,
    argument: *mut c_void,
) -> c_int {
    if is_lock_command(command) {
        set_errno(libc::ENOLCK);
        return -1;
    }
    // SAFETY: forwards the call SQLite made, unchanged.
    unsafe { libc::fcntl(descriptor, command, argument) }
}

unsafe extern "C" fn deny_journal_mode(
    _user_data: *mut c_void,
    action: c_int,
    first: *const c_char,
    second: *const c_char,
    _database: *const c_char,
    _trigger: *const c_char,
) -> c_int {
    // SQLITE_PRAGMA passes the pragma's name first and its argument second (null when reading).
    if action == ffi::SQLITE_PRAGMA && !first.is_null() && !second.is_null() {
        // SAFETY: SQLite passes NUL-terminated strings valid for the call.
        let name = unsafe { CStr::from_ptr(first) };
        if name.to_bytes().eq_ignore_ascii_case(b"journal_mode") {
            return ffi::SQLITE_DENY;
        }
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn deny_journal_mode_entry(
    database: *mut ffi::sqlite3,
    _error_message: *mut *mut c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> c_int {
    // SAFETY: SQLite hands the entry point a valid connection that is being opened.
    unsafe { ffi::sqlite3_set_authorizer(database, Some(deny_journal_mode), std::ptr::null_mut()) }
}

static COMMITS_TO_SKIP: AtomicU32 = AtomicU32::new(0);
static COMMITS_TO_FAIL: AtomicU32 = AtomicU32::new(0);
static COMMITS_FAILED: AtomicU32 = AtomicU32::new(0);

/// How many commits [`SqliteFault::CommitIoError`] has failed since it was installed: a test that
/// expects the open to absorb the fault shows with it that the fault fired at all (a change that
/// moves the open's commits elsewhere would otherwise pass it on the no-fault outcome).
pub fn commit_failures_injected() -> u32 {
    COMMITS_FAILED.load(Ordering::SeqCst)
}

/// `sqlite3FaultSim(400)` guards the database sync of every commit.
const COMMIT_SYNC_FAULT_POINT: c_int = 400;

extern "C" fn fail_commit_sync(point: c_int) -> c_int {
    if point != COMMIT_SYNC_FAULT_POINT {
        return 0;
    }
    let take = |counter: &AtomicU32| {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    };
    if take(&COMMITS_TO_SKIP) {
        return 0;
    }
    let fail = take(&COMMITS_TO_FAIL);
    if fail {
        COMMITS_FAILED.fetch_add(1, Ordering::SeqCst);
    }
    c_int::from(fail)
}
