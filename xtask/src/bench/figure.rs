//! A figure: its fixed description ([`Spec`]: name, section, target and why, what the baseline
//! does), and what a run measured ([`Figure`]), judged against the target ([`Verdict`]).

use super::samples::{Samples, ratio_interval};

/// A group of figures measured together, and the name `--only` matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    SqliteOpens,
    Connections,
    Fallback,
    DuckdbOpens,
    Recovery,
    Snapshots,
    Clones,
    CommitRates,
}

impl Section {
    pub(super) const ALL: [Section; 8] = [
        Section::SqliteOpens,
        Section::Connections,
        Section::Fallback,
        Section::DuckdbOpens,
        Section::Recovery,
        Section::Snapshots,
        Section::Clones,
        Section::CommitRates,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Section::SqliteOpens => "sqlite opens",
            Section::Connections => "sqlite connections and pools",
            Section::Fallback => "sqlite fallback",
            Section::DuckdbOpens => "duckdb opens",
            Section::Recovery => "duckdb recovery",
            Section::Snapshots => "snapshots that copy",
            Section::Clones => "snapshots that clone",
            Section::CommitRates => "commit rates",
        }
    }
}

/// What a figure measures, and so which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    /// Time per operation: lower is better.
    Milliseconds,
    /// Time per operation, for the cheap ones (a pool checkout): lower is better.
    Microseconds,
    /// Commits per second: higher is better.
    CommitsPerSecond,
}

impl Unit {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Unit::Milliseconds => "ms",
            Unit::Microseconds => "us",
            Unit::CommitsPerSecond => "commits/s",
        }
    }
}

/// What the ratio of the medians (store's over the baseline's) is held to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Target {
    /// At most this (times: lower is better).
    AtMost(f64),
    /// At least this (rates: higher is better).
    AtLeast(f64),
    /// Within this factor either way: the two sides should cost the same.
    Within(f64),
    /// At most this plus the cost of a snapshot measured alone in the same run, as a multiple of
    /// the baseline's median: store does the baseline's work and takes a snapshot besides.
    AtMostPlusSnapshot(f64),
}

impl Target {
    /// As BENCHMARKS.md states it.
    pub(super) fn text(self) -> String {
        match self {
            Target::AtMost(bound) => format!("<= {bound:.2}x"),
            Target::AtLeast(bound) => format!(">= {bound:.2}x"),
            Target::Within(bound) => format!("within {bound:.2}x"),
            Target::AtMostPlusSnapshot(bound) => format!("<= {bound:.2}x + snapshot"),
        }
    }
}

/// A figure as the bench knows it before measuring: what `--only` matches and BENCHMARKS.md
/// lists.
#[derive(Debug)]
pub(super) struct Spec {
    /// The figure's name: fixed, so that `--only` and BENCHMARKS.md can name it.
    pub(super) name: &'static str,
    pub(super) section: Section,
    pub(super) unit: Unit,
    pub(super) target: Target,
    /// Why this target.
    pub(super) reason: &'static str,
    /// The baseline in a few words.
    pub(super) baseline_name: &'static str,
    /// What the baseline does, so that the ratio is read against the right work.
    pub(super) baseline_does: &'static str,
}

/// What a run got for a figure.
#[derive(Debug)]
pub(super) enum Outcome {
    Measured {
        store: Samples,
        baseline: Samples,
        /// For [`Target::AtMostPlusSnapshot`]: the snapshot alone, measured in the same runs.
        snapshot: Option<Samples>,
    },
    /// Not measured on this machine, and why: never a pass.
    Skipped { reason: String },
}

/// How a figure did against its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Ok,
    Missed,
    /// Skipped: no ratio to judge.
    None,
}

impl Verdict {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Missed => "missed",
            Verdict::None => "none",
        }
    }
}

/// A line of the table.
#[derive(Debug)]
pub(super) struct Figure {
    pub(super) spec: &'static Spec,
    pub(super) outcome: Outcome,
    /// What else the run saw: the copy a snapshot made, the file's real size, the filesystem.
    pub(super) note: Option<String>,
}

impl Figure {
    pub(super) fn measured(spec: &'static Spec, store: Samples, baseline: Samples) -> Figure {
        Figure {
            spec,
            outcome: Outcome::Measured {
                store,
                baseline,
                snapshot: None,
            },
            note: None,
        }
    }

    pub(super) fn skipped(spec: &'static Spec, reason: impl Into<String>) -> Figure {
        Figure {
            spec,
            outcome: Outcome::Skipped {
                reason: reason.into(),
            },
            note: None,
        }
    }

    pub(super) fn with_note(mut self, note: impl Into<String>) -> Figure {
        self.note = Some(note.into());
        self
    }

    pub(super) fn with_snapshot(mut self, samples: Samples) -> Figure {
        if let Outcome::Measured { snapshot, .. } = &mut self.outcome {
            *snapshot = Some(samples);
        }
        self
    }

    /// Store's median over the baseline's.
    pub(super) fn ratio(&self) -> Option<f64> {
        match &self.outcome {
            Outcome::Measured {
                store, baseline, ..
            } => Some(store.median() / baseline.median()),
            Outcome::Skipped { .. } => None,
        }
    }

