//! Integration tests of the `store` facade: one binary, one module per concern.

#[cfg(feature = "tokio")]
mod asynchronous;
mod downstream;
mod facade;
