//! What a power cut leaves: the durable state of every inode and directory the filesystem has
//! seen, kept apart from the live files until an fsync moves a piece of the live state into it.
//!
//! The model (POSIX, as the filesystem's docs state it): a file's bytes, size and mode become
//! durable on its `fsync`/`fdatasync` (or with each write on a file opened `O_SYNC`/`O_DSYNC`);
//! a directory's entries (creations, renames, unlinks in it) become durable on the directory's
//! `fsync`. Everything else is pending and a power cut drops it, except the pending pages that a
//! [`Tearing`] mode chooses to keep.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::Tearing;

/// The page size pending writes are torn at.
pub(crate) const PAGE_BYTES: u64 = 4096;

/// What an inode is, as far as a directory entry needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Directory,
}

/// A directory entry as it stands: the inode it names and its kind.
pub(crate) type Entries = BTreeMap<OsString, (u64, Kind)>;

/// A byte range written since the inode's last fsync, in the order it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    offset: u64,
    length: u64,
}

/// What a power cut dropped and kept, for the caller's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CutCounts {
    /// Bytes written but never fsynced when the power went: what the cut could lose.
    pub pending_bytes: u64,
    /// Bytes written but never fsynced, and lost.
    pub pending_bytes_dropped: u64,
    /// Pages of those that a torn write kept anyway.
    pub torn_pages_kept: u64,
    /// Directories whose entries had changed since their last fsync.
    pub directories_reverted: u64,
}

#[derive(Debug)]
pub(crate) struct Durable {
    /// `objects/<ino>`: a file's durable bytes. Absent: the inode has no durable bytes (empty).
    objects: PathBuf,
    /// A file's durable mode bits.
    file_modes: HashMap<u64, u32>,
    /// A directory's durable entries and mode.
    directories: HashMap<u64, (Entries, u32)>,
    /// Writes and truncations since each inode's last fsync.
    pending: HashMap<u64, Vec<Pending>>,
    /// Directories changed since their last fsync.
    dirty_directories: std::collections::HashSet<u64>,
}

impl Durable {
    pub(crate) fn new(objects: PathBuf) -> Durable {
        Durable {
            objects,
            file_modes: HashMap::new(),
            directories: HashMap::new(),
            pending: HashMap::new(),
            dirty_directories: Default::default(),
        }
    }

    fn object(&self, ino: u64) -> PathBuf {
        self.objects.join(ino.to_string())
    }

    /// A file that was already on disk when the filesystem was mounted: durable as it is.
    pub(crate) fn adopt_file(&mut self, ino: u64, live: &Path) -> io::Result<()> {
        fs::copy(live, self.object(ino))?;
        let mode = fs::metadata(live)?.permissions().mode();
        self.file_modes.insert(ino, mode);
        Ok(())
    }

    /// A directory that was already on disk when mounted, with its entries then.
    pub(crate) fn adopt_directory(&mut self, ino: u64, entries: Entries, mode: u32) {
        self.directories.insert(ino, (entries, mode));
    }

    pub(crate) fn record_write(&mut self, ino: u64, offset: u64, length: u64) {
        if length > 0 {
            self.pending
                .entry(ino)
                .or_default()
                .push(Pending { offset, length });
        }
    }

    /// A truncation from `old_size` to `new_size`: a shrink makes the cut-off bytes pending (an
    /// fsync re-reads them, zeros if the file grew again since).
    pub(crate) fn record_truncate(&mut self, ino: u64, old_size: u64, new_size: u64) {
        let (low, high) = (old_size.min(new_size), old_size.max(new_size));
        self.record_write(ino, low, high - low);
        self.pending.entry(ino).or_default();
    }

    pub(crate) fn record_directory_change(&mut self, ino: u64) {
        self.dirty_directories.insert(ino);
    }

