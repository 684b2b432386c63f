//! All Postgres access of the worker: the pool, migrations, and one module
//! per use — [`results`] (the sinks' upsert), [`backfill`] (its progress
//! and the rows it re-scores), [`predictions`] (every
//! model's results: the shadow's writes, comparisons), [`reviews`] and
//! [`stats`] (what HTTP reads). Nothing outside this module writes SQL.

pub mod backfill;
pub mod predictions;
pub mod results;
pub mod reviews;
pub mod stats;

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::ConnectOptions;
use tokio::time::Instant;

use crate::retry::Backoff;

pub use results::{upsert, ResultRow, SameMessage};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// A pool of at most `max_connections` with bounded waits: a slow or absent
/// Postgres becomes an error to retry, never a hang.
pub fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url
        .parse::<PgConnectOptions>()?
        .options([("statement_timeout", "30s")])
        .log_statements(tracing::log::LevelFilter::Trace);
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options))
}

/// Applies the migrations, waiting for Postgres as long as a running worker
/// would ride out an outage, or at most `bound` when given (then an error,
/// for orchestrators that would rather restart the worker).
pub async fn migrate_with_retry(pool: &PgPool, bound: Option<Duration>) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut backoff = Backoff::new();
    loop {
        match MIGRATOR.run(pool).await {
            Ok(()) => return Ok(()),
            Err(e) if bound.is_none_or(|b| start.elapsed() < b) => {
                tracing::warn!(error = %e, waited_secs = start.elapsed().as_secs(), "postgres not ready for migrations; retrying");
                backoff.wait().await;
            }
            Err(e) => return Err(e).context("running migrations"),
        }
    }
}

/// Whether Postgres answers within `timeout` (readiness).
pub async fn ping(pool: &PgPool, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(pool)).await.is_ok_and(|r| r.is_ok())
}

/// Whether an error is about the rows themselves (retrying cannot help; split
/// the batch to find the culprit) rather than the connection or the server.
pub fn is_data_error(error: &sqlx::Error) -> bool {
    let Some(db) = error.as_database_error() else { return false };
    // SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation).
    db.code().is_some_and(|c| c.starts_with("22") || c.starts_with("23"))
}
