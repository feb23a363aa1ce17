//! What every cell does once its open returned, whatever its engine: the rows read back and
//! counted against the ledger and the report, the moved-aside files checked, and (after a kill)
//! the schema, into one [`Observed`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use store_core::{DataLoss, Engine, MovedAside, OpenReport};
use store_testkit::DirectorySnapshot;

use super::cells::{Cell, Keep, MatrixFault, Outcome};
use super::kill::{KillPlan, reopened_checks};
use super::observe::{
    Check, CheckKind, MovedFile, Observed, Required, account_rows, moved_aside_checks,
};
use crate::oracle::Ledger;

/// The ids in the fixtures' `items` table, read with the engine directly and read-only (it must
/// work on a read-only mount, and never checkpoint).
fn read_ids(engine: Engine, path: &Path) -> Result<BTreeSet<u64>, String> {
    store_testkit::fixtures::read_ids(engine, path).map_err(|error| store_core::cause_chain(&error))
}

/// After a refusal, with the fault gone (the hook removed, the holder stopped; a read-only mount
/// stays, so that open is read-only), the next start opens through store with the engine's
/// default policy and no migration: it must open, every row it does not report lost must be
/// there, and so must every row the cell's [`Keep`] requires. (A database a refusal left unusable
/// would pass on the refusal alone.)
fn reopen_after_refusal(
    cell: &Cell,
    engine: Engine,
    path: &Path,
    ledger: &Ledger,
    required: &Required,
) -> Check {
    let read_only = cell.fault == MatrixFault::ReadOnlyFilesystem;
    let reopened = match engine {
        Engine::Sqlite => store_sqlite::SqliteOptions::new(path)
            .read_only(read_only)
            .open()
            .map(|(_, report)| report)
            .map_err(|error| error.cause_chain()),
        _ => store_duckdb::DuckDbOptions::new(path)
            .read_only(read_only)
            .open()
            .map(|(_, report)| report)
            .map_err(|error| error.cause_chain()),
    };
    let report = match reopened {
        Ok(report) => report,
        Err(words) => {
            return Check::new(
                CheckKind::ReopenAfterRefusal,
                false,
                format!("the reopen without the fault failed: {words}"),
            );
        }
    };
    let present = match read_ids(engine, path) {
        Ok(present) => present,
        Err(words) => {
            return Check::new(
                CheckKind::ReopenAfterRefusal,
                false,
                format!("reopened ({report}), but the rows do not read: {words}"),
            );
        }
    };
    let loss = report.recovery.as_ref().map(|recovery| &recovery.lost);
    let account = ledger.account(&present, loss);
    let required_missing = if cell.keep == Keep::Untouched {
        // The cell kept the damage for this open: what the default ladder keeps is its report's.
        0
    } else {
        required.ids.difference(&present).count()
    };
    Check::new(
        CheckKind::ReopenAfterRefusal,
        account.lost_silent.is_empty() && required_missing == 0,
        format!(
            "reopened: {report}; {} rows lost without a report, {required_missing} required rows \
             missing",
            account.lost_silent.len()
        ),
    )
}

/// What a cell prepared before its open.
pub(super) struct Prepared {
    pub(super) engine: Engine,
    /// The database file.
    pub(super) path: PathBuf,
    /// Every row acknowledged before the fault, where it lived when the fault came.
    pub(super) ledger: Ledger,
    /// The rows the cell's [`Keep`] requires.
    pub(super) required: Required,
    /// How the migrating child died, in a killed cell.
    pub(super) kill: Option<KillPlan>,
    /// Promises checked before the open (the schema right after a kill).
    pub(super) checks: Vec<Check>,
}

/// What the open said, in the terms the judge needs.
pub(super) struct Opening {
    pub(super) outcome: Outcome,
    pub(super) moved: Vec<MovedAside>,
    pub(super) loss: Option<DataLoss>,
    pub(super) schema_version: Option<u32>,
    pub(super) migrations_applied: Vec<u32>,
    pub(super) detail: String,
}

impl Opening {
    /// What an open that succeeded did, from its report.
    pub(super) fn of(report: &OpenReport) -> Opening {
        Opening {
            outcome: Outcome::of(report),
            moved: report
                .recovery
                .as_ref()
                .map(|recovery| recovery.moved_aside.clone())
                .unwrap_or_default(),
            loss: report
                .recovery
                .as_ref()
                .map(|recovery| recovery.lost.clone()),
            schema_version: Some(report.schema_version),
            migrations_applied: report
                .migrations_applied
                .iter()
                .map(|migration| migration.version)
                .collect(),
            detail: report.to_string(),
        }
    }

    /// An open that was refused with `class`, having moved `moved` aside first.
    pub(super) fn refused(
        class: store_core::FailureClass,
        moved: Vec<MovedAside>,
        detail: String,
    ) -> Opening {
        Opening {
            outcome: Outcome::Propagated(class),
            moved,
            loss: None,
            schema_version: None,
            migrations_applied: Vec::new(),
            detail,
        }
    }
}

/// Judges what every cell shares once its open returned: the rows against the ledger and the
/// report, the moved-aside files, and (after a kill) the schema.
pub(super) fn finish(
    cell: &Cell,
    prepared: Prepared,
    before: &DirectorySnapshot,
    after: &DirectorySnapshot,
    opening: Opening,
) -> Observed {
    let Prepared {
        engine,
        path,
        ledger,
        required,
        kill,
        mut checks,
    } = prepared;
    let path = path.as_path();
    let directory_unchanged = before.diff(after).is_empty();
    checks.extend(moved_aside_checks(
        engine,
        path,
        Some(opening.outcome),
        before,
        after,
        &opening.moved,
    ));
    let refused = matches!(opening.outcome, Outcome::Propagated(_));
    let mut detail = opening.detail;
    let rows = if refused && cell.keep == Keep::Untouched {
        // Reading would replay the damage the cell must leave alone.
        None
    } else {
        match read_ids(engine, path) {
            Ok(present) => Some(account_rows(
                &ledger,
                &required,
                &present,
                opening.loss.as_ref(),
            )),
            Err(error) => {
                detail.push_str(&format!("; the rows do not read: {error}"));
                None
            }
        }
    };
    if refused {
        checks.push(reopen_after_refusal(cell, engine, path, &ledger, &required));
    }
    if let (Some(plan), Some(version)) = (kill, opening.schema_version) {
        checks.extend(reopened_checks(
            engine,
            path,
            plan,
            version,
            &opening.migrations_applied,
        ));
    }
    let name = |path: &Path| {
        path.file_name().map_or_else(
            || path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        )
    };
    Observed {
        outcome: Some(opening.outcome),
        rows,
        moved_aside: opening
            .moved
            .iter()
            .map(|moved| MovedFile {
                from: name(&moved.from),
                to: name(&moved.to),
            })
            .collect(),
        checks,
        directory_unchanged,
        skipped: None,
        setup_failure: None,
        timed_out: None,
        detail,
    }
}
