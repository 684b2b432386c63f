//! The model stage: runs each batch through the model (on its own thread,
//! behind the handle); HTTP jobs get their answer here, stream jobs go on to
//! the sinks.

use std::sync::Arc;

use anyhow::Context;
use chrono::{SubsecRound, Utc};
use model::ClassifierHandle;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::stages::{Batch, ModelSlots, Origin, Scored, ScoredJob};

pub struct Inference {
    pub classifier: ClassifierHandle,
    pub slots: ModelSlots,
    pub metrics: Arc<Metrics>,
}

impl Inference {
    /// Runs until `batches` is closed or the sinks are gone; an error from the model ends it.
    pub async fn run(self, mut batches: mpsc::Receiver<Batch>, scored: mpsc::Sender<Scored>) -> anyhow::Result<()> {
        let metrics = &self.metrics;
        while let Some(Batch { jobs, encoded, slot }) = batches.recv().await {
            let started = Instant::now();
            metrics.batch_size.observe(jobs.len() as f64);
            metrics.batch_tokens.observe(encoded.padded_tokens() as f64);
            let predictions = self.classifier.predict(encoded).await.context("model")?;
            let model_time = started.elapsed();
            self.slots.release(slot);
            metrics.model_seconds.observe(model_time.as_secs_f64());
            let batch_size = jobs.len();
            let mut stream = Vec::with_capacity(batch_size);
            for (job, prediction) in jobs.into_iter().zip(predictions) {
                let queue_ms = (started - job.enqueued).as_secs_f32() * 1000.0;
                match job.origin {
                    Origin::Http(reply) => {
                        let _ = reply.send(prediction);
                    }
                    Origin::Stream(meta) => {
                        stream.push(ScoredJob { id: job.id, text: job.text, meta, prediction, queue_ms })
                    }
                }
            }
            if !stream.is_empty() {
                // Microseconds, as Postgres keeps it: a result published again from the table is then byte-identical.
                let classified_at = Utc::now().trunc_subsecs(6);
                let batch =
                    Scored { jobs: stream, model_ms: model_time.as_secs_f32() * 1000.0, batch_size, classified_at };
                if scored.send(batch).await.is_err() {
                    break;
                }
            }
        }
        Ok(())
    }
}
