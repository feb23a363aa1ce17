//! Capturing tracing events, to assert what store logged (one WARN per label, none on the happy
//! path, the span an event happened in) without a subscriber of the application's.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

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
    /// Its message, with its other fields appended as ` name=value`.
    pub text: String,
    /// The spans it happened in on its thread, outermost first, each as `name{ field=value...}`.
    pub spans: Vec<String>,
}

/// What to run, on the emitting thread, when an event's text contains a needle.
type Hook = (String, Box<dyn Fn() + Send + Sync>);

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<CapturedEvent>>,
    spans: Mutex<HashMap<u64, (String, &'static Metadata<'static>)>>,
    next_span: AtomicU64,
    hook: Option<Hook>,
}

thread_local! {
    static ENTERED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
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

    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let id = self.0.next_span.fetch_add(1, Ordering::Relaxed) + 1;
        let mut visitor = TextVisitor(format!("{}{{", attributes.metadata().name()));
        attributes.record(&mut visitor);
        visitor.0.push('}');
        self.0
            .spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, (visitor.0, attributes.metadata()));
        Id::from_u64(id)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut visitor = TextVisitor(String::new());
        event.record(&mut visitor);
        let spans = {
            let names = self.0.spans.lock().unwrap_or_else(PoisonError::into_inner);
            ENTERED.with(|entered| {
                entered
                    .borrow()
                    .iter()
                    .filter_map(|id| names.get(id).map(|(text, _)| text.clone()))
                    .collect()
            })
        };
        let hooked = self
            .0
            .hook
            .as_ref()
            .filter(|(needle, _)| visitor.0.contains(needle.as_str()));
        self.0
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(CapturedEvent {
                level: *event.metadata().level(),
                target: event.metadata().target().to_owned(),
                text: visitor.0,
                spans,
            });
        if let Some((_, hook)) = hooked {
            hook();
        }
    }

    fn current_span(&self) -> tracing_core::span::Current {
        let top = ENTERED.with(|entered| entered.borrow().last().copied());
        let spans = self.0.spans.lock().unwrap_or_else(PoisonError::into_inner);
        match top.and_then(|id| spans.get(&id).map(|(_, metadata)| (id, *metadata))) {
            Some((id, metadata)) => tracing_core::span::Current::new(Id::from_u64(id), metadata),
            None => tracing_core::span::Current::none(),
        }
    }

    fn enter(&self, span: &Id) {
        ENTERED.with(|entered| entered.borrow_mut().push(span.into_u64()));
    }

    fn exit(&self, span: &Id) {
        ENTERED.with(|entered| {
            let mut entered = entered.borrow_mut();
            if let Some(position) = entered.iter().rposition(|id| *id == span.into_u64()) {
                entered.remove(position);
            }
        });
    }
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
    capture_into(Recorder::default(), body)
}

