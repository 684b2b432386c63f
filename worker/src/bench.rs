//! `bertstream-worker bench`: the worker's in-process path, timed, on a file
//! of texts, with no Kafka and no Postgres. Each text becomes the message
//! Kafka would deliver (ReviewV1 JSON, key = id), and from there the real
//! stages run: the source's parse and tokenize (`source::job_from`, on a
//! thread of its own, as the source runs), the batcher (length-grouped, token
//! budget), inference (the model thread), and each result serialised as the
//! sinks serialise it (the `classifications` row and the `ClassificationV1`
//! record), where the sinks would then write them: a counter instead.
//!
//! Two figures: reviews/s with every message waiting from the start (a
//! backlog), and the latency of one text alone through the same stages.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use model::TextEncoder;
use rdkafka::message::{OwnedMessage, Timestamp};
use schemas::ParseLimits;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::batcher::{Batcher, Limits};
use crate::budget::ByteBudget;
use crate::config::BenchArgs;
use crate::inference::Inference;
use crate::metrics::Metrics;
use crate::models::Models;
use crate::offsets::{OffsetTracker, Partition};
use crate::sinks::{classification, result_row};
use crate::source::job_from;
use crate::stages::{Job, ModelSlots, Scored};

const TOPIC: &str = "bench";

/// Runs the bench; returns its figures as JSON.
pub async fn run(args: BenchArgs) -> anyhow::Result<Value> {
    let texts = read_texts(&args.texts)?;
    let metrics = Arc::new(Metrics::new());
    let options = args.model.load_options();
    let models = Models::from_args(&args.model, metrics.clone()).await.context("loading the model")?;
    let models = Arc::new(models);
    let b = &args.batch;
    let limits = Limits::from_args(b);
    let parse_limits = b.parse_limits();
    let reviews = args.reviews.unwrap_or(texts.len());
    let stages = Stages { models: models.clone(), limits, parse_limits, channel: b.max_batch_size * 2 };

    // First shapes are slow on CUDA (kernel choice, allocator): not timed.
    stages.backlog(&messages(&texts, args.warmup.min(reviews)), Arc::new(Metrics::new())).await?;
    let measured = Arc::new(Metrics::new());
    let started = Instant::now();
    let backlog = stages.backlog(&messages(&texts, reviews), measured.clone()).await?;
    let seconds = started.elapsed().as_secs_f64();
    let latencies = stages.one_by_one(&messages(&texts, args.latency_samples)).await?;

    let batches = measured.batch_size.get_sample_count();
    let padded = measured.batch_tokens.get_sample_sum();
    let model_seconds = measured.model_seconds.get_sample_sum();
    let primary = models.primary();
    Ok(json!({
        "impl": "bertstream",
        "model": primary.id(),
        "device": primary.info().device,
        "dtype": options.dtype.to_string(),
        "texts": texts.len(),
        "reviews": backlog.rows,
        "unscorable": backlog.unscorable,
        "seconds": seconds,
        "reviews_per_s": backlog.rows as f64 / seconds,
        "batches": batches,
        "mean_batch": backlog.rows as f64 / batches.max(1) as f64,
        "mean_tokens": backlog.tokens as f64 / backlog.rows.max(1) as f64,
        // Share of the batches' padded tokens that are padding.
        "padding": 1.0 - backlog.tokens as f64 / padded.max(1.0),
        // The model's own rate on these batches, and its share of the wall time.
        "model_reviews_per_s": backlog.rows as f64 / model_seconds,
        "model_busy": model_seconds / seconds,
        // Share of the wall time the source spent parsing and tokenizing.
        "source_busy": backlog.source_seconds / seconds,
        "result_bytes": backlog.bytes,
        "latency_samples": latencies.len(),
        "p50_ms": percentile(&latencies, 0.5),
        "p90_ms": percentile(&latencies, 0.9),
        "p99_ms": percentile(&latencies, 0.99),
        "max_batch_size": b.max_batch_size,
        "max_batch_tokens": b.max_batch_tokens,
        "max_wait_ms": b.max_wait_ms,
        "torch_threads": args.model.torch_threads,
    }))
}

fn read_texts(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let texts: Vec<String> = text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
    anyhow::ensure!(!texts.is_empty(), "{} holds no texts", path.display());
    Ok(texts)
}

/// `n` messages as the input topic would hold them, cycling through `texts`.
fn messages(texts: &[String], n: usize) -> Vec<OwnedMessage> {
    let now = chrono::Utc::now().timestamp_millis();
    (0..n)
        .map(|i| {
            let id = format!("bench-{i}");
            let payload = json!({"id": id, "text": texts[i % texts.len()]}).to_string().into_bytes();
            let timestamp = Timestamp::CreateTime(now);
            OwnedMessage::new(Some(payload), Some(id.into_bytes()), TOPIC.into(), timestamp, 0, i as i64, None)
        })
        .collect()
}

/// What the counter saw of a run.
#[derive(Debug, Default)]
struct Counted {
    rows: usize,
    unscorable: usize,
    bytes: usize,
    tokens: usize,
    source_seconds: f64,
}

struct Stages {
    models: Arc<Models>,
    limits: Limits,
    parse_limits: ParseLimits,
    channel: usize,
}

/// The batcher and inference stages, wired as the pipeline wires them, and
/// a counter in place of the sinks that reports each batch's rows.
struct Running {
    jobs: mpsc::Sender<Job>,
    counted: mpsc::UnboundedReceiver<Counted>,
}

