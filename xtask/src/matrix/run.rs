//! The parent's loop: each selected cell in a fresh child process, on a few workers, judged as its
//! result comes back, with a line of progress on standard error per cell.

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::cells::Cell;
use super::child::CellChild;
use super::judge::{Judgement, judge};
use super::observe::Observed;
use super::wire;
use crate::limits::{CELL_TIME_LIMIT, run_within};

/// A cell, what its child observed, how long it took, and the verdict.
pub(super) struct Row {
    pub(super) cell: &'static Cell,
    pub(super) observed: Observed,
    pub(super) elapsed: Duration,
    pub(super) judgement: Judgement,
}

/// Runs the cells on up to four workers (this machine's cores), printing progress to stderr;
/// the rows come back in the cells' order.
pub(super) fn run_cells(cells: &[&'static Cell]) -> Vec<Row> {
    let queue = Mutex::new(cells.iter().copied().enumerate());
    let results: Mutex<Vec<(usize, Row)>> = Mutex::new(Vec::new());
    let done = Mutex::new(0usize);
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().expect("queue").next();
                    let Some((position, cell)) = next else { break };
                    let started = Instant::now();
                    let observed = run_cell_in_child(cell);
                    let elapsed = started.elapsed();
                    let judgement = judge(cell, &observed);
                    let mut finished = done.lock().expect("counter");
                    *finished += 1;
                    eprintln!(
                        "[{:>2}/{}] {:<6} {:<50} {:>6} ms  {}",
                        *finished,
                        cells.len(),
                        judgement.verdict.mark(),
                        cell.name(),
                        elapsed.as_millis(),
                        observed.actual_text()
                    );
                    drop(finished);
                    results.lock().expect("results").push((
                        position,
                        Row {
                            cell,
                            observed,
                            elapsed,
                            judgement,
                        },
                    ));
                }
            });
        }
    });
    let mut rows = results.into_inner().expect("results");
    rows.sort_by_key(|(position, _)| *position);
    rows.into_iter().map(|(_, row)| row).collect()
}

/// Runs `cell` in a child process and reads its result; a child that gave none is a setup
/// failure with the last line it wrote to stderr, and one that ran past [`CELL_TIME_LIMIT`] is
/// killed and fails as timed out, with the cell named in the row.
fn run_cell_in_child(cell: &Cell) -> Observed {
    run_cell_within(cell, CELL_TIME_LIMIT)
}

fn run_cell_within(cell: &Cell, limit: Duration) -> Observed {
    let executable = match std::env::current_exe() {
        Ok(executable) => executable,
        Err(error) => return Observed::setup_failed(error.to_string()),
    };
    let finished = match run_within(
        Command::new(executable).args(CellChild::arguments(cell)),
        limit,
    ) {
        Ok(finished) => finished,
        Err(error) => return Observed::setup_failed(error.to_string()),
    };
    if finished.timed_out {
        return Observed::timed_out(finished.why_no_result(limit));
    }
    let stdout = String::from_utf8_lossy(&finished.stdout);
    wire::decode(&stdout).unwrap_or_else(|problem| {
        Observed::setup_failed(format!(
            "the cell's child gave no result ({problem}): {}",
            finished.why_no_result(limit)
        ))
    })
}
