//! store-sqlite against the real bundled SQLite and real faults (store-testkit). Tests that install
//! a process-global fault run in a child process of their own (`store_testkit::isolated!`).

mod bad_input;
mod database;
mod durability;
mod journal;
mod migrations;

use std::path::Path;

use rusqlite::Connection;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Header bytes 18 and 19: 2 in WAL format, 1 in rollback-journal format.
pub fn header_format(path: &Path) -> (u8, u8) {
    let header = std::fs::read(path).expect("database readable");
    (header[18], header[19])
}

/// Creates a table and `rows` rows with a plain connection.
pub fn write_plain_rows(connection: &Connection, rows: u32) -> rusqlite::Result<()> {
    connection.execute_batch("CREATE TABLE IF NOT EXISTS t (x INTEGER NOT NULL)")?;
    for row in 0..rows {
        connection.execute("INSERT INTO t (x) VALUES (?1)", [row])?;
    }
    Ok(())
}

pub fn count(connection: &Connection, table: &str) -> rusqlite::Result<i64> {
    connection.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
        row.get(0)
    })
}
