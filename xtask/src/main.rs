//! Project tasks: `cargo xtask <task>` (the alias lives in `.cargo/config.toml`).
//!
//! - `fault-matrix`: every engine x fault x policy cell, expected vs actual, rows kept.
//! - `bench`: the cost of store's safety, as ratios against the raw engines.
//! - `torture`: crash, concurrency and bad-input campaigns, seeded.

use std::process::ExitCode;

mod bench;
mod matrix;
mod oracle;
mod power;
mod torture;

const USAGE: &str = "\
usage: cargo xtask <task> [options]

tasks:
  fault-matrix   run every engine x fault x policy cell and compare with its expectation,
                 then the power-loss cells (a lossy FUSE mount; needs root and /dev/fuse);
                 --format table|json|markdown, --engine sqlite|duckdb, --fault TEXT
  bench          measure what store's safety costs against raw rusqlite/duckdb, in the
                 release profile; --json for machines
  torture        crash loops, racing processes and bad inputs, counting what survived;
                 --short (CI), --seed N, --iterations N, --rounds N, --racers N,
                 --power-iterations N, --tearing none|prefix|reordered|mixed,
                 --time-limit-s N, --campaign crash|concurrency|bad-input|power
  help           print this message";

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    match arguments.first().map(String::as_str) {
        Some("fault-matrix") => matrix::run(&arguments[1..]),
        Some("__matrix-cell") => matrix::cell_child(&arguments[1..]),
        Some("__matrix-migrate-and-die") => matrix::migrate_and_die(&arguments[1..]),
        Some("__matrix-hold-lock") => matrix::hold_lock(),
        Some("__power-workload") => power::workload(&arguments[1..]),
        Some("__power-cell") => power::cell_child(&arguments[1..]),
        Some("bench") => bench::run(&arguments[1..]),
        Some("torture") => torture::run(&arguments[1..]),
        Some("__torture-child") => torture::child(&arguments[1..]),
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
