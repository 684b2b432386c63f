//! What a fit measured: each dev evaluation during training and the run's
//! summary. `fit` fills them in; the text report, the chart and the model
//! directory's `metrics.json` read them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;

/// One dev evaluation during training.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epochs done, fractional when evaluated mid-epoch.
    pub epoch: f64,
    pub step: usize,
    /// Mean training loss since the previous evaluation.
    pub train_loss: f64,
    pub lr: f64,
    pub dev_loss: f64,
    pub dev_accuracy: f64,
    pub dev_macro_f1: f64,
    pub seconds: f64,
}

impl EpochRecord {
    /// `seconds`: since the run began.
    pub fn new(epoch: f64, step: usize, train_loss: f64, lr: f64, dev: &Metrics, seconds: f64) -> Self {
        Self {
            epoch,
            step,
            train_loss,
            lr,
            dev_loss: dev.loss.unwrap_or(f64::NAN),
            dev_accuracy: dev.accuracy,
            dev_macro_f1: dev.macro_f1,
            seconds,
        }
    }

    pub fn line(&self) -> String {
        format!(
            "epoch {:>5.2}  step {:>6}  train loss {:.4}  dev loss {:.4}  dev acc {:.4}  dev macro-F1 {:.4}  ({:.0}s)",
            self.epoch, self.step, self.train_loss, self.dev_loss, self.dev_accuracy, self.dev_macro_f1, self.seconds
        )
    }
}

/// What a fit produced (also written as `metrics.json`).
#[derive(Debug, Clone, Serialize)]
pub struct FitSummary {
    pub labels: Vec<String>,
    pub train_counts: BTreeMap<String, usize>,
    pub best_epoch: f64,
    /// `--ngram-teacher`'s out-of-fold accuracy on the training texts.
    pub teacher_accuracy: Option<f64>,
    /// `--ngram-head`'s share of the served logits.
    pub ngram_head: Option<f64>,
    /// `--ngram-joint`: the encoder was trained beside the head.
    pub ngram_joint: bool,
    pub dev: Metrics,
    pub test: Option<Metrics>,
    pub history: Vec<EpochRecord>,
    pub steps: usize,
    pub seconds: f64,
    pub stopped_by_time_budget: bool,
    pub parameters: i64,
    pub config: serde_json::Value,
}
