//! Shared by the HTTP tests: an `AppState` over the real Postgres
//! and the tiny model, with a model loop standing in for the batcher, so the
//! router can be called with `oneshot` (no socket).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::Router;
use bertstream_tests::*;
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use model::{DeviceSpec, LoadOptions};
use tokio::sync::mpsc;
use tower::ServiceExt;
use worker::config::HttpArgs;
use worker::db::{self, ResultRow};
use worker::http::readiness::Readiness;
use worker::http::AppState;
use worker::metrics::Metrics;
use worker::models::Models;
use worker::stages::{Answer, Job, Origin};

/// How the stand-in model lane answers.
#[derive(Clone, Copy, PartialEq)]
pub enum Lane {
    /// Each job is predicted by the tiny model.
    Model,
    /// Jobs are taken and never answered (a stuck model), for timeouts and the concurrency bound.
    Stuck,
}

pub struct TestApp {
    pub state: AppState,
    pub database_url: String,
}

/// The tiny model as the primary, and `shadow` as the shadow.
pub async fn models(metrics: Arc<Metrics>, shadow: Option<std::path::PathBuf>) -> Arc<Models> {
    let options = LoadOptions { device: DeviceSpec::Cpu, ..LoadOptions::default() };
    Arc::new(Models::start(tiny_model(), shadow, 1.0, options, Some(1), metrics).await.expect("tiny model loads"))
}

impl TestApp {
    pub async fn new(http: HttpArgs, lane: Lane) -> Self {
        let database_url = fresh_database().await;
        let pool = db::connect(&database_url, 2).expect("pool");
        db::MIGRATOR.run(&pool).await.expect("migrations");
        let metrics = Arc::new(Metrics::new());
        // Readiness is the running worker's (tests/http_worker.rs); here it stays "not probed".
        let readiness = Arc::new(Readiness::default());
        let models = models(metrics.clone(), None).await;
        let (jobs, lane_rx) = mpsc::channel(256);
        tokio::spawn(model_lane(models.clone(), lane_rx, lane));
        let state = AppState::new(metrics, pool, readiness, models, jobs, http).expect("state");
        Self { state, database_url }
    }

    pub fn router(&self) -> Router {
        worker::http::router(self.state.clone())
    }

    /// Sends one request from `peer` through a fresh router.
    pub async fn call(&self, req: Request<Body>) -> Reply {
        call(self.router(), req).await
    }

    pub async fn insert(&self, rows: &[ResultRow]) {
        db::upsert(&self.state.pool, &mut rows.to_vec(), db::results::SameMessage::Keep).await.expect("upsert");
    }
}

async fn model_lane(models: Arc<Models>, mut jobs: mpsc::Receiver<Job>, lane: Lane) {
    let mut stuck = Vec::new();
    while let Some(job) = jobs.recv().await {
        let Origin::Http(reply) = job.origin else { continue };
        if lane == Lane::Stuck {
            stuck.push(reply);
            continue;
        }
        let model = models.primary();
        let batch = model.handle.encoder().batch(&[job.tokens]);
        if let Ok(mut predictions) = model.handle.predict(batch).await {
            let _ = reply.send(Answer { prediction: predictions.remove(0), model });
        }
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A refusal: the status, and the error code of the JSON body.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text());
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    }
}

pub async fn call(router: Router, req: Request<Body>) -> Reply {
    let response = router.oneshot(req).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("body").to_bytes().to_vec();
    Reply { status, headers, body }
}

pub fn peer(addr: &str) -> ConnectInfo<SocketAddr> {
    ConnectInfo(addr.parse().expect("socket address"))
}

pub fn post_json(path: &str, body: &str) -> Request<Body> {
    request("POST", path, "application/json", body.to_string())
}

pub fn get(path: &str) -> Request<Body> {
    let mut req = Request::get(path).body(Body::empty()).expect("request");
    req.extensions_mut().insert(peer("127.0.0.1:1000"));
    req
}

pub fn request(method: &str, path: &str, content_type: &str, body: String) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("request");
    req.extensions_mut().insert(peer("127.0.0.1:1000"));
    req
}

/// A stored result, as the sinks would write it.
pub fn row(id: &str, label: &str, text: &str, classified_at: DateTime<Utc>) -> ResultRow {
    let scores: BTreeMap<String, f32> =
        [("-1", 0.1), ("0", 0.2), ("1", 0.7)].into_iter().map(|(l, s)| (l.to_string(), s)).collect();
    ResultRow {
        review_id: id.into(),
        text: text.into(),
        label: label.into(),
        score: 0.7,
        scores,
        model: "tiny-bert@000000000000".into(),
        topic: "reviews".into(),
        partition: 0,
        offset: 1,
        published_at: None,
        received_at: classified_at,
        classified_at,
        queue_ms: 1.0,
        model_ms: 1.0,
        batch_size: 1,
        fields: serde_json::json!({"source": "test"}),
    }
}

/// Defaults with rate limiting off, so tests that do not test it cannot trip it.
pub fn open_args() -> HttpArgs {
    HttpArgs { rate_limit_per_sec: 0, ..HttpArgs::default() }
}
