//! The WAL reader (`store_duckdb::wal`) against the engine as oracle (issue 18): WALs written by
//! the real bundled DuckDB, damaged by seeded cuts and byte flips, read by `WalReading::read` and
//! opened by DuckDB, which must replay exactly the commits the reader counts, and fail exactly
//! when the reader says it will.
//!
//! Every shape is designed so that a database's contents (the columns of `t`, its row count and
//! the sum of its ids) tell how many of the shape's transactions were replayed: the expected
//! contents after `k` transactions come from running the first `k` statements on an in-memory
//! database, and the contents after each `k` are checked to be distinct.
//!
//! Some tests here fail on purpose: they state a promise of the reader's documentation that
//! DuckDB does not keep (header damage, entries with a valid checksum DuckDB cannot replay, a
//! checkpoint that reached the database file). Their messages list each disagreement.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::{any, prop_assert, prop_assert_eq};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use store_duckdb::wal::{ENTRY_HEADER_BYTES, UnknownWal, WalReading, WalTail, checksum};
use store_testkit::faults::duckdb::{WAL_GARBAGE, wal_path};

use crate::TestResult;

/// `WALType` values (`src/include/duckdb/common/enums/wal_type.hpp`).
const ALTER_INFO: u8 = 20;
const ROW_GROUP_DATA: u8 = 29;
const CHECKPOINT: u8 = 99;
const WAL_FLUSH: u8 = 100;

/// What a database holds, as far as the shapes tell commits apart: the columns of `t`, its row
/// count and the sum of its ids; `None` when there is no table `t`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Contents(Option<(Vec<String>, i64, i64)>);

