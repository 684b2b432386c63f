//! The sinks: each scored batch is upserted into Postgres in one statement,
//! then published to the output topic through the idempotent producer; only
//! when both acknowledged are its offsets stored. Errors are retried with
//! backoff while the offsets wait. A row Postgres refuses on its own is found
//! by splitting the batch and goes to the DLQ; its neighbours are stored.
//! The shadow model's results go to `predictions` only; results under the
//! review threshold go to the review topic as well.
//!
//! Newer wins per review id (RELIABILITY.md L6): within a batch the newest
//! message of an id is written, in Postgres a message never replaces a newer
//! one (`db::results`), and batches sharing an id are written and published
//! one after the other ([`InFlightIds`]).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use model::Prediction;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::trace_context::{RecordTrace, SPANS};
use schemas::{ClassificationV1, Poison, SourcePosition};
use sqlx::PgPool;
use tokio::sync::{mpsc, Notify};

use crate::db::predictions::{PredictionRow, Role};
use crate::db::results::{SameMessage, Upserted};
use crate::db::{self, ResultRow};
use crate::dlq::DeadLetters;
use crate::kafka::{self, is_permanent};
use crate::metrics::Metrics;
use crate::offsets::{store, OffsetTracker, WorkerConsumer};
use crate::retry::{Backoff, Permanent};
use crate::stages::{Scored, ScoredJob};

/// Batches written at the same time (each in its own Postgres round trip).
const CONCURRENT_BATCHES: usize = 4;

pub struct Sinks {
    pub pool: PgPool,
    pub producer: FutureProducer,
    pub output_topic: String,
    /// Results whose top score is under `below` also go to `topic`, for people to check.
    pub review: Option<ReviewQueue>,
    pub consumer: Arc<WorkerConsumer>,
    pub tracker: Arc<OffsetTracker>,
    pub dead_letters: DeadLetters,
    pub metrics: Arc<Metrics>,
    pub in_flight: InFlightIds,
    /// When a batch last became durable, for `/readyz`.
    pub progress: Arc<SinkProgress>,
}

impl Sinks {
    /// Runs until `scored` is closed and every batch is durable.
    pub async fn run(self, scored: mpsc::Receiver<Scored>) {
        let this = &self;
        tokio_stream(scored).for_each_concurrent(CONCURRENT_BATCHES, |batch| this.write(batch)).await;
    }

    /// Makes a batch durable, then stores its offsets. After a permanent
    /// failure (reported to `Fatal`, which stops the worker) the batch's
    /// offsets stay unstored: its messages are read again by the next owner.
    async fn write(&self, batch: Scored) {
        let _progress = self.progress.start();
        // Each message's trace gets the batch's write as a child span (as in `inference`).
        let _spans: Vec<tracing::Span> = batch
            .jobs
            .iter()
            .map(|job| {
                tracing::trace_span!(target: SPANS, parent: &job.meta.trace.span, "sink_write", batch.size = batch.jobs.len())
            })
            .collect();
        for (meta, reason) in &batch.unscorable {
            if self.dead_letters.send(&meta.original, reason, &meta.trace).await.is_err() {
                return;
            }
            store(&self.consumer, &self.tracker, &meta.ticket);
        }
        let ids: Vec<String> = batch.jobs.iter().map(|j| j.id.clone()).collect();
        self.in_flight.claim(&ids).await;
        let durable = self.make_durable(&batch).await;
        self.in_flight.release(&ids);
        let Ok(to_publish) = durable else { return };

        let now = Utc::now();
        for (row, _) in &to_publish {
            if let Some(published) = row.published_at {
                self.metrics.end_to_end_seconds.observe((now - published).num_milliseconds().max(0) as f64 / 1000.0);
            }
        }
        self.metrics.messages_out.inc_by(to_publish.len() as u64);
        for job in &batch.jobs {
            store(&self.consumer, &self.tracker, &job.meta.ticket);
        }
    }

