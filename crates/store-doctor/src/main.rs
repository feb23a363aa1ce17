//! `store-doctor PATH [--json]`: the command line over [`store_doctor::examine`]; the exit codes
//! are in the crate docs and `--help`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
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
  74                the report could not be written out";

/// What store sees at a database file or a directory of databases: the filesystem, whether
/// SQLite's WAL works there, the files beside each database, and what an open through store would
/// do. It changes nothing: databases are only read, and the WAL probe's scratch files are its own.
#[derive(Debug, Parser)]
#[command(name = "store-doctor", version, after_help = EXIT_CODES)]
struct Arguments {
    /// A SQLite or DuckDB database file, or a directory holding some.
    path: PathBuf,
    /// Print one JSON document (verdict, exit code, checkup) instead of text.
    #[arg(long)]
    json: bool,
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
