//! The text report: per-epoch curve, accuracy, macro-F1, per-class
//! precision/recall/F1 and the confusion matrix.

use std::fmt::Write;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::fit::FitSummary;
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
    pub fn new(epoch: f64, step: usize, train_loss: f64, lr: f64, dev: &Metrics, started: Instant) -> Self {
        Self {
            epoch,
            step,
            train_loss,
            lr,
            dev_loss: dev.loss.unwrap_or(f64::NAN),
            dev_accuracy: dev.accuracy,
            dev_macro_f1: dev.macro_f1,
            seconds: started.elapsed().as_secs_f64(),
        }
    }

    pub fn line(&self) -> String {
        format!(
            "epoch {:>5.2}  step {:>6}  train loss {:.4}  dev loss {:.4}  dev acc {:.4}  dev macro-F1 {:.4}  ({:.0}s)",
            self.epoch, self.step, self.train_loss, self.dev_loss, self.dev_accuracy, self.dev_macro_f1, self.seconds
        )
    }
}

/// Accuracy, macro-F1, the per-class table and the confusion matrix.
pub fn metrics_table(m: &Metrics) -> String {
    let mut s = String::new();
    let width = m.labels.iter().map(|l| l.chars().count()).max().unwrap_or(5).max(9);
    let _ = writeln!(s, "examples {}  accuracy {:.4}  macro-F1 {:.4}  (majority class {:.4})", m.examples, m.accuracy, m.macro_f1, m.majority_accuracy());
    if let Some(loss) = m.loss {
        let _ = writeln!(s, "loss {loss:.4}");
    }
    let _ = writeln!(s, "{:>width$}  precision  recall      f1  support", "label");
    for c in &m.per_class {
        let _ = writeln!(s, "{:>width$}  {:>9.4}  {:>6.4}  {:>6.4}  {:>7}", c.label, c.precision, c.recall, c.f1, c.support);
    }
    let _ = writeln!(s, "confusion (rows: true, columns: predicted)");
    let _ = write!(s, "{:>width$}", "");
    for l in &m.labels {
        let _ = write!(s, "  {l:>7}");
    }
    s.push('\n');
    for (l, row) in m.labels.iter().zip(&m.confusion) {
        let _ = write!(s, "{l:>width$}");
        for n in row {
            let _ = write!(s, "  {n:>7}");
        }
        s.push('\n');
    }
    s
}

pub fn fit_report(summary: &FitSummary) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "== training curve ==");
    for r in &summary.history {
        let _ = writeln!(s, "{}", r.line());
    }
    let _ = writeln!(
        s,
        "{} steps in {:.0}s{}; {} parameters; best dev macro-F1 at epoch {:.2}",
        summary.steps,
        summary.seconds,
        if summary.stopped_by_time_budget { " (stopped by --time-budget)" } else { "" },
        summary.parameters,
        summary.best_epoch
    );
    if let Some(accuracy) = summary.teacher_accuracy {
        let _ = writeln!(s, "targets mixed with the n-gram teacher's (out-of-fold accuracy {accuracy:.4} on train)");
    }
    let _ = writeln!(s, "\n== dev (best checkpoint) ==\n{}", metrics_table(&summary.dev));
    if let Some(test) = &summary.test {
        let _ = writeln!(s, "== test ==\n{}", metrics_table(test));
    }
    s
}
