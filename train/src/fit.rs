//! `fit`: fine-tune (or train from scratch) on a labelled TSV, evaluate on dev
//! every epoch, keep the best weights by macro-F1, and write the model
//! directory. Everything is written into a temporary directory beside `--out`
//! and renamed into place at the end, so a failure leaves no half-written model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use model::bert::Bf16Matmul;
use model::ngram::NgramHead;
use model::tokenize::EncodedBatch;
use tch::{Device, Kind, Tensor};

use crate::data::{digest, label_counts, read_tsv, Example, SplitMix64};
use crate::error::{Result, TrainError};
use crate::evaluate::{label_indices, metrics_from_scores, score_all};
use crate::init::{prepare, PrepareArgs, Prepared, Start};
use crate::metrics::Metrics;
use crate::ngram::{self, TrainingNgrams};
use crate::optim::{cross_entropy, soft_cross_entropy};
use crate::output::{write_model_dir, OutputDir};
use crate::summary::{EpochRecord, FitSummary};
use crate::train_loop::{Position, Schedule, Steps, TrainLoop};

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
    /// Share of the n-gram head in the served logits (0: no head; see `model::ngram`).
    pub ngram_head: f64,
    /// Train the encoder beside the head: in the training loss its logits are mixed, at the head's share,
    /// with the n-gram model's out-of-fold log-probabilities, so it learns what the n-grams miss.
    pub ngram_joint: bool,
    pub schedule: Schedule,
}

struct Data {
    sequences: Vec<Vec<i64>>,
    targets: Vec<usize>,
    /// `--ngram-teacher`'s targets `[rows, labels]` (on the CPU), in place of `targets` for training.
    soft: Option<Tensor>,
    /// `--ngram-joint`: the n-gram model's out-of-fold log-probabilities `[rows, labels]` (on the CPU).
    beside: Option<Tensor>,
}

fn encode(prepared: &Prepared, examples: &[Example], labels: &[String], path: &Path) -> Result<Data> {
    let targets = label_indices(examples, labels, path)?;
    let texts: Vec<&str> = examples.iter().map(|e| e.text.as_str()).collect();
    Ok(Data { sequences: prepared.encoder.encode_all(&texts)?, targets, soft: None, beside: None })
}

fn to_tensors(data: &Data, rows: &[usize], pad_id: i64, device: Device) -> (Tensor, Option<Tensor>, Tensor) {
    let seqs: Vec<Vec<i64>> = rows.iter().map(|&i| data.sequences[i].clone()).collect();
    let (ids, mask) = EncodedBatch::pad(&seqs, pad_id).to_tensors(device);
    let targets: Vec<i64> = rows.iter().map(|&i| data.targets[i] as i64).collect();
    (ids, mask, Tensor::from_slice(&targets).to_device(device))
}

fn indices(rows: &[usize]) -> Tensor {
    Tensor::from_slice(&rows.iter().map(|&r| r as i64).collect::<Vec<_>>())
}

/// The n-gram model's out-of-fold probabilities `[rows, labels]` on the training
/// texts (`--ngram-teacher`'s and `--ngram-joint`'s), and their accuracy.
fn out_of_fold(ngrams: &TrainingNgrams, targets: &[usize], classes: usize, seed: u64) -> Result<(Tensor, f64)> {
    let started = Instant::now();
    let probabilities = ngram::out_of_fold_probabilities(ngrams, targets, classes, seed)?;
    let right = probabilities.argmax(-1, false).eq_tensor(&indices(targets)).to_kind(Kind::Float);
    let accuracy = right.mean(Kind::Float).double_value(&[]);
    let secs = started.elapsed().as_secs_f64();
    eprintln!("n-gram model: out-of-fold accuracy {accuracy:.4} on {} training texts ({secs:.1}s)", targets.len());
    Ok((probabilities, accuracy))
}

