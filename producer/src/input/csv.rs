//! CSV with a header line (RFC 4180 quoting: fields may contain commas, quotes
//! and newlines). A record's line number is the line it starts on. The text
//! column is `--text-column` (default `text`), the id `--id-column` (default
//! `id` when present); other columns are kept as string fields.
//! Line numbers are corrected by [`super::csv_lines`].

use std::io::BufRead;

use ::csv::{ByteRecord, ErrorKind, Reader, ReaderBuilder};

use super::csv_lines::{Normalized, Tracker};
use super::entry::{Columns, Entry, InputError, LineIds};
use super::header::Header;

pub(super) struct CsvEntries {
    reader: Reader<Normalized>,
    lines: Tracker,
    ids: LineIds,
    columns: Columns,
    header: Option<Header>,
    record: ByteRecord,
    /// Input bytes already credited to earlier entries.
    consumed: u64,
    done: bool,
}

impl CsvEntries {
    pub(super) fn new(reader: Box<dyn BufRead + Send>, ids: LineIds, columns: Columns) -> Self {
        let (normalized, lines) = Normalized::new(reader);
        let reader = ReaderBuilder::new().has_headers(true).from_reader(normalized);
        CsvEntries { reader, lines, ids, columns, header: None, record: ByteRecord::new(), consumed: 0, done: false }
    }

    fn read_header(&mut self) -> Result<Option<Header>, InputError> {
        let names = self.reader.byte_headers().map_err(|e| InputError::Csv(e.to_string()))?;
        if names.is_empty() {
            return Ok(None);
        }
        let names = names.iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect();
        Header::resolve(names, &self.columns, None).map(Some)
    }

    /// Input bytes read since the last entry (the csv reader reads ahead, so
    /// this runs a buffer ahead of the records; the total is exact).
    fn take_bytes(&mut self) -> u64 {
        let now = self.lines.raw_bytes();
        let bytes = now.saturating_sub(self.consumed);
        self.consumed = now;
        bytes
    }

    fn next_entry(&mut self) -> Result<Option<Entry>, InputError> {
        if self.header.is_none() {
            match self.read_header()? {
                Some(header) => self.header = Some(header),
                None => return Ok(None),
            }
        }
        let read = self.reader.read_byte_record(&mut self.record);
        let bytes = self.take_bytes();
        let line = match read {
            Ok(false) => return Ok(None),
            Ok(true) => self.record.position().map_or(0, |p| self.lines.line(p.line(), p.byte())),
            Err(e) => {
                return match e.kind() {
                    ErrorKind::UnequalLengths { pos, expected_len, len } => Ok(Some(Entry::Bad {
                        line: pos.as_ref().map_or(0, |p| self.lines.line(p.line(), p.byte())),
                        bytes,
                        reason: format!("expected {expected_len} columns as in the header, got {len}"),
                    })),
                    _ => Err(InputError::Csv(e.to_string())),
                }
            }
        };
        let mut fields = Vec::with_capacity(self.record.len());
        for (i, field) in self.record.iter().enumerate() {
            match std::str::from_utf8(field) {
                Ok(field) => fields.push(field),
                Err(e) => {
                    return Ok(Some(Entry::Bad {
                        line,
                        bytes,
                        reason: format!("column {} is not valid UTF-8: {e}", i + 1),
                    }))
                }
            }
        }
        let Some(header) = &self.header else { return Ok(None) };
        Ok(Some(match header.review(&fields, &self.ids, line) {
            Ok(review) => Entry::Review { line, bytes, review },
            Err(reason) => Entry::Bad { line, bytes, reason },
        }))
    }
}

impl Iterator for CsvEntries {
    type Item = Result<Entry, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_entry();
        if !matches!(next, Ok(Some(_))) {
            self.done = true;
        }
        next.transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_bytes_add_up, read, summarize};
    use super::super::{Columns, Entry, Format};
    use serde_json::json;

    fn csv(columns: Columns, data: &str) -> Vec<String> {
        summarize(&read("shop/reviews.csv", Format::Csv, columns, data))
    }

    #[test]
    fn records_use_the_header_and_keep_other_columns() {
        let data = "\u{feff}id,text,label,source\r\nr-1,\"好,很好\",1,jd\r\n\r\nr-2,\"says \"\"hi\"\"\nover two lines\",0,tb\r\n,no id,-1,jd\n";
        let entries = read("reviews.csv", Format::Csv, Columns::default(), data);
        assert_eq!(summarize(&entries), ["2 r-1 好,很好", "4 r-2 says \"hi\"\nover two lines", "6 reviews:6 no id"]);
        let Ok(Entry::Review { review, .. }) = &entries[0] else { panic!("{entries:?}") };
        assert_eq!(
            serde_json::to_value(review).expect("json"),
            json!({"id": "r-1", "text": "好,很好", "label": "1", "source": "jd"})
        );
    }

    #[test]
    fn columns_can_be_chosen() {
        let cols = Columns { id: Some("Review ID".into()), text: Some("body".into()) };
        assert_eq!(csv(cols, "Review ID,body,text\nx-1,chosen,other\n"), ["2 x-1 chosen"]);
        assert_eq!(csv(Columns::default(), "label,text\n1,ok\n"), ["2 reviews:2 ok"]);
    }

    #[test]
    fn bad_records_say_why_and_reading_goes_on() {
        let got = csv(Columns::default(), "id,text\na,one\nb\nc,\"\"\nd,four\n");
        assert_eq!(got[0], "2 a one");
        assert!(got[1].starts_with("3 BAD expected 2 columns"), "{got:?}");
        assert!(got[2].starts_with("4 BAD field `text` is empty"), "{got:?}");
        assert_eq!(got[3], "5 d four");
    }

    #[test]
    fn a_missing_text_column_stops_the_file() {
        let got = csv(Columns::default(), "id,body\n1,x\n");
        assert_eq!(got.len(), 1);
        assert!(got[0].starts_with("FATAL no text column"), "{got:?}");
        assert!(csv(Columns::default(), "").is_empty());
    }

    #[test]
    fn crlf_line_numbers_are_right() {
        let got = csv(Columns::default(), "id,text\r\n\r\na,one\r\nb\r\nc,\"multi\r\nline\"\r\nd,four\r\n");
        assert_eq!(got[0], "3 a one");
        assert!(got[1].starts_with("4 BAD"), "{got:?}");
        assert_eq!(got[2..], ["5 c multi\nline", "7 d four"]);
    }

    #[test]
    fn bytes_add_up() {
        assert_bytes_add_up("r.csv", Format::Csv, "id,text\na,one\nb\n\nc,three\n");
    }
}
