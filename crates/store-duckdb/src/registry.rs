//! One DuckDB instance per database file per process. Two instances on one file in one process
//! both get the file lock (POSIX locks do not conflict within a process) and lose each other's
//! writes, and DuckDB does not stop it; so a second open of a file that is open in this process
//! gets a new connection to the same instance, if it asks for the instance as it is: its access
//! mode and settings are fixed when it starts, so an open asking for others is refused with
//! [`OpenError::InstanceMismatch`](crate::OpenError::InstanceMismatch) rather than handed an
//! instance that does not do what it asked.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

struct Entry {
    /// A connection kept only to clone from; taken and dropped with the last user's connection,
    /// so that the instance closes (and checkpoints) when nobody uses it. `None` while it closes:
    /// the entry stays until the close is over, so that the file is never seen as not open
    /// while its instance is still checkpointing.
    spare: Option<duckdb::Connection>,
    /// A descriptor of the database file, for store's own reads of it while the instance lives
    /// (its headers, the pre-migration snapshot's copy). DuckDB's lock is a POSIX lock, which the
    /// kernel drops for the whole process when any descriptor of the file closes: this one
    /// closes after the instance (fields drop in order), never while DuckDB holds the file.
    file: Arc<File>,
    users: usize,
    config: InstanceConfig,
    /// This client's claim on a database another machine can reach: released when the entry
    /// goes, after the instance has closed, so that the next machine finds the files whole.
    _ownership: Option<store_core::ownership::Ownership>,
}

/// What an instance of a database was started with, and so what every open sharing it gets: its
/// access mode and its DuckDB settings ([`DuckDbOptions::setting`](crate::DuckDbOptions::setting)).
/// Settings are compared as given: `64MB` and `64000000` are different settings here.
///
/// ```
/// use std::collections::BTreeMap;
/// use store_duckdb::InstanceConfig;
///
/// let config = InstanceConfig {
///     read_only: false,
///     settings: BTreeMap::from([("memory_limit".to_owned(), "64MB".to_owned())]),
/// };
/// assert_eq!(config.to_string(), "read-write, memory_limit=64MB");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    /// Whether the instance is read-only.
    pub read_only: bool,
    /// DuckDB settings by lowercase name.
    pub settings: BTreeMap<String, String>,
}

impl fmt::Display for InstanceConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(if self.read_only {
            "read-only"
        } else {
            "read-write"
        })?;
        for (name, value) in &self.settings {
            write!(formatter, ", {name}={value}")?;
        }
        Ok(())
    }
}

static INSTANCES: Mutex<BTreeMap<PathBuf, Entry>> = Mutex::new(BTreeMap::new());

/// The lock of one file's instance: held while an open shares or starts it and while its last
/// connection closes it (a checkpoint), so that an open of the file waits for its close, never
/// starting a second instance beside one still closing, while opens of other files go on. Never
/// held while a [`DuckDbConnection`] drops on the same thread (its drop takes it).
pub(crate) fn instance_lock(key: &Path) -> Arc<Mutex<()>> {
    static LOCKS: Mutex<BTreeMap<PathBuf, Arc<Mutex<()>>>> = Mutex::new(BTreeMap::new());
    let mut locks = LOCKS.lock().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(locks.entry(key.to_owned()).or_default())
}

fn instances() -> MutexGuard<'static, BTreeMap<PathBuf, Entry>> {
    INSTANCES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What sharing an open instance gave.
pub(crate) enum Shared {
    /// Nothing is open for this file.
    NotOpen,
    /// A new connection to the open instance.
    Connection(DuckDbConnection),
    /// The open instance was started with another configuration, given here; nothing was shared.
    Mismatch(InstanceConfig),
    /// Cloning the open instance's connection failed.
    Failed(duckdb::Error),
}

/// A new connection to the instance open for `key`, if any and if it was started with `asked`.
pub(crate) fn share(key: &Path, asked: &InstanceConfig) -> Shared {
    let mut instances = instances();
    let Some(entry) = instances.get_mut(key) else {
        return Shared::NotOpen;
    };
    if entry.config != *asked {
        return Shared::Mismatch(entry.config.clone());
    }
    let Some(spare) = &entry.spare else {
        // Closing: unreachable under the instance lock this open holds, which the close holds too.
        return Shared::NotOpen;
    };
    match spare.try_clone() {
        Ok(connection) => {
            entry.users += 1;
            Shared::Connection(DuckDbConnection {
                connection: Some(connection),
                key: key.to_owned(),
                file: Arc::clone(&entry.file),
            })
        }
        Err(error) => Shared::Failed(error),
    }
}

