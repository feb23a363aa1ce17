//! The async face: a connection that lives on a dedicated thread, driven from async code.
//!
//! SQLite's and DuckDB's connections are `Send` but not `Sync`, and every call blocks. An
//! [`AsyncConnection`] owns the connection on a thread of its own; [`AsyncConnection::call`] runs a
//! closure there and awaits its result, with the caller's tracing span entered around it. A panic
//! in a closure comes back as [`CallError::Panicked`]; the worker keeps serving. Dropping the
//! handle lets the worker finish the closures already sent and close the connection (DuckDB
//! checkpoints on close); [`AsyncConnection::close`] does the same and waits for it.
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use store::sqlite::SqliteOptions;
//! use store::tokio::AsyncConnection;
//!
//! let directory = tempfile::tempdir().unwrap();
//! let (connection, report) =
//!     AsyncConnection::open(SqliteOptions::new(directory.path().join("state.db"))).await.unwrap();
//! println!("{report}");
//! connection.call(|c| c.execute_batch("CREATE TABLE t (x INTEGER)")).await.unwrap().unwrap();
//! let rows: i64 = connection
//!     .call(|c| c.query_row("SELECT count(*) FROM t", [], |row| row.get(0)))
//!     .await
//!     .unwrap()
//!     .unwrap();
//! assert_eq!(rows, 0);
//! connection.close().await.unwrap();
//! # });
//! ```

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::thread::JoinHandle;

use store_core::OpenReport;
use tokio::sync::oneshot;

use crate::Open;

type Job<C> = Box<dyn FnOnce(&mut C) + Send>;

/// A call could not deliver its result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The worker thread is gone (the connection was closed, or its thread died).
    #[error("the connection's worker thread has stopped")]
    Closed,
    /// The closure panicked on the worker thread; the worker goes on serving.
    #[error("the closure panicked on the connection's thread: {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
}

/// Opening on the worker thread failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AsyncOpenError<E: std::error::Error + 'static> {
    /// The engine's open failed.
    #[error(transparent)]
    Open(E),
    /// The worker thread could not be started, or died before answering.
    #[error("the connection's worker thread could not be started")]
    Worker {
        /// What the operating system said, if it said anything.
        #[source]
        source: Option<std::io::Error>,
    },
}

/// A connection on a dedicated thread, driven from async code.
pub struct AsyncConnection<C> {
    jobs: Option<mpsc::Sender<Job<C>>>,
    worker: Option<JoinHandle<()>>,
}

impl<C> std::fmt::Debug for AsyncConnection<C> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AsyncConnection")
            .field("open", &self.jobs.is_some())
            .finish_non_exhaustive()
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

impl<C: Send + 'static> AsyncConnection<C> {
    /// Opens the database on a new worker thread (the open blocks; the caller's task does not),
    /// with the caller's span entered there.
    pub async fn open<O>(
        options: O,
    ) -> Result<(AsyncConnection<C>, OpenReport), AsyncOpenError<O::Error>>
    where
        O: Open<Connection = C> + Send + 'static,
    {
        let (opened_sender, opened) = oneshot::channel();
        let (jobs, inbox) = mpsc::channel::<Job<C>>();
        let span = tracing::Span::current();
        let worker = std::thread::Builder::new()
            .name(format!("store-{}", O::ENGINE))
            .spawn(move || {
                let mut connection = match span.in_scope(|| options.open_database()) {
                    Ok((connection, report)) => {
                        if opened_sender.send(Ok(report)).is_err() {
                            return;
                        }
                        connection
                    }
                    Err(error) => {
                        let _ = opened_sender.send(Err(error));
                        return;
                    }
                };
                // Runs until every handle is gone, then drops (closes) the connection here.
                for job in inbox {
                    job(&mut connection);
                }
            })
            .map_err(|source| AsyncOpenError::Worker {
                source: Some(source),
            })?;
        match opened.await {
            Ok(Ok(report)) => Ok((
                AsyncConnection {
                    jobs: Some(jobs),
                    worker: Some(worker),
                },
                report,
            )),
            Ok(Err(error)) => Err(AsyncOpenError::Open(error)),
            Err(_) => Err(AsyncOpenError::Worker { source: None }),
        }
    }

    /// Runs `work` with the connection on its thread, inside the caller's current span, and
    /// returns what it returns.
    pub async fn call<R, F>(&self, work: F) -> Result<R, CallError>
    where
        R: Send + 'static,
        F: FnOnce(&mut C) -> R + Send + 'static,
    {
        let jobs = self.jobs.as_ref().ok_or(CallError::Closed)?;
        let (result_sender, result) = oneshot::channel();
        let span = tracing::Span::current();
        let job: Job<C> = Box::new(move |connection| {
            let outcome = span.in_scope(|| catch_unwind(AssertUnwindSafe(|| work(connection))));
            let _ = result_sender.send(outcome.map_err(|payload| CallError::Panicked {
                message: panic_message(payload.as_ref()),
            }));
        });
        jobs.send(job).map_err(|_| CallError::Closed)?;
        result.await.map_err(|_| CallError::Closed)?
    }

    /// Closes the connection once the closures already sent have run, and waits until it is
    /// closed (for DuckDB: checkpointed and its lock released).
    pub async fn close(mut self) -> Result<(), CallError> {
        drop(self.jobs.take());
        let Some(worker) = self.worker.take() else {
            return Ok(());
        };
        let (done_sender, done) = oneshot::channel();
        std::thread::spawn(move || {
            let joined = worker.join();
            let _ = done_sender.send(joined);
        });
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(payload)) => Err(CallError::Panicked {
                message: panic_message(payload.as_ref()),
            }),
            Err(_) => Err(CallError::Closed),
        }
    }
}

impl<C> Drop for AsyncConnection<C> {
    fn drop(&mut self) {
        // Closing the channel ends the worker's loop; it closes the connection on its own thread
        // without blocking the runtime here.
        drop(self.jobs.take());
    }
}
