//! Reads of `classifications` for HTTP: one result by id, and pages newest
//! first (`classified_at`, then `review_id`, both descending, which the
//! table's indexes serve), cut by keyset.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};

/// One stored result, as the API shows it.
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
    /// In a list, a text longer than [`LIST_TEXT_CHARS`] is cut there and
    /// this is true (the review by id has it whole).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub text_truncated: bool,
}

/// The longest text a list shows, in characters: a page of 500 rows of 1 MiB
/// texts would be half a gigabyte.
pub const LIST_TEXT_CHARS: usize = 1000;

const COLUMNS: &str = "SELECT review_id, text, false AS text_truncated, label, score, scores, model, source_topic, source_partition, source_offset, classified_at, fields FROM classifications";

/// As [`COLUMNS`], the text cut at [`LIST_TEXT_CHARS`] by Postgres.
fn list_columns() -> String {
    format!(
        "SELECT review_id, left(text, {n}) AS text, length(text) > {n} AS text_truncated, label, score, scores, model, \
         source_topic, source_partition, source_offset, classified_at, fields FROM classifications",
        n = LIST_TEXT_CHARS
    )
}

pub async fn get(pool: &PgPool, id: &str) -> Result<Option<StoredReview>, sqlx::Error> {
    let mut query = QueryBuilder::<Postgres>::new(COLUMNS);
    query.push(" WHERE review_id = ").push_bind(id);
    query.build().fetch_optional(pool).await?.as_ref().map(from_row).transpose()
}

/// Which rows a page lists.
#[derive(Debug, Default, Clone, Copy)]
pub struct Filter<'a> {
    pub label: Option<&'a str>,
    /// Only results whose top score is under this (the review queue).
    pub below: Option<f32>,
}

/// Up to `limit` results, newest first, only those `filter` lets through,
/// strictly older than `before` (a row's `classified_at` and id) if given.
pub async fn list(
    pool: &PgPool,
    filter: Filter<'_>,
    before: Option<(DateTime<Utc>, &str)>,
    limit: usize,
) -> Result<Vec<StoredReview>, sqlx::Error> {
    let mut sql = QueryBuilder::<Postgres>::new(list_columns());
    sql.push(" WHERE true");
    if let Some(label) = filter.label {
        sql.push(" AND label = ").push_bind(label);
    }
    if let Some(below) = filter.below {
        sql.push(" AND score < ").push_bind(below);
    }
    if let Some((at, id)) = before {
        sql.push(" AND (classified_at, review_id) < (").push_bind(at).push(", ").push_bind(id).push(")");
    }
    sql.push(" ORDER BY classified_at DESC, review_id DESC LIMIT ").push_bind(limit as i64);
    sql.build().fetch_all(pool).await?.iter().map(from_row).collect()
}

fn from_row(row: &PgRow) -> Result<StoredReview, sqlx::Error> {
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
        text_truncated: row.try_get("text_truncated")?,
    })
}
