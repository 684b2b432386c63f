//! The HTTP side of the worker: health, readiness and metrics (and, as the
//! API grows, classification and queries of the results table).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use model::ClassifierHandle;
use rdkafka::consumer::Consumer;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};

use crate::batcher::Job;
use crate::metrics::Metrics;
use crate::source::WorkerConsumer;

#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub pool: PgPool,
    pub consumer: Arc<WorkerConsumer>,
    pub classifier: ClassifierHandle,
    /// The batcher's HTTP lane.
    pub jobs: mpsc::Sender<Job>,
    pub input_topic: String,
}

impl AppState {
    pub fn new(
        metrics: Arc<Metrics>,
        pool: PgPool,
        consumer: Arc<WorkerConsumer>,
        classifier: ClassifierHandle,
        jobs: mpsc::Sender<Job>,
        input_topic: String,
    ) -> Self {
        Self { metrics, pool, consumer, classifier, jobs, input_topic }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serves until `stop` turns true, then lets in-flight requests finish.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await?;
    Ok(())
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the model is loaded (it is, once this serves), and Kafka and Postgres answer.
async fn readyz(State(state): State<AppState>) -> Response {
    let postgres = tokio::time::timeout(Duration::from_secs(2), sqlx::query("SELECT 1").execute(&state.pool))
        .await
        .is_ok_and(|r| r.is_ok());
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

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
