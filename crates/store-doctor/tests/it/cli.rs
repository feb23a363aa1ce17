//! The `store-doctor` binary as an operator and a script meet it: exit codes, `--json`, usage.

use std::path::Path;
use std::process::{Command, Output};

use store_doctor::{EXIT_NO_INPUT, EXIT_USAGE, Verdict};

use crate::{PageKind, TestResult, corrupt_a_page, sqlite_database_with_pages};

fn store_doctor(arguments: &[&std::ffi::OsStr]) -> std::io::Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_store-doctor"))
        .args(arguments)
        .output()
}

fn run(path: &Path, json: bool) -> std::io::Result<Output> {
    let mut arguments = vec![path.as_os_str()];
    if json {
        arguments.push("--json".as_ref());
    }
    store_doctor(&arguments)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Promise: a healthy database exits 0, in text and in JSON, and `--json` prints one JSON
/// document with the verdict, the exit code and the checkup's fields.
#[test]
fn a_healthy_database_exits_0_and_its_json_parses() -> TestResult {
    let home = tempfile::tempdir()?;
    let path = home.path().join("state.db");
    sqlite_database_with_pages(&path)?;

    let plain = run(&path, false)?;
    assert_eq!(plain.status.code(), Some(0), "{}", text(&plain.stderr));
    let said = text(&plain.stdout);
    assert!(said.contains("verdict: healthy (exit code 0)"), "{said}");

    let json = run(&path, true)?;
    assert_eq!(json.status.code(), Some(0), "{}", text(&json.stderr));
    let document: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    assert_eq!(document["verdict"], "healthy");
    assert_eq!(document["exit_code"], 0);
    assert_eq!(document["path"], path.to_str().unwrap());
    assert_eq!(document["wal"]["result"], "works");
    assert!(document["filesystem"]["kind"].is_string(), "{document}");
    let database = &document["databases"][0];
    assert_eq!(database["content"], "sqlite-wal");
    assert_eq!(database["verdict"], "healthy");
    assert_eq!(database["outlook"]["action"], "opens");
    assert_eq!(database["outlook"]["journal_mode"], "wal");
    assert_eq!(database["outlook"]["falls_back"], false);
    assert_eq!(database["outlook"]["schema_version"], 2);
    assert!(database["recovery_pending"].is_null());
    assert!(document.get("error").is_none(), "{document}");
    Ok(())
}

/// Promise: a corrupt SQLite database (a b-tree page overwritten with garbage) makes the real
/// binary exit 3, and its JSON names the corruption.
#[test]
fn a_corrupt_database_exits_3() -> TestResult {
    let home = tempfile::tempdir()?;
    let path = home.path().join("state.db");
    sqlite_database_with_pages(&path)?;
    corrupt_a_page(&path, PageKind::IndexLeaf)?;

    let plain = run(&path, false)?;
    assert_eq!(
        plain.status.code(),
        Some(Verdict::Fails.exit_code().into()),
        "{}",
        text(&plain.stdout)
    );
    assert_eq!(Verdict::Fails.exit_code(), 3);
    let json = run(&path, true)?;
    assert_eq!(json.status.code(), Some(3));
    let document: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    assert_eq!(document["verdict"], "fails");
    let outlook = &document["databases"][0]["outlook"];
    assert_eq!(outlook["action"], "corrupt", "{outlook}");
    assert!(outlook["problems"][0].is_string(), "{outlook}");
    Ok(())
}

/// Promise: a path that does not exist, nor its directory, exits 66 (EX_NOINPUT) with the reason
/// on stderr, and with `--json` still prints one document saying so.
#[test]
fn a_missing_path_exits_66() -> TestResult {
    let home = tempfile::tempdir()?;
    let missing = home.path().join("no such directory").join("state.db");

    let plain = run(&missing, false)?;
    assert_eq!(plain.status.code(), Some(EXIT_NO_INPUT.into()));
    assert_eq!(EXIT_NO_INPUT, 66);
    assert!(
        text(&plain.stderr).contains("does not exist"),
        "{}",
        text(&plain.stderr)
    );

    let json = run(&missing, true)?;
    assert_eq!(json.status.code(), Some(66));
    let document: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    assert_eq!(document["exit_code"], 66);
    assert!(document["verdict"].is_null());
    assert!(
        document["error"]
            .as_str()
            .is_some_and(|error| error.contains("does not exist"))
    );
    Ok(())
}

/// Promise: a usage error (an unknown flag, no PATH) exits 64 (EX_USAGE), not clap's 2, which
/// here means "will recover"; `--help` exits 0 and documents every exit code.
#[test]
fn usage_errors_exit_64_and_help_lists_the_exit_codes() -> TestResult {
    let bad_flag = store_doctor(&["--no-such-flag".as_ref(), "/tmp".as_ref()])?;
    assert_eq!(bad_flag.status.code(), Some(EXIT_USAGE.into()));
    assert_eq!(EXIT_USAGE, 64);
    assert!(text(&bad_flag.stderr).contains("--no-such-flag"));
    let no_path = store_doctor(&[])?;
    assert_eq!(no_path.status.code(), Some(64));

    let help = store_doctor(&["--help".as_ref()])?;
    assert_eq!(help.status.code(), Some(0));
    let help = text(&help.stdout);
    for verdict in Verdict::ALL {
        let line = format!("{:<3} {verdict}", verdict.exit_code());
        assert!(help.contains(&line), "--help lacks `{line}`:\n{help}");
    }
    assert!(help.contains("64 "), "{help}");
    Ok(())
}
