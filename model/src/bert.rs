//! BERT for sequence classification, one struct per module of Hugging Face's
//! `modeling_bert.py`, with the same parameter paths, so that weights load by
//! their HF names (`bert.encoder.layer.0.attention.self.query.weight`, ...).
//!
//! The modules are built on tch (`nn::Path`, `Tensor`): the classifier runs
//! them for inference, and the `bertstream-train` crate trains them.

mod layers;

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use self::layers::{activate, bf16_matmul, embedding, layer_norm, linear, Dense};
use crate::config::{Activation, BertConfig};

pub use self::layers::Bf16Matmul;

/// BertEmbeddings: word + position + token type (always type 0: one segment), LayerNorm, dropout.
#[derive(Debug)]
pub struct BertEmbeddings {
    word_embeddings: nn::Embedding,
    position_embeddings: nn::Embedding,
    token_type_embeddings: nn::Embedding,
    layer_norm: nn::LayerNorm,
    dropout: f64,
}

impl BertEmbeddings {
    pub fn new(p: nn::Path, c: &BertConfig) -> Self {
        Self {
            word_embeddings: embedding(&p / "word_embeddings", c.vocab_size, c.hidden_size),
            position_embeddings: embedding(&p / "position_embeddings", c.max_position_embeddings, c.hidden_size),
            token_type_embeddings: embedding(&p / "token_type_embeddings", c.type_vocab_size, c.hidden_size),
            layer_norm: layer_norm(p, c),
            dropout: c.hidden_dropout_prob,
        }
    }

    /// The word embedding table `[vocab, hidden]` (tied to the masked-LM decoder).
    pub fn word_embeddings(&self) -> &Tensor {
        &self.word_embeddings.ws
    }

    pub fn forward_t(&self, input_ids: &Tensor, train: bool) -> Tensor {
        let seq_len = input_ids.size()[1];
        let positions = Tensor::arange(seq_len, (Kind::Int64, input_ids.device()));
        let embeddings = self.word_embeddings.forward(input_ids)
            + self.position_embeddings.forward(&positions)
            + self.token_type_embeddings.ws.get(0);
        self.layer_norm.forward(&embeddings).dropout(self.dropout, train)
    }
}

/// BertSelfAttention (`attention.self`): scaled dot-product attention over the unpadded keys.
#[derive(Debug)]
pub struct BertSelfAttention {
    query: Dense,
    key: Dense,
    value: Dense,
    heads: i64,
    head_dim: i64,
    dropout: f64,
}

impl BertSelfAttention {
    pub fn new(p: nn::Path, c: &BertConfig) -> Self {
        Self {
            query: linear(&p / "query", c.hidden_size, c.hidden_size),
            key: linear(&p / "key", c.hidden_size, c.hidden_size),
            value: linear(&p / "value", c.hidden_size, c.hidden_size),
            heads: c.num_attention_heads,
            head_dim: c.head_dim(),
            dropout: c.attention_probs_dropout_prob,
        }
    }

    /// `queries` attend to all of `hidden` (`[batch, seq, width]`); `queries` is
    /// `hidden` itself or a prefix of its positions. `mask`: additive
    /// `[batch, 1, 1, seq]` ([`BertModel::attention_bias`]); `None` when
    /// nothing is padded, which lets libtorch pick its fastest kernel.
    pub fn forward_t(&self, queries: &Tensor, hidden: &Tensor, mask: Option<&Tensor>, train: bool) -> Tensor {
        let (batch, width) = (hidden.size()[0], hidden.size()[2]);
        let heads = |x: Tensor| x.view([batch, -1, self.heads, self.head_dim]).transpose(1, 2);
        let context = Tensor::scaled_dot_product_attention(
            &heads(self.query.forward(queries)),
            &heads(self.key.forward(hidden)),
            &heads(self.value.forward(hidden)),
            mask,
            if train { self.dropout } else { 0.0 },
            false,
            None,
            false,
        );
        context.transpose(1, 2).contiguous().view([batch, -1, width])
    }
}

/// BertSelfOutput and BertOutput share a shape: dense, dropout, residual, LayerNorm.
#[derive(Debug)]
pub struct BertResidualOutput {
    dense: Dense,
    layer_norm: nn::LayerNorm,
    dropout: f64,
}

