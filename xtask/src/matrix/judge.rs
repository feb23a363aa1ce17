//! The parent's verdict on a cell: what its child observed against the cell's written
//! expectation and against the promises store makes whatever the cell.

use super::cells::{Cell, Keep};
use super::observe::{CheckKind, Observed};
use crate::limits::skips_fail;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    AsExpected,
    /// The cell could not run here (a capability is missing): never a pass, and a failure under
    /// CI ([`skips_fail`]).
    Skipped,
    /// The cell's child ran past its time limit and was killed: a failure.
    TimedOut,
    /// The cell could not set up its fault (or the kill landed elsewhere): a failure.
    SetupFailed,
    /// Another outcome than the expected one.
    Differs,
    /// A cell that must leave the directory untouched changed it.
    Touched,
    /// Rows the cell's [`Keep`] requires are missing (or could not be read).
    LostRows,
    /// Rows are present that must not be.
    WrongRows,
    /// Acknowledged rows are missing outside anything the report names.
    SilentLoss,
    /// A moved-aside file is missing, altered or wider, or a recovery moved nothing aside.
    MovedAside,
    /// The schema version or a migration's effects are wrong after a kill or a reopen.
    Schema,
    /// A salvage reported a loss starting elsewhere than the end of the last commit before the
    /// damage.
    LossBoundary,
}

impl Verdict {
    pub(super) fn failed(self) -> bool {
        self.fails(skips_fail())
    }

    /// Whether the run fails on it where skips fail (under CI) or not.
    fn fails(self, skips_fail: bool) -> bool {
        match self {
            Verdict::AsExpected => false,
            Verdict::Skipped => skips_fail,
            _ => true,
        }
    }

    /// The verdict as the tables and the JSON write it.
    pub(super) fn mark(self) -> &'static str {
        match self {
            Verdict::AsExpected => "ok",
            Verdict::Skipped => "skip",
            Verdict::SetupFailed => "SETUP",
            Verdict::TimedOut => "TIMEOUT",
            Verdict::Differs => "DIFF",
            Verdict::Touched => "TOUCH",
            Verdict::LostRows => "LOST",
            Verdict::WrongRows => "ROWS",
            Verdict::SilentLoss => "SILENT",
            Verdict::MovedAside => "MOVED",
            Verdict::Schema => "SCHEMA",
            Verdict::LossBoundary => "BOUND",
        }
    }
}

impl CheckKind {
    /// The verdict of a cell whose check of this kind failed.
    fn verdict(self) -> Verdict {
        match self {
            CheckKind::MovedAside => Verdict::MovedAside,
            CheckKind::FaultFired => Verdict::SetupFailed,
            CheckKind::ReopenAfterRefusal => Verdict::LostRows,
            CheckKind::LossBoundary => Verdict::LossBoundary,
            CheckKind::SchemaAfterKill
            | CheckKind::SchemaAfterReopen
            | CheckKind::MigrationsAppliedOnce => Verdict::Schema,
        }
    }
}

/// A cell's verdict (its first failure, if any) and every reason it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Judgement {
    pub(super) verdict: Verdict,
    pub(super) reasons: Vec<String>,
}

