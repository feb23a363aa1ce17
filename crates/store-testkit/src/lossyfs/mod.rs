//! A filesystem that forgets what was never fsynced: a power cut made for real, on a real mount.
//!
//! A SIGKILL keeps the kernel's page cache, so a crash test built on it passes whether or not the
//! code under test ever calls `fsync`. [`LossyFs`] is a FUSE passthrough (written with `fuser`,
//! in this process) onto a backing directory that keeps a second, durable copy of everything and
//! moves a piece of the live state into it only when an fsync makes it durable. A
//! [`power cut`](LossyFs::power_loss) throws the rest away, writes the durable state back into the
//! backing directory and unmounts; [`LossyFs::remount`] then serves that state through a fresh
//! mount, so no kernel cache can hand back what was dropped. LazyFS (Jepsen) and SQLite's crash
//! VFS (`test6.c`) test the same way.
//!
//! # The durability model (POSIX)
//!
//! - A file's bytes, size and mode are durable once `fsync` or `fdatasync` on it returns, or
//!   when each write returns on a file opened `O_SYNC` or `O_DSYNC`.
//! - A name (a creation, a rename, an unlink, a `mkdir` or `rmdir`) is durable once `fsync` on
//!   the directory holding it returns; a rename touches two directories.
//! - Nothing else is: `close`, `flush` and time make nothing durable. A file whose name is
//!   durable but whose bytes never were comes back empty.
//! - What stood in the backing directory when it was mounted is durable.
//!
//! Real filesystems often keep more: ext4, XFS and btrfs commit the entry naming a file with the
//! file's fsync. Code that counts on that relies on those filesystems, and the strict model says
//! so by losing the name; [`Names::WithFileFsync`] models them instead.
//!
//! Optional [`Tearing`]: a power cut may keep some of the pending pages of a file (a random
//! prefix of them in write order, or a random subset: writes reordered), as a disk that had
//! written part of its cache does.
//!
//! The same filesystem also makes two network-filesystem faults on a real mount:
//! [`MemoryMaps::Refused`] opens files with FUSE's `direct_io`, so shared `mmap` fails (SQLite's
//! WAL pragma then succeeds and every access after it fails, as on some FUSE and network
//! mounts), and [`Locks`] refuses or ignores POSIX locks.
//!
//! # Where it runs
//!
//! Mounting needs root (or a user namespace with FUSE) and `/dev/fuse`; [`LossyFs::mount`] enters
//! a private mount namespace of the calling thread first, so run it in a child process
//! ([`isolated!`](crate::isolated)) and do the work on that thread or in processes it spawns.
//! Where it cannot mount, it answers [`FaultError::Unsupported`] with the reason: a test then says
//! skipped, never passed. `STORE_LOSSYFS_TRACE=1` prints every request it refuses, to stderr.
//!
//! ```no_run
//! use store_testkit::lossyfs::{LossyFs, LossyOptions};
//!
//! let backing = tempfile::tempdir()?;
//! let mountpoint = tempfile::tempdir()?;
//! let mut filesystem = LossyFs::mount(backing.path(), mountpoint.path(), LossyOptions::default())?;
//! let path = mountpoint.path().join("kept");
//! let file = std::fs::File::create(&path)?;
//! std::io::Write::write_all(&mut &file, b"durable")?;
//! file.sync_all()?;
//! std::fs::File::open(mountpoint.path())?.sync_all()?; // the name too
//! std::fs::write(mountpoint.path().join("lost"), b"never synced")?;
//! drop(file);
//! filesystem.power_loss()?;
//! filesystem.remount()?;
//! assert_eq!(std::fs::read(&path)?, b"durable");
//! assert!(!mountpoint.path().join("lost").exists());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod durable;
mod server;

use std::ffi::CString;
use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use durable::CutCounts;

use crate::faults::FaultError;
use crate::random::SplitMix64;
use server::{Server, Shared};

const FAULT: &str = "power-loss";

/// Which pending pages a power cut keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tearing {
    mode: TearingMode,
    random: SplitMix64,
}

/// How a power cut tears pending writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TearingMode {
    /// Every pending page is lost: the strict model.
    DropAll,
    /// A random prefix of each file's pending pages, in the order they were written, survives.
    KeepPrefix,
    /// Each pending page survives or not at random: writes reach the disk out of order.
    KeepAny,
}

