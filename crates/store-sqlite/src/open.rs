//! The open's entry points: reuse a live decision, or check, create, walk the ladder, migrate.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, PoisonError};

use rusqlite::Connection;
use store_core::connect::deciding_lock;
use store_core::{
    ConnectionLimit, Durability, Engine, FileContent, Filesystem, FsKind, JournalMode, OpenReport,
    PathStat, check_database_path_at,
};

use crate::create::create_database;
use crate::database::{Decided, DecisionKey, SqliteDatabase, decision_key, live_decision};
use crate::error::OpenError;
use crate::ladder::Probed;
use crate::migrate;
use crate::options::{SqliteOptions, Synchronous};

impl SqliteOptions {
    /// Opens the database: checks the path, creates the database if it is missing (never leaving a
    /// half-made file behind), walks the journal ladder until a mode works and is proven by a read,
    /// applies pending migrations, and reports every decision. The same as
    /// [`database`](Self::database) followed by one [`SqliteDatabase::connect`].
    ///
    /// A failure is recorded as the process's last open error
    /// ([`store_core::last_open_error`]) and logged at WARN once per label and class.
    pub fn open(&self) -> Result<(Connection, OpenReport), OpenError> {
        self.reporting(|report| self.decide_or_reuse(report))
    }

    /// Opens the database as [`open`](Self::open) does and returns the handle that holds the
    /// decision, from which to make connections ([`SqliteDatabase::connect`]) and pools. While a
    /// handle lives, every open of the same file in this process reuses its decision
    /// ([`OpenReport::reused_decision`](store_core::OpenReport::reused_decision)): nothing is
    /// walked or switched again, and only the migrations it lacks are applied.
    pub fn database(&self) -> Result<(SqliteDatabase, OpenReport), OpenError> {
        self.reporting(|report| self.decide_or_reuse(report))
    }

    /// Runs an open inside its span, fills in the elapsed time, and records a failure as the
    /// process's last open error ([`store_core::opening::reporting`]).
    fn reporting<T>(
        &self,
        body: impl FnOnce(&mut OpenReport) -> Result<T, OpenError>,
    ) -> Result<(T, OpenReport), OpenError> {
        store_core::opening::reporting(
            Engine::Sqlite,
            &self.common.path,
            self.label_or_file_name(),
            body,
        )
    }

    /// Decides for the database, or reuses the live decision of this process for it, and hands
    /// back what the caller asked for ([`Outcome`]).
    fn decide_or_reuse<T: Outcome>(&self, report: &mut OpenReport) -> Result<T, OpenError> {
        // Keyed by the path as given (a relative one made absolute, no filesystem call): two
        // spellings of one file may decide at the same time, and the second to finish replaces
        // the first's registration with an equal decision.
        let path = &self.common.path;
        let deciding = if path.is_absolute() {
            deciding_lock(path)
        } else {
            deciding_lock(&std::path::absolute(path).unwrap_or_else(|_| path.clone()))
        };
        let _deciding = deciding.lock().unwrap_or_else(PoisonError::into_inner);
        // One `statx` of the path for the whole open: the decision's key, the mount detection
        // is remembered by, and the path check.
        let stat = PathStat::of(path);
        let found = stat.as_ref().ok().copied().flatten();
        let key = found.map(|found| decision_key(&found, self.common.read_only));
        if let Some(decided) = key.and_then(live_decision) {
            return T::reused(self.reuse(decided, report)?);
        }
        report.filesystem =
            Filesystem::detect_unless_set_at(path, found.as_ref(), self.common.filesystem);
        // Before SQLite opens the file: on a filesystem another machine can reach, this client
        // must own the database, or another machine gets a typed error here at once.
        let ownership = if self.common.read_only {
            None
        } else {
            store_core::opening::claim_ownership(path, crate::SIDECAR_SUFFIXES, report)
                .map_err(|source| OpenError::Ownership {
                    path: path.clone(),
                    source,
                })?
                .map(Arc::new)
        };
        let connection = self.open_reporting(stat, report)?;
        if let Some(ownership) = &ownership {
            crate::ownership::hold_with(&connection, ownership);
        }
        // A WAL database on a filesystem another machine can write is kept in WAL (never
        // switched live) and reported at risk.
        report.assess_wal_risk();
        let connection_limit = if report.journal_mode == Some(JournalMode::WalExclusive) {
            ConnectionLimit::One
        } else {
            ConnectionLimit::Many
        };
        report.connection_limit = connection_limit;
        // Still under the deciding lock: an open waiting for it finds the decision registered.
        Ok(T::decided(self, connection, key, report, ownership))
    }