fn contents(connection: &duckdb::Connection) -> duckdb::Result<Contents> {
    let columns: Vec<String> = connection
        .prepare(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 't' \
             ORDER BY ordinal_position",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    if columns.is_empty() {
        return Ok(Contents(None));
    }
    let (rows, sum) = connection.query_row(
        "SELECT count(*), coalesce(sum(id), 0)::BIGINT FROM t",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(Contents(Some((columns, rows, sum))))
}

/// How the writing session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// After its last commit.
    Committed,
    /// Inside a commit, after its entries reached the WAL and before its `WAL_FLUSH` did
    /// (`debug_checkpoint_abort = 'BEFORE_WAL_FLUSH'`, DuckDB's simulated crash).
    BeforeWalFlush(&'static str),
    /// Inside a `CHECKPOINT`, after the marker reached the WAL and before the database file's
    /// header was written (`BEFORE_HEADER`): the checkpoint failed, the WAL is still needed.
    CheckpointBeforeHeader,
    /// Inside a `CHECKPOINT`, after the database file's header was written and before the WAL
    /// was truncated (`BEFORE_TRUNCATE`): the checkpoint succeeded, the WAL is obsolete.
    CheckpointBeforeTruncate,
}

/// A WAL written by DuckDB, with its database file.
struct Shape {
    name: &'static str,
    /// The statements that committed, one transaction each, in order.
    committed: Vec<String>,
    ending: Ending,
    /// The contents after the first `k` of `committed`, for `k` in `0..=committed.len()`.
    states: Vec<Contents>,
    database: Vec<u8>,
    wal: Vec<u8>,
    /// The undamaged WAL's reading.
    reading: WalReading,
    /// Where each entry of the undamaged WAL starts, and its type.
    frames: Vec<(u64, u8)>,
}

impl Shape {
    /// The transactions DuckDB replays when the reader says `reading`: one per `WAL_FLUSH`,
    /// except the one that closes a checkpoint marker (`WriteAheadLog::WriteCheckpoint` and its
    /// `Flush`), which the reader counts in `commits` although no transaction committed.
    fn transactions(reading: &WalReading) -> usize {
        (reading.commits - u64::from(reading.has_checkpoint_marker)) as usize
    }

    /// The contents DuckDB must hold after replaying what `reading` describes; `None` when the
    /// reading counts more transactions than were written.
    fn expected(&self, reading: &WalReading) -> Option<&Contents> {
        self.states.get(Shape::transactions(reading))
    }
}

/// Writes `committed` (one transaction each) into a new database with checkpoints switched off,
/// ends the session as `ending` says, and keeps the files' bytes.
fn build(name: &'static str, committed: Vec<String>, ending: Ending) -> Shape {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let path = directory.path().join("shape.duckdb");
    {
        let connection = duckdb::Connection::open(&path).expect("a new database");
        connection
            .execute_batch(
                "PRAGMA disable_checkpoint_on_shutdown; SET checkpoint_threshold = '1TB';",
            )
            .expect("checkpoints off");
        for statement in &committed {
            connection.execute_batch(statement).expect(statement);
        }
        let (setting, statement, message) = match ending {
            Ending::Committed => ("", "", ""),
            Ending::BeforeWalFlush(statement) => (
                "BEFORE_WAL_FLUSH",
                statement,
                "Simulated crash before WAL_FLUSH write",
            ),
            Ending::CheckpointBeforeHeader => (
                "BEFORE_HEADER",
                "CHECKPOINT",
                "Checkpoint aborted before header write",
            ),
            Ending::CheckpointBeforeTruncate => (
                "BEFORE_TRUNCATE",
                "CHECKPOINT",
                "Checkpoint aborted before truncate",
            ),
        };
        if !setting.is_empty() {
            connection
                .execute_batch(&format!("SET debug_checkpoint_abort = '{setting}'"))
                .expect("a debug setting this build accepts");
            let error = connection
                .execute_batch(statement)
                .expect_err("the debug abort fires");
            assert!(error.to_string().contains(message), "{name}: {error}");
        }
    }
    assert!(
        !path.with_extension("duckdb.wal.checkpoint").exists(),
        "{name}: no checkpoint WAL"
    );
    let database = fs::read(&path).expect("the database file");
    let wal = fs::read(wal_path(&path)).expect("a WAL");
    let reading = WalReading::read(&wal).expect("a WAL the reader knows");
    let frames = frames(&wal, reading.header_bytes);
    let states = states(&committed);
    for (k, state) in states.iter().enumerate() {
        assert!(
            !states[..k].contains(state),
            "{name}: the contents after {k} transactions tell them apart"
        );
    }
    Shape {
        name,
        committed,
        ending,
        states,
        database,
        wal,
        reading,
        frames,
    }
}

/// The contents after each prefix of `committed`, from an in-memory database.
fn states(committed: &[String]) -> Vec<Contents> {
    let connection = duckdb::Connection::open_in_memory().expect("an in-memory database");
    let mut states = vec![contents(&connection).expect("contents")];
    for statement in committed {
        connection.execute_batch(statement).expect(statement);
        states.push(contents(&connection).expect("contents"));
    }
    states
}

/// The entries of an undamaged WAL, by their frames' sizes alone (not by the reader): where each
/// starts and its type (the payload's field 100, one LEB128 byte for every type DuckDB has).
fn frames(wal: &[u8], header_bytes: u64) -> Vec<(u64, u8)> {
    let mut frames = Vec::new();
    let mut offset = header_bytes as usize;
    while offset < wal.len() {
        let size = u64::from_le_bytes(wal[offset..offset + 8].try_into().expect("eight bytes"));
        let payload = &wal[offset + 16..offset + 16 + size as usize];
        assert_eq!(payload[..2], [100, 0], "an entry starts with its wal_type");
        frames.push((offset as u64, payload[2]));
        offset += 16 + size as usize;
    }
    assert_eq!(offset, wal.len(), "the frames tile the WAL");
    frames
}

fn inserts(ids: std::ops::RangeInclusive<i64>) -> impl Iterator<Item = String> {
    ids.map(|id| format!("INSERT INTO t VALUES ({id})"))
}

/// The shapes the property damages, built once per test process.
fn shapes() -> &'static [Shape] {
    static SHAPES: OnceLock<Vec<Shape>> = OnceLock::new();
    SHAPES.get_or_init(|| {
        let create = || "CREATE TABLE t (id INTEGER)".to_owned();
        vec![
            build(
                "many small commits",
                std::iter::once(create()).chain(inserts(1..=60)).collect(),
                Ending::Committed,
            ),
            build(
                "one large commit",
                vec![
                    create(),
                    "INSERT INTO t SELECT range FROM range(1, 5001)".to_owned(),
                ],
                Ending::Committed,
            ),
            build(
                "a schema change inside",
                std::iter::once(create())
                    .chain(inserts(1..=10))
                    .chain(["ALTER TABLE t ADD COLUMN tag VARCHAR DEFAULT 'old'".to_owned()])
                    .chain((11..=20).map(|id| format!("INSERT INTO t VALUES ({id}, 'new')")))
                    .collect(),
                Ending::Committed,
            ),
            build(
                "an uncommitted tail",
                std::iter::once(create()).chain(inserts(1..=20)).collect(),
                Ending::BeforeWalFlush("INSERT INTO t SELECT range FROM range(1001, 4001)"),
            ),
            build(
                "a failed checkpoint's marker",
                std::iter::once(create()).chain(inserts(1..=10)).collect(),
                Ending::CheckpointBeforeHeader,
            ),
            build(
                "row groups written to the database file",
                vec![
                    create(),
                    "INSERT INTO t SELECT range FROM range(1, 150001)".to_owned(),
                    "INSERT INTO t VALUES (1000000)".to_owned(),
                    "INSERT INTO t SELECT range FROM range(2000000, 2130000)".to_owned(),
                ],
                Ending::Committed,
            ),
        ]
    })
}

