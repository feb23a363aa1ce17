//! Setting files aside and putting replacements in their names, crash-safe at every step.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::place::{rename_no_replace, sync_directory};
use super::snapshot::{Replace, SnapshotError, copy_durably, io_error, snapshot_file};
use super::{parent_directory, private_sibling, sibling};
use crate::time::UtcTime;

/// A file [`set_aside`] moved out of the way: what stood at `from` is now at `to`, byte for byte
/// and with its permissions, and `from` holds its replacement or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedAside {
    /// Where it was.
    pub from: PathBuf,
    /// Where it is now.
    pub to: PathBuf,
}

/// One name [`set_aside`] clears, `database + suffix`, and what takes its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetAside<'a> {
    /// Appended to the database path: `""` is the database file itself, `".wal"` its WAL.
    pub suffix: &'a str,
    /// A complete file whose durable copy takes the name; `None` leaves the name empty.
    pub replacement: Option<&'a Path>,
}

impl<'a> SetAside<'a> {
    /// The file at `suffix` is set aside and its name left empty.
    pub fn emptied(suffix: &'a str) -> SetAside<'a> {
        SetAside {
            suffix,
            replacement: None,
        }
    }

    /// The file at `suffix` is set aside and a copy of `replacement` takes its name.
    pub fn replaced_by(suffix: &'a str, replacement: &'a Path) -> SetAside<'a> {
        SetAside {
            suffix,
            replacement: Some(replacement),
        }
    }

    /// Every file at `suffixes` set aside, every name left empty.
    pub fn all_emptied(suffixes: &[&'a str]) -> Vec<SetAside<'a>> {
        suffixes
            .iter()
            .map(|suffix| SetAside::emptied(suffix))
            .collect()
    }
}

/// Files could not be set aside or replaced. Unless [`MoveAsideError::already_moved`] lists
/// them, every original still stands at its name and no copy or temporary file of this call is
/// left behind (a copy that cannot be taken back is logged as a warning).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MoveAsideError {
    /// The reason is not a short lowercase word (`broken`, `discarded-wal`).
    #[error("invalid move-aside reason `{reason}` (expected lowercase letters, digits and dashes)")]
    InvalidReason {
        /// The reason given.
        reason: String,
    },
    /// The same suffix was given twice.
    #[error("suffix `{suffix}` given twice")]
    DuplicateSuffix {
        /// The suffix.
        suffix: String,
    },
    /// No free name was found (a thousand moves in one second).
    #[error("no free move-aside name for {} with reason `{reason}`", database.display())]
    NoFreeName {
        /// The database whose files were to move.
        database: PathBuf,
        /// The reason given.
        reason: String,
    },
    /// A file is not the size it must be: a set-aside copy not its original's, or a replaced
    /// name not its replacement's (something else wrote meanwhile).
    #[error("{} has {found_bytes} bytes, expected {expected_bytes}", path.display())]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// The size it must have.
        expected_bytes: u64,
        /// The size it has.
        found_bytes: u64,
        /// Files already replaced when this was found.
        already_moved: Vec<MovedAside>,
    },
    /// A copy (of an original, where hard links are refused, or of a replacement) failed.
    #[error("cannot copy {} to {}", from.display(), to.display())]
    Copy {
        /// What was copied.
        from: PathBuf,
        /// Where to.
        to: PathBuf,
        /// What failed.
        #[source]
        source: SnapshotError,
    },
    /// An operating-system call failed.
    #[error("cannot {operation} {}", path.display())]
    Io {
        /// What was being done (`read`, `link aside`, `sync`, `replace`, `empty`).
        operation: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// Files already replaced or emptied before the failure (they stay where this says).
        already_moved: Vec<MovedAside>,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

impl MoveAsideError {
    /// Files whose originals had left their names, each kept whole at its new name, when the
    /// failure came; the caller reports them.
    pub fn already_moved(&self) -> &[MovedAside] {
        match self {
            MoveAsideError::SizeMismatch { already_moved, .. }
            | MoveAsideError::Io { already_moved, .. } => already_moved,
            _ => &[],
        }
    }

    /// The failure class: from the operating system's error where there is one.
    pub fn class(&self) -> crate::FailureClass {
        match self {
            MoveAsideError::Io { source, .. } => crate::FailureClass::from_io_error(source),
            MoveAsideError::Copy { source, .. } => source.class(),
            _ => crate::FailureClass::Other,
        }
    }
}

/// What [`set_aside`] just did, for tests that check the state of the directory between steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// An original got its set-aside name (the original still stands).
    SetAside,
    /// The directory was fsynced.
    Synced,
    /// A replacement was written to a temporary sibling and fsynced.
    Prepared,
    /// A replacement took its name.
    Replaced,
    /// A name was left empty.
    Emptied,
}

/// How a set-aside copy was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Copied {
    /// A hard link: the same inode under a second name.
    Linked,
    /// A durable copy, where the filesystem refuses hard links.
    Duplicated,
}

