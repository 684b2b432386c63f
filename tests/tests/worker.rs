//! The worker against the real Kafka and Postgres: volume, poison input,
//! a rejected row, and the ledger of RELIABILITY.md after each.

use std::time::Duration;

use bertstream_tests::*;
use model::{Classifier, LoadOptions};

const STEADY: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_messages_over_four_partitions_land_once_each() {
    let topics = Topics::create(4).await;
    let db = fresh_database().await;
    let records: Vec<_> = (0..10_000).map(|i| review(&format!("r-{i:05}"), &sample_text(i))).collect();
    publish(&topics.input, &records).await;
    let mut worker = Worker::start(&topics, &db, &[]);
    wait_until(STEADY, "10,000 rows", || async { stored_count(&db).await == 10_000 }).await;
    let ledger = stop_and_audit([&mut worker], &topics, &db).await;
    assert_eq!(ledger.table.len(), 10_000);
    assert_eq!(ledger.output_duplicates(), 0, "no fault: nothing published twice");
    assert!(ledger.dlq.is_empty());
    let one: schemas::ClassificationV1 =
        serde_json::from_slice(ledger.output[0].value.as_deref().expect("value")).expect("ClassificationV1");
    assert!(one.model.starts_with("tiny-bert@"));
    assert_eq!(one.scores.len(), 3);
}

