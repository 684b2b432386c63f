//! `/healthz`, `/readyz` and `/metrics`: for orchestrators and Prometheus.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rdkafka::consumer::Consumer;
use serde_json::json;

use super::state::AppState;
use crate::db;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the model is loaded (it is, once this serves), and Kafka and Postgres answer.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let postgres = db::ping(&state.pool, Duration::from_secs(2)).await;
    let consumer = state.consumer.clone();
    let topic = state.input_topic.clone();
    let kafka = tokio::task::spawn_blocking(move || {
        consumer.client().fetch_metadata(Some(&topic), Duration::from_secs(2)).is_ok()
    })
    .await
    .unwrap_or(false);
    let ready = postgres && kafka;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({"ready": ready, "model": state.classifier.info().model_id, "postgres": postgres, "kafka": kafka});
    (status, Json(body)).into_response()
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
