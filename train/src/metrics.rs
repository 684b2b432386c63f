//! Classification metrics from a confusion matrix. Macro-F1 averages the
//! classes' F1 with equal weight, so a class the model never predicts pulls
//! it down even when accuracy looks fine.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Examples whose true label is this one.
    pub support: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub examples: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]`, in label order.
    pub confusion: Vec<Vec<usize>>,
    pub labels: Vec<String>,
    /// Mean cross-entropy, where the caller had logits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl Metrics {
    /// From true and predicted class indices (`< labels.len()`).
    pub fn compute(labels: &[String], truth: &[usize], predicted: &[usize]) -> Self {
        let k = labels.len();
        let mut confusion = vec![vec![0usize; k]; k];
        for (&t, &p) in truth.iter().zip(predicted) {
            if t < k && p < k {
                confusion[t][p] += 1;
            }
        }
        let correct: usize = (0..k).map(|i| confusion[i][i]).sum();
        let examples = truth.len().min(predicted.len());
        let per_class: Vec<ClassMetrics> = (0..k)
            .map(|i| {
                let support: usize = confusion[i].iter().sum();
                let predicted_i: usize = confusion.iter().map(|row| row[i]).sum();
                let precision = ratio(confusion[i][i], predicted_i);
                let recall = ratio(confusion[i][i], support);
                let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
                ClassMetrics { label: labels[i].clone(), precision, recall, f1, support }
            })
            .collect();
        let macro_f1 = if k == 0 { 0.0 } else { per_class.iter().map(|c| c.f1).sum::<f64>() / k as f64 };
        Self {
            examples,
            accuracy: ratio(correct, examples),
            macro_f1,
            per_class,
            confusion,
            labels: labels.to_vec(),
            loss: None,
        }
    }

    /// Accuracy of always answering the most frequent true class.
    pub fn majority_accuracy(&self) -> f64 {
        ratio(self.per_class.iter().map(|c| c.support).max().unwrap_or(0), self.examples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_f1_counts_a_never_predicted_class() {
        let labels: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let m = Metrics::compute(&labels, &[0, 0, 0, 1], &[0, 0, 0, 0]);
        assert!((m.accuracy - 0.75).abs() < 1e-12);
        assert!((m.per_class[0].f1 - 6.0 / 7.0).abs() < 1e-12);
        assert_eq!(m.per_class[1].f1, 0.0);
        assert!((m.macro_f1 - 3.0 / 7.0).abs() < 1e-12);
        assert_eq!(m.confusion, vec![vec![3, 0], vec![1, 0]]);
        assert!((m.majority_accuracy() - 0.75).abs() < 1e-12);
    }
}
