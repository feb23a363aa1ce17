//! Pools over a decided database: open once with [`Open::open_database`](crate::Open), then let a
//! pool make connections with [`Database::connect`], which decides nothing again.
//!
//! The pools are written against [`Database`], so they serve either engine:
//!
//! | feature    | module                 | for           | pooled object                          |
//! |------------|------------------------|---------------|----------------------------------------|
//! | `r2d2`     | `r2d2`                 | threads       | the engine's connection                |
//! | `deadpool` | `deadpool`             | tokio tasks   | an `AsyncConnection` on its own thread |
//!
//! A pool never holds more connections than the database's decision allows
//! ([`Database::connection_limit`]): a SQLite database kept in WAL format on a filesystem that
//! cannot share WAL's memory is open with exclusive locking, allows one connection, and gets a
//! pool of one, whatever size was asked for ([`max_size`]). Its callers then take turns on that
//! connection instead of failing to connect.

use crate::{ConnectionLimit, Database};

#[cfg(feature = "deadpool")]
#[cfg_attr(docsrs, doc(cfg(feature = "deadpool")))]
pub mod deadpool;
#[cfg(feature = "r2d2")]
#[cfg_attr(docsrs, doc(cfg(feature = "r2d2")))]
pub mod r2d2;

/// The size of a pool over `database` for `wanted` connections: `wanted` (at least one), capped at
/// the most connections the database's decision allows. A cap is logged at INFO (target
/// `store::pool`) with its reason. Both pools size themselves with it; use it for any other pool.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// let directory = tempfile::tempdir().unwrap();
/// let (database, _) = store::sqlite::SqliteOptions::new(directory.path().join("a.db"))
///     .database()
///     .unwrap();
/// // A database in WAL mode on a local disk allows any number of connections.
/// assert_eq!(store::pool::max_size(&database, 8), 8);
/// # }
/// ```
pub fn max_size<D: Database>(database: &D, wanted: u32) -> u32 {
    let wanted = wanted.max(1);
    let limit = database.connection_limit();
    match limit.max_connections() {
        Some(most) if most < wanted => {
            let why = match limit {
                ConnectionLimit::One => {
                    "it is in WAL format on a filesystem that cannot share WAL's memory, so it is \
                     open with exclusive locking"
                }
                _ => "of how it was opened",
            };
            tracing::info!(
                target: "store::pool",
                wanted,
                size = most,
                "a pool of {wanted} connections gets {most}: the database allows {limit}, \
                 because {why}; callers take turns on the connections there are"
            );
            most
        }
        _ => wanted,
    }
}