/// Writes `database` and `wal` into a fresh directory, opens them with DuckDB (read-write: it is
/// a copy) and reads the contents.
fn open_copy(database: &[u8], wal: &[u8]) -> Result<Contents, duckdb::Error> {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let path = directory.path().join("copy.duckdb");
    fs::write(&path, database).expect("the database copied");
    fs::write(wal_path(&path), wal).expect("the WAL copied");
    let connection = duckdb::Connection::open(&path)?;
    connection.execute_batch("PRAGMA disable_checkpoint_on_shutdown")?;
    contents(&connection)
}

/// The byte position in DuckDB's "Corrupt WAL file: entry at byte position N" (where the
/// entry's payload starts).
fn corrupt_entry_position(error: &str) -> Option<u64> {
    let rest = error
        .split("Corrupt WAL file: entry at byte position ")
        .nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Whether DuckDB, opening `wal` as it is, does what `reading` says: opens and replays the
/// commits before `last_commit_end` when the tail is dropped silently or clean; fails, naming
/// the damaged entry, on a checksum mismatch; fails on garbage. `None` when it does.
fn duckdb_disagrees(shape: &Shape, reading: &WalReading, wal: &[u8]) -> Option<String> {
    let opened = open_copy(&shape.database, wal);
    let expected = shape.expected(reading);
    match (reading.tail, opened) {
        (WalTail::Clean | WalTail::Uncommitted { .. } | WalTail::Torn { .. }, Ok(found)) => {
            (Some(&found) != expected)
                .then(|| format!("DuckDB opened with {found:?}, not {expected:?}"))
        }
        (WalTail::ChecksumMismatch { offset, .. }, Err(error)) => {
            let error = error.to_string();
            let error = scrub(&error);
            (corrupt_entry_position(&error) != Some(offset + ENTRY_HEADER_BYTES)).then(|| {
                format!(
                    "DuckDB failed without naming the entry at {offset} (payload at {}): {error}",
                    offset + ENTRY_HEADER_BYTES
                )
            })
        }
        (WalTail::Garbage { .. }, Err(_)) => None,
        (_, Ok(found)) => Some(format!("DuckDB opened with {found:?}")),
        (_, Err(error)) => Some(format!("DuckDB failed: {}", scrub(&error.to_string()))),
    }
}

/// The promise for damage the reader cannot judge from the WAL alone: DuckDB never opens with
/// other commits than the reader says, nor opens where the reader says it fails. DuckDB failing
/// loudly where the reader sees nothing wrong is allowed: no loss is silent then, and store
/// recovers as from any failure. `None` when the promise holds.
fn misses_a_silent_loss(shape: &Shape, reading: &WalReading, wal: &[u8]) -> Option<String> {
    let found = open_copy(&shape.database, wal).ok()?;
    let expected = shape.expected(reading);
    match reading.tail {
        WalTail::Clean | WalTail::Uncommitted { .. } | WalTail::Torn { .. } => (Some(&found)
            != expected)
            .then(|| format!("DuckDB opened with {found:?}, not {expected:?}")),
        _ => Some(format!(
            "DuckDB opened with {found:?} where the reader says it fails"
        )),
    }
}

/// Every shape's undamaged WAL reads as written: a clean tail after every commit (the DDL's
/// too), the uncommitted entries of an interrupted commit as an uncommitted tail, a checkpoint
/// marker as one more `WAL_FLUSH`; every entry's stored checksum is the reader's `checksum` of
/// its payload; and DuckDB replays the whole of it.
#[test]
fn undamaged_wals_read_as_written() -> TestResult {
    let mut remainder_paths = 0;
    for shape in shapes() {
        let (name, reading, length) = (shape.name, &shape.reading, shape.wal.len() as u64);
        assert_eq!(reading.version, 2, "{name}");
        for (start, _) in &shape.frames {
            let start = *start as usize;
            let size = u64::from_le_bytes(shape.wal[start..start + 8].try_into()?) as usize;
            let stored = u64::from_le_bytes(shape.wal[start + 8..start + 16].try_into()?);
            let payload = &shape.wal[start + 16..start + 16 + size];
            assert_eq!(checksum(payload), stored, "{name}: the entry at {start}");
            remainder_paths += usize::from(!size.is_multiple_of(8));
        }
        let flushes = shape.frames.iter().filter(|(_, t)| *t == WAL_FLUSH).count() as u64;
        let transactions = shape.committed.len() as u64;
        match shape.ending {
            Ending::Committed => {
                assert_eq!(reading.tail, WalTail::Clean, "{name}");
                assert_eq!(reading.last_commit_end, length, "{name}");
                assert_eq!(reading.commits, transactions, "{name}");
                assert_eq!(reading.entries, shape.frames.len() as u64, "{name}");
                assert!(!reading.has_checkpoint_marker, "{name}");
            }
            Ending::BeforeWalFlush(_) => {
                assert_eq!(reading.commits, transactions, "{name}");
                let committed_entries = shape
                    .frames
                    .iter()
                    .filter(|(start, _)| *start < reading.last_commit_end)
                    .count() as u64;
                assert_eq!(reading.entries, committed_entries, "{name}");
                assert_eq!(
                    reading.tail,
                    WalTail::Uncommitted {
                        entries: shape.frames.len() as u64 - committed_entries,
                        bytes: length - reading.last_commit_end,
                    },
                    "{name}"
                );
                assert!(reading.last_commit_end < length, "{name}");
            }
            Ending::CheckpointBeforeHeader | Ending::CheckpointBeforeTruncate => {
                assert_eq!(reading.tail, WalTail::Clean, "{name}");
                assert_eq!(reading.last_commit_end, length, "{name}");
                // The marker's own WAL_FLUSH counts: `commits` is one per WAL_FLUSH.
                assert_eq!(reading.commits, transactions + 1, "{name}");
                assert!(reading.has_checkpoint_marker, "{name}");
                let marker = shape.frames.len() - 2;
                assert_eq!(
                    shape.frames[marker].1, CHECKPOINT,
                    "{name}: the marker is last"
                );
            }
        }
        assert_eq!(reading.commits, flushes, "{name}");
        assert_eq!(
            open_copy(&shape.database, &shape.wal)?,
            shape.states[transactions as usize],
            "{name}: DuckDB replays every committed transaction"
        );
    }
    assert!(remainder_paths > 0, "some payload is not a multiple of 8");
    let has = |name: &str, wal_type: u8| {
        shapes()
            .iter()
            .any(|s| s.name == name && s.frames.iter().any(|(_, t)| *t == wal_type))
    };
    assert!(has("a schema change inside", ALTER_INFO));
    assert!(has(
        "row groups written to the database file",
        ROW_GROUP_DATA
    ));
    Ok(())
}

/// DuckDB writes a transaction's entries to the WAL at commit only: a large insert left open
/// when the connection closes leaves the WAL as the last commit left it (so an uncommitted tail
/// comes only from a commit interrupted between its entries and its `WAL_FLUSH`, which
/// `BEFORE_WAL_FLUSH` simulates).
#[test]
fn an_open_transaction_writes_nothing_to_the_wal() -> TestResult {
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("open.duckdb");
    let connection = duckdb::Connection::open(&path)?;
    connection.execute_batch(
        "PRAGMA disable_checkpoint_on_shutdown; SET checkpoint_threshold = '1TB';
         CREATE TABLE t (id INTEGER);",
    )?;
    let committed = fs::read(wal_path(&path))?;
    connection.execute_batch("BEGIN; INSERT INTO t SELECT range FROM range(1, 300001);")?;
    assert_eq!(fs::read(wal_path(&path))?, committed);
    drop(connection);
    assert_eq!(fs::read(wal_path(&path))?, committed);
    Ok(())
}

/// Seeded damage the property applies to a shape's WAL.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// The WAL cut to `at` bytes.
    Cut { at: u64 },
    /// The byte at `offset` xor'ed with `mask`.
    Flip { offset: u64, mask: u8 },
}

