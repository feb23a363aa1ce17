//! Ownership by one client, through both engines' opens: on a filesystem another machine can
//! reach (here set by the options: the real shares are the matrix's share cells), the open claims
//! the database for this client before the engine opens it, the last connection's close frees it,
//! and an open that finds it owned by another machine is refused at once, changing no file.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use store::duckdb::DuckDbOptions;
use store::ownership::{Claim, Device, OwnerRecord, OwnershipError, RECORD_FILE, RECORD_SUFFIX};
use store::sqlite::SqliteOptions;
use store::{FailureClass, FsKind, OpenReport};
use store_testkit::DirectorySnapshot;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The record's directory beside `database`.
fn record_directory(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(RECORD_SUFFIX);
    PathBuf::from(name)
}

/// Opens `database` as on an NFS mount, through `engine`'s store open, and returns the report and
/// something that holds the connection.
fn open_on_a_share(
    engine: store::Engine,
    database: &Path,
) -> Result<(Box<dyn std::any::Any>, OpenReport), (FailureClass, String)> {
    match engine {
        store::Engine::Sqlite => SqliteOptions::new(database)
            .filesystem(FsKind::Nfs)
            .open()
            .map(|(connection, report)| (Box::new(connection) as Box<dyn std::any::Any>, report))
            .map_err(|error| (error.class(), error.cause_chain())),
        _ => DuckDbOptions::new(database)
            .filesystem(FsKind::Nfs)
            .open()
            .map(|(connection, report)| (Box::new(connection) as Box<dyn std::any::Any>, report))
            .map_err(|error| (error.class(), error.cause_chain())),
    }
}

fn file_name(engine: store::Engine) -> &'static str {
    match engine {
        store::Engine::Sqlite => "owned.db",
        _ => "owned.duckdb",
    }
}

/// Promise: on a filesystem another machine can reach, the open claims the database for this
/// client and says so; the claim holds while a connection lives, and the last close removes it,
/// so that the next machine may open at once. On a local disk nothing is claimed.
#[test]
fn an_open_on_a_share_owns_the_database_until_its_last_connection_closes() -> TestResult {
    for engine in [store::Engine::Sqlite, store::Engine::Duckdb] {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join(file_name(engine));
        let record = record_directory(&database);
        let (first, report) = open_on_a_share(engine, &database).map_err(|(_, words)| words)?;
        assert_eq!(report.ownership, Some(Claim::Created), "{engine}: {report}");
        assert!(
            report.to_string().contains("owned by this client"),
            "{report}"
        );
        assert!(
            record.join(RECORD_FILE).is_file(),
            "{engine}: the record stands"
        );
        // A second open in this process shares the claim.
        let (second, again) = open_on_a_share(engine, &database).map_err(|(_, words)| words)?;
        drop(first);
        assert!(
            record.join(RECORD_FILE).is_file(),
            "{engine}: still held by the second open ({again})"
        );
        drop(second);
        assert!(!record.exists(), "{engine}: the last close freed it");

        let local = directory
            .path()
            .join(format!("local-{}", file_name(engine)));
        let (opened, report) = match engine {
            store::Engine::Sqlite => {
                SqliteOptions::new(&local)
                    .open()
                    .map(|(connection, report)| {
                        (Box::new(connection) as Box<dyn std::any::Any>, report)
                    })?
            }
            _ => DuckDbOptions::new(&local)
                .open()
                .map(|(connection, report)| {
                    (Box::new(connection) as Box<dyn std::any::Any>, report)
                })?,
        };
        assert_eq!(
            report.ownership, None,
            "{engine}: nothing claimed on a local disk"
        );
        assert!(!record_directory(&local).exists());
        drop(opened);
    }
    Ok(())
}

/// Promise: a database another machine owns is refused at once with a typed error naming the
/// owner and the remedy, classed `Locked`, and no file changes (the record, the database and
/// its directory stay byte for byte).
#[test]
fn a_database_another_machine_owns_is_refused_at_once_and_nothing_changes() -> TestResult {
    for engine in [store::Engine::Sqlite, store::Engine::Duckdb] {
        let directory = tempfile::tempdir()?;
        let database = directory.path().join(file_name(engine));
        // The database exists, made here; then another machine owns it.
        drop(open_on_a_share(engine, &database).map_err(|(_, words)| words)?);
        let record = record_directory(&database);
        std::fs::create_dir(&record)?;
        let other = OwnerRecord {
            host: "machine-b".into(),
            boot_id: "00000000-0000-4000-8000-00000000000b".into(),
            device: Device {
                major: 0,
                minor: 99,
            },
            pid: 1,
            start_ticks: 42,
            since: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_796_551_200),
            record_inode: 7,
        };
        std::fs::write(record.join(RECORD_FILE), other.render())?;
        let before = DirectorySnapshot::take(directory.path())?;
        let refused = open_on_a_share(engine, &database).err().ok_or("opened")?;
        assert_eq!(refused.0, FailureClass::Locked, "{engine}: {}", refused.1);
        assert!(
            refused.1.contains("machine-b") && refused.1.contains("store-doctor"),
            "{engine}: names the owner and the remedy: {}",
            refused.1
        );
        let after = DirectorySnapshot::take(directory.path())?;
        assert!(
            before.diff(&after).is_empty(),
            "{engine}: {:?}",
            before.diff(&after)
        );
        // The typed error, for code: the owner's record as it stands.
        if engine == store::Engine::Sqlite {
            let error = SqliteOptions::new(&database)
                .filesystem(FsKind::Nfs)
                .open()
                .err()
                .ok_or("opened")?;
            let store::sqlite::OpenError::Ownership {
                source: OwnershipError::OwnedElsewhere { owner, .. },
                ..
            } = error
            else {
                return Err(format!("not OwnedElsewhere: {error:?}").into());
            };
            assert_eq!(owner.host, "machine-b");
        }
    }
    Ok(())
}
