//! The open: check the path, share an instance already open in this process, create atomically,
//! recover from a WAL that cannot be replayed, migrate, report.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, PoisonError};

use duckdb::Config;
use store_core::opening::{CreateFailure, create_atomically};
use store_core::pending::{self, InterruptedRecovery};
use store_core::{
    Durability, Engine, FileContent, Filesystem, OpenReport, SyncLevel, WarnOnce,
    check_database_path,
};

use crate::classify::classify;
use crate::error::{OpenError, StepError};
use crate::migrate;
use crate::options::DuckDbOptions;
use crate::recovery;
use crate::registry::{self, DuckDbConnection, Shared};

use crate::blocks::{self, BlocksMissing};
use crate::instance::connect;

impl DuckDbOptions {
    /// Opens the database: checks the path, shares an instance of it already open in this
    /// process (refused with [`OpenError::InstanceMismatch`] if that one was started with another
    /// access mode or other settings), checks the settings, creates it if missing (never leaving a
    /// half-made file), starts the instance with the settings in force, recovers per the recovery
    /// policy when its WAL cannot be replayed, applies pending migrations (checkpoint, snapshot,
    /// migrations, checkpoint), and reports every decision.
    ///
    /// For many connections to one database, [`DuckDbOptions::database`] decides all this once
    /// and then connects cheaply.
    ///
    /// A lock held by another process is never recovered from: it propagates as
    /// [`store_core::FailureClass::Locked`]. A failure is recorded as the process's last open
    /// error and logged at WARN once per label and class.
    pub fn open(&self) -> Result<(DuckDbConnection, OpenReport), OpenError> {
        store_core::opening::reporting(
            Engine::Duckdb,
            &self.common.path,
            self.label_or_file_name(),
            |report| {
                report.filesystem =
                    Filesystem::detect_unless_set(&self.common.path, self.common.filesystem);
                self.open_reporting(report)
            },
        )
    }

