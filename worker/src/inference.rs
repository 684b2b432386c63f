//! The model stage: runs each batch through the primary model (on its own
//! thread, behind the handle); HTTP jobs get their answer here, stream jobs
//! go on to the sinks. The primary is taken once per batch, so a hot swap
//! lands between one batch and the next.
//!
//! A record the model cannot score (NaN scores, or a failure the batch is
//! split to isolate) goes to the DLQ; a model that fails on everything ends
//! the stage, and the worker exits non-zero.
//!
//! Then the shadow model, if any, scores the batch's sampled stream reviews.
//! Under backlog it yields: it runs only while its model time stays within
//! its share (`SHADOW_SAMPLE`) of the primary's, and the reviews it skips are
//! counted, never waited for.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{SubsecRound, Utc};
use model::{EncodedBatch, Prediction};
use schemas::trace_context::SPANS;
use schemas::Poison;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::models::{LoadedModel, Models};
use crate::stages::{Answer, Batch, Job, ModelSlots, Origin, Scored, ScoredJob, StreamMeta};

pub struct Inference {
    pub models: Arc<Models>,
    pub slots: ModelSlots,
    pub metrics: Arc<Metrics>,
}

impl Inference {
    /// Runs until `batches` is closed or the sinks are gone; an error from the primary model ends it.
    pub async fn run(self, mut batches: mpsc::Receiver<Batch>, scored: mpsc::Sender<Scored>) -> anyhow::Result<()> {
        let metrics = &self.metrics;
        let mut shadow_budget = ShadowBudget::default();
        while let Some(Batch { jobs, slot }) = batches.recv().await {
            let model = self.models.primary();
            let (jobs, mut unscorable) = encode_for(&model, jobs);
            let started = Instant::now();
            metrics.batch_size.observe(jobs.len() as f64);
            let spans = model_spans(&jobs, &model);
            let (scored_jobs, failed) = score(&model, jobs, metrics).await?;
            drop(spans);
            let model_time = started.elapsed();
            self.slots.release(slot);
            metrics.model_seconds.observe(model_time.as_secs_f64());
            model.count_scored(scored_jobs.len());
            let batch_size = scored_jobs.len();
            let mut stream = Vec::with_capacity(batch_size);
            // Each stream job's tokens and their encoder, for the shadow.
            let mut inputs = Vec::with_capacity(batch_size);
            for (job, reason) in failed {
                // An HTTP caller whose text failed gets 503 (its reply is dropped).
                if let Origin::Stream(meta) = job.origin {
                    unscorable.push((*meta, reason));
                }
            }
            for (job, prediction) in scored_jobs {
                let queue_ms = (started - job.enqueued).as_secs_f32() * 1000.0;
                match job.origin {
                    Origin::Http(reply) => {
                        let _ = reply.send(Answer { prediction, model: model.clone() });
                    }
                    Origin::Stream(meta) => {
                        inputs.push((job.tokens, job.encoder));
                        stream.push(ScoredJob {
                            id: job.id,
                            text: job.text,
                            meta: *meta,
                            prediction,
                            shadow: None,
                            queue_ms,
                        });
                    }
                }
            }
            let backlog = !batches.is_empty();
            let shadow = self.shadow(&mut stream, &inputs, backlog, model_time, &mut shadow_budget).await;
            let primary_labels: Vec<&str> = stream.iter().map(|s| s.prediction.label.as_str()).collect();
            let pairs: Vec<(&str, &str)> = stream
                .iter()
                .filter_map(|s| s.shadow.as_ref().map(|p| (s.prediction.label.as_str(), p.label.as_str())))
                .collect();
            self.models.observe(&primary_labels, &pairs);
            if stream.is_empty() && unscorable.is_empty() {
                continue;
            }
            // Microseconds, as Postgres keeps it: a result published again from the table is then byte-identical.
            let classified_at = Utc::now().trunc_subsecs(6);
            let batch = Scored {
                jobs: stream,
                unscorable,
                model,
                shadow,
                model_ms: model_time.as_secs_f32() * 1000.0,
                batch_size,
                classified_at,
            };
            if scored.send(batch).await.is_err() {
                break;
            }
        }
        Ok(())
    }

