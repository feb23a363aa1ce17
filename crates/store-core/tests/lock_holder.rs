//! `store_core::locks::write_lock_holder` against locks held by other processes: among thousands of
//! locks that change while it asks, and on btrfs, whose subvolumes give two files the same device
//! and inode number in the kernel's lock table.
//!
//! Each test plays its other processes by re-executing this test binary for itself with a role
//! (the way store-testkit's `child` does; store-core cannot depend on store-testkit). A role
//! answers one line on stdout once its locks are held, and ends when its stdin closes.
#![cfg(target_os = "linux")]

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use store_core::locks::{LockHolder, write_lock_holder};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Names the role a re-executed test binary plays.
const ROLE_ENV: &str = "STORE_CORE_LOCK_ROLE";
/// The file a role locks.
const FILE_ENV: &str = "STORE_CORE_LOCK_FILE";
/// Another file in which the holder takes [`OTHER_LOCKS`] more locks after its first.
const OTHERS_ENV: &str = "STORE_CORE_LOCK_OTHERS";
/// What starts a role's own words on its stdout.
const ROLE_SAYS: &str = "role says: ";

/// Where SQLite in exclusive locking mode holds its write lock (`SHARED_FIRST`, `SHARED_SIZE` in
/// `os_unix.c`): the range store-sqlite asks about.
const SHARED_FIRST: u64 = 0x4000_0002;
const SHARED_SIZE: u64 = 510;

/// The locks the holder takes besides the one asked about.
const OTHER_LOCKS: u64 = 2_000;
/// How many times the holder is looked up.
const LOOKUPS: usize = 1_000;

/// Promise: the holder of a write lock is named on every lookup, however many locks the machine
/// holds and however they change meanwhile: with 2,000 other locks held by the holder (its lock
/// on the database taken first, so that the kernel's table lists it after them) and a third
/// process taking and dropping locks in a loop, 1,000 of 1,000 lookups name the holder.
#[test]
fn the_holder_is_named_on_every_lookup_among_thousands_of_changing_locks() -> TestResult {
    if let Some(role) = role() {
        play(&role);
    }
    let directory = tempfile::tempdir()?;
    let database = directory.path().join("database");
    let others = directory.path().join("others");
    let churned = directory.path().join("churned");
    for path in [&database, &others, &churned] {
        std::fs::write(path, b"")?;
    }
    let test = "the_holder_is_named_on_every_lookup_among_thousands_of_changing_locks";
    let mut holder = Role::start(
        test,
        "holder",
        &[
            (FILE_ENV, database.clone().into()),
            (OTHERS_ENV, others.into()),
        ],
    )?;
    let mut churner = Role::start(test, "churner", &[(FILE_ENV, churned.into())])?;

    let expected = Some(LockHolder {
        pid: Some(holder.id()),
        this_process: false,
    });
    let mut named = 0;
    let mut otherwise = Vec::new();
    for _ in 0..LOOKUPS {
        let found = write_lock_holder(&database, SHARED_FIRST, SHARED_SIZE)?;
        if found == expected {
            named += 1;
        } else {
            otherwise.push(found);
        }
    }
    let rounds = churner.finish()?;
    holder.finish()?;
    println!(
        "{named} of {LOOKUPS} lookups named the holder, process {} (holding {OTHER_LOCKS} other \
         locks); process {} took and dropped locks {rounds} meanwhile",
        holder.id(),
        churner.id(),
    );
    assert_eq!(
        named,
        LOOKUPS,
        "the other lookups found: {:?}",
        &otherwise[..otherwise.len().min(10)]
    );
    Ok(())
}

/// Promise: on btrfs, where `stat` gives each subvolume a device of its own and the kernel's lock
/// table names a file by the filesystem's device and the inode number, which the first file of
/// every subvolume shares, a lock held by another process on one file is named, and the file with
/// the same inode number in another subvolume is not said to be held.
#[test]
fn on_btrfs_the_holder_is_named_and_the_same_inode_in_another_subvolume_is_not_held() -> TestResult
{
    let test = "on_btrfs_the_holder_is_named_and_the_same_inode_in_another_subvolume_is_not_held";
    match role().as_deref() {
        Some("btrfs") => btrfs_lookups(test),
        Some(role) => play(role),
        None => {
            let output = role_command(test, "btrfs", &[]).output()?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            print!("{stdout}");
            assert!(
                output.status.success() && stdout.contains("1 passed"),
                "the btrfs child failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
                output.status
            );
            Ok(())
        }
    }
}

