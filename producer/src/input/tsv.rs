//! TSV: the original `label<TAB>text` layout, header optional. A first line
//! with a `label` or `text` column (or the columns named by the flags) is a
//! header, and then columns are looked up by name; without one, each line is
//! split at its first tab, so the text may itself contain tabs. The label is
//! kept as field `label`; it is data, not routing.

use serde_json::{Map, Value};

use super::entry::{self, Columns, InputError, LineIds};
use super::header::{find, Header};
use super::lines::{LineParser, Parsed};

pub(super) struct Tsv {
    ids: LineIds,
    columns: Columns,
    header: Option<Header>,
    first: bool,
}

impl Tsv {
    pub(super) fn new(ids: LineIds, columns: Columns) -> Self {
        Tsv { ids, columns, header: None, first: true }
    }

    fn is_header(&self, names: &[String]) -> bool {
        let named = |n: &Option<String>| n.as_deref().is_some_and(|n| find(names, n).is_some());
        find(names, "label").is_some()
            || find(names, "text").is_some()
            || named(&self.columns.text)
            || named(&self.columns.id)
    }

    /// Reads the first line as a header when it is one.
    fn first_line(&mut self, line: &str) -> Option<Parsed> {
        let names: Vec<String> = line.split('\t').map(str::to_owned).collect();
        if self.is_header(&names) {
            // `label<TAB>review`: the column beside the label is the text.
            let fallback = match find(&names, "label") {
                Some(label) if names.len() == 2 => Some(1 - label),
                _ => None,
            };
            return Some(match Header::resolve(names, &self.columns, fallback) {
                Ok(header) => {
                    self.header = Some(header);
                    Parsed::Header
                }
                Err(e) => Parsed::Fatal(e),
            });
        }
        if self.columns.id.is_some() {
            return Some(Parsed::Fatal(InputError::NoHeader("--id-column")));
        }
        if self.columns.text.is_some() {
            return Some(Parsed::Fatal(InputError::NoHeader("--text-column")));
        }
        None
    }
}

impl LineParser for Tsv {
    fn parse(&mut self, line: &str, number: u64) -> Parsed {
        if std::mem::take(&mut self.first) {
            if let Some(parsed) = self.first_line(line) {
                return parsed;
            }
        }
        let result = match &self.header {
            // The last column takes any further tabs, like the headerless layout.
            Some(header) => header.review(&line.splitn(header.len(), '\t').collect::<Vec<_>>(), &self.ids, number),
            None => match line.split_once('\t') {
                None => Err("no tab: expected `label<TAB>text`".to_owned()),
                Some((label, text)) => {
                    let mut extra = Map::new();
                    if !label.trim().is_empty() {
                        extra.insert("label".into(), Value::String(label.trim().to_owned()));
                    }
                    entry::review(self.ids.at(number), text.to_owned(), extra)
                }
            },
        };
        match result {
            Ok(review) => Parsed::Review(review),
            Err(reason) => Parsed::Bad(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{read, summarize};
    use super::super::{Columns, Entry, Format};

    fn tsv(data: &str) -> Vec<String> {
        summarize(&read("data/reviews.tsv", Format::Tsv, Columns::default(), data))
    }

    #[test]
    fn headerless_lines_split_at_the_first_tab() {
        let entries =
            read("reviews.tsv", Format::Tsv, Columns::default(), "1\t手机很好\tgreat phone\r\n\n-1\t太差了\n");
        assert_eq!(summarize(&entries), ["1 reviews:1 手机很好\tgreat phone", "3 reviews:3 太差了"]);
        let Ok(Entry::Review { review, .. }) = &entries[1] else { panic!("{entries:?}") };
        assert_eq!(
            serde_json::to_value(review).expect("json"),
            serde_json::json!({"id": "reviews:3", "text": "太差了", "label": "-1"})
        );
    }

    #[test]
    fn header_is_optional_and_names_columns() {
        assert_eq!(tsv("label\ttext\n0\tso so\n"), ["2 reviews:2 so so"]);
        assert_eq!(tsv("label\treview\n0\tso so\n"), ["2 reviews:2 so so"]);
        assert_eq!(tsv("id\ttext\tlabel\nr-1\t好\t1\n\t空 id\t0\n"), ["2 r-1 好", "3 reviews:3 空 id"]);
        let cols = Columns { id: Some("rid".into()), text: Some("body".into()) };
        let entries = read("x.tsv", Format::Tsv, cols, "rid\tbody\tlabel\tsource\nr-9\tnice\t1\tjd\n");
        let Ok(Entry::Review { review, .. }) = &entries[0] else { panic!("{entries:?}") };
        assert_eq!(
            serde_json::to_value(review).expect("json"),
            serde_json::json!({"id": "r-9", "text": "nice", "label": "1", "source": "jd"})
        );
    }

    #[test]
    fn bad_lines_name_their_line() {
        let got = tsv("1\tfine\nno tab here\n0\t   \n1\tok\n");
        assert_eq!(got[0], "1 reviews:1 fine");
        assert!(got[1].starts_with("2 BAD no tab"), "{got:?}");
        assert!(got[2].starts_with("3 BAD field `text` is empty"), "{got:?}");
        assert_eq!(got[3], "4 reviews:4 ok");
        let got = tsv("id\ttext\n1\n");
        assert!(got[0].starts_with("2 BAD expected 2 columns"), "{got:?}");
        let long = format!("id\ttext\n{}\tx\n", "i".repeat(129));
        assert!(tsv(&long)[0].contains("BAD id is invalid"));
    }

    #[test]
    fn flags_that_need_a_header_fail_without_one() {
        let got = summarize(&read("x.tsv", Format::Tsv, Columns { id: Some("rid".into()), text: None }, "1\thi\n"));
        assert!(got[0].starts_with("FATAL --id-column needs a header"), "{got:?}");
        let got =
            summarize(&read("x.tsv", Format::Tsv, Columns { id: None, text: Some("body".into()) }, "label\ttext\n"));
        assert!(got[0].starts_with("FATAL no text column `body`"), "{got:?}");
    }

    #[test]
    fn invalid_utf8_is_a_bad_line_not_a_failure() {
        let entries = read("x.tsv", Format::Tsv, Columns::default(), "1\tok\n");
        assert_eq!(entries.len(), 1);
        let mut data = b"1\t\xff\xfe\n0\tfine\n".to_vec();
        let input = super::super::Input::stdin(Some(Format::Tsv));
        let reader: Box<dyn std::io::BufRead + Send> = Box::new(std::io::Cursor::new(std::mem::take(&mut data)));
        let got: Vec<_> = input.entries(reader, &Columns::default()).map(|e| e.map_err(|e| e.to_string())).collect();
        let got = summarize(&got);
        assert!(got[0].starts_with("1 BAD not valid UTF-8"), "{got:?}");
        assert_eq!(got[1], "2 stdin:2 fine");
    }
}
