//! JSONL: one ReviewV1 object per line, parsed by `schemas::parse_review`, the
//! worker's own parser, so a line is refused here exactly when the worker would
//! refuse it. Fields other than `id` and `text` are kept. `--id-column` and
//! `--text-column` rename a field to `id` / `text` first.

use std::borrow::Cow;

use schemas::{parse_review, ParseLimits};
use serde_json::Value;

use super::entry::{Columns, LineIds};
use super::lines::{LineParser, Parsed};

pub(super) struct Jsonl {
    ids: LineIds,
    columns: Columns,
}

impl Jsonl {
    pub(super) fn new(ids: LineIds, columns: Columns) -> Self {
        Jsonl { ids, columns }
    }

    /// The line with the flag-named fields renamed; untouched when no flag is set
    /// or the line is not an object (the parser then says what is wrong with it).
    fn renamed<'a>(&self, line: &'a str) -> Cow<'a, [u8]> {
        if self.columns.id.is_none() && self.columns.text.is_none() {
            return Cow::Borrowed(line.as_bytes());
        }
        let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(line) else {
            return Cow::Borrowed(line.as_bytes());
        };
        for (flag, field) in [(&self.columns.text, "text"), (&self.columns.id, "id")] {
            if let Some(value) = flag.as_deref().and_then(|name| object.remove(name)) {
                object.insert(field.to_owned(), value);
            }
        }
        serde_json::to_vec(&object).map_or(Cow::Borrowed(line.as_bytes()), Cow::Owned)
    }
}

impl LineParser for Jsonl {
    fn parse(&mut self, line: &str, number: u64) -> Parsed {
        let bytes = self.renamed(line);
        match parse_review(None, Some(&bytes), || self.ids.at(number), ParseLimits::default()) {
            Ok(review) => Parsed::Review(review),
            Err(poison) => Parsed::Bad(poison.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{read, summarize};
    use super::super::{Columns, Entry, Format};
    use serde_json::json;

    #[test]
    fn reviews_keep_every_field_and_fall_back_to_line_ids() {
        let data = "{\"id\":\"r-1\",\"text\":\"手机很好\",\"source\":\"jd\",\"stars\":5}\r\n\n{\"text\":\"no id\"}\n{\"id\":42,\"text\":\"numeric id\"}\n";
        let entries = read("in/reviews.jsonl", Format::Jsonl, Columns::default(), data);
        assert_eq!(summarize(&entries), ["1 r-1 手机很好", "3 reviews:3 no id", "4 42 numeric id"]);
        let Ok(Entry::Review { review, .. }) = &entries[0] else { panic!("{entries:?}") };
        assert_eq!(
            serde_json::to_value(review).expect("json"),
            json!({"id": "r-1", "text": "手机很好", "source": "jd", "stars": 5})
        );
    }

    #[test]
    fn bad_lines_say_why() {
        let long = format!("{{\"id\":\"{}\",\"text\":\"x\"}}", "i".repeat(200));
        let data = format!("{{\"text\": \n{{\"id\":\"a\"}}\n{{\"id\":\"b\",\"text\":\"\"}}\n{long}\n[1]\n{{\"id\":\"ok\",\"text\":\"fine\"}}\n");
        let got = summarize(&read("r.jsonl", Format::Jsonl, Columns::default(), &data));
        let expected = [
            "1 BAD value is not valid JSON",
            "2 BAD field `text` is missing",
            "3 BAD field `text` is empty",
            "4 BAD id is invalid",
            "5 BAD JSON does not match",
            "6 ok fine",
        ];
        for (got, want) in got.iter().zip(expected) {
            assert!(got.starts_with(want), "{got} should start with {want}");
        }
        assert_eq!(got.len(), expected.len());
    }

    #[test]
    fn flags_rename_fields() {
        let cols = Columns { id: Some("review_id".into()), text: Some("body".into()) };
        let entries =
            read("r.jsonl", Format::Jsonl, cols, "{\"review_id\":\"x-1\",\"body\":\"hello\",\"label\":\"1\"}\n");
        let Ok(Entry::Review { review, .. }) = &entries[0] else { panic!("{entries:?}") };
        assert_eq!(serde_json::to_value(review).expect("json"), json!({"id": "x-1", "text": "hello", "label": "1"}));
    }
}