    /// An open of a database this process has decided for and still holds a handle to: the
    /// decision stands; only the migrations it lacks are applied.
    fn reuse(
        &self,
        decided: Arc<Decided>,
        report: &mut OpenReport,
    ) -> Result<SqliteDatabase, OpenError> {
        report.reused_decision = true;
        report.filesystem = decided.filesystem.clone();
        report.journal_mode = decided.journal_mode;
        report.assess_wal_risk();
        report.connection_limit = decided.connection_limit;
        report.schema_version = decided.schema_version.load(Ordering::Acquire);
        let database = SqliteDatabase::new(decided, self, None);
        report.durability = database.durability();
        if !self.common.read_only && !self.common.migrations.is_empty() {
            let connection = database.connect()?;
            migrate::apply(&connection, &self.common.migrations, report).map_err(|source| {
                OpenError::Migrate {
                    path: self.common.path.clone(),
                    source,
                }
            })?;
            database
                .decided()
                .schema_version
                .store(report.schema_version, Ordering::Release);
            database.keep(connection);
        }
        Ok(database)
    }

    fn open_reporting(
        &self,
        stat: std::io::Result<Option<PathStat>>,
        report: &mut OpenReport,
    ) -> Result<Connection, OpenError> {
        let content = check_database_path_at(
            &self.common.path,
            stat,
            Engine::Sqlite,
            self.common.read_only,
            crate::SIDECAR_SUFFIXES,
        )?;
        if self.common.read_only {
            let connection = self.open_read_only(content, report)?;
            self.run_on_connect(&connection)?;
            migrate::report_read_only(&connection, &self.common.migrations, report).map_err(
                |source| OpenError::Migrate {
                    path: self.common.path.clone(),
                    source,
                },
            )?;
            return Ok(connection);
        }
        let was_wal = content == FileContent::Sqlite { wal: true };
        let filesystem = report
            .filesystem
            .as_ref()
            .map_or(FsKind::Unknown, |f| f.kind);
        let ladder = self.journal_ladder(filesystem, was_wal);
        let wal_ruled_out = self.wal_ruled_out(&ladder, was_wal);
        // What the path check read, until creation makes a file (ours, or another process's
        // that won the race to the name): its header is read then.
        let mut known_format = Some(was_wal);
        if content == FileContent::Missing {
            // In the format of the first rung the ladder will try.
            let first_tried = ladder
                .iter()
                .find(|&&mode| !(mode == JournalMode::Wal && wal_ruled_out.is_some()));
            create_database(
                &self.common.path,
                first_tried.is_some_and(|mode| mode.is_wal()),
            )?;
            known_format = None;
            report.created = true;
        }
        let (
            Probed {
                connection,
                schema_version,
                synchronous,
            },
            mode,
        ) = match self.walk_ladder(&ladder, known_format, wal_ruled_out, report) {
            Ok(found) => found,
            Err(error) => {
                if !was_wal {
                    self.restore_rollback_format();
                }
                return Err(error);
            }
        };
        self.note_kept_ladder(filesystem, &ladder, report);
        report.journal_mode = Some(mode);
        self.run_on_connect(&connection)?;
        // Read back after the initialisation when one ran (it may have set it); else the
        // ladder's read-back is what is in force.
        let synchronous = if self.common.on_connect.is_empty() {
            synchronous
        } else {
            crate::pragma::synchronous_level(&connection)
                .map_err(|source| self.engine_error(crate::classify::Stage::Query, source))?
        };
        report.durability = Some(self.synchronous_in_force(synchronous, mode)?);
        migrate::apply_from(&connection, &self.common.migrations, report, schema_version).map_err(
            |source| OpenError::Migrate {
                path: self.common.path.clone(),
                source,
            },
        )?;
        Ok(connection)
    }

