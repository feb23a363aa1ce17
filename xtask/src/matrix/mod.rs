//! `cargo xtask fault-matrix`: every engine x fault x policy cell, each in a fresh child process of
//! xtask (`__matrix-cell ENGINE/FAULT/POLICY`) and its own temporary directory, judged against its
//! written expectation and against the promises store makes whatever the cell:
//!
//! - the outcome: opened, fell back, recovered by a step, or a propagated error class;
//! - the rows the cell's [`cells::Keep`] requires are there, and no row that must not be;
//! - every acknowledged row that is missing lies inside the loss the open's report names
//!   ([`crate::oracle`]); any other is a silent loss and fails the cell (a torn DuckDB WAL tail
//!   included: store's WAL reader finds it before DuckDB drops it, and reports it);
//! - every file the report says it moved aside stands at its new name with the bytes that stood
//!   at the old one and permissions no wider, and a recovery moved at least what it replaced;
//! - after a migrating process is killed, the files hold the schema version its commits imply,
//!   with exactly the effects of the migrations up to it, and store's reopen reaches the latest
//!   version with every migration applied exactly once.
//!
//! Then the power-loss cells ([`crate::power`]), one process each on a lossy FUSE mount.
//!
//! One file per job: [`cells`] (the table), [`sqlite_cells`] and [`duckdb_cells`] (the cells'
//! bodies, run in the child by [`child`](mod@child), stopped by an [`error::CellError`]),
//! [`finish`] (what every body does once its open returned), [`observe`] (what a child observes),
//! [`kill`] and [`schema`] (the killed cells), [`wire`] (the child's result line),
//! [`run`](mod@run) (the parent's workers), [`judge`] (verdicts), [`print`](mod@print) (table,
//! Markdown, JSON).
//!
//! # JSON (`--format json`)
//!
//! One object on one line:
//!
//! ```text
//! {
//!   "summary": "35 cells, 35 as expected, ...",        the table's summary line
//!   "cells": [{
//!     "engine": "duckdb", "fault": "wal-garbage", "policy": "default",
//!     "expected": "recovered(salvage-wal)",            an outcome, as the table writes it
//!     "actual": "recovered(salvage-wal)",               or "skipped: WHY", "cell-failed", "timed-out"
//!     "verdict": "ok",                                  ok, skip, SETUP, TIMEOUT, DIFF, TOUCH, LOST,
//!                                                       ROWS, SILENT, MOVED, SCHEMA, BOUND
//!     "reasons": ["..."],                               why it failed; empty when ok
//!     "keep": "all",                                    all, before damage, checkpointed, snapshot,
//!                                                       untouched
//!     "rows": {"acknowledged": 100, "required": 100, "kept": 100, "required_missing": 0,
//!              "lost_reported": 0, "lost_silent": 0, "unexpected": 0},   or null: not read
//!     "moved_aside": [{"from": "cell.duckdb.wal", "to": "..."}],
//!     "checks": [{"kind": "moved-aside", "holds": true, "detail": "..."}],
//!     "skipped": null,                                  or why the cell could not run here
//!     "elapsed_ms": 812,
//!     "detail": "..."                                   the open's report or error
//!   }],
//!   "power_summary": "17 power-loss cells, ...",
//!   "power_cells": [{
//!     "verdict": "ok", "engine": "sqlite", "power_cut": "after-commits", "setup": "wal",
//!     "promise": "every acknowledged", "actual": "opened(wal)",
//!     "acked": 50, "survived": 50, "lost_by_design": 0, "lost_reported": 0,
//!     "lost_beyond_promise": 0, "phantom": 0,           counts null when the run gave none
//!     "ms": 400
//!   }]
//! }
//! ```

use std::process::ExitCode;
use std::time::Instant;

use store_core::Engine;

mod cells;
mod child;
mod duckdb_cells;
mod error;
mod finish;
mod judge;
mod kill;
mod observe;
mod print;
mod run;
mod schema;
mod sqlite_cells;
mod wire;

pub(crate) use child::{CellChild, cell_child};
pub(crate) use duckdb_cells::{HOLD_LOCK_COMMAND, hold_lock};
pub(crate) use kill::{MigrateAndDie, migrate_and_die};

use crate::EngineArg;
use crate::power;

/// How the results are printed on standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// An aligned table per part, failures and a summary line under each.
    Table,
    /// One JSON object (the shape is in the module's documentation).
    Json,
    /// Markdown tables.
    Markdown,
}

/// `cargo xtask fault-matrix`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct MatrixArgs {
    /// How to print the results.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Only this engine's cells.
    #[arg(long, value_enum)]
    engine: Option<EngineArg>,
    /// Only the cells whose fault (or power cut) contains TEXT, as `power-loss` or `wal`.
    #[arg(long, value_name = "TEXT")]
    fault: Option<String>,
}

/// Runs the selected cells, prints them, and fails if any cell failed.
pub(crate) fn run(arguments: MatrixArgs) -> ExitCode {
    let engine = arguments.engine.map(Engine::from);
    let fault = arguments.fault.as_deref();
    let selected: Vec<&'static cells::Cell> = cells::CELLS
        .iter()
        .filter(|cell| engine.is_none_or(|engine| cell.engine == engine))
        .filter(|cell| fault.is_none_or(|fault| cell.fault.name().contains(fault)))
        .collect();
    let share_selected = crate::machines::selected_cells(engine, fault);
    if selected.is_empty()
        && power::selected_cells(engine, fault).is_empty()
        && share_selected.is_empty()
    {
        eprintln!("fault-matrix: no cell matches the filters");
        return ExitCode::from(2);
    }
    let started = Instant::now();
    let rows = run::run_cells(&selected);
    // Power cuts run after the other cells: they mount FUSE filesystems, one per cell.
    let power_rows = power::run_matrix(engine, fault);
    // Two machines on real shares run last: each starts its servers.
    let share_rows = crate::machines::run_matrix(&share_selected);
    let wall = started.elapsed();
    match arguments.format {
        Format::Table => {
            print::print_table(&rows, wall);
            print::print_power_table(&power_rows);
            crate::machines::print_table(&share_rows);
        }
        Format::Markdown => {
            print::print_markdown(&rows, wall);
            print::print_power_markdown(&power_rows);
            crate::machines::print_table(&share_rows);
        }
        Format::Json => print::print_json(&rows, &power_rows, &share_rows, wall),
    }
    if rows.iter().any(|row| row.judgement.verdict.failed())
        || power_rows.iter().any(|row| row.verdict().failed())
        || share_rows.iter().any(|row| row.result.failed())
    {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
