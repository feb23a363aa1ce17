//! What a checkup means for the operator, as one word and one exit code.

use std::fmt;

use serde::Serialize;
use store_core::pending::InterruptedRecovery;

use crate::checkup::{Outlook, WalProbe};
use crate::ownership::OwnershipFinding;

/// The exit code of a usage error (a bad flag, a missing `PATH`): `EX_USAGE` of `sysexits.h`.
/// clap's own is 2, which here means "will recover".
pub const EXIT_USAGE: u8 = 64;

/// The exit code when the path cannot be examined (neither it nor its directory exists, or it
/// cannot be read), or names no file: `EX_NOINPUT` of `sysexits.h`.
pub const EXIT_NO_INPUT: u8 = 66;

/// What a database (or a whole checkup: the worst of its databases) means for the operator, best
/// first: the order is the order of severity, so `max` is the worst. Each has its exit code (the
/// table is in the [crate docs](crate#exit-codes)).
///
/// ```
/// use store_doctor::Verdict;
///
/// assert_eq!(Verdict::Healthy.exit_code(), 0);
/// assert_eq!(Verdict::WillRecover.max(Verdict::FallsBack), Verdict::WillRecover);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Verdict {
    /// Opens as it is, in the policy's first journal mode.
    Healthy,
    /// Opens, but on a weaker rung than the policy's first: WAL does not work here.
    FallsBack,
    /// An open would run a recovery step (moving damaged files aside), or complete one a crash
    /// or power cut interrupted.
    WillRecover,
    /// An open would fail; or the database is corrupt, not a database, or of an engine this
    /// build cannot examine.
    Fails,
    /// Nothing at the path (its directory exists): an open would create the database.
    NoDatabase,
}

impl Verdict {
    /// Every verdict, best first.
    pub const ALL: [Verdict; 5] = [
        Verdict::Healthy,
        Verdict::FallsBack,
        Verdict::WillRecover,
        Verdict::Fails,
        Verdict::NoDatabase,
    ];

    /// The process exit code `store-doctor` ends with.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Healthy => 0,
            Verdict::FallsBack => 1,
            Verdict::WillRecover => 2,
            Verdict::Fails => 3,
            Verdict::NoDatabase => EXIT_NO_INPUT,
        }
    }

    /// The name in text and JSON (`healthy`, `falls-back`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::FallsBack => "falls-back",
            Verdict::WillRecover => "will-recover",
            Verdict::Fails => "fails",
            Verdict::NoDatabase => "no-database",
        }
    }

    /// What it means, for a person.
    pub fn meaning(self) -> &'static str {
        match self {
            Verdict::Healthy => "every database opens as it is",
            Verdict::FallsBack => "opens, but on a weaker rung: WAL does not work here",
            Verdict::WillRecover => {
                "an open would recover (files moved aside), or an interrupted recovery is pending"
            }
            Verdict::Fails => "an open would fail, or a database is corrupt",
            Verdict::NoDatabase => "no database at the path; an open would create it",
        }
    }

    /// The verdict of one database: its outlook, made at least [`WillRecover`](Self::WillRecover)
    /// by a pending recovery record (the next read-write open completes that recovery).
    pub fn of_database(outlook: &Outlook, recovery_pending: Option<&InterruptedRecovery>) -> Self {
        let of_outlook = match outlook {
            Outlook::Opens {
                falls_back: true, ..
            } => Verdict::FallsBack,
            Outlook::Opens { .. } | Outlook::OpenInThisProcess => Verdict::Healthy,
            Outlook::Recovers { .. } => Verdict::WillRecover,
            Outlook::Corrupt { .. }
            | Outlook::Fails { .. }
            | Outlook::NotADatabase
            | Outlook::EngineNotEnabled { .. } => Verdict::Fails,
            Outlook::Creates { .. } => Verdict::NoDatabase,
        };
        match recovery_pending {
            Some(_) => of_outlook.max(Verdict::WillRecover),
            None => of_outlook,
        }
    }

    /// What an ownership record beside a database adds to its verdict.
    ///
    /// A whole record is [`Healthy`](Self::Healthy) whoever owns it: owning is how a database on
    /// a share is kept to one machine, not a fault (an open from another client is refused at
    /// once and changes nothing; a crashed owner on this machine is taken over by the next open).
    /// A bad or unreadable record is [`Fails`](Self::Fails), not
    /// [`WillRecover`](Self::WillRecover): every open that claims the database (every open on a
    /// filesystem another machine can reach, and any whose options ask) fails on it with a typed
    /// error, and store never repairs, overwrites or removes it by itself; only the operator,
    /// having checked that no other machine uses the database, can move it away.
    pub fn of_ownership(finding: Option<&OwnershipFinding>) -> Self {
        match finding {
            None | Some(OwnershipFinding::Owned { .. }) => Verdict::Healthy,
            Some(_) => Verdict::Fails,
        }
    }

    /// The verdict of a directory with no database in it: whether one could live there.
    pub fn of_wal_probe(probe: &WalProbe) -> Self {
        match probe {
            WalProbe::Works | WalProbe::NotProbed { .. } => Verdict::Healthy,
            WalProbe::FallsBack { .. } => Verdict::FallsBack,
            WalProbe::Fails { .. } => Verdict::Fails,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store_core::FailureClass;

    /// Promise: the verdicts are ordered by severity, so the worst database wins, and no verdict's
    /// exit code is the usage error's.
    #[test]
    fn verdicts_are_ordered_by_severity_and_their_codes_are_distinct() {
        let codes: Vec<u8> = Verdict::ALL
            .iter()
            .map(|verdict| verdict.exit_code())
            .collect();
        assert_eq!(codes, [0, 1, 2, 3, EXIT_NO_INPUT]);
        assert!(Verdict::ALL.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(!codes.contains(&EXIT_USAGE));
    }

    /// Promise: a pending recovery record raises a healthy outlook to will-recover and never
    /// lowers a failing one.
    #[test]
    fn a_pending_recovery_makes_a_healthy_outlook_will_recover_but_never_hides_a_failure() {
        let opens = Outlook::Opens {
            journal_mode: None,
            falls_back: false,
            schema_version: 1,
        };
        let pending = InterruptedRecovery::Unreadable {
            reason: "cut short".into(),
        };
        assert_eq!(Verdict::of_database(&opens, None), Verdict::Healthy);
        assert_eq!(
            Verdict::of_database(&opens, Some(&pending)),
            Verdict::WillRecover
        );
        let fails = Outlook::Fails {
            class: FailureClass::Locked,
            cause: "held".into(),
        };
        assert_eq!(Verdict::of_database(&fails, Some(&pending)), Verdict::Fails);
    }
}