    /// Scores the sampled stream jobs with the shadow model, within its
    /// budget; returns the shadow when it scored any. A shadow that fails is
    /// logged and skipped: it never stops the stream.
    async fn shadow(
        &self,
        stream: &mut [ScoredJob],
        inputs: &[(Vec<i64>, u64)],
        backlog: bool,
        primary_time: Duration,
        budget: &mut ShadowBudget,
    ) -> Option<Arc<LoadedModel>> {
        let shadow = self.models.shadow()?;
        let sampled: Vec<usize> = (0..stream.len()).filter(|&i| self.models.sampled(&stream[i].id)).collect();
        budget.decay(primary_time);
        if sampled.is_empty() {
            return None;
        }
        if backlog && !budget.allows(self.models.shadow_sample) {
            self.metrics.shadow_skipped.inc_by(sampled.len() as u64);
            return None;
        }
        let sequences: Vec<Vec<i64>> = sampled
            .iter()
            .map(|&i| reencode(&shadow, &stream[i].text, &inputs[i].0, inputs[i].1))
            .collect::<Result<_, _>>()
            .map_err(|e| tracing::warn!(model = %shadow.id(), error = %e, "shadow could not tokenize; skipped"))
            .ok()?;
        let started = Instant::now();
        let predictions = shadow.handle.predict(shadow.handle.encoder().batch(&sequences)).await;
        budget.spent(started.elapsed());
        let predictions = predictions
            .map_err(|e| tracing::warn!(model = %shadow.id(), error = %e, "shadow model failed; batch skipped"))
            .ok()?;
        shadow.count_scored(predictions.len());
        self.metrics.shadow_scored.inc_by(predictions.len() as u64);
        // A non-finite shadow result is left out (its row could not be stored).
        for (&i, prediction) in sampled.iter().zip(predictions) {
            stream[i].shadow = prediction.scores.iter().all(|s| s.is_finite()).then_some(prediction);
        }
        Some(shadow)
    }
}

/// A `model_forward` span for each stream message of the batch, as a child of
/// its own span: a batch serves many traces, and this way each trace shows
/// the batch's model time where it belongs (no cross-trace links to follow).
fn model_spans(jobs: &[Job], model: &LoadedModel) -> Vec<tracing::Span> {
    let stream = jobs.iter().filter_map(|job| match &job.origin {
        Origin::Stream(meta) => Some(&meta.trace.span),
        Origin::Http(_) => None,
    });
    stream
        .map(|parent| {
            tracing::trace_span!(target: SPANS, parent: parent, "model_forward", batch.size = jobs.len(), model = %model.id())
        })
        .collect()
}

/// Keeps the batch's jobs the model can read: each job tokenized by another
/// encoder (before a swap) is tokenized again by the model's. A stream text
/// it cannot tokenize is returned with the reason (for the DLQ); an HTTP one
/// is dropped, which answers its caller 503.
fn encode_for(model: &LoadedModel, jobs: Vec<Job>) -> (Vec<Job>, Vec<(StreamMeta, Poison)>) {
    let encoder = model.handle.encoder();
    if jobs.iter().all(|j| j.encoder == encoder.fingerprint()) {
        return (jobs, Vec::new());
    }
    let mut kept = Vec::with_capacity(jobs.len());
    let mut unscorable = Vec::new();
    for mut job in jobs {
        match reencode(model, &job.text, &job.tokens, job.encoder) {
            Ok(tokens) => {
                job.tokens = tokens;
                job.encoder = encoder.fingerprint();
                kept.push(job);
            }
            Err(e) => {
                if let Origin::Stream(meta) = job.origin {
                    let reason = format!("text could not be tokenized by {}: {e}", model.id());
                    unscorable.push((*meta, Poison::WrongType(reason)));
                }
            }
        }
    }
    (kept, unscorable)
}

