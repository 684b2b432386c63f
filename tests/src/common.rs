//! Small things every other module uses: unique names, the repository's
//! paths, and polling until a condition holds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use model::ngram::{NgramFeatures, NgramHead, NGRAM_HEAD_FILE};
use model::{Classifier, LoadOptions};

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()));
    h.finish()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The tiny model of the parity fixture: fast enough for 10k-message tests.
pub fn tiny_model() -> PathBuf {
    repo_root().join("model/tests/fixtures/tiny-bert")
}

/// A copy of the tiny model in a fresh folder named `name` (so its model id
/// is `<name>@...`), its `config.json` edited by `edit`: same weights, other
/// labels or a broken config, for the model lifecycle's tests.
pub fn tiny_model_variant(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let dir = std::env::temp_dir().join(unique("models")).join(name);
    std::fs::create_dir_all(&dir).expect("model folder");
    for entry in std::fs::read_dir(tiny_model()).expect("tiny model") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.join(path.file_name().expect("name"))).expect("copy");
    }
    let config_path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).expect("config")).expect("JSON");
    edit(&mut config);
    std::fs::write(&config_path, config.to_string()).expect("write config");
    dir
}

/// The tiny model with its labels in reverse order: the same labels, but it
/// disagrees with the tiny model on every text it does not call `0`.
pub fn tiny_model_reversed(name: &str) -> PathBuf {
    tiny_model_variant(name, |c| {
        c["id2label"] = serde_json::json!({"0": "1", "1": "0", "2": "-1"});
        c["label2id"] = serde_json::json!({"1": 0, "0": 1, "-1": 2});
    })
}

/// The project's Python (the venv's, with torch and transformers), else `python3`.
pub fn python() -> PathBuf {
    let venv = repo_root().join(".venv/bin/python");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// The tiny model with NaN in the embedding of `token`: every text holding
/// that token gets NaN scores (fp16 overflow, as a CPU can show it).
pub fn tiny_model_with_nan_token(name: &str, token: &str) -> PathBuf {
    let dir = tiny_model_variant(name, |_| {});
    let script = r#"
import sys
from safetensors.torch import load_file, save_file
path, token = sys.argv[1], sys.argv[2]
vocab = open(path.replace("model.safetensors", "vocab.txt"), encoding="utf-8").read().splitlines()
weights = load_file(path)
weights["bert.embeddings.word_embeddings.weight"][vocab.index(token)] = float("nan")
save_file(weights, path, metadata={"format": "pt"})
"#;
    let status = std::process::Command::new(python())
        .args(["-c", script])
        .arg(dir.join("model.safetensors"))
        .arg(token)
        .status()
        .expect("python runs");
    assert!(status.success(), "writing the NaN model");
    dir
}

/// The tiny model with an n-gram head (`fit --ngram-head 0.5`) over the
/// n-grams of `texts`: each n-gram pushes one label (by its column), strongly
/// enough that the head changes some of the encoder's labels.
pub fn tiny_model_with_ngram_head(name: &str, texts: &[&str]) -> PathBuf {
    let dir = tiny_model_variant(name, |_| {});
    let classifier = Classifier::load(&dir, &LoadOptions::default()).expect("tiny model");
    let encoder = classifier.encoder();
    let features = NgramFeatures::fit(&encoder.encode_all(texts).expect("encode"), encoder);
    let classes = classifier.labels().len();
    let mut weights: Vec<f32> =
        (0..features.len() * classes).map(|i| if (i / classes) % classes == i % classes { 8.0 } else { 0.0 }).collect();
    weights.extend(vec![0.0; classes]);
    let head = NgramHead { features, weights, classes, share: 0.5 };
    head.save(&dir.join(NGRAM_HEAD_FILE)).expect("write the head");
    dir
}

/// Waits until `check` is true, polling; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
