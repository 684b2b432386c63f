//! Benchmark (ignored by default; bench/http/run.sh runs it): single-text
//! `POST /v1/classify` latency while the stream is backlogged, beside the bare
//! model latency for one text (same model, device and threads), in one run.
//!
//! Environment: BENCH_MESSAGES (backlog size, 60000), BENCH_REQUESTS (200),
//! BENCH_MODEL_DIR (default: the tiny test model).

use std::time::{Duration, Instant};

use bertstream_tests::*;
use model::{ClassifierHandle, DeviceSpec, LoadOptions};
use serde_json::json;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (percentile(&ms, 0.5), percentile(&ms, 0.99))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: bench/http/run.sh"]
async fn http_latency_under_backlog_beside_bare_model_latency() {
    let messages = env_or("BENCH_MESSAGES", 60_000);
    let requests = env_or("BENCH_REQUESTS", 200);
    let model_dir = std::env::var("BENCH_MODEL_DIR").map_or_else(|_| tiny_model(), Into::into);
    let text = "手机很好，漂亮时尚，赠品一般";

    // Bare model: encode + one forward pass for one text, on a model thread like the worker's.
    let options = LoadOptions { device: DeviceSpec::Cpu, ..LoadOptions::default() };
    let dir = model_dir.clone();
    let bare = tokio::task::spawn_blocking(move || {
        let handle = ClassifierHandle::spawn(dir, options, Some(1)).expect("model loads");
        let one = || {
            let tokens = handle.encoder().encode(text).expect("encode");
            handle.predict_blocking(handle.encoder().batch(&[tokens])).expect("predict")
        };
        for _ in 0..20 {
            one();
        }
        (0..requests)
            .map(|_| {
                let t = Instant::now();
                one();
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect::<Vec<f64>>()
    })
    .await
    .expect("join");

    let topics = Topics::create(4).await;
    let db = fresh_database().await;
    let model_env = model_dir.display().to_string();
    let worker = Worker::start(&topics, &db, &[("MODEL_DIR", &model_env), ("RATE_LIMIT_PER_SEC", "0")]);
    let http = reqwest::Client::new();
    wait_until(Duration::from_secs(120), "the worker ready", || async {
        http.get(worker.url("/readyz")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    let measure = || async {
        let mut latencies = Vec::with_capacity(requests);
        for _ in 0..requests {
            let t = Instant::now();
            let reply = http.post(worker.url("/v1/classify")).json(&json!({"text": text})).send().await.expect("reply");
            assert_eq!(reply.status(), 200);
            reply.bytes().await.expect("body");
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        latencies
    };
    let idle = measure().await;

    let records: Vec<_> = (0..messages).map(|i| review(&format!("b-{i:06}"), &sample_text(i))).collect();
    publish(&topics.input, &records).await;
    wait_until(Duration::from_secs(120), "the stream flowing", || async { stored_count(&db).await > 0 }).await;
    let stored_before = stored_count(&db).await;
    let latencies = measure().await;
    let stored_after = stored_count(&db).await;
    let stats: serde_json::Value =
        http.get(worker.url("/v1/stats")).send().await.expect("stats").json().await.expect("json");
    assert!(stored_after < messages as i64, "the backlog lasted through the measurement (raise BENCH_MESSAGES)");

    let (bare_p50, bare_p99) = summary(bare);
    let (idle_p50, idle_p99) = summary(idle);
    let (http_p50, http_p99) = summary(latencies);
    println!("model: {} (cpu, 1 torch thread), {requests} single-text requests", model_dir.display());
    println!(
        "backlog: {messages} messages; stored {stored_before} -> {stored_after} during the run; lag at end {}",
        stats["consumer_lag"]
    );
    println!("bare model, one text:          p50 {bare_p50:8.2} ms   p99 {bare_p99:8.2} ms");
    println!("POST /v1/classify, idle:       p50 {idle_p50:8.2} ms   p99 {idle_p99:8.2} ms");
    println!("POST /v1/classify, backlogged: p50 {http_p50:8.2} ms   p99 {http_p99:8.2} ms");
    println!("ratio http/bare:               p50 {:8.1}x     p99 {:8.1}x", http_p50 / bare_p50, http_p99 / bare_p99);
}
