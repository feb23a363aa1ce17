//! An SFTP share: OpenSSH's `sshd` on 127.0.0.1:22 of the share's own network namespace, root
//! logging in with a key made for the share, and `sshfs` clients.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::{Log, Namespaces, READY_TIMEOUT_MS, Server, find_program, run};
use super::{ShareError, ShareKind};

const WHAT: &str = ShareKind::Sftp.what();

/// The programs a share and its clients run, with the Debian package of each.
pub(super) const PROGRAMS: [(&str, &str); 5] = [
    ("sshd", "openssh-server"),
    ("ssh-keygen", "openssh-client"),
    ("ssh", "openssh-client"),
    ("sshfs", "sshfs"),
    ("ip", "iproute2"),
];

/// sshd's privilege-separation directory must exist; the server gets a tmpfs on `/run` in its own
/// mount namespace instead of a directory made on the machine's `/run`.
const SCRIPT: &str = r#"set -e
ip=$1 mount=$2 sshd=$3 config=$4
"$ip" link set lo up
"$mount" --make-rprivate /
"$mount" -t tmpfs -o mode=0755 store-share /run
mkdir -m 0755 /run/sshd
exec "$sshd" -D -e -f "$config"
"#;

/// What a client needs to reach the server.
#[derive(Debug)]
pub(super) struct Recipe {
    key: PathBuf,
    export: PathBuf,
}

/// Starts the server; `root` is the share's temporary directory.
pub(super) fn start(root: &Path) -> Result<(Server, PathBuf, Recipe), ShareError> {
    let io = |step| ShareError::io(WHAT, step);
    let server_directory = root.join("server");
    let export = root.join("export");
    std::fs::create_dir(&server_directory).map_err(io("create the server's directory"))?;
    std::fs::create_dir(&export).map_err(io("create the exported directory"))?;

    let keygen = find_program(WHAT, "ssh-keygen", "openssh-client")?;
    let host_key = server_directory.join("host_key");
    let client_key = server_directory.join("client_key");
    for key in [&host_key, &client_key] {
        run(
            WHAT,
            "generate a key",
            Command::new(&keygen)
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(key),
        )?;
    }
    let authorized_keys = server_directory.join("authorized_keys");
    std::fs::copy(client_key.with_extension("pub"), &authorized_keys)
        .map_err(io("authorize the client key"))?;

    // Port 22 on 127.0.0.1 of a network namespace that has nothing but its loopback: no port to
    // choose, no other test to collide with, nothing outside to reach it. StrictModes is off
    // because the keys live in a temporary directory, not in a home directory.
    let config = server_directory.join("sshd_config");
    let text = format!(
        "Port 22\n\
         ListenAddress 127.0.0.1\n\
         HostKey {host_key}\n\
         AuthorizedKeysFile {authorized_keys}\n\
         PidFile none\n\
         PermitRootLogin prohibit-password\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         Subsystem sftp internal-sftp\n",
        host_key = host_key.display(),
        authorized_keys = authorized_keys.display(),
    );
    std::fs::write(&config, text).map_err(io("write sshd_config"))?;

    let ip = find_program(WHAT, "ip", "iproute2")?;
    let mount = find_program(WHAT, "mount", "mount")?;
    let sshd = find_program(WHAT, "sshd", "openssh-server")?;
    let log = Log::create(WHAT, server_directory.join("sshd.log"))?;
    let mut server = Server::start(
        WHAT,
        Namespaces {
            network: true,
            mount: true,
            uts: false,
        },
        SCRIPT,
        &[
            ip.as_os_str(),
            mount.as_os_str(),
            sshd.as_os_str(),
            config.as_os_str(),
        ],
        log,
    )?;
    server.wait_listening(WHAT, 22, READY_TIMEOUT_MS)?;
    Ok((
        server,
        export.clone(),
        Recipe {
            key: client_key,
            export,
        },
    ))
}

impl Recipe {
    /// `sshfs` in the foreground, in the server's network namespace. Its own caches stay on (the
    /// defaults): a client mount is a machine, caches included.
    pub(super) fn client(
        &self,
        network: &OsStr,
        mount_point: &Path,
    ) -> Result<(Command, PathBuf), ShareError> {
        let nsenter = find_program(WHAT, "nsenter", "util-linux")?;
        let sshfs = find_program(WHAT, "sshfs", "sshfs")?;
        let ssh = find_program(WHAT, "ssh", "openssh-client")?;
        let mut command = Command::new(nsenter);
        command
            .arg(network)
            .arg("--")
            .arg(sshfs)
            .arg(format!("root@127.0.0.1:{}", self.export.display()))
            .arg(mount_point)
            .arg("-f")
            .arg("-o")
            .arg(format!(
                "ssh_command={},IdentityFile={},StrictHostKeyChecking=no,\
                 UserKnownHostsFile=/dev/null,BatchMode=yes,LogLevel=ERROR",
                ssh.display(),
                self.key.display()
            ));
        Ok((command, mount_point.to_owned()))
    }
}
