//! Integration tests of the `store` facade: one binary, one module per concern.

#[cfg(feature = "tokio")]
mod asynchronous;
mod downstream;
mod facade;
#[cfg(all(target_os = "linux", feature = "sqlite", feature = "duckdb"))]
mod ownership;
#[cfg(all(feature = "sqlite", any(feature = "r2d2", feature = "deadpool")))]
mod pools;
#[cfg(all(feature = "sqlite", feature = "duckdb"))]
mod scenario;

/// A runtime with `workers` threads, what `#[tokio::test(flavor = "multi_thread")]` builds: made
/// by hand because tokio's proc macros would build the host's `syn` with other features than
/// `cargo xtask`'s graph, and so compile DuckDB a second time (README, "Building").
#[cfg(feature = "tokio")]
fn multi_thread_runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A runtime on the test's own thread, what `#[tokio::test]` builds.
#[cfg(feature = "tokio")]
fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
