//! Integration tests of the `store` facade: one binary, one module per concern.

#[cfg(feature = "tokio")]
mod asynchronous;
#[cfg(feature = "sqlite")]
mod doctor;
mod downstream;
mod facade;
#[cfg(all(feature = "sqlite", any(feature = "r2d2", feature = "deadpool")))]
mod pools;
#[cfg(all(feature = "sqlite", feature = "duckdb"))]
mod scenario;
