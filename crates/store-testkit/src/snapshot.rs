//! Snapshots of a directory's files (names, kinds, sizes, permissions, content hashes) and their
//! differences, so that a test can say "nothing but X changed", and a judge of files a recovery
//! says it moved aside ([`DirectorySnapshot::check_moved_aside`]): recovery promises to move, never
//! to delete or rewrite.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use store_core::MovedAside;

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
    /// The directory it was taken of.
    pub directory: PathBuf,
    /// Entry name to its state.
    pub entries: BTreeMap<String, EntryState>,
}

/// What is wrong with one file a report says it moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveAsideProblem {
    /// The old or the new path is not in the snapshotted directory, so neither can be judged.
    OutsideDirectory {
        /// The path outside it.
        path: PathBuf,
    },
    /// No file stood at the old path before: the report names a move that cannot have happened.
    NothingBefore {
        /// The old name.
        from: String,
    },
    /// The new path was taken before the move: a move onto it would have replaced a file.
    TargetTakenBefore {
        /// The new name.
        to: String,
    },
    /// Nothing is at the new path: the file was deleted, or never moved.
    Missing {
        /// The new name.
        to: String,
    },
    /// Something is at the new path, but not the bytes that stood at the old one (truncated,
    /// rewritten, or another file).
    Altered {
        /// The new name.
        to: String,
        /// Size at the old path before, in bytes.
        before_bytes: u64,
        /// Size at the new path after, in bytes.
        after_bytes: u64,
    },
    /// The moved file's permissions allow more than the original's did.
    Wider {
        /// The new name.
        to: String,
        /// Permission bits at the old path before.
        mode_before: u32,
        /// Permission bits at the new path after.
        mode_after: u32,
    },
}

