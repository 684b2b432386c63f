//! `fit`: fine-tune (or train from scratch) on a labelled TSV, evaluate on dev
//! every epoch, keep the best weights by macro-F1, and write the model
//! directory. Everything is written into a temporary directory beside `--out`
//! and renamed into place at the end, so a failure leaves no half-written model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use tch::{Device, Kind, Tensor};

use crate::data::{digest, label_counts, read_tsv, Example, SplitMix64};
use crate::error::{Result, TrainError};
use crate::evaluate::{label_indices, metrics_from_scores, score_all};
use crate::init::{prepare, PrepareArgs, Prepared, Start};
use crate::metrics::Metrics;
use crate::ngram;
use crate::optim::{cross_entropy, lr_at, soft_cross_entropy, AdamW, AdamWConfig};
use crate::output::{write_model_dir, OutputDir};
use crate::summary::{EpochRecord, FitSummary};
use model::bert::Bf16Matmul;

/// How a run optimises; `fit` and `pretrain` share it.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Passes over the data (fewer if the time budget runs out first).
    pub epochs: usize,
    /// Peak learning rate of AdamW.
    pub lr: f64,
    pub batch_size: usize,
    pub max_seq_len: usize,
    /// Fraction of training spent warming up.
    pub warmup: f64,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    pub seed: u64,
    /// Seconds for the whole run, final evaluation and writing included.
    pub time_budget: Option<f64>,
    pub device: Device,
    /// Train with bfloat16 matrix products (`bert::Bf16Matmul`); evaluation stays fp32.
    pub bf16: bool,
    pub progress: bool,
}

