//! The sinks: each scored batch is upserted into Postgres in one statement,
//! then published to the output topic through the idempotent producer; only
//! when both acknowledged are its offsets stored. Errors are retried with
//! backoff while the offsets wait. A row Postgres refuses on its own is found
//! by splitting the batch and goes to the DLQ; its neighbours are stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::{ClassificationV1, Poison, SourcePosition};
use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::db::{self, ResultRow};
use crate::dlq::DeadLetters;
use crate::metrics::Metrics;
use crate::offsets::{store, OffsetTracker, WorkerConsumer};
use crate::retry::Backoff;
use crate::stages::{Scored, ScoredJob};

/// Batches written at the same time (each in its own Postgres round trip).
const CONCURRENT_BATCHES: usize = 4;

pub struct Sinks {
    pub pool: PgPool,
    pub producer: FutureProducer,
    pub output_topic: String,
    pub model_id: String,
    pub labels: Vec<String>,
    pub consumer: Arc<WorkerConsumer>,
    pub tracker: Arc<OffsetTracker>,
    pub dead_letters: DeadLetters,
    pub metrics: Arc<Metrics>,
}

impl Sinks {
    /// Runs until `scored` is closed and every batch is durable.
    pub async fn run(self, scored: mpsc::Receiver<Scored>) {
        let this = &self;
        tokio_stream(scored).for_each_concurrent(CONCURRENT_BATCHES, |batch| this.write(batch)).await;
    }

    async fn write(&self, batch: Scored) {
        // The last occurrence of an id in a batch wins; every occurrence's offset is acknowledged.
        let mut latest: HashMap<&str, usize> = HashMap::new();
        for (i, job) in batch.jobs.iter().enumerate() {
            latest.insert(job.id.as_str(), i);
        }
        let mut unique: Vec<usize> = latest.into_values().collect();
        unique.sort_unstable();
        let mut rows: Vec<ResultRow> = unique.iter().map(|&i| self.row(&batch, &batch.jobs[i])).collect();

        let start = std::time::Instant::now();
        let rejected = self.store_rows(&mut rows).await;
        self.metrics.sink_seconds.with_label_values(&["postgres"]).observe(start.elapsed().as_secs_f64());
        for (index, reason) in &rejected {
            let job = &batch.jobs[unique[*index]];
            self.dead_letters.send(&job.meta.original, &Poison::Rejected(reason.clone())).await;
        }

        let start = std::time::Instant::now();
        let stored: Vec<&ResultRow> =
            rows.iter().enumerate().filter(|(i, _)| !rejected.iter().any(|(r, _)| r == i)).map(|(_, r)| r).collect();
        self.publish(&stored).await;
        self.metrics.sink_seconds.with_label_values(&["kafka"]).observe(start.elapsed().as_secs_f64());

        let now = Utc::now();
        for row in &stored {
            if let Some(published) = row.published_at {
                self.metrics.end_to_end_seconds.observe((now - published).num_milliseconds().max(0) as f64 / 1000.0);
            }
        }
        self.metrics.messages_out.inc_by(stored.len() as u64);
        for job in &batch.jobs {
            store(&self.consumer, &self.tracker, &job.meta.ticket);
        }
    }

    fn row(&self, batch: &Scored, job: &ScoredJob) -> ResultRow {
        let scores = self.labels.iter().cloned().zip(job.prediction.scores.iter().copied()).collect();
        let position = &job.meta.ticket;
        ResultRow {
            review_id: job.id.clone(),
            text: job.text.clone(),
            label: job.prediction.label.clone(),
            score: job.prediction.score,
            scores,
            model: self.model_id.clone(),
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

    /// Upserts `rows` (a message delivered again gets its stored result back),
    /// retrying while Postgres is unavailable. Returns the rows Postgres
    /// refuses on their own (index, reason).
    async fn store_rows(&self, rows: &mut [ResultRow]) -> Vec<(usize, String)> {
        let mut backoff = Backoff::new();
        loop {
            match db::upsert(&self.pool, rows).await {
                Ok(()) => return Vec::new(),
                Err(e) if db::is_data_error(&e) => {
                    if rows.len() == 1 {
                        return vec![(0, e.to_string())];
                    }
                    let offset = rows.len() / 2;
                    let (left, right) = rows.split_at_mut(offset);
                    let mut rejected = Box::pin(self.store_rows(left)).await;
                    rejected.extend(Box::pin(self.store_rows(right)).await.into_iter().map(|(i, r)| (i + offset, r)));
                    return rejected;
                }
                Err(e) => {
                    self.metrics.sink_retries.with_label_values(&["postgres"]).inc();
                    tracing::warn!(error = %e, rows = rows.len(), "postgres upsert failed; retrying");
                    backoff.wait().await;
                }
            }
        }
    }

    /// Publishes one `ClassificationV1` per row and waits for every delivery report.
    async fn publish(&self, rows: &[&ResultRow]) {
        let mut pending: Vec<(String, Vec<u8>)> = rows.iter().map(|r| (r.review_id.clone(), self.message(r))).collect();
        let mut backoff = Backoff::new();
        while !pending.is_empty() {
            let deliveries = pending.iter().map(|(key, payload)| {
                let record = FutureRecord::to(&self.output_topic).key(key.as_str()).payload(payload.as_slice());
                self.producer.send(record, Duration::from_secs(5))
            });
            let results = futures::future::join_all(deliveries).await;
            let mut failed = Vec::new();
            for ((key, payload), result) in pending.into_iter().zip(results) {
                if let Err((e, _)) = result {
                    tracing::warn!(error = %e, "output publish failed; retrying");
                    failed.push((key, payload));
                }
            }
            pending = failed;
            if !pending.is_empty() {
                self.metrics.sink_retries.with_label_values(&["kafka"]).inc();
                backoff.wait().await;
            }
        }
    }

    fn message(&self, row: &ResultRow) -> Vec<u8> {
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
}

fn tokio_stream<T>(mut receiver: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}
