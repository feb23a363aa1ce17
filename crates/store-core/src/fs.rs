//! Which filesystem a database lives on: the kernel's `statmount(2)` for the path's mount where
//! it answers (one syscall), else `statfs` and the thread's mount table
//! (`/proc/thread-self/mountinfo`, read and parsed: some 60 us in a fresh process).
//!
//! `statfs` alone is not enough: 9p reports the host filesystem's magic number and virtiofs reports
//! FUSE's, so the mount table's filesystem type is consulted first and the magic number is the
//! fallback when the mount table cannot be read or names a type this module does not know.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The kind of filesystem a path lives on, as far as journal and recovery decisions care.
///
/// ```no_run
/// use store_core::{FsKind, MachineBoundary};
///
/// let filesystem = store_core::Filesystem::detect("/var/lib/myapp/state.db")?;
/// if filesystem.machine_boundary().is_crossed() {
///     eprintln!("state.db is on {}: WAL will not be used for a new database", filesystem.kind);
/// }
/// # Ok::<(), store_core::DetectError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FsKind {
    /// A local disk filesystem (ext4, xfs, btrfs, zfs, ...).
    Local,
    /// NFS (any version).
    Nfs,
    /// SMB / CIFS.
    Smb,
    /// A FUSE mount whose daemon this module does not know (a local passthrough, an archive
    /// browser, ...). Nothing says that it crosses a machine boundary, so it is not taken to.
    Fuse,
    /// A FUSE client of a network share (sshfs, smbnetfs, glusterfs, rclone, ...), named: the
    /// files live on a server other machines mount too.
    NetworkFuse(ShareClient),
    /// Plan 9 filesystem protocol served by another kernel (WSL2 drives, QEMU shares, gVisor
    /// mounts that something outside the sandbox also writes).
    NineP,
    /// gVisor's 9p for a mount only its sandbox uses (`cache=fscache` or
    /// `cache=fscache_writethrough` beside gVisor's `rfdno=`): every process that writes the
    /// files runs on the sandbox's one kernel (gVisor's Sentry), which keeps their locks and
    /// shared memory, so WAL is as safe as on a local disk.
    GvisorNineP,
    /// virtiofs (a FUSE protocol over virtio; shared memory only with DAX): a VM's view of its
    /// host's files.
    VirtioFs,
    /// overlayfs (container layers); behaves like its upper layer, usually local.
    Overlay,
    /// tmpfs or ramfs.
    Tmpfs,
    /// A filesystem this module does not recognise.
    Unknown,
}

impl FsKind {
    /// The name used in reports and messages (`local`, `nfs`, `smb`, `fuse`, `9p`, the client of a
    /// network FUSE share: `sshfs`, `glusterfs`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FsKind::Local => "local",
            FsKind::Nfs => "nfs",
            FsKind::Smb => "smb",
            FsKind::Fuse => "fuse",
            FsKind::NetworkFuse(client) => client.as_str(),
            FsKind::NineP => "9p",
            FsKind::GvisorNineP => "gvisor-9p",
            FsKind::VirtioFs => "virtiofs",
            FsKind::Overlay => "overlay",
            FsKind::Tmpfs => "tmpfs",
            FsKind::Unknown => "unknown",
        }
    }

    /// Whether another kernel than this one can write the files: another machine over the
    /// network, or a VM's host ([`machine_boundary`](Self::machine_boundary) is crossed). Byte-range
    /// locks and shared memory cannot be trusted to coordinate processes across it, which is what
    /// SQLite's WAL needs; SQLite's documentation calls all of these network filesystems.
    pub fn is_network(self) -> bool {
        self.machine_boundary().is_crossed()
    }

    /// Whether the files can be written from beyond this kernel, and how: see
    /// [`MachineBoundary`].
    pub fn machine_boundary(self) -> MachineBoundary {
        match self {
            FsKind::Nfs | FsKind::Smb | FsKind::NetworkFuse(_) => MachineBoundary::NetworkShare,
            FsKind::NineP | FsKind::VirtioFs => MachineBoundary::CrossVm,
            FsKind::Local
            | FsKind::Fuse
            | FsKind::GvisorNineP
            | FsKind::Overlay
            | FsKind::Tmpfs
            | FsKind::Unknown => MachineBoundary::SameKernel,
        }
    }

    /// The FUSE client of a network share, where this is one.
    pub fn share_client(self) -> Option<ShareClient> {
        match self {
            FsKind::NetworkFuse(client) => Some(client),
            _ => None,
        }
    }

    /// Whether SQLite's WAL index (a shared `mmap` of the `-shm` file plus `fcntl` locks) may fail
    /// here. True for network filesystems and for FUSE-based ones, where it depends on the daemon.
    pub fn may_lack_shared_memory(self) -> bool {
        self.is_network() || matches!(self, FsKind::Fuse | FsKind::VirtioFs | FsKind::GvisorNineP)
    }

    /// Classifies a filesystem type as the mount table names it (`ext4`, `nfs4`, `fuse.sshfs`, ...).
    /// A type alone does not tell gVisor's sandbox-only 9p from another kernel's: that takes the
    /// mount's options ([`from_mount`](Self::from_mount)); here every `9p` is [`FsKind::NineP`].
    pub fn from_type_name(type_name: &str) -> FsKind {
        if let Some(client) = ShareClient::from_type_name(type_name) {
            return FsKind::NetworkFuse(client);
        }
        match type_name {
            "nfs" | "nfs4" => FsKind::Nfs,
            "cifs" | "smb3" | "smbfs" | "smb2" => FsKind::Smb,
            "9p" => FsKind::NineP,
            "virtiofs" => FsKind::VirtioFs,
            "overlay" | "overlayfs" => FsKind::Overlay,
            "tmpfs" | "ramfs" => FsKind::Tmpfs,
            "fuse" | "fuseblk" | "fusectl" => FsKind::Fuse,
            "ext2" | "ext3" | "ext4" | "xfs" | "btrfs" | "zfs" | "f2fs" | "bcachefs" | "jfs"
            | "reiserfs" | "nilfs2" | "vfat" | "exfat" | "ntfs" | "ntfs3" | "hfsplus" | "apfs" => {
                FsKind::Local
            }
            other if other.starts_with("fuse.") => FsKind::Fuse,
            _ => FsKind::Unknown,
        }
    }

    /// Classifies a mount from its type and its superblock options as the mount table shows them
    /// (comma-separated, as `/proc/self/mountinfo`'s last field or `statmount(2)`'s `mnt_opts`).
    ///
    /// The options decide one thing the type cannot: a `9p` mount is gVisor's and used by its
    /// sandbox alone ([`FsKind::GvisorNineP`], the same kernel) when it carries gVisor's
    /// `rfdno=` (gVisor's goferfs writes `trans=fd,rfdno=N,wfdno=N`; Linux's own 9p client
    /// shows an fd transport as `rfd=N,wfd=N` and a VM's share as `trans=virtio`) and a `cache=`
    /// of `fscache` or `fscache_writethrough`, gVisor's modes for files no one outside the
    /// sandbox writes. gVisor's `cache=remote_revalidating` says the opposite (the host or
    /// another sandbox, each with its own kernel, may change the files), so that mount, and any
    /// other `9p`, crosses a kernel boundary: [`FsKind::NineP`].
    ///
    /// ```
    /// use store_core::{FsKind, MachineBoundary};
    ///
    /// let sandbox_only = "rw,trans=fd,rfdno=3,wfdno=3,aname=/,cache=fscache,directfs";
    /// assert_eq!(FsKind::from_mount("9p", sandbox_only), FsKind::GvisorNineP);
    /// let shared = "rw,trans=fd,rfdno=59,wfdno=59,aname=/,cache=remote_revalidating,directfs";
    /// assert_eq!(FsKind::from_mount("9p", shared).machine_boundary(), MachineBoundary::CrossVm);
    /// assert_eq!(FsKind::from_mount("9p", "rw,trans=virtio,cache=mmap"), FsKind::NineP);
    /// ```
    pub fn from_mount(type_name: &str, options: &str) -> FsKind {
        match FsKind::from_type_name(type_name) {
            FsKind::NineP if is_gvisor_sandbox_only(options) => FsKind::GvisorNineP,
            kind => kind,
        }
    }

    /// Classifies a `statfs` `f_type` magic number.
    pub fn from_magic(magic: u64) -> FsKind {
        match magic {
            0x6969 => FsKind::Nfs,
            0x517B | 0xFE53_4D42 | 0xFF53_4D42 => FsKind::Smb,
            0x6573_5546 => FsKind::Fuse,
            0x0102_1997 => FsKind::NineP,
            0x794C_7630 => FsKind::Overlay,
            0x0102_1994 | 0x8584_58F6 => FsKind::Tmpfs,
            0xEF53 | 0x5846_5342 | 0x9123_683E | 0x2FC1_2FC1 | 0xF2F5_2010 | 0xCA45_1A4E => {
                FsKind::Local
            }
            _ => FsKind::Unknown,
        }
    }
}

