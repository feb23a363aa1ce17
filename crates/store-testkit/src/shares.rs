//! Real network shares on this machine, each with as many client mounts as a test wants: a client
//! mount is a machine (its own page cache, its own byte-range locks), and the danger store guards
//! against is a second machine, not the share.
//!
//! - [`ShareKind::Sftp`]: OpenSSH's `sshd` and `sshfs` clients;
//! - [`ShareKind::Smb`]: samba's `smbd` (SMB3) and `smbnetfs` clients;
//! - [`ShareKind::Gluster`]: `glusterd`, a one-brick volume and `glusterfs` FUSE clients.
//!
//! [`Share::start`] starts the server on a temporary directory (the backing directory, where what
//! reached the server can be read); [`Share::mount_client`] mounts one more client. [`Host`] runs
//! a program as another machine (hostname, PIDs, boot id). Dropping a client unmounts it and ends
//! its process; dropping the share (and its last client: a client keeps its server alive) ends the
//! server and everything it started, and removes the temporary directories.
//!
//! # Where the servers run
//!
//! Each server runs in namespaces of its own, under `unshare --pid --fork --kill-child`: a PID
//! namespace, so that ending it ends every process it spawned (samba's `samba-dcerpcd` and
//! gluster's brick daemons leave the server's process group); a network namespace whose loopback
//! is its only interface, so that it listens on 127.0.0.1 of that namespace and nothing outside the
//! machine, or even outside the share, can reach it; and for sshd and glusterd a mount namespace
//! with a tmpfs on `/run` (and for glusterd its state, logs and `/etc/hosts` bound from the share's
//! directory). So every share uses the standard ports (22, 445, 24007), two shares never collide,
//! and gluster needs no lock although glusterd is a per-machine daemon. The clients join only the
//! network namespace (`nsenter --net`): their FUSE mounts land in the caller's mount table.
//!
//! # Measured here (Debian 12, 2 cores, loopback, 2026-12-06)
//!
//! Start is [`Share::start`] until the server serves; creation is one client, then the other, for
//! the same name (not raced); races are 100 per primitive, two threads on two clients released
//! together (the tests `creation_primitives_across_clients::*`,
//! `exclusive_creation_raced_across_clients::*` and `lock_scope::*` keep every cell true).
//!
//! | share | start | `O_EXCL`, `mkdir`, `link`, `symlink` one after the other | `mkdir` raced | `O_CREAT\|O_EXCL` raced | `fcntl` lock seen by |
//! |---|---|---|---|---|---|
//! | SFTP: OpenSSH 9.2 sshd, sshfs 3.7.3 | 40-115 ms | all four: the second gets `EEXIST` | one winner | one winner; the loser gets `EPERM` in ~90% of races, `EEXIST` in the rest | this client only |
//! | SMB3: samba 4.17, smbnetfs 0.6.3 | 65-260 ms | `O_EXCL` and `mkdir` only: `link` fails `EPERM`, `symlink` `ENOSYS` | one winner | **not exclusive**: two winners in 73-91 of 100 races | this client only |
//! | GlusterFS 10.3 | 1.6-1.8 s | all four: the second gets `EEXIST` | one winner, or none (4 races of ~1000) | one winner, or none (1 race of ~700) | every client (the server) |
//!
//! So the one creation primitive that gives exactly one owner across machines on all three is
//! `mkdir`, and even it has a rare outcome a lock must handle: on gluster both racers can be
//! refused `EEXIST` while the directory stands, made by neither's success (a record without its
//! owner's content). `O_EXCL` is unusable on smbnetfs, and on sshfs its loser cannot tell "taken"
//! from "denied" by the error. `link` and `symlink` (Firefox's and Chromium's locks) do not exist
//! on smbnetfs. Within one client a second lock on a locked file is refused on all three; across
//! two clients only on gluster.
//!
//! Reads across clients: a file written and closed through one client reads back whole through
//! another that had not read it. Rewritten through the first after the second had read it, the
//! second read the new bytes on sshfs and smbnetfs but the old ones (all 100 000) on gluster,
//! from its client-side cache: the consistency of two machines, not of one page cache.
//!
//! # When a share cannot start
//!
//! [`ShareError::Unsupported`] only when this machine cannot run it at all: a program missing (the
//! Debian package is named), no `/dev/fuse`, not root. Anything else is a failure with the step and
//! the server's output tail: a test skips on the first (outside CI) and fails on the second.
//! [`start_or_skip`] does exactly that.
//!
//! ```no_run
//! use store_testkit::shares::{Share, ShareKind};
//!
//! let share = Share::start(ShareKind::Sftp)?;
//! let (a, b) = (share.mount_client()?, share.mount_client()?);
//! std::fs::write(a.path().join("note"), b"from machine a")?;
//! assert_eq!(std::fs::read(b.path().join("note"))?, b"from machine a");
//! assert!(share.backing_directory().join("note").exists());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod gluster;
mod host;
mod process;
mod sftp;
mod smb;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use host::Host;

