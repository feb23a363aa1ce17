//! The processes a share is made of: finding the programs, starting a server in namespaces of its
//! own, waiting until it listens or a client has mounted, reading the tail of its log, and ending
//! it with everything it started.

use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::ShareError;

/// How long a server may take to listen, or a client to mount, before the share gives up. Gluster
/// needs about 2 s here; a loaded CI machine ten times that is still a pass.
pub(crate) const READY_TIMEOUT_MS: u64 = 30_000;

/// How often readiness is polled.
const POLL_INTERVAL_MS: u64 = 20;

/// How much of a log an error quotes: enough for the server's complaint, not its whole startup.
const TAIL_LINES: usize = 15;
const TAIL_BYTES: u64 = 4096;

/// Where a program is looked for besides `PATH`: the server daemons live in `sbin` directories,
/// which a test's `PATH` often lacks.
const SYSTEM_DIRECTORIES: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// The absolute path of `program`, or `Unsupported` naming the Debian package that installs it.
pub(crate) fn find_program(
    what: &'static str,
    program: &str,
    package: &str,
) -> Result<PathBuf, ShareError> {
    let from_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain(SYSTEM_DIRECTORIES.iter().map(PathBuf::from))
        .map(|directory| directory.join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| ShareError::Unsupported {
            what,
            reason: format!("`{program}` is not installed (Debian package {package})"),
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}

/// What every share and host needs from the machine: root (mounts, namespaces, daemons that
/// switch users) and, for the client mounts, `/dev/fuse`.
pub(crate) fn require_root_and_fuse(what: &'static str, fuse: bool) -> Result<(), ShareError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(ShareError::Unsupported {
            what,
            reason: "not root: the servers, namespaces and mounts need root".into(),
        });
    }
    if fuse && !Path::new("/dev/fuse").exists() {
        return Err(ShareError::Unsupported {
            what,
            reason: "no /dev/fuse: the client mounts are FUSE filesystems".into(),
        });
    }
    Ok(())
}

/// A log file a process writes its stdout and stderr to, read back for errors.
#[derive(Debug, Clone)]
pub(crate) struct Log {
    path: PathBuf,
}

impl Log {
    pub(crate) fn create(what: &'static str, path: PathBuf) -> Result<Log, ShareError> {
        File::create(&path).map_err(|source| ShareError::Io {
            what,
            step: "create a log file",
            source,
        })?;
        Ok(Log { path })
    }

    /// Points the command's stdout and stderr at the log, and its stdin at nothing.
    fn attach(&self, what: &'static str, command: &mut Command) -> Result<(), ShareError> {
        let open = || {
            File::options()
                .append(true)
                .open(&self.path)
                .map_err(|source| ShareError::Io {
                    what,
                    step: "open a log file",
                    source,
                })
        };
        command.stdin(Stdio::null()).stdout(open()?).stderr(open()?);
        Ok(())
    }

    /// The last lines of the log, or why it cannot be read.
    pub(crate) fn tail(&self) -> String {
        let read = || -> io::Result<String> {
            let mut file = File::open(&self.path)?;
            let length = file.metadata()?.len();
            file.seek(SeekFrom::Start(length.saturating_sub(TAIL_BYTES)))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            Ok(last_lines(&String::from_utf8_lossy(&bytes)))
        };
        read().unwrap_or_else(|error| format!("(log {} unreadable: {error})", self.path.display()))
    }
}

/// The last [`TAIL_LINES`] non-empty lines of `text`, joined with ` | ` so that an error stays on
/// one line.
pub(crate) fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join(" | ");
    if tail.is_empty() {
        "(no output)".into()
    } else {
        tail
    }
}

/// A server running as PID 1 of a PID namespace of its own, under `unshare --fork --kill-child`:
/// killing the `unshare` kills the namespace's first process, and the kernel then kills every
/// process left in the namespace (samba's `samba-dcerpcd`, gluster's brick daemons, sshd's session
/// processes), even those that left the server's process group.
#[derive(Debug)]
pub(crate) struct Server {
    child: Child,
    log: Log,
}

/// The namespaces a server gets besides its PID namespace.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Namespaces {
    /// A network namespace of its own, whose loopback (brought up) is its only interface.
    pub(crate) network: bool,
    /// A mount namespace of its own (private propagation), for a tmpfs on `/run` and bind mounts.
    pub(crate) mount: bool,
    /// A hostname of its own.
    pub(crate) uts: bool,
}

