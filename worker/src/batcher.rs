//! Forms model batches from the stream's jobs and the HTTP lane's.
//!
//! Limits: at most `max_size` texts and `max_tokens` padded tokens (texts x
//! longest) a batch. Two batches may be in flight: one in the model and the
//! next one filling. When the model is idle a batch leaves at once with what
//! is there (light traffic never waits); while the model is busy the next
//! batch fills until it is full, `max_wait` has passed since its oldest job
//! arrived, or the model goes idle. Under backlog batches are full.
//!
//! HTTP goes first, within its share: while stream jobs wait, HTTP batches
//! take at most `http_share` of the batches, so a flood of requests slows the
//! stream but never stops it; with no stream backlog HTTP takes every batch.
//! The batcher holds one batch of HTTP texts at most; the rest wait in the
//! bounded HTTP channel, and a request that finds it full is refused (503).
//! A job whose caller has gone (timed out, disconnected) is dropped when a
//! batch is cut: the model never spends time on an answer nobody reads.
//!
//! A stream batch is cut around the oldest job from the texts closest to it
//! in length, which cuts padding without starving long texts. Stream jobs
//! gather in a window of up to 8 batches' worth while the model is busy, so
//! that under backlog there are lengths to choose from.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::BatchArgs;
use crate::metrics::Metrics;
use crate::stages::{Batch, Job, ModelSlots, Origin};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_size: usize,
    pub max_tokens: usize,
    pub max_wait: Duration,
    /// Share of batches HTTP may take while the stream has a backlog, above 0, at most 1.
    pub http_share: f64,
}

impl Limits {
    pub fn from_args(b: &BatchArgs) -> Self {
        Self {
            max_size: b.max_batch_size,
            max_tokens: b.max_batch_tokens,
            max_wait: b.max_wait(),
            http_share: b.http_share,
        }
    }

    fn fits(&self, rows: usize, longest: usize) -> bool {
        rows <= self.max_size && rows * longest <= self.max_tokens
    }
}

pub struct Batcher {
    pub limits: Limits,
    pub slots: ModelSlots,
    pub http: mpsc::Receiver<Job>,
    pub stream: mpsc::Receiver<Job>,
    pub out: mpsc::Sender<Batch>,
    pub metrics: Arc<Metrics>,
}

impl Batcher {
    /// Runs until both inputs are closed and drained, then closes `out`.
    pub async fn run(mut self) {
        let window_cap = self.limits.max_size * 8;
        // One batch of HTTP texts (jobs are texts, not requests): more wait in
        // the bounded channel, so that a flood fills it and is refused there.
        let http_cap = self.limits.max_size;
        let mut urgent: VecDeque<Job> = VecDeque::new();
        let mut window: Vec<Job> = Vec::new();
        let mut turns = HttpTurns::new(self.limits.http_share);
        let (mut http_open, mut stream_open) = (true, true);
        loop {
            if urgent.is_empty() && window.is_empty() {
                if !http_open && !stream_open {
                    return;
                }
                tokio::select! {
                    job = self.http.recv(), if http_open => match job { Some(j) => urgent.push_back(j), None => http_open = false },
                    job = self.stream.recv(), if stream_open => match job { Some(j) => window.push(j), None => stream_open = false },
                }
                continue;
            }
            // While the model is busy the window keeps filling: under backlog the
            // next batch is picked from up to 8 batches' worth of lengths, not
            // from what the channel alone holds, which keeps padding low.
            let slot = loop {
                tokio::select! {
                    biased;
                    slot = self.slots.acquire() => break slot,
                    job = self.stream.recv(), if stream_open && window.len() < window_cap => match job { Some(j) => window.push(j), None => stream_open = false },
                }
            };
            let Some(slot) = slot else { return };
            let oldest = urgent.front().or(window.first()).map_or_else(Instant::now, |j| j.enqueued);
            let deadline = oldest + self.limits.max_wait;
            loop {
                while urgent.len() < http_cap {
                    match self.http.try_recv() {
                        Ok(job) => urgent.push_back(job),
                        Err(_) => break,
                    }
                }
                while window.len() < window_cap {
                    match self.stream.try_recv() {
                        Ok(job) => window.push(job),
                        Err(_) => break,
                    }
                }
                let full = urgent.len() + window.len() >= self.limits.max_size
                    || urgent.iter().chain(&window).map(|j| j.tokens.len()).sum::<usize>() >= self.limits.max_tokens;
                if full || self.slots.model_idle() || Instant::now() >= deadline || (!http_open && !stream_open) {
                    break;
                }
                tokio::select! {
                    job = self.http.recv(), if http_open && urgent.len() < http_cap => match job { Some(j) => urgent.push_back(j), None => http_open = false },
                    job = self.stream.recv(), if stream_open && window.len() < window_cap => match job { Some(j) => window.push(j), None => stream_open = false },
                    () = self.slots.released() => {}
                    () = tokio::time::sleep_until(deadline) => {}
                }
            }
            let abandoned = drop_abandoned(&mut urgent);
            self.metrics.http_abandoned.inc_by(abandoned as u64);
            let jobs = cut_batch(&mut urgent, &mut window, &self.limits, &mut turns);
            if jobs.is_empty() {
                // All that waited was abandoned; the slot goes back unused.
                continue;
            }
            if self.out.send(Batch { jobs, slot }).await.is_err() {
                return;
            }
        }
    }
}

