//! Training, evaluation and export behind `bertstream-train`, on the model
//! crate's BERT modules. Imports go one way: [`summary`] (what a fit measured)
//! sits below [`report`], [`chart`] and [`output`], which `fit` uses.
//!
//! - [`data`]: the labelled TSV, de-duplication and the stratified split;
//! - [`vocab`]: a WordPiece vocabulary from the training texts (`--scratch`);
//! - [`init`]: the starting model, scratch or an HF checkpoint;
//! - [`optim`]: AdamW as torch computes it, clipping, the schedule;
//! - [`fit`]: the training loop; [`output`]: the model directory, written atomically;
//!   [`ngram`]: the TF-IDF n-gram teacher of `fit --ngram-teacher`;
//! - [`pretrain`]: masked-LM pretraining from scratch, a starting point for `fit --init`;
//!   [`masking`]: its targets (BERT's masking recipe, bags of words);
//! - [`evaluate`]: batched scoring, `eval` and `predict`;
//! - [`metrics`], [`summary`], [`report`], [`chart`]: what a run measured, as text and PNG.

pub mod chart;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod fit;
pub mod init;
pub mod masking;
pub mod metrics;
pub mod ngram;
pub mod optim;
pub mod output;
pub mod pretrain;
pub mod report;
pub mod summary;
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
