//! The FUSE server: a passthrough to the backing directory that tells the durable model about
//! every write, truncation, name change and fsync, and answers `EIO` to everything once the
//! power is cut.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyLock, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    TimeOrNow, WriteFlags,
};

use super::durable::{Durable, Entries, Kind, open_for_sync};
use super::{Locks, LossyOptions, MemoryMaps, Names, PowerLoss, Tearing};

/// Attributes and entries are never cached by the kernel: every stat comes here, so that what a
/// test reads is what the model holds.
const TTL: Duration = Duration::ZERO;

#[derive(Debug)]
struct Node {
    /// Relative to the backing directory; empty for the root.
    path: PathBuf,
}

#[derive(Debug)]
struct Handle {
    ino: u64,
    file: File,
    /// Opened `O_SYNC` or `O_DSYNC`: each write is durable when it returns.
    sync_each_write: bool,
}

#[derive(Debug)]
pub(crate) struct State {
    backing: PathBuf,
    nodes: HashMap<u64, Node>,
    /// (device, inode) of a live backing file to this filesystem's inode number. Ours are never
    /// reused, so that the durable state of an unlinked file is never confused with a new one.
    by_backing: HashMap<(u64, u64), u64>,
    next_ino: u64,
    handles: HashMap<u64, Handle>,
    next_handle: u64,
    durable: Durable,
    fsyncs: u64,
    directory_fsyncs: u64,
}

#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    dead: AtomicBool,
    pub(crate) options: LossyOptions,
    tearing: Mutex<Tearing>,
    /// Mutating requests still served before the power goes by itself, when armed.
    countdown: Mutex<Option<u64>>,
    /// What the cut did, once it happened.
    cut: Mutex<Option<PowerLoss>>,
}

