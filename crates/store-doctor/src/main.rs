//! `store-doctor PATH [--json]`: the command line over [`store_doctor::examine`], and
//! `store-doctor --release-ownership PATH [--owner-machine-is-down] [--json]` over
//! [`store_doctor::release`]; the exit codes are in the crate docs and `--help`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use store_core::ownership::{MACHINE_DOWN_FLAG, OtherMachine, RELEASE_COMMAND};
use store_doctor::{EXIT_USAGE, Report};

/// `EX_IOERR`: the report could not be written out.
const EXIT_CANNOT_WRITE: u8 = 74;

/// What `--help` says after the options: the exit codes, which scripts and monitoring act on.
const EXIT_CODES: &str = "\
Exit codes (the worst database decides):
  0   healthy       every database opens as it is
  1   falls-back    opens, but on a weaker rung: WAL does not work here
  2   will-recover  an open would run a recovery step (files moved aside),
                    or a recovery a crash interrupted is pending
  3   fails         an open would fail, or a database is corrupt or not a database
  64                usage error (a bad flag, no PATH)
  66  no-database   PATH does not exist (nor its directory), cannot be read,
                    or names no file yet
  74                the report could not be written out (with --release-ownership:
                    reading or removing the record failed)

With --release-ownership: 0 when the database is free (record removed, or none);
having changed nothing:
  65  bad-record    the record is not one store can read; left as it is
  66  missing       neither the database nor its directory exists
  75  owner-alive   the owner is alive on this machine (or the record kept
                    changing): try again once it has stopped
  77  owner-on-another-machine
                    another machine owns it, and --owner-machine-is-down was
                    not given";

/// A flag's name without its dashes, taken from store-core's constant that the errors print, so
/// that the command they name is this one.
fn flag_name(flag: &'static str) -> &'static str {
    flag.trim_start_matches('-')
}

/// `release-ownership`, the last word of [`RELEASE_COMMAND`].
fn release_flag() -> &'static str {
    flag_name(
        RELEASE_COMMAND
            .rsplit(' ')
            .next()
            .unwrap_or(RELEASE_COMMAND),
    )
}

/// `owner-machine-is-down`, from [`MACHINE_DOWN_FLAG`].
fn machine_down_flag() -> &'static str {
    flag_name(MACHINE_DOWN_FLAG)
}

/// What store sees at a database file or a directory of databases: the filesystem, whether
/// SQLite's WAL works there, the files beside each database, and what an open through store would
/// do. It changes nothing: databases are only read, and the WAL probe's scratch files are its own.
#[derive(Debug, Parser)]
#[command(name = "store-doctor", version, after_help = EXIT_CODES)]
struct Arguments {
    /// A SQLite or DuckDB database file, or a directory holding some.
    path: PathBuf,
    /// Print one JSON document (verdict, exit code, checkup; or the release's result) instead
    /// of text.
    #[arg(long)]
    json: bool,
    /// Free the database at PATH for the next machine: remove its ownership record
    /// (PATH.owner/record). Refuses, changing nothing, while the owner is provably alive on
    /// this machine, and when the owner is another machine (unless asserted down). Changes
    /// nothing else.
    #[arg(long = release_flag())]
    release_ownership: bool,
    /// With --release-ownership: the operator asserts that the other machine owning the
    /// database is down (its processes cannot be seen from here). If it is not, two machines
    /// write the database and lose commits.
    #[arg(long = machine_down_flag(), requires = "release_ownership")]
    owner_machine_is_down: bool,
}

/// `--release-ownership`: prints what the record said and what was done (stdout), or the
/// refusal (stderr); the JSON document either way with `--json`.
fn release(arguments: &Arguments) -> ExitCode {
    let other_machine = if arguments.owner_machine_is_down {
        OtherMachine::AssertedDown
    } else {
        OtherMachine::Refuse
    };
    let report = store_doctor::release(&arguments.path, other_machine);
    let written = if arguments.json {
        serde_json::to_writer_pretty(std::io::stdout().lock(), &report)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(std::io::stdout()))
    } else if report.outcome.freed() {
        write!(std::io::stdout(), "{report}")
    } else {
        let text = report.to_string();
        for line in text.lines() {
            eprintln!("store-doctor: {line}");
        }
        Ok(())
    };
    if let Err(error) = written {
        eprintln!("store-doctor: cannot write the report: {error}");
        return ExitCode::from(EXIT_CANNOT_WRITE);
    }
    ExitCode::from(report.exit_code)
}

fn main() -> ExitCode {
    let arguments = match Arguments::try_parse() {
        Ok(arguments) => arguments,
        Err(error) => {
            // Help and version go to stdout and succeed; a usage error is EX_USAGE, not clap's 2,
            // which here means "will recover".
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if arguments.release_ownership {
        return release(&arguments);
    }
    let outcome = store_doctor::examine(&arguments.path);
    let report = Report::new(&outcome);
    if arguments.json {
        let written = serde_json::to_writer_pretty(std::io::stdout().lock(), &report)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(std::io::stdout()));
        if let Err(error) = written {
            eprintln!("store-doctor: cannot write the report: {error}");
            return ExitCode::from(EXIT_CANNOT_WRITE);
        }
    } else {
        match &outcome {
            Ok(checkup) => {
                let verdict = checkup.verdict();
                print!("{checkup}");
                println!(
                    "\nverdict: {verdict} (exit code {}): {}",
                    verdict.exit_code(),
                    verdict.meaning()
                );
            }
            Err(error) => eprintln!("store-doctor: {}", store_core::cause_chain(error)),
        }
    }
    ExitCode::from(report.exit_code)
}