impl fmt::Display for FsKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Whether a `9p` mount's options are gVisor's for a mount only its sandbox uses: see
/// [`FsKind::from_mount`].
fn is_gvisor_sandbox_only(options: &str) -> bool {
    let gvisor = mount_options(options).any(|(key, _)| key == "rfdno");
    let sandbox_only = mount_options(options).any(|(key, value)| {
        key == "cache" && matches!(value, Some("fscache" | "fscache_writethrough"))
    });
    gvisor && sandbox_only
}

/// A mount's comma-separated options as `(key, value)` pairs (`nolock` is `("nolock", None)`).
fn mount_options(options: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    options
        .split(',')
        .filter(|option| !option.is_empty())
        .map(|option| match option.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (option, None),
        })
}

/// The FUSE client of a network share: the program that serves the mount, as the mount table
/// names it after `fuse.`. Each is a network share ([`MachineBoundary::NetworkShare`]) whose
/// lock scope is the client's ([`ShareClient::lock_scope`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ShareClient {
    /// sshfs: SFTP (`fuse.sshfs`).
    Sshfs,
    /// smbnetfs: SMB through libsmbclient (`fuse.smbnetfs`).
    Smbnetfs,
    /// GlusterFS's FUSE client (`fuse.glusterfs`, what `mount -t glusterfs` mounts).
    Glusterfs,
    /// `rclone mount` (`fuse.rclone`).
    Rclone,
    /// s3fs-fuse (`fuse.s3fs`).
    S3fs,
    /// Cloud Storage FUSE (`fuse.gcsfuse`).
    Gcsfuse,
    /// JuiceFS (`fuse.juicefs`; its source reads `JuiceFS:<name>`).
    JuiceFs,
    /// CephFS's FUSE client (`fuse.ceph-fuse`).
    CephFuse,
    /// Mountpoint for Amazon S3 (`fuse.mountpoint-s3`).
    MountpointS3,
    /// goofys (`fuse.goofys`).
    Goofys,
    /// davfs2, WebDAV (`fuse.davfs`, `davfs`; davfs2 mounting as plain `fuse` is not told
    /// apart from other FUSE daemons).
    Davfs,
}

impl ShareClient {
    /// Every client this module knows.
    pub const ALL: [ShareClient; 11] = [
        ShareClient::Sshfs,
        ShareClient::Smbnetfs,
        ShareClient::Glusterfs,
        ShareClient::Rclone,
        ShareClient::S3fs,
        ShareClient::Gcsfuse,
        ShareClient::JuiceFs,
        ShareClient::CephFuse,
        ShareClient::MountpointS3,
        ShareClient::Goofys,
        ShareClient::Davfs,
    ];

    /// The client's name in reports (`sshfs`, `smbnetfs`, `glusterfs`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ShareClient::Sshfs => "sshfs",
            ShareClient::Smbnetfs => "smbnetfs",
            ShareClient::Glusterfs => "glusterfs",
            ShareClient::Rclone => "rclone",
            ShareClient::S3fs => "s3fs",
            ShareClient::Gcsfuse => "gcsfuse",
            ShareClient::JuiceFs => "juicefs",
            ShareClient::CephFuse => "ceph-fuse",
            ShareClient::MountpointS3 => "mountpoint-s3",
            ShareClient::Goofys => "goofys",
            ShareClient::Davfs => "davfs",
        }
    }

    /// The client a mount-table type names (`fuse.sshfs`, ...; a few clients also appear under
    /// their bare name in `/etc/mtab` and tools' output: `glusterfs`, `juicefs`, `ceph-fuse`,
    /// `davfs`). `None` for any other type, an unknown `fuse.*` among them.
    pub fn from_type_name(type_name: &str) -> Option<ShareClient> {
        Some(match type_name {
            "fuse.sshfs" => ShareClient::Sshfs,
            "fuse.smbnetfs" => ShareClient::Smbnetfs,
            "fuse.glusterfs" | "glusterfs" => ShareClient::Glusterfs,
            "fuse.rclone" => ShareClient::Rclone,
            "fuse.s3fs" => ShareClient::S3fs,
            "fuse.gcsfuse" => ShareClient::Gcsfuse,
            "fuse.juicefs" | "juicefs" => ShareClient::JuiceFs,
            "fuse.ceph-fuse" | "fuse.ceph" | "ceph-fuse" => ShareClient::CephFuse,
            "fuse.mountpoint-s3" => ShareClient::MountpointS3,
            "fuse.goofys" => ShareClient::Goofys,
            "fuse.davfs" | "fuse.davfs2" | "davfs" => ShareClient::Davfs,
            _ => return None,
        })
    }

    /// Which processes a byte-range lock taken through this client keeps out. The kernel keeps
    /// a FUSE mount's locks itself unless the daemon implements them: sshfs and smbnetfs do not
    /// (measured here: two client mounts of one share both "held" SQLite's write lock; DESIGN.md
    /// section 10), nor do the object-store and WebDAV clients (their protocols have no
    /// byte-range locks; davfs2's WebDAV `LOCK` covers whole files, and only when `use_locks`
    /// is on). GlusterFS forwards locks to its servers (measured: DuckDB's lock refused the
    /// second client), as JuiceFS (its metadata engine) and CephFS (its MDS) do by their
    /// documentation.
    pub fn lock_scope(self) -> LockScope {
        match self {
            ShareClient::Glusterfs | ShareClient::JuiceFs | ShareClient::CephFuse => {
                LockScope::ServerWide
            }
            ShareClient::Sshfs
            | ShareClient::Smbnetfs
            | ShareClient::Rclone
            | ShareClient::S3fs
            | ShareClient::Gcsfuse
            | ShareClient::MountpointS3
            | ShareClient::Goofys
            | ShareClient::Davfs => LockScope::ThisClientOnly,
        }
    }
}

impl fmt::Display for ShareClient {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Whether a filesystem's files can be written by another kernel than this one, which neither
/// this kernel's byte-range locks nor its shared memory reach: the danger that loses the most
/// data on shared filesystems is a second machine, not a refused pragma (issue 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MachineBoundary {
    /// Every process that can write the files runs on this kernel: a local disk, tmpfs, an
    /// unknown FUSE daemon (nothing says otherwise), gVisor's sandbox-only 9p.
    SameKernel,
    /// A network share (NFS, SMB, the FUSE clients of [`ShareClient`]): other machines mount the
    /// same files. WAL's shared memory never crosses a client; locks may or may not
    /// ([`LockScope`]).
    NetworkShare,
    /// Another kernel on the same hardware shares the files: a VM and its host (virtiofs, 9p of
    /// QEMU and WSL2), or a gVisor sandbox and whatever else writes its shared mount. Concurrent
    /// WAL writers corrupt databases there even inside one VM on some hosts (podman #23061,
    /// hermes-agent #110848), so store never makes a new database in WAL there.
    CrossVm,
}

impl MachineBoundary {
    /// Whether another kernel can write the files.
    pub fn is_crossed(self) -> bool {
        self != MachineBoundary::SameKernel
    }

    /// `same-kernel`, `network-share` or `cross-vm`.
    pub fn as_str(self) -> &'static str {
        match self {
            MachineBoundary::SameKernel => "same-kernel",
            MachineBoundary::NetworkShare => "network-share",
            MachineBoundary::CrossVm => "cross-vm",
        }
    }

    /// What it means, in a few words for reports: `a network share`, ...
    pub fn describe(self) -> &'static str {
        match self {
            MachineBoundary::SameKernel => "this kernel only",
            MachineBoundary::NetworkShare => "a network share",
            MachineBoundary::CrossVm => "shared with another VM's kernel",
        }
    }
}

