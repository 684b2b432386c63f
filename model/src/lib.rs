//! Inference with BERT for sequence classification on tch, loading and
//! writing the model directory that Hugging Face transformers reads too
//! (DESIGN.md). Training lives in the `bertstream-train` crate.
//!
//! - [`config`]: `config.json`; [`device`]: where the model runs;
//! - [`bert`]: the module tree, mirroring `modeling_bert.py` so weights load by name;
//! - [`dir`]: the model directory, weights in and out, the model id;
//! - [`tokenize`]: BERT tokenization and dynamic padding;
//! - [`classify`]: inference; [`handle`]: the model on a thread of its own;
//! - [`ngram`]: the n-gram head mixed into the logits when a directory has one.
//!
//! What serving uses, [`ClassifierHandle`], [`LoadOptions`], [`Prediction`],
//! [`EncodedBatch`], [`TextEncoder`], [`DeviceSpec`], [`Dtype`], [`ModelInfo`] and
//! [`ModelError`], holds plain Rust types only. The items that take or give tch
//! types (the [`bert`] modules, [`Classifier::logits`], [`DeviceSpec::resolve`],
//! [`EncodedBatch::to_tensors`], [`dir::load_weights`], [`dir::save_weights`])
//! are for the model thread and for training.

pub mod bert;
pub mod classify;
pub mod config;
pub mod device;
pub mod dir;
pub mod error;
pub mod handle;
pub mod ngram;
pub mod tokenize;

pub use classify::{Classifier, LoadOptions, Prediction};
pub use config::BertConfig;
pub use device::{DeviceSpec, Dtype};
pub use dir::ModelDir;
pub use error::{ModelError, Result};
pub use handle::{ClassifierHandle, ModelInfo};
pub use tokenize::{EncodedBatch, TextEncoder};
