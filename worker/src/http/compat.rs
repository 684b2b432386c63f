//! The old APIs, so that their clients keep working unchanged:
//!
//! - `POST /encode`, the `bert-base` serving API (macanv/BERT-BiLSTM-CRF-NER,
//!   `-mode CLASS`): `{"id": 111, "texts": [...], "is_tokenized": false}` ->
//!   `{"id": 111, "result": [{"pred_label": [...], "score": [...]}], "status": 200}`:
//!   one object for the whole request, a label and the top probability per text.
//! - `POST /api/v0.1/query`, the original demo's API (xmxoxo/BERT-train2deploy):
//!   `text` as a form field (how its page sent it), JSON or query parameter; one
//!   sentence per line -> `{"result": [[label, line], ...]}`; an empty text ->
//!   `{"result": "error"}`, as it answered. We add `score` (the top probability
//!   per line) and `model` beside `result`; old clients ignore them.

use std::collections::HashMap;

use axum::extract::{RawQuery, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::classify::classify;
use super::error::{ApiError, ApiResult};
use super::extract::Body;
use super::state::AppState;

#[derive(Debug, Deserialize)]
pub struct EncodeRequest {
    /// Echoed back as sent (any JSON value).
    #[serde(default)]
    pub id: Value,
    /// Strings, or with `is_tokenized` lists of tokens (joined by spaces: BERT's
    /// tokenizer splits them the same way again).
    pub texts: Vec<Value>,
    #[serde(default)]
    pub is_tokenized: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EncodeResponse {
    pub id: Value,
    pub result: Vec<EncodeResult>,
    pub status: u16,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EncodeResult {
    pub pred_label: Vec<String>,
    pub score: Vec<f32>,
}

pub async fn encode_handler(State(state): State<AppState>, body: Body) -> ApiResult<Json<EncodeResponse>> {
    let request: EncodeRequest = body.json()?;
    let texts = request
        .texts
        .into_iter()
        .enumerate()
        .map(|(i, t)| text_of(i, t, request.is_tokenized))
        .collect::<ApiResult<Vec<String>>>()?;
    let answers = classify(&state, texts).await?;
    let (pred_label, score) = answers.into_iter().map(|a| (a.prediction.label, a.prediction.score)).unzip();
    Ok(Json(EncodeResponse { id: request.id, result: vec![EncodeResult { pred_label, score }], status: 200 }))
}

fn text_of(i: usize, value: Value, tokenized: bool) -> ApiResult<String> {
    match (value, tokenized) {
        (Value::String(s), false) => Ok(s),
        (Value::Array(tokens), true) => tokens
            .into_iter()
            .map(|t| match t {
                Value::String(s) => Ok(s),
                _ => Err(ApiError::Unprocessable(format!("texts[{i}]: tokens must be strings"))),
            })
            .collect::<ApiResult<Vec<String>>>()
            .map(|t| t.join(" ")),
        (_, false) => Err(ApiError::Unprocessable(format!("texts[{i}] must be a string (or set is_tokenized)"))),
        (_, true) => {
            Err(ApiError::Unprocessable(format!("texts[{i}] must be a list of tokens when is_tokenized is true")))
        }
    }
}

/// The demo's sentence split: runs of spaces, tabs and ideographic spaces
/// become one space, trailing blanks go, one sentence per non-blank line.
pub fn split_lines(text: &str) -> Vec<String> {
    let mut squeezed = String::with_capacity(text.len());
    for c in text.chars() {
        let blank = matches!(c, ' ' | '\t' | '\u{3000}');
        if !(blank && squeezed.ends_with(' ')) {
            squeezed.push(if blank { ' ' } else { c });
        }
    }
    squeezed.trim_end().split('\n').filter(|l| !l.trim().is_empty()).map(String::from).collect()
}

pub async fn query_handler(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    body: Body,
) -> ApiResult<Json<Value>> {
    let text = query_text(&body, query.as_deref())?;
    let lines = split_lines(&text);
    if lines.is_empty() {
        return Ok(Json(json!({"result": "error"})));
    }
    let answers = classify(&state, lines.clone()).await?;
    let model = answers.first().map(|a| a.model.id().to_string());
    let scores: Vec<f32> = answers.iter().map(|a| a.prediction.score).collect();
    let result: Vec<(String, String)> = answers.into_iter().map(|a| a.prediction.label).zip(lines).collect();
    Ok(Json(json!({"result": result, "score": scores, "model": model})))
}

/// `text` from the form body, a JSON body, or the query string (Flask's `request.values`).
fn query_text(body: &Body, query: Option<&str>) -> ApiResult<String> {
    let looks_json = body.0.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let from_body = if body.0.is_empty() {
        None
    } else if !body.is_form() && (looks_json || body.1.as_deref().is_some_and(|t| t.contains("json"))) {
        #[derive(Deserialize)]
        struct TextField {
            text: Option<String>,
        }
        body.json::<TextField>()?.text
    } else {
        form_field(&body.0, "text")?
    };
    let from_query = || query.map(|q| form_field(q.as_bytes(), "text")).transpose().map(Option::flatten);
    match from_body {
        Some(text) => Ok(text),
        None => from_query()?.ok_or_else(|| ApiError::BadRequest("missing the `text` field".into())),
    }
}

fn form_field(bytes: &[u8], name: &str) -> ApiResult<Option<String>> {
    let mut fields: HashMap<String, String> = serde_urlencoded::from_bytes(bytes)
        .map_err(|_| ApiError::BadRequest("the form body could not be parsed".into()))?;
    Ok(fields.remove(name))
}
