//! The building blocks of the module tree: dense layers (with the optional
//! bfloat16 product), embeddings and LayerNorm initialised as HF does, and the
//! activations.

use std::sync::atomic::{AtomicBool, Ordering};

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::config::{Activation, BertConfig};

/// HF initialises weights with N(0, 0.02); only matters when training from scratch.
const INIT_STD: f64 = 0.02;

/// Whether dense layers multiply in bfloat16 (see [`Bf16Matmul`]).
static BF16_MATMUL: AtomicBool = AtomicBool::new(false);

/// Mixed precision for training: while a `Bf16Matmul::set(true)` guard lives,
/// dense layers (and the masked-LM decoder) multiply in bfloat16 while
/// weights, gradients, optimizer state, LayerNorm, softmax and losses stay
/// fp32. The products themselves run 2-3x faster on CPUs with bf16 units
/// (AVX512-BF16, AMX) and on CUDA; a whole training step gains less, and only
/// at larger batches (docs/training.md). Process-wide, like torch's own
/// `set_float32_matmul_precision`; off by default (the parity tests run fp32).
pub struct Bf16Matmul {
    previous: bool,
}

impl Bf16Matmul {
    /// Turns bf16 products on or off until the guard is dropped.
    pub fn set(on: bool) -> Self {
        Self { previous: BF16_MATMUL.swap(on, Ordering::Relaxed) }
    }
}

impl Drop for Bf16Matmul {
    fn drop(&mut self) {
        BF16_MATMUL.store(self.previous, Ordering::Relaxed);
    }
}

pub(super) fn bf16_matmul(x: &Tensor) -> bool {
    x.kind() == Kind::Float && BF16_MATMUL.load(Ordering::Relaxed)
}

/// A dense layer: `nn::Linear` with the optional bfloat16 product.
#[derive(Debug)]
pub(super) struct Dense(nn::Linear);

impl Module for Dense {
    fn forward(&self, x: &Tensor) -> Tensor {
        if !bf16_matmul(x) {
            return self.0.forward(x);
        }
        let bf16 = Kind::BFloat16;
        let bias = self.0.bs.as_ref().map(|b| b.to_kind(bf16));
        x.to_kind(bf16).linear(&self.0.ws.to_kind(bf16), bias).to_kind(Kind::Float)
    }
}

pub(super) fn linear(p: nn::Path, in_dim: i64, out_dim: i64) -> Dense {
    let config = nn::LinearConfig {
        ws_init: nn::Init::Randn { mean: 0.0, stdev: INIT_STD },
        bs_init: Some(nn::Init::Const(0.0)),
        bias: true,
    };
    Dense(nn::linear(p, in_dim, out_dim, config))
}

pub(super) fn embedding(p: nn::Path, count: i64, dim: i64) -> nn::Embedding {
    let config = nn::EmbeddingConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: INIT_STD }, ..Default::default() };
    nn::embedding(p, count, dim, config)
}

pub(super) fn layer_norm(p: nn::Path, c: &BertConfig) -> nn::LayerNorm {
    let config = nn::LayerNormConfig { eps: c.layer_norm_eps, ..Default::default() };
    nn::layer_norm(p / "LayerNorm", vec![c.hidden_size], config)
}

pub(super) fn activate(x: Tensor, activation: Activation) -> Tensor {
    match activation {
        Activation::Gelu => x.gelu("none"),
        Activation::GeluTanh => x.gelu("tanh"),
        Activation::Relu => x.relu(),
        Activation::Silu => x.silu(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_products_are_close_to_fp32_and_only_while_the_guard_lives() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let dense = linear(vs.root() / "d", 64, 32);
        let x = Tensor::randn([8, 64], (Kind::Float, tch::Device::Cpu));
        let fp32 = dense.forward(&x);
        let bf16 = {
            let _on = Bf16Matmul::set(true);
            dense.forward(&x)
        };
        assert_eq!(bf16.kind(), Kind::Float);
        let diff = (&bf16 - &fp32).abs().max().double_value(&[]);
        let scale = fp32.abs().max().double_value(&[]);
        assert!(diff > 0.0, "the bf16 path was not taken");
        assert!(diff < 0.02 * scale, "bf16 differs by {diff} on outputs up to {scale}");
        assert!(dense.forward(&x).equal(&fp32), "the guard did not restore fp32");
    }
}
