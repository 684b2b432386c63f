//! The HTTP side of the worker: synchronous classification (joining the
//! batcher's HTTP lane), the results table, stats, the old APIs, the web page,
//! health, readiness, metrics and the OpenAPI description.
//!
//! - [`routes`]: the one list of endpoints (router and OpenAPI both read it);
//! - [`guard`]: tokens, rate limits, concurrency bound, timeout; [`client`]: who a client is;
//! - [`extract`] and [`error`]: bodies in, refusals out (always JSON);
//! - [`classify`], [`reviews`], [`stats`], [`compat`], [`page`], [`openapi`]: the endpoints.

pub mod classify;
pub mod client;
pub mod compat;
pub mod config;
pub mod error;
pub mod extract;
pub mod guard;
pub mod openapi;
pub mod page;
pub mod reviews;
pub mod routes;
pub mod stats;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use model::ClassifierHandle;
use rdkafka::consumer::Consumer;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use config::HttpArgs;
use error::ApiError;
use guard::Guard;
use routes::{Access, ENDPOINTS};

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

pub fn router(state: AppState) -> Router {
    let mut api = Router::new();
    let mut public = Router::new();
    for e in ENDPOINTS {
        match e.access {
            Access::Api => api = api.route(e.path, (e.handler)()),
            Access::Public => public = public.route(e.path, (e.handler)()),
        }
    }
    let api = api
        .route_layer(middleware::from_fn_with_state(state.clone(), guard::protect))
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes));
    let mut app = public
        .merge(api)
        .fallback(|| async { ApiError::NotFound("no such endpoint; see /openapi.json".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), count_requests));
    let origins: Vec<HeaderValue> = state.limits.origins().iter().filter_map(|o| o.parse().ok()).collect();
    if !origins.is_empty() {
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
                .expose_headers([header::RETRY_AFTER])
                .max_age(Duration::from_secs(600)),
        );
    }
    app.with_state(state)
}

/// Counts every answer, refusals included, by route template (not raw path:
/// ids would make the label set unbounded) and status.
async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(req).await;
    state.metrics.http_requests.with_label_values(&[route.as_str(), response.status().as_str()]).inc();
    response
}

/// Serves until `stop` turns true, then stops accepting and lets in-flight requests finish.
///
/// Its own accept loop rather than `axum::serve`, which gives hyper no timer: without one a
/// client that trickles its request headers (slowloris) holds a connection forever.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(state.limits.header_timeout());
    let app = router(state);
    let connections = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(error = %e, "accepting an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        let service = service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req)
        });
        let connection = connections.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "HTTP connection ended");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
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
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
