//! --rate holds the rate, judged by the broker's own append timestamps.

use rdkafka::Timestamp;

use crate::support::{create_topic, produce_ok, read_all, texts, write};

#[test]
fn rate_holds_within_a_quarter_over_three_seconds() {
    const RATE: f64 = 200.0;
    const COUNT: usize = 600;
    // LogAppendTime: the broker stamps each batch when it appends it, so this
    // measures when messages reached the broker, not when they were produced.
    let topic = create_topic(2, &[("message.timestamp.type", "LogAppendTime")]);
    let dir = tempfile::tempdir().expect("dir");
    let file = write(dir.path(), "paced.txt", &(texts(COUNT).join("\n") + "\n"));

    produce_ok(&["--topic", &topic, "--rate", "200/s", &file], None);

    let mut stamps: Vec<i64> = read_all(&topic)
        .iter()
        .map(|r| match r.timestamp {
            Timestamp::LogAppendTime(ms) => ms,
            other => panic!("expected a log-append timestamp, got {other:?}"),
        })
        .collect();
    assert_eq!(stamps.len(), COUNT);
    stamps.sort_unstable();
    // Skip the first few: the producer's first batch waits for its connection and id.
    let warm = 10;
    let span_s = (stamps[COUNT - 1] - stamps[warm]) as f64 / 1000.0;
    let rate = (COUNT - 1 - warm) as f64 / span_s;
    // Loose enough for a loaded shared machine (broker append times are batch
    // times); an unpaced run is tens of times faster and fails it.
    assert!((rate - RATE).abs() <= RATE * 0.25, "{rate:.1} msg/s over {span_s:.2}s, wanted {RATE} ± 25%");
}
