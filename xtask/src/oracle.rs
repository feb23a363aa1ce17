//! The row oracle the fault matrix and the torture share: which acknowledged rows a reported loss
//! excuses, so that a report can never excuse more than the range it names.
//!
//! Every acknowledged row is entered in a [`Ledger`] with where it lived when the fault came (the
//! database file, or the WAL up to a byte offset) and whether the last pre-migration snapshot
//! holds it. A [`DataLoss`] then excuses exactly:
//!
//! - `CommitsAfterWalByte { byte_offset }`: rows still in the WAL whose commit ended after that
//!   byte (a commit cut by the offset is lost with it);
//! - `UncheckpointedCommits`: rows still in the WAL;
//! - `EverythingSinceSnapshot`: rows the snapshot does not hold;
//! - `Nothing`, and any kind this oracle does not know yet: no row.
//!
//! A missing row that its report does not excuse is a silent loss.
//!
//! What a configuration *promises* is a second, stricter rule ([`Promise`]): a report that names a
//! loss explains it, it does not allow it. Under a promise of no loss, an acknowledged commit
//! missing after the fault fails the check whether or not a report names it.

use std::collections::BTreeSet;

use store_core::DataLoss;

/// Where an acknowledged row lived when the fault came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// In the database file: checkpointed, or written by an engine without a WAL of its own.
    DatabaseFile,
    /// In the WAL only, its commit ending at this byte of the WAL (`None`: not measured, and then
    /// no WAL offset excuses it).
    Wal { end_bytes: Option<u64> },
}

/// One acknowledged row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckedRow {
    /// Its id.
    pub id: u64,
    /// Where it lived.
    pub place: Place,
    /// Whether the last pre-migration snapshot holds it.
    pub in_snapshot: bool,
}

/// Every acknowledged row, in acknowledgement order.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    rows: Vec<AckedRow>,
}

/// What a check of the ledger against the rows present found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    /// Acknowledged rows checked.
    pub checked: u64,
    /// Missing, and inside the loss the report names.
    pub lost_reported: Vec<u64>,
    /// Missing, and outside anything the report names: a silent loss.
    pub lost_silent: Vec<u64>,
}

impl Ledger {
    /// Enters a row acknowledged just now.
    pub fn acknowledge(&mut self, id: u64, place: Place) {
        self.rows.push(AckedRow {
            id,
            place,
            in_snapshot: false,
        });
    }

    /// Every row so far now lives in the database file (a checkpoint ran).
    pub fn checkpoint(&mut self) {
        for row in &mut self.rows {
            row.place = Place::DatabaseFile;
        }
    }

    /// A pre-migration snapshot was taken: it holds every row so far (store checkpoints first).
    pub fn snapshot(&mut self) {
        for row in &mut self.rows {
            row.in_snapshot = true;
        }
    }

    /// Drops rows (found lost and counted once) from further checks.
    pub fn forget(&mut self, ids: &BTreeSet<u64>) {
        self.rows.retain(|row| !ids.contains(&row.id));
    }

    /// The rows, in acknowledgement order.
    pub fn rows(&self) -> &[AckedRow] {
        &self.rows
    }

    /// The ids of every row.
    pub fn ids(&self) -> BTreeSet<u64> {
        self.rows.iter().map(|row| row.id).collect()
    }

    /// The last row's WAL end, if it lives in the WAL with a measured end.
    pub fn last_wal_end_bytes(&self) -> Option<u64> {
        self.rows.iter().rev().find_map(|row| match row.place {
            Place::Wal { end_bytes } => end_bytes,
            Place::DatabaseFile => None,
        })
    }

    /// Checks the rows present against the ledger and the loss the open reported (`None`: no
    /// recovery, so nothing is excused).
    pub fn account(&self, present: &BTreeSet<u64>, loss: Option<&DataLoss>) -> Account {
        let mut account = Account {
            checked: self.rows.len() as u64,
            ..Account::default()
        };
        for row in self.rows.iter().filter(|row| !present.contains(&row.id)) {
            if loss.is_some_and(|loss| excuses(loss, row)) {
                account.lost_reported.push(row.id);
            } else {
                account.lost_silent.push(row.id);
            }
        }
        account
    }
}