impl Damage {
    /// Chooses damage for `shape` from raw seeded numbers: a cut anywhere, a cut at an entry's
    /// start, a cut within 24 bytes after one, a cut inside the header, a flip anywhere after
    /// the header, or a flip in an entry's frame.
    fn choose(shape: &Shape, kind: u8, a: u64, b: u64, mask: u8) -> Damage {
        let length = shape.wal.len() as u64;
        let header = shape.reading.header_bytes;
        let entry = shape.frames[(a % shape.frames.len() as u64) as usize].0;
        match kind {
            0 => Damage::Cut {
                at: a % (length + 1),
            },
            1 => Damage::Cut { at: entry },
            2 => Damage::Cut {
                at: (entry + 1 + b % 24).min(length),
            },
            3 => Damage::Cut { at: a % header },
            4 => Damage::Flip {
                offset: header + a % (length - header),
                mask,
            },
            _ => Damage::Flip {
                offset: entry + b % ENTRY_HEADER_BYTES,
                mask,
            },
        }
    }

    fn offset(self) -> u64 {
        match self {
            Damage::Cut { at } => at,
            Damage::Flip { offset, .. } => offset,
        }
    }

    fn apply(self, wal: &[u8]) -> Vec<u8> {
        match self {
            Damage::Cut { at } => wal[..at as usize].to_vec(),
            Damage::Flip { offset, mask } => {
                let mut damaged = wal.to_vec();
                damaged[offset as usize] ^= mask;
                damaged
            }
        }
    }
}