impl fmt::Display for MoveAsideProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MoveAsideProblem::OutsideDirectory { path } => {
                write!(formatter, "{} is outside the directory", path.display())
            }
            MoveAsideProblem::NothingBefore { from } => {
                write!(formatter, "nothing stood at {from} before the move")
            }
            MoveAsideProblem::TargetTakenBefore { to } => {
                write!(formatter, "{to} existed before the move")
            }
            MoveAsideProblem::Missing { to } => write!(formatter, "{to} is missing"),
            MoveAsideProblem::Altered {
                to,
                before_bytes,
                after_bytes,
            } => write!(
                formatter,
                "{to} differs from the original ({before_bytes} bytes before, {after_bytes} after)"
            ),
            MoveAsideProblem::Wider {
                to,
                mode_before,
                mode_after,
            } => write!(
                formatter,
                "{to} has permissions {mode_after:o}, wider than the original's {mode_before:o}"
            ),
        }
    }
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
        Ok(DirectorySnapshot {
            directory: directory.to_owned(),
            entries,
        })
    }

    /// Judges the files a report says were moved aside, `self` being the directory before the
    /// open and `after` the same directory after it: each must stand at its new path with exactly
    /// the bytes (size and content hash) that stood at its old path before, with permissions no
    /// wider, onto a name that was free. A recovery that deleted, truncated or rewrote what it
    /// claims to have moved fails here; one that says it moved nothing is the caller's to judge.
    ///
    /// ```
    /// use store_core::MovedAside;
    /// use store_testkit::DirectorySnapshot;
    ///
    /// let directory = tempfile::tempdir()?;
    /// let (from, to) = (directory.path().join("db.wal"), directory.path().join("db.broken.wal"));
    /// std::fs::write(&from, b"entries")?;
    /// let before = DirectorySnapshot::take(directory.path())?;
    /// std::fs::rename(&from, &to)?;
    /// let moved = [MovedAside { from, to: to.clone() }];
    /// assert!(before.check_moved_aside(&DirectorySnapshot::take(directory.path())?, &moved).is_empty());
    /// std::fs::write(&to, b"")?; // truncated instead of moved
    /// assert_eq!(before.check_moved_aside(&DirectorySnapshot::take(directory.path())?, &moved).len(), 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn check_moved_aside(
        &self,
        after: &DirectorySnapshot,
        moved: &[MovedAside],
    ) -> Vec<MoveAsideProblem> {
        let mut problems = Vec::new();
        for file in moved {
            let (Some(from), Some(to)) = (self.name_of(&file.from), after.name_of(&file.to)) else {
                let outside = if self.name_of(&file.from).is_none() {
                    &file.from
                } else {
                    &file.to
                };
                problems.push(MoveAsideProblem::OutsideDirectory {
                    path: outside.clone(),
                });
                continue;
            };
            let Some(original) = self.entries.get(&from) else {
                problems.push(MoveAsideProblem::NothingBefore { from });
                continue;
            };
            if self.entries.contains_key(&to) {
                problems.push(MoveAsideProblem::TargetTakenBefore { to: to.clone() });
            }
            let Some(now) = after.entries.get(&to) else {
                problems.push(MoveAsideProblem::Missing { to });
                continue;
            };
            if now.kind != original.kind
                || now.bytes != original.bytes
                || now.content_hash != original.content_hash
            {
                problems.push(MoveAsideProblem::Altered {
                    to: to.clone(),
                    before_bytes: original.bytes,
                    after_bytes: now.bytes,
                });
            }
            if now.mode & !original.mode != 0 {
                problems.push(MoveAsideProblem::Wider {
                    to,
                    mode_before: original.mode,
                    mode_after: now.mode,
                });
            }
        }
        problems
    }

    /// The entry name of `path` if it lies directly in this snapshot's directory.
    fn name_of(&self, path: &Path) -> Option<String> {
        let parent = path.parent()?;
        let same = parent == self.directory
            || (parent.canonicalize().ok()).is_some_and(|parent| {
                self.directory
                    .canonicalize()
                    .is_ok_and(|directory| directory == parent)
            });
        same.then(|| path.file_name())
            .flatten()
            .map(|name| name.to_string_lossy().into_owned())
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

    /// A directory with one moved-aside WAL, as recovery leaves it, and its report's entry.
    fn moved_wal(directory: &Path) -> io::Result<(DirectorySnapshot, MovedAside)> {
        use std::os::unix::fs::PermissionsExt;
        let from = directory.join("db.wal");
        let to = directory.join("db.discarded-wal.20260101T000000Z.wal");
        std::fs::write(&from, b"entries the open could not replay")?;
        std::fs::set_permissions(&from, std::fs::Permissions::from_mode(0o640))?;
        let before = DirectorySnapshot::take(directory)?;
        std::fs::rename(&from, &to)?;
        Ok((before, MovedAside { from, to }))
    }

    #[test]
    fn a_file_moved_whole_passes() -> io::Result<()> {
        let directory = tempfile::tempdir()?;
        let (before, moved) = moved_wal(directory.path())?;
        // The old path may be taken again (salvage puts the good prefix there).
        std::fs::write(&moved.from, b"prefix")?;
        let after = DirectorySnapshot::take(directory.path())?;
        assert_eq!(before.check_moved_aside(&after, &[moved]), []);
        Ok(())
    }

    #[test]
    fn a_moved_file_deleted_truncated_or_opened_up_fails() -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let directory = tempfile::tempdir()?;
        let (before, moved) = moved_wal(directory.path())?;
        let to = "db.discarded-wal.20260101T000000Z.wal".to_owned();

        std::fs::OpenOptions::new()
            .write(true)
            .open(&moved.to)?
            .set_len(7)?;
        let after = DirectorySnapshot::take(directory.path())?;
        assert_eq!(
            before.check_moved_aside(&after, std::slice::from_ref(&moved)),
            [MoveAsideProblem::Altered {
                to: to.clone(),
                before_bytes: 33,
                after_bytes: 7
            }]
        );

        // Same size, other bytes.
        std::fs::write(&moved.to, b"ENTRIES the open could not replay")?;
        let after = DirectorySnapshot::take(directory.path())?;
        assert!(matches!(
            before.check_moved_aside(&after, std::slice::from_ref(&moved))[..],
            [MoveAsideProblem::Altered { .. }]
        ));

        std::fs::write(&moved.to, b"entries the open could not replay")?;
        std::fs::set_permissions(&moved.to, std::fs::Permissions::from_mode(0o644))?;
        let after = DirectorySnapshot::take(directory.path())?;
        assert_eq!(
            before.check_moved_aside(&after, std::slice::from_ref(&moved)),
            [MoveAsideProblem::Wider {
                to: to.clone(),
                mode_before: 0o640,
                mode_after: 0o644
            }]
        );
        // Narrower is fine.
        std::fs::set_permissions(&moved.to, std::fs::Permissions::from_mode(0o600))?;
        let after = DirectorySnapshot::take(directory.path())?;
        assert_eq!(
            before.check_moved_aside(&after, std::slice::from_ref(&moved)),
            []
        );

        std::fs::remove_file(&moved.to)?;
        let after = DirectorySnapshot::take(directory.path())?;
        assert_eq!(
            before.check_moved_aside(&after, std::slice::from_ref(&moved)),
            [MoveAsideProblem::Missing { to }]
        );
        Ok(())
    }

    #[test]
    fn a_move_the_directory_cannot_vouch_for_fails() -> io::Result<()> {
        let directory = tempfile::tempdir()?;
        let (before, moved) = moved_wal(directory.path())?;
        let after = DirectorySnapshot::take(directory.path())?;
        let invented = MovedAside {
            from: directory.path().join("never-there"),
            to: moved.to.clone(),
        };
        assert_eq!(
            before.check_moved_aside(&after, &[invented]),
            [MoveAsideProblem::NothingBefore {
                from: "never-there".into()
            }]
        );
        let elsewhere = MovedAside {
            from: moved.from.clone(),
            to: std::env::temp_dir().join("somewhere-else.wal"),
        };
        assert!(matches!(
            before.check_moved_aside(&after, &[elsewhere])[..],
            [MoveAsideProblem::OutsideDirectory { .. }]
        ));
        // Onto a name that was taken: a move there would have replaced a file.
        let onto_taken = MovedAside {
            from: moved.from.clone(),
            to: moved.from.clone(),
        };
        let problems = before.check_moved_aside(&before, &[onto_taken]);
        assert!(
            problems.contains(&MoveAsideProblem::TargetTakenBefore {
                to: "db.wal".into()
            }),
            "{problems:?}"
        );
        Ok(())
    }
}
