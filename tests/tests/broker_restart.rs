//! The broker stops and comes back mid-run (RELIABILITY.md): the worker waits
//! it out, then stores everything once and commits it, and the ledger audit
//! passes. In a test binary of its own because it restarts the local broker
//! every test shares (cargo runs test binaries one after another).

use std::time::Duration;

use bertstream_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn broker_restart_mid_run_loses_nothing() {
    if brokers() != "127.0.0.1:9092" {
        eprintln!("skipped: KAFKA_BROKERS={} is not the local broker scripts/services.sh restarts", brokers());
        return;
    }
    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    const TOTAL: i64 = 20_000;
    let records: Vec<_> = (0..TOTAL).map(|i| review(&format!("b-{i:05}"), &sample_text(i as usize))).collect();
    publish(&topics.input, &records).await;
    // A small queue, so the worker cannot read far ahead of what it stored.
    let mut worker = Worker::start(&topics, &db, &[("MAX_BATCH_SIZE", "16"), ("QUEUE_CAPACITY", "256")]);
    wait_until(Duration::from_secs(180), "some rows", || async { stored_count(&db).await >= 300 }).await;
    services("stop-kafka");
    let at_stop = stored_count(&db).await;
    eprintln!("{at_stop} of {TOTAL} rows stored when the broker had stopped");
    assert!(at_stop < TOTAL, "the broker stopped after the run had finished");
    tokio::time::sleep(Duration::from_secs(5)).await;
    services("start-kafka");
    wait_until(Duration::from_secs(300), "every row after the broker returns", || async {
        stored_count(&db).await == TOTAL
    })
    .await;
    stop_and_audit([&mut worker], &topics, &db).await;
}
