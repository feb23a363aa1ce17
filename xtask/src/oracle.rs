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