impl Shared {
    /// Builds the model of `backing` as it stands: all of it durable.
    pub(crate) fn adopt(
        backing: &Path,
        objects: PathBuf,
        options: LossyOptions,
    ) -> io::Result<Shared> {
        let mut state = State {
            backing: backing.to_owned(),
            nodes: HashMap::new(),
            by_backing: HashMap::new(),
            next_ino: 2,
            handles: HashMap::new(),
            next_handle: 1,
            durable: Durable::new(objects),
            fsyncs: 0,
            directory_fsyncs: 0,
        };
        let root = fs::metadata(backing)?;
        state.by_backing.insert((root.dev(), root.ino()), 1);
        state.nodes.insert(
            1,
            Node {
                path: PathBuf::new(),
            },
        );
        state.adopt_directory(1)?;
        Ok(Shared {
            state: Mutex::new(state),
            dead: AtomicBool::new(false),
            tearing: Mutex::new(options.tearing.clone()),
            options,
            countdown: Mutex::new(None),
            cut: Mutex::new(None),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cut, once: from then on every request fails with `EIO`; pending writes are dropped
    /// or torn. A second call returns what the first did.
    pub(crate) fn cut(&self) -> io::Result<PowerLoss> {
        let mut state = self.lock();
        self.cut_locked(&mut state)
    }

    /// Cuts the power by itself once `operations` more mutating requests (writes, truncations,
    /// name changes, fsyncs) have been served: the next one fails, as the disk dies under it.
    pub(crate) fn arm(&self, operations: u64) {
        let _state = self.lock();
        *lock_ignoring_poison(&self.countdown) = Some(operations);
    }

    pub(crate) fn is_cut(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    /// Under the state lock: no request is half-way through the model when the power goes.
    fn cut_locked(&self, state: &mut State) -> io::Result<PowerLoss> {
        let mut cut = lock_ignoring_poison(&self.cut);
        if let Some(done) = *cut {
            return Ok(done);
        }
        self.dead.store(true, Ordering::SeqCst);
        let mut tearing = lock_ignoring_poison(&self.tearing);
        let handles = &state.handles;
        let nodes = &state.nodes;
        let backing = &state.backing;
        let counts = state.durable.cut(&mut tearing, &mut |ino| {
            handles
                .values()
                .find(|handle| handle.ino == ino)
                .and_then(|handle| handle.file.try_clone().ok())
                .or_else(|| {
                    nodes
                        .get(&ino)
                        .and_then(|node| open_for_sync(&backing.join(&node.path)).ok())
                })
        })?;
        let done = PowerLoss {
            counts,
            file_fsyncs: state.fsyncs,
            directory_fsyncs: state.directory_fsyncs,
        };
        *cut = Some(done);
        Ok(done)
    }

    /// Writes the durable tree into the backing directory, replacing what is there.
    pub(crate) fn materialize(&self) -> io::Result<()> {
        let state = self.lock();
        state.durable.materialize(1, &state.backing)
    }
}

fn lock_ignoring_poison<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    fn full_path(&self, ino: u64) -> Result<PathBuf, Errno> {
        self.nodes
            .get(&ino)
            .map(|node| self.backing.join(&node.path))
            .ok_or(Errno::ENOENT)
    }

    fn relative_child(&self, parent: u64, name: &OsStr) -> Result<PathBuf, Errno> {
        let node = self.nodes.get(&parent).ok_or(Errno::ENOENT)?;
        Ok(node.path.join(name))
    }

    /// Our inode number for a live backing file at `relative`, made on first sight.
    fn ino_for(&mut self, relative: &Path, metadata: &fs::Metadata) -> u64 {
        let key = (metadata.dev(), metadata.ino());
        let ino = match self.by_backing.get(&key) {
            Some(ino) => *ino,
            None => {
                let ino = self.next_ino;
                self.next_ino += 1;
                self.by_backing.insert(key, ino);
                ino
            }
        };
        let node = self.nodes.entry(ino).or_insert(Node {
            path: PathBuf::new(),
        });
        if ino != 1 {
            node.path = relative.to_owned();
        }
        ino
    }

    fn attr(&mut self, relative: &Path, metadata: &fs::Metadata) -> FileAttr {
        let ino = self.ino_for(relative, metadata);
        attr_of(ino, metadata)
    }

    /// The live entries of directory `ino`, with our inode numbers.
    fn live_entries(&mut self, ino: u64) -> io::Result<Entries> {
        let relative = self
            .nodes
            .get(&ino)
            .map(|node| node.path.clone())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
        let mut entries = Entries::new();
        for entry in fs::read_dir(self.backing.join(&relative))? {
            let entry = entry?;
            let metadata = fs::symlink_metadata(entry.path())?;
            if !(metadata.is_dir() || metadata.is_file()) {
                continue;
            }
            let child = self.ino_for(&relative.join(entry.file_name()), &metadata);
            let kind = if metadata.is_dir() {
                Kind::Directory
            } else {
                Kind::File
            };
            entries.insert(entry.file_name(), (child, kind));
        }
        Ok(entries)
    }

    /// Makes directory `ino` and everything under it durable as it stands (at mount).
    fn adopt_directory(&mut self, ino: u64) -> io::Result<()> {
        let entries = self.live_entries(ino)?;
        let path = self
            .full_path(ino)
            .map_err(|_| io::Error::from_raw_os_error(libc::ENOENT))?;
        let mode = fs::metadata(&path)?.permissions().mode() & 0o7777;
        for (name, (child, kind)) in &entries {
            match kind {
                Kind::Directory => self.adopt_directory(*child)?,
                Kind::File => self.durable.adopt_file(*child, &path.join(name))?,
            }
        }
        self.durable.adopt_directory(ino, entries, mode);
        Ok(())
    }

    /// Makes durable the entry that names file `ino` now, in its parent directory.
    fn sync_own_entry(&mut self, ino: u64) {
        let Some(path) = self.nodes.get(&ino).map(|node| node.path.clone()) else {
            return;
        };
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return;
        };
        // The file may have lost its name since (unlinked while open): then nothing is named.
        if fs::symlink_metadata(self.backing.join(&path)).is_err() {
            return;
        }
        let directory = self
            .nodes
            .iter()
            .find(|(_, node)| node.path == parent)
            .map(|(directory, _)| *directory);
        if let Some(directory) = directory {
            self.durable.sync_entry(directory, name.to_owned(), ino);
        }
    }

    fn handle(&self, fh: FileHandle) -> Result<&Handle, Errno> {
        self.handles.get(&fh.0).ok_or(Errno::EBADF)
    }

    fn add_handle(&mut self, ino: u64, file: File, flags: i32) -> u64 {
        let handle = self.next_handle;
        self.next_handle += 1;
        let sync_each_write = flags & (libc::O_SYNC | libc::O_DSYNC) != 0;
        self.handles.insert(
            handle,
            Handle {
                ino,
                file,
                sync_each_write,
            },
        );
        handle
    }

    /// Forgets the backing identity of a file about to lose its last name, so that the backing
    /// filesystem's reuse of its inode number makes a new inode here.
    fn forget_if_last_name(&mut self, path: &Path) {
        if let Ok(metadata) = fs::symlink_metadata(path)
            && metadata.nlink() <= 1
        {
            self.by_backing.remove(&(metadata.dev(), metadata.ino()));
        }
    }
}

fn attr_of(ino: u64, metadata: &fs::Metadata) -> FileAttr {
    let time = |seconds: i64, nanoseconds: i64| {
        UNIX_EPOCH
            + Duration::from_secs(seconds.max(0) as u64)
            + Duration::from_nanos(nanoseconds.max(0) as u64)
    };
    FileAttr {
        ino: INodeNo(ino),
        size: metadata.size(),
        blocks: metadata.blocks(),
        atime: time(metadata.atime(), metadata.atime_nsec()),
        mtime: time(metadata.mtime(), metadata.mtime_nsec()),
        ctime: time(metadata.ctime(), metadata.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind: if metadata.is_dir() {
            FileType::Directory
        } else if metadata.file_type().is_symlink() {
            FileType::Symlink
        } else {
            FileType::RegularFile
        },
        perm: (metadata.mode() & 0o7777) as u16,
        nlink: metadata.nlink() as u32,
        uid: metadata.uid(),
        gid: metadata.gid(),
        rdev: metadata.rdev() as u32,
        blksize: metadata.blksize() as u32,
        flags: 0,
    }
}

fn errno(error: io::Error) -> Errno {
    Errno::from(error)
}

fn c_path(path: &Path) -> Result<CString, Errno> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// Open flags for the backing file: what the client asked, less what this side handles (the
/// kernel sends absolute offsets, so no `O_APPEND`; creation and truncation came as requests).
fn backing_flags(flags: i32) -> i32 {
    flags
        & !(libc::O_APPEND
            | libc::O_CREAT
            | libc::O_EXCL
            | libc::O_TRUNC
            | libc::O_NOCTTY
            | libc::O_DIRECT
            | libc::O_SYNC
            | libc::O_DSYNC
            | libc::O_ACCMODE)
}

fn open_backing(path: &Path, flags: i32) -> io::Result<File> {
    let mut options = OpenOptions::new();
    match flags & libc::O_ACCMODE {
        libc::O_RDONLY => options.read(true),
        libc::O_WRONLY => options.write(true),
        _ => options.read(true).write(true),
    };
    options
        .custom_flags(backing_flags(flags) | libc::O_NOFOLLOW)
        .open(path)
}

pub(crate) struct Server(pub(crate) Arc<Shared>);

impl std::fmt::Debug for Server {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("lossyfs::Server")
    }
}

impl Server {
    /// The state, or `EIO` once the power is cut.
    fn live(&self) -> Result<MutexGuard<'_, State>, Errno> {
        let state = self.0.lock();
        if self.0.is_cut() {
            return Err(Errno::EIO);
        }
        Ok(state)
    }

    /// The state for a request that changes something, or `EIO`: once the power is cut, or
    /// when this request is the one an armed countdown cuts the power at.
    fn mutating(&self) -> Result<MutexGuard<'_, State>, Errno> {
        let mut state = self.live()?;
        let mut countdown = lock_ignoring_poison(&self.0.countdown);
        match *countdown {
            Some(0) => {
                *countdown = None;
                drop(countdown);
                self.0.cut_locked(&mut state).map_err(errno)?;
                Err(Errno::EIO)
            }
            Some(left) => {
                *countdown = Some(left - 1);
                drop(countdown);
                Ok(state)
            }
            None => {
                drop(countdown);
                Ok(state)
            }
        }
    }

