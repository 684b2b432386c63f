//! `bertstream-worker`: consumes reviews from Kafka, classifies them in
//! micro-batches, stores results in Postgres and on the output topic, and
//! serves the HTTP API. `pipeline` wires the stages. Each module below imports
//! only modules listed after it, so no import climbs back up the data flow
//! (`docs/architecture.md`).

pub mod http;
pub mod pipeline;
// `backfill`: the command beside the stream; it scores and writes on its own.
pub mod backfill;
// `bench`: the stages between the source and the sinks, timed without Kafka or Postgres.
pub mod bench;

// The stages, in the order a message meets them (`offsets` is the last).
pub mod batcher;
pub mod dlq;
pub mod inference;
pub mod sinks;
pub mod source;
// What the stages hand each other.
pub mod offsets;
pub mod stages;
// The loaded models (primary, shadow) and their changes.
pub mod models;

// Shared by all.
pub mod budget;
pub mod config;
pub mod db;
pub mod kafka;
pub mod metrics;
pub mod retry;
