//! The worker binary run as a child process, with the topics, database and
//! tiny model of one test; a free port for its HTTP server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::{tiny_model, unique};
use crate::kafka::{brokers, Topics};

/// The worker binary, built by `cargo test --workspace` next to the test binaries.
pub fn worker_binary() -> PathBuf {
    binary("bertstream-worker", "bertstream-worker")
}

/// The producer binary, built likewise.
pub fn producer_binary() -> PathBuf {
    binary("bertstream-produce", "bertstream-producer")
}

fn binary(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target profile dir");
    let bin = dir.join(name);
    assert!(bin.is_file(), "{} not built: run `cargo build -p {package}` (scripts/test.sh does)", bin.display());
    bin
}

/// A worker child process; killed on drop.
pub struct Worker {
    child: Child,
    pub http_port: u16,
    pub log: PathBuf,
    /// The exit code [`Worker::stop`] expects.
    expected_exit: i32,
}

impl Worker {
    pub fn start(topics: &Topics, database_url: &str, extra_env: &[(&str, &str)]) -> Self {
        let http_port = free_port();
        let log = std::env::temp_dir().join(format!("{}.log", unique("worker")));
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(worker_binary());
        command
            .arg("run")
            .env("KAFKA_BROKERS", brokers())
            .env("INPUT_TOPIC", &topics.input)
            .env("OUTPUT_TOPIC", &topics.output)
            .env("DLQ_TOPIC", &topics.dlq)
            .env("GROUP_ID", &topics.group)
            .env("DATABASE_URL", database_url)
            .env("MODEL_DIR", tiny_model())
            .env("DEVICE", "cpu")
            .env("TORCH_THREADS", "1")
            .env("HTTP_ADDR", format!("127.0.0.1:{http_port}"))
            .env("RUST_LOG", std::env::var("TEST_LOG").unwrap_or_else(|_| "info,rdkafka=warn".into()))
            .stdout(Stdio::null())
            .stderr(log_file);
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let child = command.spawn().expect("spawn worker");
        Self { child, http_port, log, expected_exit: 0 }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit status, once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM and waits up to `bound` for the exit status. A worker
    /// that has exited already is not signalled (its pid may be reused).
    pub fn terminate(&mut self, bound: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exited() {
            return Some(status);
        }
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// What [`Worker::stop`] expects the exit code to be, when not 0.
    pub fn expect_exit(&mut self, code: i32) {
        self.expected_exit = code;
    }

    /// SIGTERM once the worker is up; it must exit within 30 s with the
    /// expected code (0 unless [`Worker::expect_exit`] said otherwise). (A
    /// SIGTERM before the process reaches its signal handler, while it is
    /// still being loaded, kills it: a restarted worker may have nothing left
    /// to do yet.) A worker that has exited already only has its code checked.
    pub fn stop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.exited().is_none() && !self.log_text().contains("HTTP listening") {
            assert!(Instant::now() < deadline, "the worker did not start within 120 s\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = self.terminate(Duration::from_secs(30)).expect("exits within 30 s of SIGTERM");
        assert_eq!(status.code(), Some(self.expected_exit), "exit status {status}\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// A metric without labels from `/metrics`; `None` while the worker does not answer.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let metrics = reqwest::get(self.url("/metrics")).await.ok()?.text().await.ok()?;
        metrics.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `bertstream-worker backfill` over `topics.input` and `database_url`, with
/// `args`; started, not awaited (a test may kill it part-way).
pub fn start_backfill(topics: &Topics, database_url: &str, args: &[&str]) -> Child {
    Command::new(worker_binary())
        .arg("backfill")
        .args(args)
        .env("KAFKA_BROKERS", brokers())
        .env("INPUT_TOPIC", &topics.input)
        .env("DATABASE_URL", database_url)
        .env("DEVICE", "cpu")
        .env("TORCH_THREADS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn backfill")
}

/// Runs a backfill to its end: exit code, stdout, stderr.
pub fn backfill(topics: &Topics, database_url: &str, args: &[&str]) -> (i32, String, String) {
    let output = start_backfill(topics, database_url, args).wait_with_output().expect("backfill runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

/// A process's resident memory in bytes, from /proc (none once it has gone).
pub fn resident_bytes(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok().map(|kib| kib * 1024)
}

/// Runs `scripts/services.sh <command>` (e.g. `stop-kafka`), which stops or
/// starts a local service every test shares.
pub fn services(command: &str) {
    let status = Command::new(crate::common::repo_root().join("scripts/services.sh"))
        .arg(command)
        .status()
        .expect("services.sh runs");
    assert!(status.success(), "scripts/services.sh {command} failed");
}
