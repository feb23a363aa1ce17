//! Ownership by one client across real processes: a crashed owner, another machine (a child with
//! its own boot id in its own mount namespace), two processes of one client, bad records, and
//! races to create the record.
//!
//! Each test that needs other processes runs them as "agents": this test binary re-executed for
//! the same test with [`AGENT_ENV`] naming the database, claiming and releasing on commands read
//! from its stdin and answering one `AGENT ...` line on its stdout per command.
#![cfg(target_os = "linux")]

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use store_core::files::sibling;
use store_core::ownership::{
    Claim, Elsewhere, Ownership, OwnershipError, RECORD_FILE, RECORD_SUFFIX, RecordProblem,
    Release, parse_record, record_file, release_ownership,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Set in an agent to the database it claims.
const AGENT_ENV: &str = "STORE_OWNERSHIP_AGENT";

/// Another boot id than this machine's, for a child that plays another machine.
const OTHER_BOOT_ID: &str = "11111111-2222-4333-8444-555555555555";

/// Serves as an agent when this process is one (and returns `true`): claims on `claim`,
/// releases the last claim on `release`, and releases whatever it holds when stdin closes.
fn serve_as_agent() -> bool {
    let Some(database) = std::env::var_os(AGENT_ENV) else {
        return false;
    };
    let database = PathBuf::from(database);
    let mut held: Vec<Ownership> = Vec::new();
    answer("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin reads");
        match line.trim() {
            "claim" => match Ownership::claim(&database) {
                Ok(ownership) => {
                    answer(&describe_claim(ownership.claimed()));
                    held.push(ownership);
                }
                Err(OwnershipError::OwnedElsewhere {
                    owner, elsewhere, ..
                }) => answer(&format!(
                    "refused {} {}",
                    match elsewhere {
                        Elsewhere::OtherMachine => "other-machine",
                        _ => "other-mount",
                    },
                    owner.pid
                )),
                Err(error) => answer(&format!("error {error}")),
            },
            "release" => match held.pop().map(Ownership::release) {
                Some(Ok(release)) => answer(&format!("released {release:?}")),
                Some(Err(error)) => answer(&format!("error {error}")),
                None => answer("error nothing held"),
            },
            other => answer(&format!("error unknown command {other}")),
        }
    }
    drop(held);
    true
}

fn describe_claim(claim: &Claim) -> String {
    match claim {
        Claim::Created => "created".to_owned(),
        Claim::Joined { owner } => format!("joined {}", owner.pid),
        Claim::TookOverCrashed { previous } => format!("took-over {}", previous.pid),
        other => format!("other {other:?}"),
    }
}

fn answer(text: &str) {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "AGENT {text}").expect("stdout writes");
    stdout.flush().expect("stdout flushes");
}

/// A process of this test binary serving as an agent for `database`.
struct Agent {
    child: Child,
    input: Option<ChildStdin>,
    output: BufReader<ChildStdout>,
}

impl Agent {
    /// An agent on this machine.
    fn spawn(test: &str, database: &Path) -> Agent {
        Agent::start(
            Command::new(std::env::current_exe().unwrap()),
            test,
            database,
        )
    }

    /// An agent playing another machine: its own mount namespace, in which `boot_id_file` is
    /// bind-mounted over the kernel's boot id. Same host name, same PIDs, same kernel.
    fn spawn_elsewhere(test: &str, database: &Path, boot_id_file: &Path) -> Agent {
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --bind "$0" /proc/sys/kernel/random/boot_id && exec "$@""#)
            .arg(boot_id_file)
            .arg(std::env::current_exe().unwrap());
        Agent::start(command, test, database)
    }

