//! An SMB3 share: samba's `smbd` on 127.0.0.1:445 of the share's own network namespace, one
//! guest-writable share of a temporary directory, and `smbnetfs` clients.
//!
//! smbnetfs (through libsmbclient) always connects to port 445 (then 139): there is no option for
//! another port. So each share gets a network namespace of its own, where 445 is free and nothing
//! else on the machine is reachable, and each client is started inside that namespace (only the
//! network: its mount lands in the caller's mount table).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::{Log, Namespaces, READY_TIMEOUT_MS, Server, find_program};
use super::{ShareError, ShareKind};

const WHAT: &str = ShareKind::Smb.what();

/// The share's name on the server: a client reaches it at `<mount>/127.0.0.1/store`.
pub(super) const SHARE_NAME: &str = "store";

/// The programs a share and its clients run, with the Debian package of each.
pub(super) const PROGRAMS: [(&str, &str); 3] = [
    ("smbd", "samba"),
    ("smbnetfs", "smbnetfs"),
    ("ip", "iproute2"),
];

const SCRIPT: &str = r#"set -e
ip=$1 smbd=$2 config=$3
"$ip" link set lo up
exec "$smbd" --foreground --no-process-group --debug-stdout --configfile="$config"
"#;

/// What a client needs: nothing but the namespace, which the share hands over.
#[derive(Debug)]
pub(super) struct Recipe;

/// Starts the server; `root` is the share's temporary directory.
pub(super) fn start(root: &Path) -> Result<(Server, PathBuf, Recipe), ShareError> {
    let io = |step| ShareError::io(WHAT, step);
    let state = root.join("server");
    let export = root.join("export");
    std::fs::create_dir(&state).map_err(io("create the server's directory"))?;
    std::fs::create_dir(&export).map_err(io("create the exported directory"))?;

    // Every directory samba keeps state in is the share's own, so that two shares (and the
    // machine's samba, if any) never meet. Guests are mapped to root and the share forces root,
    // so files made through a client belong to root as they would through sshfs.
    let config = state.join("smb.conf");
    let state_directory = state.display();
    let text = format!(
        "[global]\n\
         smb ports = 445\n\
         interfaces = 127.0.0.1\n\
         bind interfaces only = yes\n\
         server role = standalone server\n\
         server min protocol = SMB3\n\
         map to guest = Bad User\n\
         guest account = root\n\
         lock directory = {state_directory}\n\
         state directory = {state_directory}\n\
         cache directory = {state_directory}\n\
         pid directory = {state_directory}\n\
         private dir = {state_directory}\n\
         binddns dir = {state_directory}\n\
         ncalrpc dir = {state_directory}/ncalrpc\n\
         log file = {state_directory}/log.%m\n\
         load printers = no\n\
         printcap name = /dev/null\n\
         disable spoolss = yes\n\
         [{SHARE_NAME}]\n\
         path = {export}\n\
         read only = no\n\
         guest ok = yes\n\
         force user = root\n",
        export = export.display(),
    );
    std::fs::write(&config, text).map_err(io("write smb.conf"))?;

    let ip = find_program(WHAT, "ip", "iproute2")?;
    let smbd = find_program(WHAT, "smbd", "samba")?;
    let log = Log::create(WHAT, state.join("smbd.log"))?;
    let mut server = Server::start(
        WHAT,
        Namespaces {
            network: true,
            mount: false,
            uts: false,
        },
        SCRIPT,
        &[ip.as_os_str(), smbd.as_os_str(), config.as_os_str()],
        log,
    )?;
    server.wait_listening(WHAT, 445, READY_TIMEOUT_MS)?;
    Ok((server, export, Recipe))
}

impl Recipe {
    /// `smbnetfs` in the foreground, in the server's network namespace, with a home directory of
    /// its own (`~/.smb` holds libsmbclient's and smbnetfs's configuration): SMB3 only, and no
    /// browsing of a network neighbourhood that does not exist.
    pub(super) fn client(
        &self,
        network: &OsStr,
        client_directory: &Path,
        mount_point: &Path,
    ) -> Result<(Command, PathBuf), ShareError> {
        let io = |step| ShareError::io(WHAT, step);
        let configuration = client_directory.join("home/.smb");
        std::fs::create_dir_all(&configuration)
            .map_err(io("create the client's configuration directory"))?;
        // libsmbclient keeps caches (`gencache.tdb`) in samba's directories, `/run/samba` by
        // default: the client's own instead, so that nothing outside the share is written.
        let state = client_directory.join("state");
        std::fs::create_dir_all(&state).map_err(io("create the client's state directory"))?;
        std::fs::write(
            configuration.join("smb.conf"),
            format!(
                "[global]\n\
                 client min protocol = SMB3\n\
                 cache directory = {state}\n\
                 lock directory = {state}\n\
                 state directory = {state}\n\
                 private dir = {state}\n",
                state = state.display()
            ),
        )
        .map_err(io("write the client's smb.conf"))?;
        std::fs::write(
            configuration.join("smbnetfs.conf"),
            "smb_query_browsers false\n",
        )
        .map_err(io("write smbnetfs.conf"))?;
        let nsenter = find_program(WHAT, "nsenter", "util-linux")?;
        let smbnetfs = find_program(WHAT, "smbnetfs", "smbnetfs")?;
        let mut command = Command::new(nsenter);
        command
            .arg(network)
            .arg("--")
            .arg(smbnetfs)
            .arg(mount_point)
            .arg("-f")
            .env("HOME", client_directory.join("home"));
        Ok((command, mount_point.join("127.0.0.1").join(SHARE_NAME)))
    }
}