/// What a configuration promises of acknowledged commits across a fault: the one rule the power
/// cells, the power and crash campaigns judge by. What a promise allows to go is counted as lost
/// by design and shown; anything else missing is lost beyond the promise, a report or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promise {
    /// Every acknowledged commit survives (store's durable defaults, a SIGKILL, a salvage of
    /// damage after the last commit). A loss a report names is a loss all the same.
    EveryAcknowledged,
    /// Commits the last checkpoint did not reach may be undone, newest first; never one the
    /// checkpoint made durable, never an older one while a newer survives. SQLite's WAL with
    /// `synchronous=NORMAL` (the WAL is synced only at a checkpoint), and DuckDB where a WAL's
    /// name is durable only with its directory's fsync, which DuckDB never makes.
    SinceLastCheckpoint,
    /// The last acknowledged commit may be undone, no other: SQLite's rollback journal with
    /// `synchronous=FULL`, whose unlink at commit is not made durable, so a cut can bring the last
    /// journal back hot and roll its commit back.
    LastCommit,
    /// Exactly the rows the pre-migration snapshot holds: the policy restores the snapshot as its
    /// only recovery and the damage calls for it. Every row the snapshot holds survives; every
    /// other acknowledged row is gone and the report names it (a row still there means the
    /// database was not the snapshot's; one gone unnamed is a silent loss).
    ExactlySnapshot,
}

/// A ledger judged against a [`Promise`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judged {
    /// The rows present against the ledger and the report ([`Ledger::account`]).
    pub account: Account,
    /// Missing, and allowed to go by the promise.
    pub lost_by_design: Vec<u64>,
    /// Missing beyond the promise: a failure, whether a report names it or not.
    pub lost_beyond_promise: Vec<u64>,
    /// Present, though the promise says they must be gone ([`Promise::ExactlySnapshot`]).
    pub present_against_promise: Vec<u64>,
}

impl Judged {
    /// Every acknowledged row missing.
    pub fn missing(&self) -> usize {
        self.lost_by_design.len() + self.lost_beyond_promise.len()
    }
}

impl Promise {
    /// As the tables write it.
    pub fn describe(self) -> &'static str {
        match self {
            Promise::EveryAcknowledged => "every acknowledged",
            Promise::SinceLastCheckpoint => "since last checkpoint",
            Promise::LastCommit => "last commit",
            Promise::ExactlySnapshot => "exactly snapshot",
        }
    }

    /// Judges the rows present after the fault against the ledger, the report's loss (`None`: no
    /// recovery) and this promise.
    pub fn judge(
        self,
        ledger: &Ledger,
        present: &BTreeSet<u64>,
        loss: Option<&DataLoss>,
    ) -> Judged {
        let account = ledger.account(present, loss);
        let rows = ledger.rows();
        // Only a suffix of the acknowledged commits may go: none older than a survivor.
        let newest_present = rows
            .iter()
            .rposition(|row| present.contains(&row.id))
            .map_or(0, |position| position + 1);
        let allowed = |position: usize, row: &AckedRow| match self {
            Promise::EveryAcknowledged => false,
            Promise::SinceLastCheckpoint => {
                position >= newest_present && matches!(row.place, Place::Wal { .. })
            }
            Promise::LastCommit => position + 1 == rows.len(),
            Promise::ExactlySnapshot => !row.in_snapshot && account.lost_reported.contains(&row.id),
        };
        let mut judged = Judged::default();
        for (position, row) in rows.iter().enumerate() {
            if present.contains(&row.id) {
                if self == Promise::ExactlySnapshot && !row.in_snapshot {
                    judged.present_against_promise.push(row.id);
                }
            } else if allowed(position, row) {
                judged.lost_by_design.push(row.id);
            } else {
                judged.lost_beyond_promise.push(row.id);
            }
        }
        judged.account = account;
        judged
    }
}

