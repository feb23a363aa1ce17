//! The matrix's three faces: an aligned table (the default), Markdown, and JSON (serde, the shape
//! documented in [`super`]).

use std::time::Duration;

use serde::Serialize;

use super::cells::Outcome;
use super::judge::Verdict;
use super::observe::{Check, MovedFile, Observed, Rows};
use super::run::Row;
use crate::power::{self, PowerRow};

/// The row counts as the table shows them: acknowledged, required, kept, lost with a report,
/// lost without one (`-` where the rows were not read).
fn row_columns(rows: Option<&Rows>) -> [String; 5] {
    match rows {
        Some(rows) => [
            rows.acknowledged,
            rows.required,
            rows.kept,
            rows.lost_reported,
            rows.lost_silent,
        ]
        .map(|count| count.to_string()),
        None => ["-", "-", "-", "-", "-"].map(str::to_owned),
    }
}

/// Checks that held, of those made (`-` when none was made).
fn checks_text(observed: &Observed) -> String {
    if observed.checks.is_empty() {
        return "-".into();
    }
    let held = observed.checks.iter().filter(|check| check.holds).count();
    format!("{held}/{}", observed.checks.len())
}

/// The summary line: cells by verdict, and what became of the acknowledged rows.
pub(super) fn summary(rows: &[Row], wall: Duration) -> String {
    let count = |verdict| {
        rows.iter()
            .filter(|row| row.judgement.verdict == verdict)
            .count()
    };
    let failed = rows
        .iter()
        .filter(|row| row.judgement.verdict.failed())
        .count();
    let counted = |field: fn(&Rows) -> u64| {
        rows.iter()
            .filter_map(|row| row.observed.rows.as_ref())
            .map(field)
            .sum::<u64>()
    };
    format!(
        "{} cells, {} as expected, {failed} failed, {} skipped; acknowledged rows: {} checked, \
         {} lost beyond expectation, {} lost with a report, {} lost silently ({:.1} s)",
        rows.len(),
        count(Verdict::AsExpected),
        count(Verdict::Skipped),
        counted(|rows| rows.acknowledged),
        counted(|rows| rows.required_missing),
        counted(|rows| rows.lost_reported),
        counted(|rows| rows.lost_silent),
        wall.as_secs_f64()
    )
}

const COLUMNS: [&str; 15] = [
    "",
    "engine",
    "fault",
    "policy",
    "expected",
    "actual",
    "keep",
    "acked",
    "required",
    "kept",
    "lost reported",
    "lost silent",
    "moved",
    "checks",
    "ms",
];

fn columns(row: &Row) -> [String; 15] {
    let [acknowledged, required, kept, lost_reported, lost_silent] =
        row_columns(row.observed.rows.as_ref());
    [
        row.judgement.verdict.mark().to_owned(),
        row.cell.engine.to_string(),
        row.cell.fault.name().to_owned(),
        row.cell.policy.name().to_owned(),
        row.cell.expected.to_string(),
        row.observed.actual_text(),
        row.cell.keep.describe().to_owned(),
        acknowledged,
        required,
        kept,
        lost_reported,
        lost_silent,
        row.observed.moved_aside.len().to_string(),
        checks_text(&row.observed),
        row.elapsed.as_millis().to_string(),
    ]
}

