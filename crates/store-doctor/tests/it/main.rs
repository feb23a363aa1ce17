//! Integration tests of store-doctor: one binary, one module per concern.

mod cli;
mod corruption;
mod examine;
mod ownership;
mod side_effects;

use std::path::Path;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn migrations() -> store_core::Migrations {
    store_core::Migrations::new(vec![
        store_core::Migration::new(1, "notes", "CREATE TABLE notes (text TEXT)"),
        store_core::Migration::new(2, "notes index", "CREATE INDEX notes_text ON notes (text)"),
    ])
    .expect("valid migrations")
}

/// A SQLite database through store, with enough rows for its `notes` table to span many b-tree
/// pages, closed cleanly (so that everything is in the file).
fn sqlite_database_with_pages(path: &Path) -> TestResult {
    let (connection, _) = store_sqlite::SqliteOptions::new(path)
        .migrations(migrations())
        .open()?;
    connection.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO notes SELECT printf('note %06d, long enough to fill pages', i) FROM n;",
    )?;
    drop(connection);
    Ok(())
}

/// The kind of b-tree page to damage: SQLite's page type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageKind {
    /// A leaf page of an index (0x0A): `quick_check` names the damage in its answer.
    IndexLeaf = 0x0A,
    /// A leaf page of a table (0x0D): `quick_check` fails with SQLITE_CORRUPT on it.
    TableLeaf = 0x0D,
}

/// Overwrites the header and first cells of a `kind` page in the second half of the database file
/// with garbage: real damage, as a bad disk or a torn copy leaves.
fn corrupt_a_page(path: &Path, kind: PageKind) -> TestResult {
    let page_size = {
        let connection = rusqlite::Connection::open(path)?;
        usize::try_from(connection.query_row("PRAGMA page_size", [], |row| row.get::<_, u32>(0))?)?
    };
    let mut bytes = std::fs::read(path)?;
    let pages = bytes.len() / page_size;
    // Page 1 starts with the 100-byte file header; the others with their page header.
    let page = (pages / 2..pages)
        .find(|page| bytes[page * page_size] == kind as u8)
        .ok_or_else(|| format!("no {kind:?} page among the last {} pages", pages / 2))?;
    let start = page * page_size;
    for (index, byte) in bytes[start..start + 512].iter_mut().enumerate() {
        *byte = 0xA5 ^ (index as u8);
    }
    std::fs::write(path, bytes)?;
    Ok(())
}

/// What SQLite itself says of the file: `PRAGMA quick_check`'s rows.
fn quick_check(path: &Path) -> Result<Vec<String>, rusqlite::Error> {
    let connection = rusqlite::Connection::open(path)?;
    let mut statement = connection.prepare("PRAGMA quick_check")?;
    let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
    rows.collect()
}