/// Whether `loss` covers `row`: see the module's documentation.
pub fn excuses(loss: &DataLoss, row: &AckedRow) -> bool {
    match (loss, row.place) {
        (
            DataLoss::CommitsAfterWalByte { byte_offset }
            | DataLoss::DroppedWalTail { byte_offset, .. },
            Place::Wal { end_bytes },
        ) => end_bytes.is_some_and(|end| end > *byte_offset),
        (DataLoss::UncheckpointedCommits, Place::Wal { .. }) => true,
        (DataLoss::EverythingSinceSnapshot { .. }, _) => !row.in_snapshot,
        // Nothing, a WAL loss of a row in the database file, and kinds added later: a new kind
        // excuses nothing until this oracle learns its range.
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    /// 5 rows in the database file, then 5 in the WAL ending at bytes 100, 200, ... 500.
    fn ledger() -> Ledger {
        let mut ledger = Ledger::default();
        for id in 1..=5 {
            ledger.acknowledge(id, Place::DatabaseFile);
        }
        for id in 6..=10 {
            ledger.acknowledge(
                id,
                Place::Wal {
                    end_bytes: Some((id - 5) * 100),
                },
            );
        }
        ledger
    }

    fn present(ids: impl IntoIterator<Item = u64>) -> BTreeSet<u64> {
        ids.into_iter().collect()
    }

    #[test]
    fn a_wal_offset_excuses_only_the_commits_after_it() {
        let ledger = ledger();
        // Cut at byte 250: commits ending at 300, 400, 500 are lost with a report.
        let loss = DataLoss::CommitsAfterWalByte { byte_offset: 250 };
        let account = ledger.account(&present(1..=7), Some(&loss));
        assert_eq!(account.lost_reported, [8, 9, 10]);
        assert!(account.lost_silent.is_empty());
        // The same report does not excuse a commit that ended before the cut, nor a row in the
        // database file.
        let account = ledger.account(&present([2, 3, 4, 5, 6]), Some(&loss));
        assert_eq!(account.lost_reported, [8, 9, 10]);
        assert_eq!(account.lost_silent, [1, 7]);
        assert_eq!(account.checked, 10);
    }

    #[test]
    fn a_discarded_wal_excuses_the_wal_rows_only() {
        let ledger = ledger();
        let account = ledger.account(&present(2..=5), Some(&DataLoss::UncheckpointedCommits));
        assert_eq!(account.lost_reported, [6, 7, 8, 9, 10]);
        assert_eq!(account.lost_silent, [1]);
    }

    #[test]
    fn a_restored_snapshot_excuses_the_rows_written_since_only() {
        let mut ledger = ledger();
        ledger.checkpoint();
        ledger.snapshot();
        ledger.acknowledge(11, Place::DatabaseFile);
        let loss = DataLoss::EverythingSinceSnapshot {
            taken_at: SystemTime::UNIX_EPOCH,
        };
        let account = ledger.account(&present(1..=10), Some(&loss));
        assert_eq!(account.lost_reported, [11]);
        assert!(account.lost_silent.is_empty());
        // A restore that produced an empty database: the snapshot's rows are lost silently.
        let account = ledger.account(&present([]), Some(&loss));
        assert_eq!(account.lost_silent, (1..=10).collect::<Vec<_>>());
    }

    /// Promise: under a promise of no loss, a report that names the loss does not excuse it.
    #[test]
    fn a_reported_loss_is_a_loss_under_a_promise_of_none() {
        let ledger = ledger();
        let loss = DataLoss::UncheckpointedCommits;
        let judged = Promise::EveryAcknowledged.judge(&ledger, &present(1..=5), Some(&loss));
        assert_eq!(judged.account.lost_reported, [6, 7, 8, 9, 10]);
        assert_eq!(judged.lost_beyond_promise, [6, 7, 8, 9, 10]);
        assert!(judged.lost_by_design.is_empty());
    }

    /// Promise: since the last checkpoint, only a suffix of the commits after it may go.
    #[test]
    fn since_the_last_checkpoint_allows_a_suffix_of_the_wal_only() {
        let ledger = ledger();
        let judge = |ids: &[u64]| {
            let judged =
                Promise::SinceLastCheckpoint.judge(&ledger, &present(ids.iter().copied()), None);
            (judged.lost_by_design, judged.lost_beyond_promise)
        };
        // Every commit after the checkpoint undone: allowed.
        assert_eq!(judge(&[1, 2, 3, 4, 5]), (vec![6, 7, 8, 9, 10], vec![]));
        // All 10 lost: the five the checkpoint made durable are beyond the promise.
        assert_eq!(judge(&[]), (vec![6, 7, 8, 9, 10], vec![1, 2, 3, 4, 5]));
        // A hole before a survivor: beyond.
        assert_eq!(judge(&[1, 2, 3, 4, 5, 6, 8]), (vec![9, 10], vec![7]));
    }

    /// Promise: DELETE with FULL may undo the last commit and no other.
    #[test]
    fn the_last_commit_only() {
        let ledger = ledger();
        let judged = Promise::LastCommit.judge(&ledger, &present(1..=9), None);
        assert_eq!(
            (judged.lost_by_design, judged.lost_beyond_promise),
            (vec![10], vec![])
        );
        let judged = Promise::LastCommit.judge(&ledger, &present(1..=8), None);
        assert_eq!(
            (judged.lost_by_design, judged.lost_beyond_promise),
            (vec![10], vec![9])
        );
    }

    /// Promise: a restore keeps exactly the snapshot's rows, and names every other row's loss.
    #[test]
    fn exactly_the_snapshot_neither_stale_nor_empty_nor_unrestored() {
        let mut ledger = ledger();
        ledger.checkpoint();
        ledger.snapshot();
        ledger.acknowledge(11, Place::Wal { end_bytes: None });
        let loss = DataLoss::EverythingSinceSnapshot {
            taken_at: SystemTime::UNIX_EPOCH,
        };
        let judge = |ids: &[u64], loss: Option<&DataLoss>| {
            Promise::ExactlySnapshot.judge(&ledger, &present(ids.iter().copied()), loss)
        };
        let restored = judge(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], Some(&loss));
        assert!(
            restored.lost_beyond_promise.is_empty() && restored.present_against_promise.is_empty(),
            "{restored:?}"
        );
        assert_eq!(restored.lost_by_design, [11]);
        // An empty restore, a stale snapshot, an unrestored database, an unnamed loss: each fails.
        assert_eq!(judge(&[], Some(&loss)).lost_beyond_promise.len(), 10);
        assert_eq!(judge(&[1, 2, 3], Some(&loss)).lost_beyond_promise.len(), 7);
        assert_eq!(
            judge(&(1..=11).collect::<Vec<_>>(), None).present_against_promise,
            [11]
        );
        assert_eq!(
            judge(&(1..=10).collect::<Vec<_>>(), None).lost_beyond_promise,
            [11]
        );
    }

    #[test]
    fn without_a_reported_loss_every_missing_row_is_silent() {
        let ledger = ledger();
        let account = ledger.account(&present(1..=9), None);
        assert_eq!(account.lost_silent, [10]);
        let account = ledger.account(&present(1..=9), Some(&DataLoss::Nothing));
        assert_eq!(account.lost_silent, [10]);
        let mut checkpointed = ledger;
        checkpointed.checkpoint();
        let account = checkpointed.account(&present(1..=9), Some(&DataLoss::UncheckpointedCommits));
        assert_eq!(
            account.lost_silent,
            [10],
            "a checkpointed row is no WAL commit"
        );
    }
}
