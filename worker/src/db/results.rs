//! Writes to `classifications` (and the primary's rows of `predictions`):
//! one batched upsert per batch.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::types::Json;
use sqlx::Row;

/// One stored result.
#[derive(Debug, Clone)]
pub struct ResultRow {
    pub review_id: String,
    pub text: String,
    pub label: String,
    pub score: f32,
    pub scores: BTreeMap<String, f32>,
    pub model: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub published_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub classified_at: DateTime<Utc>,
    pub queue_ms: f32,
    pub model_ms: f32,
    pub batch_size: i32,
    pub fields: serde_json::Value,
}

/// What an upsert did with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// Stored: the id was new, or this message is newer than the stored one.
    Stored,
    /// The stored row came from this very message (read again): its stored
    /// result was copied into the row, to publish again byte for byte (L4).
    Again,
    /// A newer message of this id (same partition, higher offset) is stored:
    /// nothing changed and nothing is to be published (L6).
    Superseded,
}

/// What an upsert does with a row stored from the very message it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameMessage {
    /// Keep the stored result (the stream reading a message again: L4).
    Keep,
    /// Replace it (a backfill promoting another model's results).
    Replace,
}

/// Upserts rows in one round trip. Ids must be unique within `rows`
/// (Postgres cannot update one row twice in a statement). Newer wins
/// (RELIABILITY.md L6): a message replaces the stored row of its id unless
/// that row came from the same partition at a higher offset, or at the same
/// offset and `same` says keep.
pub async fn upsert(pool: &PgPool, rows: &mut [ResultRow], same: SameMessage) -> Result<Vec<Upserted>, sqlx::Error> {
    macro_rules! column {
        ($field:ident) => {
            rows.iter().map(|r| r.$field.clone()).collect::<Vec<_>>()
        };
    }
    // One statement: the served row and the primary's `predictions` row
    // land together or not at all (the second insert reads what the first wrote).
    let written: Vec<String> = sqlx::query_scalar(
        "WITH written AS (
         INSERT INTO classifications (review_id, text, label, score, scores, model, source_topic,
             source_partition, source_offset, published_at, received_at, classified_at,
             queue_ms, model_ms, batch_size, fields)
         SELECT r, t, l, s, sc::jsonb, m, tp, p, o, pa, ra, ca, q, mm, b, f::jsonb
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::real[], $5::text[], $6::text[], $7::text[],
                     $8::int[], $9::bigint[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[],
                     $13::real[], $14::real[], $15::int[], $16::text[])
              AS u(r, t, l, s, sc, m, tp, p, o, pa, ra, ca, q, mm, b, f)
         ON CONFLICT (review_id) DO UPDATE SET
             text = EXCLUDED.text, label = EXCLUDED.label, score = EXCLUDED.score,
             scores = EXCLUDED.scores, model = EXCLUDED.model, source_topic = EXCLUDED.source_topic,
             source_partition = EXCLUDED.source_partition, source_offset = EXCLUDED.source_offset,
             published_at = EXCLUDED.published_at, received_at = EXCLUDED.received_at,
             classified_at = EXCLUDED.classified_at, queue_ms = EXCLUDED.queue_ms,
             model_ms = EXCLUDED.model_ms, batch_size = EXCLUDED.batch_size, fields = EXCLUDED.fields
         WHERE (classifications.source_topic, classifications.source_partition)
               IS DISTINCT FROM (EXCLUDED.source_topic, EXCLUDED.source_partition)
            OR classifications.source_offset < EXCLUDED.source_offset
            OR ($17 AND classifications.source_offset = EXCLUDED.source_offset)
         RETURNING review_id, model, label, score, scores, source_topic, source_partition, source_offset,
                   classified_at
         ), primary_predictions AS (
         INSERT INTO predictions (review_id, model, role, label, score, scores, source_topic, source_partition,
                                  source_offset, classified_at)
         SELECT review_id, model, 'primary', label, score, scores, source_topic, source_partition, source_offset,
                classified_at
         FROM written
         ON CONFLICT (review_id, model) DO UPDATE SET
             role = EXCLUDED.role, label = EXCLUDED.label, score = EXCLUDED.score, scores = EXCLUDED.scores,
             source_topic = EXCLUDED.source_topic, source_partition = EXCLUDED.source_partition,
             source_offset = EXCLUDED.source_offset, classified_at = EXCLUDED.classified_at
         )
         SELECT review_id FROM written",
    )
    .bind(column!(review_id))
    .bind(column!(text))
    .bind(column!(label))
    .bind(column!(score))
    .bind(rows.iter().map(|r| serde_json::to_string(&r.scores).unwrap_or_default()).collect::<Vec<_>>())
    .bind(column!(model))
    .bind(column!(topic))
    .bind(column!(partition))
    .bind(column!(offset))
    .bind(column!(published_at))
    .bind(column!(received_at))
    .bind(column!(classified_at))
    .bind(column!(queue_ms))
    .bind(column!(model_ms))
    .bind(column!(batch_size))
    .bind(rows.iter().map(|r| r.fields.to_string()).collect::<Vec<_>>())
    .bind(same == SameMessage::Replace)
    .fetch_all(pool)
    .await?;
    let written: HashSet<String> = written.into_iter().collect();
    let mut outcomes = vec![Upserted::Stored; rows.len()];
    let others: Vec<String> = rows.iter().map(|r| &r.review_id).filter(|id| !written.contains(*id)).cloned().collect();
    if others.is_empty() {
        return Ok(outcomes);
    }
    let stored: HashMap<String, PgRow> = sqlx::query(
        "SELECT review_id, label, score, scores, model, classified_at, source_topic, source_partition, source_offset
         FROM classifications WHERE review_id = ANY($1)",
    )
    .bind(&others)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|found| Ok((found.try_get("review_id")?, found)))
    .collect::<Result<_, sqlx::Error>>()?;
    for (row, outcome) in rows.iter_mut().zip(&mut outcomes) {
        // Only ids the upsert did not write were read back.
        let Some(found) = stored.get(&row.review_id) else { continue };
        let topic: String = found.try_get("source_topic")?;
        let position: (i32, i64) = (found.try_get("source_partition")?, found.try_get("source_offset")?);
        if topic != row.topic || position != (row.partition, row.offset) {
            *outcome = Upserted::Superseded;
            continue;
        }
        *outcome = Upserted::Again;
        row.label = found.try_get("label")?;
        row.score = found.try_get("score")?;
        row.scores = found.try_get::<Json<BTreeMap<String, f32>>, _>("scores")?.0;
        row.model = found.try_get("model")?;
        row.classified_at = found.try_get("classified_at")?;
    }
    Ok(outcomes)
}
