//! What an open did, in the words the matrix's tables, the power-loss cells and the wire share:
//! `opened(wal)`, `fell-back(delete)`, `recovered(salvage-wal)`, `propagated(Busy)`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use store_core::{FailureClass, JournalMode, OpenReport, RecoveryStep};

/// What an open did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Opened without falling back or recovering, in this journal mode (SQLite).
    Opened(Option<JournalMode>),
    /// Opened after leaving the preferred journal mode, in this one.
    FellBack(JournalMode),
    /// Opened after this recovery step.
    Recovered(RecoveryStep),
    /// Refused, with this class.
    Propagated(FailureClass),
}

/// The DuckDB recovery steps, for reading an outcome back.
const RECOVERY_STEPS: [RecoveryStep; 3] = [
    RecoveryStep::SalvageWal,
    RecoveryStep::DiscardWal,
    RecoveryStep::RestoreSnapshot,
];

impl Outcome {
    /// What an open that succeeded did, from its report.
    pub(crate) fn of(report: &OpenReport) -> Outcome {
        match (&report.recovery, report.journal_mode) {
            (Some(recovery), _) => Outcome::Recovered(recovery.step),
            (None, Some(mode)) if report.fell_back() => Outcome::FellBack(mode),
            (None, mode) => Outcome::Opened(mode),
        }
    }

    /// Reads back what [`Outcome`]'s `Display` wrote.
    pub(crate) fn parse(text: &str) -> Option<Outcome> {
        let mut candidates = vec![Outcome::Opened(None)];
        for mode in JournalMode::ALL {
            candidates.extend([Outcome::Opened(Some(mode)), Outcome::FellBack(mode)]);
        }
        candidates.extend(RECOVERY_STEPS.map(Outcome::Recovered));
        candidates.extend(FailureClass::ALL.map(Outcome::Propagated));
        candidates
            .into_iter()
            .find(|outcome| outcome.to_string() == text)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Opened(None) => formatter.write_str("opened"),
            Outcome::Opened(Some(mode)) => write!(formatter, "opened({mode})"),
            Outcome::FellBack(mode) => write!(formatter, "fell-back({mode})"),
            Outcome::Recovered(step) => write!(formatter, "recovered({step})"),
            Outcome::Propagated(class) => write!(formatter, "propagated({class})"),
        }
    }
}

/// As the tables write it (`fell-back(delete)`): the engines' types know no serde.
impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Outcome {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Outcome, D::Error> {
        let text = String::deserialize(deserializer)?;
        Outcome::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown outcome `{text}`")))
    }
}
