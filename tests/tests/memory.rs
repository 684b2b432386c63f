//! Memory under a flood of large messages (the real binary, Kafka and
//! Postgres): the byte budget `QUEUE_MAX_BYTES` bounds what the worker holds
//! while Postgres is down and while it works the flood off afterwards, and
//! the ledger of RELIABILITY.md holds.

use std::time::Duration;

use bertstream_tests::*;

const STEADY: Duration = Duration::from_secs(240);
const BUDGET: usize = 4 << 20;
/// About 200 KiB each: 300 of them are 15 times the budget.
const LARGE: usize = 300;

fn large_text(i: usize) -> String {
    sample_text(i).repeat(200 * 1024 / sample_text(i).len())
}

fn rss_bytes(pid: i32) -> u64 {
    resident_bytes(pid).expect("the worker's resident memory")
}

async fn queue_bytes(worker: &Worker) -> Option<u64> {
    worker.metric("bertstream_queue_bytes").await.map(|v| v as u64)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_byte_budget_bounds_what_the_worker_holds_while_postgres_is_down_and_after() {
    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    // The message count would let the whole flood in: only the bytes bound it.
    let budget = BUDGET.to_string();
    let env = [("QUEUE_MAX_BYTES", budget.as_str()), ("QUEUE_CAPACITY", "100000")];
    let mut worker = Worker::start(&topics, &db, &env);
    publish(&topics.input, &reviews("warm", 50)).await;
    wait_until(STEADY, "the first 50 rows", || async { stored_count(&db).await == 50 }).await;
    let rss_before = rss_bytes(worker.pid());

    set_database_available(&db, false).await;
    let large: Vec<_> = (0..LARGE).map(|i| review(&format!("large-{i:05}"), &large_text(i))).collect();
    let one_message = large.iter().map(|(k, v)| k.as_ref().map_or(0, Vec::len) + v.as_ref().map_or(0, Vec::len)).max();
    publish(&topics.input, &large).await;
    let mut most_held = 0;
    let mut rss_most = rss_before;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        most_held = most_held.max(queue_bytes(&worker).await.unwrap_or(0));
        rss_most = rss_most.max(rss_bytes(worker.pid()));
    }

    set_database_available(&db, true).await;
    let total = 50 + LARGE as i64;
    let start = std::time::Instant::now();
    while stored_count(&db).await < total {
        assert!(start.elapsed() < STEADY, "timed out waiting for every large message to be stored");
        most_held = most_held.max(queue_bytes(&worker).await.unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    wait_all_committed(&topics, STEADY).await;

    // Memory: the budget, librdkafka's prefetch (16 MiB) and room for the
    // allocator; without the budget the flood's 60 MB and their texts stay.
    let grown = rss_most.saturating_sub(rss_before);
    eprintln!("held at most {most_held} bytes; resident memory grew {} MiB", grown >> 20);
    assert!(grown < 48 << 20, "resident memory grew {} MiB while Postgres was down", grown >> 20);
    // The budget, overshot by at most one message with its text and tokens.
    let bound = (BUDGET + 3 * one_message.expect("messages")) as u64;
    assert!(most_held > 0, "the gauge never showed the flood");
    assert!(most_held <= bound, "held {most_held} bytes, budget {BUDGET}");
    stop_and_audit([&mut worker], &topics, &db).await;
}