/// One name of a [`set_aside`] call as it goes.
struct Member<'a> {
    from: PathBuf,
    suffix: &'a str,
    /// What stood at `from` before anything moved.
    original: Option<fs::Metadata>,
    replacement: Option<&'a Path>,
    /// The set-aside name and how the copy there was made.
    aside: Option<(PathBuf, Copied)>,
    /// The replacement's temporary sibling, complete and fsynced, and its size.
    prepared: Option<(PathBuf, u64)>,
    /// The original has left `from`.
    left: bool,
}

/// Sets files aside and puts their replacements in place so that a crash or power cut at any
/// instant leaves each name holding either its original or its complete replacement, and never
/// loses an original. For each of `files` whose `database + suffix` exists, the file gets the name
/// `database.<reason>.<UTC stamp><suffix>`, all with the same stamp; the empty suffix is the
/// database file itself. Never overwrites: when a name is taken the stamp gets `-1`, `-2`, ...
///
/// The order is what makes it crash-safe:
/// 1. each original is hard-linked to its set-aside name (a link fails instead of replacing; where
///    the filesystem refuses hard links, a durable copy is made instead), and the directory
///    fsynced: the set-aside copies are durable while every original still stands;
/// 2. each replacement is copied to a temporary sibling with the original's permissions (the
///    source's where there is no original) and fsynced; only now, so that the directory fsync of
///    step 1 never makes a temporary's name durable for a cut to leave behind;
/// 3. replacements are renamed over their names (atomic), in the order of `files`, and only then
///    are the names without a replacement emptied (restoring a database: a cut between leaves the
///    restored file beside a WAL DuckDB refuses as another database's, never the old database
///    without its WAL);
/// 4. the directory is fsynced.
///
/// Before step 3 any failure takes back the set-aside names it made (each a second name of a file
/// that still stands, or a redundant copy) and changes nothing. Returns what moved, in the order of
/// `files`.
pub fn set_aside(
    database: &Path,
    reason: &str,
    files: &[SetAside<'_>],
) -> Result<Vec<MovedAside>, MoveAsideError> {
    set_aside_observed(database, reason, files, &mut |_| {})
}

fn set_aside_observed(
    database: &Path,
    reason: &str,
    files: &[SetAside<'_>],
    observe: &mut dyn FnMut(Stage),
) -> Result<Vec<MovedAside>, MoveAsideError> {
    if !is_valid_reason(reason) {
        return Err(MoveAsideError::InvalidReason {
            reason: reason.to_owned(),
        });
    }
    for (index, file) in files.iter().enumerate() {
        if files[..index]
            .iter()
            .any(|earlier| earlier.suffix == file.suffix)
        {
            return Err(MoveAsideError::DuplicateSuffix {
                suffix: file.suffix.to_owned(),
            });
        }
    }
    let directory = parent_directory(database);
    let mut members = Vec::with_capacity(files.len());
    for file in files {
        let from = sibling(database, file.suffix);
        let original = match fs::symlink_metadata(&from) {
            Ok(metadata) => Some(metadata),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(MoveAsideError::Io {
                    operation: "read",
                    path: from,
                    already_moved: Vec::new(),
                    source,
                });
            }
        };
        members.push(Member {
            from,
            suffix: file.suffix,
            original,
            replacement: file.replacement,
            aside: None,
            prepared: None,
            left: false,
        });
    }

    // 1. Durable set-aside copies while every original still stands.
    let standing: Vec<&str> = members
        .iter()
        .filter(|member| member.original.is_some())
        .map(|member| member.suffix)
        .collect();
    if !standing.is_empty() {
        let stamp = free_stamp(database, reason, &standing)?;
        for index in 0..members.len() {
            if members[index].original.is_none() {
                continue;
            }
            let to = sibling(
                database,
                &format!(".{reason}.{stamp}{}", members[index].suffix),
            );
            match copy_aside(&members[index].from, &to) {
                Ok(copied) => {
                    // Tests pause on this event: the original has its second name, not yet durable.
                    tracing::info!(
                        target: "store::recovery",
                        from = %members[index].from.display(),
                        to = %to.display(),
                        "moved aside"
                    );
                    members[index].aside = Some((to, copied));
                    observe(Stage::SetAside);
                }
                Err(error) => return Err(undo(&directory, &members, error)),
            }
        }
        if let Err(source) = sync_directory(&directory) {
            let error = io_failure("sync", &directory, Vec::new(), source);
            return Err(undo(&directory, &members, error));
        }
        observe(Stage::Synced);
        // Read back: a copy shorter than its original must not stand in for it.
        for member in &members {
            if let (Some(original), Some((to, _))) = (&member.original, &member.aside) {
                let found_bytes = fs::symlink_metadata(to).map_or(0, |metadata| metadata.len());
                if found_bytes != original.len() {
                    let error = MoveAsideError::SizeMismatch {
                        path: to.clone(),
                        expected_bytes: original.len(),
                        found_bytes,
                        already_moved: Vec::new(),
                    };
                    return Err(undo(&directory, &members, error));
                }
            }
        }
    }

    // 2. Replacements complete and durable before any name changes.
    for index in 0..members.len() {
        let Some(source) = members[index].replacement else {
            continue;
        };
        let temporary = private_sibling(&members[index].from, "tmp");
        match prepare_replacement(source, &temporary, members[index].original.as_ref()) {
            Ok(bytes) => {
                members[index].prepared = Some((temporary, bytes));
                observe(Stage::Prepared);
            }
            Err(error) => {
                let _ = fs::remove_file(&temporary);
                return Err(undo(&directory, &members, error));
            }
        }
    }

    // 3. The point of no return: replacements first, then the names left empty.
    for index in 0..members.len() {
        let Some((temporary, _)) = &members[index].prepared else {
            continue;
        };
        let from = &members[index].from;
        // Where nothing stood, never replace what another process may have put there since.
        let placed = if members[index].original.is_some() {
            fs::rename(temporary, from)
        } else {
            rename_no_replace(temporary, from)
        };
        if let Err(source) = placed {
            let error = io_failure("replace", from, moved(&members), source);
            return Err(undo(&directory, &members, error));
        }
        tracing::debug!(target: "store::recovery", path = %from.display(), "replaced");
        members[index].left = true;
        observe(Stage::Replaced);
    }
    for index in 0..members.len() {
        if members[index].replacement.is_some() || members[index].aside.is_none() {
            continue;
        }
        if let Err(source) = fs::remove_file(&members[index].from) {
            let error = io_failure("empty", &members[index].from, moved(&members), source);
            return Err(undo(&directory, &members, error));
        }
        members[index].left = true;
        observe(Stage::Emptied);
    }

    // 4. The new names durable.
    if let Err(source) = sync_directory(&directory) {
        return Err(io_failure("sync", &directory, moved(&members), source));
    }
    observe(Stage::Synced);
    for member in &members {
        if let Some((_, expected_bytes)) = member.prepared {
            let found_bytes =
                fs::symlink_metadata(&member.from).map_or(0, |metadata| metadata.len());
            if found_bytes != expected_bytes {
                return Err(MoveAsideError::SizeMismatch {
                    path: member.from.clone(),
                    expected_bytes,
                    found_bytes,
                    already_moved: moved(&members),
                });
            }
        }
    }
    Ok(moved(&members))
}

/// The first stamp (`<now>`, then `<now>-1`, `<now>-2`, ...) under which every suffix's name is
/// free.
fn free_stamp(database: &Path, reason: &str, suffixes: &[&str]) -> Result<String, MoveAsideError> {
    let base_stamp = UtcTime::from_system_time(SystemTime::now()).compact();
    (0..1000)
        .map(|attempt| match attempt {
            0 => base_stamp.clone(),
            n => format!("{base_stamp}-{n}"),
        })
        .find(|stamp| {
            suffixes.iter().all(|suffix| {
                fs::symlink_metadata(sibling(database, &format!(".{reason}.{stamp}{suffix}")))
                    .is_err()
            })
        })
        .ok_or_else(|| MoveAsideError::NoFreeName {
            database: database.to_owned(),
            reason: reason.to_owned(),
        })
}

/// Gives the file at `from` a second name `to` without touching `from`: a hard link, which fails
/// rather than replace `to` and keeps the inode (so bytes and permissions); where the filesystem
/// refuses links, a durable copy that never replaces `to` either.
fn copy_aside(from: &Path, to: &Path) -> Result<Copied, MoveAsideError> {
    match fs::hard_link(from, to) {
        Ok(()) => Ok(Copied::Linked),
        Err(error) if links_refused(&error) => {
            tracing::debug!(
                target: "store::recovery",
                from = %from.display(),
                error = %error,
                "hard links refused; copying instead"
            );
            duplicate_aside(from, to)
        }
        Err(source) => Err(io_failure("link aside", from, Vec::new(), source)),
    }
}

/// The fallback of [`copy_aside`]: a complete, fsynced copy with the original's permissions,
/// renamed into place without replacing anything (never a rename of the original itself, which
/// would leave its name empty before a replacement stands).
fn duplicate_aside(from: &Path, to: &Path) -> Result<Copied, MoveAsideError> {
    snapshot_file(from, to, Replace::Refused)
        .map(|_| Copied::Duplicated)
        .map_err(|source| MoveAsideError::Copy {
            from: from.to_owned(),
            to: to.to_owned(),
            source,
        })
}

/// Whether a failed hard link means the filesystem does not do them (FAT, some network and FUSE
/// filesystems, a link limit), rather than that the name is taken or the disk failed.
fn links_refused(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::PermissionDenied
            | io::ErrorKind::Unsupported
            | io::ErrorKind::CrossesDevices
            | io::ErrorKind::TooManyLinks
    )
}

