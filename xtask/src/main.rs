//! Project tasks: `cargo xtask <task>` (the alias lives in `.cargo/config.toml`).
//!
//! - `fault-matrix`: every engine x fault x policy cell, expected vs actual, rows kept.
//! - `bench`: the cost of store's safety, as ratios against the raw engines.
//! - `torture`: crash, concurrency, bad-input and power campaigns, seeded.
//!
//! One argument parser ([`Cli`], clap) for the tasks and for the hidden commands xtask spawns of
//! itself (`__matrix-cell`, `__power-workload`...): each child's arguments are a type next to the
//! code that spawns it, which builds its command line from the same type, so the two cannot drift.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use store_core::Engine;

mod bench;
mod limits;
mod machines;
mod matrix;
mod names;
mod oracle;
mod outcome;
mod power;
mod progress;
mod torture;

/// The project's own tasks: the fault matrix, the benchmarks, the torture campaigns.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) task: Task,
}

#[derive(Debug, Clone, PartialEq, Subcommand)]
pub(crate) enum Task {
    /// Run every engine x fault x policy cell and compare with its expectation, then the
    /// power-loss cells (a lossy FUSE mount; needs root and /dev/fuse). Exits 1 on any difference.
    FaultMatrix(matrix::MatrixArgs),
    /// Measure what store's safety costs against raw rusqlite/duckdb, in the release profile.
    Bench(bench::BenchArgs),
    /// Crash loops, racing processes, bad inputs and power cuts, counting what survived.
    Torture(torture::TortureArgs),
    /// One matrix cell in a fresh process: prints its result line.
    #[command(name = matrix::CellChild::COMMAND, hide = true)]
    MatrixCell(matrix::CellChild),
    /// A migrating process that dies where its plan says.
    #[command(name = matrix::MigrateAndDie::COMMAND, hide = true)]
    MatrixMigrateAndDie(matrix::MigrateAndDie),
    /// Holds a DuckDB database open until killed.
    #[command(name = matrix::HOLD_LOCK_COMMAND, hide = true)]
    MatrixHoldLock,
    /// A power-loss workload on a lossy mount, paused for its cut.
    #[command(name = power::WorkloadArgs::COMMAND, hide = true)]
    PowerWorkload(power::WorkloadArgs),
    /// One power-loss cell in a fresh process.
    #[command(name = power::PowerCellArgs::COMMAND, hide = true)]
    PowerCell(power::PowerCellArgs),
    /// One machine's writer on a share.
    #[command(name = machines::WriterArgs::COMMAND, hide = true)]
    ShareWriter(machines::WriterArgs),
    /// The two-machine torture campaign of one share and engine, in a fresh process.
    #[command(name = machines::ShareTortureArgs::COMMAND, hide = true)]
    ShareTorture(machines::ShareTortureArgs),
    /// One share cell in a fresh process.
    #[command(name = machines::ShareCellArgs::COMMAND, hide = true)]
    ShareCell(machines::ShareCellArgs),
    /// A torture campaign's process.
    #[command(name = torture::TortureChild::COMMAND, hide = true, subcommand)]
    TortureChild(torture::TortureChild),
    /// A measurement that needs a process of its own.
    #[command(name = bench::BenchChild::COMMAND, hide = true, subcommand)]
    BenchChild(bench::BenchChild),
}

/// An engine, as the command lines name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum EngineArg {
    Sqlite,
    Duckdb,
}

impl EngineArg {
    /// As the command lines write it.
    pub(crate) fn as_str(self) -> &'static str {
        Engine::from(self).as_str()
    }
}

impl From<EngineArg> for Engine {
    fn from(engine: EngineArg) -> Engine {
        match engine {
            EngineArg::Sqlite => Engine::Sqlite,
            EngineArg::Duckdb => Engine::Duckdb,
        }
    }
}

impl From<Engine> for EngineArg {
    fn from(engine: Engine) -> EngineArg {
        match engine {
            Engine::Sqlite => EngineArg::Sqlite,
            // The only other engine; `Engine` is non-exhaustive.
            _ => EngineArg::Duckdb,
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().task {
        Task::FaultMatrix(arguments) => matrix::run(arguments),
        Task::Bench(arguments) => bench::run(arguments),
        Task::Torture(arguments) => torture::run(arguments),
        Task::MatrixCell(arguments) => matrix::cell_child(arguments),
        Task::MatrixMigrateAndDie(arguments) => matrix::migrate_and_die(arguments),
        Task::MatrixHoldLock => matrix::hold_lock(),
        Task::PowerWorkload(arguments) => power::workload(arguments),
        Task::PowerCell(arguments) => power::cell_child(arguments),
        Task::ShareWriter(arguments) => machines::writer(arguments),
        Task::ShareCell(arguments) => machines::cell_child(arguments),
        Task::ShareTorture(arguments) => machines::torture_child(arguments),
        Task::TortureChild(child) => torture::child(child),
        Task::BenchChild(child) => bench::child(child),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn each_task_has_help_and_bad_values_name_their_flag() {
        for task in ["fault-matrix", "bench", "torture"] {
            let help = Cli::try_parse_from(["xtask", task, "--help"]).expect_err("help");
            assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp, "{task}");
        }
        for (arguments, flag) in [
            (&["fault-matrix", "--format", "yaml"][..], "--format"),
            (&["fault-matrix", "--engine", "postgres"], "--engine"),
            (&["torture", "--tearing", "sometimes"], "--tearing"),
            (&["bench", "--jsn"], "--jsn"),
        ] {
            let error =
                Cli::try_parse_from(std::iter::once("xtask").chain(arguments.iter().copied()))
                    .expect_err("invalid");
            assert!(error.to_string().contains(flag), "{arguments:?}: {error}");
        }
        let matrix = Cli::try_parse_from([
            "xtask",
            "fault-matrix",
            "--format",
            "json",
            "--engine",
            "duckdb",
            "--fault",
            "power-loss",
        ])
        .expect("valid");
        assert!(matches!(matrix.task, Task::FaultMatrix(_)));
    }
}
