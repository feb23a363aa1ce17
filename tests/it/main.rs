//! Integration tests of the `store` facade: one binary, one module per concern.

mod facade;