/// Copies `source` to `temporary`, fsynced, with the permissions of the file it will replace (or
/// the source's where nothing stands), so that a replacement never widens access. Returns its size.
fn prepare_replacement(
    source: &Path,
    temporary: &Path,
    original: Option<&fs::Metadata>,
) -> Result<u64, MoveAsideError> {
    let copy_failed = |error: SnapshotError| MoveAsideError::Copy {
        from: source.to_owned(),
        to: temporary.to_owned(),
        source: error,
    };
    let metadata = match fs::metadata(source) {
        Ok(metadata) if metadata.is_file() => metadata,
        Ok(_) => {
            return Err(copy_failed(SnapshotError::NotAFile {
                path: source.to_owned(),
            }));
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(copy_failed(SnapshotError::SourceMissing {
                path: source.to_owned(),
            }));
        }
        Err(error) => return Err(copy_failed(io_error("read", source)(error))),
    };
    let permissions = match original {
        Some(original) if original.is_file() => original.permissions(),
        _ => metadata.permissions(),
    };
    let reader = File::open(source)
        .map_err(io_error("open", source))
        .map_err(copy_failed)?;
    copy_durably(&reader, source, temporary, metadata.len(), &permissions).map_err(copy_failed)?;
    Ok(metadata.len())
}

fn io_failure(
    operation: &'static str,
    path: &Path,
    already_moved: Vec<MovedAside>,
    source: io::Error,
) -> MoveAsideError {
    MoveAsideError::Io {
        operation,
        path: path.to_owned(),
        already_moved,
        source,
    }
}

