//! What the stages hand each other, in the order a message meets them:
//!
//! ```text
//! source ─Job─► batcher ─Batch─► inference ─Scored─► sinks ─Ticket─► offsets
//!   HTTP ─Job─►    ▲                 └─ Answer ─► HTTP caller
//! ```

use std::sync::Arc;

use chrono::{DateTime, Utc};
use model::Prediction;
use schemas::trace_context::RecordTrace;
use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::budget::HeldBytes;
use crate::models::LoadedModel;
use crate::offsets::Ticket;

/// One text waiting for the model, already tokenized.
pub struct Job {
    pub id: String,
    pub text: String,
    pub tokens: Vec<i64>,
    /// The fingerprint of the encoder that made `tokens`: a model with
    /// another tokenizer (after a swap) encodes the text again.
    pub encoder: u64,
    pub enqueued: Instant,
    pub origin: Origin,
}

/// An HTTP text's result, and the model that scored it.
pub struct Answer {
    pub prediction: Prediction,
    pub model: Arc<LoadedModel>,
}

/// Where a job came from, and so where its result goes.
pub enum Origin {
    /// From the input topic: the result goes to the sinks, then the offset is
    /// stored. Boxed: jobs move through channels and batches, and an HTTP one carries little.
    Stream(Box<StreamMeta>),
    /// From an HTTP request: the result goes back to the caller.
    Http(oneshot::Sender<Answer>),
}

pub struct StreamMeta {
    pub ticket: Ticket,
    /// The message as read, for the DLQ should Postgres refuse its row.
    pub original: rdkafka::message::OwnedMessage,
    pub fields: serde_json::Map<String, serde_json::Value>,
    pub published_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    /// The message's share of `QUEUE_MAX_BYTES`, given back when its work is over.
    pub held: HeldBytes,
    /// Its `process_review` span, which ends when the message is done, and
    /// the trace context its output and DLQ records carry.
    pub trace: RecordTrace,
}

/// Jobs for one model input (inference pads them with the model's encoder).
pub struct Batch {
    pub jobs: Vec<Job>,
    /// Held while the batch is in flight; inference releases it when done.
    pub slot: OwnedSemaphorePermit,
}

/// One stream text and its prediction.
pub struct ScoredJob {
    pub id: String,
    pub text: String,
    pub meta: StreamMeta,
    pub prediction: Prediction,
    /// The shadow model's result, when it scored this review.
    pub shadow: Option<Prediction>,
    pub queue_ms: f32,
}

/// The stream part of a batch, out of the model.
pub struct Scored {
    pub jobs: Vec<ScoredJob>,
    /// Stream texts the model could not score, and why: they go to the DLQ.
    pub unscorable: Vec<(StreamMeta, schemas::Poison)>,
    /// The model that scored `jobs`, and the shadow, if it scored any.
    pub model: Arc<LoadedModel>,
    pub shadow: Option<Arc<LoadedModel>>,
    pub model_ms: f32,
    pub batch_size: usize,
    pub classified_at: DateTime<Utc>,
}

/// Batches in flight at once: one in the model, one filling behind it.
pub const PIPELINE_DEPTH: usize = 2;

/// The batcher takes a slot for each batch; inference releases it when the
/// model is done with the batch, which tells the batcher the model is idle.
#[derive(Clone)]
pub struct ModelSlots {
    semaphore: Arc<Semaphore>,
    idle: Arc<Notify>,
}

impl ModelSlots {
    pub fn new() -> Self {
        Self { semaphore: Arc::new(Semaphore::new(PIPELINE_DEPTH)), idle: Arc::new(Notify::new()) }
    }

    /// Waits for a free slot; `None` once closed.
    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.semaphore.clone().acquire_owned().await.ok()
    }

    pub fn release(&self, slot: OwnedSemaphorePermit) {
        drop(slot);
        self.idle.notify_one();
    }

    /// True when no batch but the one being filled holds a slot.
    pub fn model_idle(&self) -> bool {
        self.semaphore.available_permits() == PIPELINE_DEPTH - 1
    }

    /// Resolves when inference releases a slot.
    pub async fn released(&self) {
        self.idle.notified().await;
    }
}

impl Default for ModelSlots {
    fn default() -> Self {
        Self::new()
    }
}
