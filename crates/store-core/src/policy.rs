//! Policies: which journal modes to try, and which recovery steps to take.
//!
//! Both are traits so that an application can decide from its own knowledge (a deployment flag, a
//! configuration file), and both come with ladders that cover the common cases:
//! [`JournalLadder::default`], [`JournalLadder::single_process`], [`JournalLadder::strict`];
//! [`RecoveryLadder::default`], [`RecoveryLadder::snapshot_only`], [`RecoveryLadder::strict`].

use std::fmt;

use crate::{FailureClass, FsKind, JournalMode};

/// Decides the journal modes an SQLite open tries, in order, and when to move down the ladder.
///
/// ```
/// use store_core::{FailureClass, FsKind, JournalMode, JournalPolicy};
///
/// /// Our app is the only process that ever opens its database.
/// #[derive(Debug)]
/// struct DesktopApp;
///
/// impl JournalPolicy for DesktopApp {
///     fn name(&self) -> &str { "desktop-app" }
///     fn ladder(&self, _filesystem: FsKind) -> Vec<JournalMode> {
///         vec![JournalMode::WalExclusive, JournalMode::Delete]
///     }
///     fn falls_back_on(&self, class: FailureClass) -> bool {
///         class == FailureClass::WalUnsupported
///     }
/// }
///
/// assert_eq!(DesktopApp.ladder(FsKind::Nfs)[0], JournalMode::WalExclusive);
/// assert!(!DesktopApp.converts_existing_wal());
/// ```
pub trait JournalPolicy: Send + Sync + fmt::Debug {
    /// A short name for reports and logs.
    fn name(&self) -> &str;

    /// The modes to try, best first, for a database on `filesystem`. Never empty.
    fn ladder(&self, filesystem: FsKind) -> Vec<JournalMode>;

    /// Whether a failure of this class when setting or proving a mode moves to the next rung.
    fn falls_back_on(&self, class: FailureClass) -> bool;

    /// Whether a database already in WAL format may be converted to a rollback-journal mode when
    /// WAL cannot work here. When false (the default), such a database is opened with exclusive
    /// locking and left in WAL format, so that other machines that still use it in WAL mode do not
    /// disagree with this one about the journal (which corrupts the file).
    fn converts_existing_wal(&self) -> bool {
        false
    }
}

/// A [`JournalPolicy`] given as data: a ladder per filesystem family and the classes that fall back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalLadder {
    name: String,
    ladder: Vec<JournalMode>,
    network_ladder: Vec<JournalMode>,
    fall_back_on: Vec<FailureClass>,
    converts_existing_wal: bool,
}

/// A ladder that cannot be walked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LadderError {
    /// The ladder has no rung.
    #[error("the journal ladder `{name}` is empty")]
    Empty {
        /// The ladder's name.
        name: String,
    },
    /// A mode appears twice.
    #[error("the journal ladder `{name}` lists {mode} twice")]
    Duplicate {
        /// The ladder's name.
        name: String,
        /// The repeated mode.
        mode: JournalMode,
    },
}

impl JournalLadder {
    /// A ladder tried on every filesystem, falling back on [`FailureClass::WalUnsupported`].
    pub fn new(name: impl Into<String>, ladder: Vec<JournalMode>) -> Result<Self, LadderError> {
        let name = name.into();
        validate_ladder(&name, &ladder)?;
        Ok(JournalLadder {
            name,
            network_ladder: ladder.clone(),
            ladder,
            fall_back_on: vec![FailureClass::WalUnsupported],
            converts_existing_wal: false,
        })
    }

    /// The default: `[Wal, Delete]`, and `[Truncate]` up front on every filesystem that crosses
    /// a machine boundary ([`FsKind::machine_boundary`]): NFS, SMB, the network FUSE clients
    /// (sshfs, smbnetfs, glusterfs, ...), 9p and virtiofs. WAL's index is shared memory that no
    /// other machine (or VM host) sees, so two clients in WAL lose each other's commits without
    /// an error (measured on sshfs, smbnetfs and GlusterFS: DESIGN.md section 10). A rollback
    /// journal there is truncated, not deleted, at each commit: smbnetfs refuses to unlink a file
    /// whose close has not reached the server yet, and DELETE failed commits with
    /// `SQLITE_IOERR_DELETE` in 2 of 3 runs of 60 commits there (TRUNCATE: none), while the
    /// truncated journal is synced as DELETE's unlink is (`synchronous` FULL or EXTRA). Falls
    /// back only when WAL is unsupported; never converts an existing WAL database.
    pub fn standard() -> Self {
        JournalLadder {
            name: "default".to_owned(),
            ladder: vec![JournalMode::Wal, JournalMode::Delete],
            network_ladder: vec![JournalMode::Truncate],
            fall_back_on: vec![FailureClass::WalUnsupported],
            converts_existing_wal: false,
        }
    }