    fn open_reporting(&self, report: &mut OpenReport) -> Result<DuckDbConnection, OpenError> {
        let key = store_core::connect::database_key(&self.common.path);
        // A file open in this process is a DuckDB database: its path is not checked again, since
        // the check's read of the header would close a descriptor of the file and so drop
        // DuckDB's lock on it for the whole process.
        let content = if registry::is_open_key(&key) {
            FileContent::Duckdb
        } else {
            check_database_path(
                &self.common.path,
                Engine::Duckdb,
                self.common.read_only,
                crate::SIDECAR_SUFFIXES,
            )?
        };
        // One open of a file at a time in this process: one starts the instance, the others
        // share it.
        let opening = store_core::connect::deciding_lock(&key);
        let _opening = opening.lock().unwrap_or_else(PoisonError::into_inner);
        // A record left by a recovery whose open never returned (a crash or power cut after its
        // step): read before anything, so that a database it left healthy still reports it.
        report.interrupted_recovery = pending::find(&self.common.path);
        let asked = self.instance_config();
        // Held until the instance is shared or started and registered: a close of this file's
        // instance finishes first. Released before anything could drop a connection of it.
        let instance = registry::instance_lock(&key);
        let instance_guard = instance.lock().unwrap_or_else(PoisonError::into_inner);
        let connection = match registry::share(&key, &asked) {
            Shared::Connection(connection) => {
                // The instance open in this process decided recovery and replay already.
                report.reused_decision = true;
                report.notes.push(format!(
                    "shared the instance already open in this process ({asked})"
                ));
                connection
            }
            Shared::Mismatch(live) => {
                return Err(OpenError::InstanceMismatch {
                    path: self.common.path.clone(),
                    live,
                    asked,
                });
            }
            Shared::Failed(source) => return Err(self.engine_error(source)),
            Shared::NotOpen => {
                // Before any file is touched: a refused setting must leave the directory as it was.
                self.check_settings()?;
                // A share whose client DuckDB cannot write through: refused before anything
                // (a claim, a creation) touches it. Through smbnetfs DuckDB cannot open its WAL,
                // and the client answers every later call with EIO, a release included.
                if !self.common.read_only
                    && let Some(filesystem) = report.filesystem.as_ref().filter(|filesystem| {
                        filesystem.kind
                            == store_core::FsKind::NetworkFuse(store_core::ShareClient::Smbnetfs)
                    })
                {
                    return Err(OpenError::FilesystemUnsupported {
                        path: self.common.path.clone(),
                        filesystem: filesystem.kind,
                        source: None,
                    });
                }
                // Before DuckDB opens or creates the file: on a filesystem another machine can
                // reach, this client must own the database, or another machine is refused here.
                let ownership = if self.common.read_only {
                    None
                } else {
                    store_core::opening::claim_ownership(
                        &self.common.path,
                        crate::SIDECAR_SUFFIXES,
                        report,
                    )
                    .map_err(|source| OpenError::Ownership {
                        path: self.common.path.clone(),
                        source,
                    })?
                };
                if content == FileContent::Missing {
                    create_database(&self.common.path, &self.settings)
                        .map_err(|error| unsupported_across_a_boundary(error, report))?;
                    report.created = true;
                }
                let connection = match recovery::damaged_tail(self, report) {
                    Some(damage) => {
                        recovery::recover(self, recovery::Trigger::WalDamage(damage), report)?
                    }
                    None => match self.connect() {
                        Ok(connection) => connection,
                        Err(error) if self.common.read_only => return Err(self.engine_error(error)),
                        Err(error) => {
                            recovery::recover(self, recovery::Trigger::Engine(error), report)?
                        }
                    },
                };
                let file = self.database_file()?;
                let (connection, file) = match self.blocks_missing(&connection, &file)? {
                    None => (connection, file),
                    Some(missing) if self.common.read_only => {
                        return Err(missing.into_error(&self.common.path, Vec::new(), Vec::new()));
                    }
                    Some(missing) => {
                        // The instance closes before the ladder moves its file, and only then
                        // the descriptor.
                        drop(connection);
                        drop(file);
                        let connection =
                            recovery::recover(self, recovery::Trigger::CutShort(missing), report)?;
                        (connection, self.database_file()?)
                    }
                };
                if !self.settings.is_empty() {
                    report
                        .notes
                        .push(format!("started the instance as {asked}"));
                }
                registry::register(key, connection, file, asked, ownership)
                    .map_err(|source| self.engine_error(source))?
            }
        };
        drop(instance_guard);
        if report.recovery.is_none() {
            self.complete_interrupted_recovery(report);
        }
        self.common
            .on_connect
            .run(&connection)
            .map_err(|source| OpenError::Init {
                path: self.common.path.clone(),
                source,
            })?;
        let state = migrate::read_state(&connection).map_err(|source| self.engine_error(source))?;
        if self.common.read_only {
            report.schema_version = state.version;
            return Ok(connection);
        }
        report.durability = Some(self.durability(&state.fsync_mode)?);
        // A database this open restored from the pre-migration snapshot is that snapshot: the
        // snapshot in place already holds what a new one would, so migrating copies nothing.
        let restored = report
            .recovery
            .as_ref()
            .is_some_and(|recovery| recovery.step == store_core::RecoveryStep::RestoreSnapshot);
        migrate::apply(
            &connection,
            &self.common.path,
            connection.database_file(),
            &self.common.migrations,
            &state,
            restored,
            report,
        )
        .map_err(|source| OpenError::Migrate {
            path: self.common.path.clone(),
            source,
        })?;
        // The report is about to reach the caller: only now may the record go.
        if report.recovery.is_some() || report.interrupted_recovery.is_some() {
            self.clear_recovery_record();
        }
        Ok(connection)
    }

    /// The database opened without recovery, but an earlier open's recovery was interrupted after
    /// its step: the step's files are what this open found, so its loss is this open's to report.
    fn complete_interrupted_recovery(&self, report: &mut OpenReport) {
        let Some(interrupted) = &report.interrupted_recovery else {
            return;
        };
        let what = match interrupted {
            InterruptedRecovery::Recorded(earlier) => {
                let recovery = earlier.to_recovery(&self.common.path);
                let what = format!("by {}, lost {}", recovery.step, recovery.lost);
                report.recovery = Some(recovery);
                what
            }
            InterruptedRecovery::Unreadable { reason } => {
                format!("what it did and lost is unknown ({reason})")
            }
            _ => "what it did and lost is unknown".to_owned(),
        };
        if WarnOnce::global().first(&report.label, "interrupted-recovery") {
            tracing::warn!(
                target: "store::recovery",
                label = %report.label,
                path = %self.common.path.display(),
                "{}: a recovery in an earlier open was interrupted by a crash or power cut after \
                 its step; completed by this open: {what}",
                report.label
            );
        }
    }

