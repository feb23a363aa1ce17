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
/// use store_core::FsKind;
///
/// let filesystem = store_core::Filesystem::detect("/var/lib/myapp/state.db")?;
/// if filesystem.kind.is_network() {
///     eprintln!("{} is on {}: WAL will not be used", "state.db", filesystem.kind);
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
    /// A FUSE mount (sshfs, rclone, gcsfuse, ...), other than virtiofs.
    Fuse,
    /// Plan 9 filesystem protocol (WSL2 drives, QEMU shares).
    NineP,
    /// virtiofs (a FUSE protocol over virtio; shared memory only with DAX).
    VirtioFs,
    /// overlayfs (container layers); behaves like its upper layer, usually local.
    Overlay,
    /// tmpfs or ramfs.
    Tmpfs,
    /// A filesystem this module does not recognise.
    Unknown,
}

impl FsKind {
    /// The name used in reports and messages (`local`, `nfs`, `smb`, `fuse`, `9p`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FsKind::Local => "local",
            FsKind::Nfs => "nfs",
            FsKind::Smb => "smb",
            FsKind::Fuse => "fuse",
            FsKind::NineP => "9p",
            FsKind::VirtioFs => "virtiofs",
            FsKind::Overlay => "overlay",
            FsKind::Tmpfs => "tmpfs",
            FsKind::Unknown => "unknown",
        }
    }

    /// Whether the files live on another machine: byte-range locks and shared memory cannot be
    /// trusted to coordinate processes, which is what SQLite's WAL needs.
    pub fn is_network(self) -> bool {
        matches!(self, FsKind::Nfs | FsKind::Smb | FsKind::NineP)
    }

    /// Whether SQLite's WAL index (a shared `mmap` of the `-shm` file plus `fcntl` locks) may fail
    /// here. True for network filesystems and for FUSE-based ones, where it depends on the daemon.
    pub fn may_lack_shared_memory(self) -> bool {
        self.is_network() || matches!(self, FsKind::Fuse | FsKind::VirtioFs)
    }

    /// Classifies a filesystem type as the mount table names it (`ext4`, `nfs4`, `fuse.sshfs`, ...).
    pub fn from_type_name(type_name: &str) -> FsKind {
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
            Some(found) => Filesystem {
                kind,
                kind_source: KindSource::SetByOptions {
                    detected: found.kind,
                },
                ..found
            },
            None => Filesystem {
                kind,
                type_name: "unknown".to_owned(),
                mount_point: None,
                kind_source: KindSource::SetByOptions {
                    detected: FsKind::Unknown,
                },
            },
        })
    }

    /// Combines a mount-table entry and a magic number: the mount table's type wins unless it is
    /// one this module does not recognise.
    fn from_sources(mount: Option<MountEntry>, magic: Option<u64>) -> Filesystem {
        let magic_kind = magic.map_or(FsKind::Unknown, FsKind::from_magic);
        match mount {
            Some(entry) => {
                let by_type = FsKind::from_type_name(&entry.type_name);
                Filesystem {
                    kind: if by_type == FsKind::Unknown {
                        magic_kind
                    } else {
                        by_type
                    },
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

/// What `statmount(2)` (Linux 6.8, the filesystem's subtype from 6.11) says of the mount `key`
/// names: its type, mount point and magic number. `None` where it cannot answer all of it (an
/// older kernel, a mount id that is not the unique one, a FUSE mount whose subtype it does not
/// give): detection then reads the mount table.
#[cfg(target_os = "linux")]
fn statmount(key: &MountKey) -> Option<Filesystem> {
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
        param: SB_BASIC | MNT_POINT | FS_TYPE | FS_SUBTYPE,
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
    Some(Filesystem::from_sources(
        Some(MountEntry {
            mount_point,
            type_name,
        }),
        Some(magic),
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
}

/// Parses one `/proc/self/mountinfo` line (see proc(5)):
/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`.
/// Returns `None` for a line that does not have that shape.
pub fn parse_mountinfo_line(line: &str) -> Option<MountEntry> {
    let mut fields = line.split(' ');
    let mount_point = fields.nth(4)?;
    // Optional fields run until a lone "-"; the filesystem type follows it.
    let type_name = fields.skip_while(|field| *field != "-").nth(1)?;
    if type_name.is_empty() {
        return None;
    }
    Some(MountEntry {
        mount_point: PathBuf::from(unescape_mount_field(mount_point)),
        type_name: type_name.to_owned(),
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
            FsKind::Fuse,
        ),
        (
            "141 29 0:71 / /mnt/bucket rw,nosuid,nodev,relatime shared:81 - fuse.rclone gdrive: rw,user_id=0,group_id=0",
            "/mnt/bucket",
            FsKind::Fuse,
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
        assert_eq!(kind_of("/home/me/fast/state.db"), FsKind::Fuse);
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
        for path in [Path::new("/"), Path::new("/proc"), directory.path()] {
            let key = mount_key(path).ok_or("no mount id")?;
            let by_statmount = statmount(&key).ok_or("statmount did not answer")?;
            let canonical = path.canonicalize()?;
            let by_table = Filesystem::from_sources(
                mount_containing(&table, &canonical),
                statfs_magic(&canonical)?,
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
