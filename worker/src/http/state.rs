//! What every handler reads: the model, the batcher's HTTP lane, the
//! database pool, metrics, limits and the guard.

use std::sync::Arc;

use model::ClassifierHandle;
use sqlx::PgPool;
use tokio::sync::mpsc;

use super::guard::Guard;
use super::readiness::Readiness;
use crate::config::HttpArgs;
use crate::metrics::Metrics;
use crate::stages::Job;

#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    /// HTTP's own small pool, so that reads never starve the sinks'.
    pub pool: PgPool,
    /// What the background probe last found.
    pub readiness: Arc<Readiness>,
    pub classifier: ClassifierHandle,
    /// The batcher's HTTP lane.
    pub jobs: mpsc::Sender<Job>,
    pub limits: Arc<HttpArgs>,
    pub guard: Arc<Guard>,
}

impl AppState {
    pub fn new(
        metrics: Arc<Metrics>,
        pool: PgPool,
        readiness: Arc<Readiness>,
        classifier: ClassifierHandle,
        jobs: mpsc::Sender<Job>,
        http: HttpArgs,
    ) -> anyhow::Result<Self> {
        let guard = Arc::new(Guard::new(&http)?);
        Ok(Self { metrics, pool, readiness, classifier, jobs, limits: Arc::new(http), guard })
    }
}
