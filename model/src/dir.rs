//! The model directory (DESIGN.md, "Model directory"): `config.json`,
//! `model.safetensors` with HF parameter names, `tokenizer.json` and/or
//! `vocab.txt`, `bertstream.json`, and the optional `ngram_head.safetensors`
//! ([`crate::ngram`]). Loadable by transformers too.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::nn::VarStore;
use tch::{Kind, Tensor};

use crate::config::BertConfig;
use crate::error::{ModelError, Result};
use crate::ngram::NGRAM_HEAD_FILE;
use crate::tokenize::TextEncoder;

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const VOCAB_FILE: &str = "vocab.txt";
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
pub const META_FILE: &str = "bertstream.json";

/// BERT's own limit when nothing else says otherwise.
const DEFAULT_MAX_SEQ_LEN: usize = 512;

/// `bertstream.json`: what bertstream adds to an HF directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub max_seq_len: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// An opened, checked model directory.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub path: PathBuf,
    pub config: BertConfig,
    pub meta: Option<Meta>,
}

impl ModelDir {
    /// Opens a directory: the config must parse and the weights and a tokenizer must be there.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if !path.is_dir() {
            return Err(ModelError::MissingFile { dir: path, what: "the directory itself".into() });
        }
        let missing = |what: &str| ModelError::MissingFile { dir: path.clone(), what: what.into() };
        let config_path = path.join(CONFIG_FILE);
        if !config_path.is_file() {
            return Err(missing(CONFIG_FILE));
        }
        if !path.join(WEIGHTS_FILE).is_file() {
            return Err(missing(WEIGHTS_FILE));
        }
        if !path.join(TOKENIZER_FILE).is_file() && !path.join(VOCAB_FILE).is_file() {
            return Err(missing(&format!("{TOKENIZER_FILE} or {VOCAB_FILE}")));
        }
        let config = BertConfig::from_file(&config_path)?;
        let meta_path = path.join(META_FILE);
        let meta = if meta_path.is_file() {
            let text = std::fs::read_to_string(&meta_path).map_err(ModelError::io(&meta_path))?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| ModelError::BadFile { path: meta_path, message: e.to_string() })?,
            )
        } else {
            None
        };
        Ok(Self { path, config, meta })
    }

    pub fn weights_path(&self) -> PathBuf {
        self.path.join(WEIGHTS_FILE)
    }

    /// The longest input, in tokens: `bertstream.json`, else BERT's 512, never past the position table.
    pub fn max_seq_len(&self) -> usize {
        let positions = usize::try_from(self.config.max_position_embeddings).unwrap_or(DEFAULT_MAX_SEQ_LEN);
        self.meta.as_ref().map_or(DEFAULT_MAX_SEQ_LEN, |m| m.max_seq_len).min(positions)
    }

    /// The n-gram head's file, when the directory has one.
    pub fn ngram_head_path(&self) -> Option<PathBuf> {
        Some(self.path.join(NGRAM_HEAD_FILE)).filter(|p| p.is_file())
    }

    /// `<dir name>@<first 12 hex of sha256(model.safetensors, then the n-gram head if any)>`.
    pub fn model_id(&self) -> Result<String> {
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        for path in std::iter::once(self.weights_path()).chain(self.ngram_head_path()) {
            let mut file = std::fs::File::open(&path).map_err(ModelError::io(&path))?;
            loop {
                let n = file.read(&mut buffer).map_err(ModelError::io(&path))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
            }
        }
        let digest = hasher.finalize();
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        let canonical = self.path.canonicalize().unwrap_or_else(|_| self.path.clone());
        let name = canonical.file_name().map_or("model".into(), |n| n.to_string_lossy());
        Ok(format!("{name}@{hex}"))
    }

    /// The tokenizer: `tokenizer.json` if present, else `vocab.txt` (lower-casing
    /// and CJK splitting from `tokenizer_config.json`, BERT's default `true` for both).
    pub fn encoder(&self, max_len: usize) -> Result<TextEncoder> {
        let json = self.path.join(TOKENIZER_FILE);
        if json.is_file() {
            return TextEncoder::from_tokenizer_json(&json, max_len);
        }
        let lowercase = self.tokenizer_flag("do_lower_case")?;
        let split_cjk = self.tokenizer_flag("tokenize_chinese_chars")?;
        TextEncoder::from_vocab(&self.path.join(VOCAB_FILE), lowercase, split_cjk, max_len)
    }

    /// A boolean of `tokenizer_config.json`, `true` when absent.
    fn tokenizer_flag(&self, key: &str) -> Result<bool> {
        let path = self.path.join(TOKENIZER_CONFIG_FILE);
        if !path.is_file() {
            return Ok(true);
        }
        let text = std::fs::read_to_string(&path).map_err(ModelError::io(&path))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ModelError::BadFile { path, message: e.to_string() })?;
        Ok(value.get(key).and_then(serde_json::Value::as_bool).unwrap_or(true))
    }
}

