//! The bad-input campaign: each bad path, file or sidecar has one right outcome (refused with a
//! given class, created, opened, or recovered by a given step), and anything else fails. Every
//! file that stood in the directory before the open stays byte for byte unless the report names
//! it (moved aside, the snapshot) or the open was of a database of that engine: a refused open
//! changes nothing at all.

use std::fmt;
use std::path::{Path, PathBuf};

use store_core::files::sibling;
use store_core::{Engine, FailureClass, OpenReport, RecoveryStep};
use store_duckdb::DuckDbOptions;
use store_testkit::random::SplitMix64;
use store_testkit::snapshot::{Change, DirectorySnapshot};

use super::database::{TortureResult, database_name, migrations, open};
use super::{ENGINES, Tally};
use crate::names::named_enum;
use crate::progress::Progress;

/// The schema version every bad input is opened at (that of [`healthy`] databases).
const VERSION: u32 = 2;

named_enum! {
    /// The bad inputs: paths, files and sidecars an application may hand store.
    pub(crate) enum BadInput: "bad input" {
        /// A directory where the database file should be.
        Directory => "a directory as the path",
        /// A path whose directory does not exist.
        MissingParent => "a missing parent directory",
        /// A file of zero bytes.
        ZeroBytes => "a zero-byte file",
        /// A text file.
        Text => "a text file",
        /// 64 KiB of random bytes.
        RandomBytes => "random bytes",
        /// A healthy database of the other engine.
        OtherEngine => "the other engine's file",
        /// A new database at a path with spaces and non-ASCII letters: valid, not bad at all.
        UnicodePath => "a path with spaces and unicode",
        /// A healthy database whose WAL's name is a symbolic link to another file.
        SymlinkWal => "a symlink in place of the WAL",
        /// A healthy database cut to its first 100 bytes (the header and no page).
        TruncatedTo100Bytes => "truncated to 100 bytes",
        /// A healthy database cut to a tenth of its bytes.
        TruncatedToTenth => "truncated to a tenth",
        /// A healthy database cut to half its bytes.
        TruncatedToHalf => "truncated to half",
        /// A healthy database cut to nine tenths of its bytes.
        TruncatedToNineTenths => "truncated to nine tenths",
        /// A healthy DuckDB database with committed rows in its WAL followed by garbage, and a
        /// pre-migration snapshot of a newer schema than the application's.
        DamagedWalAndNewerSnapshot => "a damaged WAL and a snapshot of another schema version",
    }
}

/// What store must do with a bad input, or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Refused with this class, having changed nothing.
    Refused(FailureClass),
    /// Opened a database it created where nothing stood.
    Created,
    /// Opened the database of that engine that stood there, without recovery.
    Opened,
    /// Opened after this recovery step, which the report names.
    Recovered(RecoveryStep),
}

impl fmt::Display for Outcome {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Refused(class) => write!(formatter, "refused ({class})"),
            Outcome::Created => formatter.write_str("created"),
            Outcome::Opened => formatter.write_str("opened"),
            Outcome::Recovered(step) => write!(formatter, "recovered ({step})"),
        }
    }
}

impl Outcome {
    /// What an open did.
    fn of(opened: Result<&OpenReport, FailureClass>) -> Outcome {
        match opened {
            Err(class) => Outcome::Refused(class),
            Ok(report) => match &report.recovery {
                Some(recovery) => Outcome::Recovered(recovery.step),
                None if report.created => Outcome::Created,
                None => Outcome::Opened,
            },
        }
    }

    /// Whether the open may change the database's own files (the database and its sidecars):
    /// only an open of what is a database of that engine, or becomes one, may; a refused open
    /// changes nothing at all.
    fn may_change_the_database(self) -> bool {
        match self {
            Outcome::Refused(_) => false,
            Outcome::Created | Outcome::Opened | Outcome::Recovered(_) => true,
        }
    }
}