impl BertResidualOutput {
    pub fn new(p: nn::Path, in_dim: i64, c: &BertConfig) -> Self {
        Self {
            dense: linear(&p / "dense", in_dim, c.hidden_size),
            layer_norm: layer_norm(p, c),
            dropout: c.hidden_dropout_prob,
        }
    }

    pub fn forward_t(&self, hidden: &Tensor, residual: &Tensor, train: bool) -> Tensor {
        self.layer_norm.forward(&(self.dense.forward(hidden).dropout(self.dropout, train) + residual))
    }
}

/// BertAttention: `self` then `output`.
#[derive(Debug)]
pub struct BertAttention {
    self_attention: BertSelfAttention,
    output: BertResidualOutput,
}

impl BertAttention {
    pub fn new(p: nn::Path, c: &BertConfig) -> Self {
        Self {
            self_attention: BertSelfAttention::new(&p / "self", c),
            output: BertResidualOutput::new(&p / "output", c.hidden_size, c),
        }
    }

    pub fn forward_t(&self, queries: &Tensor, hidden: &Tensor, mask: Option<&Tensor>, train: bool) -> Tensor {
        self.output.forward_t(&self.self_attention.forward_t(queries, hidden, mask, train), queries, train)
    }
}

/// BertIntermediate: dense then the activation.
#[derive(Debug)]
pub struct BertIntermediate {
    dense: Dense,
    activation: Activation,
}

impl BertIntermediate {
    pub fn new(p: nn::Path, c: &BertConfig, activation: Activation) -> Self {
        Self { dense: linear(&p / "dense", c.hidden_size, c.intermediate_size), activation }
    }

    pub fn forward(&self, hidden: &Tensor) -> Tensor {
        activate(self.dense.forward(hidden), self.activation)
    }
}

/// BertLayer: attention, intermediate, output.
#[derive(Debug)]
pub struct BertLayer {
    attention: BertAttention,
    intermediate: BertIntermediate,
    output: BertResidualOutput,
}

impl BertLayer {
    pub fn new(p: nn::Path, c: &BertConfig, activation: Activation) -> Self {
        Self {
            attention: BertAttention::new(&p / "attention", c),
            intermediate: BertIntermediate::new(&p / "intermediate", c, activation),
            output: BertResidualOutput::new(&p / "output", c.intermediate_size, c),
        }
    }

    /// New states for the positions of `queries` (see [`BertSelfAttention::forward_t`]).
    pub fn forward_t(&self, queries: &Tensor, hidden: &Tensor, mask: Option<&Tensor>, train: bool) -> Tensor {
        let attended = self.attention.forward_t(queries, hidden, mask, train);
        self.output.forward_t(&self.intermediate.forward(&attended), &attended, train)
    }
}

/// BertEncoder: `layer.0` .. `layer.N-1`.
#[derive(Debug)]
pub struct BertEncoder {
    layers: Vec<BertLayer>,
}

impl BertEncoder {
    pub fn new(p: nn::Path, c: &BertConfig, activation: Activation) -> Self {
        let p = p / "layer";
        Self { layers: (0..c.num_hidden_layers).map(|i| BertLayer::new(&p / i, c, activation)).collect() }
    }

    /// With `cls_only`, the last layer computes the `[CLS]` position alone
    /// (`[batch, 1, hidden]`): all a classifier reads, and the same numbers.
    pub fn forward_t(&self, hidden: Tensor, mask: Option<&Tensor>, train: bool, cls_only: bool) -> Tensor {
        let last = self.layers.len().saturating_sub(1);
        self.layers.iter().enumerate().fold(hidden, |h, (i, layer)| {
            let queries = if cls_only && i == last { h.narrow(1, 0, 1) } else { h.shallow_clone() };
            layer.forward_t(&queries, &h, mask, train)
        })
    }
}

/// BertPooler: dense + tanh on the `[CLS]` position.
#[derive(Debug)]
pub struct BertPooler {
    dense: Dense,
}

impl BertPooler {
    pub fn new(p: nn::Path, c: &BertConfig) -> Self {
        Self { dense: linear(&p / "dense", c.hidden_size, c.hidden_size) }
    }

    pub fn forward(&self, hidden: &Tensor) -> Tensor {
        self.dense.forward(&hidden.select(1, 0)).tanh()
    }
}

/// BertModel: embeddings, encoder, pooler.
#[derive(Debug)]
pub struct BertModel {
    pub embeddings: BertEmbeddings,
    pub encoder: BertEncoder,
    pub pooler: BertPooler,
}

