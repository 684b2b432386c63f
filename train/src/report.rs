//! The text report: per-epoch curve, accuracy, macro-F1, per-class
//! precision/recall/F1 and the confusion matrix.

use std::fmt::Write;

use crate::metrics::Metrics;
use crate::summary::FitSummary;

/// Accuracy, macro-F1, the per-class table and the confusion matrix.
pub fn metrics_table(m: &Metrics) -> String {
    let mut s = String::new();
    let width = m.labels.iter().map(|l| l.chars().count()).max().unwrap_or(5).max(9);
    let _ = writeln!(
        s,
        "examples {}  accuracy {:.4}  macro-F1 {:.4}  (majority class {:.4})",
        m.examples,
        m.accuracy,
        m.macro_f1,
        m.majority_accuracy()
    );
    if let Some(loss) = m.loss {
        let _ = writeln!(s, "loss {loss:.4}");
    }
    let _ = writeln!(s, "{:>width$}  precision  recall      f1  support", "label");
    for c in &m.per_class {
        let _ = writeln!(
            s,
            "{:>width$}  {:>9.4}  {:>6.4}  {:>6.4}  {:>7}",
            c.label, c.precision, c.recall, c.f1, c.support
        );
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
    if let Some(share) = summary.ngram_head {
        let trained = if summary.ngram_joint { ", the encoder trained beside it" } else { "" };
        let _ = writeln!(s, "n-gram head mixed into the logits at share {share}{trained} (in the metrics below)");
    }
    let _ = writeln!(s, "\n== dev (best checkpoint) ==\n{}", metrics_table(&summary.dev));
    if let Some(test) = &summary.test {
        let _ = writeln!(s, "== test ==\n{}", metrics_table(test));
    }
    s
}
