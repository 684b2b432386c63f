//! What `predict` and `eval` read: the training TSV, CSV, JSONL or plain text,
//! chosen by `--format` or else by the file's extension, with the same names
//! and extension rules as `bertstream-produce`. A bad line is an error naming
//! `file:line`.

use std::path::Path;

use serde_json::Value;

use crate::data::{read_tsv_lines, read_utf8, Example};
use crate::error::{Result, TrainError};

/// How an input is laid out. The variants' comments are `--format`'s help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `label<TAB>text`, the training format (a `label<TAB>text` header is optional)
    Tsv,
    /// A header line, then records (quoted fields may span lines): column `text`, optional `label` and `id`
    Csv,
    /// One JSON object per line with `text`, optional `label` and `id`
    Jsonl,
    /// One text per line, no label
    Text,
}

impl Format {
    /// The format a file's extension suggests; text when it suggests none.
    pub fn from_path(path: &Path) -> Format {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "tsv" | "tab" => Format::Tsv,
            "csv" => Format::Csv,
            "jsonl" | "ndjson" => Format::Jsonl,
            _ => Format::Text,
        }
    }
}

/// One text to classify, with what the input says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Where the row starts in the file (1-based).
    pub line: usize,
    pub id: Option<String>,
    pub label: Option<String>,
    pub text: String,
}

/// The rows of `path`, read as `format` (default: by extension). Blank lines
/// are skipped; an empty text is an error; a file without rows is an error.
pub fn read_rows(path: &Path, format: Option<Format>) -> Result<Vec<Row>> {
    let rows = match format.unwrap_or_else(|| Format::from_path(path)) {
        Format::Tsv => read_tsv_lines(path)?
            .into_iter()
            .map(|(line, e)| Row { line, id: None, label: Some(e.label), text: e.text })
            .collect(),
        Format::Csv => read_csv(path, &read_utf8(path)?)?,
        Format::Jsonl => read_jsonl(path, &read_utf8(path)?)?,
        Format::Text => lines(&read_utf8(path)?)
            .map(|(line, text)| Row { line, id: None, label: None, text: text.into() })
            .collect(),
    };
    if rows.is_empty() {
        return Err(TrainError::Empty(path.into()));
    }
    Ok(rows)
}

/// [`read_rows`] for `eval`: every row must have a label.
pub fn read_labelled(path: &Path, format: Option<Format>) -> Result<Vec<Example>> {
    let format = format.unwrap_or_else(|| Format::from_path(path));
    read_rows(path, Some(format))?
        .into_iter()
        .map(|row| match row.label {
            Some(label) => Ok(Example { label, text: row.text }),
            None => Err(TrainError::BadLine {
                path: path.into(),
                line: row.line,
                message: match format {
                    Format::Text => "plain text has no labels; eval needs tsv (`label<TAB>text`), or csv or jsonl \
                                     with a `label` (--format overrides the extension)"
                        .into(),
                    _ => "no label (eval needs a `label` in every row)".into(),
                },
            }),
        })
        .collect()
}

/// The non-blank lines of `content` with their line numbers, without `\r`.
fn lines(content: &str) -> impl Iterator<Item = (usize, &str)> {
    content
        .split('\n')
        .enumerate()
        .map(|(i, raw)| (i + 1, raw.strip_suffix('\r').unwrap_or(raw)))
        .filter(|(_, line)| !line.trim().is_empty())
}

/// A label or id: trimmed, `None` when empty.
fn non_empty(value: &str) -> Option<String> {
    Some(value.trim().to_owned()).filter(|v| !v.is_empty())
}

fn bad(path: &Path, line: usize, message: impl Into<String>) -> TrainError {
    TrainError::BadLine { path: path.into(), line, message: message.into() }
}

/// CSV with a header line (RFC 4180 quoting; a record may span lines and is
/// numbered by the line it starts on). Columns are found by name, ignoring case.
fn read_csv(path: &Path, content: &str) -> Result<Vec<Row>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(content.as_bytes());
    let csv_error = |e: csv::Error| match e.kind() {
        csv::ErrorKind::UnequalLengths { pos, expected_len, len } => bad(
            path,
            pos.as_ref().map_or(0, |p| line_at(content, p.byte())),
            format!("expected {expected_len} columns as in the header, got {len}"),
        ),
        _ => match e.position() {
            Some(p) => bad(path, line_at(content, p.byte()), e.to_string()),
            None => TrainError::Invalid(format!("{}: {e}", path.display())),
        },
    };
    let header = reader.headers().map_err(csv_error)?.clone();
    if header.is_empty() {
        return Ok(Vec::new());
    }
    let column = |name: &str| header.iter().position(|h| h.trim().eq_ignore_ascii_case(name));
    let text = column("text").ok_or_else(|| {
        let line = header.position().map_or(1, |p| line_at(content, p.byte()));
        let names: Vec<&str> = header.iter().collect();
        bad(path, line, format!("no `text` column in the header (columns: {})", names.join(", ")))
    })?;
    let (label, id) = (column("label"), column("id"));
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map_or(0, |p| line_at(content, p.byte()));
        let cell = |i: Option<usize>| i.and_then(|i| record.get(i)).and_then(non_empty);
        let text = &record[text];
        if text.trim().is_empty() {
            return Err(bad(path, line, "empty text"));
        }
        rows.push(Row { line, id: cell(id), label: cell(label), text: text.into() });
    }
    Ok(rows)
}

