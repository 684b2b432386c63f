//! What every handler reads: the model, the batcher's HTTP lane, the
//! database pool, metrics, limits and the guard.

use std::sync::Arc;

use model::ClassifierHandle;
use sqlx::PgPool;
use tokio::sync::mpsc;

use super::guard::Guard;
use crate::config::HttpArgs;
use crate::metrics::Metrics;
use crate::offsets::WorkerConsumer;
use crate::stages::Job;

#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub pool: PgPool,
    /// For readiness: whether the brokers answer.
    pub consumer: Arc<WorkerConsumer>,
    pub classifier: ClassifierHandle,
    /// The batcher's HTTP lane.
    pub jobs: mpsc::Sender<Job>,
    pub input_topic: String,
    pub limits: Arc<HttpArgs>,
    pub guard: Arc<Guard>,
}

impl AppState {
    pub fn new(
        metrics: Arc<Metrics>,
        pool: PgPool,
        consumer: Arc<WorkerConsumer>,
        classifier: ClassifierHandle,
        jobs: mpsc::Sender<Job>,
        input_topic: String,
        http: HttpArgs,
    ) -> anyhow::Result<Self> {
        let guard = Arc::new(Guard::new(&http)?);
        Ok(Self { metrics, pool, consumer, classifier, jobs, input_topic, limits: Arc::new(http), guard })
    }
}