    /// The 90% bootstrap interval of the ratio.
    pub(super) fn ratio_interval(&self) -> Option<(f64, f64)> {
        match &self.outcome {
            Outcome::Measured {
                store, baseline, ..
            } => Some(ratio_interval(store, baseline)),
            Outcome::Skipped { .. } => None,
        }
    }

    /// The number the ratio is held to in this run (the snapshot's share added where the target
    /// says so).
    pub(super) fn bound(&self) -> Option<f64> {
        match (self.spec.target, &self.outcome) {
            (_, Outcome::Skipped { .. }) => None,
            (
                Target::AtMostPlusSnapshot(bound),
                Outcome::Measured {
                    baseline, snapshot, ..
                },
            ) => {
                let snapshot = snapshot
                    .as_ref()
                    .expect("a figure held to a snapshot's cost measures the snapshot");
                Some(bound + snapshot.median() / baseline.median())
            }
            (
                Target::AtMost(bound) | Target::AtLeast(bound) | Target::Within(bound),
                Outcome::Measured { .. },
            ) => Some(bound),
        }
    }

    pub(super) fn verdict(&self) -> Verdict {
        let (Some(ratio), Some(bound)) = (self.ratio(), self.bound()) else {
            return Verdict::None;
        };
        let met = match self.spec.target {
            Target::AtMost(_) | Target::AtMostPlusSnapshot(_) => ratio <= bound,
            Target::AtLeast(_) => ratio >= bound,
            Target::Within(_) => ratio.max(1.0 / ratio) <= bound,
        };
        if met { Verdict::Ok } else { Verdict::Missed }
    }

    /// The target as this run holds it: the snapshot's share spelled out where it counts.
    pub(super) fn target_text(&self) -> String {
        match (self.spec.target, &self.outcome) {
            (
                Target::AtMostPlusSnapshot(bound),
                Outcome::Measured {
                    snapshot: Some(snapshot),
                    ..
                },
            ) => format!(
                "<= {bound:.2}x + snapshot {:.2} {} = {:.2}x",
                snapshot.median(),
                self.spec.unit.as_str(),
                self.bound().unwrap_or(bound)
            ),
            (target, _) => target.text(),
        }
    }

    /// The note, with why it was skipped first.
    pub(super) fn note_text(&self) -> Option<String> {
        let skipped = match &self.outcome {
            Outcome::Skipped { reason } => Some(format!("skipped: {reason}")),
            Outcome::Measured { .. } => None,
        };
        match (skipped, &self.note) {
            (Some(skipped), Some(note)) => Some(format!("{skipped}; {note}")),
            (Some(skipped), None) => Some(skipped),
            (None, note) => note.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIME: Spec = Spec {
        name: "a time",
        section: Section::SqliteOpens,
        unit: Unit::Milliseconds,
        target: Target::AtMost(1.1),
        reason: "",
        baseline_name: "",
        baseline_does: "",
    };
    const RATE: Spec = Spec {
        unit: Unit::CommitsPerSecond,
        target: Target::AtLeast(0.95),
        ..TIME
    };
    const SAME: Spec = Spec {
        target: Target::Within(1.2),
        ..TIME
    };
    const PLUS: Spec = Spec {
        target: Target::AtMostPlusSnapshot(1.1),
        ..TIME
    };

    fn figure(spec: &'static Spec, store: f64, baseline: f64) -> Figure {
        Figure::measured(spec, Samples(vec![store]), Samples(vec![baseline]))
    }

    #[test]
    fn verdicts_follow_the_target_s_direction() {
        assert_eq!(figure(&TIME, 1.0, 1.0).verdict(), Verdict::Ok);
        assert_eq!(figure(&TIME, 1.2, 1.0).verdict(), Verdict::Missed);
        assert_eq!(figure(&RATE, 96.0, 100.0).verdict(), Verdict::Ok);
        assert_eq!(figure(&RATE, 90.0, 100.0).verdict(), Verdict::Missed);
        assert_eq!(figure(&SAME, 1.0, 1.15).verdict(), Verdict::Ok);
        assert_eq!(figure(&SAME, 1.0, 1.3).verdict(), Verdict::Missed);
        assert_eq!(figure(&SAME, 1.3, 1.0).verdict(), Verdict::Missed);
        assert_eq!(
            Figure::skipped(&TIME, "no mount").verdict(),
            Verdict::None,
            "a skipped figure never passes"
        );
    }

    #[test]
    fn a_snapshot_s_cost_is_added_to_the_bound() {
        // 10 ms of baseline, 3 ms of snapshot: the bound is 1.1 + 0.3.
        let plus = figure(&PLUS, 13.5, 10.0).with_snapshot(Samples(vec![3.0]));
        assert!((plus.bound().expect("measured") - 1.4).abs() < 1e-9);
        assert_eq!(plus.verdict(), Verdict::Ok);
        assert_eq!(plus.target_text(), "<= 1.10x + snapshot 3.00 ms = 1.40x");
        let over = figure(&PLUS, 14.5, 10.0).with_snapshot(Samples(vec![3.0]));
        assert_eq!(over.verdict(), Verdict::Missed);
    }
}
