use std::path::PathBuf;

/// Everything that can go wrong loading or running a model; each names what it is about.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Not a `source`: the message holds it already, and `{:#}` would print it twice.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("model directory {dir}: missing {what}")]
    MissingFile { dir: PathBuf, what: String },
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("config.json: unknown activation `{0}` (supported: gelu, gelu_new, gelu_pytorch_tanh, relu, silu)")]
    UnknownActivation(String),
    #[error("config.json: {0}")]
    BadConfig(String),
    #[error("{file}: tensor `{name}` is missing")]
    MissingTensor { file: PathBuf, name: String },
    #[error("{file}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch { file: PathBuf, name: String, expected: Vec<i64>, found: Vec<i64> },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("device `{0}`: expected auto, cpu, cuda or cuda:N")]
    BadDevice(String),
    #[error("device `{0}` is not available (no CUDA device found)")]
    DeviceUnavailable(String),
    #[error("dtype `{0}`: expected fp32, fp16 or bf16")]
    BadDtype(String),
    #[error("fp16 needs a CUDA device (bf16 runs on CPU)")]
    HalfOnCpu,
    /// A libtorch error, as its message (the error type stays inside this crate).
    #[error("torch: {0}")]
    Torch(String),
    #[error("the model thread has stopped")]
    ThreadGone,
}

impl ModelError {
    pub(crate) fn torch(e: tch::TchError) -> Self {
        ModelError::Torch(e.to_string())
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| ModelError::Io { path, error }
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
