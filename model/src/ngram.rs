//! The n-gram head (`fit --ngram-head`): a linear model over TF-IDF weights of
//! the character 1-3-grams of a text, whose logits are mixed into the
//! encoder's. On small data sets such a model knows things a BERT trained on
//! them does not, and the mix beats both (docs/training.md). It reads the
//! characters back from the token ids the encoder reads (each token's text),
//! so serving needs nothing but the padded batch, and whole-word tokens do not
//! hide the characters inside them.
//!
//! Stored beside the weights as `ngram_head.safetensors` (transformers ignores
//! the file; docs/training.md shows where the Python that applies it is).

use std::collections::HashMap;
use std::path::Path;

use tch::{Kind, Tensor};

use crate::error::{ModelError, Result};
use crate::tokenize::TextEncoder;

pub const NGRAM_HEAD_FILE: &str = "ngram_head.safetensors";

/// Bits per character in an n-gram's key: three fit in an i64.
const UNIT_BITS: u32 = 21;
/// Special tokens (`[CLS]`, `[SEP]`, `[UNK]`, ...) are one unit each, past Unicode.
const SPECIAL_UNITS: u32 = 0x11_0000;
/// Token ids must be below this for their special unit to fit in `UNIT_BITS`.
pub const MAX_ID: i64 = (1 << UNIT_BITS) - SPECIAL_UNITS as i64;

/// Each token id's characters: its text without the `##` of a continuation
/// piece; a special token (`[...]`) is one unit of its own.
fn token_units(encoder: &TextEncoder) -> Vec<Vec<u32>> {
    let tokenizer = encoder.tokenizer();
    (0..encoder.vocab_size() as u32)
        .map(|id| {
            let token = tokenizer.id_to_token(id).unwrap_or_default();
            if token.len() > 2 && token.starts_with('[') && token.ends_with(']') {
                vec![SPECIAL_UNITS + id]
            } else {
                token.strip_prefix("##").unwrap_or(&token).chars().map(u32::from).collect()
            }
        })
        .collect()
}

/// The character 1-, 2- and 3-grams of a token sequence and their counts,
/// each packed into one `u64` (the units, 21 bits each; no unit is 0, so
/// n-grams of different lengths never share a key).
fn ngram_counts(ids: &[i64], units: &[Vec<u32>]) -> HashMap<u64, u32> {
    let chars: Vec<u32> = ids
        .iter()
        .flat_map(|&id| usize::try_from(id).ok().and_then(|i| units.get(i)).into_iter().flatten())
        .copied()
        .collect();
    let mut counts = HashMap::new();
    for n in 1..=3 {
        for gram in chars.windows(n) {
            let key = gram.iter().fold(0u64, |key, &unit| key << UNIT_BITS | u64::from(unit));
            *counts.entry(key).or_insert(0) += 1;
        }
    }
    counts
}

/// The columns: n-grams found in at least two training texts, with their
/// smoothed idf. A text's row is its sublinear tf x idf, L2-normalised
/// (scikit-learn's `TfidfVectorizer(analyzer="char", ngram_range=(1, 3),
/// sublinear_tf=True, min_df=2)`, on the text as the tokenizer normalised it).
#[derive(Debug, Clone)]
pub struct NgramFeatures {
    units: Vec<Vec<u32>>,
    columns: HashMap<u64, usize>,
    idf: Vec<f32>,
}

impl NgramFeatures {
    /// The columns of `sequences` (token ids from `encoder`, [CLS] and [SEP] included).
    pub fn fit(sequences: &[Vec<i64>], encoder: &TextEncoder) -> Self {
        let units = token_units(encoder);
        let mut df: HashMap<u64, usize> = HashMap::new();
        for key in sequences.iter().flat_map(|s| ngram_counts(s, &units).into_keys()) {
            *df.entry(key).or_insert(0) += 1;
        }
        let mut kept: Vec<(u64, usize)> = df.into_iter().filter(|&(_, n)| n >= 2).collect();
        kept.sort_unstable();
        let n = sequences.len() as f64;
        let idf = kept.iter().map(|&(_, df)| (((1.0 + n) / (1.0 + df as f64)).ln() + 1.0) as f32).collect();
        Self { units, columns: kept.iter().enumerate().map(|(i, &(key, _))| (key, i)).collect(), idf }
    }

    pub fn len(&self) -> usize {
        self.idf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.idf.is_empty()
    }