impl BertModel {
    pub fn new(p: nn::Path, c: &BertConfig, activation: Activation) -> Self {
        Self {
            embeddings: BertEmbeddings::new(&p / "embeddings", c),
            encoder: BertEncoder::new(&p / "encoder", c, activation),
            pooler: BertPooler::new(&p / "pooler", c),
        }
    }

    /// Returns the sequence output `[batch, seq, hidden]` (`[batch, 1, hidden]`,
    /// the `[CLS]` position, with `cls_only`). `attention_mask` is 1 for tokens,
    /// 0 for padding; `None` (as in HF) when nothing is padded, which length-grouped
    /// batches often are, and SDPA is faster without a mask.
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        train: bool,
        cls_only: bool,
    ) -> Tensor {
        let hidden = self.embeddings.forward_t(input_ids, train);
        let bias = attention_mask.map(|m| Self::attention_bias(m, hidden.kind()));
        self.encoder.forward_t(hidden, bias.as_ref(), train, cls_only)
    }

    /// The attention mask (1 token, 0 padding, `[batch, seq]`) as what every
    /// layer's attention adds to its scores: 0 or -inf, `[batch, 1, 1, seq]`,
    /// in the activations' kind. Made once a forward pass, where a boolean
    /// mask would be turned into the same in each layer; a mask of the
    /// query's kind is what CUDA's memory-efficient kernel takes.
    pub fn attention_bias(attention_mask: &Tensor, kind: Kind) -> Tensor {
        let padding = attention_mask.eq(0).unsqueeze(1).unsqueeze(1);
        Tensor::zeros(padding.size(), (kind, padding.device())).masked_fill(&padding, f64::NEG_INFINITY)
    }
}

/// BertForSequenceClassification: `bert`, dropout, `classifier`.
#[derive(Debug)]
pub struct BertForSequenceClassification {
    pub bert: BertModel,
    classifier: Dense,
    dropout: f64,
}

impl BertForSequenceClassification {
    /// Builds the module tree under `p`; `c.labels()` fixes the number of classes.
    pub fn new(p: &nn::Path, c: &BertConfig, num_labels: i64) -> crate::Result<Self> {
        let activation = c.activation()?;
        Ok(Self {
            bert: BertModel::new(p / "bert", c, activation),
            classifier: linear(p / "classifier", c.hidden_size, num_labels),
            dropout: c.classifier_dropout.unwrap_or(c.hidden_dropout_prob),
        })
    }

    /// Logits `[batch, labels]`.
    pub fn forward_t(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>, train: bool) -> Tensor {
        let sequence = self.bert.forward_t(input_ids, attention_mask, train, true);
        let pooled = self.bert.pooler.forward(&sequence);
        self.classifier.forward(&pooled.dropout(self.dropout, train))
    }
}

/// BertForMaskedLM's head (`cls.predictions`): `transform` (dense, activation,
/// LayerNorm), then the word embeddings (tied, as in HF) and a bias.
#[derive(Debug)]
pub struct BertMaskedLmHead {
    dense: Dense,
    layer_norm: nn::LayerNorm,
    bias: Tensor,
    activation: Activation,
}

impl BertMaskedLmHead {
    /// `p` is the model root: the head lives under `cls.predictions`.
    pub fn new(p: &nn::Path, c: &BertConfig) -> crate::Result<Self> {
        let p = p / "cls" / "predictions";
        let transform = &p / "transform";
        Ok(Self {
            dense: linear(&transform / "dense", c.hidden_size, c.hidden_size),
            layer_norm: layer_norm(transform, c),
            bias: p.zeros("bias", &[c.vocab_size]),
            activation: c.activation()?,
        })
    }

    /// Vocabulary logits `[n, vocab]` for hidden states `[n, hidden]`.
    pub fn forward(&self, hidden: &Tensor, word_embeddings: &Tensor) -> Tensor {
        let x = self.layer_norm.forward(&activate(self.dense.forward(hidden), self.activation));
        let logits = if bf16_matmul(&x) {
            x.to_kind(Kind::BFloat16).matmul(&word_embeddings.to_kind(Kind::BFloat16).tr()).to_kind(Kind::Float)
        } else {
            x.matmul(&word_embeddings.tr())
        };
        logits + &self.bias
    }
}
