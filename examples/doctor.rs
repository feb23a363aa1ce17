//! `cargo run --example doctor -- PATH`
//!
//! Tells a person, for a database file or a directory holding some, what store sees there: the
//! filesystem and whether SQLite's WAL works on it (probed with a temporary database beside it),
//! the journal format, sidecars, snapshots and moved-aside files with their sizes and ages, and
//! what an open through store would do. It changes nothing of yours. Build with
//! `--features duckdb` to look inside DuckDB databases too.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: cargo run --example doctor -- PATH");
        return ExitCode::from(2);
    };
    match store::doctor::examine(&path) {
        Ok(checkup) => {
            print!("{checkup}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("doctor: {}", store::cause_chain(&error));
            ExitCode::FAILURE
        }
    }
}
