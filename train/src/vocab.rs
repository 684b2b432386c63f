//! A WordPiece vocabulary built from the training texts for `fit --scratch`
//! and `pretrain`.
//!
//! Texts go through BERT's own normalizer and pre-tokenizer (lower-casing,
//! one token per CJK character, punctuation split off), so the vocabulary
//! matches how `BertTokenizer` will cut them. It holds the special tokens,
//! every character seen at least `min_count` times (also as a `##` piece, so
//! any word of known characters can be spelled out), and the most frequent
//! whole non-CJK words.
//!
//! With `cjk_pieces > 0` CJK runs are not split into characters
//! (`tokenize_chinese_chars: false`); the vocabulary is then learnt by
//! WordPiece training (tokenizers' trainer): every character, as a word start
//! and as a `##` continuation, plus that many merged multi-character pieces,
//! so frequent words such as 不错 or 失望 become one token.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{
    AddedToken, Model, NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
    Trainer,
};

use crate::error::{Result, TrainError};

pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct VocabOptions {
    /// Characters and words seen fewer times are left out (they become pieces or `[UNK]`).
    pub min_count: usize,
    /// At most this many whole words beside the characters.
    pub max_words: usize,
    /// Learn this many multi-character pieces, keeping CJK runs whole (0: one token per CJK character).
    pub cjk_pieces: usize,
}

impl Default for VocabOptions {
    fn default() -> Self {
        Self { min_count: 2, max_words: 2000, cjk_pieces: 0 }
    }
}

/// Words as BERT's normalizer and pre-tokenizer cut them (lower-cased), CJK
/// characters one per word with `split_cjk`.
pub fn bert_words(text: &str, split_cjk: bool) -> Result<Vec<String>> {
    let err = |e: Box<dyn std::error::Error + Send + Sync>| TrainError::Invalid(format!("tokenizing `{text}`: {e}"));
    let mut normalized = NormalizedString::from(text);
    BertNormalizer::new(true, split_cjk, None, true).normalize(&mut normalized).map_err(err)?;
    let mut pre = PreTokenizedString::from(normalized);
    BertPreTokenizer.pre_tokenize(&mut pre).map_err(err)?;
    Ok(pre
        .get_splits(OffsetReferential::Original, OffsetType::Char)
        .into_iter()
        .map(|(w, _, _)| w.to_string())
        .collect())
}

fn is_single_cjk_or_punct(word: &str) -> bool {
    word.chars().count() == 1
}

/// The vocabulary, in id order.
pub fn build_vocab<'a>(texts: impl IntoIterator<Item = &'a str>, options: VocabOptions) -> Result<Vec<String>> {
    if options.cjk_pieces > 0 {
        return train_pieces(texts, options.cjk_pieces);
    }
    let mut chars: HashMap<char, usize> = HashMap::new();
    let mut words: HashMap<String, usize> = HashMap::new();
    for text in texts {
        for word in bert_words(text, true)? {
            for c in word.chars() {
                *chars.entry(c).or_insert(0) += 1;
            }
            if !is_single_cjk_or_punct(&word) {
                *words.entry(word).or_insert(0) += 1;
            }
        }
    }
    // Sort by count, then by text, so the vocabulary is the same on every run.
    let mut chars: Vec<(char, usize)> = chars.into_iter().filter(|(_, n)| *n >= options.min_count).collect();
    chars.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut words: Vec<(String, usize)> = words.into_iter().filter(|(_, n)| *n >= options.min_count).collect();
    words.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));

    let mut vocab: Vec<String> = SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect();
    vocab.extend(chars.iter().map(|(c, _)| c.to_string()));
    // `##c` only for characters that occur inside longer (non-CJK) words.
    vocab.extend(chars.iter().filter(|(c, _)| !is_cjk(*c)).map(|(c, _)| format!("##{c}")));
    vocab.extend(words.into_iter().take(options.max_words).map(|(w, _)| w));
    Ok(vocab)
}

/// WordPiece training over whole CJK runs: the special tokens, every
/// character (also as a `##` continuation where seen after a word's start), then
/// `pieces` merges seen at least twice. Not deterministic: the trainer breaks
/// ties between equally frequent pairs by hash-map order, so runs differ in the
/// order of the `##` characters and in a few tied pieces.
fn train_pieces<'a>(texts: impl IntoIterator<Item = &'a str>, pieces: usize) -> Result<Vec<String>> {
    let mut words = Vec::new();
    for text in texts {
        words.extend(bert_words(text, false)?);
    }
    // The trainer's alphabet: every character, and `##c` for each seen after a word's start.
    let mut alphabet: std::collections::HashSet<String> = std::collections::HashSet::new();
    for word in &words {
        for (i, c) in word.chars().enumerate() {
            alphabet.insert(c.to_string());
            if i > 0 {
                alphabet.insert(format!("##{c}"));
            }
        }
    }
    let mut trainer = WordPieceTrainer::builder()
        .vocab_size(SPECIAL_TOKENS.len() + alphabet.len() + pieces)
        .min_frequency(2)
        .special_tokens(SPECIAL_TOKENS.iter().map(|t| AddedToken::from(*t, true)).collect())
        .show_progress(false)
        .build();
    let err =
        |e: Box<dyn std::error::Error + Send + Sync>| TrainError::Invalid(format!("training the vocabulary: {e}"));
    // The words are already cut; the trainer takes each as it is.
    trainer.feed(words.iter(), |word| Ok(vec![word.to_string()])).map_err(err)?;
    let mut model = WordPiece::default();
    trainer.train(&mut model).map_err(err)?;
    let mut vocab: Vec<(String, u32)> = model.get_vocab().into_iter().collect();
    vocab.sort_by_key(|(_, id)| *id);
    Ok(vocab.into_iter().map(|(token, _)| token).collect())
}

/// The CJK ranges BERT splits one character per token (`_is_chinese_char`).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

pub fn write_vocab(path: &Path, vocab: &[String]) -> Result<()> {
    let mut text = String::new();
    for token in vocab {
        text.push_str(token);
        text.push('\n');
    }
    let mut file = std::fs::File::create(path).map_err(TrainError::io(path))?;
    file.write_all(text.as_bytes()).map_err(TrainError::io(path))
}

/// `tokenizer_config.json` as `BertTokenizer(Fast)` expects it.
pub fn tokenizer_config(max_len: usize, lowercase: bool, split_cjk: bool) -> serde_json::Value {
    serde_json::json!({
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": lowercase,
        "tokenize_chinese_chars": split_cjk,
        "strip_accents": null,
        "model_max_length": max_len,
        "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]",
    })
}
