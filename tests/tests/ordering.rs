//! Newer wins (RELIABILITY.md L6) against the real Kafka and Postgres: edited
//! reviews read under backlog, and a newer message Postgres refuses.

use std::collections::HashMap;
use std::time::Duration;

use bertstream_tests::*;

const STEADY: Duration = Duration::from_secs(180);

/// Each stored row: id -> (text, source partition, source offset).
async fn stored_rows(db: &str) -> HashMap<String, (String, i32, i64)> {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db).await.expect("connect");
    let rows: Vec<(String, String, i32, i64)> =
        sqlx::query_as("SELECT review_id, text, source_partition, source_offset FROM classifications").fetch_all(&mut conn).await.expect("rows");
    rows.into_iter().map(|(id, text, p, o)| (id, (text, p, o))).collect()
}

/// L6: every input message is stored, superseded by a stored newer one, or in
/// the DLQ; each id's row holds its newest message that is not in the DLQ;
/// the last output record of each id is that row's result.
fn assert_newer_wins(ledger: &Ledger, stored: &HashMap<String, (String, i32, i64)>) {
    let dead: std::collections::HashSet<(i32, i64)> = ledger
        .dlq
        .iter()
        .map(|r| (r.headers["source.partition"].parse().expect("partition"), r.headers["source.offset"].parse().expect("offset")))
        .collect();
    let mut newest: HashMap<String, (i32, i64)> = HashMap::new();
    for record in ledger.input.iter().filter(|r| !dead.contains(&(r.partition, r.offset))) {
        let position = newest.entry(record.key_str()).or_insert((record.partition, record.offset));
        *position = (*position).max((record.partition, record.offset));
    }
    for (id, position) in &newest {
        let (_, partition, offset) = stored.get(id).unwrap_or_else(|| panic!("{id}: not stored"));
        assert_eq!((*partition, *offset), *position, "{id}: the table holds an older message");
    }
    let mut last: HashMap<String, schemas::ClassificationV1> = HashMap::new();
    for record in &ledger.output {
        let result = serde_json::from_slice(record.value.as_deref().expect("value")).expect("ClassificationV1");
        last.insert(record.key_str(), result);
    }
    for (id, (_, partition, offset)) in stored {
        let result = &last[id];
        assert_eq!((result.source.partition, result.source.offset), (*partition, *offset), "{id}: the last output record is not the stored result");
    }
}

/// A long first version and a short edit of each review, all waiting in the
/// topic: length-grouped batches and concurrent sink writes must still leave
/// every edit in the table and last on the output topic.
#[tokio::test(flavor = "multi_thread")]
async fn edited_reviews_read_under_backlog_keep_the_newest_version() {
    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    let ids: Vec<String> = (0..400).map(|i| format!("e-{i:03}")).collect();
    let first: Vec<_> = ids.iter().enumerate().map(|(i, id)| review(id, &sample_text(i).repeat(if i % 2 == 0 { 12 } else { 1 }))).collect();
    let edits: Vec<_> = ids.iter().enumerate().map(|(i, id)| review(id, &format!("edit {i}: 好"))).collect();
    publish(&topics.input, &first).await;
    publish(&topics.input, &edits).await;
    let mut worker = Worker::start(&topics, &db, &[("MAX_BATCH_SIZE", "16")]);
    wait_until(STEADY, "every input done", || async {
        let committed = committed_offsets(&topics.input, &topics.group);
        end_offsets(&topics.input).iter().all(|(p, end)| *end == 0 || committed.get(p) == Some(end))
    })
    .await;
    worker.stop();

    let ledger = audit(&topics, &db).await;
    let stored = stored_rows(&db).await;
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(stored[id].0, format!("edit {i}: 好"), "{id}");
    }
    assert_newer_wins(&ledger, &stored);
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
    worker.stop();

    let ledger = Ledger::collect(&topics, &db).await;
    ledger.assert_l4();
    assert_all_committed(&topics);
    assert_eq!(ledger.dlq.len(), 1);
    assert_eq!(ledger.dlq[0].headers["source.offset"], "11", "the newer message is the one refused");
    assert_eq!(ledger.dlq[0].headers["error.kind"], "rejected");
    let stored = stored_rows(&db).await;
    assert_eq!(stored["dup"].0, "第一次，很好");
    assert_newer_wins(&ledger, &stored);
}
