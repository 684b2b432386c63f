//! `GET /v1/stats`: counts by label, recent throughput, consumer lag (by
//! partition) and the time to work it off.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::state::AppState;
use crate::db;

/// The window of "recent" throughput, in seconds.
pub const WINDOW_SECS: i64 = 60;

#[derive(Debug, Serialize, Deserialize)]
pub struct Stats {
    pub model: String,
    /// Every label the model knows, in its order (counts may lack some).
    pub labels: Vec<String>,
    /// Stored results by label.
    pub counts: BTreeMap<String, i64>,
    pub total: i64,
    /// Results classified in the last `window_secs` seconds (all workers sharing the table).
    pub recent: i64,
    pub window_secs: i64,
    pub per_second: f64,
    /// Messages behind the end of this worker's input partitions.
    pub consumer_lag: i64,
    /// The same by assigned partition.
    pub partition_lag: BTreeMap<i32, i64>,
    /// Seconds to work off the lag at the recent rate of results; null when
    /// no results are being made while there is lag.
    pub drain_seconds: Option<f64>,
    /// Read but not yet in a model batch, in this worker.
    pub queue_depth: i64,
}

pub async fn stats_handler(State(state): State<AppState>) -> ApiResult<Json<Stats>> {
    let counts =
        db::stats::counts_by_label(&state.pool).await.map_err(|e| ApiError::internal("counting by label", e))?;
    let recent = db::stats::recent(&state.pool, WINDOW_SECS)
        .await
        .map_err(|e| ApiError::internal("counting recent results", e))?;
    let primary = state.models.primary();
    let lag = state.metrics.lag();
    Ok(Json(Stats {
        model: primary.id().to_string(),
        labels: primary.info().labels.clone(),
        total: counts.values().sum(),
        counts,
        recent,
        window_secs: WINDOW_SECS,
        per_second: recent as f64 / WINDOW_SECS as f64,
        consumer_lag: lag.partitions.values().sum(),
        partition_lag: lag.partitions,
        drain_seconds: lag.drain_seconds.is_finite().then_some(lag.drain_seconds),
        queue_depth: state.metrics.queue_depth.get(),
    }))
}
