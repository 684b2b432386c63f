//! Tokenization as BERT does it, with the `tokenizers` crate: the BERT
//! normalizer (clean text, one token per CJK character, lower-casing as
//! configured), WordPiece, `[CLS] ... [SEP]`, truncation to the max length.

use std::path::Path;

use tch::{Device, Tensor};
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{Model as _, Tokenizer, TruncationParams};

use crate::error::{ModelError, Result};

/// Turns texts into token ids. Cheap to share (`Arc`) and safe to call from
/// any thread, so tokenizing the next batch can overlap the model.
#[derive(Clone)]
pub struct TextEncoder {
    tokenizer: Tokenizer,
    max_len: usize,
    pad_id: i64,
    fingerprint: u64,
}

/// How much of a text [`TextEncoder::encode`] reads, per token it keeps.
pub const CHARS_PER_TOKEN: usize = 32;

fn tok_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

impl TextEncoder {
    /// From an HF `tokenizer.json`.
    pub fn from_tokenizer_json(path: &Path, max_len: usize) -> Result<Self> {
        let tokenizer = Tokenizer::from_file(path)
            .map_err(|e| ModelError::BadFile { path: path.into(), message: e.to_string() })?;
        Self::new(tokenizer, max_len)
    }

    /// From a WordPiece `vocab.txt`, built the way `BertTokenizerFast` builds it
    /// (`split_cjk` is its `tokenize_chinese_chars`).
    pub fn from_vocab(path: &Path, lowercase: bool, split_cjk: bool, max_len: usize) -> Result<Self> {
        let path_str = path.to_str().ok_or_else(|| tok_err("vocab path is not UTF-8"))?;
        let model = WordPiece::from_file(path_str)
            .unk_token("[UNK]".into())
            .build()
            .map_err(|e| ModelError::BadFile { path: path.into(), message: e.to_string() })?;
        let id = |token: &str| {
            model.token_to_id(token).ok_or_else(|| ModelError::BadFile {
                path: path.into(),
                message: format!("vocabulary has no `{token}` token"),
            })
        };
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        id("[PAD]")?;
        let mut tokenizer = Tokenizer::new(model);
        tokenizer
            .with_normalizer(Some(BertNormalizer::new(true, split_cjk, None, lowercase)))
            .with_pre_tokenizer(Some(BertPreTokenizer))
            .with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))))
            .with_decoder(Some(WordPieceDecoder::default()));
        Self::new(tokenizer, max_len)
    }

    fn new(mut tokenizer: Tokenizer, max_len: usize) -> Result<Self> {
        if max_len < 3 {
            return Err(tok_err(format!("max sequence length {max_len} leaves no room for text")));
        }
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_len, ..Default::default() }))
            .map_err(tok_err)?
            .with_padding(None);
        let pad_id = tokenizer.token_to_id("[PAD]").ok_or_else(|| tok_err("vocabulary has no [PAD] token"))?;
        let fingerprint = fingerprint(&tokenizer.to_string(false).map_err(tok_err)?, max_len);
        Ok(Self { tokenizer, max_len, pad_id: pad_id.into(), fingerprint })
    }

    /// Equal for two encoders that turn every text into the same ids (same
    /// tokenizer, same max length): ids made by one can go to the other's model.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    pub fn pad_id(&self) -> i64 {
        self.pad_id
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// `(lowercase, split_cjk)` of a BERT normalizer; BERT's defaults for any other.
    pub fn bert_flags(&self) -> (bool, bool) {
        match self.tokenizer.get_normalizer() {
            Some(NormalizerWrapper::BertNormalizer(n)) => (n.lowercase, n.handle_chinese_chars),
            _ => (true, true),
        }
    }

    /// Token ids of one text, `[CLS]` and `[SEP]` included, truncated to the
    /// max length. Only the text's first [`CHARS_PER_TOKEN`] × max length
    /// characters are read: a 1 MiB text costs no more than its head (every
    /// token but padding holds at least one character, so the kept tokens
    /// are those of the whole text unless it pads them with long runs of spaces).
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        let head = text.char_indices().nth(self.max_len * CHARS_PER_TOKEN).map_or(text, |(cut, _)| &text[..cut]);
        let encoding = self.tokenizer.encode_fast(head, true).map_err(tok_err)?;
        Ok(encoding.get_ids().iter().map(|&id| i64::from(id)).collect())
    }

    /// Token ids of many texts, in order.
    pub fn encode_all(&self, texts: &[&str]) -> Result<Vec<Vec<i64>>> {
        texts.iter().map(|t| self.encode(t)).collect()
    }

    /// Pads token id sequences into one batch.
    pub fn batch(&self, sequences: &[Vec<i64>]) -> EncodedBatch {
        EncodedBatch::pad(sequences, self.pad_id)
    }

    /// Writes `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.tokenizer.save(path, true).map_err(tok_err)
    }
}