    fn open_flags(&self) -> FopenFlags {
        match self.0.options.memory_maps {
            MemoryMaps::Shared => FopenFlags::empty(),
            MemoryMaps::Refused => FopenFlags::FOPEN_DIRECT_IO,
        }
    }

    /// An unlink or rmdir: live at once, durable at the directory's next fsync.
    fn remove_entry(
        &self,
        parent: INodeNo,
        name: &OsStr,
        remove: fn(&Path) -> io::Result<()>,
    ) -> Result<(), Errno> {
        let mut state = self.mutating()?;
        let path = state.backing.join(state.relative_child(parent.0, name)?);
        state.forget_if_last_name(&path);
        remove(&path).map_err(errno)?;
        state.durable.record_directory_change(parent.0);
        Ok(())
    }

    fn entry_of(&self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, Errno> {
        let mut state = self.live()?;
        let relative = state.relative_child(parent.0, name)?;
        let metadata = fs::symlink_metadata(state.backing.join(&relative)).map_err(errno)?;
        Ok(state.attr(&relative, &metadata))
    }
}

macro_rules! answer {
    ($reply:expr, $result:expr, |$value:ident| $ok:expr) => {
        match $result {
            Ok($value) => $ok,
            Err(error) => {
                if std::env::var_os("STORE_LOSSYFS_TRACE").is_some() {
                    eprintln!("lossyfs: {}:{} -> {error:?}", file!(), line!());
                }
                $reply.error(error)
            }
        }
    };
}

impl Filesystem for Server {
    fn init(&mut self, _request: &Request, config: &mut KernelConfig) -> io::Result<()> {
        if self.0.options.locks != Locks::Local {
            // Ask the kernel to send POSIX locks here instead of keeping them itself.
            let _ = config.add_capabilities(InitFlags::FUSE_POSIX_LOCKS);
        }
        Ok(())
    }

