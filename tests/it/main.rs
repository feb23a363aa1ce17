//! Integration tests of the `store` facade: one binary, one module per concern.

mod downstream;
mod facade;
