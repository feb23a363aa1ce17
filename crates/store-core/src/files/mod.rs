//! Keeping files safe: atomic snapshots, setting files aside and replacing them so that a crash
//! never leaves a name empty or an original lost, sidecar listing, and the explicit retention that
//! is the only thing allowed to delete what was moved aside.
//!
//! ```no_run
//! use std::path::Path;
//! use store_core::files;
//!
//! let database = Path::new("/var/lib/app/system.duckdb");
//! // Before migrating: a durable copy beside the database, with the database's permissions.
//! files::snapshot_file(database, &files::sibling(database, ".pre-migrate"), files::Replace::Allowed)?;
//! // A WAL that cannot be replayed: out of the way, under a name that says when and why.
//! let moved = files::set_aside(
//!     database,
//!     "discarded-wal",
//!     &files::SetAside::all_emptied(&[".wal", ".wal.checkpoint"]),
//! )?;
//! for file in &moved {
//!     println!("{} -> {}", file.from.display(), file.to.display());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// One file per job; this one holds the names beside a database, which every other one uses:
// `place` (atomic placement and durable writes), `snapshot` (complete-or-absent copies),
// `aside` (setting files aside and replacing them), `retention` (finding what was set aside, and
// the explicit retention that alone deletes it). Each uses only this file and those listed
// before it.
mod aside;
mod place;
mod retention;
mod snapshot;

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) use aside::is_valid_reason;
pub use aside::{MoveAsideError, MovedAside, SetAside, set_aside};
pub use place::{
    Placed, WriteDurablyError, place_new_file, rename_no_replace, sync_directory, write_durably,
};
pub use retention::{MovedAsideFile, moved_aside_files, moved_aside_groups, prune_moved_aside};
pub use snapshot::{
    Replace, Snapshot, SnapshotCopy, SnapshotError, snapshot_file, snapshot_open_file,
};

/// `path` with `suffix` appended to its file name: `sibling("a.db", "-wal")` is `a.db-wal`.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    // Sized once: every open makes one per sidecar, and a copy grown to fit cost more than the
    // `statx` it names (callgrind).
    let mut name = OsString::with_capacity(path.as_os_str().len() + suffix.len());
    name.push(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// The files `database + suffix` that exist, in the order of `suffixes`.
pub fn existing_sidecars(database: &Path, suffixes: &[&str]) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for suffix in suffixes {
        let candidate = sibling(database, suffix);
        match fs::symlink_metadata(&candidate) {
            Ok(_) => found.push(candidate),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(found)
}

/// A sibling of `path` that no one else uses: `.<name>.<purpose>.<pid>.<counter>` in the same
/// directory (so that a rename from it is atomic). For temporary files and scratch directories.
pub fn private_sibling(path: &Path, purpose: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent_directory(path).join(format!(".{name}.{purpose}.{}.{unique}", std::process::id()))
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_directory(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn existing_sidecars_lists_only_present_files_in_order() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("a.db");
        fs::write(sibling(&database, "-shm"), b"")?;
        fs::write(sibling(&database, "-wal"), b"")?;
        let found = existing_sidecars(&database, &["-wal", "-journal", "-shm"])?;
        assert_eq!(
            found,
            [sibling(&database, "-wal"), sibling(&database, "-shm")]
        );
        Ok(())
    }
}
