//! Faults no retry can mend (RELIABILITY.md L7): the worker must not retry
//! them forever while it looks healthy. A dead letter the broker refuses
//! ends the worker non-zero without committing past it; sinks that make no
//! progress turn `/readyz` to 503 while Postgres and Kafka still answer.

use std::time::{Duration, Instant};

use bertstream_tests::*;
use sqlx::Connection;

const STEADY: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_the_broker_refuses_ends_the_worker_without_committing_past_it() {
    let topics = Topics::create(1).await;
    let db = fresh_database().await;
    set_topic_config(&topics.dlq, "max.message.bytes", "1000").await;
    let mut records = reviews("ok", 10);
    // Not JSON, and over the DLQ's limit even compressed (pseudo-random digits).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: String = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'0' + (x % 10) as u8)
        })
        .collect();
    records.push((Some(b"big-poison".to_vec()), Some(format!("{{not json {noise}").into_bytes())));
    records.extend(reviews("after", 10));
    publish(&topics.input, &records).await;

    let mut worker = Worker::start(&topics, &db, &[]);
    let deadline = Instant::now() + STEADY;
    let status = loop {
        if let Some(status) = worker.exited() {
            break status;
        }
        assert!(Instant::now() < deadline, "the worker kept retrying\n{}", worker.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let log = worker.log_text();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("refuses the record of") && log.contains("offsets committed"), "{log}");
    let committed = committed_offsets(&topics.input, &topics.group).get(&0).copied().unwrap_or(0);
    assert!(committed <= 10, "committed {committed}, past the refused message at offset 10");

    // Once the topic takes the record, a new worker finishes the job: nothing was lost.
    set_topic_config(&topics.dlq, "max.message.bytes", "1048588").await;
    let mut worker = Worker::start(&topics, &db, &[]);
    wait_all_committed(&topics, STEADY).await;
    let ledger = stop_and_audit([&mut worker], &topics, &db).await;
    assert_eq!(ledger.dlq.len(), 1);
    assert_eq!(ledger.table.len(), 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_turns_503_while_the_sinks_make_no_progress() {
    let topics = Topics::create(1).await;
    let db = fresh_database().await;
    let mut worker = Worker::start(&topics, &db, &[("SINK_STALL_SECS", "2")]);
    let readyz = || async {
        let reply = reqwest::get(worker.url("/readyz")).await.ok()?;
        let status = reply.status().as_u16();
        Some((status, reply.json::<serde_json::Value>().await.ok()?))
    };
    wait_until(STEADY, "ready", || async { readyz().await.is_some_and(|(s, _)| s == 200) }).await;

    // The table locked: every upsert waits, while `SELECT 1` and the brokers still answer.
    let mut lock = sqlx::PgConnection::connect(&db).await.expect("connect");
    sqlx::query("BEGIN").execute(&mut lock).await.expect("begin");
    sqlx::query("LOCK TABLE classifications IN ACCESS EXCLUSIVE MODE").execute(&mut lock).await.expect("lock");
    publish(&topics.input, &reviews("s", 20)).await;
    wait_until(STEADY, "503 with the sinks stalled", || async {
        readyz().await.is_some_and(|(s, body)| {
            s == 503 && body["sinks"] == false && body["postgres"] == true && body["kafka"] == true
        })
    })
    .await;
    sqlx::query("COMMIT").execute(&mut lock).await.expect("unlock");
    wait_until(STEADY, "ready again", || async { readyz().await.is_some_and(|(s, _)| s == 200) }).await;
    wait_all_committed(&topics, STEADY).await;
    let ledger = stop_and_audit([&mut worker], &topics, &db).await;
    assert_eq!(ledger.table.len(), 20);
}