impl fmt::Display for MachineBoundary {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Which processes a byte-range lock (SQLite's and DuckDB's `fcntl` locks) taken on this mount
/// keeps out, from the mount's type and options.
///
/// There is no "no locks at all": every mount store knows that does not send locks to a server
/// (NFS `nolock` or `local_lock=`, CIFS `nobrl`, a FUSE daemon without lock support) leaves them
/// with this client's kernel, which still keeps this client's processes apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LockScope {
    /// A filesystem only this kernel writes: a lock keeps out every process that can write.
    ThisMachine,
    /// The server keeps the locks: a lock keeps out processes on every client (NFSv4; NFSv3 with
    /// lockd; CIFS without `nobrl`; GlusterFS, JuiceFS, CephFS).
    ServerWide,
    /// This client's kernel keeps the locks and the server never hears of them: another client
    /// (another machine, or another mount of the share) takes the same lock at the same time
    /// (NFS `nolock`, `local_lock=posix` or `local_lock=all`; CIFS `nobrl`; sshfs, smbnetfs,
    /// the object-store and WebDAV clients).
    ThisClientOnly,
    /// The mount does not say (a kind set by the options, whose mount options are not this
    /// kind's; a FUSE daemon store does not know; virtiofs and 9p, whose servers decide).
    Unknown,
}

impl LockScope {
    /// The scope a mount of `kind` gives with these superblock `options` (`None` where they are
    /// not known): NFS's `nolock` and `local_lock=all|posix` keep POSIX locks on this client
    /// (`local_lock=flock` keeps only `flock` locks, which neither engine takes); CIFS's `nobrl`
    /// sends no byte-range lock to the server.
    ///
    /// ```
    /// use store_core::{FsKind, LockScope};
    ///
    /// let v4 = "rw,vers=4.2,hard,proto=tcp,sec=sys,local_lock=none,addr=10.0.0.2";
    /// assert_eq!(LockScope::of_mount(FsKind::Nfs, Some(v4)), LockScope::ServerWide);
    /// let v3_nolock = "rw,vers=3,nolock,proto=tcp,local_lock=all,addr=10.0.0.2";
    /// assert_eq!(LockScope::of_mount(FsKind::Nfs, Some(v3_nolock)), LockScope::ThisClientOnly);
    /// assert_eq!(LockScope::of_mount(FsKind::Smb, Some("rw,vers=3.1.1,nobrl")), LockScope::ThisClientOnly);
    /// assert_eq!(LockScope::of_mount(FsKind::Nfs, None), LockScope::Unknown);
    /// ```
    pub fn of_mount(kind: FsKind, options: Option<&str>) -> LockScope {
        match kind {
            FsKind::Local | FsKind::Tmpfs | FsKind::Overlay | FsKind::GvisorNineP => {
                LockScope::ThisMachine
            }
            FsKind::NetworkFuse(client) => client.lock_scope(),
            FsKind::Nfs => match options {
                None => LockScope::Unknown,
                Some(options) => {
                    let local = mount_options(options).any(|option| {
                        matches!(
                            option,
                            ("nolock", None) | ("local_lock", Some("posix" | "all"))
                        )
                    });
                    if local {
                        LockScope::ThisClientOnly
                    } else {
                        LockScope::ServerWide
                    }
                }
            },
            FsKind::Smb => match options {
                None => LockScope::Unknown,
                Some(options) if mount_options(options).any(|option| option == ("nobrl", None)) => {
                    LockScope::ThisClientOnly
                }
                Some(_) => LockScope::ServerWide,
            },
            FsKind::Fuse | FsKind::NineP | FsKind::VirtioFs | FsKind::Unknown => LockScope::Unknown,
        }
    }

    /// `this-machine`, `server-wide`, `this-client-only` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            LockScope::ThisMachine => "this-machine",
            LockScope::ServerWide => "server-wide",
            LockScope::ThisClientOnly => "this-client-only",
            LockScope::Unknown => "unknown",
        }
    }

    /// What it means, in a few words for reports: `locks held by this client only`, ...
    pub fn describe(self) -> &'static str {
        match self {
            LockScope::ThisMachine => "locks held by this machine's kernel",
            LockScope::ServerWide => "locks held by the server for every client",
            LockScope::ThisClientOnly => {
                "locks held by this client only: another client takes the same lock"
            }
            LockScope::Unknown => "lock scope unknown",
        }
    }
}

impl fmt::Display for LockScope {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// What detection found out about the filesystem holding a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    /// The classification decisions are made on.
    pub kind: FsKind,
    /// The filesystem type as the mount table names it (`ext4`, `nfs4`), or `magic 0x...` when only
    /// `statfs` answered.
    pub type_name: String,
    /// The mount point the path lives under, when the mount table was readable.
    pub mount_point: Option<PathBuf>,
    /// Whether `kind` was detected or set by the open's options.
    pub kind_source: KindSource,
    /// Which processes a byte-range lock taken here keeps out, from the mount's type and
    /// superblock options ([`LockScope::of_mount`]).
    pub lock_scope: LockScope,
}

/// Where a [`Filesystem`]'s kind came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KindSource {
    /// Detection (the mount table, else `statfs`).
    Detected,
    /// The open's options, because the user knows better than detection (a FUSE mount that is
    /// NFS underneath, a test driving the network path); `detected` is what detection said.
    SetByOptions {
        /// What detection said, [`FsKind::Unknown`] when it failed.
        detected: FsKind,
    },
}

/// The filesystem holding a path could not be inspected.
#[derive(Debug, thiserror::Error)]
#[error("cannot inspect the filesystem holding {}", path.display())]
pub struct DetectError {
    /// The path that was asked about.
    pub path: PathBuf,
    /// What the operating system said.
    #[source]
    pub source: io::Error,
}

impl Filesystem {
    /// Whether another kernel than this one can write the files, and how
    /// ([`FsKind::machine_boundary`]).
    pub fn machine_boundary(&self) -> MachineBoundary {
        self.kind.machine_boundary()
    }

    /// What a mount-table entry says of a filesystem, without `statfs` (a type this module does
    /// not know is [`FsKind::Unknown`]): what detection decides from a mount-table line.
    ///
    /// ```
    /// use store_core::fs::{Filesystem, parse_mountinfo_line};
    /// use store_core::{FsKind, LockScope, MachineBoundary, ShareClient};
    ///
    /// let line = "66 46 0:40 / /mnt/a rw,nosuid,nodev,relatime - fuse.sshfs me@host:/srv rw,user_id=0,group_id=0";
    /// let filesystem = Filesystem::from_mount_entry(parse_mountinfo_line(line).unwrap());
    /// assert_eq!(filesystem.kind, FsKind::NetworkFuse(ShareClient::Sshfs));
    /// assert_eq!(filesystem.machine_boundary(), MachineBoundary::NetworkShare);
    /// assert_eq!(filesystem.lock_scope, LockScope::ThisClientOnly);
    /// ```
    pub fn from_mount_entry(entry: MountEntry) -> Filesystem {
        Filesystem::from_sources(Some(entry), None)
    }

    /// Detects the filesystem holding `path`. The path need not exist yet (a database about to be
    /// created): its nearest existing ancestor is inspected.
    ///
    /// Detection is remembered per mount for the life of the process (keyed by the mount's id
    /// from `statx`, unique where the kernel gives one, so that a new mount at the same path is a
    /// new key): a process that opens many databases, or one database many times, pays the
    /// `statfs` and the mount table's parse once per mount, and one `statx` per open.
    pub fn detect(path: impl AsRef<Path>) -> Result<Filesystem, DetectError> {
        Filesystem::detect_at(path.as_ref(), None)
    }

    /// [`detect`](Self::detect), with the path's [`PathStat`] where the caller has it (it names
    /// the mount: no `statx` of its own).
    pub fn detect_at(path: &Path, stat: Option<&PathStat>) -> Result<Filesystem, DetectError> {
        let key = match stat {
            Some(stat) if stat.mount.is_some() => stat.mount,
            _ => mount_key(path),
        };
        if let Some(known) = key.and_then(|key| detected_mounts().get(&key).cloned()) {
            return Ok(known);
        }
        // The kernel's answer for the mount the path is on, one syscall, where it gives one;
        // else `statfs` and the mount table, read and parsed (some 60 us a process).
        if let Some(key) = key
            && let Some(detected) = statmount(&key)
        {
            detected_mounts().insert(key, detected.clone());
            return Ok(detected);
        }
        let wrap = |source| DetectError {
            path: path.to_owned(),
            source,
        };
        let existing = nearest_existing_ancestor(path).map_err(wrap)?;
        let magic = statfs_magic(&existing).map_err(wrap)?;
        // The calling thread's mount table: a thread may have a mount namespace of its own
        // (`unshare(CLONE_NEWNS)`), and `/proc/self` is the main thread's.
        let mount = std::fs::read_to_string("/proc/thread-self/mountinfo")
            .or_else(|_| std::fs::read_to_string("/proc/self/mountinfo"))
            .ok()
            .and_then(|table| mount_containing(&table, &existing));
        let detected = Filesystem::from_sources(mount, magic);
        if let Some(key) = key {
            detected_mounts().insert(key, detected.clone());
        }
        Ok(detected)
    }