impl BadInput {
    /// The engines that open this input.
    fn engines(self) -> &'static [Engine] {
        match self {
            // The snapshot and WAL recovery ladder are DuckDB's.
            BadInput::DamagedWalAndNewerSnapshot => &[Engine::Duckdb],
            _ => &ENGINES,
        }
    }

    /// The one right outcome of opening this input with `engine`, and why.
    fn expected(self, engine: Engine) -> Outcome {
        match (self, engine) {
            (BadInput::Directory, _) => Outcome::Refused(FailureClass::NotAFile),
            (BadInput::MissingParent, _) => Outcome::Refused(FailureClass::NotFound),
            // store never writes into a file it did not create (`PathError::EmptyFile`).
            (BadInput::ZeroBytes, _) => Outcome::Refused(FailureClass::NotADatabase),
            // Never overwritten with a new database: the bytes are someone's.
            (BadInput::Text | BadInput::RandomBytes | BadInput::OtherEngine, _) => {
                Outcome::Refused(FailureClass::NotADatabase)
            }
            (BadInput::UnicodePath, _) => Outcome::Created,
            // The engine would follow the link and write beside someone else's file.
            (BadInput::SymlinkWal, _) => Outcome::Refused(FailureClass::NotAFile),
            // SQLite has no recovery ladder: a damaged file is refused as it stands.
            (
                BadInput::TruncatedTo100Bytes
                | BadInput::TruncatedToTenth
                | BadInput::TruncatedToHalf
                | BadInput::TruncatedToNineTenths,
                Engine::Sqlite,
            ) => Outcome::Refused(FailureClass::Corrupt),
            // DuckDB's ladder sets the cut file aside and restores the pre-migration snapshot
            // (the healthy database's, taken as it was created), losing what came after it, with
            // a report that says so. A cut file is never opened as it stands (`CutShort`).
            (
                BadInput::TruncatedTo100Bytes
                | BadInput::TruncatedToTenth
                | BadInput::TruncatedToHalf
                | BadInput::TruncatedToNineTenths,
                _,
            ) => Outcome::Recovered(RecoveryStep::RestoreSnapshot),
            // The commits before the garbage replay; the snapshot of a schema the application
            // does not know is no way back.
            (BadInput::DamagedWalAndNewerSnapshot, _) => {
                Outcome::Recovered(RecoveryStep::SalvageWal)
            }
        }
    }

    /// Makes the input in a fresh `directory` for `engine`; returns the path to open.
    fn make(self, engine: Engine, directory: &Path) -> TortureResult<PathBuf> {
        let other = match engine {
            Engine::Sqlite => Engine::Duckdb,
            _ => Engine::Sqlite,
        };
        let wal_suffix = match engine {
            Engine::Sqlite => "-wal",
            _ => ".wal",
        };
        match self {
            BadInput::Directory => {
                let path = directory.join("a directory");
                std::fs::create_dir(&path)?;
                Ok(path)
            }
            BadInput::MissingParent => Ok(directory.join("missing").join("x.db")),
            BadInput::ZeroBytes => write_file(directory, "empty.db", &[]),
            BadInput::Text => write_file(
                directory,
                "notes.db",
                b"dear diary, this is not a database\n",
            ),
            BadInput::RandomBytes => {
                let mut random = SplitMix64::new(7);
                let bytes: Vec<u8> = (0..64 * 1024).map(|_| random.next_u64() as u8).collect();
                write_file(directory, "random.db", &bytes)
            }
            BadInput::OtherEngine => healthy(other, directory),
            BadInput::UnicodePath => {
                let nested = directory.join("données de l'app ✓");
                std::fs::create_dir(&nested)?;
                Ok(nested.join("état du jeu.db"))
            }
            BadInput::SymlinkWal => {
                let path = healthy(engine, directory)?;
                let elsewhere = directory.join("elsewhere");
                std::fs::write(&elsewhere, b"someone else's file")?;
                std::os::unix::fs::symlink(&elsewhere, sibling(&path, wal_suffix))?;
                Ok(path)
            }
            BadInput::TruncatedTo100Bytes => truncated(engine, directory, None),
            BadInput::TruncatedToTenth => truncated(engine, directory, Some(0.1)),
            BadInput::TruncatedToHalf => truncated(engine, directory, Some(0.5)),
            BadInput::TruncatedToNineTenths => truncated(engine, directory, Some(0.9)),
            BadInput::DamagedWalAndNewerSnapshot => {
                let path = healthy(Engine::Duckdb, directory)?;
                // A snapshot from a newer schema than the application knows.
                let snapshot = sibling(&path, store_duckdb::SNAPSHOT_SUFFIX);
                drop(
                    DuckDbOptions::new(&snapshot)
                        .migrations(migrations(Engine::Duckdb, VERSION + 1))
                        .open()
                        .map_err(|error| error.cause_chain())?,
                );
                store_testkit::faults::duckdb::write_uncheckpointed_rows(&path, 0, 5)?;
                store_testkit::faults::duckdb::append_garbage_to_wal(&path)?;
                Ok(path)
            }
        }
    }
}

