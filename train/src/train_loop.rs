//! The training loop that `fit` and `pretrain` share: epochs of
//! length-grouped batches, the learning rate's warmup and decay, the time
//! budget, AdamW with gradient clipping, the progress bar, and a record (an
//! evaluation, a log line) at the end of every epoch and of a run cut short.
//! What differs between the two, the loss of a batch, what a record holds,
//! how much time the end of the run needs, is their [`Steps`].

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use model::bert::Bf16Matmul;
use tch::nn::VarStore;
use tch::{Device, Tensor};

use crate::data::SplitMix64;
use crate::error::{Result, TrainError};
use crate::optim::{lr_at, AdamW, AdamWConfig};

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

/// Where a run stands, as its [`Steps`] see it.
#[derive(Debug, Clone)]
pub struct Position {
    /// The current epoch, from 0.
    pub epoch: usize,
    /// Optimizer steps taken.
    pub step: usize,
    /// Training examples seen.
    pub examples: usize,
    steps_per_epoch: usize,
    started: Instant,
    loop_started: Instant,
}

impl Position {
    /// Epochs done, fractional mid-epoch.
    pub fn epochs(&self) -> f64 {
        self.step as f64 / self.steps_per_epoch as f64
    }

    /// Training examples per second since the first step.
    pub fn rate(&self) -> f64 {
        self.examples as f64 / self.loop_started.elapsed().as_secs_f64().max(1e-9)
    }

    /// Seconds since the run began (reading the data included).
    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

/// A run's own part of the loop.
pub trait Steps {
    /// Seconds of `--time-budget` to keep for what follows the last step
    /// (final evaluations, writing the model).
    fn reserve(&self, at: &Position) -> f64;

    /// The loss of one batch in training mode; `rows` index the training
    /// sequences. Also tallies what the next record reports. `rng` is the
    /// run's seeded generator, which drew the batches.
    fn loss(&mut self, rows: &[usize], rng: &mut SplitMix64) -> Result<Tensor>;

    /// The progress bar's message after a step.
    fn message(&self, at: &Position) -> String;

    /// Whether to record after this step too, besides at the end of each epoch.
    fn record_now(&self, _at: &Position) -> bool {
        false
    }

    /// Records the steps since the previous record (evaluate, remember) and
    /// returns its log line. `lr` is the last step's learning rate; 0 for the
    /// record of a run that the time budget cut short mid-epoch.
    fn record(&mut self, at: &Position, lr: f64) -> Result<String>;
}

/// What the loop did.
#[derive(Debug, Clone, Copy)]
pub struct Trained {
    pub steps: usize,
    pub stopped_by_time_budget: bool,
}

/// The loop over one model's trainable variables and its training sequences.
pub struct TrainLoop<'a> {
    schedule: &'a Schedule,
    optimizer: AdamW,
    parameters: i64,
    /// Token count of each training sequence, to group batches by length.
    lengths: Vec<usize>,
}

impl<'a> TrainLoop<'a> {
    pub fn new(schedule: &'a Schedule, vs: &VarStore, lengths: Vec<usize>) -> Self {
        let optimizer = AdamW::new(vs, AdamWConfig { weight_decay: schedule.weight_decay, ..Default::default() });
        let parameters = vs.trainable_variables().iter().map(Tensor::numel).map(|n| n as i64).sum();
        Self { schedule, optimizer, parameters, lengths }
    }

    /// Trainable parameters.
    pub fn parameters(&self) -> i64 {
        self.parameters
    }

    fn steps_per_epoch(&self) -> usize {
        self.lengths.len().div_ceil(self.schedule.batch_size)
    }

    /// Steps of all epochs, if the time budget lasts.
    pub fn planned_steps(&self) -> usize {
        self.steps_per_epoch() * self.schedule.epochs
    }

    /// Trains; `started` is when the run began, which the time budget counts from.
    pub fn run(mut self, started: Instant, steps: &mut impl Steps) -> Result<Trained> {
        let sched = self.schedule;
        let _bf16 = Bf16Matmul::set(sched.bf16);
        let planned = self.planned_steps();
        let bar = progress_bar(sched.progress, planned as u64);
        let mut rng = SplitMix64::new(sched.seed);
        let mut at = Position {
            epoch: 0,
            step: 0,
            examples: 0,
            steps_per_epoch: self.steps_per_epoch(),
            started,
            loop_started: Instant::now(),
        };
        let (mut stopped, mut unrecorded) = (false, 0usize);
        'epochs: for epoch in 0..sched.epochs {
            at.epoch = epoch;
            for (i, rows) in batches(&self.lengths, sched.batch_size, &mut rng).into_iter().enumerate() {
                let mut progress = at.step as f64 / planned as f64;
                if let Some(budget) = sched.time_budget {
                    // The learning rate decays to 0 by the end of the usable time.
                    let usable = (budget - steps.reserve(&at)).max(1.0);
                    let elapsed = at.seconds();
                    if elapsed >= usable {
                        stopped = true;
                        break 'epochs;
                    }
                    progress = progress.max(elapsed / usable);
                }
                let lr = lr_at(sched.lr, sched.warmup, progress);
                let loss = steps.loss(&rows, &mut rng)?;
                self.optimizer.zero_grad();
                loss.backward();
                self.optimizer.clip_grad_norm(sched.max_grad_norm);
                self.optimizer.step(lr);
                at.step += 1;
                at.examples += rows.len();
                unrecorded += 1;
                bar.set_position(at.step as u64);
                bar.set_message(steps.message(&at));
                if i + 1 == at.steps_per_epoch || steps.record_now(&at) {
                    say(&bar, &steps.record(&at, lr)?);
                    unrecorded = 0;
                }
            }
        }
        bar.finish_and_clear();
        // A budget that ran out mid-epoch still gets the partial epoch recorded.
        if unrecorded > 0 {
            say(&bar, &steps.record(&at, 0.0)?);
        }
        Ok(Trained { steps: at.step, stopped_by_time_budget: stopped })
    }
}

/// Length-grouped batches: shuffle, sort pools of 50 batches by length, cut,
/// shuffle the batches. Similar lengths share a batch, so padding stays small.
fn batches(lengths: &[usize], batch_size: usize, rng: &mut SplitMix64) -> Vec<Vec<usize>> {
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

fn progress_bar(visible: bool, steps: u64) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps);
    let style = ProgressStyle::with_template("{bar:30} {pos}/{len} steps {msg} [{elapsed_precise} < {eta}]")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// A log line above the progress bar, or on stderr when there is none (hidden, or finished).
fn say(bar: &ProgressBar, line: &str) {
    if bar.is_hidden() || bar.is_finished() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}
