//! `eval` and `predict` on each input format with the model crate's tiny
//! parity model (`model/tests/fixtures/tiny-bert`, labels -1/0/1): the same
//! rows give the same metrics and predictions whatever the format, `predict`
//! keeps the input's id and label, and `eval` refuses data without labels.

use std::path::{Path, PathBuf};

use bertstream_train::evaluate::{evaluate_file, predict_file};
use bertstream_train::input::Format;
use model::LoadOptions;
use serde_json::Value;

const ROWS: [(&str, &str); 4] = [("1", "手机很好"), ("-1", "质量太差了, 退货"), ("0", "还行吧"), ("1", "非常满意")];

fn tiny_bert() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures/tiny-bert")
}

fn write(dir: &Path, name: &str, content: String) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write");
    path
}

fn predict(input: &Path, format: Option<Format>) -> Vec<Value> {
    let mut out = Vec::new();
    let n = predict_file(&tiny_bert(), input, format, &mut out, &LoadOptions::default()).expect("predict");
    let lines: Vec<Value> =
        String::from_utf8(out).expect("utf-8").lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(lines.len(), n);
    lines
}

#[test]
fn every_format_gives_the_same_metrics_and_predictions() {
    let tmp = tempfile::tempdir().expect("dir");
    let dir = tmp.path();
    let tsv = write(dir, "test.tsv", "label\ttext\n".to_owned() + &ROWS.map(|(l, t)| format!("{l}\t{t}\n")).concat());
    let tab = write(dir, "test.tab", ROWS.map(|(l, t)| format!("{l}\t{t}\n")).concat());
    let csv =
        write(dir, "test.csv", "id,text,label\n".to_owned() + &ROWS.map(|(l, t)| format!("r,\"{t}\",{l}\n")).concat());
    let jsonl = write(
        dir,
        "test.ndjson",
        ROWS.map(|(l, t)| serde_json::json!({"text": t, "label": l, "id": "r"}).to_string() + "\n").concat(),
    );
    let text = write(dir, "texts.txt", ROWS.map(|(_, t)| format!("{t}\n")).concat());

    let options = LoadOptions::default();
    let metrics = evaluate_file(&tiny_bert(), &tsv, None, &options).expect("eval tsv");
    assert_eq!(metrics.examples, ROWS.len());
    for data in [&tab, &csv, &jsonl] {
        assert_eq!(evaluate_file(&tiny_bert(), data, None, &options).expect("eval"), metrics, "{}", data.display());
    }

    // predict keeps the TSV label as the true label beside the predicted one.
    let from_tsv = predict(&tsv, None);
    for (line, (label, text)) in from_tsv.iter().zip(ROWS) {
        assert_eq!((&line["text"], &line["true_label"]), (&Value::from(text), &Value::from(label)), "{line}");
        assert!(line["label"].is_string() && line["scores"].as_object().is_some_and(|s| s.len() == 3), "{line}");
    }
    assert_eq!(from_tsv[0]["id"], "2", "line numbers are the ids where the input has none");
    // Text, predicted label and scores: the same from every format.
    let predicted = |lines: &[Value]| -> Vec<[Value; 3]> {
        lines.iter().map(|l| [l["text"].clone(), l["label"].clone(), l["scores"].clone()]).collect()
    };
    for input in [&csv, &jsonl, &text] {
        let lines = predict(input, None);
        assert_eq!(predicted(&lines), predicted(&from_tsv), "{}", input.display());
        if input == &text {
            assert!(lines.iter().all(|l| l.get("true_label").is_none() && l["id"].is_string()), "{lines:?}");
        } else {
            assert!(lines.iter().all(|l| l["id"] == "r"), "{lines:?}");
            assert_eq!(lines[1]["true_label"], "-1");
        }
    }

    // --format overrides the extension: the TSV read as plain text has no labels.
    let as_text = predict(&tsv, Some(Format::Text));
    assert_eq!(as_text.len(), ROWS.len() + 1, "the header is a text too");
    assert_eq!(as_text[1]["text"], "1\t手机很好");
    let err = evaluate_file(&tiny_bert(), &tsv, Some(Format::Text), &options).expect_err("no labels");
    assert!(err.to_string().ends_with("test.tsv:1: plain text has no labels; eval needs tsv (`label<TAB>text`), or csv or jsonl with a `label` (--format overrides the extension)"), "{err}");
}

#[test]
fn bad_input_names_file_and_line() {
    let tmp = tempfile::tempdir().expect("dir");
    let options = LoadOptions::default();
    let bad = write(tmp.path(), "bad.tsv", "1\tok\n\nno tab\n".into());
    let err = predict_file(&tiny_bert(), &bad, None, &mut Vec::new(), &options).expect_err("bad line");
    assert!(err.to_string().ends_with("bad.tsv:3: expected `label<TAB>text`, found no tab"), "{err}");
    let unlabelled = write(tmp.path(), "some.jsonl", "{\"text\":\"a\",\"label\":\"1\"}\n{\"text\":\"b\"}\n".into());
    let err = evaluate_file(&tiny_bert(), &unlabelled, None, &options).expect_err("no label");
    assert!(err.to_string().ends_with("some.jsonl:2: no label (eval needs a `label` in every row)"), "{err}");
}
