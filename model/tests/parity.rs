//! The model crate against transformers: the fixture in `fixtures/` was written
//! by `make_parity_fixture.py` (a random tiny BertForSequenceClassification and
//! the token ids and logits transformers computed for ~30 texts).

use std::path::{Path, PathBuf};

use bertstream_model::{Classifier, ClassifierHandle, Dtype, LoadOptions, ModelDir, ModelError};
use serde_json::Value;
use tch::Kind;

const LOGIT_TOLERANCE: f64 = 1e-4;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-bert")
}

struct Case {
    text: String,
    ids: Vec<i64>,
    logits: Vec<f64>,
}

fn expected() -> Vec<Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-bert-expected.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let numbers =
        |v: &Value| v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect::<Vec<_>>();
    json["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            text: c["text"].as_str().expect("text").into(),
            ids: numbers(&c["ids"]).into_iter().map(|x| x as i64).collect(),
            logits: numbers(&c["logits"]),
        })
        .collect()
}

fn load(dir: &Path) -> Classifier {
    Classifier::load(dir, &LoadOptions::default()).expect("fixture loads")
}

/// A copy of the fixture directory to break in one way.
fn copy_fixture(skip: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(fixture_dir()).expect("fixture dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if !skip.contains(&name.to_str().expect("utf-8")) {
            std::fs::copy(entry.path(), dir.path().join(&name)).expect("copy");
        }
    }
    dir
}

#[test]
fn token_ids_match_transformers_from_tokenizer_json_and_from_vocab_txt() {
    let cases = expected();
    let from_json = load(&fixture_dir());
    let vocab_only = copy_fixture(&["tokenizer.json"]);
    let from_vocab = load(vocab_only.path());
    for case in &cases {
        assert_eq!(
            from_json.encoder().encode(&case.text).expect("encode"),
            case.ids,
            "tokenizer.json: {:?}",
            case.text
        );
        assert_eq!(from_vocab.encoder().encode(&case.text).expect("encode"), case.ids, "vocab.txt: {:?}", case.text);
    }
}

#[test]
fn logits_match_transformers_in_fp32() {
    let cases = expected();
    let classifier = load(&fixture_dir());
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let batch = classifier.encoder().batch(&classifier.encoder().encode_all(&texts).expect("encode"));
    let logits = classifier.logits(&batch).expect("forward");
    assert_eq!(logits.size(), [cases.len() as i64, 3]);
    let mut worst = 0f64;
    for (row, case) in cases.iter().enumerate() {
        for (col, want) in case.logits.iter().enumerate() {
            let got = logits.double_value(&[row as i64, col as i64]);
            worst = worst.max((got - want).abs());
            assert!(
                (got - want).abs() < LOGIT_TOLERANCE,
                "{:?} logit {col}: got {got}, transformers {want}",
                case.text
            );
        }
    }
    eprintln!("largest logit difference from transformers: {worst:e}");
}

#[test]
fn a_batch_gives_each_text_what_it_gets_alone() {
    let cases = expected();
    let classifier = load(&fixture_dir());
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let together = classifier.predict(&texts).expect("batch");
    for (text, in_batch) in texts.iter().zip(&together) {
        let alone = &classifier.predict(&[text]).expect("alone")[0];
        assert_eq!(alone.label, in_batch.label, "{text:?}");
        for (a, b) in alone.scores.iter().zip(&in_batch.scores) {
            assert!((a - b).abs() < 1e-5, "{text:?}: alone {a}, in batch {b}");
        }
    }
}

#[test]
fn predictions_are_probabilities_over_the_configured_labels() {
    let classifier = load(&fixture_dir());
    assert_eq!(classifier.labels(), ["-1", "0", "1"]);
    let prediction = &classifier.predict(&["手机很好"]).expect("predict")[0];
    let sum: f32 = prediction.scores.iter().sum();
    assert!((sum - 1.0).abs() < 1e-5);
    assert_eq!(prediction.score, prediction.scores[prediction.index]);
    assert_eq!(prediction.label, classifier.labels()[prediction.index]);
    assert!(prediction.scores.iter().all(|s| *s <= prediction.score));
    assert!(classifier.predict(&[]).expect("empty").is_empty());
}

#[test]
fn the_model_thread_answers_like_the_classifier() {
    let handle = ClassifierHandle::spawn(fixture_dir(), LoadOptions::default(), Some(1)).expect("spawn");
    let direct = load(&fixture_dir()).predict(&["物流很快", "太差了"]).expect("direct");
    let encoder = handle.encoder().clone();
    let batch = encoder.batch(&encoder.encode_all(&["物流很快", "太差了"]).expect("encode"));
    let threaded = handle.predict_blocking(batch).expect("threaded");
    assert_eq!(direct, threaded);
    assert!(handle.info().model_id.starts_with("tiny-bert@"), "{}", handle.info().model_id);
    assert_eq!(handle.info().model_id.len(), "tiny-bert@".len() + 12);
}

