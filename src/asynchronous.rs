//! The async face: a connection that lives on a dedicated thread, driven from async code. The
//! public documentation is on [`AsyncConnection`].

use std::any::Any;
use std::convert::Infallible;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};

use store_core::OpenReport;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{Database, Open};

/// How many calls an [`AsyncConnection`]'s queue holds before `call` waits for room.
pub const DEFAULT_QUEUE_CAPACITY: usize = 64;

/// A call on the worker: answers the panic's message if the closure panicked, for the worker to
/// roll back what it may have left open before it serves the next.
type Job<C> = Box<dyn FnOnce(&mut C) -> Option<String> + Send>;

/// The engine's [`Database::roll_back_abandoned`]: whether the connection is sure to be outside
/// any transaction after a panic.
type Rescue<C> = fn(&mut C) -> bool;

/// Set once, before the worker stops taking calls, when a panic left the connection in a state
/// it could not roll back: the panic's message, for every later call to be refused with.
type Abandoned = Arc<OnceLock<String>>;

/// What a handle sends to the worker.
enum Message<C> {
    /// Run this with the connection.
    Run(Job<C>),
    /// Close the connection after what was queued before this; refuse what comes after.
    Close,
}

/// `None` while the connection is open; once it is closed, whether dropping it went well (the
/// panic's message if it did not).
type Closed = Option<Result<(), String>>;

/// A call could not deliver its result, or the closure failed.
///
/// `E` is the closure's error; [`close`](AsyncConnection::close), which runs no closure, uses the
/// default, [`Infallible`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError<E = Infallible> {
    /// The worker thread is gone (the connection was closed, or its thread died).
    #[error("the connection's worker thread has stopped")]
    Closed,
    /// The closure panicked on the worker thread. Any transaction it left open is rolled back
    /// before the worker serves the next call; where that cannot be made sure, the connection is
    /// closed and later calls fail with [`ClosedAfterPanic`](CallError::ClosedAfterPanic).
    #[error("the closure panicked on the connection's thread: {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// An earlier closure panicked and the transaction it may have left open could not be rolled
    /// back, so the connection was closed rather than let this call's writes join that
    /// transaction. Open or connect again.
    #[error(
        "the connection was closed after a closure panicked on it and its transaction could not \
         be rolled back: {message}"
    )]
    ClosedAfterPanic {
        /// The message of the panic that closed it.
        message: String,
    },
    /// The closure returned an error (the engine's, for closures that only use the connection).
    #[error("the call on the connection's thread failed")]
    Failed(#[source] E),
}

/// Opening or connecting on the worker thread failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AsyncOpenError<E: std::error::Error + 'static> {
    /// The engine's open (or, for [`AsyncConnection::connect`], its connect) failed.
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
///
/// SQLite's and DuckDB's connections are `Send` but not `Sync`, and every call blocks. An
/// `AsyncConnection` owns the connection on a thread of its own; [`call`](Self::call) runs a
/// closure there and awaits its result, with the caller's tracing span entered around it. The
/// closure returns a `Result`, and `call` returns one: the closure's error comes back as
/// [`CallError::Failed`], a panic in it as [`CallError::Panicked`]. After a panic the worker rolls
/// back any transaction the closure left open ([`Database::roll_back_abandoned`]), so that later
/// calls never write into it, and keeps serving; where the engine cannot make sure, it closes the
/// connection and later calls fail with [`CallError::ClosedAfterPanic`].
///
/// Handles are cheap to clone; clones share the one thread and connection, and their calls run in
/// the order they were queued. The queue is bounded ([`DEFAULT_QUEUE_CAPACITY`], or
/// [`open_with_capacity`](Self::open_with_capacity)): when it is full, `call` waits for
/// room without blocking the runtime. Dropping the last handle lets the worker finish the closures
/// already queued and close the connection (DuckDB checkpoints on close);
/// [`close`](Self::close) closes it for every handle and waits until it is closed.
///
/// ```
/// # #[cfg(feature = "sqlite")]
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use store::sqlite::SqliteOptions;
/// use store::tokio::AsyncConnection;
///
/// let directory = tempfile::tempdir().unwrap();
/// let (connection, report) =
///     AsyncConnection::open(SqliteOptions::new(directory.path().join("state.db"))).await?;
/// println!("{report}");
/// connection.call(|c| c.execute_batch("CREATE TABLE t (x INTEGER)")).await?;
///
/// // A clone for another task: the same connection, on the same thread.
/// let writer = connection.clone();
/// tokio::spawn(async move { writer.call(|c| c.execute("INSERT INTO t VALUES (1)", [])).await })
///     .await
///     .unwrap()?;
///
/// let rows: i64 = connection
///     .call(|c| c.query_row("SELECT count(*) FROM t", [], |row| row.get(0)))
///     .await?;
/// assert_eq!(rows, 1);
/// connection.close().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// A database handle ([`Database`](crate::Database)) gives connections without deciding again:
/// [`connect`](Self::connect) makes one on a new worker thread. The deadpool pool
/// ([`store::pool`](crate::pool), feature `deadpool`) is built on it.
pub struct AsyncConnection<C> {
    jobs: mpsc::Sender<Message<C>>,
    closed: watch::Receiver<Closed>,
    abandoned: Abandoned,
}