/// Each input with each engine that opens it, in the order the campaign runs them.
fn cases() -> Vec<(BadInput, Engine)> {
    ENGINES
        .into_iter()
        .flat_map(|engine| {
            BadInput::ALL
                .iter()
                .copied()
                .filter(move |input| input.engines().contains(&engine))
                .map(move |input| (input, engine))
        })
        .collect()
}

fn write_file(directory: &Path, name: &str, bytes: &[u8]) -> TortureResult<PathBuf> {
    let path = directory.join(name);
    std::fs::write(&path, bytes)?;
    Ok(path)
}

/// A database of `engine` at [`VERSION`] with rows, closed cleanly.
fn healthy(engine: Engine, directory: &Path) -> TortureResult<PathBuf> {
    let path = directory.join(database_name(engine));
    let (opened, _) = open(engine, &path, VERSION).map_err(|refused| refused.cause)?;
    for id in 1..=100 {
        opened.insert(id)?;
    }
    drop(opened);
    Ok(path)
}

/// A healthy database cut to `fraction` of its size (`None`: to 100 bytes).
fn truncated(engine: Engine, directory: &Path, fraction: Option<f64>) -> TortureResult<PathBuf> {
    let path = healthy(engine, directory)?;
    let length = std::fs::metadata(&path)?.len();
    let keep = fraction.map_or(100, |fraction| (length as f64 * fraction) as u64);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)?
        .set_len(keep)?;
    Ok(path)
}

/// How many bad inputs there are, for the progress bar.
pub(super) fn count() -> usize {
    cases().len()
}

pub(super) fn campaign(tally: &mut Tally, progress: &Progress) -> TortureResult<()> {
    let cases = cases();
    progress.stage(format!("bad-input: {} inputs", cases.len()));
    let mut as_expected = 0;
    for (input, engine) in cases.iter().copied() {
        let directory = tempfile::tempdir()?;
        let path = input.make(engine, directory.path())?;
        // The database's own directory when it exists (a nested one for the unicode path).
        let watched = Some(store_core::files::parent_directory(&path))
            .filter(|parent| parent.is_dir())
            .unwrap_or_else(|| directory.path().to_owned());
        let before = DirectorySnapshot::take(&watched)?;
        let opened = open(engine, &path, VERSION);
        let after = DirectorySnapshot::take(&watched)?;
        let label = format!("bad-input/{} {input}", engine.as_str());
        progress.step();
        let expected = input.expected(engine);
        let outcome = Outcome::of(
            opened
                .as_ref()
                .map(|(_, report)| report)
                .map_err(|refused| refused.class),
        );
        let mut problems = Vec::new();
        if outcome != expected {
            let said = match &opened {
                Err(refused) => refused.cause.clone(),
                Ok((_, report)) => report.to_string(),
            };
            problems.push(format!("{outcome} where {expected} was expected: {said}"));
        }
        let report = opened.as_ref().ok().map(|(_, report)| report);
        problems.extend(unexplained_changes(
            engine, &path, expected, outcome, report, &before, &after,
        ));
        if let Ok((connection, _)) = &opened {
            // Opened must mean usable: DuckDB reads blocks lazily, so a file cut short could
            // open and fail on its missing blocks later; store refuses such a file at open
            // (`OpenError::CutShort`), and one that still gets through is a failure.
            if let Err(error) = connection.ids() {
                problems.push(format!("opened, but its rows do not read: {error}"));
            }
        }
        drop(opened);
        tally.lines.push(format!(
            "  {label}: {outcome} (expected {expected}){}",
            if problems.is_empty() { "" } else { ": FAILED" }
        ));
        if problems.is_empty() {
            as_expected += 1;
        }
        tally.check(label, &problems);
    }
    tally.lines.push(format!(
        "bad-input: {} inputs; as expected, with nothing changed the report does not name: \
         {as_expected}",
        cases.len()
    ));
    Ok(())
}

