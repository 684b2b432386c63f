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
    let records: Vec<_> = (0..3000).map(|i| review(&format!("b-{i:05}"), &sample_text(i))).collect();
    publish(&topics.input, &records).await;
    let mut worker = Worker::start(&topics, &db, &[("MAX_BATCH_SIZE", "16")]);
    wait_until(Duration::from_secs(180), "some rows", || async { stored_count(&db).await >= 300 }).await;
    let status = std::process::Command::new(repo_root().join("scripts/services.sh")).arg("restart-kafka").status().expect("services.sh runs");
    assert!(status.success(), "restarting Kafka failed");
    assert!(stored_count(&db).await < 3000, "the restart came after the run had finished");
    wait_until(Duration::from_secs(300), "all 3000 rows after the broker returns", || async { stored_count(&db).await == 3000 }).await;
    worker.stop();
    audit(&topics, &db).await;
}
