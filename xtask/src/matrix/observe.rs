//! What a cell's child observes: the acknowledged rows counted against the ledger and the report,
//! the files the report says it moved aside, and the checks beyond the rows. The [`Observed`] it
//! makes is what travels to the parent ([`super::wire`]) and is judged there ([`super::judge`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use store_core::files::sibling;
use store_core::{DataLoss, Engine, MovedAside, RecoveryStep};
use store_testkit::DirectorySnapshot;

use super::cells::{Cell, Keep, Outcome};
use crate::oracle::{AckedRow, Ledger, Place};

/// What became of the acknowledged rows, counted by the child against its [`Ledger`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Rows {
    /// Rows acknowledged before the fault.
    pub(super) acknowledged: u64,
    /// Of which the cell's [`Keep`] requires.
    pub(super) required: u64,
    /// Acknowledged rows present after the open.
    pub(super) kept: u64,
    /// Required rows missing.
    pub(super) required_missing: u64,
    /// Missing rows inside the loss the report names.
    pub(super) lost_reported: u64,
    /// Missing rows outside anything the report names.
    pub(super) lost_silent: u64,
    /// Rows present that must not be: never acknowledged, or (for [`Keep::Snapshot`]) written
    /// after the snapshot the database was restored from.
    pub(super) unexpected: u64,
}

impl Rows {
    /// The counts of two cases together.
    fn plus(self, other: Rows) -> Rows {
        Rows {
            acknowledged: self.acknowledged + other.acknowledged,
            required: self.required + other.required,
            kept: self.kept + other.kept,
            required_missing: self.required_missing + other.required_missing,
            lost_reported: self.lost_reported + other.lost_reported,
            lost_silent: self.lost_silent + other.lost_silent,
            unexpected: self.unexpected + other.unexpected,
        }
    }
}

/// A promise the child checked beyond the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum CheckKind {
    /// Files the report says it moved aside stand whole at their new names, no wider; a
    /// recovery moved at least what it replaced.
    MovedAside,
    /// Right after a kill, the files hold the version the migrations' commits imply, with exactly
    /// the effects of the migrations up to it.
    SchemaAfterKill,
    /// After store's reopen: the latest version, with the effects of every migration, once.
    SchemaAfterReopen,
    /// The reopen applied exactly the migrations that had not committed before the kill.
    MigrationsAppliedOnce,
    /// A salvage's reported loss starts exactly where the last commit before the damaged WAL
    /// entry ends: never inside or after that entry (the row count cannot see that, since no
    /// commit ends inside an entry).
    LossBoundary,
    /// The injected fault fired as the cell planned (an outcome equal to the no-fault one proves
    /// nothing unless the fault was met), and where the open must absorb it, its retry was logged.
    FaultFired,
    /// After a refusal, a second open through store (the fault gone) opens the database and
    /// reads every row it must keep: a refusal must leave a database the next start can use.
    ReopenAfterRefusal,
}

impl CheckKind {
    /// The word the reasons and the JSON use (serde writes the same).
    pub(super) fn as_str(self) -> &'static str {
        match self {
            CheckKind::MovedAside => "moved-aside",
            CheckKind::SchemaAfterKill => "schema-after-kill",
            CheckKind::SchemaAfterReopen => "schema-after-reopen",
            CheckKind::MigrationsAppliedOnce => "migrations-applied-once",
            CheckKind::LossBoundary => "loss-boundary",
            CheckKind::FaultFired => "fault-fired",
            CheckKind::ReopenAfterRefusal => "reopen-after-refusal",
        }
    }
}

/// One checked promise and what the child found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Check {
    pub(super) kind: CheckKind,
    pub(super) holds: bool,
    pub(super) detail: String,
}

impl Check {
    pub(super) fn new(kind: CheckKind, holds: bool, detail: impl Into<String>) -> Check {
        Check {
            kind,
            holds,
            detail: detail.into(),
        }
    }
}

/// A file the report says was moved aside: its old name and its new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct MovedFile {
    pub(super) from: String,
    pub(super) to: String,
}

/// What a cell's child reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Observed {
    /// What the open did; `None` when the cell did not get that far.
    pub(super) outcome: Option<Outcome>,
    /// The acknowledged rows; `None` when they could not be read (a refused open of a database
    /// the cell must leave untouched is not read at all).
    pub(super) rows: Option<Rows>,
    /// Files the report says were moved aside.
    pub(super) moved_aside: Vec<MovedFile>,
    /// Promises checked beyond the rows.
    pub(super) checks: Vec<Check>,
    pub(super) directory_unchanged: bool,
    /// Why the cell could not run here (a capability missing).
    pub(super) skipped: Option<String>,
    /// Why the cell could not set up its fault: a failure, never a pass.
    pub(super) setup_failure: Option<String>,
    /// The cell's child ran past its time limit and was killed: a failure, never a pass.
    #[serde(default)]
    pub(super) timed_out: Option<String>,
    /// The report or the error, in words.
    pub(super) detail: String,
}

