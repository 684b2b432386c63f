//! Every endpoint through the router (`oneshot`, no socket) over the real
//! Postgres and the tiny model: success, and each refusal with its status.
//! The protections (tokens, rate limits, timeouts, CORS, the socket) are in
//! `http_guard.rs`.

mod http_support;

use axum::body::Body;
use axum::http::Request;
use chrono::{TimeZone, Utc};
use http_support::*;
use serde_json::{json, Value};
use worker::config::HttpArgs;
use worker::db::ResultRow;
use worker::http::routes::ENDPOINTS;

const LABELS: [&str; 3] = ["-1", "0", "1"];

#[tokio::test(flavor = "multi_thread")]
async fn classify_answers_every_text_with_label_scores_and_model() {
    let app = TestApp::new(open_args(), Lane::Model).await;
    let reply = app
        .call(post_json("/v1/classify", r#"{"texts": ["手机很好，漂亮时尚", "The phone is great", "屏幕太小了"]}"#))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert!(body["model"].as_str().is_some_and(|m| m.starts_with("tiny-bert@")), "{body}");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    for r in results {
        assert!(LABELS.contains(&r["label"].as_str().expect("label")), "{r}");
        let scores = r["scores"].as_object().expect("scores");
        assert_eq!(scores.keys().collect::<Vec<_>>(), LABELS);
        let sum: f64 = scores.values().map(|v| v.as_f64().expect("number")).sum();
        assert!((sum - 1.0).abs() < 1e-3, "probabilities sum to 1: {sum}");
        assert_eq!(r["score"], scores[r["label"].as_str().expect("label")]);
    }
    let one = app.call(post_json("/v1/classify", r#"{"text": "物流很快"}"#)).await.json();
    assert_eq!(one["results"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_classify_requests_get_json_errors_with_the_right_status() {
    let args = HttpArgs { max_texts_per_request: 3, max_text_chars: 20, max_body_bytes: 1000, ..open_args() };
    let app = TestApp::new(args, Lane::Model).await;
    let cases: Vec<(String, u16, &str)> = vec![
        ("{not json".into(), 400, "bad_request"),
        (String::new(), 400, "bad_request"),
        (r#"{"texts": 5}"#.into(), 422, "invalid_input"),
        (r#"{"txt": "a"}"#.into(), 422, "invalid_input"),
        (r#"{"texts": ["a"], "text": "b"}"#.into(), 422, "invalid_input"),
        (r#"{"texts": []}"#.into(), 422, "invalid_input"),
        (r#"{"texts": ["ok", "  "]}"#.into(), 422, "invalid_input"),
        (r#"{"texts": ["a", "b", "c", "d"]}"#.into(), 413, "too_large"),
        (json!({"text": "长".repeat(21)}).to_string(), 413, "too_large"),
        (json!({"text": "x".repeat(2000)}).to_string(), 413, "too_large"),
    ];
    for (body, status, code) in cases {
        let reply = app.call(post_json("/v1/classify", &body)).await;
        assert_eq!(reply.status.as_u16(), status, "{body:.60}: {}", reply.text());
        reply.assert_error(status, code);
    }
    // Invalid UTF-8 inside a JSON string.
    let mut req =
        Request::post("/v1/classify").body(Body::from(b"{\"text\": \"\xff\xfe\"}".to_vec())).expect("request");
    req.extensions_mut().insert(peer("127.0.0.1:1"));
    app.call(req).await.assert_error(400, "bad_request");
    // A body over the limit without Content-Length (chunked) is cut off while streaming.
    let chunks = futures::stream::iter((0..100).map(|_| Ok::<_, std::io::Error>(vec![b' '; 100])));
    let mut req = Request::post("/v1/classify").body(Body::from_stream(chunks)).expect("request");
    req.extensions_mut().insert(peer("127.0.0.1:1"));
    app.call(req).await.assert_error(413, "too_large");
    app.call(get("/no/such/thing")).await.assert_error(404, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn reviews_by_id_and_newest_first_pages_by_keyset() {
    let app = TestApp::new(open_args(), Lane::Model).await;
    let t = |s: i64| Utc.timestamp_opt(1_790_000_000 + s, 123_456_000).single().expect("time");
    // Two rows share a timestamp: review_id breaks the tie.
    let rows = vec![
        row("r-1", "1", "手机很好", t(1)),
        row("r-2", "-1", "电池不耐用", t(2)),
        row("r-3", "1", "The phone is great", t(3)),
        row("r-4", "0", "一般", t(3)),
        row("r-5", "1", "物流很快", t(5)),
    ];
    app.insert(&rows).await;

    let one = app.call(get("/v1/reviews/r-2")).await;
    assert_eq!(one.status, 200);
    let one = one.json();
    assert_eq!(
        (one["id"].as_str(), one["label"].as_str(), one["text"].as_str()),
        (Some("r-2"), Some("-1"), Some("电池不耐用"))
    );
    assert_eq!(one["source"], json!({"topic": "reviews", "partition": 0, "offset": 1}));
    app.call(get("/v1/reviews/nope")).await.assert_error(404, "not_found");

    let mut seen = Vec::new();
    let mut path = "/v1/reviews?limit=2".to_string();
    loop {
        let page = app.call(get(&path)).await.json();
        seen.extend(page["items"].as_array().expect("items").iter().map(|r| r["id"].as_str().expect("id").to_string()));
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/reviews?limit=2&before={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["r-5", "r-4", "r-3", "r-2", "r-1"]);
    let positives = app.call(get("/v1/reviews?label=1")).await.json();
    let ids: Vec<&str> =
        positives["items"].as_array().expect("items").iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, ["r-5", "r-3", "r-1"]);
    assert_eq!(positives["next"], Value::Null);

    app.call(get("/v1/reviews?before=not-a-cursor")).await.assert_error(400, "bad_request");
    app.call(get("/v1/reviews?limit=0")).await.assert_error(422, "invalid_input");
    app.call(get("/v1/reviews?limit=501")).await.assert_error(422, "invalid_input");
    app.call(get("/v1/reviews?limit=ten")).await.assert_error(400, "bad_request");
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_count_by_label_and_report_recent_throughput() {
    let app = TestApp::new(open_args(), Lane::Model).await;
    let now = Utc::now();
    let old = now - chrono::Duration::hours(1);
    app.insert(&[row("a", "1", "x", now), row("b", "1", "y", now), row("c", "-1", "z", old)]).await;
    app.state.metrics.set_lag([(0, 40), (3, 2)].into(), 4.0);
    let stats = app.call(get("/v1/stats")).await;
    assert_eq!(stats.status, 200);
    let stats = stats.json();
    assert_eq!(stats["counts"], json!({"1": 2, "-1": 1}));
    assert_eq!(stats["total"], 3);
    assert_eq!(stats["recent"], 2);
    assert_eq!(stats["window_secs"], 60);
    assert_eq!(stats["consumer_lag"], 42);
    assert_eq!(stats["partition_lag"], json!({"0": 40, "3": 2}));
    assert_eq!(stats["drain_seconds"], 10.5);
    let metrics = app.call(get("/metrics")).await.text();
    for line in
        ["bertstream_consumer_lag 42", r#"bertstream_partition_lag{partition="3"} 2"#, "bertstream_drain_seconds 10.5"]
    {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
    app.state.metrics.set_lag([(0, 5)].into(), 0.0);
    let stats = app.call(get("/v1/stats")).await.json();
    assert_eq!(stats["drain_seconds"], Value::Null, "no results are being made: no estimate");
    assert_eq!(stats["labels"], json!(LABELS));

    // The counts come from counters the table's triggers keep: a newer message
    // moving a review to another label moves its count too.
    app.insert(&[ResultRow { offset: 2, ..row("a", "0", "x, edited", now) }, row("d", "0", "w", now)]).await;
    let stats = app.call(get("/v1/stats")).await.json();
    assert_eq!(stats["counts"], json!({"1": 1, "0": 2, "-1": 1}));
    assert_eq!(stats["total"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn encode_answers_in_the_bert_base_serving_format() {
    let app = TestApp::new(open_args(), Lane::Model).await;
    let body = r#"{"id": 111, "texts": ["总的来说，这款手机性价比是特别高的。", "槽糕的售后服务！！！店大欺客"], "is_tokenized": false}"#;
    let reply = app.call(post_json("/encode", body)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.text().starts_with(r#"{"id":111,"result":[{"pred_label":[""#), "{}", reply.text());
    let v = reply.json();
    assert_eq!(v.as_object().expect("object").keys().collect::<Vec<_>>(), ["id", "result", "status"]);
    assert_eq!(v["status"], 200);
    let result = v["result"].as_array().expect("result");
    assert_eq!(result.len(), 1, "one object for the whole request");
    assert_eq!(result[0].as_object().expect("object").keys().collect::<Vec<_>>(), ["pred_label", "score"]);
    let labels = result[0]["pred_label"].as_array().expect("labels");
    let scores = result[0]["score"].as_array().expect("scores");
    assert_eq!((labels.len(), scores.len()), (2, 2));
    assert!(labels.iter().all(|l| LABELS.contains(&l.as_str().expect("string label"))));
    assert!(scores.iter().all(|s| s.as_f64().is_some_and(|s| s > 1.0 / 3.0 - 1e-6 && s <= 1.0)), "top probabilities");

    // A string id and pre-tokenized texts, the way bert-base also took them; no content type (old clients).
    let reply = app
        .call(request(
            "POST",
            "/encode",
            "text/plain",
            r#"{"id": "abc", "texts": [["手", "机", "好"]], "is_tokenized": true}"#.into(),
        ))
        .await;
    assert_eq!(reply.json()["id"], "abc");
    app.call(post_json("/encode", r#"{"id": 1, "texts": [1]}"#)).await.assert_error(422, "invalid_input");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_query_api_takes_a_form_or_json_and_answers_label_per_line() {
    let app = TestApp::new(open_args(), Lane::Model).await;
    // As the old page sent it: `data: "text=" + txt` (raw UTF-8, form content type).
    let form = "text=手机很好，漂亮时尚\n\n电池  不耐用\n";
    let reply = app
        .call(request("POST", "/api/v0.1/query", "application/x-www-form-urlencoded; charset=UTF-8", form.into()))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    let result = v["result"].as_array().expect("result");
    assert_eq!(result.len(), 2);
    assert_eq!(result[0][1], "手机很好，漂亮时尚");
    assert_eq!(result[1][1], "电池 不耐用", "runs of blanks squeezed as the demo did");
    assert!(result.iter().all(|r| LABELS.contains(&r[0].as_str().expect("label"))));
    assert_eq!(v["score"].as_array().map(Vec::len), Some(2));

    let json_reply = app.call(post_json("/api/v0.1/query", r#"{"text": "物流很快"}"#)).await.json();
    assert_eq!(json_reply["result"][0][1], "物流很快");
    let encoded = app
        .call(request("POST", "/api/v0.1/query", "application/x-www-form-urlencoded", "text=%E5%BE%88%E5%A5%BD".into()))
        .await
        .json();
    assert_eq!(encoded["result"][0][1], "很好");
    let empty = app.call(request("POST", "/api/v0.1/query", "application/x-www-form-urlencoded", "text=".into())).await;
    assert_eq!(
        (empty.status.as_u16(), empty.json()),
        (200, json!({"result": "error"})),
        "the demo's answer to an empty text"
    );
    app.call(request("POST", "/api/v0.1/query", "application/x-www-form-urlencoded", "other=1".into()))
        .await
        .assert_error(400, "bad_request");
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_describes_exactly_the_mounted_routes() {
    let app = TestApp::new(open_args(), Lane::Model).await;
    let doc = app.call(get("/openapi.json")).await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), ENDPOINTS.len());
    for e in ENDPOINTS {
        let op = &paths[e.path][e.method];
        assert!(op["summary"].is_string(), "{} {}", e.method, e.path);
        for (status, _) in e.responses {
            assert!(op["responses"][status.to_string()].is_object(), "{} {} {status}", e.method, e.path);
        }
        // Every described route is mounted (405 or 4xx from the handler, never the 404 fallback).
        let path = e.path.replace("{id}", "x").replace("{file}", "app.js");
        let reply = app.call(request(&e.method.to_uppercase(), &path, "application/json", "{}".into())).await;
        assert!(
            reply.text().is_empty() || !reply.text().contains("no such endpoint"),
            "{} {path} not mounted",
            e.method
        );
    }
    for reference in doc.to_string().split("#/components/schemas/").skip(1) {
        let name = reference.split('"').next().expect("name");
        assert!(doc["components"]["schemas"][name].is_object(), "schema {name} is defined");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_and_its_assets_are_served_from_the_binary() {
    let app = TestApp::new(open_args(), Lane::Model).await;
    let page = app.call(get("/")).await;
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"].to_str().expect("ascii").starts_with("text/html"));
    let html = page.text();
    assert!(html.contains(r#"<meta charset="utf-8">"#) && html.contains(r#"name="viewport""#));
    assert!(html.contains("输入一条评论"));
    assert_eq!(app.call(get("/static/style.css")).await.status, 200);
    app.call(get("/static/nope.js")).await.assert_error(404, "not_found");
    let metrics = app.call(get("/metrics")).await.text();
    assert!(metrics.contains(r#"bertstream_http_requests_total{route="/",status="200"} 1"#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_cut_long_texts_and_the_review_by_id_has_it_whole() {
    let app = TestApp::new(open_args(), Lane::Model).await;
    let long = "长".repeat(3000);
    app.insert(&[row("long", "1", &long, Utc::now()), row("short", "0", "短", Utc::now())]).await;
    let page = app.call(get("/v1/reviews")).await.json();
    let items = page["items"].as_array().expect("items");
    let listed = items.iter().find(|r| r["id"] == "long").expect("listed");
    assert_eq!(listed["text"].as_str().map(|t| t.chars().count()), Some(1000));
    assert_eq!(listed["text_truncated"], true);
    let short = items.iter().find(|r| r["id"] == "short").expect("listed");
    assert!(short.get("text_truncated").is_none(), "{short}");
    let whole = app.call(get("/v1/reviews/long")).await.json();
    assert_eq!(whole["text"], long.as_str());
    assert!(whole.get("text_truncated").is_none());
}
