//! The table (with what each baseline does under its figure), the JSON (serde), and the table of
//! targets BENCHMARKS.md holds.

use std::time::Duration;

use serde::Serialize;

use super::figure::{Figure, Outcome, Verdict};
use super::samples::Samples;
use super::{clones, commit_rates, connections, duckdb_opens, recovery, snapshots, sqlite_opens};

/// The whole bench should take at most this long on two cores (BENCHMARKS.md).
const BUDGET: Duration = Duration::from_secs(600);

/// One side of a figure in the JSON.
#[derive(Debug, Serialize)]
struct SamplesJson {
    median: f64,
    min: f64,
    max: f64,
    runs: usize,
}

impl SamplesJson {
    fn of(samples: &Samples) -> SamplesJson {
        SamplesJson {
            median: rounded(samples.median(), 4),
            min: rounded(samples.min(), 4),
            max: rounded(samples.max(), 4),
            runs: samples.runs(),
        }
    }
}

/// One figure in the JSON (the shape is in the bench module's documentation).
#[derive(Debug, Serialize)]
struct FigureJson<'a> {
    name: &'a str,
    section: &'a str,
    unit: &'static str,
    store: Option<SamplesJson>,
    baseline_name: &'a str,
    baseline_does: &'a str,
    baseline: Option<SamplesJson>,
    ratio: Option<f64>,
    ratio_interval: Option<[f64; 2]>,
    target: String,
    bound: Option<f64>,
    reason: &'a str,
    verdict: &'static str,
    note: Option<String>,
}

