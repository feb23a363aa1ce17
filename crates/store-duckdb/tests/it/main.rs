//! store-duckdb against the real bundled DuckDB and real faults: damaged WAL bytes, a lock held by
//! another process, a process killed mid-migration.

mod bad_input;
mod database;
mod durability;
mod migrations;
mod recovery;
mod registry;
mod wal;

use std::path::Path;

use store_core::{Migration, Migrations};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The schema the seed's application migrates through; version 3 adds a column, as its v27 did.
pub fn schema() -> Migrations {
    Migrations::new(vec![
        Migration::new(
            1,
            "runs",
            "CREATE TABLE runs (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL)",
        ),
        Migration::new(
            2,
            "items",
            "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, payload VARCHAR NOT NULL)",
        ),
        Migration::new(
            3,
            "runs status",
            "ALTER TABLE runs ADD COLUMN status VARCHAR DEFAULT 'new'",
        ),
    ])
    .expect("valid migrations")
}

/// Rows in `items`, read with a plain connection.
pub fn items(path: &Path) -> duckdb::Result<i64> {
    let connection = duckdb::Connection::open(path)?;
    connection.query_row("SELECT count(*) FROM items", [], |row| row.get(0))
}

/// File names in `directory` starting with `prefix`, sorted.
pub fn names_starting_with(directory: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .expect("readable directory")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.starts_with(prefix))
        .collect();
    names.sort();
    names
}
