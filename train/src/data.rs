//! Labelled TSV files (`label<TAB>text`, header optional, CRLF tolerated):
//! reading with errors that name file and line, de-duplication, and the
//! stratified, seeded split.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Result, TrainError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub label: String,
    pub text: String,
}

/// Reads `label<TAB>text` lines. Blank lines are skipped; a first line whose
/// label field is `label` is a header. The text is everything after the first tab.
pub fn read_tsv(path: &Path) -> Result<Vec<Example>> {
    Ok(read_tsv_lines(path)?.into_iter().map(|(_, e)| e).collect())
}

/// [`read_tsv`], each example with its line number.
pub fn read_tsv_lines(path: &Path) -> Result<Vec<(usize, Example)>> {
    let content = read_utf8(path)?;
    let mut examples = Vec::new();
    for (index, raw) in content.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw).trim_start_matches('\u{feff}');
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: &str| TrainError::BadLine { path: path.into(), line: index + 1, message: message.into() };
        let (label, text) = line.split_once('\t').ok_or_else(|| bad("expected `label<TAB>text`, found no tab"))?;
        let (label, text) = (label.trim(), text.trim());
        if examples.is_empty() && label.eq_ignore_ascii_case("label") {
            continue;
        }
        if label.is_empty() {
            return Err(bad("empty label"));
        }
        if text.is_empty() {
            return Err(bad("empty text"));
        }
        examples.push((index + 1, Example { label: label.into(), text: text.into() }));
    }
    if examples.is_empty() {
        return Err(TrainError::Empty(path.into()));
    }
    Ok(examples)
}

/// The whole file as text, without a byte-order mark; invalid UTF-8 is an error naming its line.
pub(crate) fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(TrainError::io(path))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|&&b| b == b'\n').count();
        TrainError::BadLine { path: path.into(), line, message: "not valid UTF-8".into() }
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    })
}

/// Writes `label<TAB>text` lines with a header.
pub fn write_tsv(path: &Path, examples: &[Example]) -> Result<()> {
    let file = std::fs::File::create(path).map_err(TrainError::io(path))?;
    let mut out = std::io::BufWriter::new(file);
    let mut write = || -> std::io::Result<()> {
        writeln!(out, "label\ttext")?;
        for e in examples {
            writeln!(out, "{}\t{}", e.label, e.text)?;
        }
        out.flush()
    };
    write().map_err(TrainError::io(path))
}

/// What [`dedupe`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DedupStats {
    pub rows_read: usize,
    /// Rows whose text (and label) an earlier row already had.
    pub duplicate_rows: usize,
    /// Distinct texts seen with more than one label, and the rows they had.
    pub conflicting_texts: usize,
    pub conflicting_rows: usize,
    pub kept: usize,
}

/// Keeps the first row of each text; drops every row of a text that occurs with different labels.
pub fn dedupe(examples: Vec<Example>) -> (Vec<Example>, DedupStats) {
    let mut stats = DedupStats { rows_read: examples.len(), ..Default::default() };
    let mut labels: HashMap<&str, (&str, usize, bool)> = HashMap::new();
    for e in &examples {
        let entry = labels.entry(&e.text).or_insert((&e.label, 0, false));
        entry.1 += 1;
        entry.2 |= entry.0 != e.label;
    }
    let conflicting: Vec<&str> = labels.iter().filter(|(_, v)| v.2).map(|(t, _)| *t).collect();
    stats.conflicting_texts = conflicting.len();
    stats.conflicting_rows = conflicting.iter().map(|t| labels[t].1).sum();
    let drop: std::collections::HashSet<String> = conflicting.iter().map(|t| t.to_string()).collect();
    let mut seen = std::collections::HashSet::new();
    let mut kept = Vec::new();
    for e in examples {
        if drop.contains(&e.text) {
            continue;
        }
        if seen.insert(e.text.clone()) {
            kept.push(e);
        } else {
            stats.duplicate_rows += 1;
        }
    }
    stats.kept = kept.len();
    (kept, stats)
}

/// Split ratios, e.g. `6:2:2` (any positive scale; dev and test may be 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratios(pub [f64; 3]);

impl std::str::FromStr for Ratios {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<f64> = s
            .split(':')
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("`{s}`: {e}"))?;
        match parts[..] {
            [a, b, c] if a > 0.0 && b >= 0.0 && c >= 0.0 && a.is_finite() && b.is_finite() && c.is_finite() => {
                Ok(Self([a, b, c]))
            }
            _ => Err(format!("`{s}`: expected three non-negative numbers like 6:2:2, the first above 0")),
        }
    }
}

/// A small seeded generator (SplitMix64): the same split for a seed on every platform and `rand` version.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Fisher-Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// Stratified split: each label's examples are shuffled by `seed` and cut by
/// `ratios`, so every part keeps the label proportions; each part is then shuffled.
pub fn split(examples: &[Example], ratios: Ratios, seed: u64) -> [Vec<Example>; 3] {
    let mut by_label: BTreeMap<&str, Vec<&Example>> = BTreeMap::new();
    for e in examples {
        by_label.entry(&e.label).or_default().push(e);
    }
    let total: f64 = ratios.0.iter().sum();
    let mut rng = SplitMix64::new(seed);
    let mut parts: [Vec<Example>; 3] = Default::default();
    for group in by_label.values_mut() {
        rng.shuffle(group);
        let n = group.len() as f64;
        let dev = (n * ratios.0[1] / total).round() as usize;
        let test = ((n * ratios.0[2] / total).round() as usize).min(group.len() - dev.min(group.len()));
        let train = group.len() - dev.min(group.len()) - test;
        let (train_part, rest) = group.split_at(train);
        let (test_part, dev_part) = rest.split_at(test);
        parts[0].extend(train_part.iter().map(|e| (*e).clone()));
        parts[1].extend(dev_part.iter().map(|e| (*e).clone()));
        parts[2].extend(test_part.iter().map(|e| (*e).clone()));
    }
    for part in &mut parts {
        rng.shuffle(part);
    }
    parts
}

/// Counts per label, in label order.
pub fn label_counts(examples: &[Example]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in examples {
        *counts.entry(e.label.clone()).or_insert(0) += 1;
    }
    counts
}

/// `sha256:<hex>` over the files' bytes, in order: which data a model was trained on.
pub fn digest(paths: &[&Path]) -> Result<String> {
    let mut hasher = Sha256::new();
    for path in paths {
        hasher.update(std::fs::read(path).map_err(TrainError::io(*path))?);
    }
    Ok(format!("sha256:{}", hasher.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>()))
}
