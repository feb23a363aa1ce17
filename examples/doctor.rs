//! `cargo run --example doctor --features sqlite,duckdb -- PATH`
//!
//! Tells a person, for a database file or a directory holding some, what store sees there and
//! what an open would do: the engine, the filesystem and whether SQLite's WAL can work on it, the
//! files beside the database, and the result of a read-only open through store. It only reads:
//! nothing is created, converted, recovered or moved.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use store::files::{existing_sidecars, moved_aside_groups, sibling};
use store::{
    FileContent, Filesystem, JournalLadder, JournalPolicy, RecoveryLadder, RecoveryPolicy,
};

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: cargo run --example doctor --features sqlite,duckdb -- PATH");
        return ExitCode::from(2);
    };
    if path.is_dir() {
        let mut databases: Vec<PathBuf> = match std::fs::read_dir(&path) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|candidate| {
                    FileContent::inspect(candidate).is_ok_and(|content| content.engine().is_some())
                })
                .collect(),
            Err(error) => {
                eprintln!("cannot read {}: {error}", path.display());
                return ExitCode::FAILURE;
            }
        };
        databases.sort();
        if databases.is_empty() {
            println!(
                "{}: no SQLite or DuckDB database in this directory",
                path.display()
            );
            describe_filesystem(&path);
        }
        for database in databases {
            diagnose(&database);
            println!();
        }
    } else {
        diagnose(&path);
    }
    ExitCode::SUCCESS
}

fn describe_filesystem(path: &Path) -> store::FsKind {
    match Filesystem::detect(path) {
        Ok(filesystem) => {
            let mount = filesystem
                .mount_point
                .as_ref()
                .map(|point| format!(", mounted at {}", point.display()))
                .unwrap_or_default();
            println!(
                "  filesystem: {} ({}{mount})",
                filesystem.kind, filesystem.type_name
            );
            if filesystem.kind.may_lack_shared_memory() {
                println!(
                    "  note: SQLite's WAL needs shared memory and byte-range locks that {} mounts often lack",
                    filesystem.kind
                );
            }
            filesystem.kind
        }
        Err(error) => {
            println!("  filesystem: unknown ({error})");
            store::FsKind::Unknown
        }
    }
}

fn list_files(path: &Path, suffixes: &[&str]) {
    for file in existing_sidecars(path, suffixes).unwrap_or_default() {
        let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        println!("  beside it: {} ({bytes} bytes)", file.display());
    }
}

fn diagnose(path: &Path) {
    println!("{}", path.display());
    let filesystem = describe_filesystem(path);
    match FileContent::inspect(path) {
        Ok(FileContent::Missing) => {
            let ladder = JournalLadder::default().ladder(filesystem);
            println!("  nothing here yet: a SQLite open would create it and try {ladder:?}");
        }
        Ok(FileContent::Sqlite { wal }) => diagnose_sqlite(path, wal, filesystem),
        Ok(FileContent::Duckdb) => diagnose_duckdb(path),
        Ok(other) => println!("  not a database: {other:?}"),
        Err(error) => println!("  cannot read it: {error}"),
    }
}

fn diagnose_sqlite(path: &Path, wal: bool, filesystem: store::FsKind) {
    println!(
        "  SQLite database in {} format",
        if wal { "WAL" } else { "rollback-journal" }
    );
    list_files(path, store::sqlite::SIDECAR_SUFFIXES);
    let ladder = JournalLadder::default().ladder(filesystem);
    println!("  the default journal policy would try: {ladder:?}");
    if wal && filesystem.may_lack_shared_memory() {
        println!("  an existing WAL database here is opened with exclusive locking, not converted");
    }
    match store::sqlite::SqliteOptions::new(path)
        .read_only(true)
        .open()
    {
        Ok((_, report)) => println!("  read-only open: {report}"),
        Err(error) => {
            println!(
                "  read-only open failed ({}): {}",
                error.class(),
                error.cause_chain()
            );
            println!("  {}", store::unavailable_message("Database not available"));
        }
    }
}

fn diagnose_duckdb(path: &Path) {
    println!("  DuckDB database");
    list_files(path, store::duckdb::SIDECAR_SUFFIXES);
    let snapshot = sibling(path, store::duckdb::SNAPSHOT_SUFFIX);
    if snapshot.exists() {
        let version = duckdb::Connection::open_with_flags(
            &snapshot,
            duckdb::Config::default()
                .access_mode(duckdb::AccessMode::ReadOnly)
                .expect("a valid setting"),
        )
        .and_then(|connection| store::duckdb::schema_version(&connection));
        match version {
            Ok(version) => println!("  pre-migration snapshot at schema version {version}"),
            Err(error) => println!("  pre-migration snapshot unreadable: {error}"),
        }
    }
    for reason in ["broken", "discarded-wal", "salvaged-wal"] {
        let groups = moved_aside_groups(path, reason).unwrap_or_default();
        if !groups.is_empty() {
            println!("  moved aside as `{reason}`: {} time(s)", groups.len());
        }
    }
    match store::duckdb::DuckDbOptions::new(path)
        .read_only(true)
        .open()
    {
        Ok((_, report)) => println!("  read-only open: {report}"),
        Err(error) => {
            let class = error.class();
            println!("  read-only open failed ({class}): {}", error.cause_chain());
            let policy = RecoveryLadder::default();
            if class.may_be_recovered() && policy.recovers_from(class) {
                println!(
                    "  a read-write open would recover, trying {:?}",
                    policy.steps()
                );
            } else if class == store::FailureClass::Locked {
                println!("  another process holds it; store never recovers from a lock");
            }
        }
    }
}
