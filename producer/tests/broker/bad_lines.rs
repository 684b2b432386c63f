//! Bad lines are reported as `file:line: reason` and skipped, or stop the run with --strict.

use crate::support::{by_key, create_topic, produce, produce_ok, read_all, stderr, write};

const TSV: &str = "1\t好评\n0\tfine\nno tab on this line\n\n1\tgood\n-1\t   \n0\tlast\n";

fn jsonl() -> String {
    let long_id = "i".repeat(200);
    format!(
        "{{\"id\":\"j-1\",\"text\":\"ok\"}}\n{{\"id\": \"j-2\", \"text\": \n{{\"id\":\"j-3\"}}\n{{\"id\":\"{long_id}\",\"text\":\"x\"}}\n{{\"id\":\"j-5\",\"text\":\"也好\"}}\n"
    )
}

#[test]
fn bad_lines_are_reported_with_their_line_numbers_and_skipped() {
    let topic = create_topic(2, &[]);
    let dir = tempfile::tempdir().expect("dir");
    let tsv = write(dir.path(), "bad.tsv", TSV);
    let jsonl = write(dir.path(), "bad.jsonl", &jsonl());

    let err = produce_ok(&["--topic", &topic, &tsv, &jsonl], None);
    for expected in [
        format!("{tsv}:3: no tab"),
        format!("{tsv}:6: field `text` is empty"),
        format!("{jsonl}:2: value is not valid JSON"),
        format!("{jsonl}:3: field `text` is missing"),
        format!("{jsonl}:4: id is invalid: must be 1 to 128 characters, got 200"),
    ] {
        assert!(err.contains(&expected), "missing `{expected}` in:\n{err}");
    }
    assert!(err.contains("sent 6, failed 0, skipped 5"), "{err}");
    let keys: Vec<String> = by_key(&read_all(&topic)).into_keys().collect();
    assert_eq!(keys, ["bad:1", "bad:2", "bad:5", "bad:7", "j-1", "j-5"]);
}

#[test]
fn strict_stops_at_the_first_bad_line_with_a_failure_exit_code() {
    let topic = create_topic(1, &[]);
    let dir = tempfile::tempdir().expect("dir");
    let tsv = write(dir.path(), "bad.tsv", TSV);

    let output = produce(&["--topic", &topic, "--strict", &tsv], None);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{tsv}:3: no tab")), "{err}");
    assert!(!err.contains(&format!("{tsv}:6:")), "read past the first bad line: {err}");
    assert!(err.contains("stopped at the first bad line (--strict)"), "{err}");
    // What came before the bad line was still delivered.
    let keys: Vec<String> = read_all(&topic).into_iter().map(|r| r.key).collect();
    assert_eq!(keys, ["bad:1", "bad:2"]);
}
