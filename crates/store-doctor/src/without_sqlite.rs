//! SQLite in a build without the `sqlite` feature: no WAL probe, and its files are recognised, not
//! examined.

use std::path::Path;

use store_core::FsKind;

use crate::checkup::{DatabaseCheckup, Outlook, WalProbe};

const FEATURE: &str = "sqlite";

/// Not probed: the probe is a SQLite database.
pub(crate) fn probe_wal(_directory: &Path) -> WalProbe {
    WalProbe::NotProbed {
        reason: format!("this build has no SQLite (feature `{FEATURE}`)"),
    }
}

/// A missing file is created by SQLite's open, which this build does not know.
pub(crate) fn creation_outlook(_path: &Path, _filesystem: FsKind) -> Outlook {
    Outlook::EngineNotEnabled { feature: FEATURE }
}

/// Says which feature would examine the file.
pub(crate) fn examine(
    checkup: &mut DatabaseCheckup,
    _filesystem: FsKind,
    _existing_wal: bool,
    _wal: &WalProbe,
) {
    checkup.outlook = Outlook::EngineNotEnabled { feature: FEATURE };
}
