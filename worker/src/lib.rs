//! `bertstream-worker`: consumes reviews from Kafka, classifies them in
//! micro-batches, stores results in Postgres and on the output topic, and
//! serves the HTTP API. See `pipeline` for how the parts fit.

pub mod batcher;
pub mod config;
pub mod db;
pub mod dlq;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod offsets;
pub mod pipeline;
pub mod retry;
pub mod sink;
pub mod source;