#[test]
fn text_longer_than_the_max_is_truncated_to_it() {
    let classifier = load(&fixture_dir());
    let ids = classifier.encoder().encode(&"好".repeat(10_000)).expect("encode");
    assert_eq!(ids.len(), 32);
    assert_eq!((ids[0], ids[31]), (2, 3), "[CLS] ... [SEP] kept");
}

fn load_error(dir: &Path) -> String {
    match Classifier::load(dir, &LoadOptions::default()) {
        Ok(_) => panic!("{} should not load", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_files_are_named() {
    for (file, named) in [("config.json", "config.json"), ("model.safetensors", "model.safetensors")] {
        let dir = copy_fixture(&[file]);
        assert!(load_error(dir.path()).contains(named), "{file}");
    }
    let dir = copy_fixture(&["tokenizer.json", "vocab.txt"]);
    assert!(load_error(dir.path()).contains("tokenizer.json or vocab.txt"));
    assert!(load_error(Path::new("/nonexistent/model")).contains("/nonexistent/model"));
}

fn rewrite_weights(dir: &Path, edit: impl FnOnce(&mut Vec<(String, tch::Tensor)>)) {
    let path = dir.join("model.safetensors");
    let mut tensors = tch::Tensor::read_safetensors(&path).expect("read");
    edit(&mut tensors);
    tch::Tensor::write_safetensors(&tensors, &path).expect("write");
}

#[test]
fn a_missing_or_misshapen_tensor_is_named() {
    let missing = "bert.encoder.layer.1.attention.self.key.weight";
    let dir = copy_fixture(&[]);
    rewrite_weights(dir.path(), |t| t.retain(|(name, _)| name != missing));
    let message = load_error(dir.path());
    assert!(message.contains(missing) && message.contains("missing"), "{message}");

    let misshapen = "classifier.weight";
    let dir = copy_fixture(&[]);
    rewrite_weights(dir.path(), |t| {
        for (name, tensor) in t.iter_mut() {
            if name == misshapen {
                *tensor = tch::Tensor::zeros([4, 32], (Kind::Float, tch::Device::Cpu));
            }
        }
    });
    let message = load_error(dir.path());
    assert!(message.contains(misshapen) && message.contains("[4, 32]") && message.contains("[3, 32]"), "{message}");
}

#[test]
fn an_unknown_activation_is_named() {
    let dir = copy_fixture(&[]);
    let path = dir.path().join("config.json");
    let config = std::fs::read_to_string(&path).expect("config").replace("\"gelu\"", "\"mish\"");
    std::fs::write(&path, config).expect("write");
    assert!(matches!(ModelDir::open(dir.path()), Err(ModelError::UnknownActivation(a)) if a == "mish"));
    assert!(load_error(dir.path()).contains("mish"));
}

#[test]
fn devices_parse_and_fp16_needs_cuda() {
    use bertstream_model::DeviceSpec;
    assert_eq!("auto".parse::<DeviceSpec>().expect("auto"), DeviceSpec::Auto);
    assert_eq!("cuda:1".parse::<DeviceSpec>().expect("cuda:1"), DeviceSpec::Cuda(1));
    assert!("tpu".parse::<DeviceSpec>().is_err());
    let options = LoadOptions { device: "cpu".parse().expect("cpu"), dtype: Dtype::Fp16, max_seq_len: None };
    assert!(matches!(Classifier::load(fixture_dir(), &options), Err(ModelError::HalfOnCpu)));
    assert_eq!("BF16".parse::<Dtype>().expect("bf16"), Dtype::Bf16);
    assert!("int8".parse::<Dtype>().is_err());
}

#[test]
fn bf16_on_cpu_gives_the_fp32_probabilities_within_a_hundredth() {
    let cases = expected();
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    let fp32 = load(&fixture_dir()).predict(&texts).expect("fp32");
    let options = LoadOptions { device: "cpu".parse().expect("cpu"), dtype: Dtype::Bf16, max_seq_len: None };
    let bf16 = Classifier::load(fixture_dir(), &options).expect("bf16 loads").predict(&texts).expect("bf16");
    let worst = fp32
        .iter()
        .zip(&bf16)
        .flat_map(|(a, b)| a.scores.iter().zip(&b.scores).map(|(x, y)| (x - y).abs()))
        .fold(0f32, f32::max);
    eprintln!("largest probability difference bf16 vs fp32: {worst:e}");
    assert!(worst < 1e-2, "bf16 differs from fp32 by {worst}");
}
