//! The soak (issue goal of the hardening work; `bench/soak.sh` runs it, it is
//! not in the default suite): 100,000 reviews published over a few minutes,
//! with poison and edited reviews among them, while workers are killed with
//! SIGKILL ten times, one joins and one leaves, the broker stops and starts,
//! and the whole Postgres cluster is stopped for 90 s. Then: nothing lost,
//! the DLQ holds exactly the poison, every edit's newer version is in the
//! table and last on the output topic, offsets committed to the end (the
//! ledger audit), every worker left exits 0 on SIGTERM, and no worker's
//! resident memory reached 1 GiB. It stops and starts the local services
//! every test shares, so it runs alone.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bertstream_tests::*;

const REVIEWS: usize = 100_000;
/// Every this many reviews, a poison message.
const POISON_EVERY: usize = 200;
/// Every this many reviews, an earlier review edited (published again with a new text).
const EDIT_EVERY: usize = 50;
const KILLS: usize = 10;
const CHUNK: usize = 1000;
/// Between chunks: about 4 minutes of publishing in all.
const PACE: Duration = Duration::from_millis(2300);
const STEADY: Duration = Duration::from_secs(600);

/// The input in publishing order, and the poison keys.
fn input() -> (Vec<KeyValue>, BTreeSet<String>) {
    let mut records = Vec::new();
    let mut poison = BTreeSet::new();
    for i in 0..REVIEWS {
        records.push(review(&format!("soak-{i:06}"), &sample_text(i)));
        if i % POISON_EVERY == POISON_EVERY - 1 {
            let key = format!("poison-{i:06}");
            let value =
                if i % 400 == 399 { b"{\"id\": 1, \"text\": \"no closing brace".to_vec() } else { b"[1, 2]".to_vec() };
            records.push((Some(key.clone().into_bytes()), Some(value)));
            poison.insert(key);
        }
        if i % EDIT_EVERY == EDIT_EVERY - 1 {
            // An edit of a review published a few chunks earlier.
            let j = i.saturating_sub(3 * CHUNK);
            records.push(review(&format!("soak-{j:06}"), &format!("{} (edited at {i})", sample_text(j + 1))));
        }
    }
    (records, poison)
}

/// The largest resident memory of this group's workers, sampled until `stop`.
fn watch_memory(group: String, stop: Arc<AtomicBool>, most: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let marker = format!("GROUP_ID={group}");
        while !stop.load(Ordering::Relaxed) {
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let dir = entry.path();
                let ours = std::fs::read(dir.join("environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == marker.as_bytes()));
                if !ours {
                    continue;
                }
                let pid = dir.file_name().and_then(|n| n.to_str()?.parse().ok());
                if let Some(rss) = pid.and_then(resident_bytes) {
                    most.fetch_max(rss, Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    })
}

fn step(start: Instant, what: &str) {
    eprintln!("[soak {:>4} s] {what}", start.elapsed().as_secs());
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "the soak: minutes long, stops the shared services; run by bench/soak.sh"]
async fn soak_with_kills_a_join_a_leave_a_broker_restart_and_postgres_down_for_90_s_loses_nothing() {
    assert_eq!(brokers(), "127.0.0.1:9092", "the soak restarts the local services: run it against them");
    let topics = Topics::create(6).await;
    let db = fresh_database().await;
    let (records, poison) = input();
    let start = Instant::now();

    let stop_watching = Arc::new(AtomicBool::new(false));
    let most_rss = Arc::new(AtomicU64::new(0));
    let watcher = watch_memory(topics.group.clone(), stop_watching.clone(), most_rss.clone());
    let publisher = {
        let input = topics.input.clone();
        tokio::spawn(async move {
            for chunk in records.chunks(CHUNK) {
                publish(&input, chunk).await;
                tokio::time::sleep(PACE).await;
            }
        })
    };

    let mut workers = vec![Worker::start(&topics, &db, &[]), Worker::start(&topics, &db, &[])];
    wait_until(STEADY, "the stream under way", || async { stored_count(&db).await >= 2000 }).await;
    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_secs(8)).await;
        workers[kill % 2].kill_9();
        workers[kill % 2] = Worker::start(&topics, &db, &[]);
        step(start, &format!("kill -9 #{} (stored {})", kill + 1, stored_count(&db).await));
    }
    workers.push(Worker::start(&topics, &db, &[]));
    step(start, "a third worker joins");
    tokio::time::sleep(Duration::from_secs(15)).await;
    let mut leaving = workers.remove(0);
    leaving.stop();
    step(start, "a worker left (SIGTERM, exit 0)");

    services("stop-kafka");
    step(start, "broker stopped");
    tokio::time::sleep(Duration::from_secs(10)).await;
    services("start-kafka");
    step(start, "broker started");
    tokio::time::sleep(Duration::from_secs(10)).await;

    services("stop-postgres");
    step(start, "Postgres cluster stopped");
    tokio::time::sleep(Duration::from_secs(90)).await;
    services("start-postgres");
    step(start, "Postgres cluster started");
    let stored_then = stored_count(&db).await;

    publisher.await.expect("publisher");
    step(start, "everything published");
    assert!(
        stored_then < REVIEWS as i64,
        "the run was over before the faults ended ({stored_then} stored): it proves nothing"
    );
    wait_until(STEADY, "every review stored", || async { stored_count(&db).await == REVIEWS as i64 }).await;
    wait_all_committed(&topics, STEADY).await;
    step(start, "every review stored and committed");
    let ledger = stop_and_audit(workers.iter_mut(), &topics, &db).await;
    stop_watching.store(true, Ordering::Relaxed);
    watcher.join().expect("memory watcher");

    let dead: BTreeSet<String> = ledger.dlq.iter().map(Record::key_str).collect();
    assert_eq!(dead, poison, "the DLQ holds exactly the poison");
    // At least once: a worker killed between a dead letter and its commit sends it again.
    let most_rss_mib = most_rss.load(Ordering::Relaxed) >> 20;
    let summary = serde_json::json!({
        "reviews": REVIEWS,
        "input_records": ledger.input.len(),
        "poison": poison.len(),
        "edits": REVIEWS / EDIT_EVERY,
        "kills": KILLS,
        "seconds": start.elapsed().as_secs(),
        "table_rows": ledger.table.len(),
        "output_records": ledger.output.len(),
        "output_repeats": ledger.output_duplicates(),
        "dlq_records": ledger.dlq.len(),
        "max_worker_rss_mib": most_rss_mib,
    });
    eprintln!("soak summary: {summary}");
    if let Ok(path) = std::env::var("SOAK_SUMMARY") {
        std::fs::write(path, summary.to_string()).expect("summary written");
    }
    assert!(most_rss_mib < 1024, "a worker's resident memory reached {most_rss_mib} MiB");
}
