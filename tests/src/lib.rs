//! Helpers for the end-to-end tests in `tests/tests/`: real Kafka and Postgres
//! (started by `scripts/services.sh up`), random topic, group and database
//! names per test, and the worker binary run as a child process.
//!
//! One module per concern, each depending only on those above it:
//! [`common`] (names, paths, polling), [`kafka`] and [`db`], [`process`]
//! (the worker child), [`ledger`] (the audit every fault test ends with),
//! [`otlp`] (a receiver of the spans the binaries export).

pub mod common;
pub mod db;
pub mod kafka;
pub mod ledger;
pub mod otlp;
pub mod process;

pub use common::{
    python, repo_root, tiny_model, tiny_model_reversed, tiny_model_variant, tiny_model_with_nan_token,
    tiny_model_with_ngram_head, unique, wait_until,
};
pub use db::{
    admin_database_url, database_name, fresh_database, prediction_rows, set_database_available, stored_count,
    stored_models, stored_rows, PredictionRow, StoredRow,
};
pub use kafka::{
    all_committed, brokers, committed_offsets, create_topics, end_offsets, producer, publish, publish_with_headers,
    read_all, review, reviews, sample_text, set_topic_config, wait_all_committed, KeyValue, Record, Topics,
};
pub use ledger::{assert_all_committed, audit, stop_and_audit, Ledger};
pub use otlp::{parse_traceparent, OtlpReceiver, ReceivedSpan};
pub use process::{
    backfill, free_port, producer_binary, resident_bytes, services, start_backfill, worker_binary, Worker,
};
