//! The Kafka source: reads the input topic, parses and tokenizes each message,
//! sends malformed ones to the DLQ, and feeds the batcher.
//!
//! Guarantee (at-least-once): an offset is stored for commit only after its
//! message is durable — result in Postgres and on the output topic, or record
//! in the DLQ — and only as the contiguous done prefix of its partition
//! (`offsets`). When the in-memory queue is full the partitions pause, and the
//! consumer keeps polling so it stays in the group.
//!
//! The source runs on a thread of its own ([`run_on_own_thread`]): the
//! consumer's rebalance callback runs in whichever thread polls it, and it
//! blocks (waiting for in-flight messages of revoked partitions, committing),
//! which must not stall the runtime the stages finishing those messages share.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use model::TextEncoder;
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Message, OwnedMessage};
use schemas::trace_context::{RecordTrace, SPANS};
use schemas::{parse_review, ParseLimits, Poison};
use tokio::sync::{mpsc, watch};

use crate::budget::{ByteBudget, HeldBytes, PER_MESSAGE};
use crate::config::KafkaArgs;
use crate::dlq::DeadLetters;
use crate::kafka;
use crate::metrics::Metrics;
use crate::models::Models;
use crate::offsets::{store, OffsetTracker, OffsetsContext, Partition, Ticket, WorkerConsumer};
use crate::stages::{Job, Origin, StreamMeta};

/// The input consumer, subscribed, with the settings of `kafka`.
pub fn consumer(
    args: &KafkaArgs,
    tracker: Arc<OffsetTracker>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Arc<WorkerConsumer>> {
    let context = OffsetsContext {
        tracker,
        metrics,
        input_topic: args.input_topic.clone(),
        rate: Mutex::default(),
        input_paused: AtomicBool::new(false),
    };
    let consumer: WorkerConsumer =
        kafka::consumer_config(args).create_with_context(context).map_err(kafka::redacted)?;
    consumer.subscribe(&[&args.input_topic])?;
    Ok(Arc::new(consumer))
}

/// Runs the source on a thread of its own with a one-thread runtime; the
/// handle resolves when it ends.
pub fn run_on_own_thread(source: Source, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let (done, ended) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new().name("bertstream-source".into()).spawn(move || {
        let ran = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(source.run(stop)));
        let _ = done.send(ran);
    });
    tokio::spawn(async move {
        thread.map_err(|e| anyhow::anyhow!("starting the source thread: {e}"))?;
        ended.await.unwrap_or_else(|_| Err(anyhow::anyhow!("the source thread panicked")))
    })
}

/// A message that is not a review, on its way to the DLQ.
pub struct NotAReview {
    pub message: OwnedMessage,
    pub reason: Poison,
    pub held: HeldBytes,
    pub trace: RecordTrace,
}

