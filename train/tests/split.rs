//! `split` and TSV reading: deterministic, stratified, free of duplicates and
//! conflicting labels; bad input names the file and line.

use std::collections::HashSet;
use std::path::Path;

use bertstream_train::data::{dedupe, read_tsv, split, Example, Ratios};
use bertstream_train::{split_file, TrainError};

fn example(label: &str, text: &str) -> Example {
    Example { label: label.into(), text: text.into() }
}

fn write(dir: &Path, name: &str, content: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write");
    path
}

#[test]
fn reads_header_crlf_and_tabs_in_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "a.tsv", "label\ttext\r\n1\t好\r\n\r\n-1\t不好\tat all\r\n");
    let rows = read_tsv(&path).expect("reads");
    assert_eq!(rows, vec![example("1", "好"), example("-1", "不好\tat all")]);
    let no_header = write(dir.path(), "b.tsv", "0\tmeh\n");
    assert_eq!(read_tsv(&no_header).expect("reads"), vec![example("0", "meh")]);
}

#[test]
fn bad_lines_name_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "bad.tsv", "label\ttext\n1\tgood\n\nno tab here\n");
    let err = read_tsv(&path).expect_err("no tab");
    assert!(matches!(err, TrainError::BadLine { line: 4, .. }), "{err}");
    assert!(err.to_string().contains("bad.tsv:4:"), "{err}");
    let empty_text = write(dir.path(), "e.tsv", "1\t  \n");
    assert!(read_tsv(&empty_text).expect_err("empty text").to_string().contains("e.tsv:1: empty text"));
    let empty = write(dir.path(), "empty.tsv", "label\ttext\n\n");
    assert!(matches!(read_tsv(&empty), Err(TrainError::Empty(_))));
    let latin1 = dir.path().join("l.tsv");
    std::fs::write(&latin1, b"1\tok\n1\tcaf\xe9\n").expect("write");
    assert!(read_tsv(&latin1).expect_err("not utf-8").to_string().contains("l.tsv:2: not valid UTF-8"));
}

#[test]
fn dedupe_drops_duplicates_and_conflicts() {
    let rows = vec![
        example("1", "a"),
        example("1", "a"),
        example("1", "b"),
        example("-1", "b"),
        example("1", "b"),
        example("-1", "c"),
    ];
    let (kept, stats) = dedupe(rows);
    assert_eq!(kept, vec![example("1", "a"), example("-1", "c")]);
    assert_eq!(
        (stats.rows_read, stats.duplicate_rows, stats.conflicting_texts, stats.conflicting_rows, stats.kept),
        (6, 1, 1, 3, 2)
    );
}

fn corpus() -> Vec<Example> {
    let mut rows = Vec::new();
    for i in 0..600 {
        rows.push(example("1", &format!("pos {i}")));
    }
    for i in 0..300 {
        rows.push(example("-1", &format!("neg {i}")));
    }
    for i in 0..100 {
        rows.push(example("0", &format!("mid {i}")));
    }
    rows
}

#[test]
fn split_is_stratified_disjoint_and_deterministic() {
    let rows = corpus();
    let ratios: Ratios = "6:2:2".parse().expect("ratios");
    let parts = split(&rows, ratios, 42);
    let count = |part: &[Example], label: &str| part.iter().filter(|e| e.label == label).count();
    for (part, share) in parts.iter().zip([0.6, 0.2, 0.2]) {
        for (label, n) in [("1", 600.0), ("-1", 300.0), ("0", 100.0)] {
            assert_eq!(count(part, label), (n * share) as usize, "label {label}");
        }
    }
    let texts: Vec<HashSet<&str>> = parts.iter().map(|p| p.iter().map(|e| e.text.as_str()).collect()).collect();
    assert!(texts[0].is_disjoint(&texts[1]) && texts[0].is_disjoint(&texts[2]) && texts[1].is_disjoint(&texts[2]));
    assert_eq!(texts.iter().map(HashSet::len).sum::<usize>(), rows.len());
    assert_eq!(parts, split(&rows, ratios, 42), "same seed, same split");
    assert_ne!(parts[0], split(&rows, ratios, 43)[0], "another seed, another split");
    // Shuffled within each part, not grouped by label.
    assert_ne!(parts[0][..10].iter().map(|e| &e.label).collect::<HashSet<_>>().len(), 1);
}

#[test]
fn split_file_writes_three_files_and_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut content = String::from("label\ttext\r\n");
    for e in corpus() {
        content.push_str(&format!("{}\t{}\r\n", e.label, e.text));
    }
    content.push_str("1\tpos 1\r\n-1\tpos 2\r\n");
    let input = write(dir.path(), "all.tsv", &content);
    let out = dir.path().join("split");
    let summary = split_file(&input, &out, "8:1:1".parse().expect("ratios"), 7).expect("split");
    assert_eq!((summary.dedup.duplicate_rows, summary.dedup.conflicting_texts, summary.dedup.kept), (1, 1, 999));
    let total: usize =
        ["train.tsv", "dev.tsv", "test.tsv"].iter().map(|f| read_tsv(&out.join(f)).expect("reads back").len()).sum();
    assert_eq!(total, 999);
    let first = std::fs::read(out.join("train.tsv")).expect("train");
    split_file(&input, &out, "8:1:1".parse().expect("ratios"), 7).expect("split again");
    assert_eq!(first, std::fs::read(out.join("train.tsv")).expect("train"), "byte-identical on rerun");
}

#[test]
fn ratios_are_checked() {
    assert!("6:2:2".parse::<Ratios>().is_ok());
    assert!("8:2:0".parse::<Ratios>().is_ok());
    assert!("0:1:1".parse::<Ratios>().is_err());
    assert!("6:2".parse::<Ratios>().is_err());
    assert!("a:b:c".parse::<Ratios>().is_err());
}
