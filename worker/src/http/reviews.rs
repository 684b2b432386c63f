//! `GET /v1/reviews/{id}` and `GET /v1/reviews?label=&limit=&before=`: the
//! stream's results table, newest first (`classified_at`, then `review_id`,
//! both descending, which the table's indexes serve). Pages are cut by keyset:
//! `next` is an opaque cursor naming the last row shown, passed back as `before`.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder, Row};

use super::error::{ApiError, ApiResult};
use super::AppState;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct StoredReview {
    pub id: String,
    pub text: String,
    pub label: String,
    pub score: f32,
    pub scores: BTreeMap<String, f32>,
    pub model: String,
    pub source: schemas::SourcePosition,
    pub classified_at: DateTime<Utc>,
    /// The review's other fields (source, created_at, ...).
    pub fields: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ReviewPage {
    pub items: Vec<StoredReview>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub label: Option<String>,
    pub limit: Option<usize>,
    pub before: Option<String>,
}

const COLUMNS: &str = "SELECT review_id, text, label, score, scores, model, source_topic, source_partition, source_offset, classified_at, fields FROM classifications";

pub async fn get_review(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<StoredReview>> {
    let mut query = QueryBuilder::<Postgres>::new(COLUMNS);
    query.push(" WHERE review_id = ").push_bind(&id);
    let row = query.build().fetch_optional(&state.pool).await.map_err(|e| ApiError::internal("reading a review", e))?;
    match row {
        Some(row) => Ok(Json(from_row(&row)?)),
        None => Err(ApiError::NotFound(format!("no result stored for review id {id:?}"))),
    }
}

pub async fn list_reviews(State(state): State<AppState>, query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>) -> ApiResult<Json<ReviewPage>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(format!("bad query parameters: {}", e.body_text())))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::Unprocessable(format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let before = q.before.as_deref().filter(|s| !s.is_empty()).map(Cursor::decode).transpose()?;
    let mut sql = QueryBuilder::<Postgres>::new(COLUMNS);
    sql.push(" WHERE true");
    if let Some(label) = &q.label {
        sql.push(" AND label = ").push_bind(label);
    }
    if let Some(cursor) = &before {
        sql.push(" AND (classified_at, review_id) < (").push_bind(cursor.at).push(", ").push_bind(&cursor.id).push(")");
    }
    // One row more than asked tells whether another page follows.
    sql.push(" ORDER BY classified_at DESC, review_id DESC LIMIT ").push_bind((limit + 1) as i64);
    let rows = sql.build().fetch_all(&state.pool).await.map_err(|e| ApiError::internal("listing reviews", e))?;
    let mut items = rows.iter().map(from_row).collect::<ApiResult<Vec<_>>>()?;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|r| Cursor { at: r.classified_at, id: r.id.clone() }.encode())
    } else {
        None
    };
    Ok(Json(ReviewPage { items, next }))
}

fn from_row(row: &sqlx::postgres::PgRow) -> ApiResult<StoredReview> {
    let read = || -> Result<StoredReview, sqlx::Error> {
        let scores: serde_json::Value = row.try_get("scores")?;
        Ok(StoredReview {
            id: row.try_get("review_id")?,
            text: row.try_get("text")?,
            label: row.try_get("label")?,
            score: row.try_get("score")?,
            scores: serde_json::from_value(scores).unwrap_or_default(),
            model: row.try_get("model")?,
            source: schemas::SourcePosition {
                topic: row.try_get("source_topic")?,
                partition: row.try_get("source_partition")?,
                offset: row.try_get("source_offset")?,
            },
            classified_at: row.try_get("classified_at")?,
            fields: row.try_get("fields")?,
        })
    };
    read().map_err(|e| ApiError::internal("decoding a review row", e))
}

/// The position after which a page starts: hex of `<micros>:<id>`. Opaque to
/// callers; microseconds are Postgres's precision, so the round trip is exact.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let plain = format!("{}:{}", self.at.timestamp_micros(), self.id);
        plain.bytes().map(|b| format!("{b:02x}")).collect()
    }

    pub fn decode(s: &str) -> ApiResult<Self> {
        let bad = || ApiError::BadRequest("`before` is not a cursor this API returned".into());
        if s.len() % 2 != 0 || s.len() > 1024 {
            return Err(bad());
        }
        let bytes = (0..s.len())
            .step_by(2)
            .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(bad)?;
        let plain = String::from_utf8(bytes).map_err(|_| bad())?;
        let (micros, id) = plain.split_once(':').ok_or_else(bad)?;
        let at = micros.parse().ok().and_then(DateTime::from_timestamp_micros).ok_or_else(bad)?;
        Ok(Self { at, id: id.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let at = DateTime::from_timestamp_micros(1_790_000_000_123_456).expect("time");
        let cursor = Cursor { at, id: "r-1:评论".into() };
        assert_eq!(Cursor::decode(&cursor.encode()).expect("decodes"), cursor);
        for bad in ["zz", "abc", "3a", "41"] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }
}