    /// One text's sparse row: `(column, weight)` sorted by column.
    pub fn row(&self, ids: &[i64]) -> Vec<(usize, f32)> {
        let mut row: Vec<(usize, f32)> = ngram_counts(ids, &self.units)
            .into_iter()
            .filter_map(|(key, tf)| self.columns.get(&key).map(|&i| (i, (1.0 + (tf as f32).ln()) * self.idf[i])))
            .collect();
        row.sort_unstable_by_key(|&(i, _)| i);
        let norm = row.iter().map(|&(_, w)| w * w).sum::<f32>().sqrt().max(1e-12);
        row.into_iter().map(|(i, w)| (i, w / norm)).collect()
    }
}

/// The logits of the linear model `weights` (`[columns x classes]` row-major, then `classes` biases) on one row.
pub fn linear_logits(row: &[(usize, f32)], weights: &[f32], classes: usize) -> Vec<f32> {
    let mut logits = weights[weights.len() - classes..].to_vec();
    for &(i, x) in row {
        for (logit, w) in logits.iter_mut().zip(&weights[i * classes..(i + 1) * classes]) {
            *logit += w * x;
        }
    }
    logits
}

/// The fitted head: served logits are `(1 - share) x encoder + share x head`
/// (a weighted geometric mean of the two models' probabilities).
#[derive(Debug, Clone)]
pub struct NgramHead {
    pub features: NgramFeatures,
    /// As [`linear_logits`] takes them.
    pub weights: Vec<f32>,
    pub classes: usize,
    pub share: f32,
}

impl NgramHead {
    /// Mixes the head into `logits` (`[rows, classes]`, f32 on the CPU) of the
    /// padded rows `ids` (`rows x seq_len`, padding where `mask` is 0).
    pub fn mix(&self, logits: &Tensor, ids: &[i64], mask: &[i64], seq_len: usize) -> Result<Tensor> {
        let mut head = Vec::with_capacity(ids.len() / seq_len.max(1) * self.classes);
        for (row, row_mask) in ids.chunks(seq_len.max(1)).zip(mask.chunks(seq_len.max(1))) {
            let length = row_mask.iter().filter(|&&m| m != 0).count();
            head.extend(linear_logits(&self.features.row(&row[..length]), &self.weights, self.classes));
        }
        let rows = (head.len() / self.classes) as i64;
        let head = Tensor::from_slice(&head).view([rows, self.classes as i64]);
        let share = f64::from(self.share);
        logits.f_mul_scalar(1.0 - share).and_then(|l| l.f_add(&(head * share))).map_err(ModelError::torch)
    }

