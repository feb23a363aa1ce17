//! The matrix itself: every cell's engine, fault and policy, the outcome it expects and the rows
//! it must keep.

use store_core::{Engine, FailureClass, JournalMode, RecoveryStep};

use crate::names::{UnknownName, named_enum};
pub(super) use crate::outcome::Outcome;

/// Rows every cell's database holds before the fault: committed and acknowledged.
pub(super) const ROWS_BEFORE: u64 = 100;

/// What a cell may lose and still be as expected, whatever the report says: the report must also
/// name every loss, but a report cannot lower this floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keep {
    /// Every row acknowledged before the fault.
    All,
    /// The checkpointed rows and the WAL commits that end before the damaged byte.
    BeforeDamage,
    /// The checkpointed rows: the WAL's commits are lost with it.
    Checkpointed,
    /// Exactly the rows standing when the pre-migration snapshot was taken: not fewer, and none of
    /// those written after it (a database holding them was not restored from the snapshot).
    Snapshot,
    /// The database cannot be opened without recovery, and nothing on disk may change.
    Untouched,
}

impl Keep {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Keep::All => "all",
            Keep::BeforeDamage => "before damage",
            Keep::Checkpointed => "checkpointed",
            Keep::Snapshot => "snapshot",
            Keep::Untouched => "untouched",
        }
    }
}

named_enum! {
    /// What a cell does to its database before the open (or while it runs).
    pub(crate) enum MatrixFault: "matrix fault" {
        /// No fault: the baseline.
        None => "none",
        /// SQLite's locking calls fail as on a filesystem that drops them (lock protocol errors).
        LockProtocol => "lock-protocol",
        /// SQLite cannot map shared memory (`-shm`): WAL needs it.
        NoSharedMemory => "no-shared-memory",
        /// The same, on a database already in WAL format.
        NoSharedMemoryExistingWal => "no-shared-memory-existing-wal",
        /// SQLite's locks do nothing.
        NoLocks => "no-locks",
        /// The `journal_mode` pragma is refused.
        JournalPragmaDenied => "journal-pragma-denied",
        /// One I/O error at a commit.
        CommitIoErrorOnce => "commit-io-error-once",
        /// I/O errors at every commit.
        CommitIoError => "commit-io-error",
        /// Another connection holds an exclusive transaction.
        AnotherWriter => "another-writer",
        /// A tiny tmpfs: the migration fills it.
        DiskFull => "disk-full",
        /// The directory is remounted read-only.
        ReadOnlyFilesystem => "read-only-filesystem",
        /// The migrating process is killed inside a multi-statement migration, before its commit.
        KilledInsideMigration => "killed-inside-migration",
        /// The migrating process is killed right after a migration commits.
        KilledMidMigration => "killed-mid-migration",
        /// The same, then garbage after the WAL's last commit.
        KilledMidMigrationWalGarbage => "killed-mid-migration-wal-garbage",
        /// Garbage after the WAL's last commit.
        WalGarbage => "wal-garbage",
        /// One byte flipped inside the WAL's 11th commit.
        WalFlippedByte => "wal-flipped-byte",
        /// One byte flipped at each of 20 seeded offsets of a WAL of 1,000 commits.
        WalFlippedByteSeeded => "wal-flipped-byte-seeded",
        /// The WAL cut inside its 16th commit.
        TornWalTail => "torn-wal-tail",
        /// Another database's WAL in place of this one's.
        ForeignWal => "foreign-wal",
        /// Another process holds the database open.
        LockedByProcess => "locked-by-process",
    }
}

