//! `store-doctor --release-ownership PATH [--owner-machine-is-down]` and the ownership record in a
//! checkup, through the real binary: what it releases, what it refuses, and that a refusal
//! changes nothing.

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, UNIX_EPOCH};

use store_core::ownership::{
    Device, MACHINE_DOWN_FLAG, OwnerRecord, Ownership, RELEASE_COMMAND, record_file,
};
use store_doctor::{EXIT_OWNER_ALIVE, EXIT_OWNER_ON_ANOTHER_MACHINE};

use crate::{TestResult, sqlite_database_with_pages};

/// `--release-ownership`, from store-core's constant that the errors print.
fn release_flag() -> &'static str {
    RELEASE_COMMAND.rsplit(' ').next().unwrap()
}

fn store_doctor(arguments: &[&OsStr]) -> std::io::Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_store-doctor"))
        .args(arguments)
        .output()
}

fn release(path: &Path, machine_down: bool, json: bool) -> std::io::Result<Output> {
    let mut arguments = vec![OsStr::new(release_flag()), path.as_os_str()];
    if machine_down {
        arguments.push(OsStr::new(MACHINE_DOWN_FLAG));
    }
    if json {
        arguments.push(OsStr::new("--json"));
    }
    store_doctor(&arguments)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn said(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}stderr:\n{}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    )
}

fn this_boot_id() -> std::io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim_end()
        .to_owned())
}

/// Writes a whole record at `database`'s record name, as a claim of `boot_id` by process `pid`
/// would have; returns its bytes.
fn write_record(database: &Path, boot_id: &str, pid: u32) -> std::io::Result<String> {
    let record = record_file(database);
    std::fs::create_dir(record.parent().unwrap())?;
    std::fs::write(&record, b"")?;
    let directory = std::fs::metadata(database.parent().unwrap())?;
    let dev = directory.dev();
    let owner = OwnerRecord {
        host: "node-a".to_owned(),
        boot_id: boot_id.to_owned(),
        device: Device {
            major: (((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000)) as u32,
            minor: ((dev & 0xff) | ((dev >> 12) & 0xffff_ff00)) as u32,
        },
        pid,
        start_ticks: 1,
        since: UNIX_EPOCH + Duration::from_secs(1_796_551_200),
        record_inode: std::fs::metadata(&record)?.ino(),
    };
    let rendered = owner.render();
    std::fs::write(&record, &rendered)?;
    Ok(rendered)
}

/// A PID no process has: above the kernel's largest (`pid_max` is at most 2^22).
const NO_SUCH_PID: u32 = u32::MAX / 2;

/// Another machine's boot id: not this one's.
const OTHER_BOOT_ID: &str = "00000000-0000-4000-8000-000000000001";

/// Promise: a record of this machine whose process is gone (no such PID, no lock on the record)
/// is released without any assertion: the record and its directory are removed, exit 0, and the
/// output says what the record said (its host and PID) and that it was removed; `--json` says
/// `removed` with the owner.
#[test]
fn a_dead_owner_of_this_machine_is_released() -> TestResult {
    let home = tempfile::tempdir()?;
    let path = home.path().join("state.db");
    sqlite_database_with_pages(&path)?;
    write_record(&path, &this_boot_id()?, NO_SUCH_PID)?;

    let output = release(&path, false, false)?;
    assert_eq!(output.status.code(), Some(0), "{}", said(&output));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!("said: host node-a (boot id {}", this_boot_id()?)),
        "{}",
        said(&output)
    );
    assert!(
        stdout.contains(&format!("process {NO_SUCH_PID}")),
        "{}",
        said(&output)
    );
    assert!(stdout.contains("removed: "), "{}", said(&output));
    assert!(!record_file(&path).parent().unwrap().exists());
    assert!(path.exists(), "the database itself is not touched");

    write_record(&path, &this_boot_id()?, NO_SUCH_PID)?;
    let output = release(&path, false, true)?;
    assert_eq!(output.status.code(), Some(0), "{}", said(&output));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(document["result"], "removed", "{document}");
    assert_eq!(document["this_machine"], true, "{document}");
    assert_eq!(document["owner"]["pid"], NO_SUCH_PID, "{document}");
    assert!(!record_file(&path).exists());
    Ok(())
}

/// Promise: while the owner is alive (this test process holds the claim, through
/// `Ownership::claim`), the release is refused with exit 75, naming the owner's process and the
/// evidence, even with `--owner-machine-is-down`, and the record is unchanged byte for byte.
#[test]
fn a_live_owner_is_refused_and_its_record_stays_byte_for_byte() -> TestResult {
    let home = tempfile::tempdir()?;
    let path = home.path().join("state.db");
    sqlite_database_with_pages(&path)?;
    let ownership = Ownership::claim(&path)?;
    let record = record_file(&path);
    let before = std::fs::read(&record)?;

    for machine_down in [false, true] {
        let output = release(&path, machine_down, false)?;
        assert_eq!(
            output.status.code(),
            Some(EXIT_OWNER_ALIVE.into()),
            "{}",
            said(&output)
        );
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("its owner is alive (its process is running)"),
            "{}",
            said(&output)
        );
        assert!(
            stderr.contains(&format!("process {}", std::process::id())),
            "{}",
            said(&output)
        );
        assert_eq!(
            std::fs::read(&record).ok().as_ref(),
            Some(&before),
            "the record changed"
        );
    }
    let output = release(&path, false, true)?;
    assert_eq!(output.status.code(), Some(75), "{}", said(&output));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(document["result"], "owner-alive", "{document}");
    assert_eq!(document["evidence"], "process-alive", "{document}");
    assert_eq!(document["owner"]["pid"], std::process::id(), "{document}");
    assert_eq!(
        std::fs::read(&record).ok().as_ref(),
        Some(&before),
        "the record changed"
    );
    drop(ownership);
    Ok(())
}

