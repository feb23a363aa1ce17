//! A cell's own process, `xtask __matrix-cell ENGINE/FAULT/POLICY`: process-global faults and
//! mounts stay contained in it. It runs the cell's body in a fresh temporary directory and prints
//! what it observed as one result line ([`super::wire`]).

use std::io::Write as _;
use std::process::ExitCode;

use store_core::Engine;

use super::cells::{Cell, cell_named};
use super::error::CellError;
use super::observe::Observed;
use super::{duckdb_cells, sqlite_cells, wire};

/// `xtask __matrix-cell ENGINE/FAULT/POLICY`: one cell in this (fresh) process.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub(crate) struct CellChild {
    /// The cell's name as the tables print it.
    #[arg(value_parser = cell_named, value_name = "ENGINE/FAULT/POLICY")]
    cell: &'static Cell,
}

impl CellChild {
    /// The hidden command's name, as the parent spawns it.
    pub(crate) const COMMAND: &str = "__matrix-cell";

    /// The command line that runs `cell` in a child (after the executable).
    pub(super) fn arguments(cell: &Cell) -> [String; 2] {
        [Self::COMMAND.to_owned(), cell.name()]
    }
}

/// Runs the cell and prints its result line.
pub(crate) fn cell_child(arguments: CellChild) -> ExitCode {
    let observed = match run_cell(arguments.cell) {
        Ok(observed) => observed,
        Err(CellError::Unsupported(reason)) => Observed::skipped(reason),
        Err(CellError::Setup(detail)) => Observed::setup_failed(detail),
    };
    println!("{}", wire::encode(&observed));
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}

fn run_cell(cell: &Cell) -> Result<Observed, CellError> {
    let directory = tempfile::Builder::new().prefix("store-matrix-").tempdir()?;
    match cell.engine {
        Engine::Sqlite => sqlite_cells::run(cell, directory.path()),
        _ => duckdb_cells::run(cell, directory.path()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::matrix::cells::CELLS;
    use crate::{Cli, Task};

    #[test]
    fn the_child_parses_what_the_parent_spawns() {
        for cell in CELLS {
            let parsed = Cli::try_parse_from(
                std::iter::once("xtask".to_owned()).chain(CellChild::arguments(cell)),
            )
            .unwrap_or_else(|error| panic!("{}: {error}", cell.name()));
            assert_eq!(parsed.task, Task::MatrixCell(CellChild { cell }));
        }
        let unknown = Cli::try_parse_from(["xtask", CellChild::COMMAND, "sqlite/typo/default"])
            .expect_err("no such fault");
        assert!(unknown.to_string().contains("typo"), "{unknown}");
    }
}