/// Runs `body` with `recorder` as this thread's subscriber; returns its result and the events.
fn capture_into<R>(recorder: Recorder, body: impl FnOnce() -> R) -> (R, Vec<CapturedEvent>) {
    ask_each_thread();
    let recorder = Arc::new(recorder);
    let result = tracing::subscriber::with_default(CaptureSubscriber(Arc::clone(&recorder)), body);
    let events = std::mem::take(
        &mut *recorder
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    (result, events)
}

/// [`capture`], also running `hook` on the emitting thread, right when an event whose text
/// contains `needle` is logged (after it is recorded, before the code that logged it goes on): to
/// look at the state the code is in at that point, locks it holds included.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// let seen = Arc::new(AtomicBool::new(false));
/// let flag = Arc::clone(&seen);
/// let ((), _) = store_testkit::logs::capture_with_hook(
///     "closing",
///     move || flag.store(true, Ordering::SeqCst),
///     || tracing::debug!(target: "store::duckdb", "closing the instance"),
/// );
/// assert!(seen.load(Ordering::SeqCst));
/// ```
pub fn capture_with_hook<R>(
    needle: &str,
    hook: impl Fn() + Send + Sync + 'static,
    body: impl FnOnce() -> R,
) -> (R, Vec<CapturedEvent>) {
    let recorder = Recorder {
        hook: Some((needle.to_owned(), Box::new(hook))),
        ..Recorder::default()
    };
    capture_into(recorder, body)
}

/// A subscriber that is never any thread's and answers "sometimes" for every callsite.
struct Anchor;

impl Subscriber for Anchor {
    fn register_callsite(&self, _metadata: &'static Metadata<'static>) -> tracing_core::Interest {
        tracing_core::Interest::sometimes()
    }

    fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
        false
    }

    fn new_span(&self, _attributes: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, _event: &Event<'_>) {}

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// Makes tracing ask the current thread's subscriber at every event, so that a subscriber set on
/// one thread ([`capture`], [`crate::crash::kill_at`]) sees every event of that thread.
///
/// tracing caches each callsite's interest process-wide, and while at most one dispatcher is
/// registered it asks only the subscriber of the thread that reaches the callsite first. A test
/// thread without a subscriber then caches "never" for a callsite another thread is capturing,
/// and that thread's events vanish: store-duckdb's happy-open test lost all three "migration
/// applied" events in half its runs against a slower DuckDB build. Two dispatchers registered for
/// the process's life keep tracing off that shortcut, and their "sometimes" makes it ask at each
/// event; registering them rebuilds every interest cached before.
pub(crate) fn ask_each_thread() {
    static ANCHORS: OnceLock<[tracing::Dispatch; 2]> = OnceLock::new();
    ANCHORS.get_or_init(|| {
        [
            tracing::Dispatch::new(Anchor),
            tracing::Dispatch::new(Anchor),
        ]
    });
}

/// Records every event of every thread of this process from now on (a global subscriber: call it
/// in a child process, see [`crate::isolated!`]). Returns the events recorded so far on each call.
pub fn capture_process() -> Vec<CapturedEvent> {
    static RECORDER: OnceLock<Arc<Recorder>> = OnceLock::new();
    let recorder = RECORDER.get_or_init(|| {
        let recorder = Arc::new(Recorder::default());
        // Fails only if the process already has a global subscriber: then nothing is recorded,
        // which the caller's assertions will show.
        let _ = tracing::subscriber::set_global_default(CaptureSubscriber(Arc::clone(&recorder)));
        recorder
    });
    recorder
        .events
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// The events at exactly `level`.
pub fn at_level(events: &[CapturedEvent], level: Level) -> Vec<&CapturedEvent> {
    events.iter().filter(|event| event.level == level).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_span_is_known_and_crosses_threads_when_carried() {
        let ((), events) = capture(|| {
            let request = tracing::info_span!("request", id = 1);
            let carried = request.in_scope(tracing::Span::current);
            assert_eq!(carried.metadata().map(|m| m.name()), Some("request"));
            // Entered again elsewhere (as on a connection's thread), it frames that event.
            carried.in_scope(|| tracing::info!("carried"));
        });
        assert_eq!(events[0].spans, ["request{ id=1}"]);
    }

    #[test]
    fn a_callsite_first_reached_on_a_thread_without_a_subscriber_is_still_captured() {
        fn emit() {
            tracing::info!(target: "store::test", "reached");
        }
        let ((), events) = capture(|| {
            // Reached first by a thread with no subscriber (a parallel test), while this capture
            // may be the only dispatcher registered.
            std::thread::spawn(emit).join().expect("no panic");
            emit();
        });
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].text, "reached");
    }

    #[test]
    fn events_know_the_spans_they_happened_in() {
        let ((), events) = capture(|| {
            let outer = tracing::info_span!("request", id = 7);
            let _outer = outer.enter();
            tracing::info!("inside");
            let inner = tracing::info_span!("open", label = "state.db");
            inner.in_scope(|| tracing::warn!("deeper"));
        });
        assert_eq!(events[0].spans, ["request{ id=7}"]);
        assert_eq!(events[1].spans, ["request{ id=7}", "open{ label=state.db}"]);
        assert_eq!(at_level(&events, Level::WARN).len(), 1);
    }
}
