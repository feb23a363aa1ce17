//! store's workspace-hack, managed by `cargo hakari` (`.config/hakari.toml`): a dependency of
//! every crate of the workspace naming the union of the features each dependency is built with
//! anywhere in it, so that every cargo command plans the same build of each, and DuckDB compiles
//! once per profile (README, "Building"). After changing a dependency, regenerate it with
//! `cargo hakari generate && cargo hakari manage-deps`; `tools/one-duckdb-build` (run by
//! `.ci/run`) fails while it is stale in a way that would compile DuckDB again.
