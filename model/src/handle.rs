//! libtorch on a thread of its own (STYLE.md, habit 4): the async world sends
//! padded batches by message and awaits a oneshot reply, so model work never
//! blocks a tokio worker and libtorch's threads do not fight tokio's.

use std::path::PathBuf;
use std::sync::{mpsc, Arc};

use tokio::sync::oneshot;
use tracing::Instrument;

use crate::classify::{Classifier, LoadOptions, Prediction};
use crate::error::{ModelError, Result};
use crate::tokenize::{EncodedBatch, TextEncoder};

/// What the rest of the system needs to know about the loaded model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub model_id: String,
    pub labels: Vec<String>,
    pub device: String,
}

struct Job {
    batch: EncodedBatch,
    reply: oneshot::Sender<Result<Vec<Prediction>>>,
    span: tracing::Span,
}

/// A cheap, cloneable handle to the model thread. The thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct ClassifierHandle {
    jobs: mpsc::Sender<Job>,
    info: Arc<ModelInfo>,
    encoder: Arc<TextEncoder>,
}

impl ClassifierHandle {
    /// Starts the model thread and waits until the model is loaded (or failed to).
    /// `threads` sets libtorch's intra-op threads (default: libtorch's choice).
    pub fn spawn(dir: PathBuf, options: LoadOptions, threads: Option<usize>) -> Result<Self> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("bertstream-model".into())
            .spawn(move || {
                if let Some(n) = threads {
                    tch::set_num_threads(n as i32);
                }
                let classifier = match Classifier::load(&dir, &options) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let info = ModelInfo {
                    model_id: classifier.model_id().to_string(),
                    labels: classifier.labels().to_vec(),
                    device: format!("{:?}", classifier.device()),
                };
                if ready_tx.send(Ok((info, classifier.encoder().clone()))).is_err() {
                    return;
                }
                for job in inbox {
                    if job.reply.is_closed() {
                        continue; // the caller has gone: skip the work
                    }
                    let result = job.span.in_scope(|| predict_catching_panics(&classifier, &job.batch));
                    let _ = job.reply.send(result);
                }
            })
            .map_err(|e| ModelError::Io { path: "model thread".into(), error: e })?;
        let (info, encoder) = ready_rx.recv().map_err(|_| ModelError::ThreadGone)??;
        Ok(Self { jobs, info: Arc::new(info), encoder })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The tokenizer, to encode on the caller's side while the model is busy.
    pub fn encoder(&self) -> &Arc<TextEncoder> {
        &self.encoder
    }

    pub async fn predict(&self, batch: EncodedBatch) -> Result<Vec<Prediction>> {
        let span = tracing::info_span!("model", rows = batch.rows, seq_len = batch.seq_len);
        let reply = self.submit(batch, span.clone())?;
        reply.instrument(span).await.map_err(|_| ModelError::ThreadGone)?
    }

    pub fn predict_blocking(&self, batch: EncodedBatch) -> Result<Vec<Prediction>> {
        let reply = self.submit(batch, tracing::Span::current())?;
        reply.blocking_recv().map_err(|_| ModelError::ThreadGone)?
    }

    fn submit(&self, batch: EncodedBatch, span: tracing::Span) -> Result<oneshot::Receiver<Result<Vec<Prediction>>>> {
        let (reply, receiver) = oneshot::channel();
        self.jobs.send(Job { batch, reply, span }).map_err(|_| ModelError::ThreadGone)?;
        Ok(receiver)
    }
}

/// `predict_batch`, with a libtorch error as an error: tch panics on one
/// (an id past the embedding table, CUDA out of memory), and a panic would
/// end this thread and every later batch with it, where the caller can
/// instead split the batch to find the record at fault.
fn predict_catching_panics(classifier: &Classifier, batch: &EncodedBatch) -> Result<Vec<Prediction>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| classifier.predict_batch(batch))).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic without a message");
        Err(ModelError::Torch(message.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_libtorch_error_on_a_batch_is_an_error_and_the_model_goes_on() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-bert");
        let options = LoadOptions { device: crate::DeviceSpec::Cpu, ..LoadOptions::default() };
        let handle = ClassifierHandle::spawn(dir, options, Some(1)).expect("tiny model");
        let encoder = handle.encoder().clone();
        let past_the_table = encoder.vocab_size() as i64 + 1000;
        let failed = handle.predict_blocking(encoder.batch(&[vec![101, past_the_table, 102]]));
        assert!(matches!(failed, Err(ModelError::Torch(_))), "{failed:?}");
        let fine = handle.predict_blocking(encoder.batch(&[vec![101, 102]])).expect("the model thread still serves");
        assert_eq!(fine.len(), 1);
    }
}
