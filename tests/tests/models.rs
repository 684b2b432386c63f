//! The model lifecycle on a live stream, against the real Kafka and Postgres:
//! a hot swap under load, SIGHUP after a symlink flip, shadow scoring with
//! compare checked against the table, promote and roll back, and the review
//! queue. Every run ends with the ledger's audit.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bertstream_tests::*;
use serde_json::{json, Value};

const STEADY: Duration = Duration::from_secs(180);
const ADMIN: &str = "admin-secret";

async fn admin_post(worker: &Worker, path: &str, body: Value) -> Value {
    let reply =
        reqwest::Client::new().post(worker.url(path)).bearer_auth(ADMIN).json(&body).send().await.expect("admin call");
    let status = reply.status();
    let body: Value = reply.json().await.expect("JSON");
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn get_json(worker: &Worker, path: &str) -> Value {
    reqwest::get(worker.url(path)).await.expect("get").json().await.expect("JSON")
}

/// The primary's rows of `predictions` mirror `classifications` row for row.
async fn assert_primary_predictions_mirror_the_table(db: &str) {
    let stored = stored_models(db).await;
    let rows = stored_rows(db).await;
    let predictions = prediction_rows(db).await;
    for (id, (model, _)) in &stored {
        let p = predictions
            .iter()
            .find(|p| &p.review_id == id && &p.model == model)
            .unwrap_or_else(|| panic!("{id}: no predictions row for {model}"));
        assert_eq!(p.role, "primary", "{id}");
        assert_eq!(p.position, (rows[id].partition, rows[id].offset), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hot_swap_under_load_loses_nothing_and_rows_name_the_model_that_scored_them() {
    let topics = Topics::create(4).await;
    let db = fresh_database().await;
    let first = reviews("a", 6000);
    publish(&topics.input, &first).await;
    let mut worker = Worker::start(&topics, &db, &[("ADMIN_TOKENS", ADMIN), ("MAX_BATCH_SIZE", "8")]);
    wait_until(STEADY, "the stream under way", || async { stored_count(&db).await >= 200 }).await;
    let scored_before: BTreeSet<String> = stored_rows(&db).await.into_keys().collect();
    let reversed = tiny_model_reversed("reversed");
    let change = admin_post(&worker, "/v1/admin/models/primary", json!({"dir": reversed})).await;
    let done_at_swap = stored_count(&db).await;
    assert!(done_at_swap < first.len() as i64, "the swap came after the stream was done: it proves nothing");
    let (old, new) = (change["previous"].as_str().expect("id"), change["primary"].as_str().expect("id"));
    assert!(old.starts_with("tiny-bert@") && new.starts_with("reversed@"), "{change}");
    publish(&topics.input, &reviews("b", 500)).await;
    wait_all_committed(&topics, STEADY).await;

    stop_and_audit([&mut worker], &topics, &db).await;
    let models = stored_models(&db).await;
    for id in &scored_before {
        assert_eq!(models[id].0, old, "{id} was stored before the swap");
    }
    for (id, (model, _)) in &models {
        if id.starts_with("b-") {
            assert_eq!(model, new, "{id} was published after the swap");
        }
    }
    let by_old = models.values().filter(|(m, _)| m == old).count();
    assert!(by_old < first.len(), "some of the backlog was scored by the new model");
    assert_primary_predictions_mirror_the_table(&db).await;
    for record in read_all(&topics.output) {
        let result: schemas::ClassificationV1 =
            serde_json::from_slice(record.value.as_deref().expect("value")).expect("json");
        assert_eq!(result.model, models[&result.id].0, "{}: the output names another model", result.id);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_after_a_symlink_flip_swaps_the_primary() {
    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    let link = std::env::temp_dir().join(unique("current-model"));
    std::os::unix::fs::symlink(tiny_model(), &link).expect("symlink");
    let mut worker = Worker::start(&topics, &db, &[("MODEL_DIR", link.to_str().expect("utf-8"))]);
    wait_until(STEADY, "the worker up", || async { worker.log_text().contains("HTTP listening") }).await;
    publish(&topics.input, &reviews("a", 50)).await;
    wait_all_committed(&topics, STEADY).await;

    let reversed = tiny_model_reversed("reversed");
    let flipped = link.with_extension("new");
    std::os::unix::fs::symlink(&reversed, &flipped).expect("symlink");
    std::fs::rename(&flipped, &link).expect("flip");
    std::process::Command::new("kill").arg("-HUP").arg(worker.pid().to_string()).status().expect("kill");
    wait_until(STEADY, "the reversed model primary", || async {
        get_json(&worker, "/v1/models").await["primary"]["id"].as_str().is_some_and(|id| id.starts_with("reversed@"))
    })
    .await;
    publish(&topics.input, &reviews("b", 50)).await;
    wait_all_committed(&topics, STEADY).await;
    stop_and_audit([&mut worker], &topics, &db).await;
    for (id, (model, _)) in stored_models(&db).await {
        let expected = if id.starts_with("a-") { "tiny-bert@" } else { "reversed@" };
        assert!(model.starts_with(expected), "{id}: {model}");
    }
}

/// What compare must say, computed from the table's rows in the test.
fn expected_comparison(rows: &[PredictionRow], a: &str, b: &str) -> (i64, f64, BTreeMap<(String, String), i64>) {
    let of = |model: &str| -> BTreeMap<&str, &PredictionRow> {
        rows.iter().filter(|r| r.model == model).map(|r| (r.review_id.as_str(), r)).collect()
    };
    let (a_rows, b_rows) = (of(a), of(b));
    let mut confusion = BTreeMap::new();
    let (mut n, mut agree) = (0i64, 0i64);
    for (id, ra) in &a_rows {
        let Some(rb) = b_rows.get(id).filter(|rb| rb.position == ra.position) else { continue };
        n += 1;
        agree += i64::from(ra.label == rb.label);
        *confusion.entry((ra.label.clone(), rb.label.clone())).or_default() += 1;
    }
    (n, agree as f64 / n.max(1) as f64, confusion)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shadow_is_compared_promoted_and_rolled_back_without_touching_the_served_results() {
    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    let reversed = tiny_model_reversed("reversed");
    let mut worker = Worker::start(
        &topics,
        &db,
        &[("ADMIN_TOKENS", ADMIN), ("SHADOW_MODEL_DIR", reversed.to_str().expect("utf-8")), ("SHADOW_SAMPLE", "1")],
    );
    wait_until(STEADY, "the worker up", || async { worker.log_text().contains("HTTP listening") }).await;
    let models = get_json(&worker, "/v1/models").await;
    let primary = models["primary"]["id"].as_str().expect("primary").to_string();
    let shadow = models["shadow"]["id"].as_str().expect("a shadow").to_string();
    publish(&topics.input, &reviews("a", 300)).await;
    wait_all_committed(&topics, STEADY).await;

    // The served results are the primary's alone; the shadow's are in `predictions` only.
    let rows = prediction_rows(&db).await;
    assert!(rows.iter().any(|r| r.model == shadow && r.role == "shadow"), "the shadow scored nothing");
    assert!(stored_models(&db).await.values().all(|(m, _)| *m == primary));
    let compare = get_json(&worker, &format!("/v1/models/compare?a={primary}&b={shadow}")).await;
    let (n, agreement, confusion) = expected_comparison(&rows, &primary, &shadow);
    assert!(n > 0);
    assert_eq!(compare["reviews"], n, "{compare}");
    assert!((compare["agreement"].as_f64().expect("agreement") - agreement).abs() < 1e-9, "{compare}");
    for ((la, lb), count) in &confusion {
        assert_eq!(compare["confusion"][la][lb], *count, "{la} x {lb}: {compare}");
    }
    assert!(agreement < 1.0, "the reversed model disagrees on every label but `0`");
    let listed = get_json(&worker, "/v1/models").await;
    assert!(listed["shadow"]["scored"].as_u64().is_some_and(|n| n > 0), "{listed}");
    let metrics = reqwest::get(worker.url("/metrics")).await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("bertstream_shadow_agreement "), "{metrics}");
    assert!(metrics.contains(r#"bertstream_label_share{label="#), "{metrics}");

    let promoted = admin_post(&worker, "/v1/admin/models/promote", json!({})).await;
    assert_eq!((promoted["primary"].as_str(), promoted["shadow"].as_str()), (Some(&*shadow), Some(&*primary)));
    publish(&topics.input, &reviews("b", 100)).await;
    wait_all_committed(&topics, STEADY).await;
    let back = admin_post(&worker, "/v1/admin/models/promote", json!({})).await;
    assert_eq!(back["primary"].as_str(), Some(&*primary), "rolled back");
    publish(&topics.input, &reviews("c", 100)).await;
    wait_all_committed(&topics, STEADY).await;

    stop_and_audit([&mut worker], &topics, &db).await;
    for (id, (model, _)) in stored_models(&db).await {
        let expected = if id.starts_with("b-") { &shadow } else { &primary };
        assert_eq!(&model, expected, "{id}");
    }
    assert_primary_predictions_mirror_the_table(&db).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_review_queue_gets_exactly_the_results_under_the_threshold() {
    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    let review_topic = unique("t-review");
    const BELOW: f32 = 0.62;
    let mut worker =
        Worker::start(&topics, &db, &[("REVIEW_TOPIC", review_topic.as_str()), ("REVIEW_BELOW", &BELOW.to_string())]);
    publish(&topics.input, &reviews("a", 300)).await;
    wait_all_committed(&topics, STEADY).await;
    let stored = stored_models(&db).await;
    let expected: BTreeSet<String> = stored.iter().filter(|(_, (_, s))| *s < BELOW).map(|(id, _)| id.clone()).collect();
    assert!(!expected.is_empty() && expected.len() < stored.len(), "the threshold splits the results");
    let listed = get_json(&worker, &format!("/v1/reviews?below={BELOW}&limit=500")).await;
    let listed: BTreeSet<String> =
        listed["items"].as_array().expect("items").iter().map(|r| r["id"].as_str().expect("id").to_string()).collect();
    assert_eq!(listed, expected, "GET /v1/reviews?below= lists the same reviews");
    stop_and_audit([&mut worker], &topics, &db).await;

    let queued: Vec<Record> = read_all(&review_topic);
    let keys: BTreeSet<String> = queued.iter().map(Record::key_str).collect();
    assert_eq!(keys, expected);
    for record in &queued {
        let result: schemas::ClassificationV1 =
            serde_json::from_slice(record.value.as_deref().expect("value")).expect("json");
        assert!(result.score < BELOW, "{result:?}");
    }
}
