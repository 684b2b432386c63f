//! `pretrain`: masked-LM pretraining of a compact BERT from scratch on
//! unlabelled text, so that `fit --init` starts from a model that already
//! knows which characters go together. With small labelled sets a classifier
//! trained from random weights memorises its training texts within a few
//! epochs; one that first learnt to fill in masked characters generalises
//! better (docs/training.md has the figures). An optional bag-of-words
//! objective also trains the `[CLS]` position and the pooler, which the
//! masked LM leaves untrained and a classifier reads.
//!
//! The output is an HF `BertForMaskedLM` directory (config, weights with
//! `bert.*` and `cls.predictions.*`, tokenizer), written atomically like `fit`'s.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use model::bert::{BertMaskedLmHead, BertModel};
use model::tokenize::EncodedBatch;
use serde::Serialize;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::data::{read_tsv, SplitMix64};
use crate::error::{Result, TrainError};
use crate::init::{scratch_config, write_tokenizer_config, ScratchShape};
use crate::masking::{bag_of_words, mask_tokens, MaskIds};
use crate::optim::cross_entropy;
use crate::output::{meta, write_checkpoint, write_json, OutputDir};
use crate::train_loop::{Position, Schedule, Steps, TrainLoop};

pub const PRETRAIN_FILE: &str = "pretrain.json";

#[derive(Debug, Clone)]
pub struct PretrainOptions {
    /// Text files: `.tsv` files are read as `label<TAB>text` (labels ignored), others one text per line.
    pub corpus: Vec<PathBuf>,
    pub out: PathBuf,
    pub shape: ScratchShape,
    pub dropout: f64,
    /// Share of the tokens to predict (BERT's 15%).
    pub mask_prob: f64,
    /// Weight of the bag-of-words objective (0: off): from `[CLS]` through the
    /// pooler, predict the distribution of the text's tokens, so that what a
    /// classifier reads starts out summing up the whole text.
    pub bag_of_words: f64,
    pub schedule: Schedule,
}

#[derive(Debug, Clone, Serialize)]
pub struct PretrainEpoch {
    pub epoch: f64,
    pub step: usize,
    /// Mean masked-LM loss and share of masked tokens predicted right, over the steps since the last record.
    pub loss: f64,
    pub masked_accuracy: f64,
    /// With `--bag-of-words`: the mean cross-entropy of the pooled `[CLS]`'s prediction against each text's tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bag_of_words_loss: Option<f64>,
    pub seconds: f64,
}

impl PretrainEpoch {
    pub fn line(&self) -> String {
        let mut line = format!(
            "epoch {:5.2}  step {:6}  mlm loss {:.4}  masked accuracy {:.4}",
            self.epoch, self.step, self.loss, self.masked_accuracy
        );
        if let Some(loss) = self.bag_of_words_loss {
            line += &format!("  bag-of-words loss {loss:.4}");
        }
        line + &format!("  ({:.0}s)", self.seconds)
    }
}

/// What a pretraining run did (also written as `pretrain.json`).
#[derive(Debug, Clone, Serialize)]
pub struct PretrainSummary {
    pub texts: usize,
    pub duplicates_dropped: usize,
    pub tokens: usize,
    pub history: Vec<PretrainEpoch>,
    pub steps: usize,
    pub seconds: f64,
    pub stopped_by_time_budget: bool,
    pub parameters: i64,
    pub config: serde_json::Value,
}

/// The corpus texts, de-duplicated (first occurrence kept), and how many duplicates were dropped.
pub fn read_corpus(files: &[PathBuf]) -> Result<(Vec<String>, usize)> {
    let mut seen = HashSet::new();
    let (mut texts, mut duplicates) = (Vec::new(), 0);
    for file in files {
        let lines: Vec<String> = if file.extension().is_some_and(|e| e == "tsv") {
            read_tsv(file)?.into_iter().map(|e| e.text).collect()
        } else {
            let text = std::fs::read_to_string(file).map_err(TrainError::io(file))?;
            text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
        };
        for line in lines {
            if seen.insert(line.clone()) {
                texts.push(line);
            } else {
                duplicates += 1;
            }
        }
    }
    if texts.is_empty() {
        return Err(TrainError::Invalid(format!("--corpus {files:?}: no text")));
    }
    Ok((texts, duplicates))
}

/// Sums over the steps since the last record.
#[derive(Default)]
struct Tally {
    steps: usize,
    mlm_loss: f64,
    correct: i64,
    predicted: i64,
    bag_loss: f64,
}

/// `pretrain`'s part of the training loop: the masked-LM loss (plus the
/// bag-of-words loss), and a log line at every record.
struct PretrainSteps<'a> {
    bert: &'a BertModel,
    head: &'a BertMaskedLmHead,
    hidden_size: i64,
    sequences: &'a [Vec<i64>],
    pad_id: i64,
    mask_ids: &'a MaskIds,
    mask_prob: f64,
    /// The bag-of-words objective's weight (0: off).
    bag_of_words: f64,
    device: Device,
    tally: Tally,
    history: Vec<PretrainEpoch>,
}