    /// What an open decides on: the detected filesystem, or, when the options set a kind, that
    /// kind with whatever detection found out about the mount (`None` only when detection failed
    /// and no kind was set).
    ///
    /// ```
    /// use store_core::{Filesystem, FsKind, KindSource};
    ///
    /// let directory = tempfile::tempdir()?;
    /// let set = Filesystem::detect_unless_set(directory.path(), Some(FsKind::Nfs)).unwrap();
    /// assert_eq!(set.kind, FsKind::Nfs);
    /// assert!(matches!(set.kind_source, KindSource::SetByOptions { detected } if detected != FsKind::Nfs));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn detect_unless_set(path: impl AsRef<Path>, set: Option<FsKind>) -> Option<Filesystem> {
        Filesystem::detect_unless_set_at(path.as_ref(), None, set)
    }

    /// [`detect_unless_set`](Self::detect_unless_set), with the path's [`PathStat`] where the
    /// caller has it.
    pub fn detect_unless_set_at(
        path: &Path,
        stat: Option<&PathStat>,
        set: Option<FsKind>,
    ) -> Option<Filesystem> {
        let detected = Filesystem::detect_at(path, stat).ok();
        let Some(kind) = set else {
            return detected;
        };
        Some(match detected {
            // The mount's options are this kind's only when detection found the same kind.
            Some(found) if found.kind == kind => Filesystem {
                kind_source: KindSource::SetByOptions {
                    detected: found.kind,
                },
                ..found
            },
            Some(found) => Filesystem {
                kind,
                kind_source: KindSource::SetByOptions {
                    detected: found.kind,
                },
                lock_scope: LockScope::of_mount(kind, None),
                ..found
            },
            None => Filesystem {
                kind,
                type_name: "unknown".to_owned(),
                mount_point: None,
                kind_source: KindSource::SetByOptions {
                    detected: FsKind::Unknown,
                },
                lock_scope: LockScope::of_mount(kind, None),
            },
        })
    }

    /// Combines a mount-table entry and a magic number: the mount table's type (with its
    /// options) wins unless it is one this module does not recognise. The lock scope comes from
    /// the entry's options; with only a magic number, from the kind alone.
    fn from_sources(mount: Option<MountEntry>, magic: Option<u64>) -> Filesystem {
        let magic_kind = magic.map_or(FsKind::Unknown, FsKind::from_magic);
        match mount {
            Some(entry) => {
                let by_type = FsKind::from_mount(&entry.type_name, &entry.options);
                let kind = if by_type == FsKind::Unknown {
                    magic_kind
                } else {
                    by_type
                };
                Filesystem {
                    kind,
                    lock_scope: LockScope::of_mount(kind, Some(&entry.options)),
                    type_name: entry.type_name,
                    mount_point: Some(entry.mount_point),
                    kind_source: KindSource::Detected,
                }
            }
            None => Filesystem {
                kind: magic_kind,
                type_name: magic.map_or_else(|| "unknown".to_owned(), |m| format!("magic {m:#x}")),
                mount_point: None,
                kind_source: KindSource::Detected,
                lock_scope: LockScope::of_mount(magic_kind, None),
            },
        }
    }
}

/// Whether files can be created in a directory, as the operating system answers for this process
/// (root passes permission checks but not a read-only mount).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Writability {
    /// New files can be created.
    Writable,
    /// The filesystem is mounted read-only.
    ReadOnlyFilesystem,
    /// Permissions forbid it.
    PermissionDenied,
    /// The directory does not exist.
    Missing,
    /// The question could not be answered.
    Unknown,
}

/// Asks whether this process may create files in `directory` (`access(W_OK)`).
pub fn writability(directory: &Path) -> Writability {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let Ok(c_path) = std::ffi::CString::new(directory.as_os_str().as_bytes()) else {
            return Writability::Unknown;
        };
        // SAFETY: `c_path` is a NUL-terminated string that outlives the call.
        if unsafe { libc::access(c_path.as_ptr(), libc::W_OK) } == 0 {
            return Writability::Writable;
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EROFS) => Writability::ReadOnlyFilesystem,
            Some(libc::EACCES) | Some(libc::EPERM) => Writability::PermissionDenied,
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => Writability::Missing,
            _ => Writability::Unknown,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = directory;
        Writability::Unknown
    }
}

/// What an open needs to know of a path before an engine touches it, from one `statx`: its type,
/// size, identity (device and inode) and, on Linux, the mount it is on. An open asks once and
/// hands it on (the path check, the decision's key, filesystem detection), instead of a `stat`
/// each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathStat {
    /// What is at the path (symbolic links followed).
    pub kind: PathKind,
    /// Its size in bytes.
    pub len: u64,
    /// Its device, as `st_dev`.
    pub dev: u64,
    /// Its inode.
    pub ino: u64,
    mount: Option<MountKey>,
}

/// What a path names, as [`PathStat`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// Anything else (a socket, a device, a FIFO).
    Special,
}

impl PathStat {
    /// Stats `path` (following symbolic links); `Ok(None)` when nothing is there.
    pub fn of(path: &Path) -> io::Result<Option<PathStat>> {
        #[cfg(target_os = "linux")]
        {
            let mask = libc::STATX_TYPE
                | libc::STATX_SIZE
                | libc::STATX_INO
                | libc::STATX_MNT_ID
                | libc::STATX_MNT_ID_UNIQUE;
            let Some(info) = statx(path, 0, mask)? else {
                return Ok(None);
            };
            let kind = match u32::from(info.stx_mode) & libc::S_IFMT {
                libc::S_IFREG => PathKind::File,
                libc::S_IFDIR => PathKind::Directory,
                _ => PathKind::Special,
            };
            Ok(Some(PathStat {
                kind,
                len: info.stx_size,
                dev: libc::makedev(info.stx_dev_major, info.stx_dev_minor),
                ino: info.stx_ino,
                mount: MountKey::from_statx(&info),
            }))
        }
        #[cfg(not(target_os = "linux"))]
        {
            use std::os::unix::fs::MetadataExt;
            let metadata = match std::fs::metadata(path) {
                Ok(metadata) => metadata,
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(error),
            };
            let kind = if metadata.is_file() {
                PathKind::File
            } else if metadata.is_dir() {
                PathKind::Directory
            } else {
                PathKind::Special
            };
            Ok(Some(PathStat {
                kind,
                len: metadata.len(),
                dev: metadata.dev(),
                ino: metadata.ino(),
                mount: None,
            }))
        }
    }
}

/// Which mount a path is on: the mount's id (unique for the boot where the kernel gives one,
/// Linux 6.8+; else reusable after an unmount, and paired with the device), from `statx` of the
/// path or of its nearest existing ancestor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct MountKey {
    id: u64,
    unique: bool,
    device: (u32, u32),
}

#[cfg(target_os = "linux")]
impl MountKey {
    /// The mount a `statx` answer names, where it names one.
    fn from_statx(info: &libc::statx) -> Option<MountKey> {
        let unique = info.stx_mask & libc::STATX_MNT_ID_UNIQUE != 0;
        if !unique && info.stx_mask & libc::STATX_MNT_ID == 0 {
            return None;
        }
        Some(MountKey {
            id: info.stx_mnt_id,
            unique,
            device: (info.stx_dev_major, info.stx_dev_minor),
        })
    }
}

/// What [`Filesystem::detect`] found per mount, in this process. A `BTreeMap`, as the kept
/// descriptors are: nothing to seed or hash on every open.
fn detected_mounts()
-> std::sync::MutexGuard<'static, std::collections::BTreeMap<MountKey, Filesystem>> {
    static DETECTED: std::sync::Mutex<std::collections::BTreeMap<MountKey, Filesystem>> =
        std::sync::Mutex::new(std::collections::BTreeMap::new());
    DETECTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The mount `path` (or its nearest existing ancestor) is on; `None` where `statx` cannot say
/// (not Linux, an old kernel): detection then runs in full every time.
#[cfg(target_os = "linux")]
fn mount_key(path: &Path) -> Option<MountKey> {
    let mut candidate = path;
    loop {
        // AT_STATX_DONT_SYNC: a network filesystem need not ask its server for attributes this
        // does not read.
        let mask = libc::STATX_MNT_ID | libc::STATX_MNT_ID_UNIQUE;
        if let Some(info) = statx(candidate, libc::AT_STATX_DONT_SYNC, mask).ok()? {
            return MountKey::from_statx(&info);
        }
        if candidate == Path::new(".") {
            return None;
        }
        // Up to the nearest ancestor that exists; a relative path ends at the working
        // directory, and nothing is above a root or a working directory that is gone.
        candidate = match candidate.parent() {
            Some(parent) if parent.as_os_str().is_empty() => Path::new("."),
            Some(parent) => parent,
            None => return None,
        };
    }
}