fn header<'a>(record: &'a Record, name: &str) -> &'a str {
    record.headers.get(name).map_or("", String::as_str)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_poison_kind_goes_to_the_dlq_and_its_neighbours_are_stored() {
    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let poison: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        ("p-json", Some(b"{not json".to_vec()), "invalid_json"),
        ("p-utf8", Some(b"{\"id\":\"p-utf8\",\"text\":\"\xff\xfe\"}".to_vec()), "invalid_utf8"),
        ("p-type", Some(br#"{"id":"p-type","text":42}"#.to_vec()), "wrong_type"),
        ("p-missing", Some(br#"{"id":"p-missing"}"#.to_vec()), "missing_text"),
        ("p-empty", Some(br#"{"id":"p-empty","text":"   "}"#.to_vec()), "empty_text"),
        ("p-nul", Some(br#"{"id":"p-nul","text":"a\u0000b"}"#.to_vec()), "nul_character"),
        ("p-huge", Some(format!(r#"{{"id":"p-huge","text":"{}"}}"#, "x".repeat(10 << 20)).into_bytes()), "too_large"),
        ("p-tombstone", None, "tombstone"),
        ("p-deep", Some(deep.into_bytes()), "too_deep"),
    ];
    let mut records = Vec::new();
    for (i, (key, value, _)) in poison.iter().enumerate() {
        records.push(review(&format!("ok-{i}-a"), &sample_text(i)));
        records.push((Some(key.as_bytes().to_vec()), value.clone()));
        records.push(review(&format!("ok-{i}-b"), &sample_text(i + 1)));
    }
    // Handled as stated, not poison: a very long text is truncated; a duplicate id is stored once.
    records.push(review("long-text", &"很好".repeat(50_000)));
    records.push(review("dup", "第一次"));
    records.push(review("dup", "第二次"));
    publish(&topics.input, &records).await;

    let mut worker = Worker::start(&topics, &db, &[]);
    let valid = poison.len() * 2 + 2;
    wait_until(STEADY, "valid rows", || async { stored_count(&db).await == valid as i64 }).await;
    wait_until(STEADY, "DLQ records", || async { read_all(&topics.dlq).len() >= poison.len() }).await;
    let ledger = stop_and_audit([&mut worker], &topics, &db).await;
    assert_eq!(ledger.dlq.len(), poison.len(), "each poison message once in the DLQ");
    let input_by_key: std::collections::HashMap<String, &Record> =
        ledger.input.iter().map(|r| (r.key_str(), r)).collect();
    for (key, value, kind) in &poison {
        let record = ledger.dlq.iter().find(|r| r.key_str() == *key).unwrap_or_else(|| panic!("{key} not in the DLQ"));
        assert_eq!(header(record, "error.kind"), *kind, "{key}");
        assert!(!header(record, "error.message").is_empty());
        assert_eq!(header(record, "source.topic"), topics.input);
        let original = input_by_key[*key];
        assert_eq!(header(record, "source.partition"), original.partition.to_string());
        assert_eq!(header(record, "source.offset"), original.offset.to_string());
        assert_eq!(&record.value, value, "{key}: original value kept");
        assert_eq!(record.timestamp, original.timestamp, "{key}: original timestamp kept");
    }
    assert!(ledger.table.contains(&"long-text".to_string()));
    assert_eq!(ledger.rows["dup"].text, "第二次", "the newer message of an id wins");
    for (i, _) in poison.iter().enumerate() {
        assert!(
            ledger.table.contains(&format!("ok-{i}-a")) && ledger.table.contains(&format!("ok-{i}-b")),
            "neighbours of poison {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_row_postgres_rejects_goes_alone_to_the_dlq() {
    let topics = Topics::create(1).await;
    let db = fresh_database().await;
    // Migrate first, then add a constraint that one id breaks.
    let status =
        std::process::Command::new(worker_binary()).arg("migrate").env("DATABASE_URL", &db).status().expect("migrate");
    assert!(status.success());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db).await.expect("connect");
    sqlx::query("ALTER TABLE classifications ADD CONSTRAINT no_culprit CHECK (review_id <> 'culprit')")
        .execute(&mut conn)
        .await
        .expect("constraint");
    let records: Vec<_> =
        (0..40).map(|i| review(&if i == 17 { "culprit".into() } else { format!("n-{i}") }, &sample_text(i))).collect();
    publish(&topics.input, &records).await;
    let mut worker = Worker::start(&topics, &db, &[("MAX_BATCH_SIZE", "64")]);
    wait_until(STEADY, "39 rows", || async { stored_count(&db).await == 39 }).await;
    wait_until(STEADY, "the culprit in the DLQ", || async { !read_all(&topics.dlq).is_empty() }).await;
    let ledger = stop_and_audit([&mut worker], &topics, &db).await;
    assert_eq!(ledger.dlq.len(), 1);
    assert_eq!(ledger.dlq[0].key_str(), "culprit");
    assert_eq!(header(&ledger.dlq[0], "error.kind"), "rejected");
    assert!(header(&ledger.dlq[0], "error.message").contains("no_culprit"));
}

async fn stored_texts_and_times(db: &str) -> Vec<(String, String, chrono::DateTime<chrono::Utc>)> {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(db).await.expect("connect");
    sqlx::query_as("SELECT review_id, text, classified_at FROM classifications ORDER BY review_id")
        .fetch_all(&mut conn)
        .await
        .expect("rows")
}

/// Reading the input again (a new group here; a crash or a rebalance in
/// production) republishes the stored results byte for byte and leaves the
/// table as it was; a new message for a stored id replaces its result.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_read_again_republishes_its_stored_result_and_a_new_one_for_its_id_replaces_it() {
    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    let records: Vec<_> = (0..300).map(|i| review(&format!("a-{i:03}"), &sample_text(i))).collect();
    publish(&topics.input, &records).await;
    let mut worker = Worker::start(&topics, &db, &[]);
    wait_until(STEADY, "300 rows", || async { stored_count(&db).await == 300 }).await;
    worker.stop();
    let before = stored_texts_and_times(&db).await;

    let replay_group = format!("{}-replay", topics.group);
    let mut replay = Worker::start(&topics, &db, &[("GROUP_ID", &replay_group), ("MAX_BATCH_SIZE", "7")]);
    wait_until(STEADY, "600 output records", || async { read_all(&topics.output).len() == 600 }).await;
    let ledger = stop_and_audit([&mut replay], &topics, &db).await;
    assert_eq!(stored_texts_and_times(&db).await, before, "reading again changed the table");
    assert_eq!(ledger.output_duplicates(), 300);

    publish(&topics.input, &[review("a-007", "edited: 物流很快")]).await;
    let mut worker = Worker::start(&topics, &db, &[]);
    wait_until(STEADY, "the edited text stored", || async {
        stored_texts_and_times(&db).await.iter().any(|(id, text, _)| id == "a-007" && text == "edited: 物流很快")
    })
    .await;
    stop_and_audit([&mut worker], &topics, &db).await;
}

/// A model that gives NaN scores for some texts (NaN in one token's
/// embedding, as fp16 overflow gives on a GPU): those texts go to the DLQ as
/// `non_finite`, the others are stored, and the worker goes on.
#[tokio::test(flavor = "multi_thread")]
async fn texts_the_model_scores_as_nan_go_to_the_dlq_and_the_stream_goes_on() {
    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    // 屏 is in none of the warm-up texts, which a model must score to load.
    let model = tiny_model_with_nan_token("nan-model", "屏");
    let records: Vec<_> =
        (0..40).map(|i| review(&format!("n-{i}"), if i % 4 == 0 { "屏幕太小了" } else { "物流很快" })).collect();
    publish(&topics.input, &records).await;
    let mut worker = Worker::start(&topics, &db, &[("MODEL_DIR", model.to_str().expect("utf-8"))]);
    wait_until(STEADY, "30 rows and 10 dead letters", || async {
        stored_count(&db).await == 30 && read_all(&topics.dlq).len() == 10
    })
    .await;
    let ledger = stop_and_audit([&mut worker], &topics, &db).await;
    for record in &ledger.dlq {
        assert_eq!(header(record, "error.kind"), "non_finite", "{}", record.key_str());
        assert!(header(record, "error.message").contains("NaN"), "{}", header(record, "error.message"));
    }
}

/// A model fitted with `--ngram-head`: the worker serves the encoder and the
/// head mixed, as `Classifier` computes it for `eval`, `predict` and
/// `/v1/classify`, not the encoder alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_model_with_an_ngram_head_is_served_with_its_head() {
    let texts: Vec<String> = (0..60).map(sample_text).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let model = tiny_model_with_ngram_head("head-model", &texts);
    let options = LoadOptions::default();
    let served = Classifier::load(&model, &options).expect("head model");
    let expected = served.predict(&texts).expect("predict");
    let encoder_alone = Classifier::load(tiny_model(), &options).expect("tiny model").predict(&texts).expect("predict");
    let changed = expected.iter().zip(&encoder_alone).filter(|(a, b)| a.label != b.label).count();
    assert!(changed > 0, "the head changes no label: the test would not see it missing");

    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    let records: Vec<_> = texts.iter().enumerate().map(|(i, text)| review(&format!("h-{i}"), text)).collect();
    publish(&topics.input, &records).await;
    let mut worker = Worker::start(&topics, &db, &[("MODEL_DIR", model.to_str().expect("utf-8"))]);
    wait_until(STEADY, "60 rows", || async { stored_count(&db).await == 60 }).await;
    let ledger = stop_and_audit([&mut worker], &topics, &db).await;
    assert_eq!(ledger.output.len(), 60);
    let labels = served.labels();
    for record in &ledger.output {
        let got: schemas::ClassificationV1 =
            serde_json::from_slice(record.value.as_deref().expect("value")).expect("ClassificationV1");
        assert!(got.model.starts_with("head-model@"), "{}", got.model);
        let want = &expected[got.id["h-".len()..].parse::<usize>().expect("id")];
        assert_eq!(got.label, want.label, "{}", got.id);
        for (label, p) in labels.iter().zip(&want.scores) {
            assert!((got.scores[label] - p).abs() < 1e-4, "{}: {label} {} vs {p}", got.id, got.scores[label]);
        }
    }
}

/// Lag you can scale on: librdkafka's statistics give each assigned
/// partition's lag, and the time to work it off at the recent rate, in
/// `/v1/stats` and `/metrics`; both reach 0 once the backlog is done.
#[tokio::test(flavor = "multi_thread")]
async fn lag_by_partition_and_the_time_to_drain_it_are_reported() {
    let topics = Topics::create(4).await;
    let db = fresh_database().await;
    publish(&topics.input, &reviews("l", 6000)).await;
    let env = [("MAX_BATCH_SIZE", "2"), ("KAFKA_OPT_STATISTICS_INTERVAL_MS", "1000")];
    let mut worker = Worker::start(&topics, &db, &env);
    let stats = || async {
        let reply = reqwest::get(worker.url("/v1/stats")).await.ok()?;
        reply.json::<serde_json::Value>().await.ok()
    };
    wait_until(STEADY, "lag on 4 partitions and a drain estimate", || async {
        stats().await.is_some_and(|s| {
            let lag = s["partition_lag"].as_object().map_or(0, |m| m.len());
            lag == 4 && s["consumer_lag"].as_i64() > Some(0) && s["drain_seconds"].as_f64().is_some_and(|d| d > 0.0)
        })
    })
    .await;
    let metrics = reqwest::get(worker.url("/metrics")).await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains(r#"bertstream_partition_lag{partition="3"}"#), "{metrics}");
    wait_all_committed(&topics, STEADY).await;
    wait_until(STEADY, "lag and drain time back to 0", || async {
        stats().await.is_some_and(|s| s["consumer_lag"] == 0 && s["drain_seconds"] == 0.0)
    })
    .await;
    stop_and_audit([&mut worker], &topics, &db).await;
}