/// The line of a CSV record the csv crate places at `byte`: it counts blank
/// lines before a record (and the `\n` of a `\r\n`) as part of it.
fn line_at(content: &str, byte: u64) -> usize {
    let bytes = content.as_bytes();
    let mut at = usize::try_from(byte).unwrap_or(usize::MAX).min(bytes.len());
    while at < bytes.len() && matches!(bytes[at], b'\r' | b'\n') {
        at += 1;
    }
    1 + bytes[..at].iter().filter(|&&b| b == b'\n').count()
}

/// JSONL: one object a line with a string `text`; `label` and `id` may be strings or numbers.
fn read_jsonl(path: &Path, content: &str) -> Result<Vec<Row>> {
    lines(content)
        .map(|(line, json)| {
            let value: Value = serde_json::from_str(json).map_err(|e| bad(path, line, format!("invalid JSON: {e}")))?;
            let Value::Object(object) = value else {
                return Err(bad(path, line, "expected a JSON object with `text`"));
            };
            let text = match object.get("text") {
                Some(Value::String(text)) if text.trim().is_empty() => return Err(bad(path, line, "empty text")),
                Some(Value::String(text)) => text.clone(),
                _ => return Err(bad(path, line, "no string `text`")),
            };
            let field = |key: &str| match object.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(non_empty(s)),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(_) => Err(bad(path, line, format!("`{key}` must be a string or a number"))),
            };
            Ok(Row { line, id: field("id")?, label: field("label")?, text })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `content` to a file called `name` and reads it as `format`.
    fn read(name: &str, format: Option<Format>, content: &str) -> Result<Vec<Row>> {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("write");
        read_rows(&path, format)
    }

    fn row(line: usize, id: Option<&str>, label: Option<&str>, text: &str) -> Row {
        Row { line, id: id.map(Into::into), label: label.map(Into::into), text: text.into() }
    }

    /// The error's message without the temporary directory: `name:line: message`.
    fn error(result: Result<impl std::fmt::Debug>) -> String {
        let message = result.expect_err("an error").to_string();
        message.rsplit('/').next().unwrap_or(&message).to_owned()
    }

    #[test]
    fn format_follows_the_extension_as_in_the_producer() {
        assert_eq!(Format::from_path(Path::new("a/b.TSV")), Format::Tsv);
        assert_eq!(Format::from_path(Path::new("b.tab")), Format::Tsv);
        assert_eq!(Format::from_path(Path::new("b.csv")), Format::Csv);
        assert_eq!(Format::from_path(Path::new("b.ndjson")), Format::Jsonl);
        assert_eq!(Format::from_path(Path::new("b.jsonl")), Format::Jsonl);
        assert_eq!(Format::from_path(Path::new("b.txt")), Format::Text);
        assert_eq!(Format::from_path(Path::new("texts")), Format::Text);
    }

    #[test]
    fn tsv_is_the_training_format_with_its_labels() {
        let rows = read("test.tsv", None, "label\ttext\r\n1\t手机很好\r\n\r\n-1\ta\tb\n").expect("reads");
        assert_eq!(rows, [row(2, None, Some("1"), "手机很好"), row(4, None, Some("-1"), "a\tb")]);
        assert_eq!(
            error(read("bad.tsv", None, "1\tok\nno tab\n")),
            "bad.tsv:2: expected `label<TAB>text`, found no tab"
        );
    }

    #[test]
    fn csv_finds_its_columns_by_name() {
        let content = "\u{feff}ID,Text,label,source\r\nr-1,\"好,很好\",1,jd\r\n\r\n,\"says \"\"hi\"\"\nover two lines\",,tb\r\nr-3,last, 0 ,x";
        let rows = read("reviews.csv", None, content).expect("reads");
        assert_eq!(
            rows,
            [
                row(2, Some("r-1"), Some("1"), "好,很好"),
                row(4, None, None, "says \"hi\"\nover two lines"),
                row(6, Some("r-3"), Some("0"), "last"),
            ]
        );
        assert_eq!(read("t.csv", None, "text\nonly text\n").expect("reads"), [row(2, None, None, "only text")]);
    }

    #[test]
    fn csv_errors_name_the_line() {
        assert_eq!(
            error(read("a.csv", None, "id,text\n\na,one\nb\n")),
            "a.csv:4: expected 2 columns as in the header, got 1"
        );
        assert_eq!(error(read("b.csv", None, "id,text\r\na,one\r\nb,\"\"\r\n")), "b.csv:3: empty text");
        assert_eq!(
            error(read("c.csv", None, "\nid,body\n1,x\n")),
            "c.csv:2: no `text` column in the header (columns: id, body)"
        );
        assert!(matches!(read("d.csv", None, ""), Err(TrainError::Empty(_))));
        assert!(matches!(read("e.csv", None, "id,text\n"), Err(TrainError::Empty(_))));
    }

    #[test]
    fn jsonl_takes_text_label_and_id() {
        let content = "{\"id\":\"r-1\",\"text\":\"手机很好\",\"label\":\"1\",\"stars\":5}\r\n\n{\"text\":\"no id\"}\n{\"id\":42,\"label\":-1,\"text\":\"numbers\"}\n";
        let rows = read("r.jsonl", None, content).expect("reads");
        assert_eq!(
            rows,
            [
                row(1, Some("r-1"), Some("1"), "手机很好"),
                row(3, None, None, "no id"),
                row(4, Some("42"), Some("-1"), "numbers")
            ]
        );
    }

    #[test]
    fn jsonl_errors_name_the_line() {
        let cases = [
            ("{\"text\": \n", "r.ndjson:2: invalid JSON"),
            ("[1]\n", "r.ndjson:2: expected a JSON object with `text`"),
            ("{\"id\":\"a\"}\n", "r.ndjson:2: no string `text`"),
            ("{\"text\":\" \"}\n", "r.ndjson:2: empty text"),
            ("{\"text\":\"x\",\"label\":[1]}\n", "r.ndjson:2: `label` must be a string or a number"),
        ];
        for (line, want) in cases {
            let got = error(read("r.ndjson", None, &format!("{{\"text\":\"fine\"}}\n{line}")));
            assert!(got.starts_with(want), "{got} should start with {want}");
        }
    }

    #[test]
    fn text_is_one_text_a_line_whatever_it_holds() {
        let rows =
            read("notes.txt", None, "\u{feff}好评\r\n\r\n  \n1\tnot a label\n{\"text\": \"not JSON\"}").expect("reads");
        assert_eq!(
            rows,
            [
                row(1, None, None, "好评"),
                row(4, None, None, "1\tnot a label"),
                row(5, None, None, "{\"text\": \"not JSON\"}")
            ]
        );
        assert!(matches!(read("blank.txt", None, "\n \r\n"), Err(TrainError::Empty(_))));
    }

    #[test]
    fn the_format_flag_overrides_the_extension() {
        let rows = read("data.txt", Some(Format::Tsv), "1\tok\n").expect("reads");
        assert_eq!(rows, [row(1, None, Some("1"), "ok")]);
        let rows = read("data.tsv", Some(Format::Text), "1\tok\n").expect("reads");
        assert_eq!(rows, [row(1, None, None, "1\tok")]);
    }

    #[test]
    fn bad_utf8_names_its_line() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("l.csv");
        std::fs::write(&path, b"text\nok\n\xff\n").expect("write");
        assert_eq!(error(read_rows(&path, None)), "l.csv:3: not valid UTF-8");
    }

    #[test]
    fn eval_needs_a_label_in_every_row() {
        let dir = tempfile::tempdir().expect("dir");
        let write = |name: &str, content: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, content).expect("write");
            path
        };
        let labelled = read_labelled(&write("ok.jsonl", "{\"text\":\"a\",\"label\":\"1\"}\n"), None).expect("reads");
        assert_eq!(labelled, [Example { label: "1".into(), text: "a".into() }]);
        let got = error(read_labelled(&write("plain.txt", "\n1\tgood\n"), None));
        assert!(got.starts_with("plain.txt:2: plain text has no labels"), "{got}");
        let got = error(read_labelled(&write("some.csv", "label,text\n1,a\n,b\n"), None));
        assert_eq!(got, "some.csv:3: no label (eval needs a `label` in every row)");
        let got = error(read_labelled(&write("none.jsonl", "{\"text\":\"a\"}\n"), None));
        assert_eq!(got, "none.jsonl:1: no label (eval needs a `label` in every row)");
    }
}