impl Server {
    /// Starts `sh -c script` with `arguments` as `$1...` in fresh namespaces. The script runs as
    /// PID 1 of its PID namespace and should `exec` the server in the foreground.
    pub(crate) fn start(
        what: &'static str,
        namespaces: Namespaces,
        script: &str,
        arguments: &[&std::ffi::OsStr],
        log: Log,
    ) -> Result<Server, ShareError> {
        let unshare = find_program(what, "unshare", "util-linux")?;
        let shell = find_program(what, "sh", "dash")?;
        let mut command = Command::new(unshare);
        command.args(["--pid", "--fork", "--kill-child"]);
        if namespaces.network {
            command.arg("--net");
        }
        if namespaces.mount {
            command.arg("--mount");
        }
        if namespaces.uts {
            command.arg("--uts");
        }
        command
            .arg("--")
            .arg(shell)
            .arg("-c")
            .arg(script)
            .arg("store-share")
            .args(arguments);
        log.attach(what, &mut command)?;
        let child = command.spawn().map_err(|source| ShareError::Io {
            what,
            step: "spawn the server",
            source,
        })?;
        Ok(Server { child, log })
    }

    /// The `unshare` process: it is in the server's network, mount and UTS namespaces (unshare(2)
    /// moves its caller), so `/proc/<pid>/ns/net` is the share's network.
    pub(crate) fn namespace_pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log(&self) -> &Log {
        &self.log
    }

    /// Waits until a TCP socket in the server's network namespace listens on `port`. Fails at
    /// once, with the log's tail, if the server exits.
    pub(crate) fn wait_listening(
        &mut self,
        what: &'static str,
        port: u16,
        timeout_ms: u64,
    ) -> Result<(), ShareError> {
        let table = PathBuf::from(format!("/proc/{}/net/tcp", self.child.id()));
        wait_until(timeout_ms, || {
            self.fail_if_exited(what, "start the server")?;
            let listening =
                std::fs::read_to_string(&table).is_ok_and(|text| listens_on(&text, port));
            Ok(listening)
        })?
        .ok_or_else(|| ShareError::NotReady {
            what,
            step: "listen",
            timeout_ms,
            output_tail: self.log.tail(),
        })
    }

    /// `StepFailed` with the log's tail if the server has exited.
    pub(crate) fn fail_if_exited(
        &mut self,
        what: &'static str,
        step: &'static str,
    ) -> Result<(), ShareError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(ShareError::StepFailed {
                what,
                step,
                status: status.to_string(),
                output_tail: self.log.tail(),
            }),
            Err(source) => Err(ShareError::Io {
                what,
                step: "watch the server",
                source,
            }),
        }
    }
}

/// How long the kernel may take to empty a server's PID namespace once its first process is
/// killed.
const NAMESPACE_EXIT_TIMEOUT_MS: u64 = 5_000;

impl Drop for Server {
    fn drop(&mut self) {
        // `unshare --fork` ignores SIGTERM while it waits; SIGKILL ends it, its `--kill-child`
        // then kills the namespace's PID 1, and with it the whole namespace. The kernel lets that
        // first process finish dying only once every other process of the namespace is gone: wait
        // for it, so that nothing of the share still runs when the drop returns.
        let pid = self.child.id();
        let first = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()
            .and_then(|children| children.split_whitespace().next().map(str::to_owned));
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(first) = first {
            let _ = wait_until(NAMESPACE_EXIT_TIMEOUT_MS, || Ok(has_ended(&first)));
        }
    }
}

/// Whether process `pid` is gone or a zombie (dead, waiting for a parent to reap it).
fn has_ended(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state == "Z" || state == "X")
    })
}

/// Whether `/proc/net/tcp` text has a socket listening (state `0A`) on `port`, on any address.
pub(crate) fn listens_on(table: &str, port: u16) -> bool {
    let wanted = format!("{port:04X}");
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1);
        let state = fields.nth(1);
        state == Some("0A")
            && local
                .and_then(|address| address.rsplit_once(':'))
                .map(|(_, port)| port)
                == Some(wanted.as_str())
    })
}

/// Calls `ready` every [`POLL_INTERVAL_MS`] until it answers true (`Some(())`) or `timeout_ms`
/// passes (`None`); an error from `ready` ends the wait at once.
pub(crate) fn wait_until(
    timeout_ms: u64,
    mut ready: impl FnMut() -> Result<bool, ShareError>,
) -> Result<Option<()>, ShareError> {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    loop {
        if ready()? {
            return Ok(Some(()));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
}

/// Runs a short command to completion (key generation, the gluster CLI): `StepFailed` with the
/// tail of its output unless it succeeds; its output on success.
pub(crate) fn run(
    what: &'static str,
    step: &'static str,
    command: &mut Command,
) -> Result<String, ShareError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ShareError::Io { what, step, source })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        return Ok(text);
    }
    Err(ShareError::StepFailed {
        what,
        step,
        status: output.status.to_string(),
        output_tail: last_lines(&text),
    })
}

