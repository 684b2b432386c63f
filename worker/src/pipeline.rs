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
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::batcher::{Batcher, Limits};
use crate::budget::ByteBudget;
use crate::config::RunArgs;
use crate::dlq::DeadLetters;
use crate::http::readiness::{self, Probe, Readiness};
use crate::http::{self, AppState};
use crate::inference::Inference;
use crate::metrics::Metrics;
use crate::models::Models;
use crate::offsets::{OffsetTracker, WorkerConsumer};
use crate::retry::Fatal;
use crate::sinks::{InFlightIds, ReviewQueue, SinkProgress, Sinks};
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
    let failure = loop {
        tokio::select! {
            () = shutdown.recv() => break None,
            failure = running.fatal.wait() => break Some(failure),
            stage = running.stopped_stage() => break Some(format!("the {stage} stage stopped unexpectedly")),
            _ = reload.recv() => {
                // A symlink flip of MODEL_DIR and a SIGHUP swap the primary.
                let (models, dir) = (running.models.clone(), args.model.model_dir.clone());
                tracing::info!(dir = %dir.display(), "SIGHUP: loading MODEL_DIR again");
                tokio::spawn(async move { models.swap_primary(&dir).await });
            }
        }
    };
    tracing::info!("shutting down: draining in-flight batches");
    let drained = running.drain(Duration::from_secs(args.shutdown_timeout_secs)).await;
    match failure {
        // Exit non-zero, so that the group gives our partitions to a healthy
        // worker and an orchestrator sees the failure.
        Some(failure) => Err(match drained {
            Ok(()) => anyhow::anyhow!(failure),
            Err(e) => e.context(failure),
        }),
        None => drained,
    }
}

/// The stages `start` spawned, and what shutting them down needs.
struct Running {
    models: Arc<Models>,
    fatal: Fatal,
    stop: watch::Sender<bool>,
    consumer: Arc<WorkerConsumer>,
    /// In the order they are drained.
    stages: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
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
    let mut topics = vec![k.input_topic.as_str(), &k.output_topic];
    topics.extend(review.as_ref().map(|r| r.topic.as_str()));
    kafka::ensure_topics(k, &topics, &[]).await?;
    kafka::ensure_topics(k, &[&k.dlq_topic], kafka::LARGE_RECORDS).await?;

    let models = Models::from_args(&args.model, metrics.clone()).await.context("loading the models")?;
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
    let fatal = Fatal::new();
    let dead_letters = DeadLetters {
        producer: producer.clone(),
        topic: k.dlq_topic.clone(),
        metrics: metrics.clone(),
        fatal: fatal.clone(),
    };

    let b = &args.batch;
    let (stream_tx, stream_rx) = mpsc::channel(b.max_batch_size * 2);
    // Room for the largest request at least: a request joins the lane whole.
    let (http_tx, http_rx) = mpsc::channel(HTTP_QUEUE.max(args.http.max_texts_per_request));
    let (batch_tx, batch_rx) = mpsc::channel(1);
    let (scored_tx, scored_rx) = mpsc::channel(2);
    let slots = ModelSlots::new();
    let limits = Limits::from_args(b);
    let batcher = Batcher {
        limits,
        slots: slots.clone(),
        http: http_rx,
        stream: stream_rx,
        out: batch_tx,
        metrics: metrics.clone(),
    };
    let sink_progress = Arc::new(SinkProgress::default());
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
        progress: sink_progress.clone(),
    };
    let source = Source {
        consumer: consumer.clone(),
        stages: tokio::runtime::Handle::current(),
        tracker: tracker.clone(),
        models: models.clone(),
        dead_letters,
        jobs: stream_tx,
        queue_capacity: b.queue_capacity,
        budget: ByteBudget::new(usize::try_from(b.queue_max_bytes).unwrap_or(usize::MAX)),
        parse_limits: b.parse_limits(),
        metrics: metrics.clone(),
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let http_pool = db::connect(args.database_url.expose(), HTTP_CONNECTIONS).context("DATABASE_URL")?;
    let readiness = Arc::new(Readiness::default());
    let probe = readiness::probe(
        Probe {
            readiness: readiness.clone(),
            pool: http_pool.clone(),
            consumer: consumer.clone(),
            topic: k.input_topic.clone(),
            sinks: sink_progress,
            stall_limit: Duration::from_secs(args.sink_stall_secs),
        },
        stop_rx.clone(),
    );
    let state = AppState::new(metrics.clone(), http_pool, readiness, models.clone(), http_tx, args.http.clone())?;
    let listener =
        tokio::net::TcpListener::bind(args.http_addr).await.with_context(|| format!("binding {}", args.http_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "HTTP listening");
    let inference = Inference { models: models.clone(), slots, metrics: metrics.clone() };
    let stages = vec![
        ("source", source::run_on_own_thread(source, stop_rx.clone())),
        ("http", tokio::spawn(http::serve(listener, state, stop_rx))),
        ("batcher", tokio::spawn(infallible(batcher.run()))),
        ("model", tokio::spawn(inference.run(batch_rx, scored_tx))),
        ("sinks", tokio::spawn(infallible(sinks.run(scored_rx)))),
        ("readiness", tokio::spawn(infallible(probe))),
    ];
    Ok(Running { models, fatal, stop: stop_tx, consumer, stages })
}

/// A stage that cannot fail, as one that can.
async fn infallible(stage: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    stage.await;
    Ok(())
}

impl Running {
    /// The name of the first stage that has ended. Stages end only when told
    /// to stop, so an ended stage while running is a failure.
    async fn stopped_stage(&self) -> &'static str {
        loop {
            if let Some((name, _)) = self.stages.iter().find(|(_, handle)| handle.is_finished()) {
                return name;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops fetching and HTTP, lets the batches in flight reach the sinks
    /// within `timeout`, then commits the stored offsets synchronously: what
    /// is durable is committed even when a stage failed (its error is
    /// returned after the commit).
    async fn drain(self, timeout: Duration) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let stages = async {
            let mut first_error = None;
            for (name, handle) in self.stages {
                let ended = match handle.await {
                    Ok(result) => result,
                    Err(join) => Err(join.into()),
                };
                if let Err(e) = ended {
                    tracing::error!(stage = name, error = %format!("{e:#}"), "stage failed");
                    first_error.get_or_insert(e.context(format!("the {name} stage")));
                }
            }
            first_error.map_or(Ok(()), Err)
        };
        let stages = match tokio::time::timeout(timeout, stages).await {
            Ok(result) => result,
            Err(_) => {
                anyhow::bail!("in-flight batches did not drain within {timeout:?}; their offsets stay uncommitted")
            }
        };
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
        stages
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