    fn start(mut command: Command, test: &str, database: &Path) -> Agent {
        let mut child = command
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(AGENT_ENV, database)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the test binary re-executes itself");
        let input = child.stdin.take();
        let output = BufReader::new(child.stdout.take().unwrap());
        let mut agent = Agent {
            child,
            input,
            output,
        };
        assert_eq!(agent.read(), "ready");
        agent
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn send(&mut self, command: &str) {
        let input = self.input.as_mut().expect("stdin open");
        writeln!(input, "{command}").unwrap();
        input.flush().unwrap();
    }

    /// The agent's next answer.
    fn read(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let read = self.output.read_line(&mut line).unwrap();
            assert!(
                read > 0,
                "agent {} ended without answering",
                self.child.id()
            );
            // libtest's "test NAME ... " precedes the first answer on its line.
            if let Some((_, answer)) = line.trim_end().split_once("AGENT ") {
                return answer.to_owned();
            }
        }
    }

    fn ask(&mut self, command: &str) -> String {
        self.send(command);
        self.read()
    }

    /// Closes its stdin (it releases what it holds and exits) and waits for it.
    fn finish(mut self) {
        drop(self.input.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "agent exited with {status}");
    }
}

/// The database and its record (`shared.db.owner/record`).
fn database_in(directory: &tempfile::TempDir) -> (PathBuf, PathBuf) {
    let database = directory.path().join("shared.db");
    let record = record_file(&database);
    assert_eq!(
        record.parent(),
        Some(sibling(&database, RECORD_SUFFIX).as_path())
    );
    (database, record)
}

/// Whether the record's directory (the name beside the database) exists: a release removes it
/// with the record.
fn name_exists(record: &Path) -> bool {
    fs::symlink_metadata(record.parent().unwrap()).is_ok()
}

fn other_boot_id_file(directory: &tempfile::TempDir) -> PathBuf {
    let path = directory.path().join("other-boot-id");
    fs::write(&path, format!("{OTHER_BOOT_ID}\n")).unwrap();
    path
}

/// Everything about a file a claim could change: bytes, inode, size, mode, times.
#[derive(Debug, PartialEq, Eq)]
struct Fingerprint {
    bytes: Vec<u8>,
    inode: u64,
    len: u64,
    mode: u32,
    modified: (i64, i64),
    changed: (i64, i64),
}

fn fingerprint(path: &Path) -> Fingerprint {
    let metadata = fs::symlink_metadata(path).unwrap();
    Fingerprint {
        bytes: if metadata.is_file() {
            fs::read(path).unwrap()
        } else {
            Vec::new()
        },
        inode: metadata.ino(),
        len: metadata.len(),
        mode: metadata.mode(),
        modified: (metadata.mtime(), metadata.mtime_nsec()),
        changed: (metadata.ctime(), metadata.ctime_nsec()),
    }
}

/// An owner SIGKILLed on this machine is taken over by the next claim, which says so with
/// what the dead owner's record said (its PID), and the new record names the new owner.
#[test]
fn a_crashed_owner_on_this_machine_is_taken_over_and_reported() -> TestResult {
    if serve_as_agent() {
        return Ok(());
    }
    let directory = tempfile::tempdir()?;
    let (database, record) = database_in(&directory);
    let mut agent = Agent::spawn(
        "a_crashed_owner_on_this_machine_is_taken_over_and_reported",
        &database,
    );
    assert_eq!(agent.ask("claim"), "created");
    let dead_pid = agent.pid();
    let written = parse_record(&fs::read(&record)?)?.expect("a whole record");
    assert_eq!(written.pid, dead_pid);
    agent.child.kill()?;
    agent.child.wait()?;

    let ownership = Ownership::claim(&database)?;
    match ownership.claimed() {
        Claim::TookOverCrashed { previous } => assert_eq!(previous, &written),
        other => panic!("expected a takeover of {dead_pid}, got {other:?}"),
    }
    let now = parse_record(&fs::read(&record)?)?.expect("a whole record");
    assert_eq!(now.pid, std::process::id());
    assert_eq!(ownership.release()?, Release::Removed);
    assert!(!name_exists(&record));
    Ok(())
}