    /// The durability of `PRAGMA synchronous` as read back after setting it and after the
    /// options' `on_connect`: the durability reported is the one SQLite answers, and an answer
    /// other than the level asked for fails the open rather than leave commits less durable than
    /// the caller was told.
    fn synchronous_in_force(
        &self,
        answered: i64,
        mode: JournalMode,
    ) -> Result<Durability, OpenError> {
        let asked = self.synchronous_for(mode);
        match Synchronous::from_level(answered) {
            Some(in_force) if in_force == asked => Ok(in_force.durability_in(mode)),
            _ => Err(OpenError::SynchronousNotTaken {
                path: self.common.path.clone(),
                asked,
                answered,
            }),
        }
    }

    /// The options' per-connection initialisation, on the open's own connection.
    fn run_on_connect(&self, connection: &Connection) -> Result<(), OpenError> {
        self.common
            .on_connect
            .run(connection)
            .map_err(|source| OpenError::Init {
                path: self.common.path.clone(),
                source,
            })
    }
}

/// What an open hands back, from a decision it made or one it reused.
trait Outcome: Sized {
    /// From the live decision of a handle this process holds.
    fn reused(database: SqliteDatabase) -> Result<Self, OpenError>;
    /// From the decision this open made, with the connection that proved it (`key`: the file's,
    /// when it existed before the open).
    fn decided(
        options: &SqliteOptions,
        connection: Connection,
        key: Option<DecisionKey>,
        report: &OpenReport,
        ownership: Option<Arc<store_core::ownership::Ownership>>,
    ) -> Self;
}

/// [`SqliteOptions::open`]: a connection alone.
impl Outcome for Connection {
    fn reused(database: SqliteDatabase) -> Result<Connection, OpenError> {
        Ok(database.connect()?)
    }

    /// The decision is not registered: no handle would hold it past this open (registering it,
    /// with the options a handle keeps, cost more than the rest of store's share of the open).
    fn decided(
        _: &SqliteOptions,
        connection: Connection,
        _: Option<DecisionKey>,
        _: &OpenReport,
        _: Option<Arc<store_core::ownership::Ownership>>,
    ) -> Connection {
        // Its share of the ownership rides on the connection already.
        connection
    }
}

/// [`SqliteOptions::database`]: the handle that holds the decision, registered for later opens.
impl Outcome for SqliteDatabase {
    fn reused(database: SqliteDatabase) -> Result<SqliteDatabase, OpenError> {
        Ok(database)
    }

    fn decided(
        options: &SqliteOptions,
        connection: Connection,
        key: Option<DecisionKey>,
        report: &OpenReport,
        ownership: Option<Arc<store_core::ownership::Ownership>>,
    ) -> SqliteDatabase {
        let decided = Decided {
            // Asked again only for a file this open created: an existing one keeps its key.
            key: key.or_else(|| {
                let found = PathStat::of(&options.common.path).ok()??;
                Some(decision_key(&found, options.common.read_only))
            }),
            filesystem: report.filesystem.clone(),
            journal_mode: report.journal_mode,
            connection_limit: report.connection_limit,
            schema_version: AtomicU32::new(report.schema_version),
            ownership,
        }
        .register();
        SqliteDatabase::new(decided, options, Some(connection))
    }
}
