//! The model lifecycle over HTTP: `GET /v1/models` (what is loaded),
//! `GET /v1/models/compare` (two models over the reviews both scored), and
//! the admin endpoints that swap the primary and promote the shadow.

use std::path::PathBuf;

use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::extract::JsonBody;
use super::state::AppState;
use crate::db;
use crate::db::predictions::Comparison;
use crate::models::{Change, ChangeError, LoadedModel, Rolling};

#[derive(Debug, Serialize)]
pub struct ModelView {
    /// `<dir name>@<weights digest>` (the directory's path stays in the log).
    pub id: String,
    pub labels: Vec<String>,
    pub device: String,
    pub loaded_at: DateTime<Utc>,
    /// Texts this worker scored with it since it was loaded.
    pub scored: u64,
}

impl ModelView {
    fn of(model: &LoadedModel) -> Self {
        let info = model.info();
        Self {
            id: info.model_id.clone(),
            labels: info.labels.clone(),
            device: info.device.clone(),
            loaded_at: model.loaded_at,
            scored: model.scored(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ModelsView {
    pub primary: ModelView,
    pub shadow: Option<ModelView>,
    pub shadow_sample: f64,
    pub rolling: Rolling,
}

pub async fn list_models(State(state): State<AppState>) -> Json<ModelsView> {
    let models = &state.models;
    Json(ModelsView {
        primary: ModelView::of(&models.primary()),
        shadow: models.shadow().as_deref().map(ModelView::of),
        shadow_sample: models.shadow_sample,
        rolling: models.rolling(),
    })
}

#[derive(Debug, Deserialize)]
pub struct CompareQuery {
    pub a: String,
    pub b: String,
    pub since: Option<DateTime<Utc>>,
}

pub async fn compare(
    State(state): State<AppState>,
    query: Result<Query<CompareQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Comparison>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(format!("bad query parameters: {}", e.body_text())))?;
    for model in [&q.a, &q.b] {
        let loaded =
            [Some(state.models.primary()), state.models.shadow()].into_iter().flatten().any(|m| m.id() == model);
        if !loaded && !db::predictions::known(&state.pool, model).await.map_err(|e| ApiError::internal("compare", e))? {
            return Err(ApiError::NotFound(format!("model {model:?} is neither loaded nor in the predictions table")));
        }
    }
    let comparison = db::predictions::compare(&state.pool, &q.a, &q.b, q.since)
        .await
        .map_err(|e| ApiError::internal("compare", e))?;
    Ok(Json(comparison))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapRequest {
    pub dir: PathBuf,
}

/// Loads `dir` beside the primary and, if it passes, makes it the primary.
/// The change runs to its end even if the caller goes away.
pub async fn swap_primary(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<SwapRequest>,
) -> ApiResult<Json<Change>> {
    let models = state.models.clone();
    let change = tokio::spawn(async move { models.swap_primary(&request.dir).await })
        .await
        .map_err(|e| ApiError::internal("swapping the model", e))?;
    change.map(Json).map_err(refusal)
}

/// Makes the shadow the primary and the primary the shadow (again: rollback).
pub async fn promote(State(state): State<AppState>) -> ApiResult<Json<Change>> {
    state.models.promote().await.map(Json).map_err(refusal)
}

fn refusal(e: ChangeError) -> ApiError {
    match e {
        ChangeError::Refused(reason) => ApiError::ModelRefused(reason),
        e @ ChangeError::NoShadow => ApiError::Conflict(e.to_string()),
    }
}