/// A database owned by a live process of another machine (another boot id; the same host
/// name, which therefore identifies nothing) is refused at once with `OwnedElsewhere`, whose
/// message names the host, the PID, since when and the remedy; the record stays byte for byte,
/// inode and times included. When that owner releases, the record goes and this machine may
/// claim.
#[test]
fn an_owner_with_another_boot_id_is_refused_at_once_and_nothing_changes() -> TestResult {
    if serve_as_agent() {
        return Ok(());
    }
    let directory = tempfile::tempdir()?;
    let (database, record) = database_in(&directory);
    let boot_id_file = other_boot_id_file(&directory);
    let mut other = Agent::spawn_elsewhere(
        "an_owner_with_another_boot_id_is_refused_at_once_and_nothing_changes",
        &database,
        &boot_id_file,
    );
    assert_eq!(other.ask("claim"), "created");
    let before = fingerprint(&record);
    let written = parse_record(&fs::read(&record)?)?.expect("a whole record");
    assert_eq!(written.boot_id, OTHER_BOOT_ID);
    let host_name = fs::read_to_string("/proc/sys/kernel/hostname")?;
    assert_eq!(written.host, host_name.trim_end(), "the same host name");

    let started = Instant::now();
    let error = Ownership::claim(&database).unwrap_err();
    let took = started.elapsed();
    let message = error.to_string();
    match &error {
        OwnershipError::OwnedElsewhere {
            owner,
            elsewhere: Elsewhere::OtherMachine,
            database: named,
        } => {
            assert_eq!(owner, &written);
            assert_eq!(named, &database);
        }
        other => panic!("expected OwnedElsewhere, got {other:?}"),
    }
    for needed in [
        format!("host {}", written.host),
        format!("process {}", written.pid),
        written.since_utc().rfc3339(),
        format!("store-doctor --release-ownership {}", database.display()),
    ] {
        assert!(
            message.contains(&needed),
            "{needed:?} missing from: {message}"
        );
    }
    assert!(took < Duration::from_millis(500), "refused after {took:?}");
    assert_eq!(
        fingerprint(&record),
        before,
        "the refused claim changed the record"
    );

    other.finish();
    assert!(
        !name_exists(&record),
        "the owner's release removes the record"
    );
    let ownership = Ownership::claim(&database)?;
    assert_eq!(ownership.claimed(), &Claim::Created);
    Ok(())
}

/// Two processes of one client share the database: whichever comes second joins, and the
/// record goes only when the last of them releases, whichever order they release in.
#[test]
fn two_processes_of_one_client_share_it_and_the_last_release_removes_it() -> TestResult {
    if serve_as_agent() {
        return Ok(());
    }
    let test = "two_processes_of_one_client_share_it_and_the_last_release_removes_it";
    let directory = tempfile::tempdir()?;
    let (database, record) = database_in(&directory);

    // This process first, the agent joins; this process releases first.
    let mut agent = Agent::spawn(test, &database);
    let ownership = Ownership::claim(&database)?;
    assert_eq!(ownership.claimed(), &Claim::Created);
    assert_eq!(agent.ask("claim"), format!("joined {}", std::process::id()));
    assert_eq!(ownership.release()?, Release::InUseByAnotherProcess);
    assert!(record.exists(), "the agent still holds it");
    assert_eq!(agent.ask("release"), "released Removed");
    assert!(!name_exists(&record));

    // The agent first, this process joins; the agent releases first, and exits.
    assert_eq!(agent.ask("claim"), "created");
    let ownership = Ownership::claim(&database)?;
    assert_eq!(
        describe_claim(ownership.claimed()),
        format!("joined {}", agent.pid())
    );
    assert_eq!(agent.ask("release"), "released InUseByAnotherProcess");
    agent.finish();
    assert!(record.exists(), "this process still holds it");
    assert_eq!(ownership.release()?, Release::Removed);
    assert!(!name_exists(&record));
    Ok(())
}

/// Everything about the name beside the database and what is in it: the name's own
/// fingerprint, then each entry's when it is a directory (not followed when a link).
fn tree_fingerprint(name: &Path) -> Vec<(String, Fingerprint)> {
    let mut found = vec![(String::new(), fingerprint(name))];
    if fs::symlink_metadata(name).unwrap().is_dir() {
        let mut entries: Vec<_> = fs::read_dir(name)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        entries.sort();
        for entry in entries {
            let key = entry.file_name().unwrap().to_string_lossy().into_owned();
            found.push((key, fingerprint(&entry)));
        }
    }
    found
}

