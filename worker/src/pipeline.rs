//! Wires the worker together and runs it until SIGTERM/SIGINT:
//!
//! ```text
//! source ─► batcher ─► model stage ─► sinks ─► offsets stored
//!   │          ▲            │
//!   └─► DLQ    HTTP lane    └─► HTTP replies
//! ```
//! Each stage is its own task, so tokenizing (in the source), the model and
//! the sinks work on different batches at the same time.
//!
//! Shutdown: stop fetching and stop taking HTTP requests, let the batches in
//! flight reach the sinks, commit the stored offsets synchronously, exit.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{SubsecRound, Utc};
use model::{ClassifierHandle, LoadOptions};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use schemas::ParseLimits;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::batcher::{Batch, Batcher, Limits, ModelSlots, Origin};
use crate::config::RunArgs;
use crate::dlq::DeadLetters;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::offsets::OffsetTracker;
use crate::sink::{Scored, ScoredJob, Sinks};
use crate::source::{self, Source};
use crate::{db, kafka};

/// Requests from HTTP waiting for the batcher.
const HTTP_QUEUE: usize = 1024;

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Listen before anything else: a SIGTERM while starting up (waiting for
    // Postgres, loading the model) then ends the worker cleanly, not by the
    // signal's default action.
    let mut shutdown = Shutdown::listen()?;
    let running = tokio::select! {
        () = shutdown.recv() => {
            tracing::info!("stopped while starting up; nothing was consumed");
            return Ok(());
        }
        running = start(&args) => running?,
    };
    tokio::select! {
        () = shutdown.recv() => tracing::info!("shutting down: draining in-flight batches"),
        result = wait_model(&running.model) => return result,
    }
    running.drain(Duration::from_secs(args.shutdown_timeout_secs)).await
}

/// The stages `start` spawned, and what shutting them down needs.
struct Running {
    stop: watch::Sender<bool>,
    consumer: Arc<source::WorkerConsumer>,
    source: JoinHandle<anyhow::Result<()>>,
    server: JoinHandle<anyhow::Result<()>>,
    batcher: JoinHandle<()>,
    model: JoinHandle<anyhow::Result<()>>,
    sinks: JoinHandle<()>,
}

