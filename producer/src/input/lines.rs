//! Line-at-a-time reading shared by TSV, JSONL and text: streams the input
//! (never the whole file in memory), numbers lines from 1, strips `\n`, `\r\n`
//! and a leading UTF-8 BOM, skips blank lines, and reports invalid UTF-8 as a
//! bad line instead of failing the file.

use std::io::BufRead;

use schemas::ReviewV1;

use super::entry::{Entry, InputError};

/// What a format makes of one non-blank line.
pub(super) enum Parsed {
    Review(ReviewV1),
    /// A header line: consumed, nothing to publish.
    Header,
    Bad(String),
    /// The input as a whole cannot be read (e.g. a named column is missing).
    Fatal(InputError),
}

pub(super) trait LineParser: Send {
    fn parse(&mut self, line: &str, number: u64) -> Parsed;
}

pub(super) struct LineEntries<P> {
    reader: Box<dyn BufRead + Send>,
    parser: P,
    buf: Vec<u8>,
    number: u64,
    /// Bytes of blank and header lines, credited to the next entry.
    carried: u64,
    done: bool,
}

impl<P: LineParser> LineEntries<P> {
    pub(super) fn new(reader: Box<dyn BufRead + Send>, parser: P) -> Self {
        Self { reader, parser, buf: Vec::new(), number: 0, carried: 0, done: false }
    }
}

impl<P: LineParser> Iterator for LineEntries<P> {
    type Item = Result<Entry, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.buf.clear();
            let read = match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(n) => n as u64,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
            };
            self.number += 1;
            let bytes = read + std::mem::take(&mut self.carried);
            let line = strip(&self.buf, self.number == 1);
            let text = match std::str::from_utf8(line) {
                Ok(text) => text,
                Err(e) => {
                    return Some(Ok(Entry::Bad { line: self.number, bytes, reason: format!("not valid UTF-8: {e}") }))
                }
            };
            if text.trim().is_empty() {
                self.carried = bytes;
                continue;
            }
            match self.parser.parse(text, self.number) {
                Parsed::Review(review) => return Some(Ok(Entry::Review { line: self.number, bytes, review })),
                Parsed::Bad(reason) => return Some(Ok(Entry::Bad { line: self.number, bytes, reason })),
                Parsed::Header => self.carried = bytes,
                Parsed::Fatal(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

/// The line without its terminator (`\n` or `\r\n`) and, on the first line, without a BOM.
fn strip(line: &[u8], first: bool) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if first {
        line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line)
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_terminators_and_first_line_bom() {
        assert_eq!(strip(b"a\r\n", false), b"a");
        assert_eq!(strip(b"a\n", false), b"a");
        assert_eq!(strip(b"a", false), b"a");
        assert_eq!(strip(b"a\r\r\n", false), b"a\r");
        assert_eq!(strip("\u{feff}a\n".as_bytes(), true), b"a");
        assert_eq!(strip("\u{feff}a\n".as_bytes(), false), "\u{feff}a".as_bytes());
    }
}