    fn lookup(&self, _request: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        answer!(reply, self.entry_of(parent, name), |attr| reply.entry(
            &TTL,
            &attr,
            Generation(0)
        ));
    }

    fn getattr(&self, _request: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let result = (|| {
            let state = self.live()?;
            let metadata = match fh.and_then(|fh| state.handles.get(&fh.0)) {
                Some(handle) => handle.file.metadata().map_err(errno)?,
                None => fs::symlink_metadata(state.full_path(ino.0)?).map_err(errno)?,
            };
            Ok(attr_of(ino.0, &metadata))
        })();
        answer!(reply, result, |attr| reply.attr(&TTL, &attr));
    }

    fn setattr(
        &self,
        _request: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = (|| {
            let mut state = self.mutating()?;
            let path = state.full_path(ino.0)?;
            if let Some(size) = size {
                let file = match fh.and_then(|fh| state.handles.get(&fh.0)) {
                    Some(handle) => handle.file.try_clone().map_err(errno)?,
                    None => OpenOptions::new().write(true).open(&path).map_err(errno)?,
                };
                let old_size = file.metadata().map_err(errno)?.len();
                file.set_len(size).map_err(errno)?;
                state.durable.record_truncate(ino.0, old_size, size);
            }
            if let Some(mode) = mode {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(errno)?;
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::lchown(&path, uid, gid).map_err(errno)?;
            }
            if atime.is_some() || mtime.is_some() {
                let file = File::open(&path).map_err(errno)?;
                let resolve = |time: Option<TimeOrNow>| match time {
                    Some(TimeOrNow::SpecificTime(time)) => Some(time),
                    Some(TimeOrNow::Now) => Some(SystemTime::now()),
                    None => None,
                };
                let mut times = fs::FileTimes::new();
                if let Some(time) = resolve(atime) {
                    times = times.set_accessed(time);
                }
                if let Some(time) = resolve(mtime) {
                    times = times.set_modified(time);
                }
                file.set_times(times).map_err(errno)?;
            }
            let metadata = fs::symlink_metadata(&path).map_err(errno)?;
            Ok(attr_of(ino.0, &metadata))
        })();
        answer!(reply, result, |attr| reply.attr(&TTL, &attr));
    }

