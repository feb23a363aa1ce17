//! `cargo xtask bench`: what store's safety costs, measured side by side with a raw baseline in
//! one run. Each figure is store's samples against the baseline's, the ratio of their medians, and
//! a target that ratio is held to; every target and the reason for it is in `BENCHMARKS.md` at the
//! repository root (the table there is generated from the figures' [`Spec`]s, and a test keeps the
//! two equal). A figure that misses its target stays in the table as missed; the bench asserts
//! nothing about time and exits 0 unless a measurement fails.
//!
//! It runs in the release profile: a debug xtask re-runs itself with `cargo run --release`. Each
//! figure alternates store and baseline runs, so that drift of the machine hits both. Figures that
//! need a process of their own (a fault installed, a first open in a fresh process, a loop mount
//! in a private mount namespace) run in children of xtask (`xtask __bench-child ...`, [`child`](mod@child)).
//! Figures with a wide spread run until the ratio's interval settles ([`samples::Runs`]).
//!
//! One file per job: [`figure`] (a figure's fixed description and its verdict), [`samples`]
//! (runs, medians, the ratio's interval), [`support`] (what several sections share), a file per
//! section ([`sqlite_opens`], [`connections`], [`fallback`], [`duckdb_opens`], [`recovery`],
//! [`snapshots`], [`clones`], [`commit_rates`]), [`child`](mod@child) (the hidden child commands),
//! [`print`](mod@print) (the table and the JSON).
//!
//! `--only NAME` (repeatable) runs the figures whose name or section contains NAME (any case).
//!
//! Progress goes to standard error ([`crate::progress`]): a bar on a terminal, a line per section
//! elsewhere. Standard output gets the table, or under `--json` only this array (serde):
//!
//! ```text
//! [{
//!   "name": "sqlite open, new file (WAL)",
//!   "section": "sqlite opens",
//!   "unit": "ms",                                ms, us or commits/s
//!   "store": {"median": 1.2345, "min": 1.1, "max": 1.5, "runs": 7},        null when skipped
//!   "baseline_name": "rusqlite open + same pragmas",
//!   "baseline_does": "rusqlite::Connection::open of a new path, ...",
//!   "baseline": {"median": 1.2, "min": 1.1, "max": 1.4, "runs": 7},        null when skipped
//!   "ratio": 1.029,                              store median / baseline median, or null
//!   "ratio_interval": [1.01, 1.05],              90% bootstrap interval of the ratio, or null
//!   "target": "<= 1.50x",                        as BENCHMARKS.md states it, resolved where it
//!                                                depends on the run ("<= 1.10x + snapshot ...")
//!   "bound": 1.5,                                the number the ratio is held to, or null
//!   "reason": "...",                             why this target
//!   "verdict": "ok",                             ok, missed, or none (skipped)
//!   "note": null                                 what else the run saw (cloned or copied, why
//!                                                skipped)
//! }]
//! ```

use std::process::{Command, ExitCode};
use std::time::Instant;

use crate::progress::Progress;

pub(crate) mod child;
mod clones;
mod commit_rates;
mod connections;
mod duckdb_opens;
mod fallback;
mod figure;
mod print;
mod recovery;
mod samples;
mod snapshots;
mod sqlite_opens;
mod support;

pub(crate) use child::{BenchChild, child};
use figure::{Figure, Section, Spec};
use support::BenchResult;

/// `cargo xtask bench`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct BenchArgs {
    /// Print the figures as JSON on standard output (progress stays on standard error).
    #[arg(long)]
    json: bool,
    /// Run only the figures whose name or section contains NAME (any case); repeatable.
    #[arg(long, value_name = "NAME", value_parser = parse_only)]
    only: Vec<String>,
}

impl BenchArgs {
    /// The arguments after `bench` that ask for the same again.
    fn arguments(&self) -> Vec<String> {
        let mut arguments = Vec::new();
        if self.json {
            arguments.push("--json".to_owned());
        }
        for name in &self.only {
            arguments.push("--only".to_owned());
            arguments.push(name.clone());
        }
        arguments
    }
}

/// Every figure the bench knows, section by section, in the order of the table.
fn all_specs() -> impl Iterator<Item = &'static Spec> {
    [
        sqlite_opens::SPECS,
        connections::SPECS,
        fallback::SPECS,
        duckdb_opens::SPECS,
        recovery::SPECS,
        snapshots::SPECS,
        clones::SPECS,
        commit_rates::SPECS,
    ]
    .into_iter()
    .flatten()
    .copied()
}

/// Whether `pattern` (an `--only` value) names `spec`: a substring of its name or its section's,
/// in any case.
fn names(pattern: &str, spec: &Spec) -> bool {
    let pattern = pattern.to_lowercase();
    spec.name.to_lowercase().contains(&pattern)
        || spec.section.name().to_lowercase().contains(&pattern)
}

/// `--only NAME`: accepted when it names at least one figure; otherwise the error lists them all.
fn parse_only(value: &str) -> Result<String, String> {
    if all_specs().any(|spec| names(value, spec)) {
        return Ok(value.to_owned());
    }
    let mut listing = String::new();
    for section in Section::ALL {
        listing.push_str(&format!("\n  {}:", section.name()));
        for spec in all_specs().filter(|spec| spec.section == section) {
            listing.push_str(&format!("\n    {}", spec.name));
        }
    }
    Err(format!(
        "no figure or section contains {value:?} (any case); the sections and figures are:{listing}"
    ))
}

/// The figures a run measures: all of them, or those `--only` names.
#[derive(Debug, Clone, Default)]
struct Selection {
    only: Vec<String>,
}