impl Tearing {
    /// Every pending page is lost.
    pub fn none() -> Tearing {
        Tearing {
            mode: TearingMode::DropAll,
            random: SplitMix64::new(0),
        }
    }

    /// A random prefix of each file's pending pages survives, chosen from `seed`.
    pub fn prefix(seed: u64) -> Tearing {
        Tearing {
            mode: TearingMode::KeepPrefix,
            random: SplitMix64::new(seed),
        }
    }

    /// Each pending page survives at random, chosen from `seed`.
    pub fn reordered(seed: u64) -> Tearing {
        Tearing {
            mode: TearingMode::KeepAny,
            random: SplitMix64::new(seed),
        }
    }

    /// The mode.
    pub fn mode(&self) -> TearingMode {
        self.mode
    }

    /// For `pages` pending pages in write order, which survive.
    pub(crate) fn choose(&mut self, pages: usize) -> Vec<bool> {
        match self.mode {
            TearingMode::DropAll => vec![false; pages],
            TearingMode::KeepPrefix => {
                let kept = self.random.below(pages as u64 + 1) as usize;
                (0..pages).map(|page| page < kept).collect()
            }
            TearingMode::KeepAny => (0..pages).map(|_| self.random.below(2) == 1).collect(),
        }
    }
}

impl Default for Tearing {
    fn default() -> Tearing {
        Tearing::none()
    }
}

/// Whether files may be mapped shared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemoryMaps {
    /// As on a local disk.
    #[default]
    Shared,
    /// Files are opened `direct_io`: shared `mmap` fails with ENODEV, as on mounts that cannot
    /// keep a shared page cache coherent.
    Refused,
}

/// What POSIX locks do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Locks {
    /// The kernel keeps them, as on a local disk.
    #[default]
    Local,
    /// Every lock request fails with ENOLCK, as on NFSv3 without a lock daemon.
    Refused,
    /// Every lock is granted and none is enforced, as on mounts with `nolock` or `local_lock`
    /// gone wrong: two writers each believe they hold the database.
    Ignored,
}

/// When a name (a creation, rename or unlink) becomes durable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Names {
    /// On the fsync of the directory holding it, and only then: POSIX, and the strict model.
    #[default]
    OnDirectoryFsync,
    /// Also, for a file, with the file's own fsync: the entry naming the file at that moment
    /// becomes durable with its bytes, as ext4, XFS and btrfs commit it in practice. Other
    /// changes in the directory still wait for its fsync.
    WithFileFsync,
}

/// How a [`LossyFs`] behaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LossyOptions {
    /// What a power cut keeps of pending pages. Default: nothing.
    pub tearing: Tearing,
    /// Whether shared memory maps work. Default: they do.
    pub memory_maps: MemoryMaps,
    /// What POSIX locks do. Default: the kernel keeps them.
    pub locks: Locks,
    /// When names become durable. Default: on their directory's fsync only (POSIX).
    pub names: Names,
}

impl LossyOptions {
    /// The defaults with `tearing`.
    pub fn tearing(mut self, tearing: Tearing) -> LossyOptions {
        self.tearing = tearing;
        self
    }

    /// The defaults with `memory_maps`.
    pub fn memory_maps(mut self, memory_maps: MemoryMaps) -> LossyOptions {
        self.memory_maps = memory_maps;
        self
    }

    /// The defaults with `names`.
    pub fn names(mut self, names: Names) -> LossyOptions {
        self.names = names;
        self
    }

    /// The defaults with `locks`.
    pub fn locks(mut self, locks: Locks) -> LossyOptions {
        self.locks = locks;
        self
    }
}

/// What a power cut did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerLoss {
    /// Pending bytes dropped, torn pages kept, directories put back.
    pub counts: CutCounts,
    /// File fsyncs served before the cut (since the last mount).
    pub file_fsyncs: u64,
    /// Directory fsyncs served before the cut.
    pub directory_fsyncs: u64,
}

/// Cuts the power of a [`LossyFs`] from any thread or tracing subscriber: from then on every
/// request fails with EIO and nothing more becomes durable.
#[derive(Clone)]
pub struct PowerSwitch {
    /// The server of the current mount (a remount replaces it).
    shared: Arc<Mutex<Arc<Shared>>>,
}

impl fmt::Debug for PowerSwitch {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("PowerSwitch")
    }
}