    /// Postgres, then the topics; returns the rows published.
    async fn make_durable<'a>(&self, batch: &'a Scored) -> Result<Vec<(ResultRow, &'a RecordTrace)>, Permanent> {
        let start = std::time::Instant::now();
        // The shadow's rows in the meantime: they add no round trip to the batch's.
        let (to_publish, ()) = tokio::join!(self.store_newest(batch), self.store_shadow(batch));
        let to_publish = to_publish?;
        self.metrics.sink_seconds.with_label_values(&["postgres"]).observe(start.elapsed().as_secs_f64());
        let start = std::time::Instant::now();
        self.publish(&to_publish).await?;
        self.metrics.sink_seconds.with_label_values(&["kafka"]).observe(start.elapsed().as_secs_f64());
        Ok(to_publish)
    }

    /// Stores each id's newest message of the batch; an older one only if
    /// Postgres refuses every newer one (which goes to the DLQ), so each
    /// message is stored, superseded by a stored newer one, or dead-lettered.
    /// Returns the rows to publish, each with its message's trace.
    async fn store_newest<'a>(&self, batch: &'a Scored) -> Result<Vec<(ResultRow, &'a RecordTrace)>, Permanent> {
        let mut candidates: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, job) in batch.jobs.iter().enumerate() {
            candidates.entry(job.id.as_str()).or_default().push(i);
        }
        for list in candidates.values_mut() {
            // Oldest first: `pop` takes the newest.
            list.sort_by(|&a, &b| older_first(&batch.jobs[a], &batch.jobs[b]));
        }
        let mut to_publish = Vec::new();
        loop {
            let mut round: Vec<usize> = candidates.values_mut().filter_map(Vec::pop).collect();
            if round.is_empty() {
                return Ok(to_publish);
            }
            round.sort_unstable();
            let mut rows: Vec<ResultRow> = round.iter().map(|&i| result_row(batch, &batch.jobs[i])).collect();
            let outcomes = self.store_rows(&mut rows).await;
            for ((&i, row), outcome) in round.iter().zip(rows).zip(outcomes) {
                let job = &batch.jobs[i];
                match outcome {
                    Err(reason) => {
                        self.dead_letters.send(&job.meta.original, &Poison::Rejected(reason), &job.meta.trace).await?;
                        continue; // the id's next older message gets its turn
                    }
                    Ok(Upserted::Stored | Upserted::Again) => to_publish.push((row, &job.meta.trace)),
                    Ok(Upserted::Superseded) => {}
                }
                candidates.remove(job.id.as_str()); // its older messages are superseded
            }
        }
    }

    /// The shadow's results, each id's newest message of the batch. Shadow
    /// rows are best effort: a row Postgres refuses is logged and dropped,
    /// never dead-lettered (the message's primary result is what counts).
    async fn store_shadow(&self, batch: &Scored) {
        let Some(shadow) = &batch.shadow else { return };
        let mut newest: HashMap<&str, &ScoredJob> = HashMap::new();
        for job in batch.jobs.iter().filter(|j| j.shadow.is_some()) {
            let kept = newest.entry(job.id.as_str()).or_insert(job);
            if older_first(kept, job) == Ordering::Less {
                *kept = job;
            }
        }
        let rows: Vec<PredictionRow> = newest
            .values()
            .filter_map(|job| {
                let prediction = job.shadow.as_ref()?;
                let position = &job.meta.ticket;
                Some(PredictionRow {
                    review_id: job.id.clone(),
                    model: shadow.id().to_string(),
                    role: Role::Shadow,
                    label: prediction.label.clone(),
                    score: prediction.score,
                    scores: scores(&shadow.info().labels, prediction),
                    topic: position.partition.topic.clone(),
                    partition: position.partition.partition,
                    offset: position.offset,
                    classified_at: batch.classified_at,
                })
            })
            .collect();
        let mut backoff = Backoff::new();
        loop {
            match db::predictions::upsert(&self.pool, &rows).await {
                Ok(()) => return,
                Err(e) if db::is_data_error(&e) => {
                    tracing::warn!(error = %e, rows = rows.len(), "shadow results refused; dropped");
                    return;
                }
                Err(e) => {
                    self.metrics.sink_retries.with_label_values(&["postgres"]).inc();
                    tracing::warn!(error = %e, rows = rows.len(), "shadow results not stored; retrying");
                    backoff.wait().await;
                }
            }
        }
    }

    /// Upserts `rows`, retrying while Postgres is unavailable. A row Postgres
    /// refuses on its own (found by splitting the batch) gets the reason.
    async fn store_rows(&self, rows: &mut [ResultRow]) -> Vec<Result<Upserted, String>> {
        let mut backoff = Backoff::new();
        loop {
            match db::upsert(&self.pool, rows, SameMessage::Keep).await {
                Ok(outcomes) => return outcomes.into_iter().map(Ok).collect(),
                Err(e) if db::is_data_error(&e) => {
                    if rows.len() == 1 {
                        return vec![Err(e.to_string())];
                    }
                    let (left, right) = rows.split_at_mut(rows.len() / 2);
                    let mut outcomes = Box::pin(self.store_rows(left)).await;
                    outcomes.extend(Box::pin(self.store_rows(right)).await);
                    return outcomes;
                }
                Err(e) => {
                    self.metrics.sink_retries.with_label_values(&["postgres"]).inc();
                    tracing::warn!(error = %e, rows = rows.len(), "postgres upsert failed; retrying");
                    backoff.wait().await;
                }
            }
        }
    }

    /// Publishes one `ClassificationV1` per row to the output topic (and to
    /// the review queue when its score is under the threshold) and waits for
    /// every delivery report. Each record carries its message's trace context.
    async fn publish(&self, rows: &[(ResultRow, &RecordTrace)]) -> Result<(), Permanent> {
        let mut pending: Vec<(&str, String, Vec<u8>, OwnedHeaders)> = Vec::with_capacity(rows.len());
        for (row, trace) in rows {
            let message = classification(row);
            let headers = kafka::with_trace(OwnedHeaders::new(), trace);
            if let Some(review) = self.review.as_ref().filter(|q| row.score < q.below) {
                pending.push((review.topic.as_str(), row.review_id.clone(), message.clone(), headers.clone()));
            }
            pending.push((self.output_topic.as_str(), row.review_id.clone(), message, headers));
        }
        let mut backoff = Backoff::new();
        while !pending.is_empty() {
            let deliveries = pending.iter().map(|(topic, key, payload, headers)| {
                let record =
                    FutureRecord::to(topic).key(key.as_str()).payload(payload.as_slice()).headers(headers.clone());
                self.producer.send(record, Duration::from_secs(5))
            });
            let results = futures::future::join_all(deliveries).await;
            let mut failed = Vec::new();
            for (record, result) in pending.into_iter().zip(results) {
                match result {
                    Ok(_) => {}
                    Err((e, _)) if is_permanent(&e) => {
                        return Err(self
                            .dead_letters
                            .fatal
                            .report(format!("topic `{}` refuses results: {e}", record.0)));
                    }
                    Err((e, _)) => {
                        tracing::warn!(error = %e, topic = record.0, "publish failed; retrying");
                        failed.push(record);
                    }
                }
            }
            pending = failed;
            if !pending.is_empty() {
                self.metrics.sink_retries.with_label_values(&["kafka"]).inc();
                backoff.wait().await;
            }
        }
        Ok(())
    }
}