    /// Removes the recovery record once the open succeeded. A failure leaves it for the next open
    /// to report again, which is better than a loss unreported: it is logged, not returned.
    fn clear_recovery_record(&self) {
        if let Err(error) = pending::clear(&self.common.path) {
            tracing::warn!(
                target: "store::recovery",
                path = %self.common.path.display(),
                error = %store_core::cause_chain(&error),
                "cannot remove the recovery record; the next open reports the recovery again"
            );
        }
    }

    /// What a power cut may do to commits, from the `fsync_mode` the instance answered (store
    /// never changes it; a user's `SET` on a shared instance, or in the per-connection
    /// initialisation, shows here).
    /// At its default, `standard`, DuckDB fsyncs its WAL before each commit returns, so every
    /// acknowledged commit survives a power cut; `full` does the same with `F_FULLFSYNC` on macOS;
    /// `none` never fsyncs.
    ///
    /// DuckDB fsyncs no directory: a WAL it creates after a checkpoint keeps its name across a
    /// power cut only where the filesystem makes a new file's name durable with the file's own
    /// sync (ext4, XFS and btrfs do; POSIX does not promise it).
    fn durability(&self, fsync_mode: &str) -> Result<Durability, OpenError> {
        durability_of_fsync_mode(fsync_mode).ok_or_else(|| OpenError::UnknownFsyncMode {
            path: self.common.path.clone(),
            answered: fsync_mode.to_owned(),
        })
    }

    /// Whether the database file is cut short ([`blocks::blocks_missing`]); an error only when
    /// DuckDB cannot be asked.
    fn blocks_missing(
        &self,
        connection: &duckdb::Connection,
        file: &File,
    ) -> Result<Option<BlocksMissing>, OpenError> {
        blocks::blocks_missing(connection, file).map_err(|source| self.engine_error(source))
    }

    /// A descriptor of the database file, opened once the instance holds it and kept with the
    /// instance until it closes (see [`registry`]'s entry): what store reads the file through.
    fn database_file(&self) -> Result<Arc<File>, OpenError> {
        File::open(&self.common.path)
            .map(Arc::new)
            .map_err(|source| OpenError::DatabaseFile {
                path: self.common.path.clone(),
                class: store_core::FailureClass::from_io_error(&source),
                source,
            })
    }

    /// A plain open of the database file with this open's access mode and settings.
    pub(crate) fn connect(&self) -> duckdb::Result<duckdb::Connection> {
        connect(&self.common.path, self.common.read_only, &self.settings)
    }

    /// Refuses settings DuckDB does not take, touching no file. DuckDB rejects an unknown name
    /// only when an instance starts, so the settings start a throwaway in-memory instance; if it
    /// fails, each setting starts one alone, so that the error names the setting at fault.
    fn check_settings(&self) -> Result<(), OpenError> {
        if self.settings.is_empty() {
            return Ok(());
        }
        let refused = |name: &String, value: &String, source: duckdb::Error| OpenError::Setting {
            path: self.common.path.clone(),
            name: name.clone(),
            value: value.clone(),
            source,
        };
        if let Some((name, value)) = self.settings.get_key_value("access_mode") {
            return Err(refused(
                name,
                value,
                duckdb::Error::DuckDBFailure(
                    duckdb::ffi::Error::new(duckdb::ffi::DuckDBError),
                    Some("access_mode is chosen by DuckDbOptions::read_only".to_owned()),
                ),
            ));
        }
        let start = |settings: &mut dyn Iterator<Item = (&String, &String)>| {
            let mut config = Config::default();
            for (name, value) in settings {
                config = config.with(name, value)?;
            }
            duckdb::Connection::open_in_memory_with_flags(config).map(drop)
        };
        let Err(together) = start(&mut self.settings.iter()) else {
            return Ok(());
        };
        for (name, value) in &self.settings {
            if let Err(source) = start(&mut std::iter::once((name, value))) {
                return Err(refused(name, value, source));
            }
        }
        // No setting fails alone, only together: name them all.
        let names = self.settings.keys().cloned().collect::<Vec<_>>().join(", ");
        let values = self
            .settings
            .values()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        Err(refused(&names, &values, together))
    }

    pub(crate) fn engine_error(&self, source: duckdb::Error) -> OpenError {
        OpenError::Engine {
            path: self.common.path.clone(),
            class: classify(&source),
            recovery_failures: Vec::new(),
            moved_aside: Vec::new(),
            source,
        }
    }
}

