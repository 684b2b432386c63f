//! Do fp16 and bf16 give the labels and probabilities fp32 gives? One model
//! directory, a file of texts (one a line), each text's probabilities in
//! fp32 and in each `--dtypes`, batched as given. Prints one JSON line per
//! dtype: the share of texts with the fp32 label, the largest and mean
//! probability difference, and `pass` (at least `--min-agreement` of the
//! labels, no probability off by more than `--max-diff`). A dtype the device
//! cannot run (fp16 on CPU) is reported as skipped, with the reason.
//!
//! ```text
//! cargo run --release -p bertstream-model --example dtype_agreement -- \
//!     --model DIR --texts texts.txt --device cuda --dtypes fp16,bf16
//! ```

use std::path::PathBuf;

use anyhow::{Context, Result};
use bertstream_model::{Classifier, DeviceSpec, Dtype, LoadOptions, ModelError, Prediction};
use clap::Parser;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "Agreement of fp16 and bf16 with fp32 on real texts")]
struct Args {
    /// The model directory.
    #[arg(long)]
    model: PathBuf,
    /// The texts, one a line.
    #[arg(long)]
    texts: PathBuf,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "auto")]
    device: DeviceSpec,
    /// The dtypes to compare with fp32, comma-separated.
    #[arg(long, default_value = "fp16,bf16", value_delimiter = ',')]
    dtypes: Vec<Dtype>,
    /// Texts a batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Share of the texts that must keep their fp32 label.
    #[arg(long, default_value_t = 0.995)]
    min_agreement: f64,
    /// Largest probability difference from fp32 allowed.
    #[arg(long, default_value_t = 1e-2)]
    max_diff: f64,
}

fn predict_all(
    dir: &PathBuf,
    options: &LoadOptions,
    texts: &[&str],
    batch_size: usize,
) -> Result<Vec<Prediction>, ModelError> {
    let classifier = Classifier::load(dir, options)?;
    let mut predictions = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(batch_size.max(1)) {
        predictions.extend(classifier.predict(chunk)?);
    }
    Ok(predictions)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.texts).with_context(|| format!("reading {}", args.texts.display()))?;
    let texts: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let options = |dtype| LoadOptions { device: args.device, dtype, max_seq_len: None };
    let reference = predict_all(&args.model, &options(Dtype::Fp32), &texts, args.batch_size)?;
    for &dtype in &args.dtypes {
        let predictions = match predict_all(&args.model, &options(dtype), &texts, args.batch_size) {
            Ok(p) => p,
            Err(e @ ModelError::HalfOnCpu) => {
                println!("{}", json!({"dtype": dtype.to_string(), "skipped": e.to_string()}));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let same = reference.iter().zip(&predictions).filter(|(a, b)| a.index == b.index).count();
        let diffs: Vec<f64> = reference
            .iter()
            .zip(&predictions)
            .flat_map(|(a, b)| a.scores.iter().zip(&b.scores).map(|(x, y)| f64::from((x - y).abs())))
            .collect();
        let max_diff = diffs.iter().copied().fold(0.0, f64::max);
        let agreement = same as f64 / texts.len().max(1) as f64;
        println!(
            "{}",
            json!({
                "dtype": dtype.to_string(),
                "reference": "fp32",
                "device": args.device.to_string(),
                "texts": texts.len(),
                "same_label": agreement,
                "max_prob_diff": max_diff,
                "mean_prob_diff": diffs.iter().sum::<f64>() / diffs.len().max(1) as f64,
                "pass": agreement >= args.min_agreement && max_diff <= args.max_diff,
            })
        );
    }
    Ok(())
}
