//! Installing process-global faults, one at a time, removed when their guard drops.
//!
//! Every fault here makes the real engine fail the way a real deployment does: [`sqlite`] for
//! SQLite's, [`duckdb`] for DuckDB's (WAL damage, a lock held elsewhere), [`mounts`] for the
//! filesystem's (full, read-only).
//!
//! Process-global means every thread of the process sees the fault: install it in a child process
//! ([`isolated!`](crate::isolated)), never in a test that shares its process with others.

use std::io;
use std::sync::{Mutex, PoisonError};

#[cfg(feature = "duckdb")]
#[cfg_attr(docsrs, doc(cfg(feature = "duckdb")))]
pub mod duckdb;
pub mod mounts;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;

/// A fault could not be installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaultError {
    /// Another process-global fault is installed; two at once would make results unreadable.
    #[error("cannot install fault `{requested}` while `{installed}` is installed")]
    AlreadyInstalled {
        /// The fault asked for.
        requested: &'static str,
        /// The fault in place.
        installed: &'static str,
    },
    /// This machine cannot produce the fault (no mount rights, say). Not a pass: a test that
    /// needs the fault should report it.
    #[error("fault `{fault}` is unsupported here: {reason}")]
    Unsupported {
        /// The fault asked for.
        fault: &'static str,
        /// Why not.
        reason: String,
    },
    /// SQLite refused the hook.
    #[error("sqlite refused to install fault `{fault}` (code {code})")]
    Sqlite {
        /// The fault asked for.
        fault: &'static str,
        /// SQLite's result code.
        code: i32,
    },
    /// A system call failed while installing the fault.
    #[error("cannot install fault `{fault}`")]
    Io {
        /// The fault asked for.
        fault: &'static str,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

static INSTALLED: Mutex<Option<&'static str>> = Mutex::new(None);

/// An installed process-global fault; dropping it removes the fault.
#[must_use = "the fault is removed when the guard drops"]
pub struct FaultGuard {
    name: &'static str,
    uninstall: Option<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for FaultGuard {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("FaultGuard")
            .field("name", &self.name)
            .finish()
    }
}

impl FaultGuard {
    /// Claims the process-wide slot for `name`, runs `install`, and returns the guard that will run
    /// the uninstaller it returns. The slot is released if installing fails.
    pub(crate) fn install(
        name: &'static str,
        install: impl FnOnce() -> Result<Box<dyn FnOnce() + Send>, FaultError>,
    ) -> Result<FaultGuard, FaultError> {
        {
            let mut slot = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(installed) = *slot {
                return Err(FaultError::AlreadyInstalled {
                    requested: name,
                    installed,
                });
            }
            *slot = Some(name);
        }
        match install() {
            Ok(uninstall) => Ok(FaultGuard {
                name,
                uninstall: Some(uninstall),
            }),
            Err(error) => {
                *INSTALLED.lock().unwrap_or_else(PoisonError::into_inner) = None;
                Err(error)
            }
        }
    }

    /// The fault's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        if let Some(uninstall) = self.uninstall.take() {
            uninstall();
        }
        *INSTALLED.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The name of the fault installed in this process, if any.
pub fn installed() -> Option<&'static str> {
    *INSTALLED.lock().unwrap_or_else(PoisonError::into_inner)
}
