//! What was set aside, found by its name, and the explicit retention that alone deletes it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::aside::is_valid_reason;
use super::{parent_directory, sibling};

/// A file that [`set_aside`] made, found by its name.
///
/// [`set_aside`]: super::set_aside
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedAsideFile {
    /// Where it is.
    pub path: PathBuf,
    /// Why it was moved (`broken`, `discarded-wal`).
    pub reason: String,
    /// The UTC stamp of the move, `YYYYMMDDTHHMMSSZ`.
    pub stamp: String,
    /// 0, or the `-N` that made the name free when the stamp was taken.
    pub counter: u32,
    /// What follows the stamp and counter: the suffix of the name it was moved from (`""` for
    /// the database file itself, `".wal"`).
    pub suffix: String,
}

impl MovedAsideFile {
    /// Where it stood before it was moved: `database + suffix`.
    pub fn moved_from(&self, database: &Path) -> PathBuf {
        sibling(database, &self.suffix)
    }
}

/// Every file [`set_aside`] made for `database`, whatever the reason, oldest first (by stamp,
/// then counter, then name).
///
/// ```no_run
/// use std::path::Path;
///
/// for file in store_core::files::moved_aside_files(Path::new("/var/lib/app/system.duckdb"))? {
///     println!("{} ({}, at {})", file.path.display(), file.reason, file.stamp);
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// [`set_aside`]: super::set_aside
pub fn moved_aside_files(database: &Path) -> io::Result<Vec<MovedAsideFile>> {
    let Some(name) = database.file_name() else {
        return Ok(Vec::new());
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut found = Vec::new();
    for entry in fs::read_dir(parent_directory(database))? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if let Some((reason, stamp, counter, suffix)) = file_name
            .strip_prefix(&prefix)
            .and_then(parse_moved_aside_name)
        {
            found.push(MovedAsideFile {
                path: entry.path(),
                reason: reason.to_owned(),
                stamp: stamp.to_owned(),
                counter,
                suffix: suffix.to_owned(),
            });
        }
    }
    found.sort_by(|a, b| (&a.stamp, a.counter, &a.path).cmp(&(&b.stamp, b.counter, &b.path)));
    Ok(found)
}

/// Splits what follows `<database name>.` in a moved-aside name, `<reason>.<16-char stamp>[-N]<suffix>`,
/// into the reason, the stamp, the counter and the suffix.
fn parse_moved_aside_name(rest: &str) -> Option<(&str, &str, u32, &str)> {
    let (reason, after_reason) = rest.split_once('.')?;
    if !is_valid_reason(reason) {
        return None;
    }
    let stamp = after_reason
        .get(..16)
        .filter(|stamp| stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T')?;
    let after_stamp = &after_reason[16..];
    let (counter, suffix) = match after_stamp.strip_prefix('-') {
        Some(tail) => {
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            match tail[..digits].parse() {
                Ok(counter) => (counter, &tail[digits..]),
                Err(_) => (0, after_stamp),
            }
        }
        None => (0, after_stamp),
    };
    Some((reason, stamp, counter, suffix))
}

/// The groups of files [`set_aside`] made for `database` and `reason`, oldest first; each group
/// is the files that share one stamp.
///
/// [`set_aside`]: super::set_aside
pub fn moved_aside_groups(database: &Path, reason: &str) -> io::Result<Vec<Vec<PathBuf>>> {
    let mut groups: std::collections::BTreeMap<(String, u32), Vec<PathBuf>> = Default::default();
    for file in moved_aside_files(database)? {
        if file.reason == reason {
            groups
                .entry((file.stamp, file.counter))
                .or_default()
                .push(file.path);
        }
    }
    Ok(groups.into_values().collect())
}

/// Deletes the oldest groups of files moved aside for `database` and `reason`, keeping the
/// `keep` newest: the explicit retention setting, the only code that deletes such files.
/// Returns the files deleted.
pub fn prune_moved_aside(database: &Path, reason: &str, keep: usize) -> io::Result<Vec<PathBuf>> {
    let groups = moved_aside_groups(database, reason)?;
    let excess = groups.len().saturating_sub(keep);
    let mut deleted = Vec::new();
    for group in groups.into_iter().take(excess) {
        for path in group {
            fs::remove_file(&path)?;
            tracing::info!(target: "store::recovery", path = %path.display(), "pruned by retention");
            deleted.push(path);
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn moved_aside_files_are_found_for_every_reason_oldest_first() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("a.db");
        for name in [
            "a.db.broken.20260102T000000Z-1.wal",
            "a.db.discarded-wal.20250101T000000Z.wal",
            "a.db.broken.20260102T000000Z",
            "a.db.Broken.20260102T000000Z",
            "a.db.broken.notastamp",
            "b.db.broken.20260102T000000Z",
            "a.db-wal",
        ] {
            fs::write(directory.path().join(name), name)?;
        }
        let found = moved_aside_files(&database)?;
        let seen: Vec<(String, &str, &str, u32)> = found
            .iter()
            .map(|file| {
                (
                    file.path
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                    file.reason.as_str(),
                    file.stamp.as_str(),
                    file.counter,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "a.db.discarded-wal.20250101T000000Z.wal".to_owned(),
                    "discarded-wal",
                    "20250101T000000Z",
                    0
                ),
                (
                    "a.db.broken.20260102T000000Z".to_owned(),
                    "broken",
                    "20260102T000000Z",
                    0
                ),
                (
                    "a.db.broken.20260102T000000Z-1.wal".to_owned(),
                    "broken",
                    "20260102T000000Z",
                    1
                ),
            ]
        );
        let suffixes: Vec<&str> = found.iter().map(|file| file.suffix.as_str()).collect();
        assert_eq!(suffixes, [".wal", "", ".wal"]);
        assert_eq!(
            found[2].moved_from(&database),
            directory.path().join("a.db.wal")
        );
        // SQLite's sidecars start with a dash, which is not a counter.
        assert_eq!(
            parse_moved_aside_name("broken.20260102T000000Z-wal"),
            Some(("broken", "20260102T000000Z", 0, "-wal"))
        );
        assert_eq!(
            parse_moved_aside_name("broken.20260102T000000Z-2-wal"),
            Some(("broken", "20260102T000000Z", 2, "-wal"))
        );
        Ok(())
    }

    #[test]
    fn retention_deletes_only_the_oldest_groups_of_its_reason() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("a.db");
        for name in [
            "a.db.broken.20260101T000000Z",
            "a.db.broken.20260101T000000Z.wal",
            "a.db.broken.20260102T000000Z",
            "a.db.broken.20260102T000000Z-1",
            "a.db.discarded-wal.20250101T000000Z.wal",
            "a.db.broken.notastamp",
        ] {
            fs::write(directory.path().join(name), name)?;
        }
        let groups = moved_aside_groups(&database, "broken")?;
        assert_eq!(groups.len(), 3);
        let deleted = prune_moved_aside(&database, "broken", 1)?;
        let mut deleted_names: Vec<_> = deleted
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        deleted_names.sort();
        assert_eq!(
            deleted_names,
            [
                "a.db.broken.20260101T000000Z",
                "a.db.broken.20260101T000000Z.wal",
                "a.db.broken.20260102T000000Z"
            ]
        );
        assert!(
            directory
                .path()
                .join("a.db.broken.20260102T000000Z-1")
                .exists()
        );
        assert!(
            directory
                .path()
                .join("a.db.discarded-wal.20250101T000000Z.wal")
                .exists()
        );
        assert!(directory.path().join("a.db.broken.notastamp").exists());
        Ok(())
    }
}