/// What changed in the watched directory that the outcome does not allow, one line each. Only
/// an open that was expected to open, and did, may change the database's own files (the
/// database and its sidecars); and only the files its report names besides (the snapshot it
/// took, the files it moved aside, each of which must stand at its new name byte for byte).
fn unexplained_changes(
    engine: Engine,
    path: &Path,
    expected: Outcome,
    outcome: Outcome,
    report: Option<&OpenReport>,
    before: &DirectorySnapshot,
    after: &DirectorySnapshot,
) -> Vec<String> {
    let allowed = match report {
        Some(report) if expected.may_change_the_database() && outcome.may_change_the_database() => {
            allowed_changes(engine, path, report)
        }
        _ => Vec::new(),
    };
    let mut problems: Vec<String> = before
        .diff(after)
        .iter()
        .filter(|change| !allowed.iter().any(|name| change_name(change) == name))
        .map(|change| format!("{change}: a change the outcome does not allow nor the report name"))
        .collect();
    if let Some(recovery) = report.and_then(|report| report.recovery.as_ref()) {
        problems.extend(
            before
                .check_moved_aside(after, &recovery.moved_aside)
                .iter()
                .map(|problem| format!("moved aside wrongly: {problem}")),
        );
    }
    problems
}

fn change_name(change: &Change) -> &str {
    match change {
        Change::Added(name) | Change::Removed(name) | Change::Modified(name) => name,
    }
}

/// The file names an open may change in the database's directory: the database and its
/// sidecars, and whatever the report says it moved or made.
fn allowed_changes(engine: Engine, path: &Path, report: &OpenReport) -> Vec<String> {
    let suffixes: &[&str] = match engine {
        Engine::Sqlite => store_sqlite::SIDECAR_SUFFIXES,
        _ => store_duckdb::SIDECAR_SUFFIXES,
    };
    let mut files: Vec<PathBuf> = std::iter::once(path.to_owned())
        .chain(suffixes.iter().map(|suffix| sibling(path, suffix)))
        .collect();
    files.extend(
        report
            .snapshot
            .as_ref()
            .map(|snapshot| snapshot.path.clone()),
    );
    if let Some(recovery) = &report.recovery {
        for moved in &recovery.moved_aside {
            files.push(moved.from.clone());
            files.push(moved.to.clone());
        }
    }
    files
        .iter()
        .filter_map(|file| file.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Promise: every input has an expected outcome for each engine that opens it, and no input
    /// that is not a database of the engine (text, random bytes, the other engine's) may open.
    #[test]
    fn every_input_has_its_outcome_and_non_databases_are_refused() {
        let cases = cases();
        for input in BadInput::ALL {
            assert!(
                cases.iter().any(|(case, _)| case == input),
                "{input} is never run"
            );
        }
        for (input, engine) in cases {
            if matches!(
                input,
                BadInput::ZeroBytes
                    | BadInput::Text
                    | BadInput::RandomBytes
                    | BadInput::OtherEngine
            ) {
                assert_eq!(
                    input.expected(engine),
                    Outcome::Refused(FailureClass::NotADatabase),
                    "{input} with {engine}"
                );
            }
        }
        assert_eq!(
            BadInput::UnicodePath.expected(Engine::Sqlite),
            Outcome::Created,
            "a valid path opens"
        );
    }

    /// Promise: a refused open may change nothing, not even the database's own files; an open may
    /// change those and what its report names, nothing else.
    #[test]
    fn a_refusal_allows_no_change_and_an_open_only_its_own_files() -> TortureResult<()> {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("notes.db");
        std::fs::write(&path, b"text")?;
        std::fs::write(directory.path().join("other"), b"kept")?;
        let before = DirectorySnapshot::take(directory.path())?;
        std::fs::write(&path, b"SQLite format 3\0")?;
        std::fs::write(sibling(&path, "-wal"), b"")?;
        let after = DirectorySnapshot::take(directory.path())?;
        let refused = Outcome::Refused(FailureClass::NotADatabase);
        let problems = unexplained_changes(
            Engine::Sqlite,
            &path,
            refused,
            refused,
            None,
            &before,
            &after,
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        // Opened where a refusal was expected: still no change allowed.
        let report = OpenReport::new(Engine::Sqlite, path.clone(), "notes.db");
        let problems = unexplained_changes(
            Engine::Sqlite,
            &path,
            refused,
            Outcome::Opened,
            Some(&report),
            &before,
            &after,
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        let problems = unexplained_changes(
            Engine::Sqlite,
            &path,
            Outcome::Opened,
            Outcome::Opened,
            Some(&report),
            &before,
            &after,
        );
        assert!(problems.is_empty(), "{problems:?}");
        std::fs::write(directory.path().join("other"), b"gone")?;
        let after = DirectorySnapshot::take(directory.path())?;
        let problems = unexplained_changes(
            Engine::Sqlite,
            &path,
            Outcome::Opened,
            Outcome::Opened,
            Some(&report),
            &before,
            &after,
        );
        assert_eq!(
            problems,
            ["~ other: a change the outcome does not allow nor the report name"]
        );
        Ok(())
    }
}