fn tail_kind(reading: &Result<WalReading, UnknownWal>) -> &'static str {
    match reading {
        Err(_) => "unknown version",
        Ok(reading) => match reading.tail {
            WalTail::Clean => "clean",
            WalTail::Uncommitted { .. } => "uncommitted",
            // A cut inside the header: DuckDB drops the whole WAL, silently.
            WalTail::Torn { offset: 0, .. } => "torn header",
            WalTail::Torn { .. } => "torn",
            WalTail::ChecksumMismatch { .. } => "checksum mismatch",
            WalTail::Garbage { .. } => "garbage",
        },
    }
}

/// For 240 seeded cuts and byte flips over the shapes (flips after the header; the header is
/// `header_damage_reads_as_duckdb_replays`'s): the reader never places the last commit's end or
/// the damage after the damaged byte; DuckDB, given the WAL cut at `last_commit_end`, replays
/// exactly the reader's commits; and DuckDB, given the damaged WAL as it is, replays exactly
/// those commits when the reader says the tail is clean, uncommitted or torn (the silent loss),
/// and fails naming the same entry when the reader says its checksum does not match. A cut
/// inside the header reads as a torn WAL at byte 0, and DuckDB opens it replaying nothing,
/// silently. No case reads as an unknown version.
#[test]
fn seeded_damage_reads_as_duckdb_replays() {
    let shapes = shapes();
    let config = Config {
        cases: 240,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[18; 32]));
    let strategy = (
        0..shapes.len(),
        0u8..6,
        any::<u64>(),
        any::<u64>(),
        1u8..=255,
    );
    let seen = RefCell::new(BTreeMap::<&'static str, u32>::new());
    let result = runner.run(&strategy, |(index, kind, a, b, mask)| {
        let shape = &shapes[index];
        let damage = Damage::choose(shape, kind, a, b, mask);
        let wal = damage.apply(&shape.wal);
        let reading = WalReading::read(&wal);
        *seen.borrow_mut().entry(tail_kind(&reading)).or_default() += 1;
        let context = format!("{}: {damage:?}: {reading:?}", shape.name);
        let reading = match reading {
            Err(unknown) => {
                return Err(TestCaseError::fail(format!(
                    "{context}: damage made an unknown version: {unknown}"
                )));
            }
            Ok(reading) => reading,
        };
        prop_assert!(reading.last_commit_end <= damage.offset(), "{}", context);
        prop_assert!(reading.commits <= shape.reading.commits, "{}", context);
        if let Some(damage_offset) = reading.tail.damage_offset() {
            prop_assert!(damage_offset <= damage.offset(), "{}", context);
            prop_assert!(reading.last_commit_end <= damage_offset, "{}", context);
        }
        if let Damage::Flip { .. } = damage {
            prop_assert!(reading.tail.damage_offset().is_some(), "{}", context);
        }

        // (i) Cut at the reader's last commit: a clean WAL, which DuckDB replays whole.
        let salvaged = &wal[..reading.last_commit_end as usize];
        let again = WalReading::read(salvaged).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(again.tail, WalTail::Clean, "{}", context);
        prop_assert_eq!(again.commits, reading.commits, "{}", context);
        let opened = open_copy(&shape.database, salvaged)
            .map_err(|e| TestCaseError::fail(format!("{context}: cut at its last commit: {e}")))?;
        prop_assert_eq!(Some(&opened), shape.expected(&reading), "{}: cut", context);

        // (ii) As it is: DuckDB does what the reader says.
        if let Some(disagreement) = duckdb_disagrees(shape, &reading, &wal) {
            return Err(TestCaseError::fail(format!(
                "{context}: as it is: {disagreement}"
            )));
        }
        Ok(())
    });
    let seen = seen.into_inner();
    eprintln!("seeded damage, readings by tail: {seen:?}");
    if let Err(error) = result {
        panic!("{error}");
    }
    for kind in [
        "clean",
        "uncommitted",
        "torn",
        "checksum mismatch",
        "torn header",
    ] {
        assert!(seen.contains_key(kind), "no case read as {kind}: {seen:?}");
    }
}

