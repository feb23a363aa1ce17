//! [`OpenReport`]: what an open chose, why, and what it cost.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::files::MovedAside;
use crate::pending::InterruptedRecovery;
use crate::time::UtcTime;
use crate::{
    ConnectionLimit, FailureClass, Filesystem, JournalMode, LockScope, MachineBoundary,
    RecoveryStep,
};

/// The database engine behind an open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Engine {
    /// SQLite, through rusqlite.
    Sqlite,
    /// DuckDB, through duckdb-rs.
    Duckdb,
}

impl Engine {
    /// `sqlite` or `duckdb`.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Duckdb => "duckdb",
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// One rung of the journal ladder that was tried and left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// The mode that did not work.
    pub from: JournalMode,
    /// Why, as a class.
    pub class: FailureClass,
    /// Why, as the engine said it.
    pub cause: String,
}

/// What a recovery may have lost, in the terms a person can check against their own records.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataLoss {
    /// Nothing committed was lost.
    Nothing,
    /// The commits whose write-ahead-log entries start at or after this byte.
    CommitsAfterWalByte {
        /// Offset in the original WAL of the first entry not replayed.
        byte_offset: u64,
    },
    /// The write-ahead log's tail after its last whole commit, which the engine would have
    /// dropped without a word (an entry cut short, or entries of a commit that never completed):
    /// `bytes` bytes from `byte_offset`, holding `entries` whole entries before any cut one.
    DroppedWalTail {
        /// Offset in the original WAL where the last whole commit ends.
        byte_offset: u64,
        /// Bytes from there to the end of the original WAL.
        bytes: u64,
        /// Whole entries in them (a cut entry not counted).
        entries: u64,
    },
    /// The tail of DuckDB's checkpoint WAL (`.wal.checkpoint`: the commits logged while a
    /// checkpoint ran, replayed after the WAL) after its last whole commit: `bytes` bytes from
    /// `byte_offset`, holding `entries` whole entries before a cut or damaged one. The engine
    /// would have dropped a cut tail without a word and failed on a damaged one.
    CheckpointWalTail {
        /// Offset in the original checkpoint WAL where its last whole commit ends.
        byte_offset: u64,
        /// Bytes from there to the end of the original checkpoint WAL.
        bytes: u64,
        /// Whole entries in them of no complete commit.
        entries: u64,
    },
    /// Every commit since the last checkpoint.
    UncheckpointedCommits,
    /// Everything written since the snapshot was taken.
    EverythingSinceSnapshot {
        /// When the snapshot was taken (its file's modification time).
        taken_at: SystemTime,
    },
}

impl fmt::Display for DataLoss {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataLoss::Nothing => formatter.write_str("nothing"),
            DataLoss::CommitsAfterWalByte { byte_offset } => {
                write!(formatter, "commits after WAL byte {byte_offset}")
            }
            DataLoss::DroppedWalTail {
                byte_offset,
                bytes,
                entries,
            } => write!(
                formatter,
                "the WAL's tail after byte {byte_offset} ({bytes} bytes, {entries} whole entries of \
                 no complete commit)"
            ),
            DataLoss::CheckpointWalTail {
                byte_offset,
                bytes,
                entries,
            } => write!(
                formatter,
                "the checkpoint WAL's tail after byte {byte_offset} ({bytes} bytes, {entries} \
                 whole entries of no complete commit)"
            ),
            DataLoss::UncheckpointedCommits => formatter.write_str("uncheckpointed commits"),
            DataLoss::EverythingSinceSnapshot { taken_at } => write!(
                formatter,
                "everything since snapshot taken at {}",
                UtcTime::from_system_time(*taken_at).rfc3339()
            ),
        }
    }
}