/// A FUSE client process serving one mount point, in the foreground so that it is this process's
/// child: unmounting ends it, and [`Drop`] waits for it (or kills it if it lingers).
#[derive(Debug)]
pub(crate) struct Client {
    child: Child,
    mount_point: PathBuf,
    log: Log,
}

/// How long a client may take to exit after its unmount before it is killed.
const CLIENT_EXIT_TIMEOUT_MS: u64 = 5_000;

impl Client {
    pub(crate) fn spawn(
        what: &'static str,
        mut command: Command,
        mount_point: PathBuf,
        log: Log,
    ) -> Result<Client, ShareError> {
        log.attach(what, &mut command)?;
        let child = command.spawn().map_err(|source| ShareError::Io {
            what,
            step: "spawn the client",
            source,
        })?;
        Ok(Client {
            child,
            mount_point,
            log,
        })
    }

    /// Waits until the mount point is a FUSE mount and `usable` (the share's directory below it
    /// can be listed). Fails at once, with the client's log, if the client exits.
    pub(crate) fn wait_mounted(
        &mut self,
        what: &'static str,
        usable: &Path,
        timeout_ms: u64,
    ) -> Result<(), ShareError> {
        wait_until(timeout_ms, || {
            if let Some(status) = self.child.try_wait().map_err(|source| ShareError::Io {
                what,
                step: "watch the client",
                source,
            })? {
                return Err(ShareError::StepFailed {
                    what,
                    step: "mount a client",
                    status: status.to_string(),
                    output_tail: self.log.tail(),
                });
            }
            Ok(is_fuse_mount(&self.mount_point) && std::fs::read_dir(usable).is_ok())
        })?
        .ok_or_else(|| ShareError::NotReady {
            what,
            step: "mount a client",
            timeout_ms,
            output_tail: self.log.tail(),
        })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        unmount(&self.mount_point);
        let exited = wait_until(CLIENT_EXIT_TIMEOUT_MS, || {
            Ok(!matches!(self.child.try_wait(), Ok(None)))
        });
        if !matches!(exited, Ok(Some(()))) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Unmounts `mount_point`; if something still uses it, detaches it (it goes when the last user
/// closes), so that the temporary directory under it can be removed either way.
fn unmount(mount_point: &Path) {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(target) = std::ffi::CString::new(mount_point.as_os_str().as_bytes()) else {
        return;
    };
    // SAFETY: `target` is a NUL-terminated string that outlives both calls.
    unsafe {
        if libc::umount2(target.as_ptr(), 0) != 0 && is_fuse_mount(mount_point) {
            libc::umount2(target.as_ptr(), libc::MNT_DETACH);
        }
    }
}

/// Whether `mount_point` is a FUSE mount in this process's mount table.
pub(crate) fn is_fuse_mount(mount_point: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = escape_mount_path(mount_point);
    table.lines().any(|line| {
        let mut fields = line.split(' ');
        let point = fields.nth(4);
        let filesystem = line
            .split_once(" - ")
            .and_then(|(_, rest)| rest.split(' ').next());
        point == Some(wanted.as_str()) && filesystem.is_some_and(|kind| kind.starts_with("fuse"))
    })
}

/// A path as `/proc/self/mountinfo` writes it: space, tab, newline and backslash in octal.
fn escape_mount_path(path: &Path) -> String {
    let mut escaped = String::new();
    for character in path.to_string_lossy().chars() {
        match character {
            ' ' => escaped.push_str("\\040"),
            '\t' => escaped.push_str("\\011"),
            '\n' => escaped.push_str("\\012"),
            '\\' => escaped.push_str("\\134"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_socket_is_found_by_port_on_any_address() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            0: 0100007F:01BD 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n\
            1: 00000000:5DC7 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2\n\
            2: 0100007F:0016 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 3\n";
        assert!(listens_on(table, 445));
        assert!(listens_on(table, 24007));
        assert!(
            !listens_on(table, 22),
            "an established connection is not a listener"
        );
    }

    #[test]
    fn a_tail_keeps_the_last_non_empty_lines_on_one_line() {
        let text: String = (1..=40)
            .map(|number| format!("line {number}\n\n"))
            .collect();
        let tail = last_lines(&text);
        assert!(tail.starts_with("line 26 | "), "{tail}");
        assert!(tail.ends_with("line 40"), "{tail}");
        assert_eq!(last_lines(""), "(no output)");
    }

    #[test]
    fn mount_paths_are_escaped_as_the_mount_table_writes_them() {
        assert_eq!(escape_mount_path(Path::new("/a b\\c")), "/a\\040b\\134c");
    }
}
