//! Project tasks: `cargo xtask <task>` (the alias lives in `.cargo/config.toml`).
//!
//! - `fault-matrix`: every engine x fault x policy cell, expected vs actual, rows kept.
//! - `bench`: the cost of store's safety, as ratios against the raw engines.

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task> [options]

tasks:
  fault-matrix   run every engine x fault x policy cell and compare with its expectation
  bench          measure store's opens, snapshots and commit rates against the raw engines
  help           print this message";

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments.first().map(String::as_str) {
        Some("fault-matrix") => not_yet_implemented("fault-matrix"),
        Some("bench") => not_yet_implemented("bench"),
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
