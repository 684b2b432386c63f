//! What `/readyz` answers, probed in the background, so that a request costs
//! no Postgres or Kafka round trip however often it comes: Postgres and the
//! brokers answer, and the sinks are not stalled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::db;
use crate::offsets::WorkerConsumer;
use crate::sinks::SinkProgress;

/// How often Postgres and the brokers are probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long one probe may take before it counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The last probe's findings; not ready until the first probe.
#[derive(Debug, Default)]
pub struct Readiness {
    postgres: AtomicBool,
    kafka: AtomicBool,
    /// The sinks are not stalled.
    sinks: AtomicBool,
}

/// What the last probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probed {
    pub postgres: bool,
    pub kafka: bool,
    pub sinks: bool,
}

impl Probed {
    pub fn ready(&self) -> bool {
        self.postgres && self.kafka && self.sinks
    }
}

impl Readiness {
    pub fn get(&self) -> Probed {
        Probed {
            postgres: self.postgres.load(Ordering::Relaxed),
            kafka: self.kafka.load(Ordering::Relaxed),
            sinks: self.sinks.load(Ordering::Relaxed),
        }
    }

    pub fn set(&self, probed: Probed) {
        self.postgres.store(probed.postgres, Ordering::Relaxed);
        self.kafka.store(probed.kafka, Ordering::Relaxed);
        self.sinks.store(probed.sinks, Ordering::Relaxed);
    }
}

/// What the probe looks at.
pub struct Probe {
    pub readiness: Arc<Readiness>,
    pub pool: PgPool,
    pub consumer: Arc<WorkerConsumer>,
    pub topic: String,
    pub sinks: Arc<SinkProgress>,
    /// How long batches may wait without any becoming durable.
    pub stall_limit: Duration,
}

/// Probes every [`PROBE_EVERY`] until `stop` turns true: `SELECT 1` on the
/// pool, the input topic's metadata from the brokers, and the sinks' progress.
pub async fn probe(probe: Probe, mut stop: watch::Receiver<bool>) {
    let Probe { readiness, pool, consumer, topic, sinks, stall_limit } = probe;
    loop {
        let postgres = db::ping(&pool, PROBE_TIMEOUT).await;
        let (consumer, topic_name) = (consumer.clone(), topic.clone());
        let kafka = tokio::task::spawn_blocking(move || {
            consumer.client().fetch_metadata(Some(&topic_name), PROBE_TIMEOUT).is_ok()
        })
        .await
        .unwrap_or(false);
        readiness.set(Probed { postgres, kafka, sinks: !sinks.stalled(stall_limit) });
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(PROBE_EVERY) => {}
        }
    }
}
