//! What every handler reads: the models, the batcher's HTTP lane, the
//! database pool, metrics, limits and the guard.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::mpsc;

use super::guard::Guard;
use super::readiness::Readiness;
use crate::config::HttpArgs;
use crate::metrics::Metrics;
use crate::models::Models;
use crate::stages::Job;

#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    /// HTTP's own small pool, so that reads never starve the sinks'.
    pub pool: PgPool,
    /// What the background probe last found.
    pub readiness: Arc<Readiness>,
    /// The primary (whose encoder tokenizes HTTP texts) and the shadow.
    pub models: Arc<Models>,
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
        models: Arc<Models>,
        jobs: mpsc::Sender<Job>,
        http: HttpArgs,
    ) -> anyhow::Result<Self> {
        let guard = Arc::new(Guard::new(&http)?);
        Ok(Self { metrics, pool, readiness, models, jobs, limits: Arc::new(http), guard })
    }
}
