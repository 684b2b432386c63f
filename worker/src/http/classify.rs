//! `POST /v1/classify`: texts join the batcher's HTTP lane, which goes before
//! the stream's backlog within its share (`HTTP_SHARE`), and the caller awaits
//! each text's prediction. Texts from HTTP are never stored or published.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc::error::TrySendError, oneshot};
use tokio::time::Instant;

use super::error::{ApiError, ApiResult};
use super::extract::JsonBody;
use super::state::AppState;
use crate::stages::{Answer, Job, Origin};

/// `{"texts": [...]}`, or `{"text": "..."}` for one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    pub texts: Option<Vec<String>>,
    pub text: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ClassifyResponse {
    /// `<dir name>@<first 12 hex of sha256(weights)>`
    pub model: String,
    /// The model's labels in its own order (JSON objects do not keep an order).
    pub labels: Vec<String>,
    /// One per text, in request order.
    pub results: Vec<TextResult>,
    /// Time spent serving the request, in milliseconds.
    pub took_ms: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TextResult {
    pub label: String,
    pub score: f32,
    /// Every label's probability.
    pub scores: BTreeMap<String, f32>,
}

pub async fn classify_handler(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<ClassifyRequest>,
) -> ApiResult<Json<ClassifyResponse>> {
    let started = Instant::now();
    let texts = match (request.texts, request.text) {
        (Some(texts), None) => texts,
        (None, Some(text)) => vec![text],
        _ => return Err(ApiError::Unprocessable("send exactly one of `texts` (a list) or `text` (a string)".into())),
    };
    let answers = classify(&state, texts).await?;
    // Texts of one request straddle a hot swap only rarely; each result's
    // scores are keyed by the labels of the model that scored it.
    let model = answers[0].model.clone();
    let results = answers.into_iter().map(text_result).collect();
    let took_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Json(ClassifyResponse { model: model.id().to_string(), labels: model.info().labels.clone(), results, took_ms }))
}

fn text_result(answer: Answer) -> TextResult {
    let p = answer.prediction;
    let scores = answer.model.info().labels.iter().cloned().zip(p.scores.iter().copied()).collect();
    TextResult { label: p.label, score: p.score, scores }
}

/// Checks the texts against the limits, sends them to the HTTP lane and awaits
/// every answer (in order; never empty). Shared by every endpoint that classifies.
pub async fn classify(state: &AppState, texts: Vec<String>) -> ApiResult<Vec<Answer>> {
    let limits = &state.limits;
    if texts.is_empty() {
        return Err(ApiError::Unprocessable("no texts to classify".into()));
    }
    if texts.len() > limits.max_texts_per_request {
        return Err(ApiError::TooLarge(format!(
            "{} texts in one request; the limit is {}",
            texts.len(),
            limits.max_texts_per_request
        )));
    }
    for (i, text) in texts.iter().enumerate() {
        if text.trim().is_empty() {
            return Err(ApiError::Unprocessable(format!("text {i} is empty")));
        }
        let chars = text.chars().count();
        if chars > limits.max_text_chars {
            return Err(ApiError::TooLarge(format!(
                "text {i} has {chars} characters; the limit is {}",
                limits.max_text_chars
            )));
        }
    }
    let encoder = state.models.primary().handle.encoder().clone();
    let tokens: Vec<Vec<i64>> = texts
        .iter()
        .map(|text| encoder.encode(text))
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::internal("tokenizing", e))?;
    // All the request's texts join the lane, or none: a refused request
    // leaves no texts behind to take room from the next one.
    let permits = state.jobs.try_reserve_many(texts.len()).map_err(|e| match e {
        TrySendError::Full(()) => ApiError::Unavailable("the model queue is full; retry shortly"),
        TrySendError::Closed(()) => ApiError::Unavailable("the worker is shutting down"),
    })?;
    let mut replies = Vec::with_capacity(texts.len());
    for (i, ((text, tokens), permit)) in texts.into_iter().zip(tokens).zip(permits).enumerate() {
        let (reply, answer) = oneshot::channel();
        permit.send(Job {
            id: format!("http:{i}"),
            text,
            tokens,
            encoder: encoder.fingerprint(),
            enqueued: Instant::now(),
            origin: Origin::Http(reply),
        });
        replies.push(answer);
    }
    let mut answers = Vec::with_capacity(replies.len());
    for answer in replies {
        answers.push(answer.await.map_err(|_| ApiError::Unavailable("the model stopped before answering"))?);
    }
    Ok(answers)
}
