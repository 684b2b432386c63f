//! `pretrain`'s targets: BERT's masking recipe, and each text's bag of words.

use model::tokenize::{EncodedBatch, TextEncoder};

use crate::data::SplitMix64;
use crate::error::{Result, TrainError};

/// Which tokens a masked-LM step predicts, and the inputs it sees instead.
#[derive(Debug, Clone, PartialEq)]
pub struct Masked {
    /// The batch's ids with the picked tokens replaced, `[rows * seq_len]`.
    pub inputs: Vec<i64>,
    /// Flat positions of the picked tokens, and their original ids.
    pub positions: Vec<i64>,
    pub targets: Vec<i64>,
}

/// The ids masking needs from a vocabulary.
#[derive(Debug, Clone)]
pub struct MaskIds {
    /// Never picked: `[CLS]`, `[SEP]`, `[PAD]`.
    pub special: Vec<i64>,
    pub mask: i64,
    /// Random replacements are drawn from `first_word..vocab`, past every special token.
    pub first_word: i64,
    pub vocab: i64,
}

impl MaskIds {
    pub fn of(encoder: &TextEncoder) -> Result<Self> {
        let id = |token: &str| {
            encoder
                .tokenizer()
                .token_to_id(token)
                .map(i64::from)
                .ok_or_else(|| TrainError::Invalid(format!("the vocabulary has no {token}")))
        };
        let (cls, sep, mask, unk) = (id("[CLS]")?, id("[SEP]")?, id("[MASK]")?, id("[UNK]")?);
        let pad = encoder.pad_id();
        let first_word = [cls, sep, mask, unk, pad].into_iter().max().unwrap_or(0) + 1;
        let vocab = encoder.vocab_size() as i64;
        if first_word >= vocab {
            return Err(TrainError::Invalid("the vocabulary has no words after its special tokens".into()));
        }
        Ok(Self { special: vec![cls, sep, pad], mask, first_word, vocab })
    }
}

/// BERT's recipe: each real token (not `[CLS]`, `[SEP]`, padding) is picked
/// with probability `prob`, at least one per batch; a picked token becomes
/// `[MASK]` 80% of the time, a random word 10%, and stays 10%.
pub fn mask_tokens(batch: &EncodedBatch, ids: &MaskIds, prob: f64, rng: &mut SplitMix64) -> Masked {
    let mut uniform = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let mut masked = Masked { inputs: batch.ids.clone(), positions: Vec::new(), targets: Vec::new() };
    let candidates: Vec<usize> = (0..batch.ids.len()).filter(|&i| !ids.special.contains(&batch.ids[i])).collect();
    for &i in &candidates {
        if uniform() < prob {
            masked.positions.push(i as i64);
        }
    }
    if masked.positions.is_empty() {
        if let Some(&i) = candidates.first() {
            masked.positions.push(i as i64);
        }
    }
    for &i in &masked.positions {
        let i = i as usize;
        masked.targets.push(batch.ids[i]);
        let roll = uniform();
        if roll < 0.8 {
            masked.inputs[i] = ids.mask;
        } else if roll < 0.9 {
            masked.inputs[i] = ids.first_word + (uniform() * (ids.vocab - ids.first_word) as f64) as i64;
        }
    }
    masked
}

/// Each row's real tokens (not `[CLS]`, `[SEP]`, padding) as a distribution
/// over the vocabulary, `[rows * vocab]` row-major: the target of the
/// bag-of-words objective, which teaches `[CLS]` what a whole text holds.
pub fn bag_of_words(batch: &EncodedBatch, ids: &MaskIds) -> Vec<f32> {
    let vocab = ids.vocab as usize;
    let mut bags = vec![0f32; batch.rows * vocab];
    for (row, tokens) in batch.ids.chunks(batch.seq_len).enumerate() {
        let words: Vec<usize> = tokens.iter().filter(|t| !ids.special.contains(t)).map(|&t| t as usize).collect();
        for &w in &words {
            bags[row * vocab + w] += 1.0 / words.len() as f32;
        }
    }
    bags
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `--scratch` vocabulary's layout: [PAD] [UNK] [CLS] [SEP] [MASK], then 95 words.
    fn scratch_ids() -> MaskIds {
        MaskIds { special: vec![2, 3, 0], mask: 4, first_word: 5, vocab: 100 }
    }

    #[test]
    fn masks_only_real_tokens_in_bert_proportions() {
        // [CLS]=2 a.. [SEP]=3, then padding 0.
        let mut ids = Vec::new();
        for _ in 0..200 {
            ids.extend([2, 10, 11, 12, 13, 14, 15, 16, 3, 0]);
        }
        let batch =
            EncodedBatch { rows: 200, seq_len: 10, mask: ids.iter().map(|&i| i64::from(i != 0)).collect(), ids };
        let m = mask_tokens(&batch, &scratch_ids(), 0.15, &mut SplitMix64::new(1));
        assert!(
            m.positions.iter().all(|&p| ![0, 8, 9].contains(&(p % 10))),
            "special tokens and padding are never picked"
        );
        let share = m.positions.len() as f64 / 1400.0;
        assert!((0.12..0.18).contains(&share), "about 15% picked: {share}");
        let masks =
            m.positions.iter().filter(|&&p| m.inputs[p as usize] == 4).count() as f64 / m.positions.len() as f64;
        assert!((0.7..0.9).contains(&masks), "about 80% become [MASK]: {masks}");
        assert!(m.inputs.iter().all(|&i| i != 1), "no random replacement is a special token");
        for (&p, &t) in m.positions.iter().zip(&m.targets) {
            assert_eq!(batch.ids[p as usize], t);
        }
        let again = mask_tokens(&batch, &scratch_ids(), 0.15, &mut SplitMix64::new(1));
        assert_eq!(m, again, "the same seed masks the same tokens");
    }

    #[test]
    fn bags_of_words_are_each_texts_real_tokens_as_a_distribution() {
        // Two rows: [CLS] 10 11 10 [SEP], and [CLS] 12 [SEP] then padding.
        let ids = vec![2, 10, 11, 10, 3, 2, 12, 3, 0, 0];
        let batch = EncodedBatch { rows: 2, seq_len: 5, mask: ids.iter().map(|&i| i64::from(i != 0)).collect(), ids };
        let bags = bag_of_words(&batch, &scratch_ids());
        assert_eq!(bags.len(), 200);
        let (first, second) = bags.split_at(100);
        assert_eq!((first[10], first[11]), (2.0 / 3.0, 1.0 / 3.0));
        assert_eq!(second[12], 1.0);
        for bag in [first, second] {
            assert!((bag.iter().sum::<f32>() - 1.0).abs() < 1e-6);
            assert!([0, 2, 3].iter().all(|&special| bag[special] == 0.0), "specials and padding are not words");
        }
    }

    #[test]
    fn a_batch_always_has_a_target() {
        let batch = EncodedBatch { rows: 1, seq_len: 3, ids: vec![2, 10, 3], mask: vec![1, 1, 1] };
        let m = mask_tokens(&batch, &scratch_ids(), 0.0, &mut SplitMix64::new(1));
        assert_eq!((m.positions, m.targets), (vec![1], vec![10]));
    }
}
