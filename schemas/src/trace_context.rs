//! W3C trace context on Kafka records: the `traceparent` (and `tracestate`)
//! headers. The producer starts a trace per record; the worker continues the
//! trace of each input record and writes it on every record it publishes for
//! it (output, review and DLQ topics). The records carry the trace on whether
//! or not spans are exported (`otlp`): without an exporter the spans are
//! disabled and cost nothing.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The target of the spans that are exported, and of nothing else: the OTLP
/// layer records only these. They are TRACE spans, so that the log filter
/// leaves them out and the logs read as they do without tracing.
pub const SPANS: &str = "bertstream::spans";

/// A record's place in its trace: its span, and the context that the records
/// published on its behalf carry.
#[derive(Debug)]
pub struct RecordTrace {
    /// Recorded while the OTLP layer is installed; disabled otherwise. It ends when dropped.
    pub span: tracing::Span,
    context: Context,
}

impl RecordTrace {
    /// Continues the trace that `headers` carry with `span`; without a valid
    /// `traceparent` (none, or malformed) `span` starts a new trace.
    pub fn continued<'a>(span: tracing::Span, headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        Self::new(span, extract(headers))
    }

    /// Starts a new trace with `span`.
    pub fn started(span: tracing::Span) -> Self {
        Self::new(span, Context::new())
    }

    fn new(span: tracing::Span, parent: Context) -> Self {
        // Refused only by a disabled span (no OTLP layer), which the fallback below covers.
        let _ = span.set_parent(parent.clone());
        let recorded = span.context();
        let context = if recorded.span().span_context().is_valid() {
            recorded
        } else if parent.span().span_context().is_valid() {
            // Nothing records this hop: pass the caller's span on unchanged, as
            // W3C asks of a hop that takes no part, so the next one links to a span that exists.
            parent
        } else {
            let ids = RandomIdGenerator::default();
            let root =
                SpanContext::new(ids.new_trace_id(), ids.new_span_id(), TraceFlags::SAMPLED, false, TraceState::NONE);
            Context::new().with_remote_span_context(root)
        };
        Self { span, context }
    }

    /// The trace context headers for a record published on its behalf.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&self.context, &mut carrier);
        [TRACEPARENT, TRACESTATE].into_iter().filter_map(|name| Some((name, carrier.remove(name)?))).collect()
    }
}

/// The context a record's headers carry: empty when they hold no valid one.
fn extract<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Context {
    let carrier: HashMap<String, String> = headers
        .into_iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(TRACEPARENT) || name.eq_ignore_ascii_case(TRACESTATE))
        .filter_map(|(name, value)| Some((name.to_ascii_lowercase(), std::str::from_utf8(value).ok()?.to_owned())))
        .collect();
    TraceContextPropagator::new().extract(&carrier)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn traceparent(trace: &RecordTrace) -> String {
        let headers = trace.headers();
        headers.iter().find(|(name, _)| *name == TRACEPARENT).expect("traceparent").1.clone()
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_its_tracestate() {
        let headers = [("traceparent", PARENT.as_bytes()), ("tracestate", b"vendor=x".as_slice())];
        let trace = RecordTrace::continued(tracing::Span::none(), headers);
        assert_eq!(traceparent(&trace), PARENT, "an unrecorded hop passes the caller's span on");
        assert!(trace.headers().contains(&(TRACESTATE, "vendor=x".to_string())));
    }

    #[test]
    fn no_or_a_malformed_traceparent_starts_a_new_trace() {
        for value in [None, Some("garbage"), Some("00-00000000000000000000000000000000-b7ad6b7169203331-01")] {
            let headers: Vec<(&str, &[u8])> = value.map(|v| (TRACEPARENT, v.as_bytes())).into_iter().collect();
            let trace = RecordTrace::continued(tracing::Span::none(), headers);
            let parts: Vec<String> = traceparent(&trace).split('-').map(String::from).collect();
            assert_eq!(parts.len(), 4, "{value:?}");
            assert_eq!((parts[0].as_str(), parts[1].len(), parts[2].len(), parts[3].as_str()), ("00", 32, 16, "01"));
            assert_ne!(parts[1], "0".repeat(32));
            assert!(!PARENT.contains(&parts[1]));
        }
        let (a, b) = (RecordTrace::started(tracing::Span::none()), RecordTrace::started(tracing::Span::none()));
        assert_ne!(traceparent(&a), traceparent(&b));
    }
}
