//! Named columns, shared by CSV and TSV with a header line: which column is
//! the text, which the id, and every other column kept as a string field.

use schemas::ReviewV1;
use serde_json::{Map, Value};

use super::entry::{self, Columns, InputError, LineIds};

#[derive(Debug)]
pub(super) struct Header {
    names: Vec<String>,
    text: usize,
    id: Option<usize>,
}

impl Header {
    /// Resolves the flags against the header names (case-insensitive).
    /// `text_fallback` is used when neither `--text-column` nor `text` names a column.
    pub(super) fn resolve(
        names: Vec<String>,
        columns: &Columns,
        text_fallback: Option<usize>,
    ) -> Result<Self, InputError> {
        let names: Vec<String> = names.into_iter().map(|n| n.trim().to_owned()).collect();
        let text = match &columns.text {
            Some(name) => find(&names, name).ok_or_else(|| missing("text", name, &names))?,
            None => find(&names, "text").or(text_fallback).ok_or_else(|| InputError::NoTextColumn(names.join(", ")))?,
        };
        let id = match &columns.id {
            Some(name) => Some(find(&names, name).ok_or_else(|| missing("id", name, &names))?),
            None => find(&names, "id"),
        };
        Ok(Header { names, text, id })
    }

    pub(super) fn len(&self) -> usize {
        self.names.len()
    }

    /// A review from one row. An empty id cell falls back to the line's stable id.
    pub(super) fn review(&self, fields: &[&str], ids: &LineIds, line: u64) -> Result<ReviewV1, String> {
        if fields.len() != self.names.len() {
            return Err(format!("expected {} columns as in the header, got {}", self.names.len(), fields.len()));
        }
        let id = self.id.map(|i| fields[i].trim()).filter(|id| !id.is_empty());
        let id = id.map_or_else(|| ids.at(line), str::to_owned);
        let mut extra = Map::new();
        for (i, (name, value)) in self.names.iter().zip(fields).enumerate() {
            // `id` and `text` are the review's own fields: a second column by
            // that name (when another was chosen by flag) must not shadow them.
            let reserved = name.is_empty() || name == "id" || name == "text";
            if i != self.text && Some(i) != self.id && !reserved {
                extra.insert(name.clone(), Value::String(value.trim().to_owned()));
            }
        }
        entry::review(id, fields[self.text].to_owned(), extra)
    }
}

pub(super) fn find(names: &[String], wanted: &str) -> Option<usize> {
    names.iter().position(|n| n.trim().eq_ignore_ascii_case(wanted.trim()))
}

fn missing(what: &'static str, name: &str, names: &[String]) -> InputError {
    InputError::NoColumn { what, name: name.to_owned(), columns: names.join(", ") }
}
