//! The one JSON document `store-doctor --json` prints: the verdict and exit code, then the
//! checkup, or the error that kept the path from being examined.

use serde::Serialize;

use crate::checkup::Checkup;
use crate::examine::ExamineError;
use crate::verdict::Verdict;

/// What `store-doctor --json` prints, from the outcome of [`examine`](crate::examine).
///
/// ```
/// let directory = tempfile::tempdir()?;
/// let outcome = store_doctor::examine(directory.path().join("gone").join("state.db"));
/// let report = store_doctor::Report::new(&outcome);
/// assert_eq!(report.exit_code, 66);
/// let json = serde_json::to_value(&report)?;
/// assert!(json["error"].as_str().unwrap().contains("does not exist"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct Report<'a> {
    /// The checkup's verdict; `None` when the path could not be examined.
    pub verdict: Option<Verdict>,
    /// The process exit code.
    pub exit_code: u8,
    /// Why the path could not be examined, with causes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The checkup: its fields are the document's (`path`, `directory`, `filesystem`, `wal`,
    /// `databases`).
    #[serde(flatten)]
    pub checkup: Option<&'a Checkup>,
}

impl<'a> Report<'a> {
    /// The report of an examination's outcome.
    pub fn new(outcome: &'a Result<Checkup, ExamineError>) -> Report<'a> {
        match outcome {
            Ok(checkup) => {
                let verdict = checkup.verdict();
                Report {
                    verdict: Some(verdict),
                    exit_code: verdict.exit_code(),
                    error: None,
                    checkup: Some(checkup),
                }
            }
            Err(error) => Report {
                verdict: None,
                exit_code: error.exit_code(),
                error: Some(store_core::cause_chain(error)),
                checkup: None,
            },
        }
    }
}
