//! Postgres as the tests see it: a fresh database per test, what the
//! results table holds, and taking a database away ("Postgres down").

use sqlx::{Connection, PgConnection};

use crate::common::unique;

/// The admin URL for creating per-test databases.
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://bertstream:bertstream@127.0.0.1:5432/bertstream_test?sslmode=disable".into())
}

/// A fresh, empty database; its URL.
pub async fn fresh_database() -> String {
    let admin = admin_database_url();
    let name = unique("bst").replace('-', "_");
    let mut conn = PgConnection::connect(&admin).await.expect("postgres reachable (scripts/services.sh up)");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
    let (base, query) = admin.split_once('?').map_or((admin.as_str(), ""), |(b, q)| (b, q));
    let base = &base[..base.rfind('/').expect("url has a database")];
    format!("{base}/{name}{}{query}", if query.is_empty() { "" } else { "?" })
}

pub fn database_name(url: &str) -> String {
    let path = url.split('?').next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or_default().to_string()
}

/// Makes a database refuse connections and drops the open ones ("Postgres down"), or lets them in again.
pub async fn set_database_available(url: &str, available: bool) {
    let name = database_name(url);
    let mut conn = PgConnection::connect(&admin_database_url()).await.expect("admin connection");
    sqlx::query(&format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {available}"))
        .execute(&mut conn)
        .await
        .expect("alter");
    if !available {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&name)
            .execute(&mut conn)
            .await
            .expect("terminate");
    }
}

/// A stored result: its text and the input message it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    pub text: String,
    pub partition: i32,
    pub offset: i64,
}

/// Every row of the results table by id (none when the worker never created it).
pub async fn stored_rows(url: &str) -> std::collections::BTreeMap<String, StoredRow> {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    let rows: Vec<(String, String, i32, i64)> =
        match sqlx::query_as("SELECT review_id, text, source_partition, source_offset FROM classifications")
            .fetch_all(&mut conn)
            .await
        {
            Ok(rows) => rows,
            Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P01") => Vec::new(),
            Err(e) => panic!("reading the results table: {e}"),
        };
    rows.into_iter().map(|(id, text, partition, offset)| (id, StoredRow { text, partition, offset })).collect()
}

pub async fn stored_count(url: &str) -> i64 {
    let Ok(mut conn) = PgConnection::connect(url).await else { return -1 };
    sqlx::query_scalar("SELECT count(*) FROM classifications").fetch_one(&mut conn).await.unwrap_or(-1)
}

/// One row of `predictions`.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRow {
    pub review_id: String,
    pub model: String,
    pub role: String,
    pub label: String,
    pub score: f32,
    pub position: (i32, i64),
}

pub async fn prediction_rows(url: &str) -> Vec<PredictionRow> {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    let rows: Vec<(String, String, String, String, f32, i32, i64)> = sqlx::query_as(
        "SELECT review_id, model, role, label, score, source_partition, source_offset FROM predictions ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await
    .expect("reading predictions");
    rows.into_iter()
        .map(|(review_id, model, role, label, score, p, o)| PredictionRow {
            review_id,
            model,
            role,
            label,
            score,
            position: (p, o),
        })
        .collect()
}

/// `classifications` by id: the model that scored each row, and its top score.
pub async fn stored_models(url: &str) -> std::collections::BTreeMap<String, (String, f32)> {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    let rows: Vec<(String, String, f32)> =
        sqlx::query_as("SELECT review_id, model, score FROM classifications").fetch_all(&mut conn).await.expect("read");
    rows.into_iter().map(|(id, model, score)| (id, (model, score))).collect()
}
