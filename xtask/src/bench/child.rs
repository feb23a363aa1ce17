//! `xtask __bench-child KIND ...`: measurements that need a process of their own (a fault
//! installed, a first open in a fresh process, a loop mount in a private mount namespace). Each
//! prints one JSON value on standard output; [`super::support::child_output`] reads it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use store_core::JournalMode;

use super::support::BenchResult;
use super::{clones, commit_rates, fallback, sqlite_opens};

/// Which side of a figure a child measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BenchSide {
    /// Through store.
    Store,
    /// The raw rusqlite baseline.
    Raw,
}

impl BenchSide {
    fn as_str(self) -> &'static str {
        match self {
            BenchSide::Store => "store",
            BenchSide::Raw => "raw",
        }
    }
}

/// Which first open a [`BenchChild::FirstOpen`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FirstOpen {
    /// An existing WAL database on a healthy filesystem.
    Existing,
    /// A path that does not exist yet (for counting fsyncs under strace; BENCHMARKS.md).
    New,
    /// An existing DELETE-mode database under the no-shared-memory fault: store tries WAL, which
    /// fails, and falls back to DELETE; the baseline opens in DELETE mode.
    Fallback,
}

impl FirstOpen {
    fn as_str(self) -> &'static str {
        match self {
            FirstOpen::Existing => "existing",
            FirstOpen::New => "new",
            FirstOpen::Fallback => "fallback",
        }
    }
}

/// The synchronous setting of a commit-rate run: store's default for the journal mode, or the
/// opt-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CommitSync {
    /// No `.synchronous(...)`: `FULL` in the WAL modes, `EXTRA` in the rollback modes.
    Default,
    /// `.synchronous(Synchronous::Normal)`.
    Normal,
}

impl CommitSync {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            CommitSync::Default => "default",
            CommitSync::Normal => "normal",
        }
    }
}

/// The fault a commit-rate run measures under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BenchFault {
    /// A healthy filesystem.
    None,
    /// SQLite cannot map shared memory.
    NoSharedMemory,
}

impl BenchFault {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            BenchFault::None => "none",
            BenchFault::NoSharedMemory => "no-shared-memory",
        }
    }
}

/// A filesystem whose files clone, loop-mounted for the clone figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CloneFilesystem {
    Xfs,
    Btrfs,
}

impl CloneFilesystem {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            CloneFilesystem::Xfs => "xfs",
            CloneFilesystem::Btrfs => "btrfs",
        }
    }
}

/// `xtask __bench-child KIND ...`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub(crate) enum BenchChild {
    /// Opens of an existing file under the no-shared-memory fault (WAL fails, DELETE), repeated
    /// in this process, against raw DELETE-mode opens: `{"store": [...], "baseline": [...]}`.
    FallbackOpen,
    /// One open, the first of this process, of the given kind: its milliseconds.
    FirstOpen {
        #[arg(value_enum)]
        side: BenchSide,
        #[arg(value_enum)]
        kind: FirstOpen,
        /// The database.
        path: PathBuf,
    },
    /// Commits per second for the commit window in one journal mode, under a fault.
    CommitRate {
        /// The journal mode, strictly (`wal`, `wal-exclusive`, `delete`...).
        mode: JournalMode,
        #[arg(value_enum)]
        fault: BenchFault,
        #[arg(value_enum)]
        sync: CommitSync,
        #[arg(value_enum)]
        side: BenchSide,
    },
    /// Snapshots of a 256 MiB and a 1 GiB file on a loop-mounted filesystem that clones, against
    /// `cp --reflink=never` + `sync -f`: the samples, or why it could not mount.
    CloneSnapshots {
        #[arg(value_enum)]
        filesystem: CloneFilesystem,
    },
}

impl BenchChild {
    /// The hidden command's name, as the bench spawns it.
    pub(crate) const COMMAND: &str = "__bench-child";

    /// The command line that runs this child (after the executable).
    pub(super) fn arguments(&self) -> Vec<OsString> {
        let words: Vec<OsString> = match self {
            BenchChild::FallbackOpen => vec!["fallback-open".into()],
            BenchChild::FirstOpen { side, kind, path } => vec![
                "first-open".into(),
                side.as_str().into(),
                kind.as_str().into(),
                path.into(),
            ],
            BenchChild::CommitRate {
                mode,
                fault,
                sync,
                side,
            } => vec![
                "commit-rate".into(),
                mode.as_str().into(),
                fault.as_str().into(),
                sync.as_str().into(),
                side.as_str().into(),
            ],
            BenchChild::CloneSnapshots { filesystem } => {
                vec!["clone-snapshots".into(), filesystem.as_str().into()]
            }
        };
        std::iter::once(Self::COMMAND.into()).chain(words).collect()
    }
}

/// Runs a measurement child and prints what it measured, as JSON.
pub(crate) fn child(child: BenchChild) -> ExitCode {
    fn json(value: impl Serialize) -> BenchResult<String> {
        Ok(serde_json::to_string(&value)?)
    }
    let outcome = match child {
        BenchChild::FallbackOpen => fallback::repeated_in_child().and_then(json),
        BenchChild::FirstOpen { side, kind, path } => {
            sqlite_opens::first_open(side, kind, &path).and_then(json)
        }
        BenchChild::CommitRate {
            mode,
            fault,
            sync,
            side,
        } => commit_rates::commit_rate(mode, fault, sync, side).and_then(json),
        BenchChild::CloneSnapshots { filesystem } => {
            clones::measure_in_child(filesystem).and_then(json)
        }
    };
    match outcome {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::{Cli, Task};

    #[test]
    fn the_children_parse_what_the_bench_spawns() {
        let mut children = vec![
            BenchChild::FallbackOpen,
            BenchChild::CloneSnapshots {
                filesystem: CloneFilesystem::Xfs,
            },
            BenchChild::CloneSnapshots {
                filesystem: CloneFilesystem::Btrfs,
            },
        ];
        for side in [BenchSide::Store, BenchSide::Raw] {
            for kind in [FirstOpen::Existing, FirstOpen::New, FirstOpen::Fallback] {
                children.push(BenchChild::FirstOpen {
                    side,
                    kind,
                    path: PathBuf::from("/a directory/with spaces/x.db"),
                });
            }
            for mode in [
                JournalMode::Wal,
                JournalMode::WalExclusive,
                JournalMode::Delete,
            ] {
                for fault in [BenchFault::None, BenchFault::NoSharedMemory] {
                    for sync in [CommitSync::Default, CommitSync::Normal] {
                        children.push(BenchChild::CommitRate {
                            mode,
                            fault,
                            sync,
                            side,
                        });
                    }
                }
            }
        }
        for child in children {
            let parsed =
                Cli::try_parse_from(std::iter::once("xtask".into()).chain(child.arguments()))
                    .unwrap_or_else(|error| panic!("{child:?}: {error}"));
            assert_eq!(parsed.task, Task::BenchChild(child));
        }
    }
}
