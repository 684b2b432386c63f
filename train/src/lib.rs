//! Training, evaluation and export behind `bertstream-train`, on the model
//! crate's BERT modules. Modules use only those listed before them:
//!
//! - [`error`]; [`data`]: the labelled TSV, de-duplication and the stratified split;
//! - [`input`]: what `predict` and `eval` read: TSV, CSV, JSONL or plain text;
//! - [`metrics`]: accuracy, macro-F1, per class; [`summary`]: what a fit measured;
//! - [`report`], [`chart`]: a fit's summary as text and PNG;
//! - [`vocab`]: a WordPiece vocabulary from the training texts (`--scratch`);
//! - [`init`]: the starting model, scratch or an HF checkpoint;
//! - [`optim`]: AdamW as torch computes it, clipping, the learning-rate schedule;
//! - [`masking`]: masked-LM targets (BERT's masking recipe, bags of words);
//!   [`ngram`]: the TF-IDF n-gram teacher of `fit --ngram-teacher`;
//! - [`evaluate`]: batched scoring, `eval` and `predict`;
//! - [`output`]: the model directory, written atomically;
//! - [`train_loop`]: the loop `fit` and `pretrain` share (batches, time budget, progress);
//! - [`fit`]: train a classifier; [`pretrain`]: masked-LM pretraining from
//!   scratch, a starting point for `fit --init`.

pub mod chart;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod fit;
pub mod init;
pub mod input;
pub mod masking;
pub mod metrics;
pub mod ngram;
pub mod optim;
pub mod output;
pub mod pretrain;
pub mod report;
pub mod summary;
pub mod train_loop;
pub mod vocab;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

pub use error::{Result, TrainError};

/// What `split` did.
#[derive(Debug, Clone, Serialize)]
pub struct SplitSummary {
    pub dedup: data::DedupStats,
    pub counts: [BTreeMap<String, usize>; 3],
}

pub const SPLIT_FILES: [&str; 3] = ["train.tsv", "dev.tsv", "test.tsv"];

/// `split`: read, de-duplicate, split and write `train.tsv`, `dev.tsv`, `test.tsv` into `out`.
pub fn split_file(input: &Path, out: &Path, ratios: data::Ratios, seed: u64) -> Result<SplitSummary> {
    let (examples, dedup) = data::dedupe(data::read_tsv(input)?);
    if examples.is_empty() {
        return Err(TrainError::Invalid(format!("{}: nothing left after removing conflicting texts", input.display())));
    }
    let parts = data::split(&examples, ratios, seed);
    std::fs::create_dir_all(out).map_err(TrainError::io(out))?;
    for (name, part) in SPLIT_FILES.iter().zip(&parts) {
        data::write_tsv(&out.join(name), part)?;
    }
    let counts = [data::label_counts(&parts[0]), data::label_counts(&parts[1]), data::label_counts(&parts[2])];
    Ok(SplitSummary { dedup, counts })
}
