//! An HTTP flood beside a stream backlog (the real binary, Kafka and
//! Postgres): the stream keeps its share of the model, the HTTP lane refuses
//! what it cannot hold (503 `overloaded`, `Retry-After`) instead of queueing
//! it, and the ledger of RELIABILITY.md holds.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bertstream_tests::*;
use serde_json::{json, Value};

const STEADY: Duration = Duration::from_secs(180);
/// Clients posting at once, each 64 texts a request: far more texts than the
/// HTTP lane holds.
const CLIENTS: usize = 64;
const BACKLOG: usize = 20_000;
/// Rows the stream must store during the flood: more than the batches past
/// the batcher (in the model, and on their way to Postgres) hold, so they come
/// from batches cut during the flood.
const PROGRESS: i64 = 1_000;

/// What the flood's requests got back.
#[derive(Default)]
struct Outcomes {
    ok: AtomicUsize,
    overloaded: AtomicUsize,
    timeout: AtomicUsize,
    /// Anything else: status and body.
    other: Mutex<Vec<String>>,
}

/// Posts 64 texts again and again until `stop`, as fast as answers come
/// (a refused client pauses briefly rather than spinning on the 2 cores).
async fn flood(url: String, stop: Arc<AtomicBool>, outcomes: Arc<Outcomes>) {
    let http = reqwest::Client::new();
    let body = json!({"texts": (0..64).map(sample_text).collect::<Vec<_>>()});
    while !stop.load(Ordering::Relaxed) {
        let reply = match http.post(&url).json(&body).send().await {
            Ok(reply) => reply,
            Err(e) => {
                outcomes.other.lock().expect("lock").push(format!("no answer: {e}"));
                continue;
            }
        };
        let status = reply.status().as_u16();
        let retry_after = reply.headers().contains_key("retry-after");
        let answer: Value = reply.json().await.unwrap_or_default();
        let counter = match (status, answer["error"]["code"].as_str()) {
            (200, _) => &outcomes.ok,
            (503, Some("overloaded")) if retry_after => &outcomes.overloaded,
            (503, Some("timeout")) if retry_after => &outcomes.timeout,
            _ => {
                outcomes.other.lock().expect("lock").push(format!("{status} {answer}"));
                continue;
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if status == 503 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_flood_leaves_the_stream_its_share_and_the_lane_refuses_the_overflow() {
    let topics = Topics::create(4).await;
    let db = fresh_database().await;
    publish(&topics.input, &reviews("r", BACKLOG)).await;
    let mut worker = Worker::start(&topics, &db, &[("RATE_LIMIT_PER_SEC", "0"), ("MAX_CONCURRENT_REQUESTS", "10000")]);
    let client = reqwest::Client::new();
    wait_until(STEADY, "the worker's /readyz", || async {
        client.get(worker.url("/readyz")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Outcomes::default());
    let clients: Vec<_> =
        (0..CLIENTS).map(|_| tokio::spawn(flood(worker.url("/v1/classify"), stop.clone(), outcomes.clone()))).collect();

    // The lane is full once it refuses; from then on the stream must still move.
    wait_until(STEADY, "a request refused as overloaded", || async { outcomes.overloaded.load(Ordering::Relaxed) > 0 })
        .await;
    let (stored, refused) = (stored_count(&db).await, outcomes.overloaded.load(Ordering::Relaxed));
    assert!(stored + PROGRESS < BACKLOG as i64, "the backlog outlasts the start of the flood ({stored} stored)");
    wait_until(STEADY, "rows stored during the flood", || async { stored_count(&db).await >= stored + PROGRESS }).await;
    wait_until(STEADY, "more refusals, the flood still on", || async {
        outcomes.overloaded.load(Ordering::Relaxed) > refused
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("client");
    }

    let other = outcomes.other.lock().expect("lock").clone();
    assert!(other.is_empty(), "only answers or 503 with Retry-After: {other:?}");
    let ok = outcomes.ok.load(Ordering::Relaxed);
    assert!(ok > 0, "the flood was served too, within its share");
    let metrics = client.get(worker.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    let abandoned = metrics.lines().find(|l| l.starts_with("bertstream_http_abandoned_total")).unwrap_or("none");
    eprintln!(
        "flood: {ok} answered, {} overloaded, {} timed out; {abandoned}",
        outcomes.overloaded.load(Ordering::Relaxed),
        outcomes.timeout.load(Ordering::Relaxed)
    );

    wait_until(STEADY, "the whole backlog", || async { stored_count(&db).await == BACKLOG as i64 }).await;
    wait_all_committed(&topics, STEADY).await;
    let ledger = stop_and_audit([&mut worker], &topics, &db).await;
    assert_eq!(ledger.table.len(), BACKLOG);
}
