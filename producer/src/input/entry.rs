//! What every format produces and shares: the column choice, the [`Entry`]
//! read from a line, the [`InputError`] that stops a run, generated ids, and
//! the rules a review must meet before it is published.

use schemas::{validate_id, Poison, ReviewV1};
use serde_json::{Map, Value};

/// Which columns (or JSONL fields) hold the id and the text, from the flags.
#[derive(Debug, Clone, Default)]
pub struct Columns {
    pub id: Option<String>,
    pub text: Option<String>,
}

/// One thing read from an input. `bytes` is how much of the input it
/// consumed (for progress), blank lines and headers included.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Review { line: u64, bytes: u64, review: ReviewV1 },
    Bad { line: u64, bytes: u64, reason: String },
}

/// A problem with a whole input (not one line): it stops the run.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("read failed: {0}")]
    Read(#[from] std::io::Error),
    #[error("no {what} column `{name}` in the header (columns: {columns})")]
    NoColumn { what: &'static str, name: String, columns: String },
    #[error("no text column in the header (columns: {0}); name one with --text-column")]
    NoTextColumn(String),
    #[error("{0} needs a header line, and this TSV has none (its first line has no `label` or `text` column)")]
    NoHeader(&'static str),
    #[error("CSV: {0}")]
    Csv(String),
}

/// Stable ids for records without one: `<prefix>:<line>`, the same on every run.
#[derive(Debug, Clone)]
pub(crate) struct LineIds(String);

impl LineIds {
    pub(crate) fn new(prefix: String) -> Self {
        LineIds(prefix)
    }

    pub(crate) fn at(&self, line: u64) -> String {
        format!("{}:{line}", self.0)
    }
}

/// Builds a review the worker will accept, or says why it would not: the same
/// rules as `schemas::parse_review`, so nothing is published only to be dead-lettered.
pub(crate) fn review(id: String, text: String, extra: Map<String, Value>) -> Result<ReviewV1, String> {
    if text.trim().is_empty() {
        return Err(Poison::EmptyText.to_string());
    }
    if text.contains('\0') {
        return Err(Poison::NulCharacter("text").to_string());
    }
    validate_id(&id).map_err(|p| p.to_string())?;
    Ok(ReviewV1 { id, text, extra })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_applies_the_worker_rules() {
        assert!(review("a".into(), "ok".into(), Map::new()).is_ok());
        assert!(review("a".into(), " \u{3000} ".into(), Map::new()).expect_err("blank").contains("empty"));
        assert!(review("a".into(), "a\0b".into(), Map::new()).expect_err("nul").contains("NUL"));
        assert!(review("x".repeat(129), "ok".into(), Map::new()).expect_err("long").contains("1 to 128"));
    }
}
