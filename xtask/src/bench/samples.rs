//! Samples and how many to take: a value per run, medians, the ratio's bootstrap interval, and
//! the runs that alternate store and baseline until the ratio settles.

use std::time::Instant;

use store_testkit::random::SplitMix64;

use super::support::BenchResult;

/// One side of a figure: a value per run.
#[derive(Debug, Clone, Default)]
pub(super) struct Samples(pub(super) Vec<f64>);

impl Samples {
    pub(super) fn median(&self) -> f64 {
        median_of(&self.0)
    }

    pub(super) fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }

    pub(super) fn max(&self) -> f64 {
        self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }

    pub(super) fn runs(&self) -> usize {
        self.0.len()
    }
}

/// The median (the mean of the middle two for an even count); NaN for no values.
fn median_of(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    }
}

/// Resamples of the bootstrap: enough for a 90% interval's ends to sit still.
const RESAMPLES: usize = 1000;

/// The 90% interval of the ratio of medians (store's over the baseline's), by a bootstrap with a
/// fixed seed: each side resampled with replacement, the ratio taken each time, the 5th and 95th
/// percentiles kept. How far the ratio could move if the runs were taken again.
pub(super) fn ratio_interval(store: &Samples, baseline: &Samples) -> (f64, f64) {
    if store.0.is_empty() || baseline.0.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut random = SplitMix64::new(0x5EED);
    let mut resample = |values: &[f64], into: &mut Vec<f64>| {
        into.clear();
        into.extend((0..values.len()).map(|_| values[random.below(values.len() as u64) as usize]));
    };
    let (mut store_draw, mut baseline_draw) = (Vec::new(), Vec::new());
    let mut ratios: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            resample(&store.0, &mut store_draw);
            resample(&baseline.0, &mut baseline_draw);
            median_of(&store_draw) / median_of(&baseline_draw)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    (
        ratios[RESAMPLES / 20],
        ratios[RESAMPLES - 1 - RESAMPLES / 20],
    )
}

/// The ratio has settled when its interval's half-width is at most this share of it.
const SETTLED: f64 = 0.05;

/// How many runs a side a figure takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Runs {
    /// Exactly this many.
    Fixed(usize),
    /// At least `min`, then more until the ratio's 90% interval is within [`SETTLED`] of the
    /// ratio either way, or `max` is reached: for figures whose runs spread widely.
    Settling { min: usize, max: usize },
}

impl Runs {
    /// Whether to take another run of each side, `done` taken; the first two sides judge.
    pub(super) fn wants_more(self, done: usize, samples: &[Vec<f64>]) -> bool {
        match self {
            Runs::Fixed(runs) => done < runs,
            Runs::Settling { min, max } => {
                done < min || (done < max && !settled(&samples[0], &samples[1]))
            }
        }
    }

    /// As the table's footnote says it.
    pub(super) fn describe(self) -> String {
        match self {
            Runs::Fixed(runs) => format!("{runs}"),
            Runs::Settling { min, max } => format!("{min} to {max}, until settled"),
        }
    }
}

fn settled(store: &[f64], baseline: &[f64]) -> bool {
    let (store, baseline) = (Samples(store.to_vec()), Samples(baseline.to_vec()));
    let ratio = store.median() / baseline.median();
    let (low, high) = ratio_interval(&store, &baseline);
    (high - low) / 2.0 <= SETTLED * ratio
}

/// One side of an alternation: a run's value, given the run's index.
pub(super) type Side<'a> = &'a mut dyn FnMut(usize) -> BenchResult<f64>;

/// Runs every side once per run, the order rotating from run to run so that no side always gets
/// the warmer cache, for as many runs as `runs` asks (judged on the first two sides).
pub(super) fn alternate<const N: usize>(
    runs: Runs,
    sides: [Side<'_>; N],
) -> BenchResult<[Samples; N]> {
    assert!(N >= 2, "a ratio needs two sides");
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); N];
    let mut run = 0;
    while runs.wants_more(run, &samples) {
        for offset in 0..N {
            let side = (run + offset) % N;
            samples[side].push(sides[side](run)?);
        }
        run += 1;
    }
    let mut samples = samples.into_iter().map(Samples);
    Ok(std::array::from_fn(|_| samples.next().expect("N sides")))
}

/// [`alternate`] for store and its baseline.
pub(super) fn paired(
    runs: Runs,
    mut store: impl FnMut(usize) -> BenchResult<f64>,
    mut baseline: impl FnMut(usize) -> BenchResult<f64>,
) -> BenchResult<(Samples, Samples)> {
    let [store, baseline] = alternate(runs, [&mut store, &mut baseline])?;
    Ok((store, baseline))
}

/// The mean time of `count` calls of `operation`, in milliseconds.
pub(super) fn mean_milliseconds(
    count: usize,
    mut operation: impl FnMut(usize) -> BenchResult<()>,
) -> BenchResult<f64> {
    let started = Instant::now();
    for index in 0..count {
        operation(index)?;
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0 / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(Samples(vec![3.0, 1.0, 2.0]).median(), 2.0);
        assert_eq!(Samples(vec![4.0, 1.0, 2.0, 3.0]).median(), 2.5);
    }

    #[test]
    fn the_interval_holds_the_ratio_and_narrows_with_agreeing_runs() {
        let store = Samples(vec![10.0, 11.0, 9.0, 10.5, 9.5, 10.0, 10.2]);
        let baseline = Samples(vec![5.0, 5.5, 4.5, 5.2, 4.8, 5.0, 5.1]);
        let (low, high) = ratio_interval(&store, &baseline);
        assert!(low <= 2.0 && 2.0 <= high, "{low}..{high}");
        let steady = Samples(vec![10.0; 7]);
        assert_eq!(ratio_interval(&steady, &Samples(vec![5.0; 7])), (2.0, 2.0));
    }

    #[test]
    fn settling_runs_stop_once_settled_and_at_the_maximum() {
        let runs = Runs::Settling { min: 3, max: 9 };
        let mut calls = 0;
        let (store, _) = paired(
            runs,
            |_| {
                calls += 1;
                Ok(2.0)
            },
            |_| Ok(1.0),
        )
        .expect("runs");
        assert_eq!(
            (store.runs(), calls),
            (3, 3),
            "steady runs settle at the minimum"
        );
        // A side that alternates between 1 and 3 never settles: the maximum stops it.
        let (wild, _) =
            paired(runs, |run| Ok(1.0 + 2.0 * (run % 2) as f64), |_| Ok(1.0)).expect("runs");
        assert_eq!(wild.runs(), 9);
        let (fixed, _) = paired(Runs::Fixed(4), |_| Ok(1.0), |_| Ok(1.0)).expect("runs");
        assert_eq!(fixed.runs(), 4);
    }

    #[test]
    fn the_order_rotates_from_run_to_run() {
        let order = std::cell::RefCell::new(Vec::new());
        let mut first = |run| {
            order.borrow_mut().push((run, 'a'));
            Ok(1.0)
        };
        let mut second = |run| {
            order.borrow_mut().push((run, 'b'));
            Ok(1.0)
        };
        alternate(Runs::Fixed(2), [&mut first, &mut second]).expect("runs");
        assert_eq!(order.into_inner(), [(0, 'a'), (0, 'b'), (1, 'b'), (1, 'a')]);
    }
}
