//! The bad-input campaign: each bad path, file or sidecar gives a typed error or a reported
//! recovery, an open that succeeds can read its rows, and the directory changes only as the
//! report says.

use std::path::{Path, PathBuf};

use store_core::files::sibling;
use store_core::{Engine, OpenReport};
use store_duckdb::DuckDbOptions;
use store_testkit::random::SplitMix64;
use store_testkit::snapshot::{Change, DirectorySnapshot};

use super::Tally;
use super::database::{TortureResult, database_name, migrations, open};
use crate::progress::Progress;

/// One bad input: how to make it in a fresh directory, and which engine opens it.
struct BadInput {
    name: &'static str,
    engine: Engine,
    /// Makes the input in a fresh directory; returns the path to open.
    make: Box<MakeInput>,
}

/// Makes a bad input in a fresh directory and returns the path to open.
type MakeInput = dyn Fn(&Path) -> TortureResult<PathBuf>;

fn bad_input(
    name: &'static str,
    engine: Engine,
    make: impl Fn(&Path) -> TortureResult<PathBuf> + 'static,
) -> BadInput {
    BadInput {
        name,
        engine,
        make: Box::new(make),
    }
}

fn bad_inputs() -> Vec<BadInput> {
    let mut inputs = Vec::new();
    for engine in [Engine::Sqlite, Engine::Duckdb] {
        let other = match engine {
            Engine::Sqlite => Engine::Duckdb,
            _ => Engine::Sqlite,
        };
        let wal_suffix = match engine {
            Engine::Sqlite => "-wal",
            _ => ".wal",
        };
        inputs.extend([
            bad_input("a directory as the path", engine, |directory| {
                let path = directory.join("a directory");
                std::fs::create_dir(&path)?;
                Ok(path)
            }),
            bad_input("a missing parent directory", engine, |directory| {
                Ok(directory.join("missing").join("x.db"))
            }),
            bad_input("a zero-byte file", engine, |directory| {
                write_file(directory, "empty.db", &[])
            }),
            bad_input("a text file", engine, |directory| {
                write_file(
                    directory,
                    "notes.db",
                    b"dear diary, this is not a database\n",
                )
            }),
            bad_input("random bytes", engine, |directory| {
                let mut random = SplitMix64::new(7);
                let bytes: Vec<u8> = (0..64 * 1024).map(|_| random.next_u64() as u8).collect();
                write_file(directory, "random.db", &bytes)
            }),
            bad_input("the other engine's file", engine, move |directory| {
                healthy(other, directory)
            }),
            bad_input("a path with spaces and unicode", engine, |directory| {
                let nested = directory.join("données de l'app ✓");
                std::fs::create_dir(&nested)?;
                Ok(nested.join("état du jeu.db"))
            }),
            bad_input("a symlink in place of the WAL", engine, move |directory| {
                let path = healthy(engine, directory)?;
                let elsewhere = directory.join("elsewhere");
                std::fs::write(&elsewhere, b"someone else's file")?;
                std::os::unix::fs::symlink(&elsewhere, sibling(&path, wal_suffix))?;
                Ok(path)
            }),
        ]);
        for (name, fraction) in [
            ("truncated to 100 bytes", None),
            ("truncated to a tenth", Some(0.1)),
            ("truncated to half", Some(0.5)),
            ("truncated to nine tenths", Some(0.9)),
        ] {
            inputs.push(bad_input(name, engine, move |directory| {
                truncated(engine, directory, fraction)
            }));
        }
    }
    inputs.push(bad_input(
        "a damaged WAL and a snapshot of another schema version",
        Engine::Duckdb,
        |directory| {
            let path = healthy(Engine::Duckdb, directory)?;
            // A snapshot from a newer schema than the application knows.
            let snapshot = sibling(&path, store_duckdb::SNAPSHOT_SUFFIX);
            drop(
                DuckDbOptions::new(&snapshot)
                    .migrations(migrations(Engine::Duckdb, 3))
                    .open()
                    .map_err(|error| error.cause_chain())?,
            );
            store_testkit::faults::duckdb::write_uncheckpointed_rows(&path, 0, 5)?;
            store_testkit::faults::duckdb::append_garbage_to_wal(&path)?;
            Ok(path)
        },
    ));
    inputs
}