/// Promise: a record of another machine (another boot id) is refused without
/// `--owner-machine-is-down`, exit 77, the message naming that flag, the record unchanged byte
/// for byte; with the flag it is removed, exit 0, and the output says it was another machine's.
#[test]
fn another_machines_record_needs_the_flag() -> TestResult {
    let home = tempfile::tempdir()?;
    let path = home.path().join("state.db");
    sqlite_database_with_pages(&path)?;
    let before = write_record(&path, OTHER_BOOT_ID, 4242)?;
    let record = record_file(&path);

    let output = release(&path, false, false)?;
    assert_eq!(
        output.status.code(),
        Some(EXIT_OWNER_ON_ANOTHER_MACHINE.into()),
        "{}",
        said(&output)
    );
    let stderr = text(&output.stderr);
    assert!(stderr.contains("another machine"), "{}", said(&output));
    assert!(stderr.contains(MACHINE_DOWN_FLAG), "{}", said(&output));
    assert_eq!(std::fs::read_to_string(&record)?, before);
    let output = release(&path, false, true)?;
    assert_eq!(output.status.code(), Some(77), "{}", said(&output));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(document["result"], "owner-on-another-machine", "{document}");
    assert_eq!(document["owner"]["boot_id"], OTHER_BOOT_ID, "{document}");
    assert_eq!(std::fs::read_to_string(&record)?, before);

    let output = release(&path, true, false)?;
    assert_eq!(output.status.code(), Some(0), "{}", said(&output));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "another machine, asserted down with {MACHINE_DOWN_FLAG}"
        )),
        "{}",
        said(&output)
    );
    assert!(stdout.contains("process 4242"), "{}", said(&output));
    assert!(!record.parent().unwrap().exists());
    Ok(())
}

/// Promise: with no record, the release says so and exits 0, changing nothing; the machine-down
/// flag alone (without `--release-ownership`) is a usage error, 64.
#[test]
fn no_record_says_so_and_exits_0() -> TestResult {
    let home = tempfile::tempdir()?;
    let path = home.path().join("state.db");
    sqlite_database_with_pages(&path)?;

    let output =
        store_testkit::snapshot::assert_unchanged(home.path(), || release(&path, false, false))?;
    assert_eq!(output.status.code(), Some(0), "{}", said(&output));
    assert!(
        text(&output.stdout).contains("no ownership record at"),
        "{}",
        said(&output)
    );
    let output = release(&path, true, true)?;
    assert_eq!(output.status.code(), Some(0), "{}", said(&output));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(document["result"], "no-record", "{document}");

    let usage = store_doctor(&[path.as_os_str(), OsStr::new(MACHINE_DOWN_FLAG)])?;
    assert_eq!(usage.status.code(), Some(64), "{}", said(&usage));
    Ok(())
}

/// Promise: the checkup lists the owner beside a database (host, boot id, pid, since; this
/// machine and alive) in text and JSON, stays healthy, and reports neither the record's
/// directory nor its record as a database when a directory is examined; another machine's
/// record is listed as such, still healthy; a bad record is a typed finding that fails.
#[test]
fn the_checkup_lists_the_owner() -> TestResult {
    let home = tempfile::tempdir()?;
    let path = home.path().join("state.db");
    sqlite_database_with_pages(&path)?;
    let ownership = Ownership::claim(&path)?;
    let owner = ownership.owner().clone();

    let output = store_doctor(&[home.path().as_os_str()])?;
    assert_eq!(output.status.code(), Some(0), "{}", said(&output));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!("ownership: owned by {owner}: this machine, alive")),
        "{}",
        said(&output)
    );
    assert!(!stdout.contains("state.db.owner\n"), "{}", said(&output));

    let output = store_doctor(&[home.path().as_os_str(), OsStr::new("--json")])?;
    let document: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let databases = document["databases"].as_array().unwrap();
    assert_eq!(databases.len(), 1, "{document}");
    let found = &databases[0]["ownership"];
    assert_eq!(found["state"], "owned", "{document}");
    assert_eq!(found["owner_is"], "this-machine-alive", "{document}");
    assert_eq!(found["through_this_mount"], true, "{document}");
    assert_eq!(found["owner"]["host"], owner.host.as_str(), "{document}");
    assert_eq!(found["owner"]["boot_id"], this_boot_id()?, "{document}");
    assert_eq!(found["owner"]["pid"], std::process::id(), "{document}");
    assert_eq!(
        found["owner"]["since"],
        owner.since_utc().rfc3339(),
        "{document}"
    );
    assert_eq!(databases[0]["verdict"], "healthy", "{document}");
    drop(ownership);

    write_record(&path, OTHER_BOOT_ID, 4242)?;
    let output = store_doctor(&[path.as_os_str(), OsStr::new("--json")])?;
    assert_eq!(output.status.code(), Some(0), "{}", said(&output));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(
        document["databases"][0]["ownership"]["owner_is"], "another-machine",
        "{document}"
    );

    std::fs::write(record_file(&path), "store-owner 1\nhost node-a\n")?;
    let output = store_doctor(&[path.as_os_str(), OsStr::new("--json")])?;
    assert_eq!(output.status.code(), Some(3), "{}", said(&output));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let found = &document["databases"][0]["ownership"];
    assert_eq!(found["state"], "bad-record", "{document}");
    assert_eq!(found["problem"]["kind"], "truncated", "{document}");
    let output = store_doctor(&[path.as_os_str()])?;
    assert!(
        text(&output.stdout).contains("is truncated (it ends before its `end` line)"),
        "{}",
        said(&output)
    );
    Ok(())
}