impl<C> Clone for AsyncConnection<C> {
    fn clone(&self) -> Self {
        AsyncConnection {
            jobs: self.jobs.clone(),
            closed: self.closed.clone(),
            abandoned: Arc::clone(&self.abandoned),
        }
    }
}

impl<C> std::fmt::Debug for AsyncConnection<C> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AsyncConnection")
            .field("open", &!self.jobs.is_closed())
            .field("queue_capacity", &self.jobs.max_capacity())
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

/// The worker's loop: runs jobs until a close or the last handle, then closes the connection
/// here. After a panic it rolls back what the closure may have left open (`rescue`), and stops at
/// once where that cannot be made sure: the next call's writes would join the open transaction.
fn serve<C>(
    mut connection: C,
    mut inbox: mpsc::Receiver<Message<C>>,
    closed: watch::Sender<Closed>,
    rescue: Rescue<C>,
    abandoned: &OnceLock<String>,
) {
    while let Some(message) = inbox.blocking_recv() {
        match message {
            Message::Run(job) => {
                let Some(panic) = job(&mut connection) else {
                    continue;
                };
                let rolled_back =
                    catch_unwind(AssertUnwindSafe(|| rescue(&mut connection))).unwrap_or(false);
                if !rolled_back {
                    tracing::warn!(
                        target: "store::tokio",
                        panic = %panic,
                        "closing the connection: a closure panicked on it and the transaction it \
                         may have left open cannot be rolled back"
                    );
                    // Before the queue goes: its callers are refused with this panic.
                    let _ = abandoned.set(panic);
                    break;
                }
            }
            Message::Close => break,
        }
    }
    // Calls queued after a close are dropped unrun: their callers get `CallError::Closed`.
    drop(inbox);
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(connection)))
        .map_err(|payload| panic_message(payload.as_ref()));
    closed.send_replace(Some(dropped));
}