/// How often an engine waits for the disk as it commits, read back from the engine after the open
/// set it. The names are SQLite's `PRAGMA synchronous` levels, the finest scale of the engines
/// store opens; DuckDB's settings map onto it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SyncLevel {
    /// Never: writes are handed to the operating system and not waited for (SQLite
    /// `synchronous=OFF`, DuckDB `fsync_mode=none`).
    Off,
    /// At checkpoints and a few other moments, not at each commit's end (SQLite
    /// `synchronous=NORMAL`).
    Normal,
    /// At every commit, before it returns (SQLite `synchronous=FULL`; DuckDB's default,
    /// `fsync_mode=standard`, which fsyncs the WAL at each commit).
    Full,
    /// At every commit, and the directory after a rollback journal is deleted, so that the
    /// deletion (the commit itself in `journal_mode=DELETE`) is on disk too (SQLite
    /// `synchronous=EXTRA`).
    Extra,
}

impl SyncLevel {
    /// `off`, `normal`, `full` or `extra`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncLevel::Off => "off",
            SyncLevel::Normal => "normal",
            SyncLevel::Full => "full",
            SyncLevel::Extra => "extra",
        }
    }
}

impl fmt::Display for SyncLevel {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// What a power cut (or an operating-system crash) may do to commits that were acknowledged,
/// with the engine setting that decides it. A killed process loses no acknowledged commit in any
/// of these: the operating system still holds what was written.
///
/// "Survives" assumes that an fsync reaches stable storage, as it does on Linux. Neither engine
/// asks macOS for `F_FULLFSYNC` by default, so there a power cut can lose what an fsync returned
/// for.
///
/// ```
/// use store_core::{Durability, SyncLevel};
///
/// let durability = Durability::PowerSafe { sync: SyncLevel::Full };
/// assert!(durability.is_power_safe());
/// assert_eq!(durability.sync(), SyncLevel::Full);
/// assert_eq!(durability.to_string(), "power-safe commits (sync full)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// Every acknowledged commit survives a power cut: the engine made it durable before the
    /// commit returned. store's default.
    PowerSafe {
        /// The setting that gives it.
        sync: SyncLevel,
    },
    /// A power cut may undo the most recent acknowledged commits (in SQLite's WAL modes at
    /// `synchronous=NORMAL`: those since the last checkpoint; in `journal_mode=DELETE` at
    /// `synchronous=FULL`: the last one, whose journal a power cut can bring back). The database
    /// stays consistent and opens; nothing older is lost.
    RecentCommitsMayBeLost {
        /// The setting that gives it.
        sync: SyncLevel,
    },
    /// A power cut may leave the database corrupt, and lose any commit since the last sync
    /// (`synchronous=OFF` anywhere; `synchronous=NORMAL` in SQLite's rollback-journal modes,
    /// where one sync covers both the journal's pages and the header that counts them).
    MayCorrupt {
        /// The setting that gives it.
        sync: SyncLevel,
    },
}

impl Durability {
    /// The engine setting in force.
    pub fn sync(self) -> SyncLevel {
        match self {
            Durability::PowerSafe { sync }
            | Durability::RecentCommitsMayBeLost { sync }
            | Durability::MayCorrupt { sync } => sync,
        }
    }

    /// Whether every acknowledged commit survives a power cut.
    pub fn is_power_safe(self) -> bool {
        matches!(self, Durability::PowerSafe { .. })
    }

    /// The durability as said of a database on a filesystem with this machine boundary: where
    /// another kernel can write the files, what this client made durable holds for this client
    /// only (another machine's writes go behind its back, and in WAL its commits can vanish),
    /// so it is never called power-safe there.
    ///
    /// ```
    /// use store_core::{Durability, MachineBoundary, SyncLevel};
    ///
    /// let durability = Durability::PowerSafe { sync: SyncLevel::Extra };
    /// let shared = durability.across(MachineBoundary::NetworkShare).to_string();
    /// assert!(!shared.contains("power-safe"), "{shared}");
    /// assert!(shared.contains("another machine can write behind its back"), "{shared}");
    /// assert_eq!(durability.across(MachineBoundary::SameKernel).to_string(), durability.to_string());
    /// ```
    pub fn across(self, boundary: MachineBoundary) -> DurabilityAcross {
        DurabilityAcross {
            durability: self,
            boundary,
        }
    }
}

