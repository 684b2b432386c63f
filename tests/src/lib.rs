//! Helpers for the end-to-end tests in `tests/tests/`: real Kafka and Postgres
//! (started by `scripts/services.sh up`), random topic, group and database
//! names per test, and the worker binary run as a child process.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::{Connection, PgConnection};

pub fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// The admin URL for creating per-test databases.
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://bertstream:bertstream@127.0.0.1:5432/bertstream_test?sslmode=disable".into())
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id()));
    h.finish()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The tiny model of the parity fixture: fast enough for 10k-message tests.
pub fn tiny_model() -> PathBuf {
    repo_root().join("model/tests/fixtures/tiny-bert")
}

/// Topic names of one test's worker.
#[derive(Debug, Clone)]
pub struct Topics {
    pub input: String,
    pub output: String,
    pub dlq: String,
    pub group: String,
}

impl Topics {
    pub async fn create(partitions: i32) -> Self {
        let base = unique("t");
        let topics =
            Self { input: format!("{base}.in"), output: format!("{base}.out"), dlq: format!("{base}.dlq"), group: format!("{base}.g") };
        create_topics(&[&topics.input, &topics.output, &topics.dlq], partitions).await;
        topics
    }
}

pub async fn create_topics(names: &[&str], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers()).create().expect("admin client");
    let topics: Vec<NewTopic> = names.iter().map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1))).collect();
    for result in admin.create_topics(&topics, &AdminOptions::new()).await.expect("create topics") {
        result.expect("topic created");
    }
}

/// A fresh, empty database; its URL.
pub async fn fresh_database() -> String {
    let admin = admin_database_url();
    let name = unique("bst").replace('-', "_");
    let mut conn = PgConnection::connect(&admin).await.expect("postgres reachable (scripts/services.sh up)");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
    let (base, query) = admin.split_once('?').map_or((admin.as_str(), ""), |(b, q)| (b, q));
    let base = &base[..base.rfind('/').expect("url has a database")];
    format!("{base}/{name}{}{query}", if query.is_empty() { "" } else { "?" })
}

pub fn database_name(url: &str) -> String {
    let path = url.split('?').next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or_default().to_string()
}

/// Makes a database refuse connections and drops the open ones ("Postgres down"), or lets them in again.
pub async fn set_database_available(url: &str, available: bool) {
    let name = database_name(url);
    let mut conn = PgConnection::connect(&admin_database_url()).await.expect("admin connection");
    sqlx::query(&format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {available}")).execute(&mut conn).await.expect("alter");
    if !available {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(&name)
            .execute(&mut conn)
            .await
            .expect("terminate");
    }
}

pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.max.bytes", "33554432")
        .create()
        .expect("producer")
}

/// Publishes `(key, value)` records and waits for every delivery.
pub async fn publish(topic: &str, records: &[(Option<Vec<u8>>, Option<Vec<u8>>)]) {
    let producer = producer();
    for chunk in records.chunks(1000) {
        let deliveries = chunk.iter().map(|(key, value)| {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
            if let Some(k) = key {
                record = record.key(k.as_slice());
            }
            if let Some(v) = value {
                record = record.payload(v.as_slice());
            }
            producer.send(record, Duration::from_secs(30))
        });
        for result in futures::future::join_all(deliveries).await {
            result.expect("delivered");
        }
    }
}

/// A valid review message, key = id.
pub fn review(id: &str, text: &str) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let value = serde_json::json!({"id": id, "text": text, "source": "test"});
    (Some(id.as_bytes().to_vec()), Some(value.to_string().into_bytes()))
}

/// Texts of varied length, Chinese and English.
pub fn sample_text(i: usize) -> String {
    const TEXTS: [&str; 6] = ["手机很好，漂亮时尚", "屏幕太小了，电池也不耐用，失望", "The phone is great", "物流很快", "一般般吧", "shipping was slow but the phone works"];
    format!("{} {}", TEXTS[i % TEXTS.len()], "好".repeat(i % 17))
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: Option<i64>,
    pub headers: HashMap<String, String>,
    pub partition: i32,
    pub offset: i64,
}

impl Record {
    pub fn key_str(&self) -> String {
        String::from_utf8_lossy(self.key.as_deref().unwrap_or_default()).into_owned()
    }
}

/// Every record of a topic, from the beginning to its current end.
pub fn read_all(topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.message.max.bytes", "33554432")
        .create()
        .expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let partitions: Vec<i32> = metadata.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let mut ends = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for &p in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).expect("watermarks");
        if high > low {
            ends.insert(p, high);
            assignment.add_partition_offset(topic, p, Offset::Beginning).expect("offset");
        }
    }
    let mut records = Vec::new();
    if ends.is_empty() {
        return records;
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut done: BTreeMap<i32, bool> = ends.keys().map(|&p| (p, false)).collect();
    while done.values().any(|d| !d) {
        assert!(Instant::now() < deadline, "timed out reading {topic}");
        let Some(message) = consumer.poll(Duration::from_millis(200)) else { continue };
        let message = message.expect("message");
        let headers = message
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_string(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())).collect())
            .unwrap_or_default();
        records.push(Record {
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            timestamp: message.timestamp().to_millis(),
            headers,
            partition: message.partition(),
            offset: message.offset(),
        });
        if message.offset() + 1 >= ends[&message.partition()] {
            done.insert(message.partition(), true);
        }
    }
    records
}