/// The btrfs test's body, in a child with a mount namespace of its own (mounts belong to the
/// thread that makes the namespace, and vanish with the process).
fn btrfs_lookups(test: &str) -> TestResult {
    // SAFETY: unshare takes flags only; it moves this thread into a new mount namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    run("mount", &["--make-rprivate".as_ref(), "/".as_ref()])?;
    let images = tempfile::tempdir()?;
    let image = images.path().join("btrfs.img");
    std::fs::File::create(&image)?.set_len(256 * 1024 * 1024)?;
    run(
        "mkfs.btrfs",
        &["-q".as_ref(), "-f".as_ref(), image.as_ref()],
    )?;
    let mount_point = tempfile::tempdir()?;
    run(
        "mount",
        &[
            "-o".as_ref(),
            "loop".as_ref(),
            image.as_ref(),
            mount_point.path().as_ref(),
        ],
    )?;
    let subvolume = mount_point.path().join("subvolume");
    run(
        "btrfs",
        &["subvolume".as_ref(), "create".as_ref(), subvolume.as_ref()],
    )?;
    let held = mount_point.path().join("held.db");
    let twin = subvolume.join("twin.db");
    std::fs::write(&held, b"")?;
    std::fs::write(&twin, b"")?;

    let identity = |path: &Path| -> std::io::Result<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let metadata = std::fs::metadata(path)?;
        Ok((metadata.dev(), metadata.ino()))
    };
    let (held_device, held_inode) = identity(&held)?;
    let (twin_device, twin_inode) = identity(&twin)?;
    assert_eq!(
        held_inode, twin_inode,
        "the first file of each subvolume has the same inode number"
    );
    let mut holder = Role::start(test, "holder", &[(FILE_ENV, held.clone().into())])?;
    let table: Vec<String> = std::fs::read_to_string("/proc/locks")?
        .lines()
        .filter(|line| line.split_whitespace().nth(4) == Some(&holder.id().to_string()))
        .map(str::to_owned)
        .collect();
    let held_found = write_lock_holder(&held, SHARED_FIRST, SHARED_SIZE)?;
    let twin_found = write_lock_holder(&twin, SHARED_FIRST, SHARED_SIZE)?;
    holder.finish()?;
    println!(
        "btrfs: stat gives the held file device {}:{} inode {held_inode} and its twin device {}:{} \
         inode {twin_inode}; /proc/locks has {table:?}; found {held_found:?} and {twin_found:?}",
        libc::major(held_device),
        libc::minor(held_device),
        libc::major(twin_device),
        libc::minor(twin_device),
    );
    assert_eq!(
        held_found,
        Some(LockHolder {
            pid: Some(holder.id()),
            this_process: false
        }),
        "the holder is named"
    );
    assert_eq!(twin_found, None, "the twin in the other subvolume is free");
    Ok(())
}