/// Registers a freshly opened instance, with `file`, a descriptor of its database file kept until
/// the instance closes, and wraps its connection.
pub(crate) fn register(
    key: PathBuf,
    connection: duckdb::Connection,
    file: Arc<File>,
    config: InstanceConfig,
    ownership: Option<store_core::ownership::Ownership>,
) -> Result<DuckDbConnection, duckdb::Error> {
    let spare = connection.try_clone()?;
    let mut instances = instances();
    debug_assert!(!instances.contains_key(&key), "one instance per file");
    instances.insert(
        key.clone(),
        Entry {
            spare: Some(spare),
            file: Arc::clone(&file),
            users: 1,
            config,
            _ownership: ownership,
        },
    );
    Ok(DuckDbConnection {
        connection: Some(connection),
        key,
        file,
    })
}

/// Whether an instance is open for `path` in this process.
pub fn is_open(path: &Path) -> bool {
    is_open_key(&store_core::connect::database_key(path))
}

/// [`is_open`] for a key already made with `database_key`.
pub(crate) fn is_open_key(key: &Path) -> bool {
    instances().contains_key(key)
}

/// A connection to a DuckDB database opened through store: a [`duckdb::Connection`] (it derefs to
/// one) that keeps the process's one instance of the file alive. When the last connection to a
/// file drops, the instance closes, which checkpoints the WAL into the database.
pub struct DuckDbConnection {
    /// Always present; taken only in `drop`, so that the last connection closes the instance
    /// before the registry forgets it.
    connection: Option<duckdb::Connection>,
    key: PathBuf,
    /// The instance's descriptor of the database file: dropped after `connection` (fields drop
    /// after `drop` has closed the connection), so never while this connection holds the file.
    file: Arc<File>,
}

impl std::fmt::Debug for DuckDbConnection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DuckDbConnection")
            .field("path", &self.key)
            .finish_non_exhaustive()
    }
}

impl DuckDbConnection {
    /// Another connection to the same instance (for another thread).
    pub fn try_clone(&self) -> Result<DuckDbConnection, duckdb::Error> {
        let connection = self.connection().try_clone()?;
        if let Some(entry) = instances().get_mut(&self.key) {
            entry.users += 1;
        }
        Ok(DuckDbConnection {
            connection: Some(connection),
            key: self.key.clone(),
            file: Arc::clone(&self.file),
        })
    }

    fn connection(&self) -> &duckdb::Connection {
        self.connection
            .as_ref()
            .expect("a connection is present until it drops")
    }

    /// The database file this connection is to (canonical directory).
    pub fn path(&self) -> &Path {
        &self.key
    }

    /// A descriptor of the database file, kept open while the instance lives: store's reads of
    /// the file go through it, since closing any descriptor of the file would drop DuckDB's
    /// POSIX lock on it for the whole process.
    pub(crate) fn database_file(&self) -> &File {
        &self.file
    }
}

impl Deref for DuckDbConnection {
    type Target = duckdb::Connection;

    fn deref(&self) -> &duckdb::Connection {
        self.connection()
    }
}

impl DerefMut for DuckDbConnection {
    fn deref_mut(&mut self) -> &mut duckdb::Connection {
        self.connection
            .as_mut()
            .expect("a connection is present until it drops")
    }
}

impl Drop for DuckDbConnection {
    fn drop(&mut self) {
        let instance = instance_lock(&self.key);
        let _instance = instance.lock().unwrap_or_else(PoisonError::into_inner);
        let spare = {
            let mut instances = instances();
            match instances.get_mut(&self.key) {
                Some(entry) => {
                    entry.users = entry.users.saturating_sub(1);
                    if entry.users == 0 {
                        entry.spare.take()
                    } else {
                        None
                    }
                }
                None => None,
            }
        };
        if let Some(spare) = spare {
            // The instance closes (and checkpoints) when its last connection drops: under this
            // file's instance lock, not the registry's, so that opens of other files go on while
            // an open of this one waits; the entry goes once the close is over.
            tracing::debug!(
                target: "store::duckdb",
                path = %self.key.display(),
                "closing the instance (a checkpoint)"
            );
            drop(self.connection.take());
            drop(spare);
            let entry = instances().remove(&self.key);
            // Its descriptor of the file closes last, after the instance.
            drop(entry);
        }
    }
}