impl Observed {
    /// This observation and a later case's of the same cell, as one: rows summed, moved files
    /// and checks joined, the directory unchanged only if both were; the later outcome (and its
    /// detail) wins when it is not the one expected, so that one case that differs fails the
    /// cell, and so do rows that could not be read in any case.
    pub(super) fn and(mut self, cell: &Cell, later: Observed) -> Observed {
        self.rows = match (self.rows, later.rows) {
            (Some(rows), Some(more)) => Some(rows.plus(more)),
            _ => None,
        };
        self.moved_aside.extend(later.moved_aside);
        self.checks.extend(later.checks);
        self.directory_unchanged &= later.directory_unchanged;
        self.skipped = self.skipped.or(later.skipped);
        self.setup_failure = self.setup_failure.or(later.setup_failure);
        self.timed_out = self.timed_out.or(later.timed_out);
        if self.outcome == Some(cell.expected) && later.outcome != Some(cell.expected) {
            self.outcome = later.outcome;
            self.detail = later.detail;
        }
        self
    }

    /// A cell that could not set itself up.
    pub(super) fn setup_failed(reason: String) -> Observed {
        Observed {
            setup_failure: Some(reason),
            ..Observed::default()
        }
    }

    /// A cell whose child ran past its time limit.
    pub(super) fn timed_out(reason: String) -> Observed {
        Observed {
            timed_out: Some(reason),
            ..Observed::default()
        }
    }

    /// A cell that cannot run on this machine.
    pub(super) fn skipped(reason: String) -> Observed {
        Observed {
            skipped: Some(reason),
            ..Observed::default()
        }
    }

    /// The outcome as the tables show it.
    pub(super) fn actual_text(&self) -> String {
        if let Some(reason) = &self.skipped {
            return format!("skipped: {reason}");
        }
        if self.timed_out.is_some() {
            return "timed-out".into();
        }
        if self.setup_failure.is_some() {
            return "cell-failed".into();
        }
        self.outcome
            .map_or("-".into(), |outcome| outcome.to_string())
    }
}

/// The rows a cell's [`Keep`] requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Required {
    pub(super) ids: BTreeSet<u64>,
    /// No other acknowledged row may be present ([`Keep::Snapshot`]).
    exact: bool,
}

/// The rows a cell's [`Keep`] requires, from the ledger as it stood when the fault came.
/// `damage_at_wal_byte`: where a [`Keep::BeforeDamage`] cell damaged its WAL.
pub(super) fn required_rows(
    keep: Keep,
    ledger: &Ledger,
    damage_at_wal_byte: Option<u64>,
) -> Required {
    let select = |keep_row: &dyn Fn(&AckedRow) -> bool| {
        ledger
            .rows()
            .iter()
            .filter(|row| keep_row(row))
            .map(|row| row.id)
            .collect()
    };
    let ids = match keep {
        Keep::All | Keep::Untouched => ledger.ids(),
        Keep::BeforeDamage => select(&|row| match (row.place, damage_at_wal_byte) {
            (Place::DatabaseFile, _) | (_, None) => true,
            (Place::Wal { end_bytes }, Some(damage)) => end_bytes.is_some_and(|end| end <= damage),
        }),
        Keep::Checkpointed => select(&|row| row.place == Place::DatabaseFile),
        Keep::Snapshot => select(&|row| row.in_snapshot),
    };
    Required {
        ids,
        exact: keep == Keep::Snapshot,
    }
}

/// Counts what became of the acknowledged rows: against the cell's floor, and against the loss
/// the report names.
pub(super) fn account_rows(
    ledger: &Ledger,
    required: &Required,
    present: &BTreeSet<u64>,
    loss: Option<&DataLoss>,
) -> Rows {
    let acknowledged = ledger.ids();
    let account = ledger.account(present, loss);
    let never_acknowledged = present.difference(&acknowledged).count();
    let beyond_exact = if required.exact {
        present
            .intersection(&acknowledged)
            .filter(|id| !required.ids.contains(id))
            .count()
    } else {
        0
    };
    Rows {
        acknowledged: acknowledged.len() as u64,
        required: required.ids.len() as u64,
        kept: present.intersection(&acknowledged).count() as u64,
        required_missing: required.ids.difference(present).count() as u64,
        lost_reported: account.lost_reported.len() as u64,
        lost_silent: account.lost_silent.len() as u64,
        unexpected: (never_acknowledged + beyond_exact) as u64,
    }
}