fn write_file(directory: &Path, name: &str, bytes: &[u8]) -> TortureResult<PathBuf> {
    let path = directory.join(name);
    std::fs::write(&path, bytes)?;
    Ok(path)
}

/// A database of `engine` at version 2 with rows, closed cleanly.
fn healthy(engine: Engine, directory: &Path) -> TortureResult<PathBuf> {
    let path = directory.join(database_name(engine));
    let (opened, _) = open(engine, &path, 2).map_err(|refused| refused.cause)?;
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
    bad_inputs().len()
}

pub(super) fn campaign(tally: &mut Tally, progress: &Progress) -> TortureResult<()> {
    let inputs = bad_inputs();
    progress.stage(format!("bad-input: {} inputs", inputs.len()));
    let mut refused = 0;
    let mut opened = 0;
    let mut recovered = 0;
    let mut unreadable = 0;
    for input in &inputs {
        let directory = tempfile::tempdir()?;
        let path = (input.make)(directory.path())?;
        // The database's own directory when it exists (a nested one for the unicode path).
        let watched = Some(store_core::files::parent_directory(&path))
            .filter(|parent| parent.is_dir())
            .unwrap_or_else(|| directory.path().to_owned());
        let before = DirectorySnapshot::take(&watched)?;
        let outcome = open(input.engine, &path, 2);
        let after = DirectorySnapshot::take(&watched)?;
        let changes = before.diff(&after);
        let label = format!("bad-input/{} {}", input.engine.as_str(), input.name);
        progress.step();
        let verdict = match &outcome {
            Err(refusal) => format!("refused ({})", refusal.class),
            Ok((_, report)) => match &report.recovery {
                Some(recovery) => format!("recovered ({}, lost: {})", recovery.step, recovery.lost),
                None => "opened".to_owned(),
            },
        };
        tally.lines.push(format!("  {label}: {verdict}"));
        match outcome {
            Err(refusal) => {
                refused += 1;
                if !changes.is_empty() && !refusal.moved_anything {
                    tally.failures.push(format!(
                        "{label}: refused ({}) but changed {}",
                        refusal.class,
                        changes_text(&changes)
                    ));
                }
            }
            Ok((connection, report)) => {
                opened += 1;
                if report.recovered() {
                    recovered += 1;
                }
                // Opened must mean usable: DuckDB reads blocks lazily, so a file cut short could
                // open and fail on its missing blocks later; store refuses such a file at open
                // (`OpenError::CutShort`), and one that still gets through is a failure.
                if let Err(error) = connection.ids() {
                    unreadable += 1;
                    tally.failures.push(format!(
                        "{label}: opened, but its rows do not read: {error}"
                    ));
                }
                drop(connection);
                let allowed = allowed_changes(input.engine, &path, &report);
                let unexplained: Vec<&Change> = changes
                    .iter()
                    .filter(|change| !allowed.iter().any(|name| change_name(change) == name))
                    .collect();
                if !unexplained.is_empty() {
                    tally.failures.push(format!(
                        "{label}: opened, but changed what the report does not name: {}",
                        unexplained
                            .iter()
                            .map(|change| change.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
    }
    tally.lines.push(format!(
        "bad-input: {} inputs; refused with a typed error: {refused}; opened: {opened} (of which recovered: {recovered}; unreadable later: {unreadable})",
        inputs.len()
    ));
    Ok(())
}

fn changes_text(changes: &[Change]) -> String {
    changes
        .iter()
        .map(Change::to_string)
        .collect::<Vec<_>>()
        .join(", ")
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