/// Parses and tokenizes one message read under `ticket` into a stream job:
/// its span continues the trace of its `traceparent` header, or starts one
/// (a malformed header is ignored), and it takes its bytes from `budget`. A
/// message that cannot be a job comes back with the reason (for the DLQ;
/// boxed: it is rare, and large).
pub fn job_from(
    message: OwnedMessage,
    ticket: Ticket,
    encoder: &TextEncoder,
    limits: ParseLimits,
    budget: &ByteBudget,
) -> Result<Job, Box<NotAReview>> {
    let span = tracing::trace_span!(
        target: SPANS,
        "process_review",
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.destination.name = message.topic(),
        messaging.destination.partition.id = message.partition(),
        messaging.kafka.offset = message.offset(),
        review.id = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let trace = RecordTrace::continued(span, kafka::headers(&message));
    let fallback = || format!("{}:{}:{}", message.topic(), message.partition(), message.offset());
    let parsed = parse_review(message.key(), message.payload(), fallback, limits).and_then(|review| {
        match encoder.encode(&review.text) {
            Ok(tokens) => Ok((review, tokens)),
            Err(e) => Err(Poison::WrongType(format!("text could not be tokenized: {e}"))),
        }
    });
    // The message, and beside it its parsed text and tokens.
    let bytes = PER_MESSAGE
        + message.key().map_or(0, <[u8]>::len)
        + message.payload().map_or(0, <[u8]>::len)
        + parsed.as_ref().map_or(0, |(review, tokens)| review.text.len() + tokens.len() * size_of::<i64>());
    let held = budget.take(bytes);
    let (review, tokens) = match parsed {
        Ok(parsed) => parsed,
        Err(reason) => return Err(Box::new(NotAReview { message, reason, held, trace })),
    };
    trace.span.record("review.id", review.id.as_str());
    let published_at = message.timestamp().to_millis().and_then(|ms| Utc.timestamp_millis_opt(ms).single());
    let meta = StreamMeta {
        ticket,
        original: message,
        fields: review.extra,
        published_at,
        received_at: Utc::now(),
        held,
        trace,
    };
    Ok(Job {
        id: review.id,
        text: review.text,
        tokens,
        encoder: encoder.fingerprint(),
        enqueued: tokio::time::Instant::now(),
        origin: Origin::Stream(Box::new(meta)),
    })
}

/// A message as read, before it is handed on.
enum Received {
    /// `ticket` is also in the job's `StreamMeta`; kept here to begin it before handing the job on.
    Valid {
        ticket: Ticket,
        job: Job,
    },
    Poison {
        ticket: Ticket,
        poison: Box<NotAReview>,
    },
}

impl Received {
    fn ticket(&self) -> &Ticket {
        match self {
            Received::Valid { ticket, .. } | Received::Poison { ticket, .. } => ticket,
        }
    }
}

pub struct Source {
    pub consumer: Arc<WorkerConsumer>,
    /// The runtime the other stages share: dead-letter sends run there, not
    /// on the source's own thread, which a rebalance callback may block.
    pub stages: tokio::runtime::Handle,
    pub tracker: Arc<OffsetTracker>,
    /// The primary's encoder tokenizes; after a swap, the new primary's.
    pub models: Arc<Models>,
    pub dead_letters: DeadLetters,
    pub jobs: mpsc::Sender<Job>,
    pub queue_capacity: usize,
    /// `QUEUE_MAX_BYTES`: messages hold their bytes until their work is over.
    pub budget: ByteBudget,
    pub parse_limits: ParseLimits,
    pub metrics: Arc<Metrics>,
}

impl Source {
    /// Runs until `shutdown` turns true. Messages read but not yet handed on
    /// are dropped: their offsets were never stored, so they will be read again.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut backlog: VecDeque<Received> = VecDeque::new();
        // Rebalances run inside `recv` on this thread, so they read the flag
        // only between our pauses and resumes.
        let paused = &self.consumer.context().input_paused;
        loop {
            self.hand_on(&mut backlog);
            self.metrics.queue_depth.set((backlog.len() + self.jobs.max_capacity() - self.jobs.capacity()) as i64);
            self.metrics.queue_bytes.set(self.budget.held() as i64);
            let full = backlog.len() >= self.queue_capacity || self.budget.spent();
            if full != paused.load(Ordering::Relaxed) {
                let assignment = self.consumer.assignment()?;
                if full {
                    self.consumer.pause(&assignment)?
                } else {
                    self.consumer.resume(&assignment)?
                }
                paused.store(full, Ordering::Relaxed);
                tracing::debug!(paused = full, backlog = backlog.len(), "input partitions");
            }
            let error = tokio::select! {
                biased;
                _ = shutdown.changed() => None,
                permit = self.jobs.reserve(), if !backlog.is_empty() => {
                    drop(permit);
                    None
                }
                () = self.budget.freed(), if paused.load(Ordering::Relaxed) => None,
                message = self.consumer.recv() => match message {
                    Ok(message) => {
                        backlog.extend(self.receive(&message));
                        None
                    }
                    Err(e) => Some(e),
                },
            };
            if *shutdown.borrow() {
                return Ok(());
            }
            if let Some(e) = error {
                tracing::warn!(error = %e, "kafka consumer error");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Parses and tokenizes one message; its span continues the trace of its
    /// `traceparent` header, or starts one (a malformed header is ignored).
    fn receive(&self, message: &BorrowedMessage<'_>) -> Option<Received> {
        self.metrics.messages_in.inc();
        let partition = Partition { topic: message.topic().to_string(), partition: message.partition() };
        let ticket = self.tracker.ticket(partition, message.offset())?;
        let encoder = self.models.primary().handle.encoder().clone();
        Some(match job_from(message.detach(), ticket.clone(), &encoder, self.parse_limits, &self.budget) {
            Ok(job) => Received::Valid { ticket, job },
            Err(poison) => Received::Poison { ticket, poison },
        })
    }

    /// Moves messages from the backlog on, in order: valid ones to the
    /// batcher while it has room, poison ones to the DLQ.
    fn hand_on(&self, backlog: &mut VecDeque<Received>) {
        while let Some(front) = backlog.front() {
            if matches!(front, Received::Valid { .. }) && self.jobs.capacity() == 0 {
                return;
            }
            let Some(received) = backlog.pop_front() else { return };
            if !self.tracker.begin(received.ticket()) {
                continue; // revoked since it was read; its new owner reads it again
            }
            match received {
                Received::Valid { job, .. } => {
                    if self.jobs.try_send(job).is_err() {
                        return; // the pipeline is shutting down
                    }
                }
                Received::Poison { ticket, poison } => {
                    let NotAReview { message, reason, held, trace } = *poison;
                    let dead_letters = self.dead_letters.clone();
                    let tracker = self.tracker.clone();
                    let consumer = self.consumer.clone();
                    self.stages.spawn(async move {
                        // A permanent refusal stops the worker; this offset stays unstored.
                        if dead_letters.send(&message, &reason, &trace).await.is_ok() {
                            store(&consumer, &tracker, &ticket);
                        }
                        drop(held); // dead-letter work stays inside the budget until it is done
                    });
                }
            }
        }
    }
}