    /// For applications that are the only process using their database: `[Wal, WalExclusive,
    /// Delete]`, and `[WalExclusive, Delete]` on filesystems that cross a machine boundary. `WalExclusive` keeps WAL's
    /// commit rate without shared memory (two orders of magnitude above DELETE).
    pub fn single_process() -> Self {
        JournalLadder {
            name: "single-process".to_owned(),
            ladder: vec![
                JournalMode::Wal,
                JournalMode::WalExclusive,
                JournalMode::Delete,
            ],
            network_ladder: vec![JournalMode::WalExclusive, JournalMode::Delete],
            ..JournalLadder::standard()
        }
    }

    /// Exactly `mode`, on every filesystem, never falling back: the open fails instead.
    pub fn strict(mode: JournalMode) -> Self {
        JournalLadder {
            name: format!("strict-{mode}"),
            ladder: vec![mode],
            network_ladder: vec![mode],
            fall_back_on: Vec::new(),
            converts_existing_wal: false,
        }
    }

    /// Uses `ladder` on filesystems that cross a machine boundary (network shares: NFS, SMB,
    /// the network FUSE clients; cross-VM: 9p, virtiofs) instead of the general one.
    pub fn on_network(mut self, ladder: Vec<JournalMode>) -> Result<Self, LadderError> {
        validate_ladder(&self.name, &ladder)?;
        self.network_ladder = ladder;
        Ok(self)
    }

    /// Falls back on these classes instead (default: only [`FailureClass::WalUnsupported`]).
    pub fn falling_back_on(mut self, classes: Vec<FailureClass>) -> Self {
        self.fall_back_on = classes;
        self
    }

    /// Allows converting an existing WAL database (default: false; see
    /// [`JournalPolicy::converts_existing_wal`]).
    pub fn converting_existing_wal(mut self, allowed: bool) -> Self {
        self.converts_existing_wal = allowed;
        self
    }
}

impl Default for JournalLadder {
    /// [`JournalLadder::standard`].
    fn default() -> Self {
        JournalLadder::standard()
    }
}

impl JournalPolicy for JournalLadder {
    fn name(&self) -> &str {
        &self.name
    }

    fn ladder(&self, filesystem: FsKind) -> Vec<JournalMode> {
        if filesystem.machine_boundary().is_crossed() {
            self.network_ladder.clone()
        } else {
            self.ladder.clone()
        }
    }

    fn falls_back_on(&self, class: FailureClass) -> bool {
        self.fall_back_on.contains(&class)
    }

    fn converts_existing_wal(&self) -> bool {
        self.converts_existing_wal
    }
}

fn validate_ladder(name: &str, ladder: &[JournalMode]) -> Result<(), LadderError> {
    if ladder.is_empty() {
        return Err(LadderError::Empty {
            name: name.to_owned(),
        });
    }
    for (index, mode) in ladder.iter().enumerate() {
        if ladder[..index].contains(mode) {
            return Err(LadderError::Duplicate {
                name: name.to_owned(),
                mode: *mode,
            });
        }
    }
    Ok(())
}

/// One step of the recovery ladder, each with the guarantee it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecoveryStep {
    /// Replay the write-ahead log up to its first bad entry. Keeps every commit before that entry
    /// and loses the commits after it. The original log is moved aside, not deleted.
    SalvageWal,
    /// Move the write-ahead log and its sidecars aside and open at the last checkpoint. Loses
    /// every commit since that checkpoint; the log stays on disk for forensics.
    DiscardWal,
    /// Move the database and its log aside and copy the pre-migration snapshot in, then migrate
    /// to the current schema. Loses everything since the snapshot was taken. Only taken when the
    /// snapshot's schema version is one the policy accepts.
    RestoreSnapshot,
}

impl RecoveryStep {
    /// The name used in reports and the fault matrix (`salvage-wal`, `discard-wal`,
    /// `restore-snapshot`).
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryStep::SalvageWal => "salvage-wal",
            RecoveryStep::DiscardWal => "discard-wal",
            RecoveryStep::RestoreSnapshot => "restore-snapshot",
        }
    }
}

