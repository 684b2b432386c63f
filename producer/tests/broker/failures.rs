//! Messages that cannot be delivered make the exit code non-zero.

use crate::support::{create_topic, produce, read_all, stderr, write};

/// `(sent, failed)` from the summary line.
fn counts(stderr: &str) -> (usize, usize) {
    let line = stderr.lines().find(|l| l.starts_with("sent ")).expect("summary line");
    let number = |word: &str| -> usize {
        let at = line.find(word).expect(word) + word.len();
        line[at..].split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok()).expect("count")
    };
    (number("sent "), number("failed "))
}

#[test]
fn an_undeliverable_message_fails_the_run() {
    // The broker refuses batches over 1,000 bytes on this topic; random CJK
    // text does not compress below that.
    let topic = create_topic(1, &[("max.message.bytes", "1000")]);
    let dir = tempfile::tempdir().expect("dir");
    let big: String = (0..2000).map(|_| char::from_u32(rand::random_range(0x4E00..0x9FA5)).unwrap_or('字')).collect();
    let file = write(dir.path(), "big.txt", &format!("small one\n{big}\nsmall two\n"));

    let output = produce(&["--topic", &topic, &file], None);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("delivery failed for id `big:2`"), "{err}");
    // The small ones may share the big one's batch and fail with it.
    let (sent, failed) = counts(&err);
    assert!(failed >= 1 && sent + failed == 3, "{err}");
    assert_eq!(read_all(&topic).len(), sent);
}

#[test]
fn unreachable_brokers_fail_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("dir");
    let file = write(dir.path(), "x.txt", "hello\n");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bertstream-produce"))
        .args(["--brokers", "127.0.0.1:1", "--topic", "nowhere", &file])
        .output()
        .expect("run");
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot reach the brokers at 127.0.0.1:1"), "{err}");
}
