//! Helpers: topics, running the binary, reading a topic back, test data.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, Timestamp, TopicPartitionList};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(10);

pub fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// Creates a fresh topic with `partitions` partitions and the given topic configs.
pub fn create_topic(partitions: i32, configs: &[(&str, &str)]) -> String {
    let name = format!("test-produce-{:016x}", rand::random::<u64>());
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers()).create().expect("admin client");
    let mut topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = futures::executor::block_on(admin.create_topics([&topic], &options)).unwrap_or_else(|e| {
        panic!("cannot create a topic at {} (is Kafka up? scripts/services.sh up): {e}", brokers())
    });
    for result in results {
        result.expect("topic created");
    }
    name
}

/// Runs the binary against the test broker; `stdin` is piped in when given.
pub fn produce(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bertstream-produce"))
        .args(args)
        .env("KAFKA_BROKERS", brokers())
        .env_remove("INPUT_TOPIC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bertstream-produce");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.unwrap_or("").as_bytes()).expect("write stdin");
    drop(pipe);
    child.wait_with_output().expect("wait")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs the binary and insists that it succeeds.
pub fn produce_ok(args: &[&str], stdin: Option<&str>) -> String {
    let output = produce(args, stdin);
    let err = stderr(&output);
    assert!(output.status.success(), "bertstream-produce {args:?} failed: {err}");
    err
}

#[derive(Debug, Clone)]
pub struct Record {
    pub key: String,
    pub value: Value,
    pub timestamp: Timestamp,
}

/// Every record of the topic, read from the beginning up to the high watermarks.
pub fn read_all(topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("test-produce-{:016x}", rand::random::<u64>()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT).expect("metadata");
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut assignment = TopicPartitionList::new();
    let mut expected = 0;
    for partition in 0..partitions {
        let (low, high) = consumer.fetch_watermarks(topic, partition, TIMEOUT).expect("watermarks");
        expected += (high - low) as usize;
        assignment.add_partition_offset(topic, partition, Offset::Beginning).expect("assignment");
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut records = Vec::with_capacity(expected);
    while records.len() < expected {
        assert!(Instant::now() < deadline, "read {} of {expected} records", records.len());
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => records.push(Record {
                key: String::from_utf8(m.key().expect("key").to_vec()).expect("UTF-8 key"),
                value: serde_json::from_slice(m.payload().expect("payload")).expect("JSON value"),
                timestamp: m.timestamp(),
            }),
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    records
}

/// Records by key; fails on a duplicate key or a key that is not the value's id.
pub fn by_key(records: &[Record]) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    for r in records {
        assert_eq!(r.value["id"], Value::String(r.key.clone()), "key and id differ");
        assert!(map.insert(r.key.clone(), r.value.clone()).is_none(), "{} arrived twice", r.key);
    }
    map
}

/// `n` review texts, mixed Chinese and English, with the awkward characters
/// (commas, quotes, a tab, emoji) somewhere among them.
pub fn texts(n: usize) -> Vec<String> {
    let parts = [
        "手机很好，漂亮时尚",
        "battery lasts two days",
        "赠品一般, \"okay\" I guess",
        "屏幕 tab\there",
        "物流很快 👍",
        "不推荐 not worth it",
    ];
    (0..n).map(|i| format!("{} #{i} 第{i}条", parts[i % parts.len()])).collect()
}

pub fn label(i: usize) -> &'static str {
    ["-1", "0", "1"][i % 3]
}

pub fn write(dir: &Path, name: &str, data: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, data).expect("write test file");
    path.display().to_string()
}