/// A record that is truncated, foreign (another magic), a symbolic link (even to a good
/// record) or a directory, and at the name beside the database a symbolic link, a regular file
/// (a record of the format before the directory), a directory holding something else, or a
/// directory without its record (a claim that never finished, or a raced `mkdir` on glusterfs
/// that nobody won), gives its typed error naming the path, to a claim and to the operator's
/// release alike, and stays exactly as it was.
#[test]
fn bad_records_give_their_typed_error_and_stay_as_they_were() -> TestResult {
    let directory = tempfile::tempdir()?;
    let (database, record) = database_in(&directory);
    let name = sibling(&database, RECORD_SUFFIX);
    // A good record to cut and to point at, released again.
    let good = {
        let ownership = Ownership::claim(&database)?;
        let text = fs::read(&record)?;
        assert_eq!(ownership.release()?, Release::Removed);
        text
    };
    let good_copy = directory.path().join("good-copy");
    fs::write(&good_copy, &good)?;
    let good_directory = directory.path().join("good-directory");
    fs::create_dir(&good_directory)?;
    fs::write(good_directory.join(RECORD_FILE), &good)?;

    // Each case makes what is at the name (given the record's path), and says whether the
    // error names the record (`false`: the name beside the database).
    type Make = Box<dyn Fn(&Path)>;
    let in_directory = |write: Box<dyn Fn(&Path)>| -> Make {
        Box::new(move |record: &Path| {
            fs::create_dir(record.parent().unwrap()).unwrap();
            write(record);
        })
    };
    let cases: Vec<(&str, Make, bool, RecordProblem)> = vec![
        (
            "truncated",
            in_directory(Box::new({
                let good = good.clone();
                move |path: &Path| fs::write(path, &good[..good.len() - 5]).unwrap()
            })),
            true,
            RecordProblem::Truncated,
        ),
        (
            "foreign",
            in_directory(Box::new(|path: &Path| {
                fs::write(path, b"12345 otherhost\n").unwrap()
            })),
            true,
            RecordProblem::Foreign {
                first_line: "12345 otherhost".to_owned(),
            },
        ),
        (
            "symlink",
            in_directory(Box::new({
                let good_copy = good_copy.clone();
                move |path: &Path| std::os::unix::fs::symlink(&good_copy, path).unwrap()
            })),
            true,
            RecordProblem::SymbolicLink,
        ),
        (
            "directory",
            in_directory(Box::new(|path: &Path| fs::create_dir(path).unwrap())),
            true,
            RecordProblem::NotRegularFile,
        ),
        (
            "name a symlink",
            Box::new(move |record: &Path| {
                std::os::unix::fs::symlink(&good_directory, record.parent().unwrap()).unwrap()
            }),
            false,
            RecordProblem::SymbolicLink,
        ),
        (
            "name a regular file",
            Box::new(move |record: &Path| fs::write(record.parent().unwrap(), &good).unwrap()),
            false,
            RecordProblem::NotADirectory,
        ),
        (
            "name a foreign directory",
            Box::new(|record: &Path| {
                fs::create_dir(record.parent().unwrap()).unwrap();
                fs::write(record.parent().unwrap().join("notes.txt"), b"mine").unwrap();
            }),
            false,
            RecordProblem::ForeignDirectory {
                entries: vec!["notes.txt".to_owned()],
            },
        ),
        (
            "name without its record",
            Box::new(|record: &Path| fs::create_dir(record.parent().unwrap()).unwrap()),
            false,
            RecordProblem::Incomplete,
        ),
    ];
    for (case, make, names_record, expected) in cases {
        make(&record);
        let expected_path = if names_record { &record } else { &name };
        let before = tree_fingerprint(&name);
        let claimed = Ownership::claim(&database).map(|ownership| ownership.claimed().clone());
        let released = release_ownership(&database, store_core::OtherMachine::AssertedDown)
            .map(|_| "released");
        for (operation, result) in [("claim", claimed.map(|_| "claimed")), ("release", released)] {
            match result {
                Err(OwnershipError::BadRecord { path, problem }) => {
                    assert_eq!(&path, expected_path, "{case}: {operation}");
                    assert_eq!(problem, expected, "{case}: {operation}");
                }
                other => panic!("{case}: {operation} gave {other:?}"),
            }
        }
        let message = Ownership::claim(&database).unwrap_err().to_string();
        assert!(
            message.contains(&expected_path.display().to_string()),
            "{case}: {message}"
        );
        assert_eq!(
            tree_fingerprint(&name),
            before,
            "{case}: the record changed"
        );
        if fs::symlink_metadata(&name)?.is_dir() {
            fs::remove_dir_all(&name)?;
        } else {
            fs::remove_file(&name)?;
        }
    }
    Ok(())
}