/// Drops the HTTP jobs whose caller no longer waits for the answer (the
/// request timed out or the client went away); returns how many.
fn drop_abandoned(urgent: &mut VecDeque<Job>) -> usize {
    let before = urgent.len();
    urgent.retain(|job| !matches!(&job.origin, Origin::Http(reply) if reply.is_closed()));
    before - urgent.len()
}

/// Whose turn the next batch is while both lanes wait. Every batch cut while
/// the stream has a backlog earns HTTP `share` of a turn, and an HTTP batch
/// spends a whole one; the credit is capped at one turn, so a quiet spell is
/// not saved up for a later flood. Full credit at the start: HTTP goes first.
struct HttpTurns {
    share: f64,
    credit: f64,
}

impl HttpTurns {
    fn new(share: f64) -> Self {
        Self { share, credit: 1.0 }
    }

    /// Whether the next batch is HTTP's, given which lanes have jobs waiting.
    fn http_next(&mut self, http_waiting: bool, stream_waiting: bool) -> bool {
        if !stream_waiting {
            return http_waiting;
        }
        self.credit += self.share;
        // (Within rounding: ten additions of 0.1 fall just short of 1.)
        let turn = http_waiting && self.credit >= 1.0 - 1e-9;
        if turn {
            self.credit -= 1.0;
        }
        self.credit = self.credit.min(1.0);
        turn
    }
}

/// Takes the next batch: the waiting HTTP jobs alone when it is HTTP's turn
/// (a person is waiting: their batch stays small rather than being filled
/// with stream texts), else stream jobs.
fn cut_batch(urgent: &mut VecDeque<Job>, window: &mut Vec<Job>, limits: &Limits, turns: &mut HttpTurns) -> Vec<Job> {
    if turns.http_next(!urgent.is_empty(), !window.is_empty()) {
        cut_http(urgent, limits)
    } else {
        cut_stream(window, limits)
    }
}

/// HTTP jobs in the order they came, while the limits allow.
fn cut_http(urgent: &mut VecDeque<Job>, limits: &Limits) -> Vec<Job> {
    let mut batch: Vec<Job> = Vec::new();
    let mut longest = 0;
    while let Some(job) = urgent.front() {
        let len = longest.max(job.tokens.len());
        if !batch.is_empty() && !limits.fits(batch.len() + 1, len) {
            break;
        }
        longest = len;
        batch.extend(urgent.pop_front());
    }
    batch
}

/// Stream jobs around the oldest one, nearest in length first, while the
/// limits allow (the oldest always goes, even alone over the token budget).
fn cut_stream(window: &mut Vec<Job>, limits: &Limits) -> Vec<Job> {
    if window.is_empty() {
        return Vec::new();
    }
    // Stream jobs sorted by length; grow a run around the anchor (the oldest).
    let mut order: Vec<usize> = (0..window.len()).collect();
    order.sort_by_key(|&i| (window[i].tokens.len(), i));
    let anchor = order.iter().position(|&i| i == 0).unwrap_or(0);
    let len_at = |k: usize| window[order[k]].tokens.len();
    let target = len_at(anchor);
    let (mut lo, mut hi) = (anchor, anchor);
    let mut longest = target;
    loop {
        let below = (lo > 0).then(|| lo - 1);
        let above = (hi + 1 < order.len()).then_some(hi + 1);
        let pick = match (below, above) {
            (Some(b), Some(a)) => {
                if target - len_at(b) <= len_at(a) - target {
                    b
                } else {
                    a
                }
            }
            (Some(b), None) => b,
            (None, Some(a)) => a,
            (None, None) => break,
        };
        let len = longest.max(len_at(pick));
        if !limits.fits(hi - lo + 2, len) {
            break;
        }
        longest = len;
        if pick < lo {
            lo = pick
        } else {
            hi = pick
        }
    }
    let mut chosen: Vec<usize> = order[lo..=hi].to_vec();
    chosen.sort_unstable();
    chosen.iter().rev().map(|&i| window.remove(i)).collect()
}

#[cfg(test)]
mod tests;
