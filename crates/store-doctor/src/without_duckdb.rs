//! DuckDB in a build without the `duckdb` feature: its files are recognised, not examined.

use crate::checkup::{DatabaseCheckup, Outlook};

/// Says which feature would examine the file.
pub(crate) fn examine(checkup: &mut DatabaseCheckup) {
    checkup.outlook = Outlook::EngineNotEnabled { feature: "duckdb" };
}
