//! Ownership held by connections: where the open claimed the database for this client (a
//! filesystem another machine can reach, [`store_core::opening::claim_ownership`]), every
//! connection made under the claim holds a share of it, and the last one's close releases it, so
//! that the next machine may open at once. A plain `rusqlite::Connection` has no drop hook of
//! ours: the share rides on the connection as SQLite client data, whose destructor SQLite runs
//! when the connection closes.

use std::ffi::c_void;
use std::sync::Arc;

use rusqlite::{Connection, ffi};
use store_core::ownership::Ownership;

/// The client data's name: one per connection, never used by anything else.
const CLIENT_DATA_NAME: &std::ffi::CStr = c"store::ownership";

/// Ties a share of `ownership` to `connection`, released when SQLite closes it.
pub(crate) fn hold_with(connection: &Connection, ownership: &Arc<Ownership>) {
    /// SQLite's destructor for the client data: the share goes, and with the last one the claim.
    unsafe extern "C" fn release(share: *mut c_void) {
        // SAFETY: `share` is the box `hold_with` leaked, handed back exactly once.
        drop(unsafe { Box::from_raw(share.cast::<Arc<Ownership>>()) });
    }
    let share = Box::into_raw(Box::new(Arc::clone(ownership))).cast::<c_void>();
    // SAFETY: a live connection's handle and a NUL-terminated static name. On failure (out of
    // memory) SQLite runs the destructor itself, so the share is never leaked: the claim then
    // lives only as long as the open's other holders, a weaker hold but never a stuck one.
    unsafe {
        ffi::sqlite3_set_clientdata(
            connection.handle(),
            CLIENT_DATA_NAME.as_ptr(),
            share,
            Some(release),
        );
    }
}