/// The group's committed offset per partition (absent: nothing committed).
pub fn committed_offsets(topic: &str, group: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let mut list = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        list.add_partition(topic, p.id());
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10)).expect("committed");
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// The end offset of each partition.
pub fn end_offsets(topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers()).create().expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| (p.id(), consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10)).expect("watermarks").1))
        .collect()
}

/// The ids in the results table, with how many times each appears (always once: it is the key).
pub async fn stored_ids(url: &str) -> Vec<String> {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    sqlx::query_scalar("SELECT review_id FROM classifications ORDER BY review_id").fetch_all(&mut conn).await.unwrap_or_default()
}

pub async fn stored_count(url: &str) -> i64 {
    let Ok(mut conn) = PgConnection::connect(url).await else { return -1 };
    sqlx::query_scalar("SELECT count(*) FROM classifications").fetch_one(&mut conn).await.unwrap_or(-1)
}

/// Waits until `check` is true, polling; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The worker binary, built by `cargo test --workspace` next to the test binaries.
pub fn worker_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target profile dir");
    let bin = dir.join("bertstream-worker");
    assert!(bin.is_file(), "{} not built: run `cargo build -p bertstream-worker` (scripts/test.sh does)", bin.display());
    bin
}

/// A worker child process; killed on drop.
pub struct Worker {
    child: Child,
    pub http_port: u16,
    pub log: PathBuf,
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
        Self { child, http_port, log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `bound` for the exit status.
    pub fn terminate(&mut self, bound: Duration) -> Option<ExitStatus> {
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

    /// SIGTERM once the worker is up; it must exit 0 within 30 s. (A SIGTERM
    /// before the process reaches its signal handler, while it is still being
    /// loaded, kills it: a restarted worker may have nothing left to do yet.)
    pub fn stop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.log_text().contains("HTTP listening") {
            assert!(Instant::now() < deadline, "the worker did not start within 120 s\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = self.terminate(Duration::from_secs(30)).expect("exits within 30 s of SIGTERM");
        assert!(status.success(), "exit status {status}\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
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

/// The ledger of RELIABILITY.md for one run: L1-L5 over the input, the table, the output and the DLQ.
pub struct Ledger {
    pub input: Vec<Record>,
    pub output: Vec<Record>,
    pub dlq: Vec<Record>,
    pub table: Vec<String>,
}

impl Ledger {
    pub async fn collect(topics: &Topics, database_url: &str) -> Self {
        Self {
            input: read_all(&topics.input),
            output: read_all(&topics.output),
            dlq: read_all(&topics.dlq),
            table: stored_ids(database_url).await,
        }
    }

    /// L1: every input id is in exactly one of the table and the DLQ; no id twice in the table.
    pub fn assert_l1(&self) {
        let table: std::collections::BTreeSet<&String> = self.table.iter().collect();
        assert_eq!(table.len(), self.table.len(), "an id twice in the table");
        let dlq: std::collections::BTreeSet<(i32, i64)> = self
            .dlq
            .iter()
            .map(|r| (r.headers["source.partition"].parse().expect("partition"), r.headers["source.offset"].parse().expect("offset")))
            .collect();
        for record in &self.input {
            let in_table = table.contains(&record.key_str());
            let in_dlq = dlq.contains(&(record.partition, record.offset));
            assert!(in_table != in_dlq, "input {}:{} (key {}) table={in_table} dlq={in_dlq}", record.partition, record.offset, record.key_str());
        }
    }

    /// L4: the output topic's keys are exactly the table's ids, and the
    /// result of an input message published again repeats its bytes.
    pub fn assert_l4(&self) {
        let keys: std::collections::BTreeSet<String> = self.output.iter().map(Record::key_str).collect();
        let table: std::collections::BTreeSet<String> = self.table.iter().cloned().collect();
        assert_eq!(keys, table, "output keys differ from the table's ids");
        let mut first: HashMap<(String, i32, i64), &[u8]> = HashMap::new();
        for record in &self.output {
            let value = record.value.as_deref().expect("an output value");
            let result: schemas::ClassificationV1 = serde_json::from_slice(value).expect("ClassificationV1");
            let source = (result.source.topic, result.source.partition, result.source.offset);
            let earlier = *first.entry(source).or_insert(value);
            assert!(earlier == value, "the result of key {} published again with other bytes", record.key_str());
        }
    }

    /// Output keys published more than once.
    pub fn output_duplicates(&self) -> usize {
        self.output.len() - self.output.iter().map(Record::key_str).collect::<std::collections::BTreeSet<_>>().len()
    }
}

/// The audit every run ends with (RELIABILITY.md): collects the ledger and
/// checks L1, L4 and that everything is committed.
pub async fn audit(topics: &Topics, database_url: &str) -> Ledger {
    let ledger = Ledger::collect(topics, database_url).await;
    ledger.assert_l1();
    ledger.assert_l4();
    assert_all_committed(topics);
    ledger
}

/// L2/L3: the group has committed the end of every input partition, so a fresh consumer in it reads nothing.
pub fn assert_all_committed(topics: &Topics) {
    let committed = committed_offsets(&topics.input, &topics.group);
    let ends = end_offsets(&topics.input);
    for (partition, end) in ends {
        if end > 0 {
            assert_eq!(committed.get(&partition).copied(), Some(end), "partition {partition}: committed vs end");
        }
    }
}
