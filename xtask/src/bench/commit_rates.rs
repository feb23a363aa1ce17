//! Commit rates, one fresh child process per run: store's default synchronous setting in the WAL
//! modes against DELETE under the no-shared-memory fault (why the ladder tries WAL first), store
//! against raw rusqlite in DELETE, and what the opt-out (`Synchronous::Normal`) buys in each mode.

use std::time::{Duration, Instant};

use store_core::{JournalLadder, JournalMode};
use store_sqlite::{SqliteOptions, Synchronous};
use store_testkit::faults::sqlite::SqliteFault;

use super::Selection;
use super::child::{BenchChild, BenchFault, BenchSide, CommitSync};
use super::figure::{Figure, Section, Spec, Target, Unit};
use super::samples::{Runs, Samples, alternate, paired};
use super::support::{BenchResult, child_output, raw_sqlite_open, scratch};

/// How long each commit-rate run commits for.
pub(super) const COMMIT_WINDOW: Duration = Duration::from_millis(1500);
/// Fresh processes a side of the opt-out and WAL figures.
pub(super) const RUNS: Runs = Runs::Settling { min: 3, max: 7 };
/// Fresh processes a side of store against raw in DELETE: ratio near 1, the disk's spread wide.
pub(super) const DELETE_RUNS: Runs = Runs::Settling { min: 5, max: 11 };

const DELETE_NO_SHM: &str = "store in DELETE under no-shm";
const DELETE_NO_SHM_DOES: &str = "store's own single-row commits in DELETE mode at its default \
                                  there (synchronous=EXTRA) under the same fault: the rung the \
                                  ladder lands on without WAL; 1.5 s in a fresh process, 3 \
                                  processes";
const AT_DEFAULT: &str = "the same at the default synchronous";

pub(super) const WAL_EXCLUSIVE: Spec = Spec {
    name: "sqlite single-row commits, wal-exclusive (fault: no-shared-memory), synchronous=full \
           (default)",
    section: Section::CommitRates,
    unit: Unit::CommitsPerSecond,
    target: Target::AtLeast(1.0),
    reason: "The ladder tries WAL-exclusive before DELETE on a filesystem without shared memory \
             because it commits faster (one sync a commit against five): if it did not, the \
             order would be wrong.",
    baseline_name: DELETE_NO_SHM,
    baseline_does: DELETE_NO_SHM_DOES,
};

pub(super) const WAL: Spec = Spec {
    name: "sqlite single-row commits, wal (fault: none), synchronous=full (default)",
    target: Target::AtLeast(1.0),
    reason: "WAL is the first rung on a healthy filesystem for the same reason: it must commit \
             at least as fast as the DELETE the fallback would give.",
    ..WAL_EXCLUSIVE
};

pub(super) const DELETE: Spec = Spec {
    name: "sqlite single-row commits, delete (fault: none), synchronous=extra (default)",
    section: Section::CommitRates,
    unit: Unit::CommitsPerSecond,
    target: Target::AtLeast(0.95),
    reason: "Once open, a store connection is a rusqlite connection: a commit costs what the \
             same commit costs raw. 95% of the raw rate, the rest being the disk's spread.",
    baseline_name: "rusqlite DELETE, synchronous=EXTRA",
    baseline_does: "raw rusqlite on a new database on a healthy filesystem, journal_mode=DELETE, \
                    synchronous=EXTRA (store's default in DELETE), the same single-row INSERTs \
                    for 1.5 s in a fresh process; 5 to 11 processes a side, until the ratio settles",
};

/// What the opt-out is documented to buy: in the WAL modes a commit waits for no fsync (20 to
/// 30 times the default's rate on the disk first measured); in DELETE it saves two of the five
/// syncs a commit makes under EXTRA (at most 5/3 of the rate, where syncs are all the cost).
const OPT_OUT_WAL_REASON: &str = "The README says what the opt-out buys: at synchronous=NORMAL a \
                                  WAL commit waits for no fsync. If it were not at least twice \
                                  the default's rate, the opt-out would not be worth its risk.";

pub(super) const WAL_EXCLUSIVE_NORMAL: Spec = Spec {
    name: "sqlite single-row commits, wal-exclusive (fault: no-shared-memory), \
           synchronous=normal (opt-out)",
    section: Section::CommitRates,
    unit: Unit::CommitsPerSecond,
    target: Target::AtLeast(2.0),
    reason: OPT_OUT_WAL_REASON,
    baseline_name: AT_DEFAULT,
    baseline_does: "store in the same mode under the same fault at its default \
                    (synchronous=FULL); 3 to 7 fresh processes a side",
};

pub(super) const WAL_NORMAL: Spec = Spec {
    name: "sqlite single-row commits, wal (fault: none), synchronous=normal (opt-out)",
    ..WAL_EXCLUSIVE_NORMAL
};

pub(super) const DELETE_NORMAL: Spec = Spec {
    name: "sqlite single-row commits, delete (fault: none), synchronous=normal (opt-out)",
    target: Target::AtLeast(1.2),
    reason: "In DELETE the opt-out saves two of the five syncs a commit makes under EXTRA (at \
             most 5/3 of the rate where syncs are all the cost), as the README says: at least \
             1.2x, or it buys too little for a database a power cut may corrupt.",
    baseline_does: "store in DELETE on a healthy filesystem at its default (synchronous=EXTRA); \
                    5 to 11 fresh processes a side",
    ..WAL_EXCLUSIVE_NORMAL
};

pub(super) const SPECS: &[&Spec] = &[
    &WAL_EXCLUSIVE,
    &WAL,
    &DELETE,
    &WAL_EXCLUSIVE_NORMAL,
    &WAL_NORMAL,
    &DELETE_NORMAL,
];