/// The `classifications` row of a scored stream job.
pub fn result_row(batch: &Scored, job: &ScoredJob) -> ResultRow {
    let position = &job.meta.ticket;
    ResultRow {
        review_id: job.id.clone(),
        text: job.text.clone(),
        label: job.prediction.label.clone(),
        score: job.prediction.score,
        scores: scores(&batch.model.info().labels, &job.prediction),
        model: batch.model.id().to_string(),
        topic: position.partition.topic.clone(),
        partition: position.partition.partition,
        offset: position.offset,
        published_at: job.meta.published_at,
        received_at: job.meta.received_at,
        classified_at: batch.classified_at,
        queue_ms: job.queue_ms,
        model_ms: batch.model_ms,
        batch_size: batch.batch_size as i32,
        fields: serde_json::Value::Object(job.meta.fields.clone()),
    }
}

/// The output topic's record of a result row: `ClassificationV1` JSON.
pub fn classification(row: &ResultRow) -> Vec<u8> {
    let message = ClassificationV1 {
        id: row.review_id.clone(),
        label: row.label.clone(),
        score: row.score,
        scores: row.scores.clone(),
        model: row.model.clone(),
        source: SourcePosition { topic: row.topic.clone(), partition: row.partition, offset: row.offset },
        classified_at: row.classified_at,
    };
    serde_json::to_vec(&message).unwrap_or_default()
}