/// Copies the tensors of a safetensors file into the variables of `vs`, by HF
/// name. Also accepted: checkpoints of a bare `BertModel` (no `bert.` prefix)
/// and the old `gamma`/`beta` LayerNorm names. A variable whose name starts
/// with one of `optional` may be absent (it keeps its initial value, e.g. a new
/// classifier head); its name is returned. Any other absent variable, or a
/// shape that differs, is an error that names the tensor.
pub fn load_weights(vs: &mut VarStore, file: &Path, optional: &[&str]) -> Result<Vec<String>> {
    let read = Tensor::read_safetensors(file).map_err(ModelError::torch)?;
    let tensors: HashMap<String, Tensor> = read.into_iter().collect();
    let mut left_at_init = Vec::new();
    let _guard = tch::no_grad_guard();
    let mut variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, mut var) in variables {
        let Some(source) = candidate_names(&name).iter().find_map(|n| tensors.get(n)) else {
            if optional.iter().any(|prefix| name.starts_with(prefix)) {
                left_at_init.push(name);
                continue;
            }
            return Err(ModelError::MissingTensor { file: file.into(), name });
        };
        if source.size() != var.size() {
            return Err(ModelError::ShapeMismatch {
                file: file.into(),
                name,
                expected: var.size(),
                found: source.size(),
            });
        }
        var.f_copy_(&source.to_kind(var.kind())).map_err(ModelError::torch)?;
    }
    Ok(left_at_init)
}

fn candidate_names(name: &str) -> Vec<String> {
    let mut names = vec![name.to_string()];
    if let Some(bare) = name.strip_prefix("bert.") {
        names.push(bare.to_string());
    }
    for n in names.clone() {
        if let Some(stem) = n.strip_suffix("LayerNorm.weight") {
            names.push(format!("{stem}LayerNorm.gamma"));
        } else if let Some(stem) = n.strip_suffix("LayerNorm.bias") {
            names.push(format!("{stem}LayerNorm.beta"));
        }
    }
    names
}

/// A tensor's f32 bytes, as safetensors wants them.
struct F32Bytes {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl safetensors::View for &F32Bytes {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Writes every variable of `vs` as f32 under its HF name, with the
/// `{"format": "pt"}` metadata that transformers checks for.
pub fn save_weights(vs: &VarStore, file: &Path) -> Result<()> {
    let mut tensors = Vec::new();
    for (name, tensor) in vs.variables() {
        let flat = tensor.detach().to_kind(Kind::Float).to_device(tch::Device::Cpu).contiguous().view(-1);
        let values = Vec::<f32>::try_from(&flat).map_err(ModelError::torch)?;
        let shape = tensor.size().iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect();
        tensors.push((name, F32Bytes { shape, bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect() }));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata), file)
        .map_err(|e| ModelError::BadFile { path: file.into(), message: e.to_string() })
}
