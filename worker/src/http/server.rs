//! The router over [`ENDPOINTS`] (guard, body limit, CORS, request
//! counting) and the accept loop that serves it.

use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::watch;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::endpoint::Access;
use super::error::ApiError;
use super::guard;
use super::routes::ENDPOINTS;
use super::state::AppState;

pub fn router(state: AppState) -> Router {
    let mut api = Router::new();
    let mut admin = Router::new();
    let mut public = Router::new();
    for e in ENDPOINTS {
        match e.access {
            Access::Api => api = api.route(e.path, (e.handler)()),
            Access::Admin => admin = admin.route(e.path, (e.handler)()),
            Access::Public => public = public.route(e.path, (e.handler)()),
        }
    }
    let api = api
        .route_layer(middleware::from_fn_with_state(state.guard.clone(), guard::protect))
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes));
    let admin = admin
        .route_layer(middleware::from_fn_with_state(state.guard.clone(), guard::protect_admin))
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes));
    let mut app = public
        .merge(api)
        .merge(admin)
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
    let route =
        req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(req).await;
    state.metrics.http_requests.with_label_values(&[route.as_str(), response.status().as_str()]).inc();
    response
}

/// Serves until `stop` turns true, then stops accepting and lets in-flight requests finish.
///
/// Its own accept loop rather than `axum::serve`, which gives hyper no timer: without one a
/// client that trickles its request headers (slowloris) holds a connection forever.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
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