/// A [`Durability`] said for a filesystem's machine boundary ([`Durability::across`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurabilityAcross {
    durability: Durability,
    boundary: MachineBoundary,
}

impl fmt::Display for DurabilityAcross {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let other = match self.boundary {
            MachineBoundary::SameKernel => return fmt::Display::fmt(&self.durability, formatter),
            MachineBoundary::NetworkShare => "another machine",
            MachineBoundary::CrossVm => "another kernel (a VM's host or guest)",
        };
        let promise = match self.durability {
            Durability::PowerSafe { .. } => {
                format!(
                    "commits synced before they return, for this client only: {other} can write behind its back"
                )
            }
            Durability::RecentCommitsMayBeLost { .. } => format!(
                "a power cut may undo recent commits, and {other} can write behind this client's back"
            ),
            Durability::MayCorrupt { .. } => format!(
                "a power cut may corrupt the database, and {other} can write behind this client's back"
            ),
        };
        write!(formatter, "{promise} (sync {})", self.durability.sync())
    }
}

/// A danger an open could not remove and did not fail on, as a fact code can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Risk {
    /// The journal in force is a WAL mode on a filesystem another kernel can write: most often
    /// an existing WAL-format database on a network share or a VM's shared folder, which store
    /// keeps in WAL (switching a database's journal while another machine may have it open in
    /// WAL corrupts it). WAL's index is shared memory no other machine sees, and with
    /// [`LockScope::ThisClientOnly`] not even the locks reach it: a second machine writing the
    /// database loses commits without an error (measured on sshfs, smbnetfs and GlusterFS:
    /// 400 commits acknowledged, 1 to 58 kept).
    WalAcrossMachineBoundary {
        /// The boundary the filesystem crosses.
        boundary: MachineBoundary,
        /// Which processes the database's locks keep out there.
        lock_scope: LockScope,
    },
}

impl Risk {
    /// The risk's name in reports and JSON (`wal-across-machine-boundary`).
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::WalAcrossMachineBoundary { .. } => "wal-across-machine-boundary",
        }
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Risk::WalAcrossMachineBoundary {
                boundary,
                lock_scope,
            } => write!(
                formatter,
                "WAL on {} ({}): WAL's index is shared memory that no other machine sees, so a \
                 second machine writing this database loses commits without an error; it stays \
                 in WAL because switching it while another machine may have it open in WAL \
                 corrupts it: use it from one machine only, or convert it \
                 (`JournalLadder::converting_existing_wal`) once no other machine has it open",
                boundary.describe(),
                lock_scope.describe()
            ),
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let promise = match self {
            Durability::PowerSafe { .. } => "power-safe commits",
            Durability::RecentCommitsMayBeLost { .. } => "a power cut may undo recent commits",
            Durability::MayCorrupt { .. } => "a power cut may corrupt the database",
        };
        write!(formatter, "{promise} (sync {})", self.sync())
    }
}

/// A recovery that an open performed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The class of the failure that started it.
    pub class: FailureClass,
    /// The failure as the engine said it.
    pub cause: String,
    /// The step that opened the database.
    pub step: RecoveryStep,
    /// Steps tried before it that did not work, with why.
    pub steps_failed: Vec<StepFailed>,
    /// Every file moved out of the way, and where it is now.
    pub moved_aside: Vec<MovedAside>,
    /// What the step lost.
    pub lost: DataLoss,
    /// The step ran in an earlier open that a crash or power cut stopped before it returned; this
    /// open found the step's files in place and completed the open. The fields above come from
    /// the step's durable record (`steps_failed` is then empty, `moved_aside` found by name).
    pub interrupted: bool,
    /// How a salvage found where the commits it kept end (`None` for other steps, and for a
    /// salvage known only from its durable record).
    pub salvage_boundary: Option<SalvageBoundary>,
}

/// A recovery step that did not open the database: which, why as a fact code can match, and
/// why in words.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StepFailed {
    /// The step.
    pub step: RecoveryStep,
    /// Why, as a fact.
    pub cause: StepCause,
    /// Why, in words, for people.
    pub reason: String,
}