impl PowerSwitch {
    fn current(&self) -> Arc<Shared> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Cuts the power, once: a second cut before the next mount returns what the first did.
    pub fn cut(&self) -> io::Result<PowerLoss> {
        self.current().cut()
    }

    /// Cuts the power by itself once `operations` more mutating requests (writes, truncations,
    /// creations, renames, unlinks, fsyncs) have been served: the next one fails with EIO, as if
    /// the disk died under it. With a seeded `operations`, a crash loop cuts the power at every
    /// step of the work in turn, inside store's own steps too.
    pub fn cut_after(&self, operations: u64) {
        self.current().arm(operations);
    }

    /// Whether the power is cut.
    pub fn is_cut(&self) -> bool {
        self.current().is_cut()
    }
}

/// A mounted lossy filesystem. Dropping it unmounts (lazily: files still open elsewhere keep
/// failing with EIO or ENOTCONN).
pub struct LossyFs {
    backing: PathBuf,
    mountpoint: PathBuf,
    objects: tempfile::TempDir,
    options: LossyOptions,
    switch: PowerSwitch,
    session: Option<fuser::BackgroundSession>,
}

impl fmt::Debug for LossyFs {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("LossyFs")
            .field("backing", &self.backing)
            .field("mountpoint", &self.mountpoint)
            .field("options", &self.options)
            .finish()
    }
}

fn io_error(source: io::Error) -> FaultError {
    FaultError::Io {
        fault: FAULT,
        source,
    }
}

impl LossyFs {
    /// Mounts the filesystem at `mountpoint` (an existing directory) over `backing` (an existing
    /// directory, on another path), in a private mount namespace of the calling thread. What
    /// `backing` holds now is durable.
    pub fn mount(
        backing: &Path,
        mountpoint: &Path,
        options: LossyOptions,
    ) -> Result<LossyFs, FaultError> {
        let backing = backing.canonicalize().map_err(io_error)?;
        let mountpoint = mountpoint.canonicalize().map_err(io_error)?;
        if backing.starts_with(&mountpoint) || mountpoint.starts_with(&backing) {
            return Err(io_error(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "backing {} and mountpoint {} must not contain each other",
                    backing.display(),
                    mountpoint.display()
                ),
            )));
        }
        crate::faults::mounts::enter_private_mount_namespace(FAULT)?;
        let objects = tempfile::Builder::new()
            .prefix("store-lossyfs-durable-")
            .tempdir()
            .map_err(io_error)?;
        let shared = Arc::new(
            Shared::adopt(&backing, objects.path().to_owned(), options.clone())
                .map_err(io_error)?,
        );
        let switch = PowerSwitch {
            shared: Arc::new(Mutex::new(shared.clone())),
        };
        let mut filesystem = LossyFs {
            backing,
            mountpoint,
            objects,
            options,
            switch,
            session: None,
        };
        filesystem.session = Some(filesystem.start(shared)?);
        Ok(filesystem)
    }

    /// Opens `/dev/fuse`, mounts it, and serves `shared` on a thread of its own.
    fn start(&self, shared: Arc<Shared>) -> Result<fuser::BackgroundSession, FaultError> {
        let device: OwnedFd = match OpenOptions::new().read(true).write(true).open("/dev/fuse") {
            Ok(device) => device.into(),
            Err(error) => {
                return Err(FaultError::Unsupported {
                    fault: FAULT,
                    reason: format!("cannot open /dev/fuse ({error})"),
                });
            }
        };
        let target = CString::new(self.mountpoint.as_os_str().as_bytes())
            .map_err(|error| io_error(io::Error::new(io::ErrorKind::InvalidInput, error)))?;
        // SAFETY: geteuid and getegid take nothing and cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let data = CString::new(format!(
            "fd={},rootmode=40000,user_id={uid},group_id={gid},allow_other,default_permissions",
            device.as_raw_fd()
        ))
        .expect("no NUL");
        crate::faults::mounts::mount_call(
            FAULT,
            Some(&CString::new("lossyfs").expect("no NUL")),
            &target,
            Some(&CString::new("fuse.lossyfs").expect("no NUL")),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(&data),
        )?;
        let mut config = fuser::Config::default();
        config.acl = fuser::SessionACL::All;
        let session =
            fuser::Session::from_fd(Server(shared), device, fuser::SessionACL::All, config)
                .and_then(fuser::Session::spawn);
        match session {
            Ok(session) => Ok(session),
            Err(error) => {
                self.unmount();
                Err(io_error(error))
            }
        }
    }

    /// Lazily unmounts: the mount point is free at once; files open elsewhere fail from now on.
    fn unmount(&self) {
        if let Ok(target) = CString::new(self.mountpoint.as_os_str().as_bytes()) {
            // SAFETY: a NUL-terminated path that outlives the call.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
    }

    /// Where the filesystem is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The backing directory: after [`LossyFs::power_loss`] it holds exactly the durable state.
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// A switch that cuts the power from elsewhere (another thread, a tracing subscriber at a
    /// named step of store's work).
    pub fn power_switch(&self) -> PowerSwitch {
        self.switch.clone()
    }

    /// The power cut: drops everything not yet durable (or tears it, as the options say),
    /// unmounts, and leaves the durable state in the backing directory. Processes still using
    /// the mount get EIO; kill them before reading anything back. Then [`LossyFs::remount`].
    pub fn power_loss(&mut self) -> Result<PowerLoss, FaultError> {
        let shared = self.switch.current();
        let loss = shared.cut().map_err(io_error)?;
        self.unmount();
        // The old server answers EIO to what is still open; its thread ends when they close.
        drop(self.session.take());
        shared.materialize().map_err(io_error)?;
        Ok(loss)
    }

    /// Mounts again over the backing directory as it now stands (all of it durable), with a fresh
    /// kernel cache and the power back on.
    pub fn remount(&mut self) -> Result<(), FaultError> {
        if self.session.is_some() {
            self.unmount();
            drop(self.session.take());
        }
        // A fresh durable store: the old objects belong to inode numbers of the old model.
        self.objects = tempfile::Builder::new()
            .prefix("store-lossyfs-durable-")
            .tempdir()
            .map_err(io_error)?;
        let shared = Arc::new(
            Shared::adopt(
                &self.backing,
                self.objects.path().to_owned(),
                self.options.clone(),
            )
            .map_err(io_error)?,
        );
        *self
            .switch
            .shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = shared.clone();
        self.session = Some(self.start(shared)?);
        Ok(())
    }
}

