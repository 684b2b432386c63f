//! docker-compose.yml: the file is valid (no Docker engine needed to check
//! that), `docker compose up` alone trains the demo model and starts the
//! worker on it, and the commands its services run work outside Docker: the
//! train step trains once and skips itself after, and the worker's start line
//! serves the page on that model.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bertstream_tests::*;
use serde_json::Value;

fn compose(args: &[&str]) -> Output {
    Command::new("docker-compose")
        .args(["-f", "docker-compose.yml"])
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("docker-compose is installed by scripts/bootstrap.sh")
}

/// `docker-compose config` (the file as compose resolves it), as JSON.
fn config(profile: Option<&str>) -> Value {
    let mut args = vec![];
    if let Some(p) = profile {
        args.extend(["--profile", p]);
    }
    args.push("config");
    let out = compose(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // docker-compose 1.29 prints YAML only; its own Python (Debian's) has PyYAML,
    // and so does the project's venv.
    let mut python = Command::new(python())
        .args(["-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python with PyYAML");
    std::io::Write::write_all(python.stdin.as_mut().expect("stdin"), &out.stdout).expect("write config");
    let json = python.wait_with_output().expect("python");
    assert!(json.status.success(), "YAML to JSON failed");
    serde_json::from_slice(&json.stdout).expect("compose config as JSON")
}

/// A child process killed if the test fails before it stops it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().expect("a list").iter().map(|s| s.as_str().expect("a string").to_string()).collect()
}

#[test]
fn the_compose_file_is_valid() {
    for args in [&["config", "-q"][..], &["--profile", "demo", "config", "-q"][..]] {
        let out = compose(args);
        assert!(out.status.success(), "docker-compose {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn plain_up_trains_the_demo_model_then_starts_the_worker_on_port_8080() {
    let c = config(None);
    let services = &c["services"];
    let train = &services["train"];
    assert!(train["profiles"].is_null(), "`train` runs on a plain `up`: {train}");
    let worker = &services["worker"];
    assert!(worker["profiles"].is_null(), "{worker}");
    assert_eq!(
        worker["depends_on"]["train"]["condition"], "service_completed_successfully",
        "the worker starts once the model is in the volume: {worker}"
    );
    for dep in ["kafka", "postgres"] {
        assert_eq!(worker["depends_on"][dep]["condition"], "service_healthy", "{worker}");
    }
    assert_eq!(worker["environment"]["MODEL_DIR"], "/models/demo");
    let ports = worker["ports"].as_array().expect("worker ports");
    assert!(
        ports.iter().any(|p| p["published"].to_string().trim_matches('"') == "8080" && p["target"] == 8080),
        "the page answers at localhost:8080: {ports:?}"
    );
    assert!(worker["healthcheck"]["test"].to_string().contains("/readyz"), "{worker}");
    // compose gives the worker longer than its own drain bound before SIGKILL.
    let grace = worker["stop_grace_period"].as_str().expect("stop_grace_period");
    let grace: u64 = grace.trim_end_matches('s').parse().expect("seconds");
    let drain: u64 = worker["environment"]["SHUTDOWN_TIMEOUT_SECS"].as_str().map_or(30, |s| s.parse().expect("number"));
    assert!(grace > drain, "stop_grace_period {grace}s must exceed SHUTDOWN_TIMEOUT_SECS {drain}s");

    let producer = &services["producer"];
    assert_eq!(strings(&producer["profiles"]), ["demo"], "only `--profile demo` publishes: {producer}");
    assert_eq!(producer["depends_on"]["worker"]["condition"], "service_healthy");
    let demo = config(Some("demo"));
    assert!(demo["services"]["producer"].is_object());
}

/// A compose path inside the image, mapped to this checkout and a temp volume.
fn outside(value: &str, models: &Path) -> String {
    if let Some(rest) = value.strip_prefix("/opt/bertstream/") {
        return repo_root().join("scripts").join(rest).display().to_string();
    }
    if let Some(rest) = value.strip_prefix("/models") {
        return format!("{}{rest}", models.display());
    }
    value.to_string()
}

fn command_of(service: &Value, models: &Path) -> Command {
    let argv: Vec<String> = strings(&service["command"]).iter().map(|a| outside(a, models)).collect();
    let bin = worker_binary().parent().expect("target dir").to_path_buf();
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        repo_root().join(".venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]).env("PATH", path);
    if let Some(env) = service["environment"].as_object() {
        for (k, v) in env {
            command.env(k, outside(v.as_str().unwrap_or_default(), models));
        }
    }
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn the_train_step_and_the_worker_start_line_run_outside_docker() {
    let c = config(None);
    let models = std::env::temp_dir().join(unique("compose-models"));
    std::fs::create_dir_all(&models).expect("temp volume");

    // The train step, on a small share of the reviews and a short budget.
    let train = || {
        let mut command = command_of(&c["services"]["train"], &models);
        command.env("TRAIN_SECONDS", "15").env("DEMO_LIMIT", "150");
        let started = Instant::now();
        let out = command.output().expect("run the train step");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "train step failed:\n{text}");
        (text, started.elapsed())
    };
    let (first, _) = train();
    assert!(models.join("demo/model.safetensors").is_file(), "no model after the train step:\n{first}");
    assert!(models.join("data/test.tsv").is_file(), "the producer's file is there too");
    let (second, took) = train();
    assert!(second.contains("model already trained"), "the second run skips training:\n{second}");
    assert!(took < Duration::from_secs(10), "skipping took {took:?}");

    // The worker's start line, on that model, against the test services.
    let db = fresh_database().await;
    let topic = unique("compose");
    let port = free_port();
    let log = models.join("worker.log");
    let mut command = command_of(&c["services"]["worker"], &models);
    command
        .env("KAFKA_BROKERS", brokers())
        .env("DATABASE_URL", &db)
        .env("HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("INPUT_TOPIC", &topic)
        .env("OUTPUT_TOPIC", format!("{topic}.out"))
        .env("DLQ_TOPIC", format!("{topic}.dlq"))
        .env("GROUP_ID", format!("{topic}.g"))
        .env("DEVICE", "cpu")
        .env("TORCH_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"));
    let mut worker = KillOnDrop(command.spawn().expect("start the worker"));
    let worker = &mut worker.0;
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(worker.try_wait().expect("worker status").is_none(), "the worker stopped:\n{}", log_text());
        assert!(Instant::now() < deadline, "not ready within 120 s:\n{}", log_text());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let page = client.get(format!("{base}/")).send().await.expect("GET /");
    assert!(page.status().is_success(), "GET / -> {}", page.status());
    let answer: Value = client
        .post(format!("{base}/v1/classify"))
        .json(&serde_json::json!({"texts": ["手机很好，物流也快"]}))
        .send()
        .await
        .expect("POST /v1/classify")
        .json()
        .await
        .expect("json");
    assert!(answer.to_string().contains("demo@"), "served by the trained demo model: {answer}");

    let _ = Command::new("kill").arg("-TERM").arg(worker.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = worker.try_wait().expect("worker status") {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 30 s of SIGTERM:\n{}", log_text());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}:\n{}", log_text());
    let _ = std::fs::remove_dir_all(&models);
}
