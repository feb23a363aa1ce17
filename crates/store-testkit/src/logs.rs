//! Capturing tracing events, to assert what store logged (one WARN per label, none on the happy
//! path) without a global subscriber.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// One event as it was logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedEvent {
    /// Its level.
    pub level: Level,
    /// Its target (`store::sqlite`, ...).
    pub target: String,
    /// Its message, with its other fields appended as `name=value`.
    pub text: String,
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<CapturedEvent>>,
    next_span: AtomicU64,
}

struct TextVisitor(String);

impl Visit for TextVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

struct CaptureSubscriber(Arc<Recorder>);

impl Subscriber for CaptureSubscriber {
    fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _attributes: &Attributes<'_>) -> Id {
        Id::from_u64(self.0.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut visitor = TextVisitor(String::new());
        event.record(&mut visitor);
        self.0
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(CapturedEvent {
                level: *event.metadata().level(),
                target: event.metadata().target().to_owned(),
                text: visitor.0,
            });
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// Runs `body` with a subscriber that records every event on this thread; returns its result and
/// the events, in order.
///
/// ```
/// let ((), events) = store_testkit::logs::capture(|| tracing::warn!(target: "store::sqlite", "careful"));
/// assert_eq!(events.len(), 1);
/// assert_eq!(events[0].text, "careful");
/// ```
pub fn capture<R>(body: impl FnOnce() -> R) -> (R, Vec<CapturedEvent>) {
    let recorder = Arc::new(Recorder::default());
    let result = tracing::subscriber::with_default(CaptureSubscriber(Arc::clone(&recorder)), body);
    let events = std::mem::take(
        &mut *recorder
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    (result, events)
}

/// The events at exactly `level`.
pub fn at_level(events: &[CapturedEvent], level: Level) -> Vec<&CapturedEvent> {
    events.iter().filter(|event| event.level == level).collect()
}
