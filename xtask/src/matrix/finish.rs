//! What every cell does once its open returned, whatever its engine: the rows read back and
//! counted against the ledger and the report, the moved-aside files checked, and (after a kill)
//! the schema, into one [`Observed`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use store_core::{DataLoss, Engine, MovedAside, OpenReport};
use store_testkit::DirectorySnapshot;

use super::cells::{Cell, Keep, Outcome};
use super::kill::{KillPlan, reopened_checks};
use super::observe::{Check, MovedFile, Observed, Required, account_rows, moved_aside_checks};
use crate::oracle::Ledger;

/// The ids in the fixtures' `items` table, read with the engine directly and read-only (it must
/// work on a read-only mount, and never checkpoint).
fn read_ids(engine: Engine, path: &Path) -> Result<BTreeSet<u64>, String> {
    store_testkit::fixtures::read_ids(engine, path).map_err(|error| store_core::cause_chain(&error))
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
        detail,
    }
}
