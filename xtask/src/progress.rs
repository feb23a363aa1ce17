//! Progress of the long tasks (`bench`, `torture`), always on standard error so that standard
//! output stays the result (pure JSON under `--json`).
//!
//! On a terminal: one bar with the current stage, how many steps of all are done, and the time
//! left. Elsewhere (CI logs, a pipe): one plain line as each stage begins, and again after a step
//! when the last line is [`PLAIN_INTERVAL`] old, since a redrawn bar would fill a log with control
//! characters and a line per step (a crash iteration) with noise.

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// The bar's layout: the stage, a bar, steps done of all, elapsed and time left.
const TEMPLATE: &str = "{prefix}: {msg:40!} [{bar:30}] {pos}/{len} {elapsed} (eta {eta})";
/// Without a terminal, a long stage still says how far it is this often.
const PLAIN_INTERVAL: Duration = Duration::from_secs(30);

/// How far a task is: stages (a figure section, a campaign on one engine) made of steps (a run,
/// an iteration).
#[derive(Debug)]
pub(crate) struct Progress {
    task: &'static str,
    /// `None` when standard error is not a terminal: plain lines instead.
    bar: Option<ProgressBar>,
    done: AtomicU64,
    total: u64,
    started: Instant,
    /// Without a terminal: the current stage and when a line last said it.
    plain: Mutex<(String, Instant)>,
}

impl Progress {
    /// Progress of `task` (the prefix of every line) over `total` steps.
    pub(crate) fn new(task: &'static str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let style = ProgressStyle::with_template(TEMPLATE)
                .expect("the template is valid")
                .progress_chars("=> ");
            let bar = ProgressBar::new(total).with_style(style).with_prefix(task);
            // Redrawn while a long step runs, so that the elapsed time moves.
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        Progress {
            task,
            bar,
            done: AtomicU64::new(0),
            total,
            started: Instant::now(),
            plain: Mutex::new((String::new(), Instant::now())),
        }
    }

    /// A stage begins: the bar's message, or one plain line with how far the task is.
    pub(crate) fn stage(&self, message: impl Into<String>) {
        let message = message.into();
        match &self.bar {
            Some(bar) => bar.set_message(message),
            None => {
                let mut plain = self.plain.lock().expect("progress");
                *plain = (message, Instant::now());
                self.plain_line(&plain.0);
            }
        }
    }

    /// One step done.
    pub(crate) fn step(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
        match &self.bar {
            Some(bar) => bar.inc(1),
            None => {
                let mut plain = self.plain.lock().expect("progress");
                if plain.1.elapsed() >= PLAIN_INTERVAL {
                    plain.1 = Instant::now();
                    self.plain_line(&plain.0);
                }
            }
        }
    }

    /// `task: stage [done/total steps done, elapsed]`.
    fn plain_line(&self, stage: &str) {
        eprintln!(
            "{}: {stage} [{}/{} steps done, {:.0} s]",
            self.task,
            self.done.load(Ordering::Relaxed),
            self.total,
            self.started.elapsed().as_secs_f64()
        );
    }

    /// A line for the reader (a warning), printed above the bar rather than through it.
    pub(crate) fn println(&self, line: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.println(line.as_ref()),
            None => eprintln!("{}", line.as_ref()),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // The result follows on standard output: a bar left behind would sit in the middle of it.
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