pub(super) fn judge(cell: &Cell, observed: &Observed) -> Judgement {
    if let Some(reason) = &observed.skipped {
        return Judgement {
            verdict: Verdict::Skipped,
            reasons: vec![reason.clone()],
        };
    }
    if let Some(reason) = &observed.timed_out {
        return Judgement {
            verdict: Verdict::TimedOut,
            reasons: vec![reason.clone()],
        };
    }
    if let Some(reason) = &observed.setup_failure {
        return Judgement {
            verdict: Verdict::SetupFailed,
            reasons: vec![reason.clone()],
        };
    }
    let mut failures: Vec<(Verdict, String)> = Vec::new();
    if observed.outcome != Some(cell.expected) {
        failures.push((
            Verdict::Differs,
            format!(
                "expected {}, got {}",
                cell.expected,
                observed
                    .outcome
                    .map_or("nothing".into(), |outcome| outcome.to_string())
            ),
        ));
    }
    if cell.keep == Keep::Untouched && !observed.directory_unchanged {
        failures.push((
            Verdict::Touched,
            "the directory changed, though the database must be left untouched".into(),
        ));
    }
    match &observed.rows {
        None if cell.keep != Keep::Untouched => failures.push((
            Verdict::LostRows,
            "the rows could not be read after the open".into(),
        )),
        None => {}
        Some(rows) => {
            if rows.required_missing > 0 {
                failures.push((
                    Verdict::LostRows,
                    format!(
                        "{} of {} required rows missing",
                        rows.required_missing, rows.required
                    ),
                ));
            }
            if rows.unexpected > 0 {
                failures.push((
                    Verdict::WrongRows,
                    format!("{} rows present that must not be", rows.unexpected),
                ));
            }
            if rows.lost_silent > 0 {
                failures.push((
                    Verdict::SilentLoss,
                    format!(
                        "{} acknowledged rows lost without a report naming them",
                        rows.lost_silent
                    ),
                ));
            }
        }
    }
    for check in observed.checks.iter().filter(|check| !check.holds) {
        failures.push((
            check.kind.verdict(),
            format!("{}: {}", check.kind.as_str(), check.detail),
        ));
    }
    Judgement {
        verdict: failures
            .first()
            .map_or(Verdict::AsExpected, |(verdict, _)| *verdict),
        reasons: failures.into_iter().map(|(_, reason)| reason).collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use store_core::files::sibling;
    use store_core::{DataLoss, Engine, MovedAside, RecoveryStep};
    use store_testkit::DirectorySnapshot;

    use super::*;
    use crate::matrix::cells::{Outcome, cell};
    use crate::matrix::duckdb_cells::DUCKDB_FILE;
    use crate::matrix::observe::testing::{all_kept, as_expected};
    use crate::matrix::observe::{Check, Rows, account_rows, moved_aside_checks, required_rows};
    use crate::oracle::{Ledger, Place};

    #[test]
    fn judging_follows_the_written_expectation() {
        let cell = cell("duckdb/wal-flipped-byte/default");
        let rows = Rows {
            acknowledged: 100,
            required: 90,
            kept: 90,
            lost_reported: 10,
            ..Rows::default()
        };
        let mut observed = as_expected(cell, rows);
        assert_eq!(judge(cell, &observed).verdict, Verdict::AsExpected);
        observed.rows = Some(Rows {
            kept: 89,
            required_missing: 1,
            lost_reported: 11,
            ..rows
        });
        assert_eq!(judge(cell, &observed).verdict, Verdict::LostRows);
        observed.outcome = Some(Outcome::Opened(None));
        assert_eq!(judge(cell, &observed).verdict, Verdict::Differs);
        observed.skipped = Some("no mount rights".into());
        assert_eq!(judge(cell, &observed).verdict, Verdict::Skipped);
        // A skip never passes under CI; elsewhere it is shown, not failed.
        assert!(Verdict::Skipped.fails(true));
        assert!(!Verdict::Skipped.fails(false));
        // A child past its time limit fails, whatever it observed before.
        observed.skipped = None;
        observed.timed_out = Some("timed out after 300 s and was killed".into());
        let judgement = judge(cell, &observed);
        assert_eq!(judgement.verdict, Verdict::TimedOut);
        assert!(Verdict::TimedOut.fails(false));
    }

    #[test]
    fn a_silent_loss_fails_every_cell_the_torn_tail_included() {
        let silent = Rows {
            kept: 95,
            required: 95,
            lost_silent: 5,
            ..all_kept()
        };
        // A loss the report does not name fails a cell even above its floor: since the WAL
        // reader, the torn tail's too.
        for name in ["duckdb/wal-garbage/default", "duckdb/torn-wal-tail/default"] {
            let cell = cell(name);
            let judgement = judge(cell, &as_expected(cell, silent));
            assert_eq!(
                judgement.verdict,
                Verdict::SilentLoss,
                "{name}: {judgement:?}"
            );
        }
    }

    #[test]
    fn a_snapshot_restore_must_bring_back_exactly_the_snapshot_rows() {
        let cell = cell("duckdb/wal-garbage/snapshot-only");
        // The history the snapshot cells write: 60 rows, the snapshot, 20 checkpointed and 20 in
        // the WAL.
        let mut ledger = Ledger::default();
        for id in 1..=60 {
            ledger.acknowledge(id, Place::DatabaseFile);
        }
        ledger.snapshot();
        for id in 61..=80 {
            ledger.acknowledge(id, Place::DatabaseFile);
        }
        for id in 81..=100 {
            ledger.acknowledge(
                id,
                Place::Wal {
                    end_bytes: Some(id * 100),
                },
            );
        }
        let required = required_rows(Keep::Snapshot, &ledger, None);
        assert_eq!(required.ids, (1..=60).collect());
        let loss = DataLoss::EverythingSinceSnapshot {
            taken_at: std::time::SystemTime::UNIX_EPOCH,
        };
        let verdict = |present: BTreeSet<u64>| {
            let rows = account_rows(&ledger, &required, &present, Some(&loss));
            judge(cell, &as_expected(cell, rows)).verdict
        };
        assert_eq!(verdict((1..=60).collect()), Verdict::AsExpected);
        // A restore that produced an empty database.
        assert_eq!(verdict(BTreeSet::new()), Verdict::LostRows);
        // One that lost a row the snapshot held.
        assert_eq!(verdict((2..=60).collect()), Verdict::LostRows);
        // One that kept rows written after the snapshot: not the snapshot's database.
        assert_eq!(verdict((1..=61).collect()), Verdict::WrongRows);
        // Rows nobody acknowledged.
        assert_eq!(
            verdict((1..=60).chain([1000]).collect()),
            Verdict::WrongRows
        );
    }

    #[test]
    fn a_report_excuses_only_the_rows_inside_its_loss() {
        let cell = cell("duckdb/wal-garbage/discard-only");
        let mut ledger = Ledger::default();
        for id in 1..=80 {
            ledger.acknowledge(id, Place::DatabaseFile);
        }
        for id in 81..=100 {
            ledger.acknowledge(
                id,
                Place::Wal {
                    end_bytes: Some(id),
                },
            );
        }
        let required = required_rows(Keep::Checkpointed, &ledger, None);
        let present: BTreeSet<u64> = (2..=80).collect();
        let rows = account_rows(
            &ledger,
            &required,
            &present,
            Some(&DataLoss::UncheckpointedCommits),
        );
        assert_eq!((rows.lost_reported, rows.lost_silent), (20, 1));
        let judgement = judge(cell, &as_expected(cell, rows));
        assert_eq!(judgement.verdict, Verdict::LostRows);
        assert!(
            judgement
                .reasons
                .iter()
                .any(|reason| reason.contains("without a report")),
            "{judgement:?}"
        );
    }

    /// A DuckDB directory with a WAL that a recovery then treats as `handle` says, and the
    /// report's list of what it moved.
    fn recovery_leaving(
        handle: impl FnOnce(&Path, &Path) -> std::io::Result<()>,
    ) -> std::io::Result<Vec<Check>> {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join(DUCKDB_FILE);
        let wal = sibling(&database, ".wal");
        std::fs::write(&database, b"database")?;
        std::fs::write(&wal, b"a WAL that does not replay")?;
        let before = DirectorySnapshot::take(directory.path())?;
        let moved_to = sibling(&database, ".discarded-wal.20260101T000000Z.wal");
        handle(&wal, &moved_to)?;
        let after = DirectorySnapshot::take(directory.path())?;
        let reported = [MovedAside {
            from: wal,
            to: moved_to,
        }];
        Ok(moved_aside_checks(
            Engine::Duckdb,
            &database,
            Some(Outcome::Recovered(RecoveryStep::DiscardWal)),
            &before,
            &after,
            &reported,
        ))
    }

    #[test]
    fn a_moved_aside_file_that_is_missing_or_altered_fails_the_cell() -> std::io::Result<()> {
        let cell = cell("duckdb/wal-garbage/discard-only");
        let verdict = |checks: Vec<Check>| {
            let rows = Rows {
                required: 80,
                kept: 80,
                lost_reported: 20,
                ..all_kept()
            };
            let observed = Observed {
                checks,
                ..as_expected(cell, rows)
            };
            judge(cell, &observed).verdict
        };
        let moved = recovery_leaving(|from, to| std::fs::rename(from, to))?;
        assert!(moved.iter().all(|check| check.holds), "{moved:?}");
        assert_eq!(verdict(moved), Verdict::AsExpected);

        let deleted = recovery_leaving(|from, _| std::fs::remove_file(from))?;
        assert_eq!(verdict(deleted), Verdict::MovedAside);
        let truncated = recovery_leaving(|from, to| {
            std::fs::rename(from, to)?;
            std::fs::OpenOptions::new().write(true).open(to)?.set_len(3)
        })?;
        assert_eq!(verdict(truncated), Verdict::MovedAside);
        Ok(())
    }

    /// Promise: the seeded-damage cell fails when one case's salvage reports its loss starting
    /// anywhere but the end of the last commit before the damage, even with every row accounted
    /// for; and one case whose outcome differs makes the merged cell's outcome differ.
    #[test]
    fn the_seeded_damage_cell_fails_on_a_wrong_loss_boundary_or_one_differing_case() {
        let cell = cell("duckdb/wal-flipped-byte-seeded/default");
        let case = |boundary_holds: bool| Observed {
            checks: vec![Check::new(
                CheckKind::LossBoundary,
                boundary_holds,
                "the report's loss starts at Some(4242)",
            )],
            ..as_expected(cell, all_kept())
        };
        let right = case(true).and(cell, case(true));
        assert_eq!(judge(cell, &right).verdict, Verdict::AsExpected);
        let wrong = case(true).and(cell, case(false));
        assert_eq!(judge(cell, &wrong).verdict, Verdict::LossBoundary);
        let differing = Observed {
            outcome: Some(Outcome::Opened(None)),
            ..case(true)
        };
        let merged = case(true).and(cell, differing).and(cell, case(true));
        assert_eq!(judge(cell, &merged).verdict, Verdict::Differs);
        assert_eq!(
            merged.rows.map(|rows| rows.acknowledged),
            Some(all_kept().acknowledged * 3)
        );
    }

    #[test]
    fn a_killed_cell_fails_on_a_wrong_schema_check() {
        let cell = cell("duckdb/killed-inside-migration/default");
        let observed = Observed {
            checks: vec![
                Check::new(CheckKind::SchemaAfterKill, true, "version 3"),
                Check::new(CheckKind::SchemaAfterReopen, true, "version 4"),
                Check::new(CheckKind::MigrationsAppliedOnce, false, "applied [3, 4]"),
            ],
            ..as_expected(cell, all_kept())
        };
        let judgement = judge(cell, &observed);
        assert_eq!(judgement.verdict, Verdict::Schema);
        assert_eq!(judgement.reasons.len(), 1, "{judgement:?}");
        // A cell that could not set up its kill fails too, never passes.
        let setup = Observed::setup_failed("the kill landed after the commit".into());
        assert_eq!(judge(cell, &setup).verdict, Verdict::SetupFailed);
        assert!(Verdict::SetupFailed.failed());
    }

    #[test]
    fn an_untouched_cell_fails_when_the_directory_changed() {
        let cell = cell("duckdb/wal-garbage/strict");
        let mut observed = Observed {
            outcome: Some(cell.expected),
            directory_unchanged: true,
            ..Observed::default()
        };
        assert_eq!(judge(cell, &observed).verdict, Verdict::AsExpected);
        observed.directory_unchanged = false;
        assert_eq!(judge(cell, &observed).verdict, Verdict::Touched);
        // Elsewhere, rows that cannot be read count as lost.
        let other = crate::matrix::cells::cell("sqlite/none/default");
        let unread = Observed {
            rows: None,
            ..as_expected(other, all_kept())
        };
        assert_eq!(judge(other, &unread).verdict, Verdict::LostRows);
    }
}
