//! Inference: a loaded classifier predicts padded batches under `no_grad`
//! with frozen weights, in fp32, bf16, or fp16 on CUDA. One batch costs one
//! wait for the device: its probabilities coming back to the host.

use std::path::Path;
use std::sync::Arc;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::bert::BertForSequenceClassification;
use crate::device::{DeviceSpec, Dtype};
use crate::dir::{load_weights, ModelDir};
use crate::error::{ModelError, Result};
use crate::ngram::NgramHead;
use crate::tokenize::{EncodedBatch, TextEncoder};

/// How to load a classifier.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub device: DeviceSpec,
    /// Weights and activations: fp32, fp16 (CUDA only) or bf16.
    pub dtype: Dtype,
    /// Overrides the directory's max sequence length (capped by the position table).
    pub max_seq_len: Option<usize>,
}

/// One text's result: the best label, its probability, and every label's probability in label order.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub index: usize,
    pub label: String,
    pub score: f32,
    pub scores: Vec<f32>,
}

/// A loaded model, run on one thread: the model thread ([`crate::ClassifierHandle`])
/// or `bertstream-train`'s `eval` and `predict`.
pub struct Classifier {
    // Owns the weights the model's modules point into.
    _vs: VarStore,
    model: BertForSequenceClassification,
    ngram_head: Option<NgramHead>,
    encoder: Arc<TextEncoder>,
    labels: Vec<String>,
    model_id: String,
    device: Device,
}

impl Classifier {
    pub fn load(dir: impl AsRef<Path>, options: &LoadOptions) -> Result<Self> {
        let dir = ModelDir::open(dir)?;
        let device = options.device.resolve()?;
        if options.dtype == Dtype::Fp16 && device == Device::Cpu {
            return Err(ModelError::HalfOnCpu);
        }
        let labels = dir.config.labels()?;
        if labels.is_empty() {
            return Err(ModelError::BadConfig("id2label is empty: this checkpoint has no classifier head".into()));
        }
        let positions = usize::try_from(dir.config.max_position_embeddings).unwrap_or(0);
        let max_len = options.max_seq_len.map_or(dir.max_seq_len(), |m| m.min(positions));
        let encoder = dir.encoder(max_len)?;
        // An id past the embedding table would fail (or, on CUDA, crash) at
        // the first text that uses it: refuse the pair now instead.
        if encoder.vocab_size() as i64 > dir.config.vocab_size {
            return Err(ModelError::BadConfig(format!(
                "the tokenizer has {} tokens but the embedding table only {} (config.json vocab_size): \
                 they do not belong to the same model",
                encoder.vocab_size(),
                dir.config.vocab_size
            )));
        }
        let mut vs = VarStore::new(device);
        let model = BertForSequenceClassification::new(&vs.root(), &dir.config, labels.len() as i64)?;
        load_weights(&mut vs, &dir.weights_path(), &[])?;
        vs.freeze();
        match options.dtype {
            Dtype::Fp32 => {}
            Dtype::Fp16 => vs.half(),
            Dtype::Bf16 => vs.bfloat16(),
        }
        let ngram_head = dir.ngram_head_path().map(|path| NgramHead::load(&path, &encoder)).transpose()?;
        if let Some(head) = ngram_head.as_ref().filter(|h| h.classes != labels.len()) {
            return Err(ModelError::BadConfig(format!(
                "the n-gram head has {} classes but config.json {} labels",
                head.classes,
                labels.len()
            )));
        }
        Ok(Self { encoder: Arc::new(encoder), model_id: dir.model_id()?, _vs: vs, model, ngram_head, labels, device })
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The torch device (a tch type, for training and evaluation; [`crate::ModelInfo`] names it as text).
    pub fn device(&self) -> Device {
        self.device
    }

    pub fn encoder(&self) -> &Arc<TextEncoder> {
        &self.encoder
    }

    /// Logits `[rows, labels]` as f32 on the CPU (a tch tensor, for training
    /// and evaluation), with the n-gram head mixed in when there is one.
    pub fn logits(&self, batch: &EncodedBatch) -> Result<Tensor> {
        let logits = self.encoder_logits(batch)?;
        match &self.ngram_head {
            Some(head) => head.mix(&logits, &batch.ids, &batch.mask, batch.seq_len),
            None => Ok(logits),
        }
    }

    /// The encoder's logits alone, as transformers computes them.
    fn encoder_logits(&self, batch: &EncodedBatch) -> Result<Tensor> {
        let _guard = tch::no_grad_guard();
        let (ids, mask) = batch.to_tensors(self.device);
        let logits = self.model.forward_t(&ids, mask.as_ref(), false);
        Ok(logits.to_kind(Kind::Float).to_device(Device::Cpu))
    }

    pub fn predict_batch(&self, batch: &EncodedBatch) -> Result<Vec<Prediction>> {
        if batch.rows == 0 {
            return Ok(Vec::new());
        }
        // `logits` ends with the copy to the host: the one wait for the device.
        let probabilities = self.logits(batch)?.softmax(-1, Kind::Float).contiguous().view(-1);
        let flat = Vec::<f32>::try_from(&probabilities).map_err(ModelError::torch)?;
        Ok(flat.chunks(self.labels.len()).map(|scores| self.prediction(scores.to_vec())).collect())
    }

    pub fn predict(&self, texts: &[&str]) -> Result<Vec<Prediction>> {
        let batch = self.encoder.batch(&self.encoder.encode_all(texts)?);
        self.predict_batch(&batch)
    }

    fn prediction(&self, scores: Vec<f32>) -> Prediction {
        let (index, score) =
            scores
                .iter()
                .copied()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, s)| if s > best.1 { (i, s) } else { best });
        Prediction { index, label: self.labels[index].clone(), score, scores }
    }
}
