//! The HTTP API of a running worker (the real binary, Kafka and Postgres):
//! the stream's results through the API, the old formats, refusals with their
//! status, tokens and rate limits from the environment, graceful shutdown.

use std::time::Duration;

use bertstream_tests::*;
use serde_json::{json, Value};

const READY: Duration = Duration::from_secs(120);

async fn wait_ready(worker: &Worker) {
    let client = reqwest::Client::new();
    wait_until(READY, "the worker's /readyz", || async {
        client.get(worker.url("/readyz")).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_worker_serves_results_classifications_and_the_old_formats() {
    let topics = Topics::create(2).await;
    let db = fresh_database().await;
    let records: Vec<_> = (0..30).map(|i| review(&format!("r-{i:03}"), &sample_text(i))).collect();
    publish(&topics.input, &records).await;
    let worker = Worker::start(&topics, &db, &[("MAX_BODY_BYTES", "4000"), ("MAX_TEXTS_PER_REQUEST", "4")]);
    wait_ready(&worker).await;
    wait_until(Duration::from_secs(120), "30 rows", || async { stored_count(&db).await == 30 }).await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| http.post(worker.url(path)).json(&body).send();

    let reply = post("/v1/classify", json!({"texts": ["手机很好，漂亮时尚", "battery died in a day"]}))
        .await
        .expect("classify");
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().await.expect("json");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(2));
    assert!(body["model"].as_str().is_some_and(|m| m.starts_with("tiny-bert@")));
    assert_eq!(stored_count(&db).await, 30, "HTTP texts are never stored");

    let page: Value =
        http.get(worker.url("/v1/reviews?limit=7")).send().await.expect("list").json().await.expect("json");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 7);
    let next = page["next"].as_str().expect("a next page");
    let rest: Value = http
        .get(worker.url(&format!("/v1/reviews?limit=500&before={next}")))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(rest["items"].as_array().map(Vec::len), Some(23));
    let id = items[0]["id"].as_str().expect("id");
    let one: Value =
        http.get(worker.url(&format!("/v1/reviews/{id}"))).send().await.expect("get").json().await.expect("json");
    assert_eq!(one["id"], id);
    assert_eq!(http.get(worker.url("/v1/reviews/none")).send().await.expect("get").status(), 404);
    let stats: Value = http.get(worker.url("/v1/stats")).send().await.expect("stats").json().await.expect("json");
    assert_eq!(stats["total"], 30);
    assert_eq!(stats["recent"], 30);

    let encode = post("/encode", json!({"id": 111, "texts": ["总的来说，这款手机性价比是特别高的。", "槽糕的售后服务！！！店大欺客"], "is_tokenized": false}))
        .await
        .expect("encode")
        .text()
        .await
        .expect("text");
    assert!(
        encode.starts_with(r#"{"id":111,"result":[{"pred_label":[""#) && encode.ends_with(r#"]}],"status":200}"#),
        "{encode}"
    );
    let query: Value = http
        .post(worker.url("/api/v0.1/query"))
        .header("content-type", "application/x-www-form-urlencoded; charset=UTF-8")
        .body("text=物流很快\n屏幕太小了")
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    assert_eq!(query["result"].as_array().map(Vec::len), Some(2), "{query}");

    let refusals: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (http.post(worker.url("/v1/classify")).body("{oops"), 400),
        (http.post(worker.url("/v1/classify")).json(&json!({"texts": 3})), 422),
        (http.post(worker.url("/v1/classify")).json(&json!({"texts": ["a", "b", "c", "d", "e"]})), 413),
        (http.post(worker.url("/v1/classify")).json(&json!({"text": "好".repeat(3000)})), 413),
        (http.get(worker.url("/v1/reviews?before=zz")), 400),
    ];
    for (request, status) in refusals {
        let reply = request.send().await.expect("reply");
        assert_eq!(reply.status().as_u16(), status);
        let body: Value = reply.json().await.expect("a JSON error");
        assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string(), "{body}");
    }
    let metrics = http.get(worker.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains(r#"bertstream_http_requests_total{route="/v1/classify",status="413"} 2"#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_and_rate_limits_come_from_the_environment_and_tokens_are_never_logged() {
    let topics = Topics::create(1).await;
    let db = fresh_database().await;
    let secret = "tok-3f9a7c1e5b";
    let env = [
        ("API_TOKENS", secret),
        ("RATE_LIMIT_PER_SEC", "1"),
        ("RATE_LIMIT_BURST", "3"),
        ("RUST_LOG", "debug,rdkafka=warn"),
    ];
    let worker = Worker::start(&topics, &db, &env);
    wait_ready(&worker).await;
    let http = reqwest::Client::new();
    let classify = || http.post(worker.url("/v1/classify")).json(&json!({"text": "很好"}));
    assert_eq!(classify().send().await.expect("reply").status(), 401);
    assert_eq!(classify().bearer_auth("wrong").send().await.expect("reply").status(), 401);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let reply = classify().bearer_auth(secret).send().await.expect("reply");
        if reply.status() == 429 {
            assert!(reply.headers().contains_key("retry-after"));
        }
        statuses.push(reply.status().as_u16());
    }
    assert_eq!(&statuses[..3], [200, 200, 200], "{statuses:?}");
    assert_eq!(statuses[4], 429, "{statuses:?}");
    drop(worker.terminate_and_log());
}

/// The database password, the SASL password and the admin tokens never
/// reach the log either, even at debug level and when the connections they
/// open fail (which is when clients like to print what they were given).
#[tokio::test(flavor = "multi_thread")]
async fn database_and_sasl_passwords_and_admin_tokens_are_never_logged() {
    let topics = Topics::create(1).await;
    let db = fresh_database().await;
    let (db_password, sasl_password, admin) = ("pw-db-71c2e9", "pw-sasl-4d8b0a", "adm-5e3f1b");
    let wrong_db = db.replacen("bertstream:bertstream@", &format!("bertstream:{db_password}@"), 1);
    assert_ne!(wrong_db, db, "the test database URL has the expected credentials");
    let runs: [(&str, Vec<(&str, &str)>); 2] = [
        // Postgres refuses the password: start-up gives up after its bound.
        (&wrong_db, vec![("STARTUP_TIMEOUT_SECS", "3")]),
        // The brokers speak no SASL: creating the topics fails.
        (
            &db,
            vec![
                ("KAFKA_OPT_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
                ("KAFKA_OPT_SASL_MECHANISM", "PLAIN"),
                ("KAFKA_OPT_SASL_USERNAME", "user"),
                ("KAFKA_OPT_SASL_PASSWORD", sasl_password),
            ],
        ),
    ];
    for (url, mut env) in runs {
        env.extend([("ADMIN_TOKENS", admin), ("RUST_LOG", "debug"), ("LOG_FORMAT", "json")]);
        let mut worker = Worker::start(&topics, url, &env);
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while worker.exited().is_none() {
            assert!(std::time::Instant::now() < deadline, "the worker did not give up\n{}", worker.log_text());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let log = worker.log_text();
        assert!(!log.is_empty());
        for secret in [db_password, sasl_password, admin] {
            assert!(!log.contains(secret), "{secret} reached the log:\n{log}");
        }
    }
}

trait TerminateAndLog {
    fn terminate_and_log(self) -> String;
}

impl TerminateAndLog for Worker {
    /// Stops the worker and checks its log holds no token.
    fn terminate_and_log(mut self) -> String {
        let _ = self.terminate(Duration::from_secs(30));
        let log = self.log_text();
        assert!(!log.contains("tok-3f9a7c1e5b"), "a token reached the log");
        log
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn on_sigterm_requests_in_flight_finish_and_new_ones_are_refused() {
    let topics = Topics::create(1).await;
    let db = fresh_database().await;
    let mut worker = Worker::start(&topics, &db, &[("RATE_LIMIT_PER_SEC", "0")]);
    wait_ready(&worker).await;
    let url = worker.url("/v1/classify");
    let texts: Vec<String> = (0..64).map(|i| sample_text(i).repeat(8)).collect();
    let requests: Vec<_> = (0..16)
        .map(|_| {
            let (url, texts) = (url.clone(), texts.clone());
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .json(&json!({"texts": texts}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let status = tokio::task::spawn_blocking(move || {
        let status = worker.terminate(Duration::from_secs(30));
        (status, worker)
    });
    let mut answered = 0;
    for request in requests {
        match request.await.expect("join") {
            Ok(code) => {
                assert_eq!(code, 200, "an accepted request is answered, not failed");
                answered += 1;
            }
            Err(e) => assert!(e.is_connect() || e.is_request(), "only refused connections: {e}"),
        }
    }
    let (status, worker) = status.await.expect("join");
    let status = status.expect("exits after SIGTERM");
    assert!(status.success(), "{status}\n{}", worker.log_text());
    assert!(answered > 0, "requests in flight at SIGTERM were answered");
    let after = reqwest::Client::new().post(&url).json(&json!({"text": "很好"})).send().await;
    assert!(after.is_err_and(|e| e.is_connect()), "new requests are refused after shutdown");
}
