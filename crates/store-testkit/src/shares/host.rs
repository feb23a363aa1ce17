//! Another machine, as far as store can tell: a child in a UTS namespace (its own hostname), a PID
//! namespace (its PIDs start at 1, so they collide with another host's as real machines' do) and a
//! mount namespace with a boot id of its own (a file bind-mounted over
//! `/proc/sys/kernel/random/boot_id`).
//!
//! What a host shares with the test: the filesystem, FUSE mounts included (the mount namespace is
//! a copy of the caller's, taken when the child starts: mount the client first), and the network.
//! Give each host its own [`ClientMount`](super::ClientMount) and the pair is two machines on one
//! share: two hostnames, two boot ids, colliding PIDs, two page caches, two sets of locks.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::ShareError;
use super::process::{find_program, require_root_and_fuse};
use crate::child::{CHILD_ENV, ROLE_ENV, test_name};

const WHAT: &str = "host";

/// The longest hostname the kernel keeps (`HOST_NAME_MAX`).
const HOSTNAME_MAX_BYTES: usize = 64;

/// Runs as PID 1 of the host's PID namespace, with `/proc` already the namespace's own
/// (`--mount-proc`), then becomes the program.
const SCRIPT: &str = r#"set -e
name=$1 boot_id=$2 mount=$3
shift 3
printf '%s' "$name" > /proc/sys/kernel/hostname
"$mount" --bind "$boot_id" /proc/sys/kernel/random/boot_id
exec "$@"
"#;

/// Another machine for the processes started through it: a child in a UTS namespace (its own
/// hostname), a PID namespace (its PIDs start at 1, so they collide with another host's as real
/// machines' do) and a mount namespace with a boot id of its own (a file bind-mounted over
/// `/proc/sys/kernel/random/boot_id`).
///
/// A host shares with the test the filesystem, FUSE mounts included (its mount namespace is a copy
/// of the caller's, taken when the child starts: mount the client first), and the network. Give
/// each host its own [`ClientMount`](super::ClientMount) and the pair is two machines on one
/// share: two hostnames, two boot ids, colliding PIDs, two page caches, two sets of locks.
///
/// ```no_run
/// use store_testkit::shares::Host;
///
/// let host = Host::new("machine-b")?;
/// let output = host.command("hostname").output()?;
/// assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "machine-b");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Host {
    name: String,
    boot_id: String,
    boot_id_file: PathBuf,
    unshare: PathBuf,
    shell: PathBuf,
    mount: PathBuf,
    /// Holds the boot id file; removed when the host drops.
    _directory: tempfile::TempDir,
}

impl Host {
    /// A host named `name` (letters, digits, `-` and `.`, at most 64 bytes), with a fresh boot
    /// id. Nothing runs until a command made by [`Host::command`] is spawned. `Unsupported` when
    /// not root or `unshare`/`mount` are missing.
    pub fn new(name: &str) -> Result<Host, ShareError> {
        require_root_and_fuse(WHAT, false)?;
        let valid = !name.is_empty()
            && name.len() <= HOSTNAME_MAX_BYTES
            && name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'.');
        if !valid {
            return Err(ShareError::Io {
                what: WHAT,
                step: "name the host",
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("`{name}` is not a hostname"),
                ),
            });
        }
        let io = |step| ShareError::io(WHAT, step);
        let unshare = find_program(WHAT, "unshare", "util-linux")?;
        let shell = find_program(WHAT, "sh", "dash")?;
        let mount = find_program(WHAT, "mount", "mount")?;
        let directory = tempfile::Builder::new()
            .prefix(&format!("store-host-{name}-"))
            .tempdir()
            .map_err(io("create the host's directory"))?;
        // The kernel's own generator, in boot_id's own format.
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
            .map_err(io("make a boot id"))?
            .trim()
            .to_owned();
        let boot_id_file = directory.path().join("boot_id");
        std::fs::write(&boot_id_file, format!("{boot_id}\n")).map_err(io("write the boot id"))?;
        Ok(Host {
            name: name.to_owned(),
            boot_id,
            boot_id_file,
            unshare,
            shell,
            mount,
            _directory: directory,
        })
    }

    /// The host's hostname.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host's boot id, as its processes read it from `/proc/sys/kernel/random/boot_id`.
    pub fn boot_id(&self) -> &str {
        &self.boot_id
    }

    /// A command that runs `program` on the host: arguments, environment and working directory
    /// set on it reach the program. The program is PID 1 of the host's PID namespace; when the
    /// command's own process (`unshare`) is killed, the host's processes die with it.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(&self.unshare);
        command
            .args([
                "--uts",
                "--pid",
                "--mount",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "--",
            ])
            .arg(&self.shell)
            .arg("-c")
            .arg(SCRIPT)
            .arg("store-host")
            .arg(&self.name)
            .arg(&self.boot_id_file)
            .arg(&self.mount)
            .arg(program.as_ref());
        command
    }

    /// A command that runs the test `full_path` of the current test binary on the host, as
    /// [`child::spawn_role`](crate::child::spawn_role) does, with `role` in
    /// [`ROLE_ENV`]: the way to run a closure on another machine.
    pub fn role_command(&self, full_path: &str, role: &str) -> Result<Command, ShareError> {
        let executable = std::env::current_exe().map_err(|source| ShareError::Io {
            what: WHAT,
            step: "find the test binary",
            source,
        })?;
        let mut command = self.command(executable);
        command
            .args([
                test_name(full_path),
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, test_name(full_path))
            .env(ROLE_ENV, role);
        Ok(command)
    }

    /// The file bind-mounted over the host's `boot_id`.
    pub fn boot_id_file(&self) -> &Path {
        &self.boot_id_file
    }
}