/// `statx(2)` of `path` (symbolic links followed) with `flags` and `mask`; `Ok(None)` when
/// nothing is there.
#[cfg(target_os = "linux")]
fn statx(path: &Path, flags: libc::c_int, mask: libc::c_uint) -> io::Result<Option<libc::statx>> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut buffer = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `c_path` is NUL-terminated and `buffer` holds one `statx`.
    let status = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            flags,
            mask,
            buffer.as_mut_ptr(),
        )
    };
    if status != 0 {
        let error = io::Error::last_os_error();
        return match error.kind() {
            io::ErrorKind::NotFound => Ok(None),
            _ => Err(error),
        };
    }
    // SAFETY: statx returned 0, so it filled the buffer.
    Ok(Some(unsafe { buffer.assume_init() }))
}

#[cfg(not(target_os = "linux"))]
fn mount_key(_path: &Path) -> Option<MountKey> {
    None
}

/// What `statmount(2)` (Linux 6.8; the superblock options from 6.10, the filesystem's subtype
/// from 6.11) says of the mount `key` names: its type, mount point and magic number, and the
/// superblock options the lock scope and gVisor's 9p are read from. `None` where it cannot answer
/// all of it (an older kernel, a mount id that is not the unique one, a FUSE mount whose subtype
/// it does not give, options too long for the buffer): detection then reads the mount table.
#[cfg(target_os = "linux")]
fn statmount(key: &MountKey) -> Option<Filesystem> {
    let (entry, magic) = statmount_entry(key)?;
    Some(Filesystem::from_sources(Some(entry), Some(magic)))
}

/// The mount-table entry `statmount(2)` gives for `key`, with the magic number.
#[cfg(target_os = "linux")]
fn statmount_entry(key: &MountKey) -> Option<(MountEntry, u64)> {
    /// `struct mnt_id_req`, version 0, from `linux/mount.h`.
    #[repr(C)]
    struct MountIdRequest {
        size: u32,
        spare: u32,
        mnt_id: u64,
        param: u64,
    }
    const SYS_STATMOUNT: libc::c_long = 457;
    const SB_BASIC: u64 = 0x1;
    const MNT_POINT: u64 = 0x10;
    const FS_TYPE: u64 = 0x20;
    const MNT_OPTS: u64 = 0x80;
    const FS_SUBTYPE: u64 = 0x100;
    /// Where `struct statmount`'s strings begin, and the offsets of the fields read.
    const STRINGS_AT: usize = 512;
    if !key.unique {
        return None;
    }
    let request = MountIdRequest {
        size: std::mem::size_of::<MountIdRequest>() as u32,
        spare: 0,
        mnt_id: key.id,
        param: SB_BASIC | MNT_POINT | FS_TYPE | MNT_OPTS | FS_SUBTYPE,
    };
    let mut buffer = [0_u64; 1024];
    // SAFETY: the request is a valid `mnt_id_req` and the buffer is writable for its length.
    let status = unsafe {
        libc::syscall(
            SYS_STATMOUNT,
            &request,
            buffer.as_mut_ptr(),
            std::mem::size_of_val(&buffer),
            0,
        )
    };
    if status != 0 {
        return None;
    }
    // SAFETY: a u64 buffer read as bytes, within its length.
    let bytes: &[u8] = unsafe {
        std::slice::from_raw_parts(buffer.as_ptr().cast(), std::mem::size_of_val(&buffer))
    };
    let u32_at = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_ne_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let string_at = |field: usize| -> Option<&[u8]> {
        let start = STRINGS_AT.checked_add(u32_at(field) as usize)?;
        let rest = bytes.get(start..)?;
        Some(&rest[..rest.iter().position(|&byte| byte == 0)?])
    };
    let mask = u64_at(8);
    if mask & (SB_BASIC | MNT_POINT | FS_TYPE) != SB_BASIC | MNT_POINT | FS_TYPE {
        return None;
    }
    let fs_type = std::str::from_utf8(string_at(36)?).ok()?;
    let subtype = match mask & FS_SUBTYPE {
        0 if fs_type.starts_with("fuse") => return None,
        0 => "",
        _ => std::str::from_utf8(string_at(120)?).ok()?,
    };
    let type_name = if subtype.is_empty() {
        fs_type.to_owned()
    } else {
        format!("{fs_type}.{subtype}")
    };
    use std::os::unix::ffi::OsStrExt;
    let mount_point = PathBuf::from(std::ffi::OsStr::from_bytes(string_at(108)?));
    let magic = u64_at(24) & 0xFFFF_FFFF;
    // The superblock options without the `rw`/`ro` the mount table puts first (`mnt_opts`, at
    // offset 4 of `struct statmount`), escaped as the mount table escapes them. The kernel leaves
    // the mask's bit unset both where it has no options to give and where it is older than
    // 6.10: the kinds whose options decide (the lock scope of NFS and SMB, gVisor's 9p) are then
    // read from the mount table; for the others no options is what the table would say too.
    let options = if mask & MNT_OPTS != 0 {
        std::str::from_utf8(string_at(4)?).ok()?.to_owned()
    } else if matches!(
        FsKind::from_type_name(&type_name),
        FsKind::Nfs | FsKind::Smb | FsKind::NineP
    ) {
        return None;
    } else {
        String::new()
    };
    Some((
        MountEntry {
            mount_point,
            type_name,
            options,
        },
        magic,
    ))
}

#[cfg(not(target_os = "linux"))]
fn statmount(_key: &MountKey) -> Option<Filesystem> {
    None
}

fn nearest_existing_ancestor(path: &Path) -> io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut candidate = absolute.as_path();
    loop {
        match candidate.canonicalize() {
            Ok(canonical) => return Ok(canonical),
            Err(error) if error.kind() == io::ErrorKind::NotFound => match candidate.parent() {
                Some(parent) => candidate = parent,
                None => return Err(error),
            },
            Err(error) => return Err(error),
        }
    }
}

#[cfg(target_os = "linux")]
fn statfs_magic(path: &Path) -> io::Result<Option<u64>> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut buffer = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c_path` is NUL-terminated and `buffer` is large enough for one `statfs`.
    let status = unsafe { libc::statfs(c_path.as_ptr(), buffer.as_mut_ptr()) };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs returned 0, so it filled the buffer.
    let info = unsafe { buffer.assume_init() };
    // f_type is signed on some targets; the magic numbers are 32-bit patterns.
    Ok(Some(info.f_type as u64 & 0xFFFF_FFFF))
}

#[cfg(not(target_os = "linux"))]
fn statfs_magic(_path: &Path) -> io::Result<Option<u64>> {
    Ok(None)
}

/// One line of `/proc/self/mountinfo`, reduced to what detection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Where the filesystem is mounted, with the table's octal escapes decoded.
    pub mount_point: PathBuf,
    /// The filesystem type (`ext4`, `nfs4`, `fuse.sshfs`).
    pub type_name: String,
    /// The superblock options, comma-separated as the kernel wrote them (`rw,vers=3,nolock,...`):
    /// where the filesystem's own options are (`nolock`, `local_lock=`, `nobrl`, 9p's `trans=`
    /// and gVisor's `rfdno=`). The per-mount options before the separator hold only the VFS's
    /// flags (`nosuid`, `relatime`, ...), which say nothing of locks, and are not kept.
    pub options: String,
}

/// Parses one `/proc/self/mountinfo` line (see proc(5)):
/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`.
/// Returns `None` for a line that does not have that shape.
pub fn parse_mountinfo_line(line: &str) -> Option<MountEntry> {
    let mut fields = line.split(' ');
    let mount_point = fields.nth(4)?;
    // Optional fields run until a lone "-"; the filesystem type, the source and the superblock
    // options follow it.
    let mut after_separator = fields.skip_while(|field| *field != "-").skip(1);
    let type_name = after_separator.next()?;
    if type_name.is_empty() {
        return None;
    }
    let options = after_separator.nth(1).unwrap_or_default();
    Some(MountEntry {
        mount_point: PathBuf::from(unescape_mount_field(mount_point)),
        type_name: type_name.to_owned(),
        options: options.to_owned(),
    })
}