    fn mkdir(
        &self,
        _request: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let result = (|| {
            let mut state = self.mutating()?;
            let relative = state.relative_child(parent.0, name)?;
            let path = state.backing.join(&relative);
            fs::create_dir(&path).map_err(errno)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & !umask & 0o7777))
                .map_err(errno)?;
            state.durable.record_directory_change(parent.0);
            let metadata = fs::symlink_metadata(&path).map_err(errno)?;
            Ok(state.attr(&relative, &metadata))
        })();
        answer!(reply, result, |attr| reply.entry(
            &TTL,
            &attr,
            Generation(0)
        ));
    }

    fn unlink(&self, _request: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        answer!(
            reply,
            self.remove_entry(parent, name, |path| fs::remove_file(path)),
            |_done| reply.ok()
        );
    }

    fn rmdir(&self, _request: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        answer!(
            reply,
            self.remove_entry(parent, name, |path| fs::remove_dir(path)),
            |_done| reply.ok()
        );
    }

    fn rename(
        &self,
        _request: &Request,
        parent: INodeNo,
        name: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let result = (|| {
            let mut state = self.mutating()?;
            let from_relative = state.relative_child(parent.0, name)?;
            let to_relative = state.relative_child(new_parent.0, new_name)?;
            let from = c_path(&state.backing.join(&from_relative))?;
            let to_path = state.backing.join(&to_relative);
            let to = c_path(&to_path)?;
            if !flags.contains(RenameFlags::RENAME_EXCHANGE) {
                state.forget_if_last_name(&to_path);
            }
            // SAFETY: both paths are NUL-terminated strings that outlive the call.
            let status = unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    from.as_ptr(),
                    libc::AT_FDCWD,
                    to.as_ptr(),
                    flags.bits(),
                )
            };
            if status != 0 {
                return Err(errno(io::Error::last_os_error()));
            }
            // Every node under the old name now lives under the new one.
            for node in state.nodes.values_mut() {
                if let Ok(rest) = node.path.strip_prefix(&from_relative) {
                    node.path = to_relative.join(rest);
                }
            }
            state.durable.record_directory_change(parent.0);
            state.durable.record_directory_change(new_parent.0);
            Ok(())
        })();
        answer!(reply, result, |_done| reply.ok());
    }

    fn link(
        &self,
        _request: &Request,
        ino: INodeNo,
        new_parent: INodeNo,
        new_name: &OsStr,
        reply: ReplyEntry,
    ) {
        let result = (|| {
            let mut state = self.mutating()?;
            let from = state.full_path(ino.0)?;
            let to_relative = state.relative_child(new_parent.0, new_name)?;
            fs::hard_link(&from, state.backing.join(&to_relative)).map_err(errno)?;
            state.durable.record_directory_change(new_parent.0);
            let metadata = fs::symlink_metadata(&from).map_err(errno)?;
            Ok(attr_of(ino.0, &metadata))
        })();
        answer!(reply, result, |attr| reply.entry(
            &TTL,
            &attr,
            Generation(0)
        ));
    }

    fn open(&self, _request: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let result = (|| {
            let mut state = self.live()?;
            let path = state.full_path(ino.0)?;
            let file = open_backing(&path, flags.0).map_err(errno)?;
            Ok(state.add_handle(ino.0, file, flags.0))
        })();
        answer!(reply, result, |handle| reply
            .opened(FileHandle(handle), self.open_flags()));
    }

    fn create(
        &self,
        _request: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let result = (|| {
            let mut state = self.mutating()?;
            let relative = state.relative_child(parent.0, name)?;
            let path = state.backing.join(&relative);
            let mut options = OpenOptions::new();
            options.read(true).write(true).mode(mode & !umask & 0o7777);
            if flags & libc::O_EXCL != 0 {
                options.create_new(true);
            } else {
                options.create(true);
            }
            let file = options
                .custom_flags(backing_flags(flags) | libc::O_NOFOLLOW)
                .open(&path)
                .map_err(errno)?;
            let metadata = file.metadata().map_err(errno)?;
            let attr = state.attr(&relative, &metadata);
            state.durable.record_directory_change(parent.0);
            let handle = state.add_handle(attr.ino.0, file, flags);
            Ok((attr, handle))
        })();
        answer!(reply, result, |created| reply.created(
            &TTL,
            &created.0,
            Generation(0),
            FileHandle(created.1),
            self.open_flags()
        ));
    }

    fn read(
        &self,
        _request: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let result = (|| {
            let state = self.live()?;
            let handle = state.handle(fh)?;
            let mut buffer = vec![0u8; size as usize];
            let mut filled = 0;
            while filled < buffer.len() {
                match handle
                    .file
                    .read_at(&mut buffer[filled..], offset + filled as u64)
                {
                    Ok(0) => break,
                    Ok(read) => filled += read,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => return Err(errno(error)),
                }
            }
            buffer.truncate(filled);
            Ok(buffer)
        })();
        answer!(reply, result, |data| reply.data(&data));
    }

    fn write(
        &self,
        _request: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let result = (|| {
            let mut state = self.mutating()?;
            let handle = state.handle(fh)?;
            handle.file.write_all_at(data, offset).map_err(errno)?;
            let (ino, sync_each_write) = (handle.ino, handle.sync_each_write);
            state.durable.record_write(ino, offset, data.len() as u64);
            if sync_each_write {
                let file = state.handle(fh)?.file.try_clone().map_err(errno)?;
                state.durable.sync_file(ino, &file).map_err(errno)?;
            }
            Ok(data.len() as u32)
        })();
        answer!(reply, result, |written| reply.written(written));
    }

    fn flush(
        &self,
        _request: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) makes nothing durable.
        answer!(reply, self.live().map(drop), |_done| reply.ok());
    }

    fn release(
        &self,
        _request: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.0.lock().handles.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _request: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let result = (|| {
            let mut state = self.mutating()?;
            let file = state.handle(fh)?.file.try_clone().map_err(errno)?;
            state.durable.sync_file(ino.0, &file).map_err(errno)?;
            state.fsyncs += 1;
            if self.0.options.names == Names::WithFileFsync {
                state.sync_own_entry(ino.0);
            }
            Ok(())
        })();
        answer!(reply, result, |_done| reply.ok());
    }

    fn opendir(&self, _request: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        answer!(reply, self.live().map(drop), |_done| reply
            .opened(FileHandle(0), FopenFlags::empty()));
    }

    fn readdir(
        &self,
        _request: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let result = (|| {
            let mut state = self.live()?;
            let entries = state.live_entries(ino.0).map_err(errno)?;
            let mut listing = vec![
                (ino.0, FileType::Directory, OsStr::new(".").to_owned()),
                (ino.0, FileType::Directory, OsStr::new("..").to_owned()),
            ];
            listing.extend(entries.into_iter().map(|(name, (child, kind))| {
                let kind = match kind {
                    Kind::Directory => FileType::Directory,
                    Kind::File => FileType::RegularFile,
                };
                (child, kind, name)
            }));
            Ok(listing)
        })();
        match result {
            Ok(listing) => {
                for (index, (child, kind, name)) in
                    listing.into_iter().enumerate().skip(offset as usize)
                {
                    if reply.add(INodeNo(child), index as u64 + 1, kind, &name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(error) => reply.error(error),
        }
    }

    fn fsyncdir(
        &self,
        _request: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let result = (|| {
            let mut state = self.mutating()?;
            let entries = state.live_entries(ino.0).map_err(errno)?;
            let mode = fs::metadata(state.full_path(ino.0)?)
                .map_err(errno)?
                .permissions()
                .mode();
            state.durable.sync_directory(ino.0, entries, mode);
            state.directory_fsyncs += 1;
            Ok(())
        })();
        answer!(reply, result, |_done| reply.ok());
    }

    fn statfs(&self, _request: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let result = (|| {
            let state = self.live()?;
            let path = c_path(&state.backing)?;
            // SAFETY: statvfs fills the zeroed struct from a NUL-terminated path.
            let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
            if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
                return Err(errno(io::Error::last_os_error()));
            }
            Ok(stats)
        })();
        answer!(reply, result, |stats| reply.statfs(
            stats.f_blocks,
            stats.f_bfree,
            stats.f_bavail,
            stats.f_files,
            stats.f_ffree,
            stats.f_bsize as u32,
            stats.f_namemax as u32,
            stats.f_frsize as u32
        ));
    }

    fn access(
        &self,
        _request: &Request,
        _ino: INodeNo,
        _mask: fuser::AccessFlags,
        reply: ReplyEmpty,
    ) {
        answer!(reply, self.live().map(drop), |_done| reply.ok());
    }

    fn getlk(
        &self,
        _request: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        reply: ReplyLock,
    ) {
        match self.0.options.locks {
            Locks::Refused => reply.error(Errno::ENOLCK),
            // Nobody ever holds a lock here.
            _ => reply.locked(0, 0, libc::F_UNLCK, 0),
        }
    }

    fn setlk(
        &self,
        _request: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        _start: u64,
        _end: u64,
        _typ: i32,
        _pid: u32,
        _sleep: bool,
        reply: ReplyEmpty,
    ) {
        match self.0.options.locks {
            Locks::Refused => reply.error(Errno::ENOLCK),
            // Granted, and never enforced: every caller gets every lock.
            _ => reply.ok(),
        }
    }
}
