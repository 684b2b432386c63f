//! Two AdamW steps on the tiny parity model (`model/tests/fixtures/tiny-bert`)
//! equal transformers' + torch's (`fixtures/make_train_step_fixture.py` wrote
//! the expected values): the same loss, gradient norm and parameters after the
//! steps, with dropout off.

use std::path::Path;

use bertstream_train::optim::{cross_entropy, AdamW, AdamWConfig};
use model::bert::BertForSequenceClassification;
use model::dir::{load_weights, ModelDir};
use serde_json::Value;
use tch::nn::VarStore;
use tch::{Device, Tensor};

const TOLERANCE: f64 = 1e-5;

#[test]
fn two_adamw_steps_match_torch() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("train-step-expected.json")).expect("fixture"))
            .expect("json");
    // The model crate's parity fixture: transformers wrote it, its inference tests use it too.
    let tiny_bert = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/tiny-bert");
    let dir = ModelDir::open(tiny_bert).expect("fixture model");
    let mut config = dir.config.clone();
    config.hidden_dropout_prob = 0.0;
    config.attention_probs_dropout_prob = 0.0;
    let labels = config.labels().expect("labels");
    let mut vs = VarStore::new(Device::Cpu);
    let model = BertForSequenceClassification::new(&vs.root(), &config, labels.len() as i64).expect("model");
    load_weights(&mut vs, &dir.weights_path(), &[]).expect("weights");

    let encoder = dir.encoder(32).expect("encoder");
    let batch = expected["batch"].as_array().expect("batch");
    let texts: Vec<&str> = batch.iter().map(|b| b["text"].as_str().expect("text")).collect();
    let targets: Vec<i64> = batch
        .iter()
        .map(|b| labels.iter().position(|l| l == b["label"].as_str().expect("label")).expect("known label") as i64)
        .collect();
    let encoded = encoder.batch(&encoder.encode_all(&texts).expect("encode"));
    let (ids, mask) = encoded.to_tensors(tch::Device::Cpu);
    let targets = Tensor::from_slice(&targets);

    let lr = expected["lr"].as_f64().expect("lr");
    let weight_decay = expected["weight_decay"].as_f64().expect("weight_decay");
    let max_norm = expected["max_grad_norm"].as_f64().expect("max_grad_norm");
    let mut optimizer = AdamW::new(&vs, AdamWConfig { weight_decay, ..Default::default() });
    for (i, step) in expected["steps"].as_array().expect("steps").iter().enumerate() {
        optimizer.zero_grad();
        let loss = cross_entropy(&model.forward_t(&ids, mask.as_ref(), true), &targets);
        loss.backward();
        let norm = optimizer.clip_grad_norm(max_norm);
        optimizer.step(lr);
        let (want_loss, want_norm) = (step["loss"].as_f64().expect("loss"), step["grad_norm"].as_f64().expect("norm"));
        assert!(
            (loss.double_value(&[]) - want_loss).abs() < TOLERANCE,
            "step {i}: loss {} vs {want_loss}",
            loss.double_value(&[])
        );
        assert!((norm - want_norm).abs() < 1e-4 * want_norm.max(1.0), "step {i}: grad norm {norm} vs {want_norm}");
    }

    let variables = vs.variables();
    let params = expected["params"].as_object().expect("params");
    assert_eq!(params.len(), variables.len(), "same parameter set as transformers");
    let mut worst = (0.0f64, String::new());
    for (name, want) in params {
        // The key bias adds the same score to every key of a query, which
        // softmax cancels: its true gradient is 0, and torch and we both get
        // float noise (~1e-9) there, which Adam scales up to a ±lr step of
        // arbitrary sign. Nothing to compare.
        if name.ends_with("attention.self.key.bias") {
            continue;
        }
        let tensor = variables.get(name).unwrap_or_else(|| panic!("no variable {name}"));
        let flat = Vec::<f64>::try_from(&tensor.detach().to_kind(tch::Kind::Double).view(-1)).expect("values");
        for (j, w) in want["head"].as_array().expect("head").iter().enumerate() {
            let diff = (flat[j] - w.as_f64().expect("number")).abs();
            if diff > worst.0 {
                worst = (diff, format!("{name}[{j}]"));
            }
        }
        let sum: f64 = flat.iter().sum();
        let want_sum = want["sum"].as_f64().expect("sum");
        assert!((sum - want_sum).abs() < 1e-4 * (1.0 + flat.len() as f64).sqrt(), "{name}: sum {sum} vs {want_sum}");
    }
    eprintln!("largest parameter difference from torch: {:.2e} at {}", worst.0, worst.1);
    assert!(worst.0 < TOLERANCE, "largest parameter difference {} at {}", worst.0, worst.1);
}
