//! Project tasks: `cargo xtask <task>` (the alias lives in `.cargo/config.toml`).
//!
//! - `fault-matrix`: every engine x fault x policy cell, expected vs actual, rows kept.
//! - `bench`: the cost of store's safety, as ratios against the raw engines.

use std::process::ExitCode;

mod bench;

const USAGE: &str = "\
usage: cargo xtask <task> [options]

tasks:
  fault-matrix   run every engine x fault x policy cell and compare with its expectation
  bench          measure what store's safety costs (today: commit rate per journal mode
                 under the no-shared-memory fault); --json for machines
  help           print this message";

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments.first().map(String::as_str) {
        Some("fault-matrix") => not_yet_implemented("fault-matrix"),
        Some("bench") => bench::run(&arguments[1..]),
        Some("__bench-child") => bench::child(&arguments[1..]),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("unknown task `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
        None => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn not_yet_implemented(task: &str) -> ExitCode {
    eprintln!("cargo xtask {task}: not yet implemented");
    ExitCode::from(2)
}
