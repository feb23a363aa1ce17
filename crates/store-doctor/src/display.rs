//! The checkup written for a person: what `store-doctor` prints without `--json`.

use std::fmt;
use std::time::Duration;

use store_core::pending::InterruptedRecovery;
use store_core::{FailureClass, FileContent, files};

use crate::checkup::{Checkup, DatabaseCheckup, FileFacts, Outlook, WalProbe};

impl fmt::Display for FileFacts {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        );
        write!(formatter, "{name} ({}", human_bytes(self.bytes))?;
        if let Some(age) = self.age() {
            write!(formatter, ", modified {} ago", human_age(age))?;
        }
        formatter.write_str(")")
    }
}

impl fmt::Display for WalProbe {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalProbe::Works => formatter.write_str("works here (probed with a temporary database)"),
            WalProbe::FallsBack { class, cause, to } => write!(
                formatter,
                "does not work here ({class}: {cause}); store falls back to {to}. WAL needs shared \
                 memory and byte-range locks that NFS/SMB and many FUSE mounts lack"
            ),
            WalProbe::Fails { class, cause } => {
                write!(
                    formatter,
                    "no database can be created here ({class}): {cause}"
                )
            }
            WalProbe::NotProbed { reason } => write!(formatter, "not probed: {reason}"),
        }
    }
}

impl fmt::Display for Outlook {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outlook::Creates { journal_modes } => {
                let names: Vec<&str> = journal_modes.iter().map(|mode| mode.as_str()).collect();
                write!(formatter, "create it (SQLite), trying {}", names.join(", "))
            }
            Outlook::Opens {
                journal_mode,
                falls_back,
                schema_version,
                ..
            } => {
                formatter.write_str("open it")?;
                if let Some(mode) = journal_mode {
                    write!(formatter, " in {mode} mode")?;
                    if *falls_back {
                        formatter.write_str(" (a fallback: WAL does not work here)")?;
                    }
                }
                write!(formatter, "; schema version {schema_version}")
            }
            Outlook::Corrupt { problems } => write!(
                formatter,
                "find it corrupt (PRAGMA quick_check: {}); store opens it, but reads of the damaged \
                 pages fail or return wrong rows, and store does not repair SQLite files: restore \
                 it from a backup",
                problems.join("; ")
            ),
            Outlook::Recovers {
                class,
                cause,
                steps,
            } => {
                let names: Vec<String> = steps.iter().map(ToString::to_string).collect();
                write!(
                    formatter,
                    "fail ({class}: {cause}) and recover, trying {}; nothing is deleted, \
                     damaged files are moved aside",
                    names.join(", ")
                )
            }
            Outlook::Fails { class, cause } => {
                write!(formatter, "fail ({class}) and leave it alone: {cause}")?;
                if *class == FailureClass::Locked {
                    formatter.write_str("; another process holds it")?;
                }
                Ok(())
            }
            Outlook::NotADatabase => formatter.write_str("refuse it: not a database"),
            Outlook::OpenInThisProcess => formatter
                .write_str("share it: it is open in this process, and healthy enough for that"),
            Outlook::EngineNotEnabled { feature } => write!(
                formatter,
                "need the `{feature}` feature of store-doctor to say more"
            ),
        }
    }
}

impl fmt::Display for DatabaseCheckup {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(formatter, "{}", self.path.display())?;
        let what = match self.content {
            FileContent::Missing => "nothing here yet".to_owned(),
            FileContent::Sqlite { wal: true } => "SQLite database in WAL format".to_owned(),
            FileContent::Sqlite { wal: false } => {
                "SQLite database in rollback-journal format (not WAL)".to_owned()
            }
            FileContent::Duckdb => "DuckDB database".to_owned(),
            other => format!("not a database: {other:?}"),
        };
        writeln!(formatter, "  {what}")?;
        for sidecar in &self.sidecars {
            writeln!(formatter, "  beside it: {sidecar}")?;
            let unmerged_sqlite_wal = matches!(self.content, FileContent::Sqlite { .. })
                && sidecar.path == files::sibling(&self.path, "-wal")
                && sidecar.bytes > 0;
            if unmerged_sqlite_wal {
                writeln!(
                    formatter,
                    "    commits not yet checkpointed into the file (in use, or not closed \
                     cleanly): the doctor reads the file alone, so what it says may be older"
                )?;
            }
        }
        if let Some(snapshot) = &self.snapshot {
            write!(formatter, "  pre-migration snapshot: {}", snapshot.file)?;
            match &snapshot.schema_version {
                Ok(version) => writeln!(formatter, ", schema version {version}")?,
                Err(error) => writeln!(formatter, ", unreadable: {error}")?,
            }
        }
        for moved in &self.moved_aside {
            writeln!(
                formatter,
                "  moved aside ({}, at {}): {}",
                moved.reason, moved.stamp, moved.file
            )?;
        }
        match &self.recovery_pending {
            Some(InterruptedRecovery::Recorded(earlier)) => writeln!(
                formatter,
                "  recovery pending: a recovery by {} (lost {}) was interrupted by a crash or power \
                 cut; the next read-write open reports it",
                earlier.step, earlier.lost
            )?,
            Some(InterruptedRecovery::Unreadable { reason }) => writeln!(
                formatter,
                "  recovery pending: a recovery was interrupted, its record is unreadable ({reason})"
            )?,
            Some(_) => writeln!(formatter, "  recovery pending: a recovery was interrupted")?,
            None => {}
        }
        for risk in &self.risks {
            writeln!(formatter, "  at risk: {risk}")?;
        }
        if let Some(ownership) = &self.ownership {
            writeln!(formatter, "  ownership: {ownership}")?;
        }
        writeln!(formatter, "  an open through store would {}", self.outlook)
    }
}

impl fmt::Display for Checkup {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(formatter, "{}", self.directory.display())?;
        match &self.filesystem {
            Ok(filesystem) => {
                write!(
                    formatter,
                    "  filesystem: {} ({}",
                    filesystem.kind, filesystem.type_name
                )?;
                if let Some(mount) = &filesystem.mount_point {
                    write!(formatter, ", mounted at {}", mount.display())?;
                }
                writeln!(formatter, ")")?;
                let boundary = filesystem.machine_boundary();
                if boundary.is_crossed() {
                    writeln!(
                        formatter,
                        "  machine boundary: {}: another machine can write these files, and \
                         WAL's shared memory never reaches it; store makes new SQLite databases \
                         here in a rollback journal",
                        boundary.describe()
                    )?;
                }
                writeln!(
                    formatter,
                    "  lock scope: {} ({})",
                    filesystem.lock_scope,
                    filesystem.lock_scope.describe()
                )?;
            }
            Err(error) => writeln!(formatter, "  filesystem: unknown ({error})")?,
        }
        writeln!(formatter, "  SQLite WAL: {}", self.wal)?;
        if self.databases.is_empty() {
            writeln!(formatter, "  no SQLite or DuckDB database here")?;
        }
        for database in &self.databases {
            writeln!(formatter)?;
            write!(formatter, "{database}")?;
        }
        Ok(())
    }
}

/// `1.5 MiB`, `312 B`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `40 s`, `3 min`, `5 h`, `12 days`.
fn human_age(age: Duration) -> String {
    let seconds = age.as_secs();
    match seconds {
        0..=119 => format!("{seconds} s"),
        120..=7199 => format!("{} min", seconds / 60),
        7200..=172_799 => format!("{} h", seconds / 3600),
        _ => format!("{} days", seconds / 86_400),
    }
}