impl StepFailed {
    /// A step that failed for `cause`, said as `reason`.
    pub fn new(step: RecoveryStep, cause: StepCause, reason: impl Into<String>) -> StepFailed {
        StepFailed {
            step,
            cause,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for StepFailed {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.step, self.reason)
    }
}

/// Why a recovery step did not open the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepCause {
    /// The step had nothing to act on: the damage is outside what it mends (the database file
    /// for a WAL step), or what it needs is not there (a snapshot, a WAL, a whole commit to keep,
    /// a WAL of this database).
    NotApplicable,
    /// The step ran and failed with this class: a file it could not read or move, a database
    /// that did not open after it.
    Failed(FailureClass),
}

/// How a salvage found the end of the last commit it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SalvageBoundary {
    /// Read from the write-ahead log's framing, in one pass, and proven by one replay.
    WalReader,
    /// Found by replaying prefixes of the log (a log the reader does not know, or one whose
    /// reading did not replay): `replays` opens of copies.
    Bisection {
        /// How many prefixes were replayed.
        replays: u32,
    },
}

impl fmt::Display for SalvageBoundary {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SalvageBoundary::WalReader => formatter.write_str("read from the WAL's framing"),
            SalvageBoundary::Bisection { replays } => {
                write!(formatter, "found by bisection ({replays} replays)")
            }
        }
    }
}

/// The label a database goes by: the one `set`, else its file name (or the whole path if it has
/// none). What both engines' options answer as `label_or_file_name`.
pub fn label_or_file_name(set: Option<&str>, path: &std::path::Path) -> String {
    set.map_or_else(|| default_label(path), str::to_owned)
}

/// The label a database goes by when none is given: its file name (or the whole path if it has
/// none).
pub fn default_label(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// A migration an open applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Its version.
    pub version: u32,
    /// Its name.
    pub name: String,
}

/// Every decision an open made. Engines return one with each connection.
///
/// ```
/// use store_core::{Engine, FailureClass, Fallback, JournalMode, OpenReport};
///
/// let mut report = OpenReport::new(Engine::Sqlite, "/data/state.db", "state.db");
/// report.journal_mode = Some(JournalMode::Delete);
/// report.fallbacks.push(Fallback {
///     from: JournalMode::Wal,
///     class: FailureClass::WalUnsupported,
///     cause: "locking protocol".into(),
/// });
/// assert!(report.fell_back());
/// assert!(report.to_string().contains("fell back from wal"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenReport {
    /// The engine.
    pub engine: Engine,
    /// The database file.
    pub path: PathBuf,
    /// The label warnings and messages use (by default the file name).
    pub label: String,
    /// Whether this open created the database.
    pub created: bool,
    /// The filesystem the database lives on, when detection succeeded.
    pub filesystem: Option<Filesystem>,
    /// The journal mode in force (SQLite only).
    pub journal_mode: Option<JournalMode>,
    /// What a power cut may do to the commits made through this connection, as the engine
    /// answered after the open set it. `None` for a read-only open, which commits nothing.
    pub durability: Option<Durability>,
    /// How many connections the decision allows at once: [`ConnectionLimit::One`] when the
    /// database is usable by this one connection of this one process only.
    pub connection_limit: ConnectionLimit,
    /// Whether this open reused a decision made earlier in this process for the same database
    /// (by an open whose handle is still alive): nothing was decided, only connected.
    pub reused_decision: bool,
    /// Modes tried and left, in order.
    pub fallbacks: Vec<Fallback>,
    /// The recovery performed, if any (by this open, or by an earlier one it completed: see
    /// [`Recovery::interrupted`]).
    pub recovery: Option<Recovery>,
    /// A recovery of an earlier open that a crash or power cut interrupted, found at the start of
    /// this open by its durable record ([`crate::pending`]). Set with [`OpenReport::recovery`]
    /// when this open completed it; alone when its record could not be read; beside this open's
    /// own recovery when the database needed recovering again (what each lost is lost).
    pub interrupted_recovery: Option<InterruptedRecovery>,
    /// The pre-migration snapshot taken by this open, if any: where, how big, and whether the
    /// filesystem cloned it or its bytes were copied.
    pub snapshot: Option<crate::files::Snapshot>,
    /// Migrations applied by this open, in order.
    pub migrations_applied: Vec<AppliedMigration>,
    /// The schema version after the open.
    pub schema_version: u32,
    /// Dangers the open could not remove and did not fail on (a WAL database on a filesystem
    /// another machine can write), as facts.
    pub risks: Vec<Risk>,
    /// This client's claim on the database, where the filesystem can be reached by another
    /// machine (`None` elsewhere): created, joined, or taken over from a crashed owner of this
    /// machine.
    #[cfg(target_os = "linux")]
    pub ownership: Option<crate::ownership::Claim>,
    /// Decisions that have no field of their own, in words (an existing WAL database kept in WAL
    /// format, a journal mode already in force).
    pub notes: Vec<String>,
    /// Wall time of the whole open.
    pub elapsed: Duration,
}

