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

use indicatif::ProgressBar;
use serde::Serialize;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

use crate::data::{read_tsv, SplitMix64};
use crate::error::{Result, TrainError};
use crate::fit::{batches, progress_bar, Schedule};
use crate::masking::{bag_of_words, mask_tokens, MaskIds};
use crate::init::{scratch_config, write_tokenizer_config, ScratchShape};
use crate::optim::{cross_entropy, lr_at, AdamW, AdamWConfig};
use crate::output::{write_json, OutputDir};
use model::bert::{Bf16Matmul, BertMaskedLmHead, BertModel};
use model::dir::{save_weights, Meta, CONFIG_FILE, META_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use model::tokenize::EncodedBatch;

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

pub fn pretrain(options: &PretrainOptions) -> Result<PretrainSummary> {
    let sched = &options.schedule;
    let started = Instant::now();
    let _bf16 = Bf16Matmul::set(sched.bf16);
    sched.validate()?;
    if !(options.mask_prob > 0.0 && options.mask_prob < 1.0) {
        return Err(TrainError::Invalid("--mask-prob must be above 0 and below 1".into()));
    }
    if !(options.bag_of_words >= 0.0 && options.bag_of_words.is_finite()) {
        return Err(TrainError::Invalid("--bag-of-words must be a weight of 0 or more".into()));
    }
    let with_bags = options.bag_of_words > 0.0;
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

    let mut optimizer = AdamW::new(&vs, AdamWConfig { weight_decay: sched.weight_decay, ..Default::default() });
    let parameters: i64 = vs.trainable_variables().iter().map(Tensor::numel).map(|n| n as i64).sum();
    let lengths: Vec<usize> = sequences.iter().map(Vec::len).collect();
    let steps_per_epoch = sequences.len().div_ceil(sched.batch_size);
    let planned = steps_per_epoch * sched.epochs;
    tracing::info!(parameters, texts = texts.len(), tokens, steps = planned, "pretraining");
    let bar = progress_bar(sched.progress, planned as u64);
    let mut rng = SplitMix64::new(sched.seed);
    let (mut step, mut stopped, mut history) = (0usize, false, Vec::new());
    let mut tally = Tally::default();
    'epochs: for epoch in 0..sched.epochs {
        let epoch_batches = batches(&lengths, sched.batch_size, &mut rng);
        for (i, rows) in epoch_batches.iter().enumerate() {
            let mut progress = step as f64 / planned as f64;
            if let Some(budget) = sched.time_budget {
                // A few seconds are kept for writing the model.
                let usable = (budget - 3.0).max(1.0);
                let elapsed = started.elapsed().as_secs_f64();
                if elapsed >= usable {
                    stopped = true;
                    break 'epochs;
                }
                progress = progress.max(elapsed / usable);
            }
            let seqs: Vec<Vec<i64>> = rows.iter().map(|&r| sequences[r].clone()).collect();
            let batch = EncodedBatch::pad(&seqs, encoder.pad_id());
            let m = mask_tokens(&batch, &mask_ids, options.mask_prob, &mut rng);
            let bags = with_bags.then(|| bag_of_words(&batch, &mask_ids));
            let (ids, attention) = EncodedBatch { ids: m.inputs, ..batch }.to_tensors(sched.device);
            let positions = Tensor::from_slice(&m.positions).to_device(sched.device);
            let targets = Tensor::from_slice(&m.targets).to_device(sched.device);
            let hidden = bert.forward_t(&ids, attention.as_ref(), true, false).view([-1, config.hidden_size]);
            let logits = head.forward(&hidden.index_select(0, &positions), bert.embeddings.word_embeddings());
            let mlm_loss = cross_entropy(&logits, &targets);
            tally.mlm_loss += mlm_loss.double_value(&[]);
            let mut loss = mlm_loss;
            if let Some(bags) = &bags {
                let rows = rows.len() as i64;
                let pooled = bert.pooler.forward(&hidden.view([rows, -1, config.hidden_size]));
                let predicted = head.forward(&pooled, bert.embeddings.word_embeddings()).log_softmax(-1, Kind::Float);
                let bags = Tensor::from_slice(bags).view([rows, -1]).to_device(sched.device);
                let bag_loss = -(predicted * bags).sum(Kind::Float) / rows as f64;
                tally.bag_loss += bag_loss.double_value(&[]);
                loss = loss + bag_loss * options.bag_of_words;
            }
            optimizer.zero_grad();
            loss.backward();
            optimizer.clip_grad_norm(sched.max_grad_norm);
            optimizer.step(lr_at(sched.lr, sched.warmup, progress));
            step += 1;
            tally.steps += 1;
            tally.correct += logits.argmax(-1, false).eq_tensor(&targets).sum(Kind::Int64).int64_value(&[]);
            tally.predicted += m.targets.len() as i64;
            bar.set_position(step as u64);
            bar.set_message(format!("epoch {} mlm loss {:.3}", epoch + 1, tally.mlm_loss / tally.steps as f64));
            if i + 1 == epoch_batches.len() {
                history.push(std::mem::take(&mut tally).record(step, steps_per_epoch, with_bags, started, &bar));
            }
        }
    }
    bar.finish_and_clear();
    if tally.steps > 0 {
        history.push(tally.record(step, steps_per_epoch, with_bags, started, &bar));
    }
    if step == 0 {
        return Err(TrainError::Invalid("the time budget ran out before the first pretraining step".into()));
    }
    let summary = PretrainSummary {
        texts: texts.len(),
        duplicates_dropped,
        tokens,
        history,
        steps: step,
        seconds: started.elapsed().as_secs_f64(),
        stopped_by_time_budget: stopped,
        parameters,
        config: serde_json::to_value(&config).unwrap_or_default(),
    };
    let dir = output.path();
    write_json(&dir.join(CONFIG_FILE), &config)?;
    save_weights(&vs, &dir.join(WEIGHTS_FILE))?;
    encoder.save(&dir.join(TOKENIZER_FILE))?;
    let meta = Meta {
        max_seq_len: sched.max_seq_len,
        created_at: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        ..Default::default()
    };
    write_json(&dir.join(META_FILE), &meta)?;
    write_json(&dir.join(PRETRAIN_FILE), &summary)?;
    output.commit()?;
    Ok(summary)
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

impl Tally {
    fn record(self, step: usize, per_epoch: usize, bags: bool, started: Instant, bar: &ProgressBar) -> PretrainEpoch {
        let steps = self.steps as f64;
        let r = PretrainEpoch {
            epoch: step as f64 / per_epoch as f64,
            step,
            loss: self.mlm_loss / steps,
            masked_accuracy: self.correct as f64 / self.predicted.max(1) as f64,
            bag_of_words_loss: bags.then_some(self.bag_loss / steps),
            seconds: started.elapsed().as_secs_f64(),
        };
        let mut line = format!(
            "epoch {:5.2}  step {:6}  mlm loss {:.4}  masked accuracy {:.4}",
            r.epoch, r.step, r.loss, r.masked_accuracy
        );
        if let Some(loss) = r.bag_of_words_loss {
            line += &format!("  bag-of-words loss {loss:.4}");
        }
        line += &format!("  ({:.0}s)", r.seconds);
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
        r
    }
}