    /// `fsync` of a file: its live bytes, size and mode become durable.
    pub(crate) fn sync_file(&mut self, ino: u64, live: &File) -> io::Result<()> {
        let live = &readable(live)?;
        let metadata = live.metadata()?;
        let size = metadata.len();
        let object = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.object(ino))?;
        object.set_len(size)?;
        let pending = self.pending.remove(&ino).unwrap_or_default();
        // A file first synced without its writes being seen (adopted later): copy it all.
        let ranges = if self.file_modes.contains_key(&ino) {
            pending
        } else {
            vec![Pending {
                offset: 0,
                length: size,
            }]
        };
        for range in ranges {
            copy_range(live, &object, range.offset, range.length, size)?;
        }
        self.file_modes
            .insert(ino, metadata.permissions().mode() & 0o7777);
        Ok(())
    }

    /// `fsync` of a directory: its live entries become durable.
    pub(crate) fn sync_directory(&mut self, ino: u64, entries: Entries, mode: u32) {
        self.directories.insert(ino, (entries, mode & 0o7777));
        self.dirty_directories.remove(&ino);
    }

    /// A file's fsync on a filesystem that commits the entry naming the file with it (ext4, XFS
    /// and btrfs do): that one entry becomes durable, the rest of the directory does not.
    pub(crate) fn sync_entry(&mut self, directory: u64, name: OsString, ino: u64) {
        if let Some((entries, _)) = self.directories.get_mut(&directory) {
            entries.insert(name, (ino, Kind::File));
        }
    }

    /// The power cut itself: pending pages are dropped, or some kept as `tearing` chooses (read
    /// from the live file through `live`), and the pending state forgotten.
    pub(crate) fn cut(
        &mut self,
        tearing: &mut Tearing,
        live: &mut dyn FnMut(u64) -> Option<File>,
    ) -> io::Result<CutCounts> {
        let mut counts = CutCounts {
            directories_reverted: self.dirty_directories.len() as u64,
            ..CutCounts::default()
        };
        let mut inodes: Vec<u64> = self.pending.keys().copied().collect();
        inodes.sort_unstable();
        for ino in inodes {
            let pending = self.pending.remove(&ino).unwrap_or_default();
            let pages: Vec<(u64, u64)> = pending
                .iter()
                .flat_map(|range| pages_of(range.offset, range.length))
                .collect();
            let pending_bytes = pending.iter().map(|range| range.length).sum::<u64>();
            counts.pending_bytes += pending_bytes;
            counts.pending_bytes_dropped += pending_bytes;
            let keep = tearing.choose(pages.len());
            if keep.iter().all(|kept| !kept) {
                continue;
            }
            let Some(source) = live(ino) else { continue };
            let source = readable(&source)?;
            let live_size = source.metadata()?.len();
            let object = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(self.object(ino))?;
            for ((offset, length), kept) in pages.into_iter().zip(keep) {
                if kept {
                    copy_range(&source, &object, offset, length, live_size)?;
                    counts.torn_pages_kept += 1;
                    counts.pending_bytes_dropped =
                        counts.pending_bytes_dropped.saturating_sub(length);
                }
            }
        }
        self.dirty_directories.clear();
        Ok(counts)
    }

    /// Replaces everything under `root_path` with the durable tree under directory `root`.
    pub(crate) fn materialize(&self, root: u64, root_path: &Path) -> io::Result<()> {
        for entry in fs::read_dir(root_path)? {
            let path = entry?.path();
            if fs::symlink_metadata(&path)?.is_dir() {
                fs::remove_dir_all(&path)?;
            } else {
                fs::remove_file(&path)?;
            }
        }
        self.materialize_directory(root, root_path)
    }

    fn materialize_directory(&self, ino: u64, path: &Path) -> io::Result<()> {
        let Some((entries, _)) = self.directories.get(&ino) else {
            return Ok(());
        };
        for (name, (child, kind)) in entries {
            let child_path = path.join(name);
            match kind {
                Kind::Directory => {
                    fs::create_dir(&child_path)?;
                    self.materialize_directory(*child, &child_path)?;
                    let mode = self.directories.get(child).map_or(0o755, |(_, mode)| *mode);
                    fs::set_permissions(&child_path, fs::Permissions::from_mode(mode))?;
                }
                Kind::File => {
                    let object = self.object(*child);
                    if object.exists() {
                        fs::copy(&object, &child_path)?;
                    } else {
                        File::create(&child_path)?;
                    }
                    let mode = self.file_modes.get(child).copied().unwrap_or(0o644);
                    fs::set_permissions(&child_path, fs::Permissions::from_mode(mode))?;
                }
            }
        }
        Ok(())
    }
}

/// Copies `[offset, offset + length)` of `source`, clipped to `size`, to the same place in
/// `target`.
fn copy_range(source: &File, target: &File, offset: u64, length: u64, size: u64) -> io::Result<()> {
    let end = (offset + length).min(size);
    let mut position = offset;
    let mut buffer = vec![0u8; 64 * 1024];
    while position < end {
        let chunk = ((end - position) as usize).min(buffer.len());
        source.read_exact_at(&mut buffer[..chunk], position)?;
        target.write_all_at(&buffer[..chunk], position)?;
        position += chunk as u64;
    }
    Ok(())
}

/// A range cut into the pages it touches, each clipped to the range.
fn pages_of(offset: u64, length: u64) -> impl Iterator<Item = (u64, u64)> {
    let end = offset + length;
    let mut position = offset;
    std::iter::from_fn(move || {
        if position >= end {
            return None;
        }
        let page_end = ((position / PAGE_BYTES) + 1) * PAGE_BYTES;
        let piece = (position, page_end.min(end) - position);
        position = page_end.min(end);
        Some(piece)
    })
}

/// The same open file, readable: a client's descriptor may be write-only, and an unlinked file
/// has no path left to open.
fn readable(file: &File) -> io::Result<File> {
    use std::os::fd::AsRawFd as _;
    File::open(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// Opens a file for [`Durable::sync_file`] when the caller has only a path.
pub(crate) fn open_for_sync(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_cut_at_page_boundaries() {
        let pages: Vec<_> = pages_of(4000, 5000).collect();
        assert_eq!(pages, vec![(4000, 96), (4096, 4096), (8192, 808)]);
        assert_eq!(pages_of(0, 0).count(), 0);
    }
}
