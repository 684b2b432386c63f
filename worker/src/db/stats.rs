//! Counts of `classifications` for `/v1/stats`.

use std::collections::BTreeMap;

use sqlx::postgres::PgPool;

/// Stored results by label, from the counters the table's triggers keep
/// (`migrations/*_label_counts.sql`): one row per label, whatever the table's size.
pub async fn counts_by_label(pool: &PgPool) -> Result<BTreeMap<String, i64>, sqlx::Error> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT label, n FROM label_counts WHERE n > 0").fetch_all(pool).await?;
    Ok(rows.into_iter().collect())
}

/// Results classified in the last `secs` seconds (all workers sharing the
/// table): a range of the `classified_at` index, as long as the recent traffic.
pub async fn recent(pool: &PgPool, secs: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM classifications WHERE classified_at > now() - make_interval(secs => $1)")
        .bind(secs as f64)
        .fetch_one(pool)
        .await
}
