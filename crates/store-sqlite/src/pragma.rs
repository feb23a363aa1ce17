//! Pragmas run to completion: what the open's ladder, a new connection and the probe share.

use rusqlite::Connection;

/// Sets `PRAGMA locking_mode` (`exclusive` or `normal`).
pub(crate) fn set_locking_mode(connection: &Connection, mode: &str) -> rusqlite::Result<()> {
    pragma_answer(connection, &format!("PRAGMA locking_mode={mode}")).map(drop)
}

/// What `PRAGMA synchronous` answers now (0 to 3 for off to extra): what a connection handed
/// out is read back with, after the user's initialisation, which may have set it.
pub(crate) fn synchronous_level(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row("PRAGMA synchronous", [], |row| row.get(0))
}

/// Runs a pragma to completion and returns its first answer. A pragma that writes (the journal
/// mode's header change) commits when the statement finishes: `query_row` would stop after the
/// row and let the statement's reset swallow a failed commit.
pub(crate) fn pragma_answer(connection: &Connection, sql: &str) -> rusqlite::Result<String> {
    let mut statement = connection.prepare(sql)?;
    let mut rows = statement.query([])?;
    let answer = match rows.next()? {
        Some(row) => row.get(0)?,
        None => String::new(),
    };
    while rows.next()?.is_some() {}
    Ok(answer)
}
