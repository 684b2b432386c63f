//! The model endpoints through the router (no socket) over the real Postgres
//! and real model loads: every refusal of a swap or a promote (each leaves
//! the primary as it was), the admin tokens, a swap that takes, and compare
//! checked against the rows it reads. The stream side is in `models.rs`.

mod http_support;

use axum::http::Request;
use bertstream_tests::{tiny_model, tiny_model_reversed, tiny_model_variant, unique};
use http_support::*;
use serde_json::{json, Value};
use worker::config::HttpArgs;

const ADMIN: &str = "admin-secret";

fn admin_args() -> HttpArgs {
    HttpArgs {
        admin_tokens: ADMIN.parse().expect("secret"),
        api_tokens: "api-secret".parse().expect("secret"),
        ..open_args()
    }
}

fn admin_post(path: &str, body: Value, token: Option<&str>) -> Request<axum::body::Body> {
    let mut builder = Request::post(path).header("content-type", "application/json");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let mut req = builder.body(axum::body::Body::from(body.to_string())).expect("request");
    req.extensions_mut().insert(peer("127.0.0.1:1"));
    req
}

fn api_get(path: &str) -> Request<axum::body::Body> {
    let mut req =
        Request::get(path).header("authorization", "Bearer api-secret").body(axum::body::Body::empty()).expect("get");
    req.extensions_mut().insert(peer("127.0.0.1:1"));
    req
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_swaps_are_refused_with_a_reason_and_change_nothing() {
    let app = TestApp::new(admin_args(), Lane::Model).await;
    let primary = app.state.models.primary().id().to_string();
    let not_a_model = std::env::temp_dir().join(unique("empty"));
    std::fs::create_dir_all(&not_a_model).expect("dir");
    let garbage = tiny_model_variant("garbage", |_| {});
    std::fs::write(garbage.join("model.safetensors"), b"not weights").expect("write");
    let small_embeddings = tiny_model_variant("small-embeddings", |c| c["vocab_size"] = json!(100));
    let other_labels = tiny_model_variant("other-labels", |c| {
        c["id2label"] = json!({"0": "neg", "1": "neu", "2": "pos"});
        c["label2id"] = json!({"neg": 0, "neu": 1, "pos": 2});
    });
    let cases = [
        (json!({"dir": "/no/such/model"}), "/no/such/model"),
        (json!({"dir": not_a_model}), "config.json"),
        (json!({"dir": garbage}), "garbage"),
        (json!({"dir": small_embeddings}), "embedding table"),
        (json!({"dir": other_labels}), "labels"),
    ];
    for (body, reason) in cases {
        let reply = app.call(admin_post("/v1/admin/models/primary", body.clone(), Some(ADMIN))).await;
        reply.assert_error(422, "model_refused");
        let message = reply.json()["error"]["message"].as_str().expect("message").to_string();
        assert!(message.contains(reason), "{body}: {message}");
        assert_eq!(app.state.models.primary().id(), primary, "{body}: the primary changed");
    }
    app.call(admin_post("/v1/admin/models/primary", json!({"path": "x"}), Some(ADMIN)))
        .await
        .assert_error(422, "invalid_input");
    app.call(admin_post("/v1/admin/models/promote", json!({}), Some(ADMIN))).await.assert_error(409, "conflict");
    let metrics = app.call(get("/metrics")).await.text();
    assert!(metrics.contains(r#"bertstream_model_changes_total{change="swap",result="refused"} 5"#), "{metrics}");
    assert!(metrics.contains(r#"bertstream_model_changes_total{change="promote",result="refused"} 1"#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_endpoints_take_admin_tokens_only() {
    let app = TestApp::new(admin_args(), Lane::Model).await;
    let body = json!({"dir": tiny_model_reversed("reversed")});
    for token in [None, Some("wrong"), Some("api-secret")] {
        app.call(admin_post("/v1/admin/models/primary", body.clone(), token)).await.assert_error(401, "unauthorized");
        app.call(admin_post("/v1/admin/models/promote", json!({}), token)).await.assert_error(401, "unauthorized");
    }
    // Without ADMIN_TOKENS the admin endpoints are off, whatever the caller sends.
    let closed = TestApp::new(open_args(), Lane::Model).await;
    closed.call(admin_post("/v1/admin/models/primary", body, Some(ADMIN))).await.assert_error(403, "admin_disabled");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_swap_serves_the_new_model_and_lists_it() {
    let app = TestApp::new(admin_args(), Lane::Model).await;
    let before = app.call(api_get("/v1/models")).await.json();
    assert!(before["primary"]["id"].as_str().is_some_and(|id| id.starts_with("tiny-bert@")), "{before}");
    assert_eq!(before["shadow"], Value::Null);

    let reversed = tiny_model_reversed("reversed");
    let reply = app.call(admin_post("/v1/admin/models/primary", json!({"dir": reversed}), Some(ADMIN))).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let change = reply.json();
    assert!(change["primary"].as_str().is_some_and(|id| id.starts_with("reversed@")), "{change}");
    assert_eq!(change["previous"], before["primary"]["id"]);

    let after = app.call(api_get("/v1/models")).await.json();
    assert_eq!(after["primary"]["id"], change["primary"]);
    let mut classify = Request::post("/v1/classify")
        .header("authorization", "Bearer api-secret")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"text": "很好"}"#))
        .expect("request");
    classify.extensions_mut().insert(peer("127.0.0.1:1"));
    let answer = app.call(classify).await.json();
    assert_eq!(answer["model"], change["primary"], "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn compare_counts_what_the_table_holds() {
    let app = TestApp::new(admin_args(), Lane::Model).await;
    let pool = &app.state.pool;
    // Five reviews both scored, one only `a` scored, one scored on another message.
    let rows = [
        ("r1", "a", "1", 0.9),
        ("r1", "b", "1", 0.8),
        ("r2", "a", "1", 0.7),
        ("r2", "b", "0", 0.6),
        ("r3", "a", "-1", 0.5),
        ("r3", "b", "-1", 0.9),
        ("r4", "a", "0", 0.6),
        ("r4", "b", "1", 0.6),
        ("r5", "a", "1", 0.9),
        ("r5", "b", "1", 0.9),
        ("r6", "a", "1", 0.9),
    ];
    for (id, model, label, score) in rows {
        sqlx::query(
            "INSERT INTO predictions (review_id, model, role, label, score, scores, source_topic, source_partition,
                                      source_offset, classified_at)
             VALUES ($1, $2, 'shadow', $3, $4, '{}', 't', 0, 1, now())",
        )
        .bind(id)
        .bind(model)
        .bind(label)
        .bind(score as f32)
        .execute(pool)
        .await
        .expect("insert");
    }
    sqlx::query(
        "INSERT INTO predictions VALUES ('r7', 'a', 'shadow', '1', 0.9, '{}', 't', 0, 1, now()),
                                        ('r7', 'b', 'shadow', '0', 0.9, '{}', 't', 0, 2, now())",
    )
    .execute(pool)
    .await
    .expect("insert");
    let c = app.call(api_get("/v1/models/compare?a=a&b=b")).await.json();
    assert_eq!(c["reviews"], 5, "{c}");
    assert!((c["agreement"].as_f64().expect("agreement") - 0.6).abs() < 1e-9, "{c}");
    assert_eq!(c["confusion"]["1"]["1"], 2);
    assert_eq!(c["confusion"]["1"]["0"], 1);
    assert_eq!(c["confusion"]["0"]["1"], 1);
    assert_eq!(c["confusion"]["-1"]["-1"], 1);
    assert_eq!(c["a_labels"], json!({"-1": 1, "0": 1, "1": 3}));
    assert_eq!(c["b_labels"], json!({"-1": 1, "0": 1, "1": 3}));
    let mean = (-0.1 - 0.1 + 0.4 + 0.0 + 0.0) / 5.0;
    assert!((c["mean_score_difference"].as_f64().expect("mean") - mean).abs() < 1e-6, "{c}");

    let later = app.call(api_get("/v1/models/compare?a=a&b=b&since=2100-01-01T00:00:00Z")).await.json();
    assert_eq!(later["reviews"], 0);
    assert_eq!(later["agreement"], Value::Null);
    app.call(api_get("/v1/models/compare?a=a&b=nope")).await.assert_error(404, "not_found");
    app.call(api_get("/v1/models/compare?a=a")).await.assert_error(400, "bad_request");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_cannot_be_primary_and_shadow_at_once() {
    use worker::metrics::Metrics;
    use worker::models::ChangeError;
    let metrics = std::sync::Arc::new(Metrics::new());
    let options = model::LoadOptions { device: model::DeviceSpec::Cpu, ..Default::default() };
    let same = worker::models::Models::start(tiny_model(), Some(tiny_model()), 1.0, options, Some(1), metrics.clone());
    let error = same.await.err().expect("refused").to_string();
    assert!(error.contains("is the primary model"), "{error}");

    let reversed = tiny_model_reversed("reversed");
    let models = models(metrics, Some(reversed.clone())).await;
    match models.swap_primary(&reversed).await {
        Err(ChangeError::Refused(reason)) => assert!(reason.contains("is the shadow"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