impl<'a> FigureJson<'a> {
    fn of(figure: &'a Figure) -> FigureJson<'a> {
        let (store, baseline) = match &figure.outcome {
            Outcome::Measured {
                store, baseline, ..
            } => (
                Some(SamplesJson::of(store)),
                Some(SamplesJson::of(baseline)),
            ),
            Outcome::Skipped { .. } => (None, None),
        };
        FigureJson {
            name: figure.spec.name,
            section: figure.spec.section.name(),
            unit: figure.spec.unit.as_str(),
            store,
            baseline_name: figure.spec.baseline_name,
            baseline_does: figure.spec.baseline_does,
            baseline,
            ratio: figure.ratio().map(significant),
            ratio_interval: figure
                .ratio_interval()
                .map(|(low, high)| [significant(low), significant(high)]),
            target: figure.target_text(),
            bound: figure.bound().map(significant),
            reason: figure.spec.reason,
            verdict: figure.verdict().as_str(),
            note: figure.note_text(),
        }
    }
}

/// `value` to `decimals` places: the runs' spread makes more digits noise.
fn rounded(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// A ratio to four significant digits: a clone against a copy is 0.0008, not 0.
fn significant(value: f64) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    let decimals = 3 - value.abs().log10().floor() as i32;
    rounded(value, decimals.max(0))
}

/// A number as the table prints it: three decimals below 100, none above.
fn number(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

/// A ratio: two decimals, more for the small ones (a clone against a copy).
fn ratio_text(ratio: f64) -> String {
    if ratio < 0.1 {
        format!("{ratio:.4}x")
    } else {
        format!("{ratio:.2}x")
    }
}

fn spread(samples: &Samples) -> String {
    format!(
        "{} ({}-{})",
        number(samples.median()),
        number(samples.min()),
        number(samples.max())
    )
}

/// A row's cells: figure, store, baseline, runs, ratio (interval), target, verdict.
fn cells(figure: &Figure) -> [String; 7] {
    let unit = figure.spec.unit.as_str();
    match &figure.outcome {
        Outcome::Measured {
            store, baseline, ..
        } => {
            let ratio = figure.ratio().unwrap_or(f64::NAN);
            let (low, high) = figure.ratio_interval().unwrap_or((f64::NAN, f64::NAN));
            [
                figure.spec.name.to_owned(),
                format!("{} {unit}", spread(store)),
                format!("{} {unit}", spread(baseline)),
                format!("{}/{}", store.runs(), baseline.runs()),
                format!(
                    "{} ({}-{})",
                    ratio_text(ratio),
                    ratio_text(low),
                    ratio_text(high)
                ),
                figure.target_text(),
                match figure.verdict() {
                    Verdict::Ok => "ok".to_owned(),
                    Verdict::Missed => "MISSED".to_owned(),
                    Verdict::None => "-".to_owned(),
                },
            ]
        }
        Outcome::Skipped { .. } => [
            figure.spec.name.to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            "-".to_owned(),
            figure.target_text(),
            "skipped".to_owned(),
        ],
    }
}

pub(super) fn print_figures(figures: &[Figure], json: bool, elapsed: Duration) {
    let summary = summary(figures, elapsed);
    if json {
        let figures: Vec<FigureJson<'_>> = figures.iter().map(FigureJson::of).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&figures).expect("figures are strings and numbers")
        );
        eprintln!("bench: {summary}");
        return;
    }
    let header = [
        "figure",
        "store median (min-max)",
        "baseline median (min-max)",
        "runs",
        "ratio (90% interval)",
        "target",
        "verdict",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 7]> = figures.iter().map(cells).collect();
    let mut widths = header.clone().map(|cell| cell.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |row: &[String; 7]| {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(column, (cell, width))| {
                // Names and targets read from the left, numbers from the right.
                if matches!(column, 0 | 5 | 6) {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        format!("| {} |", cells.join(" | "))
    };
    println!("{}", line(&header));
    let rule: Vec<String> = widths.iter().map(|width| "-".repeat(width + 2)).collect();
    println!("|{}|", rule.join("|"));
    for (figure, row) in figures.iter().zip(&rows) {
        println!("{}", line(row));
        // Under each figure, in its first column (a row of one cell in Markdown): what the
        // baseline does, and what else the run saw.
        println!("|   baseline: {} |", figure.spec.baseline_does);
        if let Some(note) = figure.note_text() {
            println!("|   note: {note} |");
        }
    }
    println!(
        "\nratio = store median / baseline median, with the 90% bootstrap interval of that ratio; \
         runs = store's/the baseline's. A target bounds a time ratio from above and a rate ratio \
         from below; every target and its reason is in BENCHMARKS.md. Runs a side (\"until \
         settled\": until the ratio's interval is within 5% of it): opens {} ({} sqlite or {} \
         duckdb opens a run, the mean); first opens {} fresh processes; checkouts {} ({} a \
         run); pending migration {}; recovery {}; copies {}; clones {} for store, {} for cp; \
         commit rates {}, a fresh process of {} ms each ({} in DELETE). The opt-out rows are \
         store at synchronous=normal against store at its default: what giving up power-safe \
         commits buys.\n{summary}",
        sqlite_opens::RUNS.describe(),
        sqlite_opens::OPENS_PER_RUN,
        duckdb_opens::OPENS_PER_RUN,
        sqlite_opens::FIRST_OPEN_PROCESSES,
        connections::RUNS.describe(),
        connections::CHECKOUTS_PER_RUN,
        duckdb_opens::MIGRATION_RUNS.describe(),
        recovery::RUNS.describe(),
        snapshots::COPY_RUNS.describe(),
        clones::SNAPSHOT_RUNS.describe(),
        clones::CP_RUNS,
        commit_rates::RUNS.describe(),
        commit_rates::COMMIT_WINDOW.as_millis(),
        commit_rates::DELETE_RUNS.describe(),
    );
}

/// `N figures: N ok, N missed, N skipped. Whole bench: N s (budget 600 s).`
fn summary(figures: &[Figure], elapsed: Duration) -> String {
    let count = |verdict: Verdict| {
        figures
            .iter()
            .filter(|figure| figure.verdict() == verdict)
            .count()
    };
    format!(
        "{} figure{}: {} ok, {} missed, {} skipped. Whole bench: {:.0} s (budget {} s).",
        figures.len(),
        if figures.len() == 1 { "" } else { "s" },
        count(Verdict::Ok),
        count(Verdict::Missed),
        count(Verdict::None),
        elapsed.as_secs_f64(),
        BUDGET.as_secs()
    )
}

/// The table of targets BENCHMARKS.md holds, section by section: each figure, its target, what
/// the baseline does, and why the target.
#[cfg(test)]
pub(super) fn targets_markdown() -> String {
    use super::all_specs;
    use super::figure::{Section, Spec};
    let escape = |text: &str| text.replace('|', "\\|");
    let mut table = String::new();
    for section in Section::ALL {
        table.push_str(&format!(
            "\n### {}\n\n| figure | target | baseline | why |\n|---|---|---|---|\n",
            section.name()
        ));
        for spec in all_specs().filter(|spec: &&Spec| spec.section == section) {
            table.push_str(&format!(
                "| {} | {} | {}: {} | {} |\n",
                escape(spec.name),
                spec.target.text(),
                escape(spec.baseline_name),
                escape(spec.baseline_does),
                escape(spec.reason)
            ));
        }
    }
    table.push('\n');
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::all_specs;

    #[test]
    fn the_json_is_an_array_of_figures_from_serde() {
        let figure = Figure::measured(
            &sqlite_opens::NEW_FILE,
            Samples(vec![1.0, 2.0, 3.000_04]),
            Samples(vec![2.0, 2.0, 2.0]),
        );
        let skipped = Figure::skipped(&clones::XFS_SMALL, "cannot mount");
        let json = serde_json::to_value(vec![FigureJson::of(&figure), FigureJson::of(&skipped)])
            .expect("serializes");
        assert_eq!(json[0]["name"], "sqlite open, new file (WAL)");
        assert_eq!(json[0]["section"], "sqlite opens");
        assert_eq!(json[0]["store"]["max"], 3.0);
        assert_eq!(json[0]["ratio"], 1.0);
        assert_eq!(json[0]["target"], "<= 1.50x");
        assert_eq!(json[0]["bound"], 1.5);
        assert_eq!(json[0]["verdict"], "ok");
        assert_eq!(
            json[0]["baseline_does"],
            sqlite_opens::NEW_FILE.baseline_does
        );
        assert!(json[0]["ratio_interval"].is_array());
        assert_eq!(json[1]["verdict"], "none");
        assert!(json[1]["store"].is_null() && json[1]["ratio"].is_null());
        assert_eq!(json[1]["note"], "skipped: cannot mount");
    }

    #[test]
    fn ratios_keep_four_significant_digits() {
        assert_eq!(significant(0.000_812_34), 0.000_812_3);
        assert_eq!(significant(1.234_56), 1.235);
        assert_eq!(significant(38.181_23), 38.18);
        assert_eq!(significant(12_345.6), 12_346.0);
    }

    #[test]
    fn every_figure_has_a_reason_and_says_what_its_baseline_does() {
        for spec in all_specs() {
            assert!(spec.reason.len() > 40, "{}: {}", spec.name, spec.reason);
            assert!(
                spec.baseline_does.len() > 40,
                "{}: {}",
                spec.name,
                spec.baseline_does
            );
        }
        // Every section's specs are in the table.
        let table = targets_markdown();
        for spec in recovery::SPECS
            .iter()
            .chain(snapshots::SPECS)
            .chain(commit_rates::SPECS)
        {
            assert!(table.contains(spec.name), "{}", spec.name);
        }
    }
}
