//! `predictions`: every model's result side by side, one row per (review,
//! model). The primary's rows are written with `classifications`
//! (`results::upsert`); here are the shadow's (and backfill's) writes and the
//! comparison of two models.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPool;
use sqlx::Row;

/// What a row of `predictions` says a model did with a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Shadow,
    Backfill,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Shadow => "shadow",
            Role::Backfill => "backfill",
        }
    }
}

/// One model's result for one message.
#[derive(Debug, Clone)]
pub struct PredictionRow {
    pub review_id: String,
    pub model: String,
    pub role: Role,
    pub label: String,
    pub score: f32,
    pub scores: BTreeMap<String, f32>,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub classified_at: DateTime<Utc>,
}

/// Writes rows in one round trip; ids must be unique per model within
/// `rows`. Newer wins as in `classifications`: a row is not replaced by an
/// older message of its partition.
pub async fn upsert(pool: &PgPool, rows: &[PredictionRow]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    macro_rules! column {
        ($field:ident) => {
            rows.iter().map(|r| r.$field.clone()).collect::<Vec<_>>()
        };
    }
    sqlx::query(
        "INSERT INTO predictions (review_id, model, role, label, score, scores, source_topic, source_partition,
                                  source_offset, classified_at)
         SELECT r, m, ro, l, s, sc::jsonb, tp, p, o, ca
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::real[], $6::text[], $7::text[],
                     $8::int[], $9::bigint[], $10::timestamptz[])
              AS u(r, m, ro, l, s, sc, tp, p, o, ca)
         ON CONFLICT (review_id, model) DO UPDATE SET
             role = EXCLUDED.role, label = EXCLUDED.label, score = EXCLUDED.score, scores = EXCLUDED.scores,
             source_topic = EXCLUDED.source_topic, source_partition = EXCLUDED.source_partition,
             source_offset = EXCLUDED.source_offset, classified_at = EXCLUDED.classified_at
         WHERE (predictions.source_topic, predictions.source_partition)
               IS DISTINCT FROM (EXCLUDED.source_topic, EXCLUDED.source_partition)
            OR predictions.source_offset <= EXCLUDED.source_offset",
    )
    .bind(column!(review_id))
    .bind(column!(model))
    .bind(rows.iter().map(|r| r.role.as_str()).collect::<Vec<_>>())
    .bind(column!(label))
    .bind(column!(score))
    .bind(rows.iter().map(|r| serde_json::to_string(&r.scores).unwrap_or_default()).collect::<Vec<_>>())
    .bind(column!(topic))
    .bind(column!(partition))
    .bind(column!(offset))
    .bind(column!(classified_at))
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether `model` has any row.
pub async fn known(pool: &PgPool, model: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM predictions WHERE model = $1)").bind(model).fetch_one(pool).await
}

/// Two models over the messages both scored (same review, same source position).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    /// Reviews both scored (on the same message).
    pub reviews: i64,
    /// Share of those where the labels agree; null when there are none.
    pub agreement: Option<f64>,
    /// `confusion[a_label][b_label]`: how many reviews `a` labelled so and `b` so.
    pub confusion: BTreeMap<String, BTreeMap<String, i64>>,
    /// `b`'s top score minus `a`'s, averaged: how much more (or less) sure `b` is.
    pub mean_score_difference: Option<f64>,
    /// Each model's labels over the same reviews: label -> count.
    pub a_labels: BTreeMap<String, i64>,
    pub b_labels: BTreeMap<String, i64>,
}

/// Compares `a` and `b` over the messages both scored, from `since` on (by `a`'s time).
pub async fn compare(pool: &PgPool, a: &str, b: &str, since: Option<DateTime<Utc>>) -> Result<Comparison, sqlx::Error> {
    let cells = sqlx::query(
        "SELECT pa.label AS a_label, pb.label AS b_label, count(*) AS n,
                sum(pb.score::float8 - pa.score::float8) AS score_difference
         FROM predictions pa
         JOIN predictions pb ON pb.review_id = pa.review_id AND pb.model = $2
              AND (pb.source_topic, pb.source_partition, pb.source_offset)
                = (pa.source_topic, pa.source_partition, pa.source_offset)
         WHERE pa.model = $1 AND ($3::timestamptz IS NULL OR pa.classified_at >= $3)
         GROUP BY pa.label, pb.label",
    )
    .bind(a)
    .bind(b)
    .bind(since)
    .fetch_all(pool)
    .await?;
    let mut comparison = Comparison {
        a: a.to_string(),
        b: b.to_string(),
        reviews: 0,
        agreement: None,
        confusion: BTreeMap::new(),
        mean_score_difference: None,
        a_labels: BTreeMap::new(),
        b_labels: BTreeMap::new(),
    };
    let (mut agreed, mut difference) = (0i64, 0f64);
    for cell in cells {
        let (a_label, b_label): (String, String) = (cell.try_get("a_label")?, cell.try_get("b_label")?);
        let n: i64 = cell.try_get("n")?;
        difference += cell.try_get::<f64, _>("score_difference")?;
        comparison.reviews += n;
        if a_label == b_label {
            agreed += n;
        }
        *comparison.a_labels.entry(a_label.clone()).or_default() += n;
        *comparison.b_labels.entry(b_label.clone()).or_default() += n;
        comparison.confusion.entry(a_label).or_default().insert(b_label, n);
    }
    if comparison.reviews > 0 {
        let n = comparison.reviews as f64;
        comparison.agreement = Some(agreed as f64 / n);
        comparison.mean_score_difference = Some(difference / n);
    }
    Ok(comparison)
}
