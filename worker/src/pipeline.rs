//! Wires the worker together and runs it until SIGTERM/SIGINT:
//!
//! ```text
//! source ─► batcher ─► inference ─► sinks ─► offsets stored
//!   │          ▲            │
//!   └─► DLQ    HTTP lane    └─► HTTP replies
//! ```
//! Each stage is its own task, so tokenizing (in the source), the model and
//! the sinks work on different batches at the same time. This file only
//! wires them (what they pass each other is in `stages`).
//!
//! SIGHUP loads MODEL_DIR again and makes it the primary (`models`).
//!
//! Shutdown: stop fetching and stop taking HTTP requests, let the batches in
//! flight reach the sinks, commit the stored offsets synchronously, exit.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use model::LoadOptions;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use schemas::ParseLimits;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::batcher::{Batcher, Limits};
use crate::config::RunArgs;
use crate::dlq::DeadLetters;
use crate::http::readiness::{self, Readiness};
use crate::http::{self, AppState};
use crate::inference::Inference;
use crate::metrics::Metrics;
use crate::models::Models;
use crate::offsets::{OffsetTracker, WorkerConsumer};
use crate::sinks::{InFlightIds, ReviewQueue, Sinks};
use crate::source::{self, Source};
use crate::stages::ModelSlots;
use crate::{db, kafka};

/// Texts from HTTP waiting for the batcher (one job a text); a request that
/// finds it full gets 503 `overloaded`.
const HTTP_QUEUE: usize = 1024;
/// Postgres connections of the sinks (batches written at once, and a spare).
const SINK_CONNECTIONS: u32 = 8;
/// Postgres connections of HTTP reads and the readiness probe: their own, so
/// that a flood of reads never takes the sinks' connections.
const HTTP_CONNECTIONS: u32 = 2;

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
    let mut reload = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    loop {
        tokio::select! {
            () = shutdown.recv() => break,
            result = wait_model(&running.model) => return result,
            _ = reload.recv() => {
                // A symlink flip of MODEL_DIR and a SIGHUP swap the primary.
                let (models, dir) = (running.models.clone(), args.model.model_dir.clone());
                tracing::info!(dir = %dir.display(), "SIGHUP: loading MODEL_DIR again");
                tokio::spawn(async move { models.swap_primary(&dir).await });
            }
        }
    }
    tracing::info!("shutting down: draining in-flight batches");
    running.drain(Duration::from_secs(args.shutdown_timeout_secs)).await
}

/// The stages `start` spawned, and what shutting them down needs.
struct Running {
    models: Arc<Models>,
    stop: watch::Sender<bool>,
    consumer: Arc<WorkerConsumer>,
    source: JoinHandle<anyhow::Result<()>>,
    server: JoinHandle<anyhow::Result<()>>,
    batcher: JoinHandle<()>,
    model: JoinHandle<anyhow::Result<()>>,
    sinks: JoinHandle<()>,
    readiness: JoinHandle<()>,
}