    /// `keys` (i64, the packed n-grams), `idf`, `weight` `[columns, classes]`, `bias` and `share`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut by_column: Vec<(u64, usize)> = self.features.columns.iter().map(|(&k, &i)| (k, i)).collect();
        by_column.sort_unstable_by_key(|&(_, i)| i);
        let keys: Vec<i64> = by_column.iter().map(|&(k, _)| k as i64).collect();
        let columns = self.features.len();
        let split = columns * self.classes;
        let tensors = [
            ("keys", Tensor::from_slice(&keys)),
            ("idf", Tensor::from_slice(&self.features.idf)),
            ("weight", Tensor::from_slice(&self.weights[..split]).view([columns as i64, self.classes as i64])),
            ("bias", Tensor::from_slice(&self.weights[split..])),
            ("share", Tensor::from_slice(&[self.share])),
        ];
        Tensor::write_safetensors(&tensors, path).map_err(ModelError::torch)
    }

    /// The head of `path`, for the token ids of `encoder` (the directory's tokenizer).
    pub fn load(path: &Path, encoder: &TextEncoder) -> Result<Self> {
        let bad = |message: String| ModelError::BadFile { path: path.into(), message };
        let tensors: HashMap<String, Tensor> =
            Tensor::read_safetensors(path).map_err(|e| bad(e.to_string()))?.into_iter().collect();
        let get = |name: &str, kind: Kind| {
            tensors.get(name).ok_or_else(|| bad(format!("no tensor {name:?}"))).and_then(|t| {
                (t.kind() == kind).then(|| t.view(-1)).ok_or_else(|| bad(format!("{name:?} is not {kind:?}")))
            })
        };
        let keys = Vec::<i64>::try_from(get("keys", Kind::Int64)?).map_err(ModelError::torch)?;
        let idf = Vec::<f32>::try_from(get("idf", Kind::Float)?).map_err(ModelError::torch)?;
        let mut weights = Vec::<f32>::try_from(get("weight", Kind::Float)?).map_err(ModelError::torch)?;
        let bias = Vec::<f32>::try_from(get("bias", Kind::Float)?).map_err(ModelError::torch)?;
        let share = Vec::<f32>::try_from(get("share", Kind::Float)?).map_err(ModelError::torch)?;
        let classes = bias.len();
        if keys.len() != idf.len() || weights.len() != keys.len() * classes || share.len() != 1 {
            return Err(bad("keys, idf, weight and bias do not agree in size".into()));
        }
        weights.extend(bias);
        let columns = keys.iter().enumerate().map(|(i, &k)| (k as u64, i)).collect();
        let features = NgramFeatures { units: token_units(encoder), columns, idf };
        Ok(Self { features, weights, classes, share: share[0] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An encoder whose vocabulary is `tokens`, id = position.
    fn encoder(tokens: &[&str]) -> TextEncoder {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("vocab.txt");
        std::fs::write(&path, tokens.join("\n") + "\n").expect("vocab");
        TextEncoder::from_vocab(&path, true, true, 16).expect("encoder")
    }

    #[test]
    fn rows_are_normalised_character_ngrams_seen_twice_whatever_the_pieces() {
        let e = encoder(&["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "go", "##od", "bad"]);
        let (cls, sep) = (2, 3);
        let x = NgramFeatures::fit(&[vec![cls, 4, sep], vec![cls, 5, 6, sep], vec![cls, 7, sep]], &e);
        // "good" as one token and as "go" + "##od" are the same characters: every
        // n-gram of [CLS] g o o d [SEP] is in two texts (14 distinct); of
        // [CLS] b a d [SEP], only [CLS], d, [SEP] and "d [SEP]" are.
        assert_eq!(x.len(), 14);
        assert_eq!(x.row(&[cls, 4, sep]), x.row(&[cls, 5, 6, sep]));
        assert_eq!(x.row(&[cls, 7, sep]).len(), 4);
        let norm: f32 = x.row(&[cls, 4, 4, sep]).iter().map(|&(_, w)| w * w).sum();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }

    #[test]
    fn the_head_mixes_into_the_logits_of_the_unpadded_tokens_and_survives_a_round_trip() {
        let e = encoder(&["[PAD]", "a", "b", "c", "[UNK]", "[CLS]", "[SEP]"]);
        let features = NgramFeatures::fit(&[vec![1, 2], vec![1, 2], vec![3]], &e);
        // Columns: a, b, ab. Class 1 gets +3 per unit of each column's weight.
        let weights = vec![0.0, 3.0, 0.0, 3.0, 0.0, 3.0, 0.5, -0.5];
        let head = NgramHead { features, weights, classes: 2, share: 0.25 };
        let dir = tempfile::tempdir().expect("temp dir");
        head.save(&dir.path().join(NGRAM_HEAD_FILE)).expect("save");
        let head = NgramHead::load(&dir.path().join(NGRAM_HEAD_FILE), &e).expect("load");
        let logits = Tensor::from_slice(&[1.0f32, 1.0, 2.0, 0.0]).view([2, 2]);
        // Row 0 is [a, b] (the padding ignored), row 1 is [c]: no known n-gram.
        let mixed = head.mix(&logits, &[1, 2, 0, 3, 0, 0], &[1, 1, 0, 1, 0, 0], 3).expect("mix");
        let mixed = Vec::<f32>::try_from(mixed.view(-1)).expect("values");
        // Each of the three weights is 1/sqrt(3) after normalisation (equal idf, tf 1).
        let class1 = 0.75 + 0.25 * (-0.5 + 3.0 * 3.0 / 3f32.sqrt());
        let expected = [0.75 + 0.25 * 0.5, class1, 1.5 + 0.25 * 0.5, 0.25 * -0.5];
        for (m, e) in mixed.iter().zip(expected) {
            assert!((m - e).abs() < 1e-5, "{mixed:?} vs {expected:?}");
        }
    }

    #[test]
    fn a_head_file_with_missing_tensors_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(NGRAM_HEAD_FILE);
        Tensor::write_safetensors(&[("keys", Tensor::from_slice(&[1i64]))], &path).expect("write");
        let e = encoder(&["[PAD]", "[UNK]", "[CLS]", "[SEP]"]);
        let err = NgramHead::load(&path, &e).expect_err("refused").to_string();
        assert!(err.contains("idf"), "{err}");
    }
}
