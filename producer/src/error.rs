//! Errors that stop the producer before or outside the per-line flow. Bad lines
//! are not errors here: they are reported and skipped (see `input::Entry::Bad`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("cannot read {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Usage(String),
    /// The message never carries a secret value (see `kafka::redact`).
    #[error("Kafka: {0}")]
    Kafka(String),
    #[error("cannot start the reader thread: {0}")]
    Thread(std::io::Error),
}