/// `tokens` if `model` reads them as they are, else the text tokenized again.
fn reencode(model: &LoadedModel, text: &str, tokens: &[i64], made_by: u64) -> model::Result<Vec<i64>> {
    let encoder = model.handle.encoder();
    if made_by == encoder.fingerprint() {
        Ok(tokens.to_vec())
    } else {
        encoder.encode(text)
    }
}

/// A batch's jobs with their predictions, and the jobs the model could not
/// score with the reason (for the DLQ). When the model fails on a batch, the
/// batch is split in halves until the record that fails it is alone; that
/// record is at fault only if the model still scores a probe batch, else the
/// model is (an error: the worker exits and the group moves on). A record
/// whose scores are NaN or infinite (fp16 overflow) is not scored either.
type Outcome = (Vec<(Job, Prediction)>, Vec<(Job, Poison)>);

async fn score(model: &LoadedModel, jobs: Vec<Job>, metrics: &Metrics) -> anyhow::Result<Outcome> {
    if jobs.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let encoded = pad(model, &jobs);
    metrics.batch_tokens.observe(encoded.padded_tokens() as f64);
    match model.handle.predict(encoded).await {
        Ok(predictions) => {
            let (mut scored, mut failed) = (Vec::with_capacity(jobs.len()), Vec::new());
            for (job, prediction) in jobs.into_iter().zip(predictions) {
                if prediction.scores.iter().all(|s| s.is_finite()) {
                    scored.push((job, prediction));
                } else {
                    failed.push((job, Poison::NonFinite(format!("{} gave {:?}", model.id(), prediction.scores))));
                }
            }
            Ok((scored, failed))
        }
        Err(e @ model::ModelError::ThreadGone) => Err(e).context("model"),
        Err(e) if jobs.len() == 1 => {
            tracing::warn!(model = %model.id(), error = %e, "the model failed on one record; probing the model");
            if !model.healthy().await {
                return Err(e).context("the model fails on a probe batch too");
            }
            let reason = Poison::ModelFailed(format!("{}: {e}", model.id()));
            Ok((Vec::new(), jobs.into_iter().map(|job| (job, reason.clone())).collect()))
        }
        Err(e) => {
            tracing::warn!(model = %model.id(), error = %e, rows = jobs.len(), "the model failed on a batch; splitting it");
            let mut jobs = jobs;
            let right = jobs.split_off(jobs.len() / 2);
            let (mut scored, mut failed) = Box::pin(score(model, jobs, metrics)).await?;
            let (more_scored, more_failed) = Box::pin(score(model, right, metrics)).await?;
            scored.extend(more_scored);
            failed.extend(more_failed);
            Ok((scored, failed))
        }
    }
}

fn pad(model: &LoadedModel, jobs: &[Job]) -> EncodedBatch {
    let sequences: Vec<Vec<i64>> = jobs.iter().map(|j| j.tokens.clone()).collect();
    model.handle.encoder().batch(&sequences)
}

/// Recent model time of the primary and the shadow, decaying so that old
/// quiet periods give the shadow no credit under today's backlog.
#[derive(Default)]
struct ShadowBudget {
    primary: f64,
    shadow: f64,
}

impl ShadowBudget {
    const DECAY: f64 = 0.98;

    fn decay(&mut self, primary: Duration) {
        self.primary = self.primary * Self::DECAY + primary.as_secs_f64();
        self.shadow *= Self::DECAY;
    }

    fn spent(&mut self, shadow: Duration) {
        self.shadow += shadow.as_secs_f64();
    }

    /// Whether the shadow has used no more than `share` of the primary's time.
    fn allows(&self, share: f64) -> bool {
        self.shadow <= self.primary * share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shadow_budget_holds_the_shadow_to_its_share_of_model_time() {
        let mut budget = ShadowBudget::default();
        let (batch, mut ran) = (Duration::from_millis(100), 0);
        for _ in 0..1000 {
            budget.decay(batch);
            if budget.allows(0.1) {
                // A shadow as slow as the primary: it may run about one batch in ten.
                budget.spent(batch);
                ran += 1;
            }
        }
        assert!((90..=115).contains(&ran), "{ran}");
    }
}