impl fmt::Display for RecoveryStep {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Decides whether and how an open recovers from a damaged database or write-ahead log.
///
/// Engines consult a policy only for classes where
/// [`FailureClass::may_be_recovered`] holds: a lock held by another process always propagates.
pub trait RecoveryPolicy: Send + Sync + fmt::Debug {
    /// A short name for reports and logs.
    fn name(&self) -> &str;

    /// Whether to recover at all from a failure of this class.
    fn recovers_from(&self, class: FailureClass) -> bool;

    /// The steps to try, in order; the first that opens the database ends the ladder.
    fn steps(&self) -> Vec<RecoveryStep>;

    /// Whether a snapshot at `snapshot_version` may be restored into a database whose migrations
    /// end at `target_version`. Default: only a snapshot the migrations can bring forward
    /// (`snapshot_version <= target_version`); a snapshot from a newer schema is refused.
    fn accepts_snapshot(&self, snapshot_version: u32, target_version: u32) -> bool {
        snapshot_version <= target_version
    }
}

/// A [`RecoveryPolicy`] given as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryLadder {
    name: String,
    steps: Vec<RecoveryStep>,
    recovers_from: Vec<FailureClass>,
}

impl RecoveryLadder {
    /// The full ladder, least loss first: [`RecoveryStep::SalvageWal`], then
    /// [`RecoveryStep::DiscardWal`], then [`RecoveryStep::RestoreSnapshot`]; on
    /// [`FailureClass::WalReplay`] and [`FailureClass::WalCorrupt`], and on
    /// [`FailureClass::Corrupt`] (a damaged database file), where only the restore applies.
    pub fn standard() -> Self {
        RecoveryLadder {
            name: "default".to_owned(),
            steps: vec![
                RecoveryStep::SalvageWal,
                RecoveryStep::DiscardWal,
                RecoveryStep::RestoreSnapshot,
            ],
            recovers_from: vec![
                FailureClass::WalReplay,
                FailureClass::WalCorrupt,
                FailureClass::Corrupt,
            ],
        }
    }

    /// Only [`RecoveryStep::RestoreSnapshot`], on the WAL classes: the behaviour of applications
    /// that prefer a known schema state to a partial log.
    pub fn snapshot_only() -> Self {
        RecoveryLadder {
            name: "snapshot-only".to_owned(),
            steps: vec![RecoveryStep::RestoreSnapshot],
            ..RecoveryLadder::standard()
        }
    }

    /// No recovery: every open error propagates.
    pub fn strict() -> Self {
        RecoveryLadder {
            name: "strict".to_owned(),
            steps: Vec::new(),
            recovers_from: Vec::new(),
        }
    }

    /// A ladder of these steps on the WAL classes.
    pub fn new(name: impl Into<String>, steps: Vec<RecoveryStep>) -> Self {
        RecoveryLadder {
            name: name.into(),
            steps,
            ..RecoveryLadder::standard()
        }
    }

    /// Recovers from these classes instead. Classes that can never be recovered
    /// ([`FailureClass::may_be_recovered`] false) are ignored by the engines whatever is listed.
    pub fn recovering_from(mut self, classes: Vec<FailureClass>) -> Self {
        self.recovers_from = classes;
        self
    }
}

impl Default for RecoveryLadder {
    /// [`RecoveryLadder::standard`].
    fn default() -> Self {
        RecoveryLadder::standard()
    }
}

impl RecoveryPolicy for RecoveryLadder {
    fn name(&self) -> &str {
        &self.name
    }

    fn recovers_from(&self, class: FailureClass) -> bool {
        !self.steps.is_empty() && self.recovers_from.contains(&class)
    }

