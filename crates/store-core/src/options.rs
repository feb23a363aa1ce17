//! What both engines' options hold alike: the database's path and label, its migrations, whether
//! it is opened read-only, the filesystem kind that overrides detection, and the per-connection
//! initialisation. Each engine's options embed one and add their own (a journal policy, a
//! recovery policy, engine settings).

use std::path::{Path, PathBuf};

use crate::connect::OnConnect;
use crate::fs::FsKind;
use crate::migration::Migrations;

/// The options every engine's open takes, for connections of type `C` whose initialisation
/// fails with `E`.
#[non_exhaustive]
pub struct CommonOptions<C, E> {
    /// The database file.
    pub path: PathBuf,
    /// The name warnings and messages use; `None`: the file name.
    pub label: Option<String>,
    /// Applied on open, each once, in order.
    pub migrations: Migrations,
    /// Open read-only: never create, convert, migrate or recover.
    pub read_only: bool,
    /// The filesystem kind to decide on instead of the detected one.
    pub filesystem: Option<FsKind>,
    /// Run on every connection the open and its handle make.
    pub on_connect: OnConnect<C, E>,
}

// By hand: derived, they would ask `C` and `E` to be `Clone` and `Debug`, which connections are not.
impl<C, E> Clone for CommonOptions<C, E> {
    fn clone(&self) -> Self {
        CommonOptions {
            path: self.path.clone(),
            label: self.label.clone(),
            migrations: self.migrations.clone(),
            read_only: self.read_only,
            filesystem: self.filesystem,
            on_connect: self.on_connect.clone(),
        }
    }
}

impl<C, E> std::fmt::Debug for CommonOptions<C, E> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CommonOptions")
            .field("path", &self.path)
            .field("label", &self.label)
            .field("migrations", &self.migrations)
            .field("read_only", &self.read_only)
            .field("filesystem", &self.filesystem)
            .field("on_connect", &self.on_connect)
            .finish()
    }
}

impl<C, E> CommonOptions<C, E> {
    /// The defaults for the database at `path`: its file name as label, no migrations,
    /// read-write, the detected filesystem, no initialisation.
    pub fn new(path: &Path) -> CommonOptions<C, E> {
        CommonOptions {
            path: path.to_owned(),
            label: None,
            migrations: Migrations::none(),
            read_only: false,
            filesystem: None,
            on_connect: OnConnect::default(),
        }
    }

    /// The label in use: the one set, or the file name.
    pub fn label_or_file_name(&self) -> String {
        crate::label_or_file_name(self.label.as_deref(), &self.path)
    }
}