/// What has moved so far: the members whose originals left their names, in the order given.
fn moved(members: &[Member<'_>]) -> Vec<MovedAside> {
    members
        .iter()
        .filter(|member| member.left)
        .filter_map(|member| {
            member.aside.as_ref().map(|(to, _)| MovedAside {
                from: member.from.clone(),
                to: to.clone(),
            })
        })
        .collect()
}

/// After a failure: removes the temporary replacements, and the set-aside names of originals
/// that still stand, so that nothing of this call is left but what moved. No byte of the user's
/// goes: a link is removed only while its original still has the same inode, a copy only while
/// its original still stands. Returns `error`.
fn undo(directory: &Path, members: &[Member<'_>], error: MoveAsideError) -> MoveAsideError {
    for member in members {
        if let Some((temporary, _)) = &member.prepared
            && !member.left
        {
            let _ = fs::remove_file(temporary);
        }
        let Some((to, copied)) = &member.aside else {
            continue;
        };
        let redundant = !member.left
            && match copied {
                Copied::Linked => same_file(&member.from, to),
                Copied::Duplicated => fs::symlink_metadata(&member.from).is_ok(),
            };
        if redundant && fs::remove_file(to).is_ok() {
            tracing::debug!(
                target: "store::recovery",
                path = %to.display(),
                "set-aside copy taken back"
            );
        } else if !member.left {
            tracing::warn!(
                target: "store::recovery",
                from = %member.from.display(),
                to = %to.display(),
                "a copy of a file that still stands is left at its set-aside name"
            );
        }
    }
    let _ = sync_directory(directory);
    error
}

/// Whether two paths name the same inode.
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (fs::symlink_metadata(a), fs::symlink_metadata(b)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

/// A reason is a short word of lowercase letters, digits and dashes, so that it never contains
/// the dot that ends it in a file name.
pub(crate) fn is_valid_reason(reason: &str) -> bool {
    !reason.is_empty()
        && reason
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::{moved_aside_files, moved_aside_groups};
    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn set_aside_moves_a_group_under_one_stamp_keeping_permissions() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("system.duckdb");
        fs::write(&database, b"db")?;
        fs::write(sibling(&database, ".wal"), b"wal")?;
        #[cfg(unix)]
        fs::set_permissions(&database, fs::Permissions::from_mode(0o600))?;
        let moved = set_aside(
            &database,
            "broken",
            &SetAside::all_emptied(&["", ".wal", ".wal.checkpoint"]),
        )?;
        assert_eq!(moved.len(), 2, "the missing .wal.checkpoint is skipped");
        assert!(!database.exists() && !sibling(&database, ".wal").exists());
        let database_name = moved[0]
            .to
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let wal_name = moved[1]
            .to
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            database_name.starts_with("system.duckdb.broken."),
            "{database_name}"
        );
        assert_eq!(wal_name, format!("{database_name}.wal"));
        assert_eq!(fs::read(&moved[1].to)?, b"wal");
        #[cfg(unix)]
        assert_eq!(
            fs::metadata(&moved[0].to)?.permissions().mode() & 0o777,
            0o600
        );
        Ok(())
    }

    #[test]
    fn set_aside_never_overwrites() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("a.db");
        let mut stamps = Vec::new();
        for round in 0..3u8 {
            fs::write(&database, [round])?;
            let moved = set_aside(&database, "broken", &[SetAside::emptied("")])?;
            stamps.push(moved[0].to.clone());
        }
        // Three moves within (most likely) one second: three distinct files, each intact.
        for (round, path) in stamps.iter().enumerate() {
            assert_eq!(fs::read(path)?, [round as u8], "{}", path.display());
        }
        assert_eq!(moved_aside_groups(&database, "broken")?.len(), 3);
        Ok(())
    }

    #[test]
    fn set_aside_rejects_odd_reasons_and_tolerates_nothing_to_move() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("a.db");
        for reason in ["", "Broken", "a/b", "x.y"] {
            let error = set_aside(&database, reason, &[SetAside::emptied("")]).unwrap_err();
            assert!(
                matches!(error, MoveAsideError::InvalidReason { .. }),
                "{reason}"
            );
        }
        let twice = set_aside(
            &database,
            "broken",
            &SetAside::all_emptied(&["-wal", "-wal"]),
        );
        assert!(
            matches!(twice, Err(MoveAsideError::DuplicateSuffix { .. })),
            "{twice:?}"
        );
        assert!(set_aside(&database, "broken", &SetAside::all_emptied(&["", "-wal"]))?.is_empty());
        Ok(())
    }

    /// One name of a [`set_aside`] case: what stands there before, and what replaces it.
    struct Case {
        suffix: &'static str,
        original: Option<&'static [u8]>,
        replacement: Option<&'static [u8]>,
    }

    /// Runs `set_aside` on `cases` and checks the directory after every step it takes: each name
    /// holds its original or its complete replacement; a name without a replacement is empty only
    /// once every replacement stands; every set-aside file holds its whole original; and the
    /// set-aside copies are made durable before any original leaves its name.
    fn check_every_step(cases: &[Case]) -> TestResult {
        let directory = tempfile::tempdir()?;
        let sources = tempfile::tempdir()?;
        let database = directory.path().join("system.duckdb");
        for case in cases {
            if let Some(original) = case.original {
                fs::write(sibling(&database, case.suffix), original)?;
                #[cfg(unix)]
                fs::set_permissions(
                    sibling(&database, case.suffix),
                    fs::Permissions::from_mode(0o640),
                )?;
            }
            if let Some(replacement) = case.replacement {
                fs::write(
                    sources.path().join(format!("source{}", case.suffix)),
                    replacement,
                )?;
            }
        }
        let source_paths: Vec<PathBuf> = cases
            .iter()
            .map(|case| sources.path().join(format!("source{}", case.suffix)))
            .collect();
        let files: Vec<SetAside<'_>> = cases
            .iter()
            .zip(&source_paths)
            .map(|(case, source)| match case.replacement {
                Some(_) => SetAside::replaced_by(case.suffix, source),
                None => SetAside::emptied(case.suffix),
            })
            .collect();
        let check = |stage: Stage| {
            let read = |path: &Path| fs::read(path).ok();
            let every_replacement_stands = cases.iter().all(|case| {
                case.replacement.is_none_or(|bytes| {
                    read(&sibling(&database, case.suffix)).as_deref() == Some(bytes)
                })
            });
            for case in cases {
                let now = read(&sibling(&database, case.suffix));
                let allowed = now.as_deref() == case.original
                    || (case.replacement.is_some() && now.as_deref() == case.replacement)
                    || (case.replacement.is_none() && now.is_none() && every_replacement_stands);
                assert!(allowed, "after {stage:?}, `{}` holds {now:?}", case.suffix);
            }
            for file in moved_aside_files(&database).expect("listable") {
                let name = file.path.to_string_lossy().into_owned();
                let case = cases
                    .iter()
                    .filter(|case| name.ends_with(case.suffix))
                    .max_by_key(|case| case.suffix.len())
                    .expect("a set-aside name ends with a suffix given");
                assert_eq!(
                    read(&file.path).as_deref(),
                    case.original,
                    "after {stage:?}: {name}"
                );
            }
        };
        let mut stages = Vec::new();
        let moved = set_aside_observed(&database, "broken", &files, &mut |stage| {
            check(stage);
            stages.push(stage);
        })?;

        let standing = cases.iter().filter(|case| case.original.is_some()).count();
        let replaced = cases
            .iter()
            .filter(|case| case.replacement.is_some())
            .count();
        let emptied = cases
            .iter()
            .filter(|case| case.original.is_some() && case.replacement.is_none())
            .count();
        let mut expected = vec![Stage::SetAside; standing];
        if standing > 0 {
            expected.push(Stage::Synced);
        }
        expected.extend(vec![Stage::Prepared; replaced]);
        expected.extend(vec![Stage::Replaced; replaced]);
        expected.extend(vec![Stage::Emptied; emptied]);
        expected.push(Stage::Synced);
        assert_eq!(stages, expected);

        assert_eq!(moved.len(), standing);
        for file in &moved {
            let case = cases
                .iter()
                .find(|case| sibling(&database, case.suffix) == file.from)
                .expect("moved from a name given");
            assert_eq!(fs::read(&file.to)?, case.original.expect("it stood"));
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                let metadata = fs::metadata(&file.to)?;
                assert_eq!(metadata.mode() & 0o777, 0o640, "the original's permissions");
                assert_eq!(
                    metadata.nlink(),
                    1,
                    "no name shares the set-aside inode any more"
                );
            }
        }
        for case in cases {
            let path = sibling(&database, case.suffix);
            match case.replacement {
                Some(bytes) => {
                    assert_eq!(fs::read(&path)?, bytes);
                    #[cfg(unix)]
                    if case.original.is_some() {
                        assert_eq!(
                            fs::metadata(&path)?.permissions().mode() & 0o777,
                            0o640,
                            "a replacement takes its original's permissions"
                        );
                    }
                }
                None => assert!(!path.exists(), "{}", path.display()),
            }
        }
        let leftovers: Vec<String> = fs::read_dir(directory.path())?
            .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|name| name.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        Ok(())
    }

    #[test]
    fn a_restored_database_stands_before_its_old_wal_leaves() -> TestResult {
        check_every_step(&[
            Case {
                suffix: "",
                original: Some(b"the broken database"),
                replacement: Some(b"the snapshot"),
            },
            Case {
                suffix: ".wal",
                original: Some(b"the broken WAL"),
                replacement: None,
            },
            Case {
                suffix: ".wal.checkpoint",
                original: None,
                replacement: None,
            },
        ])
    }

    #[test]
    fn a_salvaged_wal_replaces_the_original_with_no_instant_without_one() -> TestResult {
        check_every_step(&[
            Case {
                suffix: ".wal",
                original: Some(b"good entries, then garbage"),
                replacement: Some(b"good entries"),
            },
            Case {
                suffix: ".wal.checkpoint",
                original: Some(b"a checkpoint WAL"),
                replacement: None,
            },
        ])
    }

    #[test]
    fn a_discarded_wal_is_set_aside_before_its_name_is_emptied() -> TestResult {
        check_every_step(&[Case {
            suffix: ".wal",
            original: Some(b"a foreign WAL"),
            replacement: None,
        }])
    }

    #[test]
    fn a_replacement_where_nothing_stood_is_placed_and_nothing_is_set_aside() -> TestResult {
        check_every_step(&[Case {
            suffix: "",
            original: None,
            replacement: Some(b"the snapshot"),
        }])
    }

    #[test]
    fn set_aside_copies_are_byte_identical_with_permissions_and_never_replace() -> TestResult {
        let directory = tempfile::tempdir()?;
        let original = directory.path().join("a.db");
        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        fs::write(&original, &content)?;
        #[cfg(unix)]
        fs::set_permissions(&original, fs::Permissions::from_mode(0o640))?;
        // The hard link, and the copy made where links are refused.
        let linked = directory.path().join("a.db.broken.20260101T000000Z");
        let duplicated = directory.path().join("a.db.broken.20260101T000000Z-1");
        assert_eq!(copy_aside(&original, &linked)?, Copied::Linked);
        assert_eq!(duplicate_aside(&original, &duplicated)?, Copied::Duplicated);
        for copy in [&linked, &duplicated] {
            assert_eq!(fs::read(copy)?, content, "{}", copy.display());
            #[cfg(unix)]
            assert_eq!(fs::metadata(copy)?.permissions().mode() & 0o777, 0o640);
        }
        assert_eq!(fs::read(&original)?, content, "the original still stands");
        // A taken name is never replaced, by either way.
        let taken = directory.path().join("a.db.broken.20260101T000000Z-2");
        fs::write(&taken, b"someone else's")?;
        let by_link = copy_aside(&original, &taken).unwrap_err();
        assert!(
            matches!(
                &by_link,
                MoveAsideError::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists
            ),
            "{by_link:?}"
        );
        let by_copy = duplicate_aside(&original, &taken).unwrap_err();
        assert!(
            matches!(
                by_copy,
                MoveAsideError::Copy {
                    source: SnapshotError::DestinationExists { .. },
                    ..
                }
            ),
            "{by_copy:?}"
        );
        assert_eq!(fs::read(&taken)?, b"someone else's");
        Ok(())
    }

    #[test]
    fn a_replacement_that_cannot_be_copied_changes_nothing() -> TestResult {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join("a.db");
        fs::write(&database, b"db")?;
        fs::write(sibling(&database, ".wal"), b"wal")?;
        let before: Vec<_> = {
            let mut names: Vec<_> = fs::read_dir(directory.path())?
                .map(|entry| entry.map(|e| e.file_name()))
                .collect::<Result<_, _>>()?;
            names.sort();
            names
        };
        let missing = directory.path().join("no-such-snapshot");
        let error = set_aside(
            &database,
            "broken",
            &[
                SetAside::replaced_by("", &missing),
                SetAside::emptied(".wal"),
            ],
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                MoveAsideError::Copy {
                    source: SnapshotError::SourceMissing { .. },
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.already_moved().is_empty());
        let mut after: Vec<_> = fs::read_dir(directory.path())?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        after.sort();
        assert_eq!(after, before, "the set-aside links were taken back");
        assert_eq!(fs::read(&database)?, b"db");
        assert_eq!(fs::read(sibling(&database, ".wal"))?, b"wal");
        Ok(())
    }
}