use process::{Client, Log, READY_TIMEOUT_MS, Server, find_program, require_root_and_fuse};

/// A kind of network share with a FUSE client that this machine can run for real.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ShareKind {
    /// OpenSSH's SFTP server and `sshfs`: locks stay on each client.
    Sftp,
    /// Samba's SMB3 server and `smbnetfs`: locks stay on each client; no links, no symlinks, and
    /// `O_EXCL` is not exclusive across clients.
    Smb,
    /// GlusterFS with its FUSE client: locks are forwarded to the server.
    Gluster,
}

impl ShareKind {
    /// Every kind.
    pub const ALL: [ShareKind; 3] = [ShareKind::Sftp, ShareKind::Smb, ShareKind::Gluster];

    /// The kind's name in messages and tables: `sftp`, `smb`, `gluster`.
    pub const fn name(self) -> &'static str {
        match self {
            ShareKind::Sftp => "sftp",
            ShareKind::Smb => "smb",
            ShareKind::Gluster => "gluster",
        }
    }

    /// What errors call a share of this kind: `sftp share`, ...
    pub const fn what(self) -> &'static str {
        match self {
            ShareKind::Sftp => "sftp share",
            ShareKind::Smb => "smb share",
            ShareKind::Gluster => "gluster share",
        }
    }

    /// The filesystem type a client mount of this kind has in the mount table (what store's
    /// filesystem detection sees).
    pub const fn mount_type(self) -> &'static str {
        match self {
            ShareKind::Sftp => "fuse.sshfs",
            ShareKind::Smb => "fuse.smbnetfs",
            ShareKind::Gluster => "fuse.glusterfs",
        }
    }

    /// The programs the kind needs, with their Debian packages.
    fn programs(self) -> &'static [(&'static str, &'static str)] {
        match self {
            ShareKind::Sftp => &sftp::PROGRAMS,
            ShareKind::Smb => &smb::PROGRAMS,
            ShareKind::Gluster => &gluster::PROGRAMS,
        }
    }

    /// Whether this machine can run the kind at all: root, `/dev/fuse`, and every program it
    /// needs. `Unsupported` says which is missing; a share that passes can still fail to start.
    pub fn probe(self) -> Result<(), ShareError> {
        let what = self.what();
        require_root_and_fuse(what, true)?;
        for (program, package) in [("unshare", "util-linux"), ("nsenter", "util-linux")]
            .iter()
            .chain(self.programs())
        {
            find_program(what, program, package)?;
        }
        Ok(())
    }
}

impl fmt::Display for ShareKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A share or a host could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// This machine cannot run it at all: a program is not installed, there is no `/dev/fuse`, or
    /// the process is not root. Not a pass: a test that needs it says skipped (and fails under CI).
    #[error("{what} is unsupported here: {reason}")]
    Unsupported {
        /// `sftp share`, `smb share`, `gluster share` or `host`.
        what: &'static str,
        /// Why not, with the package to install where one is missing.
        reason: String,
    },
    /// A system call or a spawn failed.
    #[error("{what}: cannot {step}")]
    Io {
        /// `sftp share`, `smb share`, `gluster share` or `host`.
        what: &'static str,
        /// What was being done.
        step: &'static str,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A server, client or setup command exited unsuccessfully.
    #[error("{what}: {step} failed ({status}): {output_tail}")]
    StepFailed {
        /// `sftp share`, `smb share`, `gluster share` or `host`.
        what: &'static str,
        /// What was being done.
        step: &'static str,
        /// How the process ended.
        status: String,
        /// The last lines of its output (stdout and stderr, or its log).
        output_tail: String,
    },
    /// A server did not listen, or a client did not mount, in time.
    #[error("{what}: {step} not done after {timeout_ms} ms: {output_tail}")]
    NotReady {
        /// `sftp share`, `smb share`, `gluster share` or `host`.
        what: &'static str,
        /// What was awaited.
        step: &'static str,
        /// How long.
        timeout_ms: u64,
        /// The last lines of the server's or client's output.
        output_tail: String,
    },
}

impl ShareError {
    /// What turns an `io::Error` of `step` into [`ShareError::Io`] for `what`: for `map_err`.
    pub fn io(what: &'static str, step: &'static str) -> impl FnOnce(io::Error) -> ShareError {
        move |source| ShareError::Io { what, step, source }
    }
}

/// A running share; see the [module docs](self).
#[derive(Debug)]
pub struct Share {
    running: Arc<Running>,
    start_duration: Duration,
}

/// The server and its directory, shared by the share and its clients: the last to drop ends the
/// server, then removes the directory (fields drop in order).
#[derive(Debug)]
struct Running {
    kind: ShareKind,
    server: Server,
    recipe: Recipe,
    backing_directory: PathBuf,
    clients_mounted: AtomicUsize,
    root: tempfile::TempDir,
}