impl<C: Send + 'static> AsyncConnection<C> {
    /// Opens the database on a new worker thread (the open blocks; the caller's task does not),
    /// with the caller's span entered there, and a queue of [`DEFAULT_QUEUE_CAPACITY`] calls.
    pub async fn open<O>(
        options: O,
    ) -> Result<(AsyncConnection<C>, OpenReport), AsyncOpenError<O::Error>>
    where
        O: Open<Connection = C> + Send + 'static,
    {
        AsyncConnection::open_with_capacity(options, DEFAULT_QUEUE_CAPACITY).await
    }

    /// [`open`](Self::open) with a queue of `capacity` calls (at least one): when that many calls
    /// wait for the connection, further calls wait for room before they are queued.
    pub async fn open_with_capacity<O>(
        options: O,
        capacity: usize,
    ) -> Result<(AsyncConnection<C>, OpenReport), AsyncOpenError<O::Error>>
    where
        O: Open<Connection = C> + Send + 'static,
    {
        AsyncConnection::start(
            format!("store-{}", O::ENGINE),
            capacity,
            <O::Database as Database>::roll_back_abandoned,
            move || options.open_connection(),
        )
        .await
    }

    /// Makes a connection to `database` ([`Database::connect`]) on a new worker thread, with the
    /// caller's span entered there, and a queue of [`DEFAULT_QUEUE_CAPACITY`] calls. Nothing is
    /// decided again: this costs a thread and a plain connection.
    pub async fn connect<D>(database: D) -> Result<AsyncConnection<C>, AsyncOpenError<D::Error>>
    where
        D: Database<Connection = C>,
    {
        AsyncConnection::connect_with_capacity(database, DEFAULT_QUEUE_CAPACITY).await
    }

    /// [`connect`](Self::connect) with a queue of `capacity` calls (at least one).
    pub async fn connect_with_capacity<D>(
        database: D,
        capacity: usize,
    ) -> Result<AsyncConnection<C>, AsyncOpenError<D::Error>>
    where
        D: Database<Connection = C>,
    {
        let make = move || database.connect().map(|connection| (connection, ()));
        let (connection, ()) = AsyncConnection::start(
            "store-connection".to_owned(),
            capacity,
            D::roll_back_abandoned,
            make,
        )
        .await?;
        Ok(connection)
    }

    /// Starts a worker thread named `name` that makes its connection with `make` (inside the
    /// caller's span) and then serves calls, with `rescue` after a closure panicked.
    async fn start<T, E>(
        name: String,
        capacity: usize,
        rescue: Rescue<C>,
        make: impl FnOnce() -> Result<(C, T), E> + Send + 'static,
    ) -> Result<(AsyncConnection<C>, T), AsyncOpenError<E>>
    where
        T: Send + 'static,
        E: std::error::Error + Send + 'static,
    {
        let (made_sender, made) = oneshot::channel();
        let (jobs, inbox) = mpsc::channel::<Message<C>>(capacity.max(1));
        let (closed_sender, closed) = watch::channel(None);
        let abandoned = Abandoned::default();
        let worker_abandoned = Arc::clone(&abandoned);
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let connection = match span.in_scope(make) {
                    Ok((connection, made)) => {
                        if made_sender.send(Ok(made)).is_err() {
                            return;
                        }
                        connection
                    }
                    Err(error) => {
                        let _ = made_sender.send(Err(error));
                        return;
                    }
                };
                serve(connection, inbox, closed_sender, rescue, &worker_abandoned);
            })
            .map_err(|source| AsyncOpenError::Worker {
                source: Some(source),
            })?;
        match made.await {
            Ok(Ok(made)) => Ok((
                AsyncConnection {
                    jobs,
                    closed,
                    abandoned,
                },
                made,
            )),
            Ok(Err(error)) => Err(AsyncOpenError::Open(error)),
            Err(_) => Err(AsyncOpenError::Worker { source: None }),
        }
    }

    /// Runs `work` with the connection on its thread, inside the caller's current span, and
    /// returns what it returns: its error as [`CallError::Failed`], its panic as
    /// [`CallError::Panicked`]; on a connection closed after a panic it could not recover from,
    /// [`CallError::ClosedAfterPanic`].
    ///
    /// Waits for room when the queue is full. Dropping the future before the call is queued
    /// cancels it; once queued, the closure runs and its result is dropped.
    pub async fn call<R, E, F>(&self, work: F) -> Result<R, CallError<E>>
    where
        R: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&mut C) -> Result<R, E> + Send + 'static,
    {
        let (result_sender, result) = oneshot::channel();
        let span = tracing::Span::current();
        let job: Job<C> = Box::new(move |connection| {
            let outcome = span.in_scope(|| catch_unwind(AssertUnwindSafe(|| work(connection))));
            let (result, panicked) = match outcome {
                Ok(Ok(value)) => (Ok(value), None),
                Ok(Err(error)) => (Err(CallError::Failed(error)), None),
                Err(payload) => {
                    let message = panic_message(payload.as_ref());
                    (
                        Err(CallError::Panicked {
                            message: message.clone(),
                        }),
                        Some(message),
                    )
                }
            };
            let _ = result_sender.send(result);
            panicked
        });
        self.jobs
            .send(Message::Run(job))
            .await
            .map_err(|_| self.stopped())?;
        result.await.map_err(|_| self.stopped())?
    }

    /// Why the worker took no more calls: closed, or closed after a panic it could not recover
    /// from.
    fn stopped<E>(&self) -> CallError<E> {
        match self.abandoned.get() {
            Some(message) => CallError::ClosedAfterPanic {
                message: message.clone(),
            },
            None => CallError::Closed,
        }
    }

    /// Closes the connection once the closures queued before have run, and waits until it is
    /// closed (for DuckDB: checkpointed and its lock released). Calls queued after, from other
    /// clones, fail with [`CallError::Closed`]. Closing a connection already closed succeeds.
    ///
    /// Fails with [`CallError::Panicked`] if closing the connection panicked.
    pub async fn close(self) -> Result<(), CallError> {
        self.shut().await
    }

    /// [`close`](Self::close) through a shared reference: what a pool does to a connection it
    /// discards, so that its replacement never races the old one's close.
    pub(crate) async fn shut(&self) -> Result<(), CallError> {
        // An error means the worker already stopped taking messages: it is closing or closed.
        let _ = self.jobs.send(Message::Close).await;
        let mut closed = self.closed.clone();
        let outcome = match closed.wait_for(Option::is_some).await {
            Ok(state) => state.clone(),
            // The worker ended without saying: its thread died.
            Err(_) => return Err(CallError::Closed),
        };
        match outcome {
            Some(Err(message)) => Err(CallError::Panicked { message }),
            Some(Ok(())) | None => Ok(()),
        }
    }
}