/// Decodes the `\040`-style octal escapes the kernel uses for spaces, tabs, newlines and backslashes.
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escape = bytes.get(index + 1..index + 4);
        let octal = escape.and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[index], octal) {
            (b'\\', Some(value)) => {
                decoded.push(value);
                index += 4;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The mount-table entry whose mount point is the longest prefix of `path`; of entries stacked on
/// one mount point, the last (the one on top) wins.
pub fn mount_containing(table: &str, path: &Path) -> Option<MountEntry> {
    table
        .lines()
        .filter_map(parse_mountinfo_line)
        .filter(|entry| path.starts_with(&entry.mount_point))
        .fold(None, |best: Option<MountEntry>, entry| match best {
            Some(current)
                if current.mount_point.components().count()
                    > entry.mount_point.components().count() =>
            {
                Some(current)
            }
            _ => Some(entry),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines recorded from real machines, one per filesystem family detection must tell apart.
    const RECORDED: &[(&str, &str, FsKind)] = &[
        (
            "415 29 0:52 / /home rw,relatime shared:221 - nfs 172.26.224.200:/d2dfac12/home rw,vers=3,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,mountaddr=172.26.224.200,mountvers=3,mountport=635,mountproto=udp,local_lock=none,addr=172.26.224.200",
            "/home",
            FsKind::Nfs,
        ),
        (
            "98 29 0:46 / /mnt/shared rw,relatime shared:55 - nfs4 fileserver:/export/shared rw,vers=4.2,rsize=524288,wsize=524288,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.0.5,local_lock=none,addr=10.0.0.2",
            "/mnt/shared",
            FsKind::Nfs,
        ),
        (
            "120 29 0:61 / /mnt/win rw,relatime shared:70 - cifs //nas/share rw,vers=3.1.1,cache=strict,username=me,uid=1000,noforceuid,gid=1000,noforcegid,addr=192.168.1.20,file_mode=0755,dir_mode=0755,soft,nounix,serverino,mapposix,rsize=4194304,wsize=4194304,bsize=1048576,echo_interval=60,actimeo=1",
            "/mnt/win",
            FsKind::Smb,
        ),
        (
            "121 29 0:62 / /mnt/smb rw,relatime shared:71 - smb3 //nas/data rw,vers=3.0,cache=strict,username=me,uid=0,noforceuid,gid=0,noforcegid,addr=192.168.1.20,file_mode=0755,dir_mode=0755",
            "/mnt/smb",
            FsKind::Smb,
        ),
        (
            "140 29 0:70 / /home/me/remote rw,nosuid,nodev,relatime shared:80 - fuse.sshfs me@host:/srv rw,user_id=1000,group_id=1000",
            "/home/me/remote",
            FsKind::NetworkFuse(ShareClient::Sshfs),
        ),
        (
            "141 29 0:71 / /mnt/bucket rw,nosuid,nodev,relatime shared:81 - fuse.rclone gdrive: rw,user_id=0,group_id=0",
            "/mnt/bucket",
            FsKind::NetworkFuse(ShareClient::Rclone),
        ),
        (
            "142 29 0:72 / /mnt/fuse rw,nosuid,nodev,relatime shared:82 - fuse /dev/fuse rw,user_id=0,group_id=0",
            "/mnt/fuse",
            FsKind::Fuse,
        ),
        (
            "96 29 0:45 / /mnt/c rw,noatime - 9p C:\\134 rw,dirsync,aname=drvfs;path=C:\\;uid=1000;gid=1000;symlinkroot=/mnt/,mmap,access=client,msize=65536,trans=fd,rfd=5,wfd=5",
            "/mnt/c",
            FsKind::NineP,
        ),
        (
            "33 1 0:29 / /work rw,relatime - virtiofs workspace rw",
            "/work",
            FsKind::VirtioFs,
        ),
        (
            "1104 1061 0:213 / / rw,relatime master:9 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A:/var/lib/docker/overlay2/l/B,upperdir=/var/lib/docker/overlay2/x/diff,workdir=/var/lib/docker/overlay2/x/work",
            "/",
            FsKind::Overlay,
        ),
        (
            "25 30 0:22 / /dev/shm rw,nosuid,nodev shared:4 - tmpfs tmpfs rw",
            "/dev/shm",
            FsKind::Tmpfs,
        ),
        (
            "29 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
            "/",
            FsKind::Local,
        ),
    ];

    #[test]
    fn recorded_mountinfo_lines_parse_to_their_filesystem_kind() {
        for (line, mount_point, kind) in RECORDED {
            let entry = parse_mountinfo_line(line).unwrap_or_else(|| panic!("unparsed: {line}"));
            assert_eq!(entry.mount_point, Path::new(mount_point), "{line}");
            assert_eq!(FsKind::from_type_name(&entry.type_name), *kind, "{line}");
        }
    }

    #[test]
    fn optional_fields_before_the_separator_are_skipped() {
        let line = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 propagate_from:3 - ext3 /dev/root rw,errors=continue";
        let entry = parse_mountinfo_line(line).expect("parses");
        assert_eq!(entry.type_name, "ext3");
        assert_eq!(entry.mount_point, Path::new("/mnt2"));
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        let line = r"50 29 0:40 / /mnt/my\040share\134x rw - nfs srv:/x rw";
        let entry = parse_mountinfo_line(line).expect("parses");
        assert_eq!(entry.mount_point, Path::new(r"/mnt/my share\x"));
    }

    #[test]
    fn malformed_lines_are_rejected() {
        assert_eq!(parse_mountinfo_line(""), None);
        assert_eq!(parse_mountinfo_line("1 2 3:4 / /mnt rw"), None);
        assert_eq!(parse_mountinfo_line("1 2 3:4 / /mnt rw -"), None);
    }

    #[test]
    fn longest_mount_point_wins_and_stacked_mounts_take_the_top() {
        let table = [
            "29 1 254:0 / / rw - ext4 /dev/vda rw",
            "415 29 0:52 / /home rw - nfs srv:/home rw",
            "416 415 0:53 / /home/me/fast rw - tmpfs tmpfs rw",
            "417 415 0:54 / /home/me/fast rw - fuse.sshfs me@h:/ rw",
            "418 29 0:55 / /homestead rw - xfs /dev/vdb rw",
        ]
        .join("\n");
        let kind_of = |path: &str| {
            let entry = mount_containing(&table, Path::new(path)).expect("a mount");
            FsKind::from_type_name(&entry.type_name)
        };
        assert_eq!(kind_of("/home/me/state.db"), FsKind::Nfs);
        assert_eq!(
            kind_of("/home/me/fast/state.db"),
            FsKind::NetworkFuse(ShareClient::Sshfs)
        );
        // A mount point is a path prefix by components, not by characters.
        assert_eq!(kind_of("/homestead/db"), FsKind::Local);
        assert_eq!(kind_of("/var/db"), FsKind::Local);
    }

    /// Promise: where the kernel answers `statmount` (Linux 6.8+), detection by it says what the
    /// mount table and `statfs` say: the same kind, type name and mount point.
    #[cfg(target_os = "linux")]
    #[test]
    fn statmount_agrees_with_the_mount_table() -> Result<(), Box<dyn std::error::Error>> {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
        let mut version = release
            .trim()
            .split(['.', '-'])
            .map(|part| part.parse::<u32>());
        let (major, minor) = (version.next(), version.next());
        if !matches!((major, minor), (Some(Ok(major)), Some(Ok(minor))) if (major, minor) >= (6, 8))
        {
            eprintln!(
                "skipped: statmount needs Linux 6.8, this is {}",
                release.trim()
            );
            return Ok(());
        }
        let table = std::fs::read_to_string("/proc/thread-self/mountinfo")?;
        let directory = tempfile::tempdir()?;
        let mut paths = vec![Path::new("/"), Path::new("/proc"), directory.path()];
        paths.extend(
            [Path::new("/dev"), Path::new("/dev/shm")]
                .into_iter()
                .filter(|path| path.is_dir()),
        );
        for path in paths {
            let key = mount_key(path).ok_or("no mount id")?;
            let by_statmount = statmount(&key).ok_or("statmount did not answer")?;
            let canonical = path.canonicalize()?;
            let entry = mount_containing(&table, &canonical).ok_or("not in the mount table")?;
            // The table's superblock options start with `rw` or `ro`, which statmount gives in
            // its flags instead.
            let table_options = entry
                .options
                .strip_prefix("rw")
                .or_else(|| entry.options.strip_prefix("ro"))
                .unwrap_or(&entry.options)
                .trim_start_matches(',')
                .to_owned();
            let (statmount_entry, _) = statmount_entry(&key).ok_or("statmount did not answer")?;
            assert_eq!(statmount_entry.options, table_options, "{}", path.display());
            let by_table = Filesystem::from_sources(Some(entry), statfs_magic(&canonical)?);
            assert_eq!(
                by_statmount.lock_scope,
                by_table.lock_scope,
                "{}",
                path.display()
            );
            assert_eq!(by_statmount.kind, by_table.kind, "{}", path.display());
            assert_eq!(
                by_statmount.type_name,
                by_table.type_name,
                "{}",
                path.display()
            );
            assert_eq!(
                by_statmount.mount_point,
                by_table.mount_point,
                "{}",
                path.display()
            );
        }
        Ok(())
    }

    #[test]
    fn magic_numbers_classify_as_documented() {
        assert_eq!(FsKind::from_magic(0x6969), FsKind::Nfs);
        assert_eq!(FsKind::from_magic(0x517B), FsKind::Smb);
        assert_eq!(FsKind::from_magic(0xFE53_4D42), FsKind::Smb);
        assert_eq!(FsKind::from_magic(0xFF53_4D42), FsKind::Smb);
        assert_eq!(FsKind::from_magic(0x6573_5546), FsKind::Fuse);
        assert_eq!(FsKind::from_magic(0xEF53), FsKind::Local);
        assert_eq!(FsKind::from_magic(0x0102_1994), FsKind::Tmpfs);
        assert_eq!(FsKind::from_magic(0x1234), FsKind::Unknown);
    }

    #[test]
    fn an_unknown_type_name_falls_back_to_the_magic_number() {
        let entry = MountEntry {
            mount_point: PathBuf::from("/data"),
            type_name: "weirdfs".to_owned(),
            options: "rw".to_owned(),
        };
        let filesystem = Filesystem::from_sources(Some(entry), Some(0x6969));
        assert_eq!(filesystem.kind, FsKind::Nfs);
        assert_eq!(filesystem.type_name, "weirdfs");
        let magic_only = Filesystem::from_sources(None, Some(0x6969));
        assert_eq!(magic_only.kind, FsKind::Nfs);
        assert_eq!(magic_only.type_name, "magic 0x6969");
    }

    #[test]
    fn writability_of_this_machines_directories() -> io::Result<()> {
        let directory = tempfile::tempdir()?;
        assert_eq!(writability(directory.path()), Writability::Writable);
        assert_eq!(
            writability(&directory.path().join("missing")),
            Writability::Missing
        );
        Ok(())
    }

    /// A line of the mount table as detection classifies it: kind, machine boundary, lock scope.
    fn classified(line: &str) -> (FsKind, MachineBoundary, LockScope) {
        let entry = parse_mountinfo_line(line).unwrap_or_else(|| panic!("unparsed: {line}"));
        let filesystem = Filesystem::from_mount_entry(entry);
        (
            filesystem.kind,
            filesystem.machine_boundary(),
            filesystem.lock_scope,
        )
    }

    /// Promise: each network FUSE client is a network share, named, with the lock scope it gives:
    /// the kernel's own (this client only) for clients that do not implement locks, the server's
    /// for GlusterFS, JuiceFS and CephFS. The sshfs and smbnetfs lines were recorded on this
    /// machine (sshfs over a local sftp-server, smbnetfs with no server); the others are the
    /// types the clients' documentation and users' mount tables show.
    #[test]
    fn network_fuse_clients_are_network_shares_named_with_their_lock_scope() {
        use LockScope::{ServerWide, ThisClientOnly};
        use ShareClient::*;
        let lines = [
            (
                "66 46 0:40 / /tmp/fsprobe/sshfs rw,nosuid,nodev,relatime - fuse.sshfs localhost:/tmp/fsprobe/src rw,user_id=0,group_id=0",
                Sshfs,
                ThisClientOnly,
            ),
            (
                "66 46 0:40 / /tmp/fsprobe/smb rw,nosuid,nodev,relatime - fuse.smbnetfs smbnetfs rw,user_id=0,group_id=0",
                Smbnetfs,
                ThisClientOnly,
            ),
            (
                "70 29 0:48 / /mnt/a rw,relatime - fuse.glusterfs host:/gv0 rw,user_id=0,group_id=0,default_permissions,allow_other,max_read=131072",
                Glusterfs,
                ServerWide,
            ),
            (
                "71 29 0:49 / /mnt/drive rw,nosuid,nodev,relatime - fuse.rclone gdrive: rw,user_id=1000,group_id=1000",
                Rclone,
                ThisClientOnly,
            ),
            (
                "72 29 0:50 / /mnt/s3 rw,nosuid,nodev,relatime - fuse.s3fs s3fs rw,user_id=0,group_id=0",
                S3fs,
                ThisClientOnly,
            ),
            (
                "73 29 0:51 / /mnt/gcs rw,nosuid,nodev,relatime - fuse.gcsfuse bucket rw,user_id=0,group_id=0",
                Gcsfuse,
                ThisClientOnly,
            ),
            (
                "74 29 0:52 / /jfs rw,relatime - fuse.juicefs JuiceFS:myjfs rw,user_id=0,group_id=0,default_permissions,allow_other",
                JuiceFs,
                ServerWide,
            ),
            (
                "75 29 0:53 / /mnt/cephfs rw,nosuid,nodev,relatime - fuse.ceph-fuse ceph-fuse rw,user_id=0,group_id=0,allow_other",
                CephFuse,
                ServerWide,
            ),
            (
                "76 29 0:54 / /mnt/mp rw,nosuid,nodev,relatime - fuse.mountpoint-s3 mountpoint-s3 rw,user_id=0,group_id=0,allow_other",
                MountpointS3,
                ThisClientOnly,
            ),
            (
                "77 29 0:55 / /mnt/goofys rw,nosuid,nodev,relatime - fuse.goofys bucket rw,user_id=0,group_id=0",
                Goofys,
                ThisClientOnly,
            ),
            (
                "78 29 0:56 / /mnt/dav rw,nosuid,nodev,relatime - fuse.davfs https://dav.example/ rw,user_id=0,group_id=0,allow_other,max_read=16384",
                Davfs,
                ThisClientOnly,
            ),
        ];
        for (line, client, scope) in lines {
            let kind = FsKind::NetworkFuse(client);
            assert_eq!(
                classified(line),
                (kind, MachineBoundary::NetworkShare, scope),
                "{line}"
            );
            assert_eq!(kind.share_client(), Some(client));
            assert_eq!(
                kind.to_string(),
                client.as_str(),
                "the report names the client"
            );
            assert!(kind.is_network() && kind.may_lack_shared_memory(), "{line}");
        }
        // Every client is recognised by some type name, and the bare names tools print too.
        for client in ShareClient::ALL {
            assert!(
                lines.iter().any(|(_, listed, _)| *listed == client),
                "{client} untested"
            );
        }
        for (bare, client) in [
            ("glusterfs", Glusterfs),
            ("juicefs", JuiceFs),
            ("ceph-fuse", CephFuse),
            ("davfs", Davfs),
            ("fuse.davfs2", Davfs),
            ("fuse.ceph", CephFuse),
        ] {
            assert_eq!(
                FsKind::from_type_name(bare),
                FsKind::NetworkFuse(client),
                "{bare}"
            );
        }
    }

    /// Promise: a FUSE daemon store does not know stays [`FsKind::Fuse`] as before: not a network
    /// share, not crossing a machine boundary, its lock scope unknown.
    #[test]
    fn an_unknown_fuse_daemon_stays_fuse() {
        for line in [
            "142 29 0:72 / /mnt/fuse rw,nosuid,nodev,relatime shared:82 - fuse /dev/fuse rw,user_id=0,group_id=0",
            "143 29 0:73 / /tmp/lossy rw,nosuid,nodev,relatime - fuse.lossyfs lossyfs rw,user_id=0,group_id=0",
            "144 29 0:74 / /mnt/zip rw,nosuid,nodev,relatime - fuse.fuse-zip fuse-zip rw,user_id=0,group_id=0",
        ] {
            assert_eq!(
                classified(line),
                (
                    FsKind::Fuse,
                    MachineBoundary::SameKernel,
                    LockScope::Unknown
                ),
                "{line}"
            );
        }
    }

    /// Promise: NFS and CIFS locks are server-wide unless the mount's options keep them on this
    /// client: NFS `nolock` (which the kernel shows with `local_lock=all`), `local_lock=posix` or
    /// `local_lock=all`; CIFS `nobrl`. `local_lock=flock` keeps only `flock` locks local, and
    /// SQLite and DuckDB take POSIX locks, so it stays server-wide.
    #[test]
    fn nfs_and_cifs_lock_scope_follows_their_options() {
        use LockScope::{ServerWide, ThisClientOnly};
        let share = MachineBoundary::NetworkShare;
        let lines = [
            // NFSv4.2, the kernel's defaults: locks are part of the protocol.
            (RECORDED[1].0, FsKind::Nfs, ServerWide),
            // NFSv3 with lockd (no `nolock`): the recorded line.
            (RECORDED[0].0, FsKind::Nfs, ServerWide),
            (
                "416 29 0:53 / /data rw,relatime - nfs srv:/data rw,vers=3,rsize=1048576,wsize=1048576,namlen=255,hard,nolock,proto=tcp,timeo=600,retrans=2,sec=sys,mountaddr=10.0.0.2,mountvers=3,mountport=635,mountproto=udp,local_lock=all,addr=10.0.0.2",
                FsKind::Nfs,
                ThisClientOnly,
            ),
            (
                "417 29 0:54 / /data rw,relatime - nfs srv:/data rw,vers=3,hard,proto=tcp,sec=sys,local_lock=posix,addr=10.0.0.2",
                FsKind::Nfs,
                ThisClientOnly,
            ),
            (
                "418 29 0:55 / /data rw,relatime - nfs srv:/data rw,vers=3,hard,proto=tcp,sec=sys,local_lock=flock,addr=10.0.0.2",
                FsKind::Nfs,
                ServerWide,
            ),
            (
                "419 29 0:56 / /data rw,relatime - nfs4 srv:/data rw,vers=4.1,hard,proto=tcp,sec=sys,local_lock=all,addr=10.0.0.2",
                FsKind::Nfs,
                ThisClientOnly,
            ),
            // `nolock` alone, as an older kernel or a hand-written table shows it.
            (
                "420 29 0:57 / /data rw,relatime - nfs srv:/data rw,vers=3,nolock,addr=10.0.0.2",
                FsKind::Nfs,
                ThisClientOnly,
            ),
            (RECORDED[2].0, FsKind::Smb, ServerWide),
            (RECORDED[3].0, FsKind::Smb, ServerWide),
            (
                "122 29 0:63 / /mnt/nas rw,relatime - cifs //nas/share rw,vers=3.1.1,cache=strict,username=me,uid=0,noforceuid,gid=0,noforcegid,addr=192.168.1.20,file_mode=0755,dir_mode=0755,soft,nounix,serverino,mapposix,nobrl,rsize=4194304,wsize=4194304",
                FsKind::Smb,
                ThisClientOnly,
            ),
        ];
        for (line, kind, scope) in lines {
            assert_eq!(classified(line), (kind, share, scope), "{line}");
        }
        // An option that merely contains the word is not the option.
        assert_eq!(
            LockScope::of_mount(FsKind::Smb, Some("rw,username=nobrl")),
            ServerWide
        );
    }

    /// Promise: virtiofs and Linux's 9p (WSL2's drives over an fd transport, QEMU's shares over
    /// virtio) cross a VM boundary; gVisor's 9p (its `rfdno=`) is the same kernel when gVisor
    /// keeps the files to its sandbox (`cache=fscache`, hermes-agent #119614's line), and crosses
    /// a kernel boundary when gVisor says someone outside may change them
    /// (`cache=remote_revalidating`, gke-labs/kube-agents #610's line, where WAL corrupted).
    #[test]
    fn nine_p_and_virtiofs_cross_a_vm_boundary_unless_gvisor_keeps_the_files_to_its_sandbox() {
        use LockScope::{ThisMachine, Unknown};
        let cross_vm = MachineBoundary::CrossVm;
        let lines = [
            (RECORDED[7].0, FsKind::NineP, cross_vm, Unknown),
            (
                "97 29 0:46 / /mnt/host rw,relatime - 9p hostshare rw,sync,dirsync,access=client,msize=512000,trans=virtio,cache=mmap",
                FsKind::NineP,
                cross_vm,
                Unknown,
            ),
            (
                "98 29 0:47 / /mnt/src rw,relatime - 9p 192.168.49.1 rw,dfltuid=1000,dfltgid=999,access=any,msize=262144,trans=tcp,noextend,port=38555",
                FsKind::NineP,
                cross_vm,
                Unknown,
            ),
            (RECORDED[8].0, FsKind::VirtioFs, cross_vm, Unknown),
            (
                "16 15 0:18 / / rw - 9p none rw,trans=fd,rfdno=3,wfdno=3,aname=/,dfltuid=4294967294,dfltgid=4294967294,dcache=1000,cache=fscache,disable_fifo_open,overlayfs_stale_read,directfs",
                FsKind::GvisorNineP,
                MachineBoundary::SameKernel,
                ThisMachine,
            ),
            (
                "17 15 0:19 / /opt/data rw - 9p none rw,trans=fd,rfdno=59,wfdno=59,aname=/,dfltuid=4294967294,dfltgid=4294967294,dcache=1000,cache=remote_revalidating,disable_fifo_open,directfs",
                FsKind::NineP,
                cross_vm,
                Unknown,
            ),
        ];
        for (line, kind, boundary, scope) in lines {
            assert_eq!(classified(line), (kind, boundary, scope), "{line}");
        }
        // The type alone says 9p, whoever serves it.
        assert_eq!(FsKind::from_type_name("9p"), FsKind::NineP);
        assert!(!FsKind::GvisorNineP.is_network());
    }

    /// Promise: a kind set by the options is decided on with the lock scope of that kind, not
    /// the detected mount's (whose options are another filesystem's), unless detection found
    /// the same kind.
    #[test]
    fn a_kind_set_by_the_options_has_that_kinds_lock_scope() -> io::Result<()> {
        let directory = tempfile::tempdir()?;
        let detected = Filesystem::detect(directory.path()).map_err(|error| error.source)?;
        let nfs = Filesystem::detect_unless_set(directory.path(), Some(FsKind::Nfs)).expect("set");
        assert_eq!(nfs.lock_scope, LockScope::Unknown, "{nfs:?}");
        let sshfs = FsKind::NetworkFuse(ShareClient::Sshfs);
        let set = Filesystem::detect_unless_set(directory.path(), Some(sshfs)).expect("set");
        assert_eq!(
            (set.machine_boundary(), set.lock_scope),
            (MachineBoundary::NetworkShare, LockScope::ThisClientOnly)
        );
        let same =
            Filesystem::detect_unless_set(directory.path(), Some(detected.kind)).expect("set");
        assert_eq!(same.lock_scope, detected.lock_scope);
        Ok(())
    }

    #[test]
    fn network_and_shared_memory_properties() {
        assert!(FsKind::Nfs.is_network() && FsKind::Smb.is_network() && FsKind::NineP.is_network());
        assert!(!FsKind::Local.is_network() && !FsKind::Fuse.is_network());
        assert!(FsKind::Fuse.may_lack_shared_memory());
        assert!(!FsKind::Tmpfs.may_lack_shared_memory());
    }

    /// The machines this project runs on have an ext4 (or xfs/btrfs) root and a tmpfs at /dev/shm.
    #[cfg(target_os = "linux")]
    #[test]
    fn detects_this_machines_disk_and_tmpfs() -> Result<(), Box<dyn std::error::Error>> {
        // The package directory as cargo gives it when the test runs: a path compiled in would
        // name whichever clone last built this binary in the shared target directory.
        let package =
            std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| ".".into(), PathBuf::from);
        let directory = tempfile::tempdir_in(package)?;
        let on_disk = Filesystem::detect(directory.path().join("not-yet-created.db"))?;
        assert!(
            matches!(on_disk.kind, FsKind::Local | FsKind::Overlay),
            "expected a local disk, got {on_disk:?}"
        );
        assert!(on_disk.mount_point.is_some(), "{on_disk:?}");

        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            let directory = tempfile::tempdir_in(shm)?;
            let in_memory = Filesystem::detect(directory.path().join("x.db"))?;
            assert_eq!(in_memory.kind, FsKind::Tmpfs, "{in_memory:?}");
            assert_eq!(in_memory.type_name, "tmpfs");
        }
        Ok(())
    }

    #[test]
    fn a_path_under_a_missing_directory_is_judged_by_its_existing_ancestor()
    -> Result<(), DetectError> {
        let directory = tempfile::tempdir().map_err(|source| DetectError {
            path: PathBuf::new(),
            source,
        })?;
        let deep = directory.path().join("a/b/c/state.db");
        let filesystem = Filesystem::detect(&deep)?;
        let parent = Filesystem::detect(directory.path())?;
        assert_eq!(filesystem, parent);
        Ok(())
    }
}