impl OpenReport {
    /// An empty report for an open in progress.
    pub fn new(engine: Engine, path: impl Into<PathBuf>, label: impl Into<String>) -> OpenReport {
        OpenReport {
            engine,
            path: path.into(),
            label: label.into(),
            created: false,
            filesystem: None,
            journal_mode: None,
            durability: None,
            connection_limit: ConnectionLimit::Many,
            reused_decision: false,
            fallbacks: Vec::new(),
            recovery: None,
            interrupted_recovery: None,
            snapshot: None,
            migrations_applied: Vec::new(),
            schema_version: 0,
            risks: Vec::new(),
            #[cfg(target_os = "linux")]
            ownership: None,
            notes: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    /// Whether the open left its preferred journal mode.
    pub fn fell_back(&self) -> bool {
        !self.fallbacks.is_empty()
    }

    /// Whether the open had to recover.
    pub fn recovered(&self) -> bool {
        self.recovery.is_some()
    }

    /// Whether another kernel than this one can write the database's files, and how
    /// ([`Filesystem::machine_boundary`]); `None` when the filesystem is unknown.
    pub fn machine_boundary(&self) -> Option<MachineBoundary> {
        self.filesystem.as_ref().map(Filesystem::machine_boundary)
    }

    /// Records [`Risk::WalAcrossMachineBoundary`] when the journal mode in force is a WAL mode
    /// on a filesystem that crosses a machine boundary (once: an open calls it when its journal
    /// mode is known).
    pub fn assess_wal_risk(&mut self) {
        let Some(filesystem) = &self.filesystem else {
            return;
        };
        let boundary = filesystem.machine_boundary();
        if !boundary.is_crossed() || !self.journal_mode.is_some_and(JournalMode::is_wal) {
            return;
        }
        let risk = Risk::WalAcrossMachineBoundary {
            boundary,
            lock_scope: filesystem.lock_scope,
        };
        if !self.risks.contains(&risk) {
            self.risks.push(risk);
        }
    }
}

impl fmt::Display for OpenReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} {} ({})",
            self.engine,
            self.label,
            self.path.display()
        )?;
        if let Some(filesystem) = &self.filesystem {
            write!(formatter, " on {}", filesystem.kind)?;
            if let crate::KindSource::SetByOptions { detected } = filesystem.kind_source {
                write!(formatter, " (set by the options; detected {detected})")?;
            }
            let boundary = filesystem.machine_boundary();
            if boundary.is_crossed() {
                write!(
                    formatter,
                    " ({}, {})",
                    boundary.describe(),
                    filesystem.lock_scope.describe()
                )?;
            }
        }
        if let Some(mode) = self.journal_mode {
            write!(formatter, ": journal {mode}")?;
        }
        for fallback in &self.fallbacks {
            write!(
                formatter,
                ", fell back from {} ({}: {})",
                fallback.from, fallback.class, fallback.cause
            )?;
        }
        if let Some(durability) = self.durability {
            let boundary = self
                .machine_boundary()
                .unwrap_or(MachineBoundary::SameKernel);
            write!(formatter, "; {}", durability.across(boundary))?;
        }
        #[cfg(target_os = "linux")]
        match &self.ownership {
            Some(crate::ownership::Claim::Created) => {
                formatter.write_str("; owned by this client (record created)")?
            }
            Some(crate::ownership::Claim::TookOverCrashed { previous }) => write!(
                formatter,
                "; owned by this client (taken over from a crashed owner: {previous})"
            )?,
            Some(_) => formatter.write_str("; owned by this client (joined)")?,
            None => {}
        }
        if self.connection_limit != ConnectionLimit::Many {
            write!(formatter, "; usable by {}", self.connection_limit)?;
        }
        if self.reused_decision {
            formatter.write_str("; decided earlier in this process")?;
        }
        if let Some(recovery) = &self.recovery {
            write!(
                formatter,
                "; recovered from {} by {}, lost {}, {} file(s) moved aside",
                recovery.class,
                recovery.step,
                recovery.lost,
                recovery.moved_aside.len()
            )?;
            if let Some(boundary) = recovery.salvage_boundary {
                write!(formatter, " (the end of the kept commits {boundary})")?;
            }
            if recovery.interrupted {
                formatter.write_str(
                    " (in an earlier open that a crash or power cut interrupted; completed by this one)",
                )?;
            }
        }
        match &self.interrupted_recovery {
            Some(InterruptedRecovery::Recorded(earlier))
                if self
                    .recovery
                    .as_ref()
                    .is_none_or(|recovery| !recovery.interrupted) =>
            {
                write!(
                    formatter,
                    "; an earlier recovery by {} was interrupted by a crash or power cut, lost {}",
                    earlier.step, earlier.lost
                )?;
            }
            Some(InterruptedRecovery::Unreadable { reason }) => write!(
                formatter,
                "; an earlier recovery was interrupted by a crash or power cut, what it did and \
                 lost is unknown ({reason})"
            )?,
            _ => {}
        }
        if !self.migrations_applied.is_empty() {
            let versions: Vec<String> = self
                .migrations_applied
                .iter()
                .map(|migration| migration.version.to_string())
                .collect();
            write!(formatter, "; applied migrations {}", versions.join(", "))?;
        }
        if let Some(snapshot) = &self.snapshot {
            write!(
                formatter,
                "; pre-migration snapshot {} ({} bytes, {})",
                snapshot.path.display(),
                snapshot.bytes,
                snapshot.copy
            )?;
        }
        for risk in &self.risks {
            write!(formatter, "; at risk: {risk}")?;
        }
        for note in &self.notes {
            write!(formatter, "; {note}")?;
        }
        write!(
            formatter,
            "; schema version {}; {} ms",
            self.schema_version,
            self.elapsed.as_millis()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn data_loss_reads_as_a_person_would_check_it() {
        assert_eq!(
            DataLoss::CommitsAfterWalByte { byte_offset: 4096 }.to_string(),
            "commits after WAL byte 4096"
        );
        assert_eq!(
            DataLoss::UncheckpointedCommits.to_string(),
            "uncheckpointed commits"
        );
        let taken_at = UNIX_EPOCH + Duration::from_secs(1_795_297_863);
        assert_eq!(
            DataLoss::EverythingSinceSnapshot { taken_at }.to_string(),
            "everything since snapshot taken at 2026-11-21T21:51:03Z"
        );
    }

    #[test]
    fn a_happy_report_says_only_what_happened() {
        let mut report = OpenReport::new(Engine::Duckdb, "/d/system.duckdb", "system.duckdb");
        report.schema_version = 3;
        assert!(!report.fell_back() && !report.recovered());
        let text = report.to_string();
        assert!(
            text.starts_with("duckdb system.duckdb (/d/system.duckdb)"),
            "{text}"
        );
        assert!(
            !text.contains("fell back") && !text.contains("recovered"),
            "{text}"
        );
        assert!(text.contains("schema version 3"), "{text}");
    }

    #[test]
    fn durability_says_the_promise_and_the_setting_in_a_few_words() {
        let mut report = OpenReport::new(Engine::Sqlite, "/d/state.db", "state.db");
        report.journal_mode = Some(JournalMode::Wal);
        assert!(!report.to_string().contains("sync"), "{report}");
        report.durability = Some(Durability::PowerSafe {
            sync: SyncLevel::Full,
        });
        let text = report.to_string();
        assert!(
            text.contains("journal wal; power-safe commits (sync full); schema version 0"),
            "{text}"
        );
        let opted_out = Durability::RecentCommitsMayBeLost {
            sync: SyncLevel::Normal,
        };
        assert_eq!(
            opted_out.to_string(),
            "a power cut may undo recent commits (sync normal)"
        );
        assert!(!opted_out.is_power_safe());
        assert_eq!(opted_out.sync(), SyncLevel::Normal);
        let off = Durability::MayCorrupt {
            sync: SyncLevel::Off,
        };
        assert_eq!(
            off.to_string(),
            "a power cut may corrupt the database (sync off)"
        );
        assert!(SyncLevel::Off < SyncLevel::Normal && SyncLevel::Full < SyncLevel::Extra);
    }

    #[test]
    fn a_recovery_report_names_step_loss_and_moved_files() {
        let mut report = OpenReport::new(Engine::Duckdb, "/d/system.duckdb", "system.duckdb");
        report.recovery = Some(Recovery {
            class: FailureClass::WalReplay,
            cause: "Failure while replaying WAL file".into(),
            step: RecoveryStep::DiscardWal,
            steps_failed: vec![StepFailed::new(
                RecoveryStep::SalvageWal,
                StepCause::NotApplicable,
                "no replayable prefix",
            )],
            moved_aside: Vec::new(),
            lost: DataLoss::UncheckpointedCommits,
            interrupted: false,
            salvage_boundary: None,
        });
        let text = report.to_string();
        assert!(
            text.contains("recovered from WalReplay by discard-wal, lost uncheckpointed commits"),
            "{text}"
        );
        assert!(!text.contains("interrupted"), "{text}");
    }

    #[test]
    fn an_interrupted_recovery_says_so_whether_completed_recovered_again_or_unreadable() {
        let earlier = crate::pending::PendingRecovery {
            step: RecoveryStep::RestoreSnapshot,
            class: FailureClass::WalReplay,
            cause: "Failure while replaying WAL file".into(),
            lost: DataLoss::EverythingSinceSnapshot {
                taken_at: UNIX_EPOCH,
            },
            reason: "broken".into(),
            started_at: UNIX_EPOCH,
        };
        let mut report = OpenReport::new(Engine::Duckdb, "/d/system.duckdb", "system.duckdb");
        report.recovery = Some(earlier.to_recovery(std::path::Path::new("/nonexistent/x")));
        report.interrupted_recovery = Some(InterruptedRecovery::Recorded(earlier.clone()));
        let text = report.to_string();
        assert!(
            text.contains("by restore-snapshot, lost everything since snapshot taken at 1970-01-01T00:00:00Z, 0 file(s) moved aside (in an earlier open that a crash or power cut interrupted; completed by this one)"),
            "{text}"
        );
        assert!(!text.contains("an earlier recovery"), "said once: {text}");

        report.recovery = Some(Recovery {
            interrupted: false,
            step: RecoveryStep::DiscardWal,
            lost: DataLoss::UncheckpointedCommits,
            ..earlier.to_recovery(std::path::Path::new("/nonexistent/x"))
        });
        let text = report.to_string();
        assert!(
            text.contains("by discard-wal, lost uncheckpointed commits, 0 file(s) moved aside; an earlier recovery by restore-snapshot was interrupted"),
            "{text}"
        );

        report.recovery = None;
        report.interrupted_recovery = Some(InterruptedRecovery::Unreadable {
            reason: "not UTF-8 text".into(),
        });
        let text = report.to_string();
        assert!(
            text.contains("an earlier recovery was interrupted by a crash or power cut, what it did and lost is unknown (not UTF-8 text)"),
            "{text}"
        );
    }
}
