//! The API's protections through the router (`oneshot`, no socket) over the
//! real Postgres and the tiny model: tokens, rate limits and the limiter's
//! memory, the concurrency bound and timeout, CORS; then the server itself
//! over a socket (slow headers, client addresses).

mod http_support;

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use http_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use worker::config::HttpArgs;

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_required_when_configured_and_public_routes_stay_open() {
    let args = HttpArgs { api_tokens: "alpha-secret, beta-secret".parse().expect("secret"), ..open_args() };
    let app = TestApp::new(args, Lane::Model).await;
    let body = r#"{"text": "很好"}"#;
    app.call(post_json("/v1/classify", body)).await.assert_error(401, "unauthorized");
    let mut wrong = post_json("/v1/classify", body);
    wrong.headers_mut().insert("authorization", "Bearer alpha-secreT".parse().expect("header"));
    let reply = app.call(wrong).await;
    reply.assert_error(401, "unauthorized");
    assert_eq!(reply.headers["www-authenticate"], "Bearer");
    for token in ["alpha-secret", "beta-secret"] {
        let mut right = post_json("/v1/classify", body);
        right.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
        assert_eq!(app.call(right).await.status, 200);
    }
    app.call(get("/v1/stats")).await.assert_error(401, "unauthorized");
    for path in ["/", "/healthz", "/metrics", "/openapi.json", "/static/app.js"] {
        assert_eq!(app.call(get(path)).await.status, 200, "{path} is public");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn over_the_rate_a_client_gets_429_with_retry_after_and_others_do_not() {
    let args = HttpArgs {
        rate_limit_per_sec: 1,
        rate_limit_burst: 2,
        trusted_proxies: "10.0.0.0/8".into(),
        ..HttpArgs::default()
    };
    let app = TestApp::new(args, Lane::Model).await;
    let from = |addr: &str, xff: Option<&str>| {
        let mut req = get("/v1/stats");
        req.extensions_mut().insert(peer(addr));
        if let Some(x) = xff {
            req.headers_mut().insert("x-forwarded-for", x.parse().expect("header"));
        }
        req
    };
    for _ in 0..2 {
        assert_eq!(app.call(from("1.1.1.1:1", None)).await.status, 200);
    }
    let reply = app.call(from("1.1.1.1:2", None)).await;
    reply.assert_error(429, "rate_limited");
    let retry: u64 = reply.headers["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // Another address has its own bucket; a forged X-Forwarded-For from an untrusted peer changes nothing.
    assert_eq!(app.call(from("2.2.2.2:1", None)).await.status, 200);
    app.call(from("1.1.1.1:3", Some("7.7.7.7"))).await.assert_error(429, "rate_limited");
    // Behind a trusted proxy, the forwarded client counts.
    assert_eq!(app.call(from("10.0.0.5:1", Some("1.1.1.1, 8.8.8.8"))).await.status, 200);
    assert_eq!(app.call(from("10.0.0.5:1", Some("1.1.1.1"))).await.status.as_u16(), 429);
    // Health checks are never limited.
    for _ in 0..5 {
        assert_eq!(app.call(get("/healthz")).await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_tokens_count_against_the_address_rate() {
    let tokens = "alpha-secret".parse().expect("secret");
    let args = HttpArgs { api_tokens: tokens, rate_limit_per_sec: 1, rate_limit_burst: 2, ..HttpArgs::default() };
    let app = TestApp::new(args, Lane::Model).await;
    let with_token = |token: &str| {
        let mut req = get("/v1/stats");
        req.headers_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
        req
    };
    app.call(get("/v1/stats")).await.assert_error(401, "unauthorized");
    app.call(with_token("guess-1")).await.assert_error(401, "unauthorized");
    app.call(with_token("guess-2")).await.assert_error(429, "rate_limited");
    // The right token has its own bucket.
    assert_eq!(app.call(with_token("alpha-secret")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_limiter_remembers_a_bounded_number_of_clients() {
    let args = HttpArgs {
        rate_limit_per_sec: 1000,
        rate_limit_burst: 1000,
        rate_limit_max_clients: 50,
        ..HttpArgs::default()
    };
    let app = TestApp::new(args, Lane::Model).await;
    let router = app.router();
    for i in 0..500u32 {
        let mut req = get("/healthz/nope");
        req.extensions_mut().insert(peer(&format!("{}.{}.{}.1:9", 11 + i / 65536, (i / 256) % 256, i % 256)));
        let _ = call(router.clone(), req).await;
        let mut req = get("/v1/reviews/x");
        req.extensions_mut().insert(peer(&format!("{}.{}.{}.1:9", 11 + i / 65536, (i / 256) % 256, i % 256)));
        let status = call(router.clone(), req).await.status.as_u16();
        assert!(status == 404 || status == 429, "{status}");
    }
    let tracked = app.state.guard.tracked_clients();
    assert!(tracked <= 51, "{tracked} clients remembered; the bound is 50 (+1 shared overflow bucket)");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_model_gives_503_by_timeout_and_by_the_concurrency_bound() {
    let args = HttpArgs { request_timeout_ms: 1500, max_concurrent_requests: 1, ..open_args() };
    let app = TestApp::new(args, Lane::Stuck).await;
    let router = app.router();
    let first = tokio::spawn(call(router.clone(), post_json("/v1/classify", r#"{"text": "很好"}"#)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = call(router.clone(), post_json("/v1/classify", r#"{"text": "很好"}"#)).await;
    second.assert_error(503, "overloaded");
    assert!(second.headers.contains_key("retry-after"));
    let first = first.await.expect("join");
    first.assert_error(503, "timeout");
    // The permit is back: the next request is admitted (and times out in turn).
    call(router, post_json("/v1/classify", r#"{"text": "很好"}"#)).await.assert_error(503, "timeout");
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_allows_only_the_configured_origins() {
    let app = TestApp::new(HttpArgs { cors_origins: "https://good.example".into(), ..open_args() }, Lane::Model).await;
    let preflight = |origin: &str| {
        let mut req = Request::builder()
            .method("OPTIONS")
            .uri("/v1/classify")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,authorization")
            .body(Body::empty())
            .expect("request");
        req.extensions_mut().insert(peer("127.0.0.1:1"));
        req
    };
    let good = app.call(preflight("https://good.example")).await;
    assert_eq!(
        good.headers.get("access-control-allow-origin").map(|v| v.as_bytes()),
        Some(&b"https://good.example"[..])
    );
    let bad = app.call(preflight("https://evil.example")).await;
    assert!(bad.headers.get("access-control-allow-origin").is_none());
    // Without CORS_ORIGINS, no cross-origin access at all.
    let closed = TestApp::new(open_args(), Lane::Model).await;
    assert!(closed.call(preflight("https://good.example")).await.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_cuts_off_slow_headers_and_knows_each_clients_address() {
    let args = HttpArgs { header_timeout_ms: 300, rate_limit_per_sec: 1, rate_limit_burst: 1, ..HttpArgs::default() };
    let app = TestApp::new(args, Lane::Model).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(worker::http::serve(listener, app.state.clone(), stopped));
    let connect = |from: &'static str| async move {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind(format!("{from}:0").parse().expect("address")).expect("bind");
        socket.connect(addr).await.expect("connect")
    };

    // Headers that never end (slowloris): the connection is closed, unanswered.
    let mut slow = connect("127.0.0.1").await;
    slow.write_all(b"GET /v1/stats HTTP/1.1\r\nHost: test\r\n").await.expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), slow.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection was still open after 30 s");
    assert!(!String::from_utf8_lossy(&answer).contains(" 200 "), "{answer:?}");

    // Whole requests are served, and each peer address has its own rate-limit bucket.
    let status = |from: &'static str| async move {
        let mut stream = connect(from).await;
        stream.write_all(b"GET /v1/stats HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        answer.split(' ').nth(1).unwrap_or_default().to_string()
    };
    assert_eq!(status("127.0.0.1").await, "200");
    assert_eq!(status("127.0.0.1").await, "429");
    assert_eq!(status("127.0.0.2").await, "200");
    stop.send(true).expect("server running");
    server.await.expect("join").expect("serve");
}
