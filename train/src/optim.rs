//! AdamW written out over tensors so that one step is exactly
//! `torch.optim.AdamW` (single-tensor path): decoupled weight decay, bias
//! correction, `eps` outside the square root. Biases and LayerNorm weights get
//! no decay, as in HF's Trainer. Also gradient clipping
//! (`clip_grad_norm_`) and the warmup-then-linear-decay schedule.

use tch::nn::VarStore;
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

struct Param {
    name: String,
    value: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    decay: bool,
}

pub struct AdamW {
    params: Vec<Param>,
    config: AdamWConfig,
    step: i32,
}

/// HF's rule: no weight decay on biases and LayerNorm parameters.
pub fn decays(name: &str) -> bool {
    !(name.ends_with("bias") || name.contains("LayerNorm"))
}

impl AdamW {
    /// Over the trainable variables of `vs`, in name order.
    pub fn new(vs: &VarStore, config: AdamWConfig) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params = vars
            .into_iter()
            .map(|(name, value)| Param {
                decay: decays(&name),
                exp_avg: value.zeros_like().detach(),
                exp_avg_sq: value.zeros_like().detach(),
                name,
                value,
            })
            .collect();
        Self { params, config, step: 0 }
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.value.zero_grad();
        }
    }

    /// Scales all gradients so their global L2 norm is at most `max_norm`
    /// (`torch.nn.utils.clip_grad_norm_`); returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let _guard = tch::no_grad_guard();
        let grads: Vec<Tensor> = self.params.iter().map(|p| p.value.grad()).filter(Tensor::defined).collect();
        if grads.is_empty() {
            return 0.0;
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
        let total = Tensor::stack(&norms, 0).norm();
        let coef = (max_norm / (total.double_value(&[]) + 1e-6)).min(1.0);
        for mut g in grads {
            let _ = g.g_mul_scalar_(coef);
        }
        total.double_value(&[])
    }

    /// One update with learning rate `lr`; parameters without a gradient are left alone.
    pub fn step(&mut self, lr: f64) {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let c = self.config;
        let bias_correction1 = 1.0 - c.beta1.powi(self.step);
        let bias_correction2_sqrt = (1.0 - c.beta2.powi(self.step)).sqrt();
        let step_size = lr / bias_correction1;
        for p in &mut self.params {
            let grad = p.value.grad();
            if !grad.defined() {
                continue;
            }
            if p.decay && c.weight_decay != 0.0 {
                let _ = p.value.g_mul_scalar_(1.0 - lr * c.weight_decay);
            }
            let _ = p.exp_avg.lerp_(&grad, 1.0 - c.beta1);
            let _ = p.exp_avg_sq.g_mul_scalar_(c.beta2);
            let _ = p.exp_avg_sq.addcmul_(&(&grad * (1.0 - c.beta2)), &grad);
            let denom = (p.exp_avg_sq.sqrt() / bias_correction2_sqrt) + c.eps;
            let _ = p.value.addcdiv_(&(&p.exp_avg * -step_size), &denom);
        }
    }

    /// Parameter names and whether each decays, for the log.
    pub fn groups(&self) -> (usize, usize) {
        let decayed = self.params.iter().filter(|p| p.decay).count();
        (decayed, self.params.len() - decayed)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.params.iter().map(|p| p.name.as_str())
    }
}

/// Linear warmup to the peak over the first `warmup` fraction of training,
/// then linear decay to 0 (HF's `get_linear_schedule_with_warmup`).
/// `progress` in [0, 1] is the larger of steps done / planned steps and,
/// under a time budget, time used / budget, so the rate reaches 0 when either runs out.
pub fn lr_at(peak: f64, warmup: f64, progress: f64) -> f64 {
    let p = progress.clamp(0.0, 1.0);
    if p < warmup {
        peak * p / warmup
    } else if warmup >= 1.0 {
        peak
    } else {
        peak * (1.0 - p) / (1.0 - warmup)
    }
}

/// Cross-entropy of logits `[n, k]` against class indices `[n]`, mean over rows.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Tensor {
    logits.log_softmax(-1, Kind::Float).nll_loss(targets)
}

/// Cross-entropy of logits `[n, k]` against target distributions `[n, k]`, mean over rows.
pub fn soft_cross_entropy(logits: &Tensor, targets: &Tensor) -> Tensor {
    -(targets * logits.log_softmax(-1, Kind::Float)).sum_dim_intlist(-1, false, Kind::Float).mean(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_cross_entropy_is_cross_entropy_for_one_hot_targets_and_weighs_mixed_ones() {
        let logits = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 0.3, 0.2, -0.1]).view([2, 3]);
        let classes = Tensor::from_slice(&[2i64, 0]);
        let hard = cross_entropy(&logits, &classes).double_value(&[]);
        let soft = soft_cross_entropy(&logits, &classes.one_hot(3).to_kind(Kind::Float)).double_value(&[]);
        assert!((hard - soft).abs() < 1e-6, "{hard} vs {soft}");
        // Equal logits give ln 2 against any mix of the two classes.
        let mixed = soft_cross_entropy(
            &Tensor::zeros([1, 2], (Kind::Float, tch::Device::Cpu)),
            &Tensor::from_slice(&[0.3f32, 0.7]).view([1, 2]),
        );
        assert!((mixed.double_value(&[]) - 2f64.ln()).abs() < 1e-6);
    }
}
