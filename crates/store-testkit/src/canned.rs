//! Canned failures: wrappers that return an error you choose instead of letting the engine fail.
//!
//! These are the last resort, for behaviour no real fault here can produce (an error string
//! from another SQLite build, a flaky network that fails exactly N connects). Prefer the real
//! faults in [`crate::faults`]: a canned error proves only that your code handles that string.
//! Everything here says "canned" in its name so that a reader of a test knows.
//!
//! ```
//! use store_testkit::canned::{CannedOpenFailures, CannedStatementFailure};
//!
//! // The first two opens fail with a canned error; the third really opens.
//! let flaky = CannedOpenFailures::new(2, || "connection refused".to_owned());
//! let attempts: Vec<Result<u32, String>> = (0..3).map(|_| flaky.open(|| Ok(7))).collect();
//! assert_eq!(attempts, [Err("connection refused".into()), Err("connection refused".into()), Ok(7)]);
//!
//! // Statements containing "journal_mode=wal" fail with a canned error; others run.
//! let refusing = CannedStatementFailure::new("journal_mode=wal", || "locking protocol".to_owned());
//! assert_eq!(refusing.run("PRAGMA journal_mode=WAL", |_| Ok(())), Err("locking protocol".to_owned()));
//! assert_eq!(refusing.run("SELECT 1", |_| Ok(1)), Ok(1));
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};

/// Fails the first `failures` opens with a canned error, then lets opens through.
pub struct CannedOpenFailures<E> {
    remaining: AtomicUsize,
    make_error: Box<dyn Fn() -> E + Send + Sync>,
}

impl<E> std::fmt::Debug for CannedOpenFailures<E> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CannedOpenFailures")
            .field("remaining", &self.remaining.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl<E> CannedOpenFailures<E> {
    /// `failures` canned failures made by `make_error`.
    pub fn new(failures: usize, make_error: impl Fn() -> E + Send + Sync + 'static) -> Self {
        CannedOpenFailures {
            remaining: AtomicUsize::new(failures),
            make_error: Box::new(make_error),
        }
    }

    /// The canned error while any remain, else `open()`.
    pub fn open<T>(&self, open: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let failed = self
            .remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failed {
            Err((self.make_error)())
        } else {
            open()
        }
    }

    /// Canned failures still to come.
    pub fn remaining(&self) -> usize {
        self.remaining.load(Ordering::SeqCst)
    }
}

/// Fails every statement whose text contains a chosen fragment (compared lowercase, without
/// spaces) with a canned error.
pub struct CannedStatementFailure<E> {
    fragment: String,
    make_error: Box<dyn Fn() -> E + Send + Sync>,
}

impl<E> std::fmt::Debug for CannedStatementFailure<E> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CannedStatementFailure")
            .field("fragment", &self.fragment)
            .finish_non_exhaustive()
    }
}

fn normalized(sql: &str) -> String {
    sql.to_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

impl<E> CannedStatementFailure<E> {
    /// Statements containing `fragment` fail with `make_error()`.
    pub fn new(fragment: &str, make_error: impl Fn() -> E + Send + Sync + 'static) -> Self {
        CannedStatementFailure {
            fragment: normalized(fragment),
            make_error: Box::new(make_error),
        }
    }

    /// The canned error if `sql` matches, else `run(sql)`.
    pub fn run<T>(&self, sql: &str, run: impl FnOnce(&str) -> Result<T, E>) -> Result<T, E> {
        if normalized(sql).contains(&self.fragment) {
            Err((self.make_error)())
        } else {
            run(sql)
        }
    }
}
