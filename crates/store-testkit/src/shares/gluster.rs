//! A GlusterFS share: a `glusterd` of the share's own, one volume of one brick (a temporary
//! directory), and FUSE clients (`glusterfs`, what `mount -t glusterfs` runs).
//!
//! glusterd is a singleton per machine: a fixed port (24007), state in `/var/lib/glusterd`,
//! sockets in `/run`, logs in `/var/log/glusterfs`. Each share therefore runs it in namespaces of
//! its own: a network namespace (its loopback the only interface, so every port it and its brick
//! daemons open is reachable from nowhere else), a mount namespace where those directories are
//! the share's temporary ones and `/etc/hosts` names the share's hostname, and a UTS namespace for
//! that hostname. Two gluster shares then run side by side, and the machine's own glusterd, if
//! any, is never touched.
//!
//! A brick must be named by a hostname that resolves to an address of the machine (gluster refuses
//! `127.0.0.1` and `localhost`): the volume's brick is `store-share:<brick>`, and the clients,
//! which resolve names with the machine's `/etc/hosts`, are told to reach that brick at 127.0.0.1
//! (`--xlator-option *-client-0.remote-host=127.0.0.1`), so the machine's hostname need not
//! resolve to anything.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::{Log, Namespaces, READY_TIMEOUT_MS, Server, find_program, run, wait_until};
use super::{ShareError, ShareKind};

const WHAT: &str = ShareKind::Gluster.what();

/// The volume's name (one volume per glusterd, one glusterd per share).
const VOLUME: &str = "store";

/// The hostname inside the share's namespaces, naming its brick.
const HOSTNAME: &str = "store-share";

/// glusterd's management port.
const GLUSTERD_PORT: u16 = 24007;

/// The programs a share and its clients run, with the Debian package of each.
pub(super) const PROGRAMS: [(&str, &str); 4] = [
    ("glusterd", "glusterfs-server"),
    ("gluster", "glusterfs-cli"),
    ("glusterfs", "glusterfs-client"),
    ("ip", "iproute2"),
];

/// `/var/lib/glusterd/groups` (option groups a volume may name) is copied from the package, the
/// rest of the state starts empty; the package's hooks are left out (they label bricks for
/// SELinux, with programs this machine lacks).
const SCRIPT: &str = r#"set -e
ip=$1 mount=$2 hostname=$3 hosts=$4 state=$5 logs=$6 glusterd=$7 log=$8
"$ip" link set lo up
printf '%s' "$hostname" > /proc/sys/kernel/hostname
"$mount" --make-rprivate /
"$mount" -t tmpfs -o mode=0755 store-share /run
mkdir /run/gluster
if [ -d /var/lib/glusterd/groups ]; then cp -a /var/lib/glusterd/groups "$state/"; fi
"$mount" --bind "$hosts" /etc/hosts
"$mount" --bind "$state" /var/lib/glusterd
"$mount" --bind "$logs" /var/log/glusterfs
exec "$glusterd" --no-daemon --log-file="$log"
"#;

/// What a client needs: the namespace, which the share hands over.
#[derive(Debug)]
pub(super) struct Recipe;

/// Starts glusterd, then creates and starts the volume; `root` is the share's temporary
/// directory.
pub(super) fn start(root: &Path) -> Result<(Server, PathBuf, Recipe), ShareError> {
    let io = |step| ShareError::io(WHAT, step);
    let server_directory = root.join("server");
    let state = server_directory.join("state");
    let logs = server_directory.join("logs");
    let brick = root.join("brick");
    for directory in [&server_directory, &state, &logs, &brick] {
        std::fs::create_dir_all(directory).map_err(io("create the server's directories"))?;
    }
    let hosts = server_directory.join("hosts");
    std::fs::write(&hosts, format!("127.0.0.1 localhost {HOSTNAME}\n"))
        .map_err(io("write the share's /etc/hosts"))?;

    let ip = find_program(WHAT, "ip", "iproute2")?;
    let mount = find_program(WHAT, "mount", "mount")?;
    let glusterd = find_program(WHAT, "glusterd", "glusterfs-server")?;
    let gluster = find_program(WHAT, "gluster", "glusterfs-cli")?;
    let nsenter = find_program(WHAT, "nsenter", "util-linux")?;
    let glusterd_log = server_directory.join("glusterd.log");
    let log = Log::create(WHAT, glusterd_log.clone())?;
    let mut server = Server::start(
        WHAT,
        Namespaces {
            network: true,
            mount: true,
            uts: true,
        },
        SCRIPT,
        &[
            ip.as_os_str(),
            mount.as_os_str(),
            OsStr::new(HOSTNAME),
            hosts.as_os_str(),
            state.as_os_str(),
            logs.as_os_str(),
            glusterd.as_os_str(),
            glusterd_log.as_os_str(),
        ],
        log,
    )?;
    server.wait_listening(WHAT, GLUSTERD_PORT, READY_TIMEOUT_MS)?;

    // The CLI talks to glusterd through a socket in the share's `/run`: it runs in the share's
    // namespaces. Listening on 24007 comes a little before the CLI is answered.
    let namespace_pid = server.namespace_pid().to_string();
    let cli = |arguments: &[&OsStr]| {
        let mut command = Command::new(&nsenter);
        command
            .args([
                "--target",
                &namespace_pid,
                "--net",
                "--mount",
                "--uts",
                "--",
            ])
            .arg(&gluster)
            .arg("--mode=script")
            .args(arguments);
        command
    };
    wait_until(READY_TIMEOUT_MS, || {
        server.fail_if_exited(WHAT, "start glusterd")?;
        Ok(cli(&[OsStr::new("volume"), OsStr::new("list")])
            .stdin(std::process::Stdio::null())
            .output()
            .is_ok_and(|output| output.status.success()))
    })?
    .ok_or_else(|| ShareError::NotReady {
        what: WHAT,
        step: "answer the gluster cli",
        timeout_ms: READY_TIMEOUT_MS,
        output_tail: server.log().tail(),
    })?;
    let brick_address = format!("{HOSTNAME}:{}", brick.display());
    // `force`: gluster refuses a brick on the root filesystem without it.
    run(
        WHAT,
        "create the volume",
        &mut cli(&[
            OsStr::new("volume"),
            OsStr::new("create"),
            OsStr::new(VOLUME),
            OsStr::new(&brick_address),
            OsStr::new("force"),
        ]),
    )?;
    run(
        WHAT,
        "start the volume",
        &mut cli(&[
            OsStr::new("volume"),
            OsStr::new("start"),
            OsStr::new(VOLUME),
        ]),
    )?;
    Ok((server, brick, Recipe))
}

impl Recipe {
    /// `glusterfs` in the foreground, in the share's network namespace, with its log in the
    /// client's directory.
    pub(super) fn client(
        &self,
        network: &OsStr,
        log: &Path,
        mount_point: &Path,
    ) -> Result<(Command, PathBuf), ShareError> {
        let nsenter = find_program(WHAT, "nsenter", "util-linux")?;
        let glusterfs = find_program(WHAT, "glusterfs", "glusterfs-client")?;
        let mut command = Command::new(nsenter);
        command
            .arg(network)
            .arg("--")
            .arg(glusterfs)
            .arg("--no-daemon")
            .arg("--volfile-server=127.0.0.1")
            .arg(format!("--volfile-id={VOLUME}"))
            .arg("--xlator-option=*-client-0.remote-host=127.0.0.1")
            .arg(format!("--log-file={}", log.display()))
            .arg(mount_point);
        Ok((command, mount_point.to_owned()))
    }
}
