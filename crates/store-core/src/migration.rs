//! The migration model: an ordered list of `(version, name, sql)` and the `schema_version` table the
//! engines keep it in.
//!
//! ```
//! use store_core::{Migration, Migrations};
//!
//! let migrations = Migrations::new(vec![
//!     Migration::new(1, "create sessions", "CREATE TABLE sessions (id TEXT PRIMARY KEY)"),
//!     Migration::new(2, "add source", "ALTER TABLE sessions ADD COLUMN source TEXT"),
//! ])?;
//! assert_eq!(migrations.latest_version(), 2);
//! assert_eq!(migrations.pending(1)?.len(), 1);
//! assert!(migrations.pending(3).is_err(), "a database from a newer release is refused");
//! # Ok::<(), store_core::MigrationsError>(())
//! ```

use std::borrow::Cow;

/// The table each engine records applied migrations in: `schema_version(version, applied_at)`, one
/// row per applied migration.
pub const SCHEMA_VERSION_TABLE: &str = "schema_version";

/// One schema change, applied in its own transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Its version: positive, strictly increasing along the list.
    pub version: u32,
    /// A short human name, for reports.
    pub name: Cow<'static, str>,
    /// The statements to run (several may be separated by `;`).
    pub sql: Cow<'static, str>,
}

impl Migration {
    /// A migration from static text (the usual case: migrations compiled into the binary).
    pub const fn new(version: u32, name: &'static str, sql: &'static str) -> Migration {
        Migration {
            version,
            name: Cow::Borrowed(name),
            sql: Cow::Borrowed(sql),
        }
    }

    /// A migration from text built at run time.
    pub fn owned(version: u32, name: impl Into<String>, sql: impl Into<String>) -> Migration {
        Migration {
            version,
            name: Cow::Owned(name.into()),
            sql: Cow::Owned(sql.into()),
        }
    }
}

/// A migration list that is not usable, or a database it cannot serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationsError {
    /// Version 0 is the schema before any migration.
    #[error("migration `{name}` has version 0; versions start at 1")]
    ZeroVersion {
        /// The migration's name.
        name: String,
    },
    /// Versions must increase strictly along the list.
    #[error("migration {version} (`{name}`) does not come after version {previous_version}")]
    OutOfOrder {
        /// The version that is out of place.
        version: u32,
        /// Its name.
        name: String,
        /// The version before it.
        previous_version: u32,
    },
    /// A migration with no statement.
    #[error("migration {version} (`{name}`) has no SQL")]
    EmptySql {
        /// Its version.
        version: u32,
        /// Its name.
        name: String,
    },
    /// The database was migrated by a newer release than this one.
    #[error(
        "database schema version {database_version} is newer than this release's latest, {latest_version}"
    )]
    DatabaseNewer {
        /// What the database says.
        database_version: u32,
        /// What this release knows.
        latest_version: u32,
    },
    /// The database stayed at an older version than this release's latest after its
    /// migrations ran: a migration did not record its version.
    #[error(
        "database schema version {database_version} is older than this release's latest, \
         {latest_version}, after migrating"
    )]
    DatabaseOlder {
        /// What the database says.
        database_version: u32,
        /// What this release knows.
        latest_version: u32,
    },
}

/// An ordered, validated list of migrations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migrations {
    list: Vec<Migration>,
}

impl Migrations {
    /// Validates `list`: versions positive and strictly increasing, every migration with SQL.
    pub fn new(list: Vec<Migration>) -> Result<Migrations, MigrationsError> {
        let mut previous_version = 0;
        for migration in &list {
            if migration.version == 0 {
                return Err(MigrationsError::ZeroVersion {
                    name: migration.name.to_string(),
                });
            }
            if migration.version <= previous_version {
                return Err(MigrationsError::OutOfOrder {
                    version: migration.version,
                    name: migration.name.to_string(),
                    previous_version,
                });
            }
            if migration.sql.trim().is_empty() {
                return Err(MigrationsError::EmptySql {
                    version: migration.version,
                    name: migration.name.to_string(),
                });
            }
            previous_version = migration.version;
        }
        Ok(Migrations { list })
    }

    /// No migrations: the schema is the application's own business.
    pub fn none() -> Migrations {
        Migrations::default()
    }

