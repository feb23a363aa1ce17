//! Snapshots of a directory's files (names, kinds, sizes, permissions, content hashes) and their
//! differences, so that a test can say "nothing but X changed".

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::Path;

/// The state of one directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryState {
    /// `file`, `directory`, `symlink` or `other`.
    pub kind: &'static str,
    /// Size in bytes (of the link itself for a symlink).
    pub bytes: u64,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// FNV-1a 64 of a regular file's content; 0 for anything else.
    pub content_hash: u64,
}

/// The entries of a directory (not recursive), by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectorySnapshot {
    /// Entry name to its state.
    pub entries: BTreeMap<String, EntryState>,
}

/// One difference between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The entry appeared.
    Added(String),
    /// The entry disappeared.
    Removed(String),
    /// The entry's size, permissions, kind or content changed.
    Modified(String),
}

impl fmt::Display for Change {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Added(name) => write!(formatter, "+ {name}"),
            Change::Removed(name) => write!(formatter, "- {name}"),
            Change::Modified(name) => write!(formatter, "~ {name}"),
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl DirectorySnapshot {
    /// Reads every entry of `directory`.
    pub fn take(directory: &Path) -> io::Result<DirectorySnapshot> {
        use std::os::unix::fs::PermissionsExt;
        let mut entries = BTreeMap::new();
        for entry in std::fs::read_dir(directory)? {
            let entry = entry?;
            let metadata = entry.path().symlink_metadata()?;
            let kind = if metadata.is_file() {
                "file"
            } else if metadata.is_dir() {
                "directory"
            } else if metadata.file_type().is_symlink() {
                "symlink"
            } else {
                "other"
            };
            let content_hash = if metadata.is_file() {
                fnv1a(&std::fs::read(entry.path())?)
            } else {
                0
            };
            entries.insert(
                entry.file_name().to_string_lossy().into_owned(),
                EntryState {
                    kind,
                    bytes: metadata.len(),
                    mode: metadata.permissions().mode() & 0o7777,
                    content_hash,
                },
            );
        }
        Ok(DirectorySnapshot { entries })
    }

    /// What changed from `self` to `later`, by name.
    pub fn diff(&self, later: &DirectorySnapshot) -> Vec<Change> {
        let mut changes = Vec::new();
        for (name, state) in &self.entries {
            match later.entries.get(name) {
                None => changes.push(Change::Removed(name.clone())),
                Some(now) if now != state => changes.push(Change::Modified(name.clone())),
                Some(_) => {}
            }
        }
        for name in later.entries.keys() {
            if !self.entries.contains_key(name) {
                changes.push(Change::Added(name.clone()));
            }
        }
        changes
    }
}

/// Runs `body` and panics, naming what changed, if anything in `directory` changed meanwhile:
/// "nothing but X changed" as an assertion.
pub fn assert_unchanged<R>(directory: &Path, body: impl FnOnce() -> R) -> R {
    let before = DirectorySnapshot::take(directory).expect("directory readable before");
    let result = body();
    let after = DirectorySnapshot::take(directory).expect("directory readable after");
    let changes = before.diff(&after);
    assert!(
        changes.is_empty(),
        "{} changed: {}",
        directory.display(),
        changes
            .iter()
            .map(Change::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_what_was_added_removed_and_modified() -> io::Result<()> {
        let directory = tempfile::tempdir()?;
        std::fs::write(directory.path().join("kept"), b"same")?;
        std::fs::write(directory.path().join("changed"), b"before")?;
        std::fs::write(directory.path().join("removed"), b"x")?;
        let before = DirectorySnapshot::take(directory.path())?;
        assert!(
            before
                .diff(&DirectorySnapshot::take(directory.path())?)
                .is_empty()
        );

        std::fs::write(directory.path().join("changed"), b"after!")?;
        std::fs::remove_file(directory.path().join("removed"))?;
        std::fs::write(directory.path().join("added"), b"y")?;
        let after = DirectorySnapshot::take(directory.path())?;
        assert_eq!(
            before.diff(&after),
            [
                Change::Modified("changed".into()),
                Change::Removed("removed".into()),
                Change::Added("added".into())
            ]
        );
        Ok(())
    }
}