/// Connects, migrates, loads the model and spawns the stages. It spawns no
/// stage before its last line, so cancelling it leaves none running.
async fn start(args: &RunArgs) -> anyhow::Result<Running> {
    let metrics = Arc::new(Metrics::new());
    let pool = db::connect(args.database_url.expose(), SINK_CONNECTIONS).context("DATABASE_URL")?;
    db::migrate_with_retry(&pool, args.startup_timeout()).await?;
    let k = &args.kafka;
    let review =
        (!k.review_topic.is_empty()).then(|| ReviewQueue { topic: k.review_topic.clone(), below: k.review_below });
    let mut topics = vec![k.input_topic.as_str(), &k.output_topic, &k.dlq_topic];
    topics.extend(review.as_ref().map(|r| r.topic.as_str()));
    kafka::ensure_topics(k, &topics).await?;

    let m = &args.model;
    let options = LoadOptions { device: m.device, fp16: m.fp16, max_seq_len: m.max_seq_len };
    let models = Models::start(
        m.model_dir.clone(),
        m.shadow_model_dir.clone(),
        m.shadow_sample,
        options,
        m.torch_threads,
        metrics.clone(),
    )
    .await
    .context("loading the models")?;
    let models = Arc::new(models);
    for (role, model) in [("primary", Some(models.primary())), ("shadow", models.shadow())] {
        if let Some(model) = model {
            let info = model.info();
            tracing::info!(role, model = %info.model_id, device = %info.device, labels = ?info.labels, "model loaded");
        }
    }

    let tracker = Arc::new(OffsetTracker::default());
    let consumer = source::consumer(k, tracker.clone(), metrics.clone())?;
    let producer = kafka::producer(k)?;
    let dead_letters = DeadLetters { producer: producer.clone(), topic: k.dlq_topic.clone(), metrics: metrics.clone() };

    let b = &args.batch;
    let (stream_tx, stream_rx) = mpsc::channel(b.max_batch_size * 2);
    // Room for the largest request at least: a request joins the lane whole.
    let (http_tx, http_rx) = mpsc::channel(HTTP_QUEUE.max(args.http.max_texts_per_request));
    let (batch_tx, batch_rx) = mpsc::channel(1);
    let (scored_tx, scored_rx) = mpsc::channel(2);
    let slots = ModelSlots::new();
    let limits = Limits {
        max_size: b.max_batch_size,
        max_tokens: b.max_batch_tokens,
        max_wait: b.max_wait(),
        http_share: b.http_share,
    };
    let batcher = Batcher {
        limits,
        slots: slots.clone(),
        http: http_rx,
        stream: stream_rx,
        out: batch_tx,
        metrics: metrics.clone(),
    };
    let sinks = Sinks {
        pool: pool.clone(),
        producer,
        output_topic: k.output_topic.clone(),
        review,
        consumer: consumer.clone(),
        tracker: tracker.clone(),
        dead_letters: dead_letters.clone(),
        metrics: metrics.clone(),
        in_flight: InFlightIds::default(),
    };
    let source = Source {
        consumer: consumer.clone(),
        tracker: tracker.clone(),
        models: models.clone(),
        dead_letters,
        jobs: stream_tx,
        queue_capacity: b.queue_capacity,
        parse_limits: ParseLimits { max_bytes: b.max_message_bytes, ..ParseLimits::default() },
        metrics: metrics.clone(),
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let http_pool = db::connect(args.database_url.expose(), HTTP_CONNECTIONS).context("DATABASE_URL")?;
    let readiness = Arc::new(Readiness::default());
    let probe = readiness::probe(
        readiness.clone(),
        http_pool.clone(),
        consumer.clone(),
        k.input_topic.clone(),
        stop_rx.clone(),
    );
    let state = AppState::new(metrics.clone(), http_pool, readiness, models.clone(), http_tx, args.http.clone())?;
    let listener =
        tokio::net::TcpListener::bind(args.http_addr).await.with_context(|| format!("binding {}", args.http_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "HTTP listening");
    Ok(Running {
        readiness: tokio::spawn(probe),
        server: tokio::spawn(http::serve(listener, state, stop_rx.clone())),
        batcher: tokio::spawn(batcher.run()),
        model: tokio::spawn(
            Inference { models: models.clone(), slots, metrics: metrics.clone() }.run(batch_rx, scored_tx),
        ),
        sinks: tokio::spawn(sinks.run(scored_rx)),
        source: tokio::spawn(source.run(stop_rx)),
        stop: stop_tx,
        consumer,
        models,
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
            self.readiness.await?;
            anyhow::Ok(())
        };
        match tokio::time::timeout(timeout, stages).await {
            Ok(result) => result?,
            Err(_) => {
                anyhow::bail!("in-flight batches did not drain within {timeout:?}; their offsets stay uncommitted")
            }
        }
        let consumer = self.consumer;
        match tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync)).await? {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {
                tracing::info!("offsets committed; bye")
            }
            // The group moved on while we drained: our results are durable, and the
            // partitions' new owner redoes what we could not commit (at-least-once).
            Err(KafkaError::ConsumerCommit(
                code @ (RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::RebalanceInProgress
                | RDKafkaErrorCode::UnknownMemberId),
            )) => {
                tracing::warn!(%code, "group rebalanced during shutdown; the new owners redo the uncommitted messages")
            }
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
