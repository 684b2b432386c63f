//! Scoring many texts in length-sorted batches, and the `eval` and `predict` commands.

use std::io::{BufRead, Write};
use std::path::Path;

use model::classify::{Classifier, LoadOptions};
use model::tokenize::EncodedBatch;
use serde::Serialize;
use tch::{Kind, Tensor};

use crate::data::{read_tsv, Example};
use crate::error::{Result, TrainError};
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

/// `eval`: the model's metrics on a labelled TSV.
pub fn evaluate_file(model: &Path, data: &Path, options: &LoadOptions) -> Result<Metrics> {
    let classifier = Classifier::load(model, options)?;
    let examples = read_tsv(data)?;
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
    pub id: String,
    pub text: &'a str,
    pub label: &'a str,
    pub score: f32,
    pub scores: serde_json::Map<String, serde_json::Value>,
}

/// An input line: a JSON object with `text` (and `id`), else the line itself is the text.
/// Lines without an id are numbered from 1.
fn parse_input(line: &str, number: usize, path: &Path) -> Result<(String, String)> {
    if line.trim_start().starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| TrainError::BadLine {
            path: path.into(),
            line: number,
            message: format!("invalid JSON: {e}"),
        })?;
        let text = value.get("text").and_then(|t| t.as_str()).ok_or_else(|| TrainError::BadLine {
            path: path.into(),
            line: number,
            message: "JSON line has no string `text`".into(),
        })?;
        let id = match value.get("id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => number.to_string(),
        };
        return Ok((id, text.to_string()));
    }
    Ok((number.to_string(), line.to_string()))
}

/// `predict`: JSONL with id, text, label, score and scores for every non-blank input line.
pub fn predict_file(model: &Path, input: &Path, out: &mut dyn Write, options: &LoadOptions) -> Result<usize> {
    let classifier = Classifier::load(model, options)?;
    let file = std::fs::File::open(input).map_err(TrainError::io(input))?;
    let mut rows = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(TrainError::io(input))?;
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if !line.trim().is_empty() {
            rows.push(parse_input(line, i + 1, input)?);
        }
    }
    if rows.is_empty() {
        return Err(TrainError::Empty(input.into()));
    }
    let texts: Vec<&str> = rows.iter().map(|(_, t)| t.as_str()).collect();
    let encoder = classifier.encoder().clone();
    let sequences = encoder.encode_all(&texts)?;
    let scores = score_all(&sequences, encoder.pad_id(), EVAL_BATCH, |b| Ok(classifier.logits(b)?))?;
    let labels = classifier.labels();
    for ((id, text), scores) in rows.iter().zip(&scores) {
        let best = argmax(scores);
        let line = PredictionLine {
            id: id.clone(),
            text,
            label: &labels[best],
            score: scores[best],
            scores: labels.iter().zip(scores).map(|(l, s)| (l.clone(), serde_json::Value::from(*s))).collect(),
        };
        let json = serde_json::to_string(&line).map_err(|e| TrainError::Invalid(e.to_string()))?;
        writeln!(out, "{json}").map_err(TrainError::io("output"))?;
    }
    Ok(rows.len())
}
