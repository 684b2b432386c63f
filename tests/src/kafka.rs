//! Kafka as the tests see it: per-test topics, publishing reviews and
//! waiting for every delivery, reading a topic back whole, and a group's
//! committed offsets against the partitions' ends.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::common::unique;

pub fn brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
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
        let topics = Self {
            input: format!("{base}.in"),
            output: format!("{base}.out"),
            dlq: format!("{base}.dlq"),
            group: format!("{base}.g"),
        };
        create_topics(&[&topics.input, &topics.output, &topics.dlq], partitions).await;
        topics
    }
}

pub async fn create_topics(names: &[&str], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers()).create().expect("admin client");
    let topics: Vec<NewTopic> =
        names.iter().map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1))).collect();
    for result in admin.create_topics(&topics, &AdminOptions::new()).await.expect("create topics") {
        result.expect("topic created");
    }
}

/// Sets one config of an existing topic (e.g. a small `max.message.bytes`).
pub async fn set_topic_config(topic: &str, name: &str, value: &str) {
    use rdkafka::admin::{AlterConfig, ResourceSpecifier};
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers()).create().expect("admin client");
    let change = AlterConfig::new(ResourceSpecifier::Topic(topic)).set(name, value);
    for result in admin.alter_configs(&[change], &AdminOptions::new()).await.expect("alter configs") {
        result.expect("topic config changed");
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

/// A record to publish: its key and value, either of which may be absent.
pub type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Publishes `(key, value)` records and waits for every delivery.
pub async fn publish(topic: &str, records: &[KeyValue]) {
    let records: Vec<(KeyValue, Vec<(&str, &str)>)> = records.iter().map(|r| (r.clone(), Vec::new())).collect();
    publish_with_headers(topic, &records).await
}

/// Publishes records with headers (name, value) and waits for every delivery.
pub async fn publish_with_headers(topic: &str, records: &[(KeyValue, Vec<(&str, &str)>)]) {
    let producer = producer();
    for chunk in records.chunks(1000) {
        let deliveries = chunk.iter().map(|((key, value), headers)| {
            let headers = headers.iter().fold(OwnedHeaders::new(), |all, (name, value)| {
                all.insert(Header { key: name, value: Some(value.as_bytes()) })
            });
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
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
pub fn review(id: &str, text: &str) -> KeyValue {
    let value = serde_json::json!({"id": id, "text": text, "source": "test"});
    (Some(id.as_bytes().to_vec()), Some(value.to_string().into_bytes()))
}

/// `n` valid reviews with ids `<prefix>-00000`, ... and [`sample_text`]s.
pub fn reviews(prefix: &str, n: usize) -> Vec<KeyValue> {
    (0..n).map(|i| review(&format!("{prefix}-{i:05}"), &sample_text(i))).collect()
}

/// Whether the group has committed the end of every non-empty input partition.
pub fn all_committed(topics: &Topics) -> bool {
    let committed = committed_offsets(&topics.input, &topics.group);
    end_offsets(&topics.input).iter().all(|(p, end)| *end == 0 || committed.get(p) == Some(end))
}

/// Waits until [`all_committed`]; panics after `timeout`.
pub async fn wait_all_committed(topics: &Topics, timeout: Duration) {
    crate::common::wait_until(timeout, "every input committed", || async { all_committed(topics) }).await;
}

/// Texts of varied length, Chinese and English.
pub fn sample_text(i: usize) -> String {
    const TEXTS: [&str; 6] = [
        "手机很好，漂亮时尚",
        "屏幕太小了，电池也不耐用，失望",
        "The phone is great",
        "物流很快",
        "一般般吧",
        "shipping was slow but the phone works",
    ];
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
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                    .collect()
            })
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