/// One race: two agents told to claim a fresh record at the same moment; their answers.
fn race(test: &str, database: &Path, elsewhere: Option<&Path>, round: usize) -> [String; 2] {
    let spawn = |in_namespace: bool| match (in_namespace, elsewhere) {
        (true, Some(boot_id_file)) => Agent::spawn_elsewhere(test, database, boot_id_file),
        _ => Agent::spawn(test, database),
    };
    // Alternate which one starts first, and which one plays the other machine.
    let mut first = spawn(round.is_multiple_of(2));
    let mut second = spawn(!round.is_multiple_of(2));
    first.send("claim");
    second.send("claim");
    let answers = [first.read(), second.read()];
    first.finish();
    second.finish();
    answers
}

/// 100 races of two processes of one client claiming a fresh record on a local disk: exactly
/// one creates it and the other joins it, every time, and the record is gone after both
/// release.
#[test]
fn racing_processes_of_one_client_one_creates_and_the_other_joins() -> TestResult {
    if serve_as_agent() {
        return Ok(());
    }
    let test = "racing_processes_of_one_client_one_creates_and_the_other_joins";
    let directory = tempfile::tempdir()?;
    let (database, record) = database_in(&directory);
    let mut second_won = 0;
    for round in 0..100 {
        let mut answers = race(test, &database, None, round);
        second_won += usize::from(answers[1] == "created");
        answers.sort();
        assert_eq!(answers[0], "created", "round {round}: {answers:?}");
        assert!(
            answers[1].starts_with("joined "),
            "round {round}: {answers:?}"
        );
        assert!(
            !name_exists(&record),
            "round {round}: record left after both released"
        );
    }
    eprintln!("the agent spawned second created the record in {second_won} of 100 rounds");
    assert!(second_won > 0, "the race was never contested");
    Ok(())
}

/// 100 races of two machines (one agent with another boot id) claiming a fresh record:
/// exactly one creates it and the other is refused as another machine, every time.
#[test]
fn racing_two_machines_exactly_one_wins_and_the_other_is_refused() -> TestResult {
    if serve_as_agent() {
        return Ok(());
    }
    let test = "racing_two_machines_exactly_one_wins_and_the_other_is_refused";
    let directory = tempfile::tempdir()?;
    let (database, record) = database_in(&directory);
    let boot_id_file = other_boot_id_file(&directory);
    let mut second_won = 0;
    for round in 0..100 {
        let mut answers = race(test, &database, Some(&boot_id_file), round);
        second_won += usize::from(answers[1] == "created");
        answers.sort();
        assert_eq!(answers[0], "created", "round {round}: {answers:?}");
        assert!(
            answers[1].starts_with("refused other-machine "),
            "round {round}: {answers:?}"
        );
        assert!(
            !name_exists(&record),
            "round {round}: record left after the winner released"
        );
    }
    eprintln!("the agent spawned second created the record in {second_won} of 100 rounds");
    assert!(second_won > 0, "the race was never contested");
    Ok(())
}
