//! Scoring many texts in length-sorted batches, and the `eval` and `predict` commands.

use std::io::Write;
use std::path::Path;

use model::classify::{Classifier, LoadOptions};
use model::tokenize::EncodedBatch;
use serde::Serialize;
use tch::{Kind, Tensor};

use crate::data::Example;
use crate::error::{Result, TrainError};
use crate::input::{read_labelled, read_rows, Format, Row};
use crate::metrics::Metrics;

/// Class probabilities for each sequence, in input order. Sequences are
/// batched by length so that padding costs little; `logits` runs the model.
pub fn score_all(
    sequences: &[Vec<i64>],
    pad_id: i64,
    batch_size: usize,
    mut logits: impl FnMut(&EncodedBatch) -> Result<Tensor>,
) -> Result<Vec<Vec<f32>>> {
    let mut order: Vec<usize> = (0..sequences.len()).collect();
    order.sort_by_key(|&i| sequences[i].len());
    let mut out = vec![Vec::new(); sequences.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        let rows: Vec<Vec<i64>> = chunk.iter().map(|&i| sequences[i].clone()).collect();
        let probabilities =
            logits(&EncodedBatch::pad(&rows, pad_id))?.softmax(-1, Kind::Float).to_device(tch::Device::Cpu);
        let k = probabilities.size().get(1).copied().unwrap_or(0) as usize;
        let flat = Vec::<f32>::try_from(&probabilities.contiguous().view(-1))?;
        for (&i, scores) in chunk.iter().zip(flat.chunks(k.max(1))) {
            out[i] = scores.to_vec();
        }
    }
    Ok(out)
}

fn argmax(scores: &[f32]) -> usize {
    scores.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &s)| if s > best.1 { (i, s) } else { best }).0
}

/// Metrics (with mean cross-entropy) of probabilities against true class indices.
pub fn metrics_from_scores(labels: &[String], truth: &[usize], scores: &[Vec<f32>]) -> Metrics {
    let predicted: Vec<usize> = scores.iter().map(|s| argmax(s)).collect();
    let mut metrics = Metrics::compute(labels, truth, &predicted);
    let loss: f64 =
        truth.iter().zip(scores).map(|(&t, s)| -f64::from(s.get(t).copied().unwrap_or(0.0).max(1e-12)).ln()).sum();
    metrics.loss = Some(loss / truth.len().max(1) as f64);
    metrics
}

/// Class indices of `examples` under `labels`; a label not among them is an error naming `path`.
pub fn label_indices(examples: &[Example], labels: &[String], path: &Path) -> Result<Vec<usize>> {
    examples
        .iter()
        .map(|e| {
            labels.iter().position(|l| *l == e.label).ok_or_else(|| TrainError::UnknownLabel {
                path: path.into(),
                label: e.label.clone(),
                known: labels.join(", "),
            })
        })
        .collect()
}

const EVAL_BATCH: usize = 64;

/// `eval`: the model's metrics on labelled data in `format` (default: by extension).
pub fn evaluate_file(model: &Path, data: &Path, format: Option<Format>, options: &LoadOptions) -> Result<Metrics> {
    let classifier = Classifier::load(model, options)?;
    let examples = read_labelled(data, format)?;
    let truth = label_indices(&examples, classifier.labels(), data)?;
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    let encoder = classifier.encoder().clone();
    let sequences = encoder.encode_all(&texts)?;
    let scores = score_all(&sequences, encoder.pad_id(), EVAL_BATCH, |b| Ok(classifier.logits(b)?))?;
    Ok(metrics_from_scores(classifier.labels(), &truth, &scores))
}

/// One line of `predict` output.
#[derive(Debug, Serialize)]
pub struct PredictionLine<'a> {
    /// The input's id, else the line number.
    pub id: String,
    pub text: &'a str,
    /// The input's label, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub true_label: Option<&'a str>,
    /// The predicted label, with its probability and every label's.
    pub label: &'a str,
    pub score: f32,
    pub scores: serde_json::Map<String, serde_json::Value>,
}

/// `predict`: a JSONL line for each row of `input` (read as `format`, default: by extension).
pub fn predict_file(
    model: &Path,
    input: &Path,
    format: Option<Format>,
    out: &mut dyn Write,
    options: &LoadOptions,
) -> Result<usize> {
    let classifier = Classifier::load(model, options)?;
    let rows = read_rows(input, format)?;
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let encoder = classifier.encoder().clone();
    let sequences = encoder.encode_all(&texts)?;
    let scores = score_all(&sequences, encoder.pad_id(), EVAL_BATCH, |b| Ok(classifier.logits(b)?))?;
    write_predictions(&rows, classifier.labels(), &scores, out)?;
    Ok(rows.len())
}

/// Writes one [`PredictionLine`] per row, given each row's class probabilities.
pub fn write_predictions(rows: &[Row], labels: &[String], scores: &[Vec<f32>], out: &mut dyn Write) -> Result<()> {
    for (row, scores) in rows.iter().zip(scores) {
        let best = argmax(scores);
        let line = PredictionLine {
            id: row.id.clone().unwrap_or_else(|| row.line.to_string()),
            text: &row.text,
            true_label: row.label.as_deref(),
            label: &labels[best],
            score: scores[best],
            scores: labels.iter().zip(scores).map(|(l, s)| (l.clone(), serde_json::Value::from(*s))).collect(),
        };
        let json = serde_json::to_string(&line).map_err(|e| TrainError::Invalid(e.to_string()))?;
        writeln!(out, "{json}").map_err(TrainError::io("output"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predictions(name: &str, content: &str) -> Vec<serde_json::Value> {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("write");
        let rows = read_rows(&path, None).expect("reads");
        let labels = ["-1".to_owned(), "1".to_owned()];
        let scores: Vec<Vec<f32>> =
            (0..rows.len()).map(|i| if i % 2 == 0 { vec![0.25, 0.75] } else { vec![0.5, 0.5] }).collect();
        let mut out = Vec::new();
        write_predictions(&rows, &labels, &scores, &mut out).expect("writes");
        String::from_utf8(out).expect("utf-8").lines().map(|l| serde_json::from_str(l).expect("json")).collect()
    }

    #[test]
    fn predict_keeps_the_tsv_label_as_the_true_label() {
        let got = predictions("test.tsv", "label\ttext\n-1\t质量太差了\n\n1\t很好\n");
        assert_eq!(
            got[0],
            serde_json::json!({"id": "2", "text": "质量太差了", "true_label": "-1", "label": "1", "score": 0.75,
                               "scores": {"-1": 0.25, "1": 0.75}})
        );
        assert_eq!((&got[1]["id"], &got[1]["true_label"], &got[1]["label"]), (&"4".into(), &"1".into(), &"-1".into()));
    }

    #[test]
    fn predict_keeps_ids_and_omits_a_missing_true_label() {
        let got = predictions("r.csv", "id,text,label\nr-1,好,1\n,差,\n");
        assert_eq!((&got[0]["id"], &got[0]["true_label"]), (&"r-1".into(), &"1".into()));
        assert_eq!(got[1]["id"], "3");
        assert!(got[1].get("true_label").is_none(), "{}", got[1]);
        let got = predictions("texts.txt", "one\ntwo\n");
        assert_eq!(got[1]["id"], "2");
        assert!(got[1].get("true_label").is_none(), "{}", got[1]);
    }
}
