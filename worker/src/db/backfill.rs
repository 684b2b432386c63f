//! What `bertstream-worker backfill` reads and records: its progress per job
//! (`backfill_progress`), and the stored rows it re-scores with `--from-table`.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;
use sqlx::Row;

/// One input partition of a topic job: `[next_offset, end_offset)` is left to score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionProgress {
    pub partition: i32,
    pub next_offset: i64,
    pub end_offset: i64,
}

/// Records `ranges` (partition, from, to) for `job` unless it has them
/// already; returns what is recorded, which on a rerun is the first run's
/// ranges with the progress made since.
pub async fn start_topic_job(
    pool: &PgPool,
    job: &str,
    ranges: &[PartitionProgress],
) -> Result<Vec<PartitionProgress>, sqlx::Error> {
    sqlx::query(
        "INSERT INTO backfill_progress (job, part, next_offset, end_offset)
         SELECT $1, p, n, e FROM UNNEST($2::int[], $3::bigint[], $4::bigint[]) AS u(p, n, e)
         ON CONFLICT (job, part) DO NOTHING",
    )
    .bind(job)
    .bind(ranges.iter().map(|r| r.partition).collect::<Vec<_>>())
    .bind(ranges.iter().map(|r| r.next_offset).collect::<Vec<_>>())
    .bind(ranges.iter().map(|r| r.end_offset).collect::<Vec<_>>())
    .execute(pool)
    .await?;
    let rows = sqlx::query(
        "SELECT part, next_offset, end_offset FROM backfill_progress WHERE job = $1 AND part >= 0 ORDER BY part",
    )
    .bind(job)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PartitionProgress {
                partition: r.try_get("part")?,
                next_offset: r.try_get("next_offset")?,
                end_offset: r.try_get("end_offset")?,
            })
        })
        .collect()
}

/// Records that `partition`'s messages before `next_offset` are scored.
pub async fn advance_partition(pool: &PgPool, job: &str, partition: i32, next_offset: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE backfill_progress SET next_offset = GREATEST(next_offset, $3), updated_at = now()
         WHERE job = $1 AND part = $2",
    )
    .bind(job)
    .bind(partition)
    .bind(next_offset)
    .execute(pool)
    .await?;
    Ok(())
}

/// The last review id a `--from-table` job scored (`None`: from the start).
pub async fn start_table_job(pool: &PgPool, job: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query("INSERT INTO backfill_progress (job, part) VALUES ($1, -1) ON CONFLICT (job, part) DO NOTHING")
        .bind(job)
        .execute(pool)
        .await?;
    sqlx::query_scalar("SELECT after_id FROM backfill_progress WHERE job = $1 AND part = -1")
        .bind(job)
        .fetch_one(pool)
        .await
}

pub async fn advance_table(pool: &PgPool, job: &str, after_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE backfill_progress SET after_id = $2, updated_at = now() WHERE job = $1 AND part = -1")
        .bind(job)
        .bind(after_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// A stored row as the message it came from, to score again.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub review_id: String,
    pub text: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub published_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub fields: serde_json::Value,
}

/// Up to `limit` stored rows after `after` (by review id).
pub async fn stored_after(pool: &PgPool, after: Option<&str>, limit: usize) -> Result<Vec<StoredMessage>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT review_id, text, source_topic, source_partition, source_offset, published_at, received_at, fields
         FROM classifications WHERE $1::text IS NULL OR review_id > $1 ORDER BY review_id LIMIT $2",
    )
    .bind(after)
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredMessage {
                review_id: r.try_get("review_id")?,
                text: r.try_get("text")?,
                topic: r.try_get("source_topic")?,
                partition: r.try_get("source_partition")?,
                offset: r.try_get("source_offset")?,
                published_at: r.try_get("published_at")?,
                received_at: r.try_get("received_at")?,
                fields: r.try_get("fields")?,
            })
        })
        .collect()
}

/// Stored rows after `after`: the work left of a `--from-table` job.
pub async fn count_after(pool: &PgPool, after: Option<&str>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM classifications WHERE $1::text IS NULL OR review_id > $1")
        .bind(after)
        .fetch_one(pool)
        .await
}
