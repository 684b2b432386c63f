use std::path::PathBuf;

use model::ModelError;

/// What can go wrong preparing data, training or evaluating; each names its file (and line).
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Not a `source`: the message holds it already, and `{:#}` would print it twice.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}:{line}: {message}")]
    BadLine { path: PathBuf, line: usize, message: String },
    #[error("{0}: no examples (the file is empty or holds only a header)")]
    Empty(PathBuf),
    #[error("{path}: label `{label}` never occurs in the training data (training labels: {known})")]
    UnknownLabel { path: PathBuf, label: String, known: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| TrainError::Io { path, error }
    }
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
