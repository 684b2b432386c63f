//! The demo command in its short mode: from set-up to rows in Postgres and a
//! page answering, then Ctrl-C stops what it started.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bertstream_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn the_short_demo_fills_postgres_and_serves_the_page_until_ctrl_c() {
    let db = fresh_database().await;
    let port = free_port();
    let demo_dir = tempfile_dir();
    let topic = unique("demo");
    let mut demo = Command::new(repo_root().join("scripts/demo.sh"))
        .arg("--short")
        .current_dir(repo_root())
        .env("DATABASE_URL", &db)
        .env("DEMO_DIR", &demo_dir)
        .env("DEMO_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("INPUT_TOPIC", &topic)
        .env("GROUP_ID", format!("{topic}.g"))
        .env("OUTPUT_TOPIC", format!("{topic}.out"))
        .env("DLQ_TOPIC", format!("{topic}.dlq"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run scripts/demo.sh");
    let stdout = demo.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("demo| {line}");
            let _ = lines_tx.send(line);
        }
    });
    let mut output = String::new();
    while !output.contains("Web page and API:") {
        let line = lines_rx.recv_timeout(Duration::from_secs(600)).expect("the demo reports its URL within 10 minutes");
        output.push_str(&line);
        output.push('\n');
    }
    assert!(output.contains("Counts by label"), "{output}");

    let test_lines = std::fs::read_to_string(format!("{demo_dir}/split/test.tsv"))
        .expect("test split")
        .lines()
        .filter(|l| !l.is_empty() && *l != "label\ttext")
        .count() as i64;
    assert!(test_lines > 0);
    assert_eq!(stored_count(&db).await, test_lines, "every published test review is in Postgres");

    let client = reqwest::Client::new();
    let page = client.get(format!("http://127.0.0.1:{port}/")).send().await.expect("GET /");
    assert!(page.status().is_success(), "GET / -> {}", page.status());
    let answer: serde_json::Value = client
        .post(format!("http://127.0.0.1:{port}/v1/classify"))
        .json(&serde_json::json!({"text": "手机很好，物流也快"}))
        .send()
        .await
        .expect("POST /v1/classify")
        .json()
        .await
        .expect("json");
    assert!(answer.to_string().contains("label"), "{answer}");

    // Ctrl-C: the demo stops the worker it started and exits.
    let _ = Command::new("kill").arg("-INT").arg(demo.id().to_string()).status();
    let status = demo.wait().expect("demo exits");
    assert_eq!(status.code(), Some(130), "exit after Ctrl-C");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "the worker is gone");
}

fn tempfile_dir() -> String {
    let dir = std::env::temp_dir().join(unique("demo"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.display().to_string()
}