/// Connects, migrates, loads the model and spawns the stages. It spawns no
/// stage before its last line, so cancelling it leaves none running.
async fn start(args: &RunArgs) -> anyhow::Result<Running> {
    let metrics = Arc::new(Metrics::new());
    let pool = db::connect(args.database_url.expose()).context("DATABASE_URL")?;
    migrate_with_retry(&pool).await?;
    let k = &args.kafka;
    kafka::ensure_topics(k, &[&k.input_topic, &k.output_topic, &k.dlq_topic]).await?;

    let options = LoadOptions { device: args.model.device, fp16: args.model.fp16, max_seq_len: args.model.max_seq_len };
    let (dir, threads) = (args.model.model_dir.clone(), args.model.torch_threads);
    let classifier = tokio::task::spawn_blocking(move || ClassifierHandle::spawn(dir.clone(), options, threads)
        .with_context(|| format!("loading the model from {}", dir.display())))
        .await??;
    let info = classifier.info().clone();
    tracing::info!(model = %info.model_id, device = %info.device, labels = ?info.labels, "model loaded");

    let tracker = Arc::new(OffsetTracker::default());
    let consumer = source::consumer(k, tracker.clone(), metrics.clone())?;
    let producer = kafka::producer(k)?;
    let dead_letters = DeadLetters { producer: producer.clone(), topic: k.dlq_topic.clone(), metrics: metrics.clone() };

    let b = &args.batch;
    let (stream_tx, stream_rx) = mpsc::channel(b.max_batch_size * 2);
    let (http_tx, http_rx) = mpsc::channel(HTTP_QUEUE);
    let (batch_tx, batch_rx) = mpsc::channel(1);
    let (scored_tx, scored_rx) = mpsc::channel(2);
    let slots = ModelSlots::new();
    let limits = Limits { max_size: b.max_batch_size, max_tokens: b.max_batch_tokens, max_wait: b.max_wait() };
    let batcher = Batcher { limits, pad_id: classifier.encoder().pad_id(), slots: slots.clone(), http: http_rx, stream: stream_rx, out: batch_tx };
    let sinks = Sinks {
        pool: pool.clone(),
        producer,
        output_topic: k.output_topic.clone(),
        model_id: info.model_id.clone(),
        labels: info.labels.clone(),
        consumer: consumer.clone(),
        tracker: tracker.clone(),
        dead_letters: dead_letters.clone(),
        metrics: metrics.clone(),
    };
    let source = Source {
        consumer: consumer.clone(),
        tracker: tracker.clone(),
        encoder: classifier.encoder().clone(),
        dead_letters,
        jobs: stream_tx,
        queue_capacity: b.queue_capacity,
        parse_limits: ParseLimits { max_bytes: b.max_message_bytes, ..ParseLimits::default() },
        metrics: metrics.clone(),
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let state = AppState::new(metrics.clone(), pool, consumer.clone(), classifier.clone(), http_tx, k.input_topic.clone(), args.http.clone())?;
    let listener = tokio::net::TcpListener::bind(args.http_addr).await.with_context(|| format!("binding {}", args.http_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "HTTP listening");
    Ok(Running {
        server: tokio::spawn(http::serve(listener, state, stop_rx.clone())),
        batcher: tokio::spawn(batcher.run()),
        model: tokio::spawn(model_stage(classifier, slots, batch_rx, scored_tx, metrics.clone())),
        sinks: tokio::spawn(sinks.run(scored_rx)),
        source: tokio::spawn(source.run(stop_rx)),
        stop: stop_tx,
        consumer,
    })
}

impl Running {
    /// Stops fetching and HTTP, lets the batches in flight reach the sinks
    /// within `timeout`, then commits the stored offsets synchronously.
    async fn drain(self, timeout: Duration) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let stages = async {
            self.source.await??;
            self.server.await??;
            self.batcher.await?;
            self.model.await??;
            self.sinks.await?;
            anyhow::Ok(())
        };
        match tokio::time::timeout(timeout, stages).await {
            Ok(result) => result?,
            Err(_) => anyhow::bail!("in-flight batches did not drain within {timeout:?}; their offsets stay uncommitted"),
        }
        let consumer = self.consumer;
        match tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync)).await? {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => tracing::info!("offsets committed; bye"),
            // The group moved on while we drained: our results are durable, and the
            // partitions' new owner redoes what we could not commit (at-least-once).
            Err(KafkaError::ConsumerCommit(
                code @ (RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::RebalanceInProgress
                | RDKafkaErrorCode::UnknownMemberId),
            )) => tracing::warn!(%code, "group rebalanced during shutdown; the new owners redo the uncommitted messages"),
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}

/// Returns only if the model stage stopped on its own (an error).
async fn wait_model(model: &tokio::task::JoinHandle<anyhow::Result<()>>) -> anyhow::Result<()> {
    loop {
        if model.is_finished() {
            anyhow::bail!("the model stage stopped unexpectedly");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn migrate_with_retry(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        match db::MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() < Duration::from_secs(60) => {
                tracing::warn!(error = %e, "postgres not ready for migrations; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e).context("running migrations"),
        }
    }
}

/// Runs each batch through the model; HTTP jobs get their answer here, stream
/// jobs go on to the sinks.
async fn model_stage(
    classifier: ClassifierHandle,
    slots: ModelSlots,
    mut batches: mpsc::Receiver<Batch>,
    scored: mpsc::Sender<Scored>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    while let Some(Batch { jobs, encoded, slot }) = batches.recv().await {
        let started = Instant::now();
        metrics.batch_size.observe(jobs.len() as f64);
        metrics.batch_tokens.observe(encoded.padded_tokens() as f64);
        let predictions = classifier.predict(encoded).await.context("model")?;
        let model_time = started.elapsed();
        slots.release(slot);
        metrics.model_seconds.observe(model_time.as_secs_f64());
        let batch_size = jobs.len();
        let mut stream = Vec::with_capacity(batch_size);
        for (job, prediction) in jobs.into_iter().zip(predictions) {
            let queue_ms = (started - job.enqueued).as_secs_f32() * 1000.0;
            match job.origin {
                Origin::Http(reply) => {
                    let _ = reply.send(prediction);
                }
                Origin::Stream(meta) => stream.push(ScoredJob { id: job.id, text: job.text, meta, prediction, queue_ms }),
            }
        }
        if !stream.is_empty() {
            // Microseconds, as Postgres keeps it: a result published again from the table is then byte-identical.
            let classified_at = Utc::now().trunc_subsecs(6);
            let batch = Scored { jobs: stream, model_ms: model_time.as_secs_f32() * 1000.0, batch_size, classified_at };
            if scored.send(batch).await.is_err() {
                break;
            }
        }
    }
    Ok(())
}

/// SIGTERM or SIGINT. Registered when created: a signal that arrives before
/// `recv` is awaited is kept, not lost.
struct Shutdown {
    terminate: Signal,
    interrupt: Signal,
}

impl Shutdown {
    fn listen() -> anyhow::Result<Self> {
        let terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
        Ok(Self { terminate, interrupt })
    }

    async fn recv(&mut self) {
        tokio::select! { _ = self.terminate.recv() => {}, _ = self.interrupt.recv() => {} }
    }
}