impl Drop for LossyFs {
    fn drop(&mut self) {
        if self.session.is_some() {
            self.unmount();
        }
    }
}

/// Whether this machine can mount a [`LossyFs`]: tried on a throwaway thread, whose mount
/// namespace ends with it.
pub fn probe() -> Result<(), FaultError> {
    let backing = tempfile::tempdir().map_err(io_error)?;
    let mountpoint = tempfile::tempdir().map_err(io_error)?;
    let (backing_path, mountpoint_path) = (backing.path().to_owned(), mountpoint.path().to_owned());
    std::thread::spawn(move || {
        let filesystem = LossyFs::mount(&backing_path, &mountpoint_path, LossyOptions::default())?;
        std::fs::write(mountpoint_path.join("probe"), b"x").map_err(io_error)?;
        drop(filesystem);
        Ok(())
    })
    .join()
    .unwrap_or_else(|_| {
        Err(FaultError::Unsupported {
            fault: FAULT,
            reason: "the probe thread panicked".into(),
        })
    })
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File};
    use std::io::Write as _;
    use std::os::fd::AsRawFd as _;

    use super::*;

    /// A backing directory and a mount point beside it, both removed at the end.
    struct Mounted {
        _backing: tempfile::TempDir,
        _mountpoint: tempfile::TempDir,
        filesystem: LossyFs,
    }

    impl Mounted {
        fn new(options: LossyOptions) -> Mounted {
            let backing = tempfile::tempdir().expect("temp dir");
            let mountpoint = tempfile::tempdir().expect("temp dir");
            let filesystem = LossyFs::mount(backing.path(), mountpoint.path(), options)
                .expect("FUSE mounts on this machine (root, /dev/fuse)");
            Mounted {
                _backing: backing,
                _mountpoint: mountpoint,
                filesystem,
            }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.filesystem.mountpoint().join(name)
        }

        fn sync_directory(&self) {
            File::open(self.filesystem.mountpoint())
                .and_then(|directory| directory.sync_all())
                .expect("directory fsync");
        }

        /// Cuts the power and mounts again: what follows reads only what was durable.
        fn power_cycle(&mut self) -> PowerLoss {
            let loss = self.filesystem.power_loss().expect("power loss");
            self.filesystem.remount().expect("remount");
            loss
        }
    }

    fn write_synced(path: &Path, bytes: &[u8]) -> File {
        let mut file = File::create(path).expect("create");
        file.write_all(bytes).expect("write");
        file.sync_all().expect("fsync");
        file
    }

    #[test]
    fn fsync_makes_data_durable_and_a_power_cut_drops_the_rest() {
        crate::isolated!(fsync_makes_data_durable_and_a_power_cut_drops_the_rest, {
            let mut mounted = Mounted::new(LossyOptions::default());
            let mut kept = write_synced(&mounted.path("kept"), b"durable");
            mounted.sync_directory();
            // After the fsync: appended, never synced.
            kept.write_all(b" and pending").expect("append");
            fs::write(mounted.path("never-synced"), b"lost").expect("write");
            assert_eq!(
                fs::read(mounted.path("kept")).expect("read"),
                b"durable and pending",
                "the live view shows every write before the cut"
            );
            let loss = mounted.power_cycle();
            assert_eq!(fs::read(mounted.path("kept")).expect("read"), b"durable");
            assert!(!mounted.path("never-synced").exists());
            assert!(loss.counts.pending_bytes_dropped >= 16, "{loss:?}");
            assert!(
                loss.file_fsyncs >= 1 && loss.directory_fsyncs >= 1,
                "{loss:?}"
            );
        });
    }

    #[test]
    fn a_new_file_synced_without_its_directory_vanishes() {
        crate::isolated!(a_new_file_synced_without_its_directory_vanishes, {
            let mut mounted = Mounted::new(LossyOptions::default());
            drop(write_synced(
                &mounted.path("orphan"),
                b"bytes durable, name not",
            ));
            mounted.power_cycle();
            assert!(!mounted.path("orphan").exists());
        });
    }

    #[test]
    fn a_rename_without_a_directory_fsync_vanishes_and_with_one_it_stays() {
        crate::isolated!(
            a_rename_without_a_directory_fsync_vanishes_and_with_one_it_stays,
            {
                let mut mounted = Mounted::new(LossyOptions::default());
                drop(write_synced(&mounted.path("old"), b"content"));
                mounted.sync_directory();
                fs::rename(mounted.path("old"), mounted.path("new")).expect("rename");
                mounted.power_cycle();
                assert_eq!(
                    fs::read(mounted.path("old")).expect("old name back"),
                    b"content"
                );
                assert!(!mounted.path("new").exists());

                fs::rename(mounted.path("old"), mounted.path("new")).expect("rename");
                mounted.sync_directory();
                mounted.power_cycle();
                assert!(!mounted.path("old").exists());
                assert_eq!(fs::read(mounted.path("new")).expect("new name"), b"content");
            }
        );
    }

    #[test]
    fn an_unlink_without_a_directory_fsync_comes_back() {
        crate::isolated!(an_unlink_without_a_directory_fsync_comes_back, {
            let mut mounted = Mounted::new(LossyOptions::default());
            drop(write_synced(&mounted.path("journal"), b"hot"));
            mounted.sync_directory();
            fs::remove_file(mounted.path("journal")).expect("unlink");
            mounted.power_cycle();
            assert_eq!(fs::read(mounted.path("journal")).expect("back"), b"hot");
            fs::remove_file(mounted.path("journal")).expect("unlink");
            mounted.sync_directory();
            mounted.power_cycle();
            assert!(!mounted.path("journal").exists());
        });
    }

    #[test]
    fn what_stood_in_the_backing_directory_at_mount_is_durable() {
        crate::isolated!(what_stood_in_the_backing_directory_at_mount_is_durable, {
            let backing = tempfile::tempdir().expect("temp dir");
            let mountpoint = tempfile::tempdir().expect("temp dir");
            fs::create_dir(backing.path().join("nested")).expect("mkdir");
            fs::write(backing.path().join("nested/file"), b"before").expect("write");
            let mut filesystem =
                LossyFs::mount(backing.path(), mountpoint.path(), LossyOptions::default())
                    .expect("FUSE mounts on this machine");
            let path = mountpoint.path().join("nested/file");
            fs::write(&path, b"overwritten, never synced").expect("write");
            filesystem.power_loss().expect("power loss");
            filesystem.remount().expect("remount");
            assert_eq!(fs::read(&path).expect("read"), b"before");
            assert_eq!(
                fs::read(backing.path().join("nested/file")).expect("backing"),
                b"before"
            );
        });
    }

    #[test]
    fn after_the_cut_every_request_fails_and_nothing_more_becomes_durable() {
        crate::isolated!(
            after_the_cut_every_request_fails_and_nothing_more_becomes_durable,
            {
                let mut mounted = Mounted::new(LossyOptions::default());
                let mut file = write_synced(&mounted.path("file"), b"one");
                mounted.sync_directory();
                mounted.filesystem.power_switch().cut().expect("cut");
                let write = file.write_all(b"two").and_then(|()| file.sync_all());
                assert_eq!(
                    write.expect_err("a dead disk").raw_os_error(),
                    Some(libc::EIO)
                );
                drop(file);
                mounted.power_cycle();
                assert_eq!(fs::read(mounted.path("file")).expect("read"), b"one");
            }
        );
    }

    #[test]
    fn a_torn_power_cut_keeps_a_prefix_of_the_pending_pages() {
        crate::isolated!(a_torn_power_cut_keeps_a_prefix_of_the_pending_pages, {
            const PAGES: usize = 16;
            let page = durable::PAGE_BYTES as usize;
            let mut kept_counts = Vec::new();
            for seed in 0..8 {
                let mut mounted =
                    Mounted::new(LossyOptions::default().tearing(Tearing::prefix(seed)));
                let mut file = write_synced(&mounted.path("file"), &vec![b'o'; PAGES * page]);
                mounted.sync_directory();
                for index in 0..PAGES {
                    file.write_all_at_offset(&vec![b'n'; page], (index * page) as u64);
                }
                drop(file);
                mounted.power_cycle();
                let bytes = fs::read(mounted.path("file")).expect("read");
                assert_eq!(bytes.len(), PAGES * page, "size was durable");
                let new_pages = bytes
                    .chunks(page)
                    .take_while(|chunk| chunk.iter().all(|byte| *byte == b'n'))
                    .count();
                assert!(
                    bytes[new_pages * page..].iter().all(|byte| *byte == b'o'),
                    "seed {seed}: the pages kept are a prefix, whole pages"
                );
                kept_counts.push(new_pages);
            }
            kept_counts.sort_unstable();
            kept_counts.dedup();
            assert!(
                kept_counts.len() > 1,
                "the seeds tear at different places: {kept_counts:?}"
            );
        });
    }

    trait WriteAt {
        fn write_all_at_offset(&mut self, bytes: &[u8], offset: u64);
    }

    impl WriteAt for File {
        fn write_all_at_offset(&mut self, bytes: &[u8], offset: u64) {
            std::os::unix::fs::FileExt::write_all_at(self, bytes, offset).expect("write");
        }
    }

    #[test]
    fn refused_memory_maps_fail_a_shared_mapping() {
        crate::isolated!(refused_memory_maps_fail_a_shared_mapping, {
            let mounted = Mounted::new(LossyOptions::default().memory_maps(MemoryMaps::Refused));
            drop(write_synced(&mounted.path("shm"), &[0u8; 4096]));
            // Read and write, as SQLite opens its `-shm` file: a write-only one cannot be mapped.
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(mounted.path("shm"))
                .expect("open");
            // SAFETY: a fresh mapping of an open file; unmapped below if it succeeds.
            let mapping = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    file.as_raw_fd(),
                    0,
                )
            };
            let error = io::Error::last_os_error();
            if mapping != libc::MAP_FAILED {
                // SAFETY: the mapping made above.
                unsafe { libc::munmap(mapping, 4096) };
                panic!("a shared mapping succeeded on a direct_io mount");
            }
            assert_eq!(error.raw_os_error(), Some(libc::ENODEV), "{error}");
        });
    }

    fn try_lock(file: &File) -> io::Result<()> {
        // SAFETY: a zeroed flock asking for a write lock on the whole file.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = libc::F_WRLCK as i16;
        lock.l_whence = libc::SEEK_SET as i16;
        // SAFETY: fcntl on an open descriptor with a valid flock.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    #[test]
    fn ignored_locks_let_two_processes_hold_the_same_write_lock() {
        crate::isolated!(ignored_locks_let_two_processes_hold_the_same_write_lock, {
            let mounted = Mounted::new(LossyOptions::default().locks(Locks::Ignored));
            drop(write_synced(&mounted.path("db"), b"x"));
            let path =
                std::ffi::CString::new(mounted.path("db").as_os_str().as_bytes()).expect("no NUL");
            let mut pipe = [0; 2];
            // SAFETY: pipe(2) fills the two descriptors.
            assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
            // SAFETY: the child calls only async-signal-safe functions, then _exit or pause.
            let child = unsafe { libc::fork() };
            if child == 0 {
                // SAFETY: raw calls on a valid path and descriptors; the child never returns.
                unsafe {
                    let descriptor = libc::open(path.as_ptr(), libc::O_RDWR);
                    let mut lock: libc::flock = std::mem::zeroed();
                    lock.l_type = libc::F_WRLCK as i16;
                    lock.l_whence = libc::SEEK_SET as i16;
                    let held = libc::fcntl(descriptor, libc::F_SETLK, &lock) == 0;
                    libc::write(pipe[1], [u8::from(held)].as_ptr().cast(), 1);
                    loop {
                        libc::pause();
                    }
                }
            }
            let mut held = [0u8];
            // SAFETY: reading one byte from our pipe into a one-byte buffer.
            assert_eq!(
                unsafe { libc::read(pipe[0], held.as_mut_ptr().cast(), 1) },
                1
            );
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(mounted.path("db"))
                .expect("open");
            let second = try_lock(&file);
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(child, libc::SIGKILL);
                libc::waitpid(child, std::ptr::null_mut(), 0);
            }
            assert_eq!(held[0], 1, "the first process got its lock");
            second.expect("a second process gets the same write lock: nothing is enforced");
        });
    }

    #[test]
    fn refused_locks_fail_with_enolck() {
        crate::isolated!(refused_locks_fail_with_enolck, {
            let mounted = Mounted::new(LossyOptions::default().locks(Locks::Refused));
            let file = write_synced(&mounted.path("db"), b"x");
            let error = try_lock(&file).expect_err("locks are refused");
            assert_eq!(error.raw_os_error(), Some(libc::ENOLCK), "{error}");
        });
    }

    #[test]
    fn with_ext4_like_names_a_file_fsync_keeps_its_new_name_but_not_a_rename() {
        crate::isolated!(
            with_ext4_like_names_a_file_fsync_keeps_its_new_name_but_not_a_rename,
            {
                let mut mounted = Mounted::new(LossyOptions::default().names(Names::WithFileFsync));
                drop(write_synced(
                    &mounted.path("created"),
                    b"named by its fsync",
                ));
                drop(write_synced(&mounted.path("other"), b"x"));
                mounted.sync_directory();
                fs::rename(mounted.path("other"), mounted.path("renamed")).expect("rename");
                drop(write_synced(&mounted.path("unrelated"), b"y"));
                mounted.power_cycle();
                assert_eq!(
                    fs::read(mounted.path("created")).expect("kept"),
                    b"named by its fsync"
                );
                assert!(mounted.path("unrelated").exists());
                assert!(mounted.path("other").exists(), "the rename was not synced");
                assert!(!mounted.path("renamed").exists());
            }
        );
    }

    #[test]
    fn an_armed_cut_fails_the_request_it_lands_on_and_keeps_what_came_before() {
        crate::isolated!(
            an_armed_cut_fails_the_request_it_lands_on_and_keeps_what_came_before,
            {
                let mut mounted = Mounted::new(LossyOptions::default());
                let mut file = write_synced(&mounted.path("log"), b"");
                mounted.sync_directory();
                let switch = mounted.filesystem.power_switch();
                // Three mutating requests go through: write, fsync, write; the fourth fails.
                switch.cut_after(3);
                file.write_all(b"one").expect("first write");
                file.sync_all().expect("its fsync");
                file.write_all(b"two").expect("second write");
                assert!(!switch.is_cut());
                let error = file.sync_all().expect_err("the power went");
                assert_eq!(error.raw_os_error(), Some(libc::EIO), "{error}");
                assert!(switch.is_cut());
                drop(file);
                mounted.power_cycle();
                assert_eq!(fs::read(mounted.path("log")).expect("read"), b"one");
            }
        );
    }

    #[test]
    fn this_machine_can_mount_it() {
        // CI and the developers' machines run as root with /dev/fuse: the probe must say so.
        probe().expect("FUSE mounts on this machine");
    }
}
