//! exploration
use std::path::Path;
use store_duckdb::wal::{WalReading, WalTail};

fn wal_of(p: &Path) -> std::path::PathBuf { p.with_extension("duckdb.wal") }

fn observe(path: &Path) -> Result<String, duckdb::Error> {
    let c = duckdb::Connection::open(path)?;
    c.execute_batch("PRAGMA disable_checkpoint_on_shutdown")?;
    let cols: Vec<String> = c.prepare("SELECT column_name FROM information_schema.columns WHERE table_name = 't' ORDER BY ordinal_position")?
        .query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    if cols.is_empty() { return Ok("absent".into()); }
    let (n, s): (i64, i64) = c.query_row("SELECT count(*), coalesce(sum(id), 0)::BIGINT FROM t", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(format!("{cols:?} {n} {s}"))
}

fn try_open(db: &[u8], wal: &[u8]) -> String {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("c.duckdb");
    std::fs::write(&p, db).unwrap();
    std::fs::write(wal_of(&p), wal).unwrap();
    match observe(&p) { Ok(s) => s, Err(e) => format!("ERR {e}") }
}

fn build(name: &str, sql_before: &str, abort: Option<(&str, &str)>) -> (Vec<u8>, Vec<u8>) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s.duckdb");
    {
        let c = duckdb::Connection::open(&p).unwrap();
        c.execute_batch("PRAGMA disable_checkpoint_on_shutdown; SET checkpoint_threshold = '1TB';").unwrap();
        c.execute_batch(sql_before).unwrap();
        if let Some((setting, sql)) = abort {
            c.execute_batch(&format!("SET debug_checkpoint_abort = '{setting}'")).unwrap();
            let r = c.execute_batch(sql);
            eprintln!("{name}: abort result {r:?}");
        }
    }
    let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    eprintln!("{name}: files {names:?}");
    let db = std::fs::read(&p).unwrap();
    let wal = std::fs::read(wal_of(&p)).unwrap_or_default();
    eprintln!("{name}: db {} wal {} reading {:?}", db.len(), wal.len(), WalReading::read(&wal));
    (db, wal)
}

#[test]
fn explore() {
    let mut small = String::from("CREATE TABLE t (id INTEGER);");
    for i in 1..=5 { small += &format!("INSERT INTO t VALUES ({i});"); }
    let (db, wal) = build("small", &small, None);
    eprintln!("small full: {}", try_open(&db, &wal));
    let r = WalReading::read(&wal).unwrap();
    eprintln!("header bytes {} : {:02x?}", r.header_bytes, &wal[..r.header_bytes as usize]);
    for i in 0..r.header_bytes as usize {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut w = wal.clone(); w[i] ^= mask;
            eprintln!("flip {i} ^{mask:02x}: reader {:?} duck {}", WalReading::read(&w).map(|r| (r.commits, r.tail)), try_open(&db, &w));
        }
    }
    for cut in 0..=r.header_bytes as usize {
        eprintln!("cut {cut}: reader {:?} duck {}", WalReading::read(&wal[..cut]).map(|r| (r.commits, r.tail)), try_open(&db, &wal[..cut]));
    }
    // uncommitted
    let (db, wal) = build("d", &small, Some(("BEFORE_WAL_FLUSH", "INSERT INTO t SELECT range FROM range(1001, 4001)")));
    eprintln!("d full: {}", try_open(&db, &wal));
    let (db, wal) = build("e-header", &small, Some(("BEFORE_HEADER", "CHECKPOINT")));
    eprintln!("e-header full: {}", try_open(&db, &wal));
    let r = WalReading::read(&wal).unwrap();
    for cut in [r.last_commit_end - 1, r.last_commit_end - 30, r.last_commit_end - 60] {
        eprintln!("e-header cut {cut}: reader {:?} duck {}", WalReading::read(&wal[..cut as usize]).map(|r| (r.commits, r.tail)), try_open(&db, &wal[..cut as usize]));
    }
    let (db, wal) = build("e-trunc", &small, Some(("BEFORE_TRUNCATE", "CHECKPOINT")));
    eprintln!("e-trunc full: {}", try_open(&db, &wal));
    let r = WalReading::read(&wal).unwrap();
    for cut in [r.last_commit_end - 1, r.last_commit_end - 30, r.last_commit_end - 60, r.header_bytes] {
        eprintln!("e-trunc cut {cut}: reader {:?} duck {}", WalReading::read(&wal[..cut as usize]).map(|r| (r.commits, r.tail)), try_open(&db, &wal[..cut as usize]));
    }
    let (_db, wal) = build("big", "CREATE TABLE t (id INTEGER); INSERT INTO t SELECT range FROM range(1, 5001);", None);
    let _ = wal;
    let (_db, _wal) = build("huge", "CREATE TABLE t (id INTEGER); INSERT INTO t SELECT range FROM range(1, 300001);", None);
    let (_db, _wal) = build("uncommitted-plain", "CREATE TABLE t (id INTEGER); BEGIN; INSERT INTO t SELECT range FROM range(1, 300001);", None);
}