impl Schedule {
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 || self.epochs == 0 {
            return Err(TrainError::Invalid("--batch-size and --epochs must be at least 1".into()));
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct FitOptions {
    pub train: PathBuf,
    pub dev: PathBuf,
    pub test: Option<PathBuf>,
    pub out: PathBuf,
    pub start: Start,
    pub dropout: Option<f64>,
    /// Also evaluate every this many steps (besides every epoch).
    pub eval_every: Option<usize>,
    /// Weight of the n-gram teacher's probabilities in the training targets (0: off; see `ngram`).
    pub ngram_teacher: f64,
    pub schedule: Schedule,
}

struct Data {
    sequences: Vec<Vec<i64>>,
    targets: Vec<usize>,
    /// `--ngram-teacher`'s targets `[rows, labels]` (on the CPU), in place of `targets` for training.
    soft: Option<Tensor>,
}

fn encode(prepared: &Prepared, examples: &[Example], labels: &[String], path: &Path) -> Result<Data> {
    let targets = label_indices(examples, labels, path)?;
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    Ok(Data { sequences: prepared.encoder.encode_all(&texts)?, targets, soft: None })
}

/// Length-grouped batches: shuffle, sort pools of 50 batches by length, cut,
/// shuffle the batches. Similar lengths share a batch, so padding stays small.
pub(super) fn batches(lengths: &[usize], batch_size: usize, rng: &mut SplitMix64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    rng.shuffle(&mut order);
    let mut out = Vec::new();
    for pool in order.chunks(batch_size * 50) {
        let mut pool = pool.to_vec();
        pool.sort_by_key(|&i| lengths[i]);
        out.extend(pool.chunks(batch_size).map(<[usize]>::to_vec));
    }
    rng.shuffle(&mut out);
    out
}

fn to_tensors(data: &Data, rows: &[usize], pad_id: i64, device: Device) -> (Tensor, Option<Tensor>, Tensor) {
    let seqs: Vec<Vec<i64>> = rows.iter().map(|&i| data.sequences[i].clone()).collect();
    let (ids, mask) = model::tokenize::EncodedBatch::pad(&seqs, pad_id).to_tensors(device);
    let targets: Vec<i64> = rows.iter().map(|&i| data.targets[i] as i64).collect();
    (ids, mask, Tensor::from_slice(&targets).to_device(device))
}

fn indices(rows: &[usize]) -> Tensor {
    Tensor::from_slice(&rows.iter().map(|&r| r as i64).collect::<Vec<_>>())
}

/// `--ngram-teacher W`: each training target becomes (1 - W) x its label + W x the
/// n-gram teacher's out-of-fold probabilities. Also returns the teacher's accuracy.
fn teacher_targets(texts: &[&str], targets: &[usize], classes: usize, weight: f64, seed: u64) -> Result<(Tensor, f64)> {
    let started = Instant::now();
    let teacher = ngram::teacher_probabilities(texts, targets, classes, seed)?;
    let labels = indices(targets);
    let right = teacher.argmax(-1, false).eq_tensor(&labels).to_kind(Kind::Float);
    let accuracy = right.mean(Kind::Float).double_value(&[]);
    let secs = started.elapsed().as_secs_f64();
    eprintln!("n-gram teacher: out-of-fold accuracy {accuracy:.4} on {} training texts ({secs:.1}s)", texts.len());
    Ok((labels.one_hot(classes as i64).to_kind(Kind::Float) * (1.0 - weight) + teacher * weight, accuracy))
}

fn evaluate(p: &Prepared, data: &Data, labels: &[String], device: Device) -> Result<Metrics> {
    let _guard = tch::no_grad_guard();
    // Scores as `eval` and the worker compute them, whatever the training precision.
    let _fp32 = Bf16Matmul::set(false);
    let scores = score_all(&data.sequences, p.encoder.pad_id(), 64, |b| {
        let (ids, mask) = b.to_tensors(device);
        Ok(p.model.forward_t(&ids, mask.as_ref(), false).to_kind(Kind::Float))
    })?;
    Ok(metrics_from_scores(labels, &data.targets, &scores))
}

fn snapshot(p: &Prepared) -> HashMap<String, Tensor> {
    let _guard = tch::no_grad_guard();
    p.vs.variables().into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
}

fn restore(p: &mut Prepared, best: &HashMap<String, Tensor>) -> Result<()> {
    let _guard = tch::no_grad_guard();
    for (name, mut var) in p.vs.variables() {
        if let Some(saved) = best.get(&name) {
            var.f_copy_(saved)?;
        }
    }
    Ok(())
}

pub fn fit(options: &FitOptions) -> Result<FitSummary> {
    let sched = &options.schedule;
    let started = Instant::now();
    let _bf16 = Bf16Matmul::set(sched.bf16);
    let train = read_tsv(&options.train)?;
    let dev = read_tsv(&options.dev)?;
    let test = options.test.as_deref().map(read_tsv).transpose()?;
    let labels: Vec<String> = label_counts(&train).into_keys().collect();
    if labels.len() < 2 {
        return Err(TrainError::Invalid(format!("{}: need at least two labels, found {labels:?}", options.train.display())));
    }
    sched.validate()?;
    if !(0.0..=1.0).contains(&options.ngram_teacher) {
        return Err(TrainError::Invalid("--ngram-teacher must be between 0 and 1".into()));
    }
    let output = OutputDir::create(&options.out)?;
    let texts: Vec<&str> = train.iter().map(|e| e.text.as_str()).collect();
    let args = PrepareArgs {
        labels: &labels,
        train_texts: &texts,
        max_seq_len: sched.max_seq_len,
        dropout: options.dropout,
        device: sched.device,
        seed: sched.seed,
    };
    let mut prepared = prepare(&options.start, &args, output.path())?;
    let mut train_data = encode(&prepared, &train, &labels, &options.train)?;
    let mut teacher_accuracy = None;
    if options.ngram_teacher > 0.0 {
        let (soft, accuracy) =
            teacher_targets(&texts, &train_data.targets, labels.len(), options.ngram_teacher, sched.seed)?;
        (train_data.soft, teacher_accuracy) = (Some(soft), Some(accuracy));
    }
    let dev_data = encode(&prepared, &dev, &labels, &options.dev)?;
    let test_data = match (&test, &options.test) {
        (Some(examples), Some(path)) => Some(encode(&prepared, examples, &labels, path)?),
        _ => None,
    };

    let adam = AdamWConfig { weight_decay: sched.weight_decay, ..Default::default() };
    let mut optimizer = AdamW::new(&prepared.vs, adam);
    let lengths: Vec<usize> = train_data.sequences.iter().map(Vec::len).collect();
    let steps_per_epoch = train.len().div_ceil(sched.batch_size);
    let planned = steps_per_epoch * sched.epochs;
    let parameters: i64 = prepared.vs.trainable_variables().iter().map(Tensor::numel).map(|n| n as i64).sum();
    tracing::info!(parameters, vocab = prepared.encoder.vocab_size(), steps = planned, "training");

    let bar = progress_bar(sched.progress, planned as u64);
    let mut rng = SplitMix64::new(sched.seed);
    let mut history = Vec::new();
    let mut best: Option<(f64, f64, HashMap<String, Tensor>, Metrics)> = None;
    let (mut step, mut examples_seen, mut stopped) = (0usize, 0usize, false);
    let mut eval_secs = 0.0f64;
    let (mut loss_sum, mut loss_count) = (0.0f64, 0usize);
    let train_start = Instant::now();
    'epochs: for epoch in 0..sched.epochs {
        for (i, rows) in batches(&lengths, sched.batch_size, &mut rng).into_iter().enumerate() {
            let elapsed = started.elapsed().as_secs_f64();
            let mut progress = step as f64 / planned as f64;
            if let Some(budget) = sched.time_budget {
                // Leave time for the last evaluations and for writing the model. Before
                // the first evaluation, guess it from the training rate (inference is
                // about 3x cheaper per example than a training step).
                let rate = examples_seen as f64 / train_start.elapsed().as_secs_f64().max(1e-9);
                let dev_secs = match (eval_secs > 0.0, examples_seen > 0) {
                    (true, _) => eval_secs,
                    (false, true) => dev.len() as f64 / (3.0 * rate),
                    (false, false) => 0.0,
                };
                let test_share = test.as_ref().map_or(0.0, |t| t.len() as f64 / dev.len() as f64);
                let reserve = dev_secs * (1.0 + test_share) * 1.2 + 2.0;
                let usable = (budget - reserve).max(1.0);
                if elapsed >= usable {
                    stopped = true;
                    break 'epochs;
                }
                progress = progress.max(elapsed / usable);
            }
            let lr = lr_at(sched.lr, sched.warmup, progress);
            let (ids, mask, targets) = to_tensors(&train_data, &rows, prepared.encoder.pad_id(), sched.device);
            let logits = prepared.model.forward_t(&ids, mask.as_ref(), true);
            let loss = match &train_data.soft {
                None => cross_entropy(&logits, &targets),
                Some(soft) => {
                    soft_cross_entropy(&logits, &soft.index_select(0, &indices(&rows)).to_device(sched.device))
                }
            };
            optimizer.zero_grad();
            loss.backward();
            optimizer.clip_grad_norm(sched.max_grad_norm);
            optimizer.step(lr);
            step += 1;
            examples_seen += rows.len();
            loss_sum += loss.double_value(&[]);
            loss_count += 1;
            let rate = examples_seen as f64 / train_start.elapsed().as_secs_f64().max(1e-9);
            bar.set_position(step as u64);
            bar.set_message(format!("epoch {} loss {:.4} {rate:.0} ex/s", epoch + 1, loss_sum / loss_count as f64));
            let last_of_epoch = i + 1 == steps_per_epoch;
            if last_of_epoch || options.eval_every.is_some_and(|n| step % n == 0) {
                let t = Instant::now();
                let metrics = evaluate(&prepared, &dev_data, &labels, sched.device)?;
                eval_secs = t.elapsed().as_secs_f64();
                let record = EpochRecord::new(step as f64 / steps_per_epoch as f64, step, loss_sum / loss_count as f64, lr, &metrics, started.elapsed().as_secs_f64());
                if bar.is_hidden() {
                    eprintln!("{}", record.line());
                } else {
                    bar.println(record.line());
                }
                (loss_sum, loss_count) = (0.0, 0);
                history.push(record);
                if best.as_ref().is_none_or(|b| metrics.macro_f1 > b.0) {
                    best = Some((metrics.macro_f1, step as f64 / steps_per_epoch as f64, snapshot(&prepared), metrics));
                }
            }
        }
    }
    bar.finish_and_clear();
    // A budget that ran out mid-epoch still gets the partial epoch evaluated.
    if history.last().is_none_or(|r| r.step != step) && step > 0 {
        let metrics = evaluate(&prepared, &dev_data, &labels, sched.device)?;
        let record = EpochRecord::new(step as f64 / steps_per_epoch as f64, step, loss_sum / loss_count.max(1) as f64, 0.0, &metrics, started.elapsed().as_secs_f64());
        eprintln!("{}", record.line());
        history.push(record);
        if best.as_ref().is_none_or(|b| metrics.macro_f1 > b.0) {
            best = Some((metrics.macro_f1, step as f64 / steps_per_epoch as f64, snapshot(&prepared), metrics));
        }
    }
    let Some((_, best_epoch, weights, dev_metrics)) = best else {
        return Err(TrainError::Invalid("the time budget ran out before the first training step".into()));
    };
    restore(&mut prepared, &weights)?;
    let test_metrics = test_data.as_ref().map(|d| evaluate(&prepared, d, &labels, sched.device)).transpose()?;
    let mut digest_files: Vec<&Path> = vec![&options.train, &options.dev];
    if let Some(t) = &options.test {
        digest_files.push(t);
    }
    let summary = FitSummary {
        labels,
        train_counts: label_counts(&train),
        best_epoch,
        teacher_accuracy,
        dev: dev_metrics,
        test: test_metrics,
        history,
        steps: step,
        seconds: started.elapsed().as_secs_f64(),
        stopped_by_time_budget: stopped,
        parameters,
        config: serde_json::to_value(&prepared.config).unwrap_or_default(),
    };
    write_model_dir(&output, &prepared, &summary, &digest(&digest_files)?, sched.max_seq_len)?;
    output.commit()?;
    Ok(summary)
}

pub(super) fn progress_bar(visible: bool, steps: u64) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps);
    let style = ProgressStyle::with_template("{bar:30} {pos}/{len} steps {msg} [{elapsed_precise} < {eta}]")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}