impl Selection {
    /// Whether the run measures `spec`.
    fn wants(&self, spec: &Spec) -> bool {
        self.only.is_empty() || self.only.iter().any(|pattern| names(pattern, spec))
    }

    /// Whether the run measures any figure of `section`.
    fn wants_section(&self, section: Section) -> bool {
        all_specs().any(|spec| spec.section == section && self.wants(spec))
    }
}

/// A section's measurement: the figures of its own that `Selection` wants.
type Measure = fn(&Selection) -> BenchResult<Vec<Figure>>;

pub(crate) fn run(arguments: BenchArgs) -> ExitCode {
    if cfg!(debug_assertions) && std::env::var_os("STORE_BENCH_ANY_PROFILE").is_none() {
        return rerun_in_release(&arguments);
    }
    let started = Instant::now();
    let selection = Selection {
        only: arguments.only.clone(),
    };
    let sections: [(Section, Measure); 8] = [
        (Section::SqliteOpens, sqlite_opens::measure),
        (Section::Connections, connections::measure),
        (Section::Fallback, fallback::measure),
        (Section::DuckdbOpens, duckdb_opens::measure),
        (Section::Recovery, recovery::measure),
        (Section::Snapshots, snapshots::measure),
        (Section::Clones, clones::measure),
        (Section::CommitRates, commit_rates::measure),
    ];
    let chosen: Vec<_> = sections
        .into_iter()
        .filter(|(section, _)| selection.wants_section(*section))
        .collect();
    let progress = Progress::new("bench", chosen.len() as u64);
    let mut figures = Vec::new();
    for (section, measure) in chosen {
        progress.stage(format!("measuring {}", section.name()));
        match measure(&selection) {
            Ok(measured) => figures.extend(
                measured
                    .into_iter()
                    .filter(|figure| selection.wants(figure.spec)),
            ),
            Err(error) => {
                progress.println(format!("bench: cannot measure {}: {error}", section.name()));
                return ExitCode::FAILURE;
            }
        }
        progress.step();
    }
    drop(progress);
    print::print_figures(&figures, arguments.json, started.elapsed());
    ExitCode::SUCCESS
}

/// Benchmarks in a debug build would measure the debug build: run the release xtask instead.
fn rerun_in_release(arguments: &BenchArgs) -> ExitCode {
    eprintln!(
        "bench: running the release build of xtask (the first build compiles the engines again \
         for the release profile; ccache makes that minutes, not half an hour)"
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "run",
            "--release",
            "--quiet",
            "--package",
            "xtask",
            "--",
            "bench",
        ])
        .args(arguments.arguments())
        .current_dir(support::package_directory())
        .status();
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("bench: cannot run cargo: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::{Cli, Task};

    fn bench(arguments: &[&str]) -> Result<BenchArgs, clap::Error> {
        let cli = Cli::try_parse_from(
            ["xtask", "bench"]
                .into_iter()
                .chain(arguments.iter().copied()),
        )?;
        match cli.task {
            Task::Bench(arguments) => Ok(arguments),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn only_takes_names_and_sections_in_any_case_and_repeats() {
        let arguments = bench(&["--only", "PENDING MIGRATION", "--only", "commit rates"])
            .expect("both name figures");
        let selection = Selection {
            only: arguments.only.clone(),
        };
        let chosen: Vec<_> = all_specs()
            .filter(|spec| selection.wants(spec))
            .map(|spec| spec.name)
            .collect();
        assert!(
            chosen.contains(&duckdb_opens::PENDING_MIGRATION.name),
            "{chosen:?}"
        );
        assert!(
            commit_rates::SPECS
                .iter()
                .all(|spec| chosen.contains(&spec.name))
        );
        assert!(!chosen.contains(&sqlite_opens::NEW_FILE.name), "{chosen:?}");
        assert_eq!(
            arguments.arguments(),
            ["--only", "PENDING MIGRATION", "--only", "commit rates"]
        );
        assert!(Selection::default().wants(&sqlite_opens::NEW_FILE));
    }

    #[test]
    fn an_unknown_name_is_an_error_that_lists_the_names() {
        let error = bench(&["--only", "no such figure"]).expect_err("names nothing");
        let text = error.to_string();
        assert!(text.contains("--only"), "{text}");
        for spec in all_specs() {
            assert!(
                text.contains(spec.name),
                "{} missing from {text}",
                spec.name
            );
        }
        for section in Section::ALL {
            assert!(text.contains(section.name()), "{text}");
        }
    }

    #[test]
    fn names_are_unique_and_every_section_has_figures() {
        let mut seen = std::collections::BTreeSet::new();
        for spec in all_specs() {
            assert!(seen.insert(spec.name), "{} twice", spec.name);
        }
        for section in Section::ALL {
            assert!(
                all_specs().any(|spec| spec.section == section),
                "{section:?}"
            );
        }
    }

    /// BENCHMARKS.md's table of targets is the one the figures' specs make: a target changed in
    /// one place and not the other fails here, with the table to paste.
    #[test]
    fn benchmarks_md_holds_the_table_of_targets() {
        let document = include_str!("../../../BENCHMARKS.md");
        let table = print::targets_markdown();
        let begin = "<!-- targets: generated from xtask/src/bench, checked by its tests -->\n";
        let end = "<!-- end of targets -->";
        let start = document.find(begin).expect("the begin marker") + begin.len();
        let stop = document[start..].find(end).expect("the end marker") + start;
        assert!(
            document[start..stop] == table,
            "BENCHMARKS.md's table differs from the figures' specs; it should read:\n{table}"
        );
    }
}