fn evaluate(p: &Prepared, head: Option<&NgramHead>, data: &Data, labels: &[String], device: Device) -> Result<Metrics> {
    let _guard = tch::no_grad_guard();
    // Scores as `eval` and the worker compute them, whatever the training precision.
    let _fp32 = Bf16Matmul::set(false);
    let scores = score_all(&data.sequences, p.encoder.pad_id(), 64, |b| {
        let (ids, mask) = b.to_tensors(device);
        let logits = p.model.forward_t(&ids, mask.as_ref(), false).to_kind(Kind::Float);
        match head {
            Some(head) => Ok(head.mix(&logits.to_device(Device::Cpu), &b.ids, &b.mask, b.seq_len)?),
            None => Ok(logits),
        }
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

/// The best dev evaluation so far, by macro-F1, and the weights that gave it.
struct Best {
    epoch: f64,
    metrics: Metrics,
    weights: HashMap<String, Tensor>,
}

/// `fit`'s part of the training loop: cross-entropy against the labels (or
/// the teacher's mixed targets), and a dev evaluation at every record.
struct FitSteps<'a> {
    prepared: &'a Prepared,
    head: Option<&'a NgramHead>,
    train: &'a Data,
    dev: &'a Data,
    labels: &'a [String],
    device: Device,
    eval_every: Option<usize>,
    /// Test examples per dev example: the final evaluations take that much longer.
    test_share: f64,
    /// How long the last dev evaluation took.
    eval_secs: f64,
    loss_sum: f64,
    loss_count: usize,
    history: Vec<EpochRecord>,
    best: Option<Best>,
}

impl Steps for FitSteps<'_> {
    fn reserve(&self, at: &Position) -> f64 {
        // Leave time for the last evaluations and for writing the model. Before
        // the first evaluation, guess it from the training rate (inference is
        // about 3x cheaper per example than a training step).
        let dev_secs = match (self.eval_secs > 0.0, at.examples > 0) {
            (true, _) => self.eval_secs,
            (false, true) => self.dev.targets.len() as f64 / (3.0 * at.rate()),
            (false, false) => 0.0,
        };
        dev_secs * (1.0 + self.test_share) * 1.2 + 2.0
    }

    fn loss(&mut self, rows: &[usize], _rng: &mut SplitMix64) -> Result<Tensor> {
        let (ids, mask, targets) = to_tensors(self.train, rows, self.prepared.encoder.pad_id(), self.device);
        let mut logits = self.prepared.model.forward_t(&ids, mask.as_ref(), true);
        let picked = indices(rows);
        // As the head will be mixed in when served, but with the log-probabilities of
        // n-gram models that never saw the text: the full head has memorised the training texts.
        if let (Some(beside), Some(head)) = (&self.train.beside, self.head) {
            let share = f64::from(head.share);
            logits = logits * (1.0 - share) + beside.index_select(0, &picked).to_device(self.device) * share;
        }
        let loss = match &self.train.soft {
            None => cross_entropy(&logits, &targets),
            Some(soft) => soft_cross_entropy(&logits, &soft.index_select(0, &picked).to_device(self.device)),
        };
        self.loss_sum += loss.double_value(&[]);
        self.loss_count += 1;
        Ok(loss)
    }

    fn message(&self, at: &Position) -> String {
        let loss = self.loss_sum / self.loss_count as f64;
        format!("epoch {} loss {loss:.4} {:.0} ex/s", at.epoch + 1, at.rate())
    }

    fn record_now(&self, at: &Position) -> bool {
        self.eval_every.is_some_and(|n| at.step % n == 0)
    }

    fn record(&mut self, at: &Position, lr: f64) -> Result<String> {
        let t = Instant::now();
        let metrics = evaluate(self.prepared, self.head, self.dev, self.labels, self.device)?;
        self.eval_secs = t.elapsed().as_secs_f64();
        let train_loss = self.loss_sum / self.loss_count.max(1) as f64;
        let record = EpochRecord::new(at.epochs(), at.step, train_loss, lr, &metrics, at.seconds());
        let line = record.line();
        (self.loss_sum, self.loss_count) = (0.0, 0);
        self.history.push(record);
        if self.best.as_ref().is_none_or(|b| metrics.macro_f1 > b.metrics.macro_f1) {
            self.best = Some(Best { epoch: at.epochs(), weights: snapshot(self.prepared), metrics });
        }
        Ok(line)
    }
}

pub fn fit(options: &FitOptions) -> Result<FitSummary> {
    let sched = &options.schedule;
    let started = Instant::now();
    let train = read_tsv(&options.train)?;
    let dev = read_tsv(&options.dev)?;
    let test = options.test.as_deref().map(read_tsv).transpose()?;
    let labels: Vec<String> = label_counts(&train).into_keys().collect();
    if labels.len() < 2 {
        return Err(TrainError::Invalid(format!(
            "{}: need at least two labels, found {labels:?}",
            options.train.display()
        )));
    }
    sched.validate()?;
    for (flag, value) in [("--ngram-teacher", options.ngram_teacher), ("--ngram-head", options.ngram_head)] {
        if !(0.0..=1.0).contains(&value) {
            return Err(TrainError::Invalid(format!("{flag} must be between 0 and 1")));
        }
    }
    if options.ngram_joint && options.ngram_head == 0.0 {
        return Err(TrainError::Invalid("--ngram-joint trains beside the n-gram head: it needs --ngram-head".into()));
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
    let (mut teacher_accuracy, mut head) = (None, None);
    if options.ngram_teacher > 0.0 || options.ngram_head > 0.0 {
        let ngrams = TrainingNgrams::new(&train_data.sequences, &prepared.encoder)?;
        if options.ngram_teacher > 0.0 || options.ngram_joint {
            let (oof, accuracy) = out_of_fold(&ngrams, &train_data.targets, labels.len(), sched.seed)?;
            if options.ngram_teacher > 0.0 {
                // Each target becomes (1 - W) x its label + W x the n-gram model's probabilities.
                let w = options.ngram_teacher;
                let one_hot = indices(&train_data.targets).one_hot(labels.len() as i64).to_kind(Kind::Float);
                (train_data.soft, teacher_accuracy) = (Some(one_hot * (1.0 - w) + &oof * w), Some(accuracy));
            }
            if options.ngram_joint {
                train_data.beside = Some(oof.clamp_min(1e-6).log());
            }
        }
        // Fitted before the encoder trains, so that every dev evaluation (and
        // the choice of the best epoch) scores what will be served.
        if options.ngram_head > 0.0 {
            head = Some(ngram::fit_head(&ngrams, &train_data.targets, labels.len(), options.ngram_head as f32)?);
        }
    }
    let dev_data = encode(&prepared, &dev, &labels, &options.dev)?;
    let test_data = match (&test, &options.test) {
        (Some(examples), Some(path)) => Some(encode(&prepared, examples, &labels, path)?),
        _ => None,
    };

    let train_loop = TrainLoop::new(sched, &prepared.vs, train_data.sequences.iter().map(Vec::len).collect());
    let parameters = train_loop.parameters();
    let vocab = prepared.encoder.vocab_size();
    tracing::info!(parameters, vocab, steps = train_loop.planned_steps(), "training");
    let mut steps = FitSteps {
        prepared: &prepared,
        head: head.as_ref(),
        train: &train_data,
        dev: &dev_data,
        labels: &labels,
        device: sched.device,
        eval_every: options.eval_every,
        test_share: test.as_ref().map_or(0.0, |t| t.len() as f64 / dev.len() as f64),
        eval_secs: 0.0,
        loss_sum: 0.0,
        loss_count: 0,
        history: Vec::new(),
        best: None,
    };
    let trained = train_loop.run(started, &mut steps)?;
    let FitSteps { history, best, .. } = steps;
    let Some(best) = best else {
        return Err(TrainError::Invalid("the time budget ran out before the first training step".into()));
    };
    restore(&mut prepared, &best.weights)?;
    let test_metrics =
        test_data.as_ref().map(|d| evaluate(&prepared, head.as_ref(), d, &labels, sched.device)).transpose()?;
    let mut digest_files: Vec<&Path> = vec![&options.train, &options.dev];
    if let Some(t) = &options.test {
        digest_files.push(t);
    }
    let summary = FitSummary {
        labels,
        train_counts: label_counts(&train),
        best_epoch: best.epoch,
        teacher_accuracy,
        ngram_head: head.as_ref().map(|_| options.ngram_head),
        ngram_joint: options.ngram_joint,
        dev: best.metrics,
        test: test_metrics,
        history,
        steps: trained.steps,
        seconds: started.elapsed().as_secs_f64(),
        stopped_by_time_budget: trained.stopped_by_time_budget,
        parameters,
        config: serde_json::to_value(&prepared.config).unwrap_or_default(),
    };
    write_model_dir(&output, &prepared, head.as_ref(), &summary, &digest(&digest_files)?, sched.max_seq_len)?;
    output.commit()?;
    Ok(summary)
}