    fn steps(&self) -> Vec<RecoveryStep> {
        self.steps.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ladder_prefers_wal_and_skips_it_on_network_filesystems() {
        let policy = JournalLadder::default();
        assert_eq!(
            policy.ladder(FsKind::Local),
            [JournalMode::Wal, JournalMode::Delete]
        );
        // An unknown FUSE daemon and gVisor's sandbox-only 9p are this kernel's.
        for same_kernel in [FsKind::Fuse, FsKind::GvisorNineP] {
            assert_eq!(
                policy.ladder(same_kernel),
                [JournalMode::Wal, JournalMode::Delete],
                "{same_kernel}"
            );
        }
        let network_fuse = crate::ShareClient::ALL.map(FsKind::NetworkFuse);
        for crossing in [FsKind::Nfs, FsKind::Smb, FsKind::NineP, FsKind::VirtioFs]
            .into_iter()
            .chain(network_fuse)
        {
            assert_eq!(
                policy.ladder(crossing),
                [JournalMode::Truncate],
                "{crossing}"
            );
        }
        assert!(policy.falls_back_on(FailureClass::WalUnsupported));
        for class in FailureClass::ALL {
            if class != FailureClass::WalUnsupported {
                assert!(!policy.falls_back_on(class), "{class}");
            }
        }
        assert!(!policy.converts_existing_wal());
    }

    #[test]
    fn single_process_ladder_keeps_wal_without_shared_memory() {
        let policy = JournalLadder::single_process();
        assert_eq!(
            policy.ladder(FsKind::Local),
            [
                JournalMode::Wal,
                JournalMode::WalExclusive,
                JournalMode::Delete
            ]
        );
        assert_eq!(
            policy.ladder(FsKind::Nfs),
            [JournalMode::WalExclusive, JournalMode::Delete]
        );
    }

    #[test]
    fn strict_ladder_never_falls_back() {
        let policy = JournalLadder::strict(JournalMode::Wal);
        assert_eq!(policy.ladder(FsKind::Nfs), [JournalMode::Wal]);
        assert!(
            FailureClass::ALL
                .iter()
                .all(|class| !policy.falls_back_on(*class))
        );
        assert_eq!(policy.name(), "strict-wal");
    }

    #[test]
    fn custom_ladders_are_validated() {
        assert_eq!(
            JournalLadder::new("mine", vec![]),
            Err(LadderError::Empty {
                name: "mine".into()
            })
        );
        assert_eq!(
            JournalLadder::new("mine", vec![JournalMode::Wal, JournalMode::Wal]),
            Err(LadderError::Duplicate {
                name: "mine".into(),
                mode: JournalMode::Wal
            })
        );
        let network_error = JournalLadder::default().on_network(vec![]).unwrap_err();
        assert!(
            network_error.to_string().contains("empty"),
            "{network_error}"
        );
    }

    #[test]
    fn custom_ladder_options_apply() -> Result<(), LadderError> {
        let policy = JournalLadder::new("mine", vec![JournalMode::Wal, JournalMode::Truncate])?
            .on_network(vec![JournalMode::Truncate])?
            .falling_back_on(vec![FailureClass::WalUnsupported, FailureClass::Busy])
            .converting_existing_wal(true);
        assert_eq!(policy.ladder(FsKind::Smb), [JournalMode::Truncate]);
        assert!(policy.falls_back_on(FailureClass::Busy));
        assert!(policy.converts_existing_wal());
        Ok(())
    }

    #[test]
    fn default_recovery_walks_from_least_to_most_loss_on_wal_classes_only() {
        let policy = RecoveryLadder::default();
        assert_eq!(
            policy.steps(),
            [
                RecoveryStep::SalvageWal,
                RecoveryStep::DiscardWal,
                RecoveryStep::RestoreSnapshot
            ]
        );
        assert!(policy.recovers_from(FailureClass::WalReplay));
        assert!(policy.recovers_from(FailureClass::WalCorrupt));
        assert!(policy.recovers_from(FailureClass::Corrupt));
        assert!(!policy.recovers_from(FailureClass::Locked));
        assert!(!policy.recovers_from(FailureClass::NotADatabase));
    }

    #[test]
    fn snapshot_acceptance_refuses_newer_schemas() {
        let policy = RecoveryLadder::snapshot_only();
        assert_eq!(policy.steps(), [RecoveryStep::RestoreSnapshot]);
        assert!(policy.accepts_snapshot(3, 4));
        assert!(policy.accepts_snapshot(4, 4));
        assert!(!policy.accepts_snapshot(5, 4));
    }

    #[test]
    fn strict_recovery_recovers_from_nothing() {
        let policy = RecoveryLadder::strict();
        assert!(policy.steps().is_empty());
        assert!(
            FailureClass::ALL
                .iter()
                .all(|class| !policy.recovers_from(*class))
        );
        let empty = RecoveryLadder::new("none", vec![]);
        assert!(!empty.recovers_from(FailureClass::WalReplay));
    }

    #[test]
    fn step_names() {
        assert_eq!(RecoveryStep::SalvageWal.to_string(), "salvage-wal");
        assert_eq!(RecoveryStep::DiscardWal.as_str(), "discard-wal");
        assert_eq!(RecoveryStep::RestoreSnapshot.as_str(), "restore-snapshot");
    }
}
