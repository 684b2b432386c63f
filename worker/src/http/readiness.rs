//! What `/readyz` answers, probed in the background, so that a request costs
//! no Postgres or Kafka round trip however often it comes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::db;
use crate::offsets::WorkerConsumer;

/// How often Postgres and the brokers are probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long one probe may take before it counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The last probe's findings; not ready until the first probe.
#[derive(Debug, Default)]
pub struct Readiness {
    postgres: AtomicBool,
    kafka: AtomicBool,
}

impl Readiness {
    /// Whether Postgres and the brokers answered the last probe.
    pub fn get(&self) -> (bool, bool) {
        (self.postgres.load(Ordering::Relaxed), self.kafka.load(Ordering::Relaxed))
    }

    pub fn set(&self, postgres: bool, kafka: bool) {
        self.postgres.store(postgres, Ordering::Relaxed);
        self.kafka.store(kafka, Ordering::Relaxed);
    }
}

/// Probes every [`PROBE_EVERY`] until `stop` turns true: `SELECT 1` on `pool`,
/// and the input topic's metadata from the brokers.
pub async fn probe(
    readiness: Arc<Readiness>,
    pool: PgPool,
    consumer: Arc<WorkerConsumer>,
    topic: String,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let postgres = db::ping(&pool, PROBE_TIMEOUT).await;
        let (consumer, topic_name) = (consumer.clone(), topic.clone());
        let kafka = tokio::task::spawn_blocking(move || {
            consumer.client().fetch_metadata(Some(&topic_name), PROBE_TIMEOUT).is_ok()
        })
        .await
        .unwrap_or(false);
        readiness.set(postgres, kafka);
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(PROBE_EVERY) => {}
        }
    }
}