/// Whether the sinks are moving: `/readyz` turns 503 when batches have
/// waited longer than `SINK_STALL_SECS` without any becoming durable (a
/// table locked, a topic that takes nothing), while the probes still pass.
#[derive(Debug)]
pub struct SinkProgress {
    born: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `born`: the last batch done, or the first one
    /// started after an idle spell.
    last_ms: AtomicU64,
}

impl Default for SinkProgress {
    fn default() -> Self {
        Self { born: Instant::now(), in_flight: AtomicUsize::new(0), last_ms: AtomicU64::new(0) }
    }
}

impl SinkProgress {
    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    /// Counts a batch in until the guard drops (done or given up).
    fn start(&self) -> InFlight<'_> {
        if self.in_flight.fetch_add(1, AtomicOrdering::AcqRel) == 0 {
            self.last_ms.store(self.now_ms(), AtomicOrdering::Release);
        }
        InFlight(self)
    }

    /// Whether batches have waited longer than `limit` since the sinks last moved.
    pub fn stalled(&self, limit: Duration) -> bool {
        self.in_flight.load(AtomicOrdering::Acquire) > 0
            && self.now_ms().saturating_sub(self.last_ms.load(AtomicOrdering::Acquire)) > limit.as_millis() as u64
    }
}

struct InFlight<'a>(&'a SinkProgress);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.last_ms.store(self.0.now_ms(), AtomicOrdering::Release);
        self.0.in_flight.fetch_sub(1, AtomicOrdering::AcqRel);
    }
}

/// The review queue: where low-confidence results also go.
pub struct ReviewQueue {
    pub topic: String,
    pub below: f32,
}

/// A prediction's probabilities by label name.
fn scores(labels: &[String], prediction: &Prediction) -> BTreeMap<String, f32> {
    labels.iter().cloned().zip(prediction.scores.iter().copied()).collect()
}

/// Orders two messages of one id by age: in one partition by offset, across
/// partitions by when they were received.
fn older_first(a: &ScoredJob, b: &ScoredJob) -> Ordering {
    let (a, b) = (&a.meta, &b.meta);
    if a.ticket.partition == b.ticket.partition {
        a.ticket.offset.cmp(&b.ticket.offset)
    } else {
        a.received_at.cmp(&b.received_at)
    }
}

/// Ids being written: a batch waits until none of its ids is in another
/// batch between its upsert and its publish, so that the writes and output
/// records of one id never overtake each other.
#[derive(Default)]
pub struct InFlightIds {
    ids: Mutex<HashSet<String>>,
    released: Notify,
}

impl InFlightIds {
    async fn claim(&self, ids: &[String]) {
        loop {
            // Created before looking, so a release in between is not missed.
            let released = self.released.notified();
            {
                let mut held = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
                if !ids.iter().any(|id| held.contains(id)) {
                    held.extend(ids.iter().cloned());
                    return;
                }
            }
            released.await;
        }
    }

    fn release(&self, ids: &[String]) {
        let mut held = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            held.remove(id);
        }
        drop(held);
        self.released.notify_waiters();
    }
}

fn tokio_stream<T>(mut receiver: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}