impl Steps for PretrainSteps<'_> {
    fn reserve(&self, _at: &Position) -> f64 {
        // A few seconds are kept for writing the model.
        3.0
    }

    fn loss(&mut self, rows: &[usize], rng: &mut SplitMix64) -> Result<Tensor> {
        let (device, hidden_size) = (self.device, self.hidden_size);
        let seqs: Vec<Vec<i64>> = rows.iter().map(|&r| self.sequences[r].clone()).collect();
        let batch = EncodedBatch::pad(&seqs, self.pad_id);
        let m = mask_tokens(&batch, self.mask_ids, self.mask_prob, rng);
        let bags = (self.bag_of_words > 0.0).then(|| bag_of_words(&batch, self.mask_ids));
        let (ids, attention) = EncodedBatch { ids: m.inputs, ..batch }.to_tensors(device);
        let positions = Tensor::from_slice(&m.positions).to_device(device);
        let targets = Tensor::from_slice(&m.targets).to_device(device);
        let hidden = self.bert.forward_t(&ids, attention.as_ref(), true, false).view([-1, hidden_size]);
        let words = self.bert.embeddings.word_embeddings();
        let logits = self.head.forward(&hidden.index_select(0, &positions), words);
        let mlm_loss = cross_entropy(&logits, &targets);
        self.tally.steps += 1;
        self.tally.mlm_loss += mlm_loss.double_value(&[]);
        self.tally.correct += logits.argmax(-1, false).eq_tensor(&targets).sum(Kind::Int64).int64_value(&[]);
        self.tally.predicted += m.targets.len() as i64;
        let Some(bags) = bags else {
            return Ok(mlm_loss);
        };
        let rows = rows.len() as i64;
        let pooled = self.bert.pooler.forward(&hidden.view([rows, -1, hidden_size]));
        let predicted = self.head.forward(&pooled, words).log_softmax(-1, Kind::Float);
        let bags = Tensor::from_slice(&bags).view([rows, -1]).to_device(device);
        let bag_loss = -(predicted * bags).sum(Kind::Float) / rows as f64;
        self.tally.bag_loss += bag_loss.double_value(&[]);
        Ok(mlm_loss + bag_loss * self.bag_of_words)
    }

    fn message(&self, at: &Position) -> String {
        format!("epoch {} mlm loss {:.3}", at.epoch + 1, self.tally.mlm_loss / self.tally.steps as f64)
    }

    fn record(&mut self, at: &Position, _lr: f64) -> Result<String> {
        let tally = std::mem::take(&mut self.tally);
        let steps = tally.steps as f64;
        let record = PretrainEpoch {
            epoch: at.epochs(),
            step: at.step,
            loss: tally.mlm_loss / steps,
            masked_accuracy: tally.correct as f64 / tally.predicted.max(1) as f64,
            bag_of_words_loss: (self.bag_of_words > 0.0).then_some(tally.bag_loss / steps),
            seconds: at.seconds(),
        };
        let line = record.line();
        self.history.push(record);
        Ok(line)
    }
}

pub fn pretrain(options: &PretrainOptions) -> Result<PretrainSummary> {
    let sched = &options.schedule;
    let started = Instant::now();
    sched.validate()?;
    if !(options.mask_prob > 0.0 && options.mask_prob < 1.0) {
        return Err(TrainError::Invalid("--mask-prob must be above 0 and below 1".into()));
    }
    if !(options.bag_of_words >= 0.0 && options.bag_of_words.is_finite()) {
        return Err(TrainError::Invalid("--bag-of-words must be a weight of 0 or more".into()));
    }
    let (texts, duplicates_dropped) = read_corpus(&options.corpus)?;
    let output = OutputDir::create(&options.out)?;
    let text_refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (mut config, encoder) = scratch_config(&options.shape, &text_refs, sched.max_seq_len, output.path())?;
    config.set_dropout(options.dropout);
    config.extra.insert("architectures".into(), serde_json::json!(["BertForMaskedLM"]));
    config.validate()?;
    write_tokenizer_config(output.path(), &encoder)?;

    tch::manual_seed(sched.seed as i64);
    let vs = VarStore::new(sched.device);
    let activation = config.activation()?;
    let bert = BertModel::new(vs.root() / "bert", &config, activation);
    let head = BertMaskedLmHead::new(&vs.root(), &config)?;
    let sequences = encoder.encode_all(&text_refs)?;
    let tokens: usize = sequences.iter().map(Vec::len).sum();
    let mask_ids = MaskIds::of(&encoder)?;

    let train_loop = TrainLoop::new(sched, &vs, sequences.iter().map(Vec::len).collect());
    let parameters = train_loop.parameters();
    tracing::info!(parameters, texts = texts.len(), tokens, steps = train_loop.planned_steps(), "pretraining");
    let mut steps = PretrainSteps {
        bert: &bert,
        head: &head,
        hidden_size: config.hidden_size,
        sequences: &sequences,
        pad_id: encoder.pad_id(),
        mask_ids: &mask_ids,
        mask_prob: options.mask_prob,
        bag_of_words: options.bag_of_words,
        device: sched.device,
        tally: Tally::default(),
        history: Vec::new(),
    };
    let trained = train_loop.run(started, &mut steps)?;
    if trained.steps == 0 {
        return Err(TrainError::Invalid("the time budget ran out before the first pretraining step".into()));
    }
    let summary = PretrainSummary {
        texts: texts.len(),
        duplicates_dropped,
        tokens,
        history: steps.history,
        steps: trained.steps,
        seconds: started.elapsed().as_secs_f64(),
        stopped_by_time_budget: trained.stopped_by_time_budget,
        parameters,
        config: serde_json::to_value(&config).unwrap_or_default(),
    };
    let dir = output.path();
    write_checkpoint(dir, &config, &vs, &encoder, &meta(sched.max_seq_len))?;
    write_json(&dir.join(PRETRAIN_FILE), &summary)?;
    output.commit()?;
    Ok(summary)
}