/// Runs `program` to success, in this thread's mount namespace.
fn run(program: &str, arguments: &[&std::ffi::OsStr]) -> TestResult {
    let output = Command::new(program).args(arguments).output()?;
    if !output.status.success() {
        return Err(format!(
            "{program} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    Ok(())
}

/// The role this process was started to play, if it is one of a test's other processes.
fn role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// The command that re-executes this test binary for `test` alone, playing `role`.
fn role_command(test: &str, role: &str, environment: &[(&str, OsString)]) -> Command {
    let executable = std::env::current_exe().expect("the test binary knows its own path");
    let mut command = Command::new(executable);
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role);
    for (key, value) in environment {
        command.env(key, value);
    }
    command
}

/// Another process of a test, playing a role until its stdin closes.
struct Role {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Role {
    /// Starts `role` and waits for its line saying its locks are held.
    fn start(test: &str, role: &str, environment: &[(&str, OsString)]) -> std::io::Result<Role> {
        let mut child = role_command(test, role, environment)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut started = Role {
            child,
            stdin,
            stdout,
        };
        let line = started.next_line()?;
        if line != "ready" {
            return Err(std::io::Error::other(format!(
                "the {role} process said {line:?} instead of ready"
            )));
        }
        Ok(started)
    }

    fn id(&self) -> u32 {
        self.child.id()
    }

    /// The next line the role printed that is its own, not the test harness's (which starts a
    /// line with the test's name and ends it with the result, around the role's own lines).
    fn next_line(&mut self) -> std::io::Result<String> {
        loop {
            let mut line = String::new();
            if self.stdout.read_line(&mut line)? == 0 {
                return Err(std::io::Error::other("the role's process ended early"));
            }
            if let Some((_, said)) = line.trim_end().split_once(ROLE_SAYS) {
                return Ok(said.to_owned());
            }
        }
    }

    /// Closes the role's stdin, waits for it to end, and answers its last line.
    fn finish(&mut self) -> std::io::Result<String> {
        drop(self.stdin.take());
        let last = self.next_line()?;
        let status = self.child.wait()?;
        if !status.success() {
            return Err(std::io::Error::other(format!(
                "the role ended with {status}"
            )));
        }
        Ok(last)
    }
}

impl Drop for Role {
    /// A test that fails early leaves no process behind: the role is ended.
    fn drop(&mut self) {
        drop(self.stdin.take());
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Plays `role` in this process and exits when stdin closes, saying its last line then.
fn play(role: &str) -> ! {
    let say = |line: &str| {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{ROLE_SAYS}{line}").expect("stdout");
        stdout.flush().expect("stdout");
    };
    let open = |variable: &str| {
        let path = PathBuf::from(std::env::var_os(variable).expect("the role's file"));
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("the role's file opens")
    };
    let rounds = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = std::sync::Arc::clone(&rounds);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        let mut stdout = std::io::stdout().lock();
        let rounds = counted.load(std::sync::atomic::Ordering::SeqCst);
        writeln!(stdout, "{ROLE_SAYS}{rounds} times").expect("stdout");
        stdout.flush().expect("stdout");
        std::process::exit(0);
    });
    match role {
        "holder" => {
            let file = open(FILE_ENV);
            lock(&file, libc::F_WRLCK, SHARED_FIRST, SHARED_SIZE).expect("the lock is free");
            let others = std::env::var_os(OTHERS_ENV).map(|_| open(OTHERS_ENV));
            if let Some(others) = &others {
                // A byte apart, so that the kernel does not merge them into one lock.
                for lock_number in 0..OTHER_LOCKS {
                    lock(others, libc::F_WRLCK, 2 * lock_number, 1).expect("the lock is free");
                }
            }
            say("ready");
            loop {
                std::thread::park();
            }
        }
        "churner" => {
            let file = open(FILE_ENV);
            loop {
                for lock_number in 0..4 {
                    lock(&file, libc::F_WRLCK, 2 * lock_number, 1).expect("the lock is free");
                }
                lock(&file, libc::F_UNLCK, 0, 0).expect("unlocks");
                if rounds.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    say("ready");
                }
            }
        }
        other => panic!("no role {other}"),
    }
}

/// `fcntl(F_SETLK)` of `kind` on `length` bytes from `start` (0: to the end of the file).
fn lock(file: &std::fs::File, kind: libc::c_int, start: u64, length: u64) -> std::io::Result<()> {
    // SAFETY: `flock` is plain data, all zeroes a valid value.
    let mut request: libc::flock = unsafe { std::mem::zeroed() };
    request.l_type = kind as libc::c_short;
    request.l_whence = libc::SEEK_SET as libc::c_short;
    request.l_start = i64::try_from(start).expect("an offset");
    request.l_len = i64::try_from(length).expect("a length");
    // SAFETY: F_SETLK with a valid descriptor and a `flock`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &request) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