fn fingerprint(tokenizer_json: &str, max_len: usize) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (tokenizer_json, max_len).hash(&mut hasher);
    hasher.finish()
}

/// A padded batch: `ids` and `mask` are `rows x seq_len`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedBatch {
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
    pub rows: usize,
    pub seq_len: usize,
}

impl EncodedBatch {
    /// Pads to the longest sequence (dynamic padding).
    pub fn pad(sequences: &[Vec<i64>], pad_id: i64) -> Self {
        let rows = sequences.len();
        let seq_len = sequences.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = vec![pad_id; rows * seq_len];
        let mut mask = vec![0; rows * seq_len];
        for (row, seq) in sequences.iter().enumerate() {
            let start = row * seq_len;
            ids[start..start + seq.len()].copy_from_slice(seq);
            mask[start..start + seq.len()].fill(1);
        }
        Self { ids, mask, rows, seq_len }
    }

    /// `input_ids` and the attention mask on `device`; no mask when nothing is
    /// padded (the model then runs unmasked, decided here on the host rather
    /// than by reading the mask back from the device). For the model thread
    /// and for training: callers elsewhere hand the batch to a handle.
    pub fn to_tensors(&self, device: Device) -> (Tensor, Option<Tensor>) {
        let shape = [self.rows as i64, self.seq_len as i64];
        let ids = upload(Tensor::from_slice(&self.ids).view(shape), device);
        let mask = self.mask.contains(&0).then(|| upload(Tensor::from_slice(&self.mask).view(shape), device));
        (ids, mask)
    }

    /// Tokens in the batch once padded (the cost the model pays).
    pub fn padded_tokens(&self) -> usize {
        self.rows * self.seq_len
    }
}

/// A host tensor on `device`. To CUDA through pinned memory with a copy that
/// does not wait: the kernels that read it queue behind it on the same stream,
/// and the pinned block is not reused before the copy is done (torch's
/// caching host allocator records the copy). A plain copy if pinning fails.
pub fn upload(host: Tensor, device: Device) -> Tensor {
    if !device.is_cuda() {
        return host.to_device(device);
    }
    match host.f_internal_pin_memory(device) {
        Ok(pinned) => pinned.to_device_(device, host.kind(), true, false),
        Err(_) => host.to_device(device),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoder() -> TextEncoder {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-bert/tokenizer.json");
        TextEncoder::from_tokenizer_json(&fixture, 16).expect("fixture tokenizer")
    }

    #[test]
    fn a_huge_text_is_read_only_as_far_as_its_tokens_reach() {
        let encoder = encoder();
        let huge = "手机很好，物流很快。".repeat(200_000);
        let ids = encoder.encode(&huge).expect("encodes");
        assert_eq!(ids.len(), 16);
        let head: String = huge.chars().take(16 * CHARS_PER_TOKEN).collect();
        assert_eq!(ids, encoder.encode(&head).expect("encodes"));
        // Short texts are untouched.
        assert_eq!(encoder.encode("很好").expect("encodes").len(), 4);
    }
}
