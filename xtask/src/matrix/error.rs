//! Why a cell's body stops before its verdict: the machine cannot produce the fault (skipped), or
//! the setup failed (a failure, never a pass).

use store_testkit::faults::FaultError;
use thiserror::Error;

/// Why a cell's body stopped before its verdict.
#[derive(Debug, Error)]
pub(super) enum CellError {
    /// The machine cannot produce the fault (no mount rights, say): the cell says skipped.
    #[error("cannot run here: {0}")]
    Unsupported(String),
    /// Setting up the fault or the database failed: a failure, never a pass.
    #[error("{0}")]
    Setup(String),
}

/// Every error a cell's setup meets becomes a setup failure, in its words.
macro_rules! setup_failure_from {
    ($($error:ty),+ $(,)?) => {
        $(
            impl From<$error> for CellError {
                fn from(error: $error) -> CellError {
                    CellError::Setup(error.to_string())
                }
            }
        )+
    };
}

setup_failure_from!(
    std::io::Error,
    rusqlite::Error,
    duckdb::Error,
    store_duckdb::OpenError,
    store_core::MigrationsError,
    store_testkit::FixtureError,
    FaultError,
);

/// A fault this machine cannot produce skips the cell; any other failure fails its setup.
pub(super) fn fault_or_skip<T>(result: Result<T, FaultError>) -> Result<T, CellError> {
    match result {
        Ok(value) => Ok(value),
        Err(FaultError::Unsupported { reason, .. }) => Err(CellError::Unsupported(reason)),
        Err(other) => Err(CellError::Setup(other.to_string())),
    }
}