named_enum! {
    /// The policy a cell opens with: a journal ladder (SQLite) or a recovery ladder (DuckDB).
    pub(crate) enum MatrixPolicy: "matrix policy" {
        /// The engine's default ladder.
        Default => "default",
        /// SQLite: WAL or nothing.
        StrictWal => "strict-wal",
        /// SQLite: the single-process ladder (WAL with exclusive locking before DELETE).
        SingleProcess => "single-process",
        /// SQLite: the default ladder, converting a database already in WAL format.
        Converting => "converting",
        /// DuckDB: discarding the WAL is the only recovery.
        DiscardOnly => "discard-only",
        /// DuckDB: restoring the snapshot is the only recovery.
        SnapshotOnly => "snapshot-only",
        /// DuckDB: no recovery.
        Strict => "strict",
    }
}

#[cfg(test)]
impl MatrixPolicy {
    /// The engine whose ladder it configures; `None` for the default, which both have. The cell
    /// bodies refuse another engine's policy as a setup failure; the tests keep the table clear
    /// of them.
    fn engine(self) -> Option<Engine> {
        match self {
            MatrixPolicy::Default => None,
            MatrixPolicy::StrictWal | MatrixPolicy::SingleProcess | MatrixPolicy::Converting => {
                Some(Engine::Sqlite)
            }
            MatrixPolicy::DiscardOnly | MatrixPolicy::SnapshotOnly | MatrixPolicy::Strict => {
                Some(Engine::Duckdb)
            }
        }
    }
}

/// A cell of the matrix: what it does, under which policy, and what it expects.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Cell {
    pub(super) engine: Engine,
    pub(super) fault: MatrixFault,
    pub(super) policy: MatrixPolicy,
    pub(super) expected: Outcome,
    pub(super) keep: Keep,
}

const fn sqlite(fault: MatrixFault, policy: MatrixPolicy, expected: Outcome, keep: Keep) -> Cell {
    Cell {
        engine: Engine::Sqlite,
        fault,
        policy,
        expected,
        keep,
    }
}

const fn duckdb(fault: MatrixFault, policy: MatrixPolicy, expected: Outcome, keep: Keep) -> Cell {
    Cell {
        engine: Engine::Duckdb,
        fault,
        policy,
        expected,
        keep,
    }
}

impl Cell {
    /// `engine/fault/policy`: what the tables print, `--fault` matches and the child is given.
    pub(super) fn name(&self) -> String {
        format!("{}/{}/{}", self.engine, self.fault, self.policy)
    }
}

/// The cell named `engine/fault/policy`, for the child's argument.
pub(super) fn cell_named(name: &str) -> Result<&'static Cell, UnknownName> {
    let unknown = || {
        UnknownName::new(
            "matrix cell",
            name,
            ["ENGINE/FAULT/POLICY as `cargo xtask fault-matrix` prints it"],
        )
    };
    let mut parts = name.splitn(3, '/');
    let (Some(engine), Some(fault), Some(policy)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(unknown());
    };
    let fault: MatrixFault = fault.parse()?;
    let policy: MatrixPolicy = policy.parse()?;
    CELLS
        .iter()
        .find(|cell| cell.engine.as_str() == engine && cell.fault == fault && cell.policy == policy)
        .ok_or_else(unknown)
}

use MatrixFault as F;
use MatrixPolicy as P;
use Outcome::{FellBack, Opened, Propagated, Recovered};

const WAL: Option<JournalMode> = Some(JournalMode::Wal);

