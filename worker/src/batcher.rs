//! Forms model batches from the stream's jobs and the HTTP lane's (which go first).
//!
//! Limits: at most `max_size` texts and `max_tokens` padded tokens (texts x
//! longest) a batch. Two batches may be in flight: one in the model and the
//! next one filling. When the model is idle a batch leaves at once with what
//! is there (light traffic never waits); while the model is busy the next
//! batch fills until it is full, `max_wait` has passed since its oldest job
//! arrived, or the model goes idle. Under backlog batches are full.
//!
//! A batch is cut around the oldest job from the texts closest to it in
//! length, which cuts padding without starving long texts.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::stages::{Batch, Job, ModelSlots};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_size: usize,
    pub max_tokens: usize,
    pub max_wait: Duration,
}

impl Limits {
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
}

impl Batcher {
    /// Runs until both inputs are closed and drained, then closes `out`.
    pub async fn run(mut self) {
        let window_cap = self.limits.max_size * 8;
        let mut urgent: VecDeque<Job> = VecDeque::new();
        let mut window: Vec<Job> = Vec::new();
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
            let Some(slot) = self.slots.acquire().await else { return };
            let oldest = urgent.front().or(window.first()).map_or_else(Instant::now, |j| j.enqueued);
            let deadline = oldest + self.limits.max_wait;
            loop {
                while let Ok(job) = self.http.try_recv() {
                    urgent.push_back(job);
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
                    job = self.http.recv(), if http_open => match job { Some(j) => urgent.push_back(j), None => http_open = false },
                    job = self.stream.recv(), if stream_open && window.len() < window_cap => match job { Some(j) => window.push(j), None => stream_open = false },
                    () = self.slots.released() => {}
                    () = tokio::time::sleep_until(deadline) => {}
                }
            }
            let jobs = cut_batch(&mut urgent, &mut window, &self.limits);
            if self.out.send(Batch { jobs, slot }).await.is_err() {
                return;
            }
        }
    }
}

/// Takes the next batch: the waiting HTTP jobs alone if there are any (in
/// order), else stream jobs around the oldest one, nearest in length first,
/// while the limits allow.
fn cut_batch(urgent: &mut VecDeque<Job>, window: &mut Vec<Job>, limits: &Limits) -> Vec<Job> {
    let mut batch: Vec<Job> = Vec::new();
    let mut longest = 0;
    while let Some(job) = urgent.front() {
        let len = longest.max(job.tokens.len());
        if !batch.is_empty() && !limits.fits(batch.len() + 1, len) {
            return batch;
        }
        longest = len;
        batch.extend(urgent.pop_front());
    }
    // A person is waiting: keep their batch small rather than fill it with stream texts.
    if !batch.is_empty() || window.is_empty() {
        return batch;
    }
    // Stream jobs sorted by length; grow a run around the anchor (the oldest).
    let mut order: Vec<usize> = (0..window.len()).collect();
    order.sort_by_key(|&i| (window[i].tokens.len(), i));
    let anchor = order.iter().position(|&i| i == 0).unwrap_or(0);
    let len_at = |k: usize| window[order[k]].tokens.len();
    let (mut lo, mut hi) = (anchor, anchor);
    let mut taken = 0;
    if batch.is_empty() || limits.fits(batch.len() + 1, longest.max(len_at(anchor))) {
        taken = 1;
        longest = longest.max(len_at(anchor));
        loop {
            let target = len_at(anchor);
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
            if !limits.fits(batch.len() + taken + 1, len) {
                break;
            }
            longest = len;
            taken += 1;
            if pick < lo {
                lo = pick
            } else {
                hi = pick
            }
        }
    }
    if taken == 0 {
        return batch;
    }
    let mut chosen: Vec<usize> = order[lo..=hi].to_vec();
    chosen.sort_unstable();
    for &i in chosen.iter().rev() {
        batch.push(window.remove(i));
    }
    batch
}

#[cfg(test)]
mod tests;
