//! Every line arrives exactly once, with the right key and JSON; ids are stable.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::support::{by_key, create_topic, label, produce_ok, read_all, texts, write};

#[test]
fn every_tsv_line_arrives_once_with_its_key_and_json() {
    let topic = create_topic(3, &[]);
    let dir = tempfile::tempdir().expect("dir");
    // A header, CRLF on some lines, blank lines between some: line numbers count them all.
    let mut data = String::from("label\ttext\n");
    let mut expected = BTreeMap::new();
    let mut line = 1;
    for (i, text) in texts(300).iter().enumerate() {
        if i % 50 == 7 {
            data.push('\n');
            line += 1;
        }
        line += 1;
        data.push_str(&format!("{}\t{text}{}", label(i), if i % 3 == 0 { "\r\n" } else { "\n" }));
        let id = format!("reviews:{line}");
        expected.insert(id.clone(), json!({"id": id, "text": text, "label": label(i)}));
    }
    let file = write(dir.path(), "reviews.tsv", &data);

    let stderr = produce_ok(&["--topic", &topic, &file], None);
    assert!(stderr.contains("sent 300, failed 0, skipped 0"), "{stderr}");
    assert_eq!(by_key(&read_all(&topic)), expected);
}

#[test]
fn every_jsonl_line_arrives_once_with_all_its_fields() {
    let topic = create_topic(3, &[]);
    let dir = tempfile::tempdir().expect("dir");
    let mut data = String::new();
    let mut expected = BTreeMap::new();
    for (i, text) in texts(250).iter().enumerate() {
        let mut review =
            json!({"text": text, "source": "jd", "created_at": "2026-11-27T12:00:00Z", "meta": {"stars": i % 5}});
        // Every tenth line has no id: it gets one from the file name and line.
        let id = if i % 10 == 0 { format!("feed:{}", i + 1) } else { format!("r-{i:06}") };
        if i % 10 != 0 {
            review["id"] = Value::String(id.clone());
        }
        data.push_str(&format!("{review}\n"));
        review["id"] = Value::String(id.clone());
        expected.insert(id, review);
    }
    let file = write(dir.path(), "feed.jsonl", &data);

    produce_ok(&["--topic", &topic, &file], None);
    assert_eq!(by_key(&read_all(&topic)), expected);
}

#[test]
fn csv_from_stdin_takes_ids_from_the_chosen_column() {
    let topic = create_topic(2, &[]);
    let data = "review_id,body,label\r\nx-1,\"好,很好\",1\r\nx-2,\"two\nlines\",0\r\n";
    let stderr = produce_ok(
        &["--topic", &topic, "--format", "csv", "--id-column", "review_id", "--text-column", "body", "-"],
        Some(data),
    );
    assert!(stderr.contains("sent 2,"), "{stderr}");
    let got = by_key(&read_all(&topic));
    assert_eq!(got["x-1"], json!({"id": "x-1", "text": "好,很好", "label": "1"}));
    assert_eq!(got["x-2"], json!({"id": "x-2", "text": "two\nlines", "label": "0"}));
}

#[test]
fn a_rerun_publishes_the_same_ids_and_values() {
    let topic = create_topic(3, &[]);
    let dir = tempfile::tempdir().expect("dir");
    let texts = texts(120);
    let file = write(dir.path(), "notes.txt", &(texts.join("\n") + "\n"));

    produce_ok(&["--topic", &topic, &file], None);
    let first = by_key(&read_all(&topic));
    assert_eq!(first.len(), 120);
    assert_eq!(first["notes:1"]["text"], Value::String(texts[0].clone()));

    produce_ok(&["--topic", &topic, &file], None);
    let records = read_all(&topic);
    assert_eq!(records.len(), 240);
    let mut seen: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for r in &records {
        seen.entry(&r.key).or_default().push(&r.value);
    }
    assert_eq!(seen.len(), 120);
    for (key, values) in seen {
        assert_eq!(values, [&first[key], &first[key]], "{key}");
    }
}

#[test]
fn repeat_makes_distinct_ids_and_limit_caps_the_count() {
    let topic = create_topic(1, &[]);
    let dir = tempfile::tempdir().expect("dir");
    let file = write(dir.path(), "load.txt", "a\nb\nc\n");
    let stderr = produce_ok(&["--topic", &topic, "--repeat", "3", "--limit", "7", &file], None);
    assert!(stderr.contains("sent 7,"), "{stderr}");
    let keys: Vec<String> = read_all(&topic).into_iter().map(|r| r.key).collect();
    assert_eq!(keys, ["load:1", "load:2", "load:3", "load:1#2", "load:2#2", "load:3#2", "load:1#3"]);
}
