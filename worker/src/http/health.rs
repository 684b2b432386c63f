//! `/healthz`, `/readyz` and `/metrics`: for orchestrators and Prometheus.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::state::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the model is loaded (it is, once this serves), Kafka and
/// Postgres answered the last background probe (`readiness`), and the sinks
/// are not stalled.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let probed = state.readiness.get();
    let ready = probed.ready();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({"ready": ready, "model": state.models.primary().id(), "postgres": probed.postgres,
                      "kafka": probed.kafka, "sinks": probed.sinks});
    (status, Json(body)).into_response()
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
