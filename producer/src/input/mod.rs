//! Reading reviews from files and stdin. Each format turns a byte stream into
//! [`Entry`]s: a review with its line number, or a bad line with the reason.
//! Formats never do I/O of their own beyond the reader they are given, so they
//! are unit-tested on in-memory text.

mod csv;
mod csv_lines;
mod entry;
mod header;
mod jsonl;
mod lines;
mod text;
mod tsv;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use entry::LineIds;

use crate::error::ProduceError;

pub use entry::{Columns, Entry, InputError};

/// How an input is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Tsv,
    Csv,
    Jsonl,
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

pub type Entries = Box<dyn Iterator<Item = Result<Entry, InputError>> + Send>;

/// One file or stdin, with what ids and messages call it.
#[derive(Debug, Clone)]
pub struct Input {
    /// For messages: the path as given, or `stdin`.
    pub name: String,
    /// For generated ids: the file stem, or `stdin`.
    pub id_prefix: String,
    pub path: Option<PathBuf>,
    pub format: Format,
    /// Size in bytes when known (regular files), for the progress bar's ETA.
    pub size: Option<u64>,
}

impl Input {
    pub fn stdin(format: Option<Format>) -> Input {
        Input {
            name: "stdin".into(),
            id_prefix: "stdin".into(),
            path: None,
            format: format.unwrap_or(Format::Text),
            size: None,
        }
    }

    /// Checks that the file can be opened now, so a typo fails before anything is sent.
    pub fn file(path: &Path, format: Option<Format>) -> Result<Input, ProduceError> {
        let open_error = |source| ProduceError::Open { path: path.to_owned(), source };
        let meta = std::fs::metadata(path).map_err(open_error)?;
        if meta.is_dir() {
            return Err(open_error(std::io::Error::other("is a directory")));
        }
        File::open(path).map_err(open_error)?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Input {
            name: path.display().to_string(),
            id_prefix: if stem.is_empty() { "file".into() } else { stem },
            path: Some(path.to_owned()),
            format: format.unwrap_or_else(|| Format::from_path(path)),
            size: meta.is_file().then_some(meta.len()),
        })
    }

    pub fn open(&self) -> std::io::Result<Box<dyn BufRead + Send>> {
        Ok(match &self.path {
            Some(path) => Box::new(BufReader::with_capacity(256 * 1024, File::open(path)?)),
            None => Box::new(BufReader::new(std::io::stdin())),
        })
    }

    /// The entries of this input, read from `reader` (normally [`Input::open`]).
    pub fn entries(&self, reader: Box<dyn BufRead + Send>, columns: &Columns) -> Entries {
        let ids = LineIds::new(self.id_prefix.clone());
        let columns = columns.clone();
        match self.format {
            Format::Tsv => Box::new(lines::LineEntries::new(reader, tsv::Tsv::new(ids, columns))),
            Format::Csv => Box::new(csv::CsvEntries::new(reader, ids, columns)),
            Format::Jsonl => Box::new(lines::LineEntries::new(reader, jsonl::Jsonl::new(ids, columns))),
            Format::Text => Box::new(lines::LineEntries::new(reader, text::Text::new(ids))),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Reads `data` as an input named `name` and returns its entries.
    pub(crate) fn read(name: &str, format: Format, columns: Columns, data: &str) -> Vec<Result<Entry, String>> {
        let input = Input {
            name: name.into(),
            id_prefix: Path::new(name).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            path: None,
            format,
            size: None,
        };
        let reader: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(data.as_bytes().to_vec()));
        input.entries(reader, &columns).map(|e| e.map_err(|e| e.to_string())).collect()
    }

    /// Entries as (line, id, text) for reviews and (line, reason) for bad lines.
    pub(crate) fn summarize(entries: &[Result<Entry, String>]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e {
                Ok(Entry::Review { line, review, .. }) => format!("{line} {} {}", review.id, review.text),
                Ok(Entry::Bad { line, reason, .. }) => format!("{line} BAD {reason}"),
                Err(e) => format!("FATAL {e}"),
            })
            .collect()
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(Format::from_path(Path::new("a/b.TSV")), Format::Tsv);
        assert_eq!(Format::from_path(Path::new("b.csv")), Format::Csv);
        assert_eq!(Format::from_path(Path::new("b.ndjson")), Format::Jsonl);
        assert_eq!(Format::from_path(Path::new("b.jsonl")), Format::Jsonl);
        assert_eq!(Format::from_path(Path::new("b.txt")), Format::Text);
        assert_eq!(Format::from_path(Path::new("reviews")), Format::Text);
    }

    /// The bytes the entries of `data` account for (progress and rate use them) are all of it.
    pub(crate) fn assert_bytes_add_up(name: &str, format: Format, data: &str) {
        let total: u64 = read(name, format, Columns::default(), data)
            .iter()
            .map(|e| match e {
                Ok(Entry::Review { bytes, .. } | Entry::Bad { bytes, .. }) => *bytes,
                Err(_) => 0,
            })
            .sum();
        assert_eq!(total, data.len() as u64);
    }

    #[test]
    fn bytes_add_up_to_the_input_size() {
        assert_bytes_add_up("a.tsv", Format::Tsv, "\u{feff}label\ttext\r\n\r\n1\t好\r\nbad\n\n0\tok");
    }
}
