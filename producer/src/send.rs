//! The sender: takes items from the reader, paces them (--rate), hands them to
//! librdkafka and collects delivery reports. At most [`MAX_IN_FLIGHT`]
//! messages wait for their report at a time, so memory stays bounded; at the
//! end every report is awaited, whatever stopped the run.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use futures::FutureExt;
use governor::DefaultDirectRateLimiter;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use schemas::trace_context::{RecordTrace, SPANS};
use tokio::sync::mpsc::Receiver;
use tokio::sync::Notify;

use crate::progress::Progress;
use crate::reader::Item;
use crate::tally::{Stop, Tally};

/// Messages handed to librdkafka and not yet reported (well under its own
/// 100,000-message queue).
pub const MAX_IN_FLIGHT: usize = 10_000;

pub struct Sender<'a> {
    pub producer: &'a FutureProducer,
    pub topic: &'a str,
    pub limiter: Option<DefaultDirectRateLimiter>,
    pub strict: bool,
    /// Notified on Ctrl-C: stop reading, still wait for what is in flight.
    pub interrupt: Arc<Notify>,
}

type InFlight = FuturesUnordered<BoxFuture<'static, Report>>;

/// A delivery report: the payload size when delivered, else the id and the error.
type Report = Result<u64, (String, String)>;

impl Sender<'_> {
    pub async fn publish(&self, mut rx: Receiver<Item>, progress: &mut Progress) -> Tally {
        let mut tally = Tally::default();
        let mut in_flight: InFlight = FuturesUnordered::new();
        while tally.stopped.is_none() {
            let item = tokio::select! {
                biased;
                _ = self.interrupt.notified() => { tally.stopped = Some(Stop::Interrupted); break }
                item = rx.recv() => item,
            };
            match item {
                None => break,
                Some(Item::Review { review, bytes }) => {
                    if let Some(limiter) = &self.limiter {
                        tokio::select! {
                            biased;
                            _ = self.interrupt.notified() => { tally.stopped = Some(Stop::Interrupted); break }
                            _ = limiter.until_ready() => {}
                        }
                    }
                    match serde_json::to_vec(&review) {
                        Ok(payload) => self.enqueue(&review.id, &payload, &mut in_flight, &mut tally, progress).await,
                        Err(e) => record(Err((review.id, format!("cannot serialize: {e}"))), &mut tally, progress),
                    }
                    progress.advance(bytes, true);
                }
                Some(Item::Bad { at, reason, bytes, report }) => {
                    progress.advance(bytes, false);
                    if report {
                        tally.skipped += 1;
                        progress.note(&format!("{at}: {reason}"));
                    }
                    if self.strict {
                        tally.stopped = Some(Stop::BadLine);
                    }
                }
                Some(Item::Fatal(message)) => tally.stopped = Some(Stop::Fatal(message)),
            }
            // Count reports that are already in, without waiting.
            while let Some(Some(report)) = in_flight.next().now_or_never() {
                record(report, &mut tally, progress);
            }
            progress.refresh(&tally);
        }
        drop(rx); // lets the reader thread see that we stopped
        while let Some(report) = in_flight.next().await {
            record(report, &mut tally, progress);
            progress.refresh(&tally);
        }
        tally
    }

    /// Hands one message to librdkafka, waiting for room when its queue or
    /// our in-flight window is full. Each message starts a trace: its
    /// `traceparent` header names its span, which ends with its delivery report.
    async fn enqueue(
        &self,
        id: &str,
        payload: &[u8],
        in_flight: &mut InFlight,
        tally: &mut Tally,
        progress: &Progress,
    ) {
        let span = tracing::trace_span!(
            target: SPANS,
            "publish_review",
            otel.kind = "producer",
            messaging.system = "kafka",
            messaging.destination.name = self.topic,
            review.id = id,
            otel.status_code = tracing::field::Empty,
        );
        let trace = RecordTrace::started(span);
        let headers = trace.headers().iter().fold(OwnedHeaders::new(), |headers, (name, value)| {
            headers.insert(Header { key: name, value: Some(value.as_str()) })
        });
        loop {
            let message = FutureRecord::to(self.topic).key(id).payload(payload).headers(headers.clone());
            match self.producer.send_result(message) {
                Ok(delivery) => {
                    let size = payload.len() as u64;
                    let span = trace.span;
                    in_flight.push(async move { to_report(delivery.await, size, span) }.boxed());
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => match in_flight.next().await {
                    Some(report) => record(report, tally, progress),
                    None => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                },
                Err((e, _)) => {
                    record(Err((id.to_owned(), e.to_string())), tally, progress);
                    break;
                }
            }
        }
        while in_flight.len() >= MAX_IN_FLIGHT {
            match in_flight.next().await {
                Some(report) => record(report, tally, progress),
                None => break,
            }
        }
    }
}

/// The report of a delivery; its span ends here.
fn to_report(result: <DeliveryFuture as std::future::Future>::Output, size: u64, span: tracing::Span) -> Report {
    match result {
        Ok(Ok(_)) => Ok(size),
        Ok(Err((error, message))) => {
            span.record("otel.status_code", "error");
            let id = message.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
            Err((id, error.to_string()))
        }
        Err(_) => Err((String::new(), "the producer shut down before reporting".into())),
    }
}

fn record(report: Report, tally: &mut Tally, progress: &Progress) {
    match report {
        Ok(bytes) => {
            tally.sent += 1;
            tally.payload_bytes += bytes;
        }
        Err((id, error)) => {
            tally.failed += 1;
            progress.delivery_failed(tally.failed, &id, &error);
        }
    }
}