/// The durability of a DuckDB `fsync_mode` value, if store knows it.
pub(crate) fn durability_of_fsync_mode(fsync_mode: &str) -> Option<Durability> {
    match fsync_mode.to_ascii_lowercase().as_str() {
        "standard" | "full" => Some(Durability::PowerSafe {
            sync: SyncLevel::Full,
        }),
        "none" => Some(Durability::MayCorrupt {
            sync: SyncLevel::Off,
        }),
        _ => None,
    }
}

/// Creates a new database so that `path` is either absent or a complete DuckDB file at every
/// instant: initialised and checkpointed under a temporary name, renamed into place without
/// replacing anything. If another process created it meanwhile, theirs is kept.
fn create_database(path: &Path, settings: &BTreeMap<String, String>) -> Result<(), OpenError> {
    create_atomically(path, Engine::Duckdb, crate::SIDECAR_SUFFIXES, |temporary| {
        let connection = connect(temporary, false, settings)?;
        connection.execute_batch(migrate::SCHEMA_VERSION_DDL)?;
        connection.execute_batch("CHECKPOINT")?;
        connection.close().map_err(|(_, error)| error)
    })
    .map_err(|failure| match failure {
        CreateFailure::Initialise(source) => OpenError::Create {
            path: path.to_owned(),
            class: classify(&source),
            source: StepError::Duckdb(source),
        },
        CreateFailure::Place(source) => OpenError::Create {
            path: path.to_owned(),
            class: store_core::FailureClass::from_io_error(&source),
            source: StepError::Io {
                operation: "move into place",
                path: path.to_owned(),
                source,
            },
        },
    })
}

/// A creation that failed with an I/O error (class `Other`: not a full disk, a read-only mount or
/// a refused permission, which keep their own classes) on a filesystem another machine can reach
/// is DuckDB unable to work on that share ([`OpenError::FilesystemUnsupported`]).
fn unsupported_across_a_boundary(error: OpenError, report: &OpenReport) -> OpenError {
    let filesystem = report
        .filesystem
        .as_ref()
        .filter(|filesystem| filesystem.machine_boundary().is_crossed());
    match (error, filesystem) {
        (
            OpenError::Create {
                path,
                class: store_core::FailureClass::Other,
                source,
            },
            Some(filesystem),
        ) => OpenError::FilesystemUnsupported {
            path,
            filesystem: filesystem.kind,
            source: Some(source),
        },
        (error, _) => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fsync_mode_of_the_bundled_duckdb_has_a_durability() {
        // DuckDB's FileSyncMode: STANDARD (the default), NONE, FULL.
        assert_eq!(
            durability_of_fsync_mode("STANDARD"),
            Some(Durability::PowerSafe {
                sync: SyncLevel::Full
            })
        );
        assert_eq!(
            durability_of_fsync_mode("full"),
            Some(Durability::PowerSafe {
                sync: SyncLevel::Full
            })
        );
        assert_eq!(
            durability_of_fsync_mode("none"),
            Some(Durability::MayCorrupt {
                sync: SyncLevel::Off
            })
        );
        assert_eq!(durability_of_fsync_mode("sometimes"), None);
    }

    #[test]
    fn the_report_says_commits_are_power_safe_and_follows_a_changed_fsync_mode()
    -> Result<(), Box<dyn std::error::Error>> {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("system.duckdb");
        let (connection, report) = DuckDbOptions::new(&path).open()?;
        assert_eq!(
            report.durability,
            Some(Durability::PowerSafe {
                sync: SyncLevel::Full
            }),
            "{report}"
        );
        assert!(
            report.to_string().contains("power-safe commits"),
            "{report}"
        );
        // A second open shares the instance, and reports what the instance now does.
        connection.execute_batch("SET GLOBAL fsync_mode = 'none'")?;
        let (shared_connection, shared) = DuckDbOptions::new(&path).open()?;
        assert_eq!(
            shared.durability,
            Some(Durability::MayCorrupt {
                sync: SyncLevel::Off
            }),
            "{shared}"
        );
        drop((connection, shared_connection));

        let (_reader, read_only) = DuckDbOptions::new(&path).read_only(true).open()?;
        assert_eq!(read_only.durability, None, "{read_only}");
        Ok(())
    }
}