impl Stages {
    fn start(&self, metrics: Arc<Metrics>) -> Running {
        let (jobs, stream_rx) = mpsc::channel(self.channel);
        // No HTTP lane: its sender is dropped, so the batcher sees it closed.
        let (_, http_rx) = mpsc::channel(1);
        let (batch_tx, batch_rx) = mpsc::channel(1);
        let (scored_tx, scored_rx) = mpsc::channel(2);
        let slots = ModelSlots::new();
        let batcher = Batcher {
            limits: self.limits,
            slots: slots.clone(),
            http: http_rx,
            stream: stream_rx,
            out: batch_tx,
            metrics: metrics.clone(),
        };
        let inference = Inference { models: self.models.clone(), slots, metrics };
        let (counted_tx, counted) = mpsc::unbounded_channel();
        tokio::spawn(batcher.run());
        tokio::spawn(async move {
            if let Err(e) = inference.run(batch_rx, scored_tx).await {
                tracing::error!(error = %format!("{e:#}"), "the model stage failed");
            }
        });
        tokio::spawn(count(scored_rx, counted_tx));
        Running { jobs, counted }
    }

    fn encoder(&self) -> Arc<TextEncoder> {
        self.models.primary().handle.encoder().clone()
    }

    /// Every message at once, from a source thread; returns when the last
    /// result is counted.
    async fn backlog(&self, messages: &[OwnedMessage], metrics: Arc<Metrics>) -> anyhow::Result<Counted> {
        let Running { jobs, mut counted } = self.start(metrics);
        let (encoder, limits, messages) = (self.encoder(), self.parse_limits, messages.to_vec());
        let source = std::thread::spawn(move || feed(&messages, &encoder, limits, &jobs));
        let mut total = Counted::default();
        while let Some(batch) = counted.recv().await {
            total.rows += batch.rows;
            total.unscorable += batch.unscorable;
            total.bytes += batch.bytes;
        }
        let (tokens, source_seconds) = source.join().map_err(|_| anyhow::anyhow!("the source thread panicked"))?;
        total.tokens = tokens;
        total.source_seconds = source_seconds;
        Ok(total)
    }

    /// One message at a time, each waited for; returns each one's milliseconds.
    async fn one_by_one(&self, messages: &[OwnedMessage]) -> anyhow::Result<Vec<f64>> {
        let Running { jobs, mut counted } = self.start(Arc::new(Metrics::new()));
        let (encoder, tracker) = (self.encoder(), tracker());
        let mut latencies = Vec::with_capacity(messages.len());
        for message in messages {
            let started = Instant::now();
            let job = to_job(message.clone(), &tracker, &encoder, self.parse_limits)?;
            jobs.send(job).await.map_err(|_| anyhow::anyhow!("the batcher stopped"))?;
            let batch = tokio::time::timeout(Duration::from_secs(60), counted.recv())
                .await
                .context("no result within a minute")?
                .context("the model stage stopped")?;
            anyhow::ensure!(batch.rows + batch.unscorable == 1, "one text gave {batch:?}");
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(latencies)
    }
}

fn tracker() -> OffsetTracker {
    let tracker = OffsetTracker::default();
    tracker.assign(Partition { topic: TOPIC.into(), partition: 0 });
    tracker
}

fn to_job(
    message: OwnedMessage,
    tracker: &OffsetTracker,
    encoder: &TextEncoder,
    limits: ParseLimits,
) -> anyhow::Result<Job> {
    use rdkafka::Message as _;
    let partition = Partition { topic: TOPIC.into(), partition: 0 };
    let ticket = tracker.ticket(partition, message.offset()).context("partition not assigned")?;
    // The bench's input is all in memory already: a budget that never pauses it.
    static UNBOUNDED: std::sync::LazyLock<ByteBudget> = std::sync::LazyLock::new(|| ByteBudget::new(usize::MAX));
    job_from(message, ticket, encoder, limits, &UNBOUNDED)
        .map_err(|poison| anyhow::anyhow!("not a review: {}", poison.reason))
}

/// The source's part: parse and tokenize each message, hand it on (waiting
/// while the batcher is full). Returns the tokens and the seconds spent
/// parsing and tokenizing.
fn feed(
    messages: &[OwnedMessage],
    encoder: &TextEncoder,
    limits: ParseLimits,
    jobs: &mpsc::Sender<Job>,
) -> (usize, f64) {
    let tracker = tracker();
    let (mut tokens, mut busy) = (0, Duration::ZERO);
    for message in messages {
        let started = Instant::now();
        let job = match to_job(message.clone(), &tracker, encoder, limits) {
            Ok(job) => job,
            Err(e) => {
                tracing::warn!(error = %e, "skipped");
                continue;
            }
        };
        tokens += job.tokens.len();
        busy += started.elapsed();
        if jobs.blocking_send(job).is_err() {
            break;
        }
    }
    (tokens, busy.as_secs_f64())
}

/// In place of the sinks: each result made into its row and its output
/// record, as the sinks make them, then counted.
async fn count(mut scored: mpsc::Receiver<Scored>, counted: mpsc::UnboundedSender<Counted>) {
    while let Some(batch) = scored.recv().await {
        let mut c = Counted { rows: batch.jobs.len(), unscorable: batch.unscorable.len(), ..Counted::default() };
        for job in &batch.jobs {
            let row = result_row(&batch, job);
            c.bytes += classification(&row).len() + serde_json::to_vec(&row.scores).map_or(0, |s| s.len());
        }
        if counted.send(c).is_err() {
            return;
        }
    }
}

fn percentile(xs: &[f64], q: f64) -> Option<f64> {
    let mut xs = xs.to_vec();
    xs.sort_by(f64::total_cmp);
    let i = ((xs.len() as f64 - 1.0) * q).round() as usize;
    xs.get(i).copied()
}