/// Every cell, slow ones (SQLite's ten seconds of lock-protocol retries, the long migrations of
/// the killed-inside cells) first so that the other worker drains the rest meanwhile.
pub(super) static CELLS: &[Cell] = &[
    // Filesystems without what WAL needs (shared memory, working locks, the journal pragma): the
    // open falls back to a mode that works, or a strict policy refuses with WalUnsupported; no row
    // is lost either way.
    sqlite(
        F::LockProtocol,
        P::Default,
        FellBack(JournalMode::Delete),
        Keep::All,
    ),
    sqlite(
        F::LockProtocol,
        P::StrictWal,
        Propagated(FailureClass::WalUnsupported),
        Keep::All,
    ),
    // A process killed right after a migration commits, or inside a multi-statement migration
    // before its commit: the files hold the version the commits imply (never a half-applied
    // migration), and store's reopen reaches the latest with each migration applied once.
    sqlite(F::KilledInsideMigration, P::Default, Opened(WAL), Keep::All),
    duckdb(
        F::KilledInsideMigration,
        P::Default,
        Opened(None),
        Keep::All,
    ),
    sqlite(F::KilledMidMigration, P::Default, Opened(WAL), Keep::All),
    // No fault: the baseline opens as asked.
    sqlite(F::None, P::Default, Opened(WAL), Keep::All),
    sqlite(F::None, P::StrictWal, Opened(WAL), Keep::All),
    sqlite(
        F::NoSharedMemory,
        P::Default,
        FellBack(JournalMode::Delete),
        Keep::All,
    ),
    sqlite(
        F::NoSharedMemory,
        P::SingleProcess,
        FellBack(JournalMode::WalExclusive),
        Keep::All,
    ),
    sqlite(
        F::NoSharedMemory,
        P::StrictWal,
        Propagated(FailureClass::WalUnsupported),
        Keep::All,
    ),
    sqlite(
        F::NoSharedMemoryExistingWal,
        P::Default,
        FellBack(JournalMode::WalExclusive),
        Keep::All,
    ),
    sqlite(
        F::NoSharedMemoryExistingWal,
        P::Converting,
        FellBack(JournalMode::Delete),
        Keep::All,
    ),
    sqlite(
        F::JournalPragmaDenied,
        P::Default,
        FellBack(JournalMode::Delete),
        Keep::All,
    ),
    sqlite(
        F::JournalPragmaDenied,
        P::StrictWal,
        Propagated(FailureClass::WalUnsupported),
        Keep::All,
    ),
    // Locks and busy writers are never recovered from: the open says so and nothing is lost.
    sqlite(
        F::NoLocks,
        P::Default,
        Propagated(FailureClass::Busy),
        Keep::All,
    ),
    // An I/O error at a commit: retried, or the ladder falls back; committed rows stay.
    sqlite(F::CommitIoErrorOnce, P::Default, Opened(WAL), Keep::All),
    sqlite(
        F::CommitIoError,
        P::Default,
        FellBack(JournalMode::Delete),
        Keep::All,
    ),
    sqlite(
        F::AnotherWriter,
        P::Default,
        Propagated(FailureClass::Busy),
        Keep::All,
    ),
    // A full disk or a read-only mount: a typed error, every committed row still readable.
    sqlite(
        F::DiskFull,
        P::Default,
        Propagated(FailureClass::DiskFull),
        Keep::All,
    ),
    sqlite(
        F::ReadOnlyFilesystem,
        P::Default,
        Propagated(FailureClass::ReadOnly),
        Keep::All,
    ),
    duckdb(F::None, P::Default, Opened(None), Keep::All),
    // A WAL DuckDB cannot replay: each recovery step keeps what it promises, reports what it
    // loses (the oracle maps the report to rows), and moves aside what it replaces, whole; a
    // strict policy refuses and touches nothing.
    duckdb(
        F::WalGarbage,
        P::Default,
        Recovered(RecoveryStep::SalvageWal),
        Keep::All,
    ),
    duckdb(
        F::WalGarbage,
        P::DiscardOnly,
        Recovered(RecoveryStep::DiscardWal),
        Keep::Checkpointed,
    ),
    duckdb(
        F::WalGarbage,
        P::SnapshotOnly,
        Recovered(RecoveryStep::RestoreSnapshot),
        Keep::Snapshot,
    ),
    duckdb(
        F::WalGarbage,
        P::Strict,
        Propagated(FailureClass::WalReplay),
        Keep::Untouched,
    ),
    duckdb(
        F::WalFlippedByte,
        P::Default,
        Recovered(RecoveryStep::SalvageWal),
        Keep::BeforeDamage,
    ),
    duckdb(
        F::WalFlippedByte,
        P::Strict,
        Propagated(FailureClass::WalCorrupt),
        Keep::Untouched,
    ),
    duckdb(
        F::ForeignWal,
        P::Default,
        Recovered(RecoveryStep::DiscardWal),
        Keep::Checkpointed,
    ),
    // DuckDB would replay a torn WAL up to the cut and say nothing: store's WAL reader finds the
    // tail first, keeps the original WAL aside and reports what the cut dropped.
    duckdb(
        F::TornWalTail,
        P::Default,
        Recovered(RecoveryStep::SalvageWal),
        Keep::BeforeDamage,
    ),
    // A WAL of 1,000 commits, one byte flipped at each of 20 seeded offsets (each on its own copy):
    // every salvage keeps each commit before the damaged entry, and the loss it reports starts
    // exactly where the last of them ends, never inside or after the damaged entry.
    duckdb(
        F::WalFlippedByteSeeded,
        P::Default,
        Recovered(RecoveryStep::SalvageWal),
        Keep::BeforeDamage,
    ),
    duckdb(
        F::LockedByProcess,
        P::Default,
        Propagated(FailureClass::Locked),
        Keep::Untouched,
    ),
    duckdb(F::KilledMidMigration, P::Default, Opened(None), Keep::All),
    duckdb(
        F::KilledMidMigrationWalGarbage,
        P::Default,
        Recovered(RecoveryStep::SalvageWal),
        Keep::All,
    ),
    duckdb(
        F::DiskFull,
        P::Default,
        Propagated(FailureClass::DiskFull),
        Keep::All,
    ),
    duckdb(
        F::ReadOnlyFilesystem,
        P::Default,
        Propagated(FailureClass::ReadOnly),
        Keep::All,
    ),
];

