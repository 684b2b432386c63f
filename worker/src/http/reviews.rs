//! `GET /v1/reviews/{id}` and `GET /v1/reviews?label=&below=&limit=&before=`: the
//! stream's results table, newest first (`db::reviews`). Pages are cut by
//! keyset: `next` is an opaque cursor naming the last row shown, passed back
//! as `before`.

use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::state::AppState;
use crate::db;
pub use crate::db::reviews::StoredReview;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

#[derive(Debug, Serialize, Deserialize)]
pub struct ReviewPage {
    pub items: Vec<StoredReview>,
    /// Pass as `before` for the next (older) page; null on the last page.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub label: Option<String>,
    /// Only results whose top score is under this, 0 to 1 (the review queue).
    pub below: Option<f32>,
    pub limit: Option<usize>,
    pub before: Option<String>,
}

pub async fn get_review(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<StoredReview>> {
    match db::reviews::get(&state.pool, &id).await.map_err(|e| ApiError::internal("reading a review", e))? {
        Some(review) => Ok(Json(review)),
        None => Err(ApiError::NotFound(format!("no result stored for review id {id:?}"))),
    }
}

pub async fn list_reviews(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<ReviewPage>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(format!("bad query parameters: {}", e.body_text())))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::Unprocessable(format!("limit must be 1 to {MAX_LIMIT}")));
    }
    if q.below.is_some_and(|b| !(0.0..=1.0).contains(&b)) {
        return Err(ApiError::Unprocessable("below must be a score from 0 to 1".into()));
    }
    let before = q.before.as_deref().filter(|s| !s.is_empty()).map(Cursor::decode).transpose()?;
    let filter = db::reviews::Filter { label: q.label.as_deref(), below: q.below };
    // One row more than asked tells whether another page follows.
    let mut items = db::reviews::list(&state.pool, filter, before.as_ref().map(|c| (c.at, c.id.as_str())), limit + 1)
        .await
        .map_err(|e| ApiError::internal("listing reviews", e))?;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|r| Cursor { at: r.classified_at, id: r.id.clone() }.encode())
    } else {
        None
    };
    Ok(Json(ReviewPage { items, next }))
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