/// One child's commits per second.
fn rate(
    mode: JournalMode,
    fault: BenchFault,
    sync: CommitSync,
    side: BenchSide,
) -> BenchResult<f64> {
    child_output(&BenchChild::CommitRate {
        mode,
        fault,
        sync,
        side,
    })
}

pub(super) fn measure(selection: &Selection) -> BenchResult<Vec<Figure>> {
    let mut defaults = Vec::new();
    let mut opt_outs = Vec::new();
    let store = BenchSide::Store;
    if selection.wants(&WAL_EXCLUSIVE) || selection.wants(&WAL) {
        let delete_no_shm = Samples(
            (0..3)
                .map(|_| {
                    rate(
                        JournalMode::Delete,
                        BenchFault::NoSharedMemory,
                        CommitSync::Default,
                        store,
                    )
                })
                .collect::<BenchResult<_>>()?,
        );
        for (mode, fault, default_spec, normal_spec) in [
            (
                JournalMode::WalExclusive,
                BenchFault::NoSharedMemory,
                &WAL_EXCLUSIVE,
                &WAL_EXCLUSIVE_NORMAL,
            ),
            (JournalMode::Wal, BenchFault::None, &WAL, &WAL_NORMAL),
        ] {
            let (default, normal) = paired(
                RUNS,
                |_| rate(mode, fault, CommitSync::Default, store),
                |_| rate(mode, fault, CommitSync::Normal, store),
            )?;
            opt_outs.push(Figure::measured(normal_spec, normal, default.clone()));
            defaults.push(Figure::measured(
                default_spec,
                default,
                delete_no_shm.clone(),
            ));
        }
    } else {
        for (mode, fault, normal_spec) in [
            (
                JournalMode::WalExclusive,
                BenchFault::NoSharedMemory,
                &WAL_EXCLUSIVE_NORMAL,
            ),
            (JournalMode::Wal, BenchFault::None, &WAL_NORMAL),
        ] {
            if selection.wants(normal_spec) {
                let (default, normal) = paired(
                    RUNS,
                    |_| rate(mode, fault, CommitSync::Default, store),
                    |_| rate(mode, fault, CommitSync::Normal, store),
                )?;
                opt_outs.push(Figure::measured(normal_spec, normal, default));
            }
        }
    }
    if selection.wants(&DELETE) || selection.wants(&DELETE_NORMAL) {
        let (mode, fault) = (JournalMode::Delete, BenchFault::None);
        let [default, raw, normal] = alternate(
            DELETE_RUNS,
            [
                &mut |_| rate(mode, fault, CommitSync::Default, store),
                &mut |_| rate(mode, fault, CommitSync::Default, BenchSide::Raw),
                &mut |_| rate(mode, fault, CommitSync::Normal, store),
            ],
        )?;
        opt_outs.push(Figure::measured(&DELETE_NORMAL, normal, default.clone()));
        defaults.push(Figure::measured(&DELETE, default, raw));
    }
    defaults.extend(opt_outs);
    Ok(defaults)
}

/// In the child: commits per second for [`COMMIT_WINDOW`], through store strictly in `mode` or
/// through raw rusqlite with the pragmas store would set.
pub(super) fn commit_rate(
    mode: JournalMode,
    fault: BenchFault,
    sync: CommitSync,
    side: BenchSide,
) -> BenchResult<f64> {
    let _guard = match fault {
        BenchFault::None => None,
        BenchFault::NoSharedMemory => Some(SqliteFault::NoSharedMemory.install()?),
    };
    let directory = scratch()?;
    let path = directory.path().join("bench.db");
    let level = match sync {
        CommitSync::Default => Synchronous::default_for(mode),
        CommitSync::Normal => Synchronous::Normal,
    };
    let connection = match side {
        BenchSide::Store => {
            let mut options = SqliteOptions::new(&path).journal_policy(JournalLadder::strict(mode));
            if sync == CommitSync::Normal {
                options = options.synchronous(Synchronous::Normal);
            }
            let (connection, report) = options.open()?;
            assert_eq!(report.journal_mode, Some(mode), "{report}");
            assert_eq!(
                report.durability,
                Some(level.durability_in(mode)),
                "{report}"
            );
            connection
        }
        BenchSide::Raw => {
            let raw_mode = match mode {
                JournalMode::Delete => "delete",
                JournalMode::Wal => "wal",
                other => return Err(format!("no raw baseline in {other}").into()),
            };
            raw_sqlite_open(&path, raw_mode, level.as_str())?
        }
    };
    connection
        .execute_batch("CREATE TABLE rows (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")?;
    let mut statement = connection.prepare("INSERT INTO rows (payload) VALUES (?1)")?;
    let started = Instant::now();
    let mut commits = 0u64;
    while started.elapsed() < COMMIT_WINDOW {
        statement.execute(["a row of about forty bytes of payload...."])?;
        commits += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rows: i64 = connection.query_row("SELECT count(*) FROM rows", [], |row| row.get(0))?;
    assert_eq!(
        rows.unsigned_abs(),
        commits,
        "every commit of {} is readable",
        path.display()
    );
    Ok(commits as f64 / elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_say_each_mode_s_default_synchronous() {
        for (spec, mode) in [
            (&WAL_EXCLUSIVE, JournalMode::WalExclusive),
            (&WAL, JournalMode::Wal),
            (&DELETE, JournalMode::Delete),
        ] {
            let named = format!(
                "{mode} (fault: {}), synchronous={} (default)",
                if mode == JournalMode::WalExclusive {
                    BenchFault::NoSharedMemory.as_str()
                } else {
                    BenchFault::None.as_str()
                },
                Synchronous::default_for(mode)
            );
            assert!(spec.name.ends_with(&named), "{} / {named}", spec.name);
        }
    }
}