/// Prints `body` under `header`, each column as wide as its widest cell.
fn print_aligned<const N: usize>(header: &[&str; N], body: &[[String; N]]) {
    let widths: Vec<usize> = (0..N)
        .map(|column| {
            body.iter()
                .map(|line| line[column].len())
                .chain([header[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let print_line = |cells: &[&str]| {
        let line: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    };
    print_line(header);
    for line in body {
        print_line(&line.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

pub(super) fn print_table(rows: &[Row], wall: Duration) {
    let body: Vec<[String; 15]> = rows.iter().map(columns).collect();
    print_aligned(&COLUMNS, &body);
    for row in rows.iter().filter(|row| row.judgement.verdict.failed()) {
        println!(
            "  {}: {}; {}",
            row.cell.name(),
            row.judgement.reasons.join("; "),
            row.observed.detail
        );
    }
    println!("{}", summary(rows, wall));
}

pub(super) fn print_power_table(rows: &[PowerRow]) {
    let body: Vec<[String; 14]> = rows.iter().map(power::power_columns).collect();
    println!();
    print_aligned(&power::POWER_COLUMNS, &body);
    for problem in power::power_problems(rows) {
        println!("  {problem}");
    }
    println!("{}", power::power_summary(rows));
}

pub(super) fn print_markdown(rows: &[Row], wall: Duration) {
    println!("| {} |", COLUMNS.join(" | "));
    println!("|{}", "---|".repeat(COLUMNS.len()));
    for row in rows {
        let mut cells = columns(row);
        for code in [4, 5] {
            cells[code] = format!("`{}`", cells[code]);
        }
        println!("| {} |", cells.join(" | "));
    }
    println!("\n{}", summary(rows, wall));
}

pub(super) fn print_power_markdown(rows: &[PowerRow]) {
    println!("\n| {} |", power::POWER_COLUMNS.join(" | "));
    println!("|{}", "---|".repeat(power::POWER_COLUMNS.len()));
    for row in rows {
        println!("| {} |", power::power_columns(row).join(" | "));
    }
    println!("\n{}", power::power_summary(rows));
}

/// The whole run, as `--format json` prints it.
#[derive(Debug, Serialize)]
struct MatrixJson<'a> {
    summary: String,
    cells: Vec<CellJson<'a>>,
    power_summary: String,
    power_cells: Vec<PowerCellJson>,
    /// Two machines on a real share, one object per cell: `cell`, `verdict` and `result`.
    share_cells: Vec<crate::machines::ShareRowJson<'a>>,
}

/// One cell's row.
#[derive(Debug, Serialize)]
struct CellJson<'a> {
    engine: &'static str,
    fault: &'static str,
    policy: &'static str,
    expected: Outcome,
    /// The outcome, `skipped: ...` or `cell-failed`, as the table's column.
    actual: String,
    /// The table's mark: `ok`, `skip`, `DIFF`, `LOST`...
    verdict: &'static str,
    reasons: &'a [String],
    keep: &'static str,
    /// `null` where the rows were not read.
    rows: Option<Rows>,
    moved_aside: &'a [MovedFile],
    checks: &'a [Check],
    skipped: Option<&'a str>,
    elapsed_ms: u64,
    detail: &'a str,
}

impl<'a> CellJson<'a> {
    fn of(row: &'a Row) -> CellJson<'a> {
        CellJson {
            engine: row.cell.engine.as_str(),
            fault: row.cell.fault.name(),
            policy: row.cell.policy.name(),
            expected: row.cell.expected,
            actual: row.observed.actual_text(),
            verdict: row.judgement.verdict.mark(),
            reasons: &row.judgement.reasons,
            keep: row.cell.keep.describe(),
            rows: row.observed.rows,
            moved_aside: &row.observed.moved_aside,
            checks: &row.observed.checks,
            skipped: row.observed.skipped.as_deref(),
            elapsed_ms: duration_ms(row.elapsed),
            detail: &row.observed.detail,
        }
    }
}

/// One power-loss cell's row: the power table's columns, named as its headers (`verdict` for
/// the mark), counts `null` where the run gave none.
#[derive(Debug, Serialize)]
struct PowerCellJson {
    verdict: &'static str,
    engine: &'static str,
    power_cut: &'static str,
    setup: &'static str,
    promise: &'static str,
    actual: String,
    acked: Option<u64>,
    survived: Option<u64>,
    lost_by_design: Option<u64>,
    lost_reported: Option<u64>,
    lost_beyond_promise: Option<u64>,
    phantom: Option<u64>,
    pending_bytes: Option<u64>,
    pending_bytes_dropped: Option<u64>,
    ms: u64,
}

impl PowerCellJson {
    fn of(row: &PowerRow) -> PowerCellJson {
        let observed = row.result.as_ref().ok();
        let count = |field: fn(&power::PowerObserved) -> u64| observed.map(field);
        PowerCellJson {
            verdict: row.verdict().mark(),
            engine: row.cell.setup.engine().as_str(),
            power_cut: row.cell.point.short_name(),
            setup: row.cell.setup.name(),
            promise: row.cell.promise().describe(),
            actual: row.actual_text(),
            acked: count(|observed| observed.acknowledged),
            survived: count(|observed| observed.survived),
            lost_by_design: count(|observed| observed.lost_by_design),
            lost_reported: count(|observed| observed.lost_with_report),
            lost_beyond_promise: count(|observed| observed.lost_beyond_promise),
            phantom: count(|observed| observed.phantom_rows),
            pending_bytes: count(|observed| observed.pending_bytes),
            pending_bytes_dropped: count(|observed| observed.pending_bytes_dropped),
            ms: duration_ms(row.elapsed),
        }
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

pub(super) fn print_json(
    rows: &[Row],
    power_rows: &[PowerRow],
    share_rows: &[crate::machines::ShareRow],
    wall: Duration,
) {
    let matrix = MatrixJson {
        summary: summary(rows, wall),
        cells: rows.iter().map(CellJson::of).collect(),
        power_summary: power::power_summary(power_rows),
        power_cells: power_rows.iter().map(PowerCellJson::of).collect(),
        share_cells: share_rows
            .iter()
            .map(crate::machines::ShareRow::json)
            .collect(),
    };
    println!(
        "{}",
        serde_json::to_string(&matrix).expect("the matrix is strings and numbers")
    );
}
