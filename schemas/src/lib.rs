//! The messages every bertstream part agrees on (see DESIGN.md, "Messages"):
//! [`ReviewV1`] on the input topic, [`ClassificationV1`] on the output topic,
//! and the headers of a dead-letter record. JSON Schemas for both messages live
//! in `schemas/json/` and are tested against these types.
//!
//! Parsing is strict and total: [`parse_review`] turns any Kafka record into
//! either a valid review or a [`Poison`] that names why it is not one, so the
//! worker can send it to the DLQ instead of panicking.

pub mod kafka_options;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod trace_context;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use kafka_options::KafkaOptions;

/// The largest id accepted, in characters.
pub const MAX_ID_CHARS: usize = 128;

/// A review to classify, as published on the input topic (key = `id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewV1 {
    pub id: String,
    pub text: String,
    /// Every other field (`source`, `created_at`, a label, ...) is kept as is.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Where a record was read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A classification result, as published on the output topic (key = `id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationV1 {
    pub id: String,
    pub label: String,
    pub score: f32,
    pub scores: BTreeMap<String, f32>,
    pub model: String,
    pub source: SourcePosition,
    pub classified_at: DateTime<Utc>,
}

/// Header names on a dead-letter record; its key, value and timestamp are the original's.
pub mod dlq_headers {
    pub const ERROR_KIND: &str = "error.kind";
    pub const ERROR_MESSAGE: &str = "error.message";
    pub const SOURCE_TOPIC: &str = "source.topic";
    pub const SOURCE_PARTITION: &str = "source.partition";
    pub const SOURCE_OFFSET: &str = "source.offset";
}

/// Why a record is not a valid review. `kind()` is the `error.kind` DLQ header
/// and the `reason` label of the DLQ metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Poison {
    #[error("record has no value (tombstone)")]
    Tombstone,
    #[error("value is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("value is not valid UTF-8: {0}")]
    InvalidUtf8(String),
    #[error("value is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("JSON nests deeper than {0} levels")]
    TooDeep(usize),
    #[error("JSON does not match ReviewV1: {0}")]
    WrongType(String),
    #[error("field `text` is missing")]
    MissingText,
    #[error("field `text` is empty or only whitespace")]
    EmptyText,
    #[error("field `{0}` contains a NUL character")]
    NulCharacter(&'static str),
    #[error("id is invalid: {0}")]
    InvalidId(String),
    /// Not found by parsing: Postgres refused the row on its own.
    #[error("the database rejected the row: {0}")]
    Rejected(String),
    /// Not found by parsing: the model gave NaN or infinite scores for it.
    #[error("the model gave non-finite scores: {0}")]
    NonFinite(String),
    /// Not found by parsing: the model failed on this record alone (its
    /// batch's other records and a probe batch succeeded).
    #[error("the model failed on this record: {0}")]
    ModelFailed(String),
}

impl Poison {
    pub fn kind(&self) -> &'static str {
        match self {
            Poison::Tombstone => "tombstone",
            Poison::TooLarge { .. } => "too_large",
            Poison::InvalidUtf8(_) => "invalid_utf8",
            Poison::InvalidJson(_) => "invalid_json",
            Poison::TooDeep(_) => "too_deep",
            Poison::WrongType(_) => "wrong_type",
            Poison::MissingText => "missing_text",
            Poison::EmptyText => "empty_text",
            Poison::NulCharacter(_) => "nul_character",
            Poison::InvalidId(_) => "invalid_id",
            Poison::Rejected(_) => "rejected",
            Poison::NonFinite(_) => "non_finite",
            Poison::ModelFailed(_) => "model_error",
        }
    }
}

/// Limits applied by [`parse_review`].
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Largest accepted value in bytes.
    pub max_bytes: usize,
    /// Deepest accepted JSON nesting.
    pub max_depth: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self { max_bytes: 1 << 20, max_depth: 32 }
    }
}

/// Turns a Kafka record into a review. An absent `id` is taken from the key,
/// and without a key from `fallback_id` (`topic:partition:offset`).
pub fn parse_review(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    fallback_id: impl FnOnce() -> String,
    limits: ParseLimits,
) -> Result<ReviewV1, Poison> {
    let bytes = value.ok_or(Poison::Tombstone)?;
    if bytes.len() > limits.max_bytes {
        return Err(Poison::TooLarge { size: bytes.len(), limit: limits.max_bytes });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| Poison::InvalidUtf8(e.to_string()))?;
    let depth = json_depth(text);
    if depth > limits.max_depth {
        return Err(Poison::TooDeep(limits.max_depth));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| Poison::InvalidJson(e.to_string()))?;
    let Value::Object(mut object) = value else {
        return Err(Poison::WrongType("expected a JSON object".into()));
    };
    let text = match object.remove("text") {
        None | Some(Value::Null) => return Err(Poison::MissingText),
        Some(Value::String(s)) => s,
        Some(other) => return Err(Poison::WrongType(format!("`text` must be a string, got {}", type_name(&other)))),
    };
    if text.trim().is_empty() {
        return Err(Poison::EmptyText);
    }
    if text.contains('\0') {
        return Err(Poison::NulCharacter("text"));
    }
    let id = match object.remove("id") {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        None | Some(Value::Null) => match key {
            Some(k) => String::from_utf8(k.to_vec()).map_err(|_| Poison::InvalidId("key is not UTF-8".into()))?,
            None => fallback_id(),
        },
        Some(other) => return Err(Poison::WrongType(format!("`id` must be a string, got {}", type_name(&other)))),
    };
    validate_id(&id)?;
    Ok(ReviewV1 { id, text, extra: object })
}

/// Checks an id: 1 to [`MAX_ID_CHARS`] characters, no NUL.
pub fn validate_id(id: &str) -> Result<(), Poison> {
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_ID_CHARS {
        return Err(Poison::InvalidId(format!("must be 1 to {MAX_ID_CHARS} characters, got {chars}")));
    }
    if id.contains('\0') {
        return Err(Poison::NulCharacter("id"));
    }
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The deepest bracket nesting of a JSON text, brackets inside strings ignored.
/// Checked before parsing so that hostile input cannot reach serde's recursion.
fn json_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests;