/// How a client of each kind is mounted.
#[derive(Debug)]
enum Recipe {
    Sftp(sftp::Recipe),
    Smb(smb::Recipe),
    Gluster(gluster::Recipe),
}

impl Share {
    /// Starts a share of `kind` on a fresh temporary directory and waits until it serves.
    pub fn start(kind: ShareKind) -> Result<Share, ShareError> {
        kind.probe()?;
        let started = Instant::now();
        let root = tempfile::Builder::new()
            .prefix(&format!("store-{kind}-share-"))
            .tempdir()
            .map_err(|source| ShareError::Io {
                what: kind.what(),
                step: "create the share's directory",
                source,
            })?;
        let (server, backing_directory, recipe) = match kind {
            ShareKind::Sftp => {
                let (server, backing, recipe) = sftp::start(root.path())?;
                (server, backing, Recipe::Sftp(recipe))
            }
            ShareKind::Smb => {
                let (server, backing, recipe) = smb::start(root.path())?;
                (server, backing, Recipe::Smb(recipe))
            }
            ShareKind::Gluster => {
                let (server, backing, recipe) = gluster::start(root.path())?;
                (server, backing, Recipe::Gluster(recipe))
            }
        };
        Ok(Share {
            running: Arc::new(Running {
                kind,
                server,
                recipe,
                backing_directory,
                clients_mounted: AtomicUsize::new(0),
                root,
            }),
            start_duration: started.elapsed(),
        })
    }

    /// The share's kind.
    pub fn kind(&self) -> ShareKind {
        self.running.kind
    }

    /// The directory the server serves, on this machine's own filesystem: what reached the server.
    /// For gluster it is the brick (gluster keeps its metadata in `.glusterfs` there): read it,
    /// never write it.
    pub fn backing_directory(&self) -> &Path {
        &self.running.backing_directory
    }

    /// How long [`Share::start`] took, from the probe to a server that serves.
    pub fn start_duration(&self) -> Duration {
        self.start_duration
    }

    /// Mounts one more client, a separate machine as far as caches and locks go, and waits until
    /// the share's directory can be listed through it.
    pub fn mount_client(&self) -> Result<ClientMount, ShareError> {
        let running = &self.running;
        let what = running.kind.what();
        let io = |step| ShareError::io(what, step);
        let number = running.clients_mounted.fetch_add(1, Ordering::Relaxed);
        let client_directory = running.root.path().join(format!("client-{number}"));
        let mount_point = client_directory.join("mount");
        std::fs::create_dir_all(&mount_point).map_err(io("create the mount point"))?;
        let log_path = client_directory.join("client.log");
        let log = Log::create(what, log_path.clone())?;
        let mut network = OsString::from("--net=/proc/");
        network.push(running.server.namespace_pid().to_string());
        network.push("/ns/net");
        let (command, path) = match &running.recipe {
            Recipe::Sftp(recipe) => recipe.client(&network, &mount_point)?,
            Recipe::Smb(recipe) => recipe.client(&network, &client_directory, &mount_point)?,
            Recipe::Gluster(recipe) => recipe.client(&network, &log_path, &mount_point)?,
        };
        let mut client = Client::spawn(what, command, mount_point.clone(), log)?;
        client.wait_mounted(what, &path, READY_TIMEOUT_MS)?;
        Ok(ClientMount {
            _client: client,
            path,
            mount_point,
            number,
            share: Arc::clone(running),
        })
    }
}

/// One client's mount of a share: a machine. Dropping it unmounts it; it keeps the share's server
/// alive until then.
#[derive(Debug)]
pub struct ClientMount {
    /// Unmounted first (fields drop in order), while the server still answers.
    _client: Client,
    path: PathBuf,
    mount_point: PathBuf,
    number: usize,
    share: Arc<Running>,
}

impl ClientMount {
    /// The share's directory through this client: the mount point, or for SMB
    /// `<mount point>/127.0.0.1/store`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the FUSE filesystem is mounted.
    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// Which client of its share this is: 0 for the first mounted, then 1, ...
    pub fn number(&self) -> usize {
        self.number
    }

    /// The share's kind.
    pub fn kind(&self) -> ShareKind {
        self.share.kind
    }
}

/// Starts a share for a test: `None`, after printing `skipped: <reason>`, when this machine cannot
/// run it ([`ShareError::Unsupported`]) and the `CI` environment variable is unset.
///
/// # Panics
///
/// On any other error, and on `Unsupported` under CI: CI installs every package, so a share that
/// does not start there is a failure, never a skip.
pub fn start_or_skip(kind: ShareKind) -> Option<Share> {
    match Share::start(kind) {
        Ok(share) => Some(share),
        Err(error @ ShareError::Unsupported { .. }) if std::env::var_os("CI").is_none() => {
            println!("skipped: {error}");
            None
        }
        Err(error) => panic!("{error}"),
    }
}