/// Bytes that cannot be an entry after a WAL's last commit (64 bytes of 0xFF: a size that wraps
/// around) read as garbage there, keeping every commit before them; DuckDB fails the open.
#[test]
fn garbage_after_the_wal_fails_the_open_where_the_reader_says() {
    for shape in shapes() {
        let mut wal = shape.wal.clone();
        wal.extend(WAL_GARBAGE);
        let reading = WalReading::read(&wal).expect("a readable header");
        let (commits, last_commit_end) = (shape.reading.commits, shape.reading.last_commit_end);
        assert_eq!(
            (reading.commits, reading.last_commit_end),
            (commits, last_commit_end),
            "{}",
            shape.name
        );
        assert_eq!(
            reading.tail,
            WalTail::Garbage {
                offset: shape.wal.len() as u64
            },
            "{}",
            shape.name
        );
        assert_eq!(
            duckdb_disagrees(shape, &reading, &wal),
            None,
            "{}",
            shape.name
        );
    }
}

/// A small WAL: `CREATE TABLE t`, then two single-row inserts.
fn small() -> Shape {
    build(
        "three commits",
        std::iter::once("CREATE TABLE t (id INTEGER)".to_owned())
            .chain(inserts(1..=2))
            .collect(),
        Ending::Committed,
    )
}