/// The database and its sidecars' suffixes, per engine.
pub(super) fn sidecar_suffixes(engine: Engine) -> &'static [&'static str] {
    match engine {
        Engine::Sqlite => store_sqlite::SIDECAR_SUFFIXES,
        _ => store_duckdb::SIDECAR_SUFFIXES,
    }
}

/// The moved-aside promise, judged from the directory before and after the open: every file the
/// report says it moved stands whole at its new name, no wider; and a recovery step moved aside at
/// least every file it replaced that stood before (the database's sidecars, and for a restore the
/// database too), so that one that deleted or overwrote instead fails even if it says nothing.
pub(super) fn moved_aside_checks(
    engine: Engine,
    database: &Path,
    outcome: Option<Outcome>,
    before: &DirectorySnapshot,
    after: &DirectorySnapshot,
    moved: &[MovedAside],
) -> Vec<Check> {
    let mut checks = Vec::new();
    let recovered = match outcome {
        Some(Outcome::Recovered(step)) => Some(step),
        _ => None,
    };
    if !moved.is_empty() || recovered.is_some() {
        let problems = before.check_moved_aside(after, moved);
        let detail = if problems.is_empty() {
            format!("{} file(s) moved aside whole", moved.len())
        } else {
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        };
        checks.push(Check::new(
            CheckKind::MovedAside,
            problems.is_empty(),
            detail,
        ));
    }
    if let Some(step) = recovered {
        let mut replaced: Vec<PathBuf> = sidecar_suffixes(engine)
            .iter()
            .map(|suffix| sibling(database, suffix))
            .collect();
        if step == RecoveryStep::RestoreSnapshot {
            replaced.push(database.to_owned());
        }
        let name = |path: &Path| {
            path.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        };
        let unmoved: Vec<String> = replaced
            .iter()
            .filter_map(|path| name(path))
            .filter(|file| before.entries.contains_key(file))
            .filter(|file| !moved.iter().any(|m| name(&m.from).as_ref() == Some(file)))
            .collect();
        let detail = if unmoved.is_empty() {
            format!("{step} moved aside every file it replaced")
        } else {
            format!(
                "{step} replaced {} without moving it aside",
                unmoved.join(", ")
            )
        };
        checks.push(Check::new(
            CheckKind::MovedAside,
            unmoved.is_empty(),
            detail,
        ));
    }
    checks
}

/// What a cell that kept its promises observes, and the rows of one that kept them all: for the
/// judge's tests.
#[cfg(test)]
pub(super) mod testing {
    use super::*;

    pub(in crate::matrix) fn as_expected(cell: &Cell, rows: Rows) -> Observed {
        Observed {
            outcome: Some(cell.expected),
            rows: Some(rows),
            directory_unchanged: cell.keep == Keep::Untouched,
            ..Observed::default()
        }
    }

    pub(in crate::matrix) fn all_kept() -> Rows {
        Rows {
            acknowledged: 100,
            required: 100,
            kept: 100,
            ..Rows::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::duckdb_cells::DUCKDB_FILE;

    #[test]
    fn a_recovery_that_moved_nothing_aside_fails_the_cell() -> std::io::Result<()> {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join(DUCKDB_FILE);
        std::fs::write(&database, b"database")?;
        std::fs::write(sibling(&database, ".wal"), b"a WAL that does not replay")?;
        let before = DirectorySnapshot::take(directory.path())?;
        std::fs::remove_file(sibling(&database, ".wal"))?;
        let after = DirectorySnapshot::take(directory.path())?;
        let checks = moved_aside_checks(
            Engine::Duckdb,
            &database,
            Some(Outcome::Recovered(RecoveryStep::DiscardWal)),
            &before,
            &after,
            &[],
        );
        assert!(checks.iter().any(|check| !check.holds), "{checks:?}");
        // A restore must move the database itself aside too.
        std::fs::write(sibling(&database, ".wal"), b"a WAL that does not replay")?;
        let before = DirectorySnapshot::take(directory.path())?;
        let moved_to = sibling(&database, ".broken.20260101T000000Z.wal");
        std::fs::rename(sibling(&database, ".wal"), &moved_to)?;
        let after = DirectorySnapshot::take(directory.path())?;
        let checks = moved_aside_checks(
            Engine::Duckdb,
            &database,
            Some(Outcome::Recovered(RecoveryStep::RestoreSnapshot)),
            &before,
            &after,
            &[MovedAside {
                from: sibling(&database, ".wal"),
                to: moved_to,
            }],
        );
        let failed: Vec<&Check> = checks.iter().filter(|check| !check.holds).collect();
        assert_eq!(failed.len(), 1, "{checks:?}");
        assert!(failed[0].detail.contains(DUCKDB_FILE), "{failed:?}");
        Ok(())
    }
}
