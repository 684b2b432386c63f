//! `config.json` of an HF BERT checkpoint: the fields BertConfig reads, with its defaults.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ModelError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    #[serde(default = "d::vocab_size")]
    pub vocab_size: i64,
    #[serde(default = "d::hidden_size")]
    pub hidden_size: i64,
    #[serde(default = "d::num_hidden_layers")]
    pub num_hidden_layers: i64,
    #[serde(default = "d::num_attention_heads")]
    pub num_attention_heads: i64,
    #[serde(default = "d::intermediate_size")]
    pub intermediate_size: i64,
    #[serde(default = "d::hidden_act")]
    pub hidden_act: String,
    #[serde(default = "d::dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "d::dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default)]
    pub classifier_dropout: Option<f64>,
    #[serde(default = "d::max_position_embeddings")]
    pub max_position_embeddings: i64,
    #[serde(default = "d::type_vocab_size")]
    pub type_vocab_size: i64,
    #[serde(default = "d::layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: i64,
    /// Class index (as a string, as HF writes it) to label name.
    #[serde(default)]
    pub id2label: BTreeMap<String, String>,
    /// Everything else (`model_type`, `architectures`, `label2id`, ...) is kept for round trips.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

mod d {
    pub fn vocab_size() -> i64 {
        30522
    }
    pub fn hidden_size() -> i64 {
        768
    }
    pub fn num_hidden_layers() -> i64 {
        12
    }
    pub fn num_attention_heads() -> i64 {
        12
    }
    pub fn intermediate_size() -> i64 {
        3072
    }
    pub fn hidden_act() -> String {
        "gelu".into()
    }
    pub fn dropout() -> f64 {
        0.1
    }
    pub fn max_position_embeddings() -> i64 {
        512
    }
    pub fn type_vocab_size() -> i64 {
        2
    }
    pub fn layer_norm_eps() -> f64 {
        1e-12
    }
}

/// The activations BERT checkpoints use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact erf GELU (`gelu`).
    Gelu,
    /// Tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    Relu,
    Silu,
}

impl BertConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(ModelError::io(path))?;
        let config: Self = serde_json::from_str(&text)
            .map_err(|e| ModelError::BadFile { path: path.into(), message: e.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        self.activation()?;
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(ModelError::BadConfig(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        self.labels()?;
        Ok(())
    }

    pub fn activation(&self) -> Result<Activation> {
        match self.hidden_act.as_str() {
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            "silu" | "swish" => Ok(Activation::Silu),
            other => Err(ModelError::UnknownActivation(other.into())),
        }
    }

    /// Label names in class-index order. A checkpoint without `id2label`
    /// (a bare pretrained BERT) has none.
    pub fn labels(&self) -> Result<Vec<String>> {
        let mut labels = vec![None; self.id2label.len()];
        for (index, label) in &self.id2label {
            let i: usize = index.parse().ok().filter(|i| *i < labels.len()).ok_or_else(|| {
                ModelError::BadConfig(format!("id2label key `{index}` is not a class index 0..{}", labels.len()))
            })?;
            labels[i] = Some(label.clone());
        }
        Ok(labels.into_iter().flatten().collect())
    }

    /// Sets `id2label` / `label2id` for a classifier over `labels`.
    pub fn set_labels(&mut self, labels: &[String]) {
        self.id2label = labels.iter().enumerate().map(|(i, l)| (i.to_string(), l.clone())).collect();
        let label2id: serde_json::Map<String, Value> =
            labels.iter().enumerate().map(|(i, l)| (l.clone(), Value::from(i))).collect();
        self.extra.insert("label2id".into(), Value::Object(label2id));
        self.extra.insert("architectures".into(), Value::from(vec!["BertForSequenceClassification"]));
        self.extra.insert("model_type".into(), Value::from("bert"));
    }

    /// The same dropout for hidden states and attention probabilities.
    pub fn set_dropout(&mut self, p: f64) {
        self.hidden_dropout_prob = p;
        self.attention_probs_dropout_prob = p;
    }

    pub fn head_dim(&self) -> i64 {
        self.hidden_size / self.num_attention_heads
    }
}