/// The reader's promise about a WAL whose header is damaged (each header byte's low bit
/// flipped, one at a time), which it cannot fully judge from the WAL alone (the identifier and
/// the checkpoint iteration are checked against the database file): it never misses a silent
/// loss. Where DuckDB opens, it replays exactly the reader's commits (a header out of DuckDB's
/// order reads as a torn WAL at byte 0, all of it dropped, as DuckDB drops it); where the reader
/// says clean and DuckDB disagrees, DuckDB fails loudly ("WAL does not match database file.",
/// "database identifier in header out of range"), and store recovers as from any failure.
#[test]
fn header_damage_reads_as_duckdb_replays() {
    let shape = small();
    let mut disagreements = Vec::new();
    for offset in 0..shape.reading.header_bytes {
        let damage = Damage::Flip { offset, mask: 0x01 };
        let wal = damage.apply(&shape.wal);
        let Ok(reading) = WalReading::read(&wal) else {
            continue;
        };
        if let Some(disagreement) = misses_a_silent_loss(&shape, &reading, &wal) {
            disagreements.push(format!(
                "header byte {offset} (0x{:02x} -> 0x{:02x}) reads {} commits, {:?}; {disagreement}",
                shape.wal[offset as usize], wal[offset as usize], reading.commits, reading.tail
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} header bytes (header {:02x?}):\n{}",
        disagreements.len(),
        shape.reading.header_bytes,
        &shape.wal[..shape.reading.header_bytes as usize],
        disagreements.join("\n")
    );
}

/// An entry framed as `wal` frames it: its size, its checksum, its payload.
fn entry(payload: &[u8]) -> Vec<u8> {
    let mut framed = (payload.len() as u64).to_le_bytes().to_vec();
    framed.extend(checksum(payload).to_le_bytes());
    framed.extend(payload);
    framed
}

/// The reader's promise about entries whose checksum is valid but whose payload DuckDB cannot
/// replay, appended after a WAL's last commit: DuckDB does what the reading says.
///
/// FAILS with the bundled DuckDB, both ways. A payload that is not an object (its first field is
/// not 100, or it does not end with the terminator) reads as `Garbage` (DuckDB fails), but
/// DuckDB's deserializer throws a serialization error, which its replay takes for a torn WAL: it
/// opens, dropping the tail silently. An object of a type DuckDB does not have (0, 127, 300)
/// reads as an uncommitted entry (or, followed by a `WAL_FLUSH`, as one more commit), but
/// DuckDB's scan throws "Invalid WAL entry type!", an internal error: it fails the open.
#[test]
fn checksummed_entries_read_as_duckdb_replays() {
    let shape = small();
    let flush = entry(&[100, 0, WAL_FLUSH, 0xFF, 0xFF]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "a payload whose first field is not 100",
            entry(&[1, 2, 3, 4]),
        ),
        (
            "a USE_TABLE payload with no terminator",
            entry(&[100, 0, 25, 0xAA, 0xBB]),
        ),
        ("an object of type 0", entry(&[100, 0, 0, 0xFF, 0xFF])),
        ("an object of type 127", entry(&[100, 0, 127, 0xFF, 0xFF])),
        (
            "an object of type 300",
            entry(&[100, 0, 0xAC, 0x02, 0xFF, 0xFF]),
        ),
        (
            "an object of type 127, then a WAL_FLUSH",
            [entry(&[100, 0, 127, 0xFF, 0xFF]), flush.clone()].concat(),
        ),
    ];
    let mut disagreements = Vec::new();
    for (name, appended) in cases {
        let wal = [shape.wal.as_slice(), &appended].concat();
        let reading = WalReading::read(&wal).expect("a readable header");
        if let Some(disagreement) = duckdb_disagrees(&shape, &reading, &wal) {
            disagreements.push(format!(
                "{name} at {}: reads {} commits, {:?}; {disagreement}",
                shape.wal.len(),
                reading.commits,
                reading.tail
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}

/// The reader's promise about a WAL whose checkpoint reached the database file (its header
/// written, the WAL not yet truncated: `BEFORE_TRUNCATE`), cut at each entry's start and 8 bytes
/// into each entry: whatever DuckDB opens holds every transaction (they are in the file), and no
/// loss is silent. For every cut before the checkpoint marker's end the reader reads a clean or
/// torn WAL, while DuckDB fails the open loudly ("the WAL checkpoint iteration does not match the
/// database file ... File checkpoint iteration: 1, WAL checkpoint iteration: 0": the header names
/// iteration N, the file N + 1, which DuckDB accepts only with a whole marker after it). A reader
/// of the WAL alone cannot tell; the salvage's one replay then fails and the ladder goes on
/// (bisection, then discard: the file already holds everything), so nothing is lost.
#[test]
fn a_checkpointed_but_untruncated_wal_reads_as_duckdb_replays() {
    let shape = build(
        "a checkpoint that reached the database file",
        std::iter::once("CREATE TABLE t (id INTEGER)".to_owned())
            .chain(inserts(1..=5))
            .collect(),
        Ending::CheckpointBeforeTruncate,
    );
    let everything = shape.states.last().expect("states");
    let mut cuts: Vec<u64> = std::iter::once(shape.reading.header_bytes)
        .chain(
            shape
                .frames
                .iter()
                .flat_map(|(start, _)| [*start, start + 8]),
        )
        .chain([shape.wal.len() as u64])
        .collect();
    cuts.dedup();
    let mut opened_at = Vec::new();
    let mut errors = std::collections::BTreeSet::new();
    for at in cuts {
        let wal = &shape.wal[..at as usize];
        let reading = WalReading::read(wal).expect("a readable header");
        // Whatever DuckDB opens, it holds every transaction: they are in the database file.
        let opened = open_copy(&shape.database, wal);
        if let Ok(found) = &opened {
            assert_eq!(found, everything, "cut at {at}");
        }
        match opened {
            // Where DuckDB fails, it fails loudly; the reader's tail is then no silent loss.
            Err(error) => {
                errors.insert(scrub(&error.to_string()));
            }
            Ok(_) => opened_at.push((at, reading.tail)),
        }
    }
    // The whole WAL, marker and all, opens: DuckDB finds the checkpoint done.
    assert!(
        opened_at
            .iter()
            .any(|(at, _)| *at == shape.wal.len() as u64),
        "the whole WAL did not open: {errors:#?}"
    );
}

/// `error` without the temporary directory of the copy DuckDB opened.
fn scrub(error: &str) -> String {
    const WAL: &str = "copy.duckdb.wal\"";
    match (error.find("\"/"), error.find(WAL)) {
        (Some(start), Some(end)) if start < end => {
            format!("{}\"{WAL}{}", &error[..start], &error[end + WAL.len()..])
        }
        _ => error.to_owned(),
    }
}

/// Where the WAL fixtures are checked in.
fn fixtures_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wal")
}

/// Makes the fixtures, with the database they belong to (not checked in: the fixture tests
/// read only the WALs): `three_commits.wal` (`small`'s WAL), `three_commits_torn.wal` (cut 3
/// bytes short, inside its last `WAL_FLUSH`) and `three_commits_flipped.wal` (the last byte of
/// the last insert's entry flipped).
fn make_fixtures() -> (Shape, Vec<(&'static str, Vec<u8>)>) {
    let shape = small();
    let last_flush = shape.frames.last().expect("entries").0 as usize;
    let torn = shape.wal[..shape.wal.len() - 3].to_vec();
    let mut flipped = shape.wal.clone();
    flipped[last_flush - 1] ^= 0xFF;
    let fixtures = vec![
        ("three_commits", shape.wal.clone()),
        ("three_commits_torn", torn),
        ("three_commits_flipped", flipped),
    ];
    (shape, fixtures)
}

/// A reading with its offsets counted from the header's end: the header holds the database's
/// random identifier, whose LEB128 length varies from one database to the next.
fn relative(reading: &WalReading) -> WalReading {
    let header = reading.header_bytes;
    let tail = match reading.tail {
        WalTail::Torn {
            offset,
            entries,
            bytes,
        } => WalTail::Torn {
            offset: offset - header,
            entries,
            bytes,
        },
        WalTail::ChecksumMismatch { offset, entries } => WalTail::ChecksumMismatch {
            offset: offset - header,
            entries,
        },
        WalTail::Garbage { offset } => WalTail::Garbage {
            offset: offset - header,
        },
        tail @ (WalTail::Clean | WalTail::Uncommitted { .. }) => tail,
    };
    WalReading {
        header_bytes: 0,
        last_commit_end: reading.last_commit_end - header,
        tail,
        ..reading.clone()
    }
}

/// The checked-in fixtures read as recorded: three commits and a clean tail; the same cut inside
/// its last entry, two commits and a torn third; the same with its last insert's entry flipped,
/// two commits and a checksum mismatch.
#[test]
fn checked_in_fixtures_read_as_recorded() -> TestResult {
    let read = |name: &str| -> Result<WalReading, Box<dyn std::error::Error>> {
        Ok(WalReading::read(&fs::read(
            fixtures_directory().join(format!("{name}.wal")),
        )?)?)
    };
    // Entries (start, type): 38 CREATE_TABLE, 152 WAL_FLUSH, 173 USE_TABLE, 208 INSERT_TUPLE,
    // 259 WAL_FLUSH, 280 USE_TABLE, 315 INSERT_TUPLE, 366 WAL_FLUSH; 387 bytes in all.
    let whole = WalReading {
        version: 2,
        header_bytes: 38,
        last_commit_end: 387,
        commits: 3,
        entries: 8,
        has_checkpoint_marker: false,
        tail: WalTail::Clean,
    };
    assert_eq!(read("three_commits")?, whole);
    let two_commits = WalReading {
        last_commit_end: 280,
        commits: 2,
        entries: 5,
        ..whole
    };
    assert_eq!(
        read("three_commits_torn")?,
        WalReading {
            tail: WalTail::Torn {
                offset: 366,
                entries: 2,
                bytes: 104,
            },
            ..two_commits.clone()
        }
    );
    assert_eq!(
        read("three_commits_flipped")?,
        WalReading {
            tail: WalTail::ChecksumMismatch {
                offset: 315,
                entries: 1,
            },
            ..two_commits
        }
    );
    Ok(())
}

/// Regenerating the fixtures with the bundled DuckDB gives WALs that read as the checked-in ones
/// (offsets counted from the header's end), and DuckDB replays each as its reading says. With
/// `STORE_WRITE_WAL_FIXTURES=1` it writes the regenerated WALs over the checked-in ones.
#[test]
fn fixtures_regenerate_to_the_same_readings() -> TestResult {
    let (shape, fixtures) = make_fixtures();
    for (name, regenerated) in &fixtures {
        let reading = WalReading::read(regenerated)?;
        assert_eq!(
            duckdb_disagrees(&shape, &reading, regenerated),
            None,
            "{name}"
        );
        if std::env::var_os("STORE_WRITE_WAL_FIXTURES").is_some() {
            fs::create_dir_all(fixtures_directory())?;
            fs::write(
                fixtures_directory().join(format!("{name}.wal")),
                regenerated,
            )?;
            continue;
        }
        let checked_in = fs::read(fixtures_directory().join(format!("{name}.wal")))?;
        assert_eq!(
            relative(&reading),
            relative(&WalReading::read(&checked_in)?),
            "{name}"
        );
    }
    Ok(())
}
