//! Plain text: each non-blank line is one review, with a stable line id.

use serde_json::Map;

use super::entry::{self, LineIds};
use super::lines::{LineParser, Parsed};

pub(super) struct Text {
    ids: LineIds,
}

impl Text {
    pub(super) fn new(ids: LineIds) -> Self {
        Text { ids }
    }
}

impl LineParser for Text {
    fn parse(&mut self, line: &str, number: u64) -> Parsed {
        match entry::review(self.ids.at(number), line.to_owned(), Map::new()) {
            Ok(review) => Parsed::Review(review),
            Err(reason) => Parsed::Bad(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{read, summarize};
    use super::super::{Columns, Format};

    #[test]
    fn one_review_per_non_blank_line() {
        let got = summarize(&read(
            "notes.txt",
            Format::Text,
            Columns::default(),
            "\u{feff}好评\r\n\r\n  \nbad\0byte\nlast line without newline",
        ));
        assert_eq!(got[0], "1 notes:1 好评");
        assert!(got[1].starts_with("4 BAD field `text` contains a NUL"), "{got:?}");
        assert_eq!(got[2], "5 notes:5 last line without newline");
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn tabs_and_commas_are_just_text() {
        assert_eq!(summarize(&read("-", Format::Text, Columns::default(), "a\tb, \"c\"\n")), ["1 -:1 a\tb, \"c\""]);
    }
}
