//! Newer wins (RELIABILITY.md L6) against the real Kafka and Postgres: edited
//! reviews read under backlog, and a newer message Postgres refuses. The
//! audit checks L6 after every run (`Ledger::assert_l6`).

use std::time::Duration;

use bertstream_tests::*;

const STEADY: Duration = Duration::from_secs(180);

/// A long first version and a short edit of each review, all waiting in the
/// topic: length-grouped batches and concurrent sink writes must still leave
/// every edit in the table and last on the output topic.
#[tokio::test(flavor = "multi_thread")]
async fn edited_reviews_read_under_backlog_keep_the_newest_version() {
    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    let ids: Vec<String> = (0..400).map(|i| format!("e-{i:03}")).collect();
    let first: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| review(id, &sample_text(i).repeat(if i % 2 == 0 { 12 } else { 1 })))
        .collect();
    let edits: Vec<_> = ids.iter().enumerate().map(|(i, id)| review(id, &format!("edit {i}: 好"))).collect();
    publish(&topics.input, &first).await;
    publish(&topics.input, &edits).await;
    let mut worker = Worker::start(&topics, &db, &[("MAX_BATCH_SIZE", "16")]);
    wait_all_committed(&topics, STEADY).await;
    let ledger = stop_and_audit([&mut worker], &topics, &db).await;
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(ledger.rows[id].text, format!("edit {i}: 好"), "{id}");
    }
}

/// Two messages of one id in a batch, the newer refused by Postgres (a NUL in
/// an extra field, which jsonb cannot hold): the newer goes to the DLQ and the
/// older is stored, not lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_newer_message_leaves_the_older_one_stored() {
    let topics = Topics::create(1).await;
    let db = fresh_database().await;
    let mut records: Vec<_> = (0..10).map(|i| review(&format!("n-{i}"), &sample_text(i))).collect();
    records.push(review("dup", "第一次，很好"));
    records.push((Some(b"dup".to_vec()), Some(br#"{"id":"dup","text":"second","note":"a\u0000b"}"#.to_vec())));
    records.extend((10..20).map(|i| review(&format!("n-{i}"), &sample_text(i))));
    publish(&topics.input, &records).await;
    let mut worker = Worker::start(&topics, &db, &[]);
    wait_until(STEADY, "21 rows", || async { stored_count(&db).await == 21 }).await;
    wait_until(STEADY, "the refused message in the DLQ", || async { !read_all(&topics.dlq).is_empty() }).await;
    let ledger = stop_and_audit([&mut worker], &topics, &db).await;
    assert_eq!(ledger.dlq.len(), 1);
    assert_eq!(ledger.dlq[0].headers["source.offset"], "11", "the newer message is the one refused");
    assert_eq!(ledger.dlq[0].headers["error.kind"], "rejected");
    assert_eq!(ledger.rows["dup"].text, "第一次，很好");
}