/// The cell named `name`, for tests.
#[cfg(test)]
pub(super) fn cell(name: &str) -> &'static Cell {
    cell_named(name).unwrap_or_else(|error| panic!("{error}"))
}

#[cfg(test)]
mod tests {
    use store_testkit::faults::Fault;

    use super::*;
    use crate::power;

    #[test]
    fn every_fault_of_the_vocabulary_has_a_cell_per_engine_it_applies_to() {
        for fault in Fault::ALL {
            for engine in fault.engines() {
                assert!(
                    CELLS.iter().any(|cell| cell.engine == *engine
                        && cell.fault.name().starts_with(fault.name()))
                        || power::CELLS.iter().any(|cell| {
                            cell.setup.engine() == *engine
                                && cell.point.name().starts_with(fault.name())
                        }),
                    "no {engine} cell for {}",
                    fault.name()
                );
            }
        }
    }

    #[test]
    fn every_cell_has_a_known_expected_outcome_and_a_policy_of_its_engine() {
        for cell in CELLS {
            assert_eq!(
                Outcome::parse(&cell.expected.to_string()),
                Some(cell.expected),
                "{}",
                cell.name()
            );
            assert!(
                cell.policy
                    .engine()
                    .is_none_or(|engine| engine == cell.engine),
                "{}: the policy is another engine's",
                cell.name()
            );
        }
    }

    #[test]
    fn cell_names_are_unique_and_name_their_cell() {
        let mut names: Vec<String> = CELLS.iter().map(Cell::name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CELLS.len());
        for cell in CELLS {
            assert_eq!(cell_named(&cell.name()), Ok(cell));
        }
        // The names the tables, `--fault` and CI logs have always used.
        assert_eq!(
            cell("duckdb/wal-flipped-byte-seeded/default").fault,
            MatrixFault::WalFlippedByteSeeded
        );
        assert_eq!(
            cell("sqlite/no-shared-memory-existing-wal/converting").policy,
            MatrixPolicy::Converting
        );
        assert!(cell_named("sqlite/no-such-fault/default").is_err());
        assert!(
            cell_named("sqlite/wal-garbage/default").is_err(),
            "no such cell"
        );
        assert!(cell_named("sqlite").is_err());
    }
}