    /// The version the last migration brings the schema to; 0 when there are none.
    pub fn latest_version(&self) -> u32 {
        self.list.last().map_or(0, |migration| migration.version)
    }

    /// Every migration, in order.
    pub fn all(&self) -> &[Migration] {
        &self.list
    }

    /// Whether there is nothing at all to migrate.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The migrations a database at `current_version` still needs, in order. A database newer than
    /// this list is an error: running older code against it could misread its data.
    pub fn pending(&self, current_version: u32) -> Result<&[Migration], MigrationsError> {
        let latest_version = self.latest_version();
        if current_version > latest_version {
            return Err(MigrationsError::DatabaseNewer {
                database_version: current_version,
                latest_version,
            });
        }
        let first_pending = self
            .list
            .partition_point(|migration| migration.version <= current_version);
        Ok(&self.list[first_pending..])
    }

    /// Whether a database that has just been migrated stands at this list's latest version: the
    /// error that says which way it is off, newer or older.
    ///
    /// ```
    /// use store_core::{Migration, Migrations, MigrationsError};
    ///
    /// let migrations = Migrations::new(vec![Migration::new(1, "t", "CREATE TABLE t (x INTEGER)")])?;
    /// assert_eq!(migrations.check_migrated(1), Ok(()));
    /// assert!(matches!(migrations.check_migrated(0), Err(MigrationsError::DatabaseOlder { .. })));
    /// assert!(matches!(migrations.check_migrated(2), Err(MigrationsError::DatabaseNewer { .. })));
    /// # Ok::<(), MigrationsError>(())
    /// ```
    pub fn check_migrated(&self, database_version: u32) -> Result<(), MigrationsError> {
        let latest_version = self.latest_version();
        match database_version.cmp(&latest_version) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Greater => Err(MigrationsError::DatabaseNewer {
                database_version,
                latest_version,
            }),
            std::cmp::Ordering::Less => Err(MigrationsError::DatabaseOlder {
                database_version,
                latest_version,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Migrations {
        Migrations::new(vec![
            Migration::new(1, "one", "CREATE TABLE a (x INTEGER)"),
            Migration::new(2, "two", "ALTER TABLE a ADD COLUMN y INTEGER"),
            Migration::owned(5, "five", "CREATE TABLE b (z INTEGER)"),
        ])
        .expect("valid")
    }

    #[test]
    fn pending_is_what_comes_after_the_current_version() -> Result<(), MigrationsError> {
        let migrations = three();
        let versions = |current| -> Result<Vec<u32>, MigrationsError> {
            Ok(migrations
                .pending(current)?
                .iter()
                .map(|m| m.version)
                .collect())
        };
        assert_eq!(versions(0)?, [1, 2, 5]);
        assert_eq!(versions(2)?, [5]);
        // A version between two migrations (a list that skipped numbers) still finds the next one.
        assert_eq!(versions(3)?, [5]);
        assert_eq!(versions(5)?, Vec::<u32>::new());
        Ok(())
    }

    #[test]
    fn a_newer_database_is_refused() {
        assert_eq!(
            three().pending(6),
            Err(MigrationsError::DatabaseNewer {
                database_version: 6,
                latest_version: 5
            })
        );
    }

    #[test]
    fn invalid_lists_are_typed_errors() {
        let zero = Migrations::new(vec![Migration::new(0, "zero", "SELECT 1")]);
        assert!(matches!(zero, Err(MigrationsError::ZeroVersion { .. })));
        let repeated = Migrations::new(vec![
            Migration::new(1, "a", "SELECT 1"),
            Migration::new(1, "b", "SELECT 1"),
        ]);
        assert_eq!(
            repeated,
            Err(MigrationsError::OutOfOrder {
                version: 1,
                name: "b".into(),
                previous_version: 1
            })
        );
        let empty = Migrations::new(vec![Migration::new(1, "a", "  ")]);
        assert!(matches!(
            empty,
            Err(MigrationsError::EmptySql { version: 1, .. })
        ));
    }

    #[test]
    fn no_migrations_is_version_zero() -> Result<(), MigrationsError> {
        let none = Migrations::none();
        assert!(none.is_empty());
        assert_eq!(none.latest_version(), 0);
        assert!(none.pending(0)?.is_empty());
        Ok(())
    }
}
