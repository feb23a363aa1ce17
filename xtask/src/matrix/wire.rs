//! How a cell's child hands its [`Observed`] to the parent: one line on standard output,
//! `CELL ` followed by the observation as JSON (serde, so that any detail text travels whole).
//! Other lines are ignored: whatever else the child prints is not the result.

use thiserror::Error;

use super::observe::Observed;

/// The prefix of the child's result line.
const RESULT_PREFIX: &str = "CELL ";

/// Why a child's output holds no result.
#[derive(Debug, Error)]
pub(super) enum WireError {
    /// No result line: the child died before it printed one.
    #[error("no result line")]
    Missing,
    /// A result line that does not read (cut short when the child died mid-print).
    #[error("a result line that does not read: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// The result line for `observed`.
pub(super) fn encode(observed: &Observed) -> String {
    let json = serde_json::to_string(observed).expect("an observation is strings and numbers");
    format!("{RESULT_PREFIX}{json}")
}

/// Reads the result line of [`encode`] from among a child's other lines.
pub(super) fn decode(output: &str) -> Result<Observed, WireError> {
    let json = output
        .lines()
        .find_map(|line| line.strip_prefix(RESULT_PREFIX))
        .ok_or(WireError::Missing)?;
    Ok(serde_json::from_str(json)?)
}

#[cfg(test)]
mod tests {
    use store_core::RecoveryStep;

    use super::*;
    use crate::matrix::cells::Outcome;
    use crate::matrix::observe::{Check, CheckKind, MovedFile, Rows};

    #[test]
    fn results_round_trip_and_a_result_cut_short_is_none() {
        let observed = Observed {
            outcome: Some(Outcome::Recovered(RecoveryStep::SalvageWal)),
            rows: Some(Rows {
                acknowledged: 100,
                required: 95,
                kept: 95,
                required_missing: 0,
                lost_reported: 3,
                lost_silent: 2,
                unexpected: 1,
            }),
            moved_aside: vec![MovedFile {
                from: "cell.duckdb.wal".into(),
                to: "cell.duckdb.x\t.wal".into(),
            }],
            checks: vec![Check::new(
                CheckKind::SchemaAfterKill,
                false,
                "a\ttab\nand a line",
            )],
            directory_unchanged: false,
            skipped: None,
            setup_failure: Some("back\\slash \"quoted\"".into()),
            timed_out: Some("sqlite/none/default: timed out".into()),
            detail: "a\ttab".into(),
        };
        let encoded = encode(&observed);
        assert_eq!(encoded.lines().count(), 1, "one line: {encoded}");
        let decoded = decode(&format!("noise\n{encoded}\nmore noise")).expect("decodes");
        assert_eq!(decoded, observed);
        // A result cut short (a child that died mid-print) is no result, nor is none at all.
        let cut = &encoded[..encoded.len() - 10];
        assert!(matches!(decode(cut), Err(WireError::Malformed(_))));
        assert!(matches!(decode("noise only"), Err(WireError::Missing)));
    }
}
