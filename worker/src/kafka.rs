//! Every Kafka setting of the worker, in one place: the consumer and producer
//! with the settings RELIABILITY.md asks for, `KAFKA_OPT_*` applied the
//! project's one way ([`KafkaOptions`]), topic creation, and the trace
//! context headers of records.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use schemas::trace_context::RecordTrace;
use schemas::KafkaOptions;

use crate::config::KafkaArgs;

/// Larger than any message we accept, so that a too-large input still fits in the DLQ as it was.
const PRODUCER_MAX_MESSAGE_BYTES: &str = "33554432";

/// Producer defaults; `KAFKA_OPT_*` may change them.
const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("compression.type", "lz4"),
    ("linger.ms", "5"),
    ("message.max.bytes", PRODUCER_MAX_MESSAGE_BYTES),
    // How long librdkafka retries before a delivery report says it failed.
    ("delivery.timeout.ms", "30000"),
];

/// No duplicates or reordering on the output topic: no `KAFKA_OPT_*` changes it.
const PRODUCER_PINNED: &[(&str, &str)] = &[("enable.idempotence", "true"), ("acks", "all")];

const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("auto.commit.interval.ms", "1000"),
    ("session.timeout.ms", "10000"),
    ("heartbeat.interval.ms", "2000"),
    ("max.poll.interval.ms", "300000"),
    // Bounded prefetch.
    ("queued.max.messages.kbytes", "16384"),
    // Consumer lag for the metrics.
    ("statistics.interval.ms", "5000"),
];

/// What at-least-once rests on (RELIABILITY.md): offsets are stored by the
/// worker only once a message is durable, then auto-committed from the store.
const CONSUMER_PINNED: &[(&str, &str)] = &[
    ("enable.auto.offset.store", "false"),
    ("enable.auto.commit", "true"),
    ("auto.offset.reset", "earliest"),
    // The rebalance callbacks revoke and assign partitions one by one.
    ("partition.assignment.strategy", "cooperative-sticky"),
];

/// A client's settings: brokers and `defaults`, the `KAFKA_OPT_*` options, `pinned`.
fn client_config(args: &KafkaArgs, defaults: &[(&str, &str)], pinned: &[(&str, &str)]) -> ClientConfig {
    let options = KafkaOptions::from_env();
    for name in options.overridden(pinned) {
        tracing::warn!(setting = name, "KAFKA_OPT_* cannot change this setting; ignored");
    }
    let mut config = ClientConfig::new();
    for (name, value) in options.settings(&args.brokers, defaults, pinned) {
        config.set(name, value);
    }
    config
}

/// The input consumer's settings (the source creates it with its context).
pub fn consumer_config(args: &KafkaArgs) -> ClientConfig {
    let mut config = client_config(args, CONSUMER_DEFAULTS, CONSUMER_PINNED);
    config.set("group.id", &args.group_id);
    config
}

/// Backfill reads with `assign`, outside every consumer group's offsets:
/// it never commits, so it cannot move a live group's position.
const BACKFILL_PINNED: &[(&str, &str)] =
    &[("enable.auto.commit", "false"), ("enable.auto.offset.store", "false"), ("group.id", "bertstream-backfill")];

/// The settings of the backfill's reader (see [`BACKFILL_PINNED`]).
pub fn backfill_consumer_config(args: &KafkaArgs) -> ClientConfig {
    client_config(args, &[("queued.max.messages.kbytes", "16384")], BACKFILL_PINNED)
}

/// An idempotent producer (acks=all, ordered retries), compressed, that keeps
/// retrying for `delivery.timeout.ms` before a delivery report says it failed.
pub fn producer(args: &KafkaArgs) -> anyhow::Result<FutureProducer> {
    client_config(args, PRODUCER_DEFAULTS, PRODUCER_PINNED).create().map_err(redacted)
}

/// A client error as a message without the value of any secret option
/// (librdkafka quotes a bad value).
pub fn redacted(error: KafkaError) -> anyhow::Error {
    anyhow::anyhow!(KafkaOptions::from_env().redact(&format!("kafka client: {error}")))
}

/// Whether a producer error will come back however often the record is
/// sent again: the broker refuses it (too large, not authorized) or the
/// idempotent producer has failed for good.
pub fn is_permanent(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        error.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::InvalidRecord
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::TransactionalIdAuthorizationFailed
                | C::SaslAuthenticationFailed
                | C::Fatal
                | C::InvalidProducerEpoch
                | C::ProducerFenced
        )
    )
}

/// Topics created with a record size limit that takes any record the
/// producer may send, so a too-large input still fits in the DLQ as it was.
pub const LARGE_RECORDS: &[(&str, &str)] = &[("max.message.bytes", PRODUCER_MAX_MESSAGE_BYTES)];

/// Creates the topics that are missing, with `config`. A broker that forbids
/// it gives an error naming the topic.
pub async fn ensure_topics(args: &KafkaArgs, topics: &[&str], config: &[(&str, &str)]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(args, &[], &[]).create().map_err(redacted)?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| {
            let topic = NewTopic::new(t, args.topic_partitions, TopicReplication::Fixed(args.topic_replication));
            config.iter().fold(topic, |topic, (name, value)| topic.set(name, value))
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &options).await? {
        match result {
            Ok(topic) => tracing::info!(topic, partitions = args.topic_partitions, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("topic `{topic}` is missing and could not be created: {code}"),
        }
    }
    Ok(())
}

/// A record's headers, name and value (those without a value left out).
pub fn headers<M: Message>(message: &M) -> impl Iterator<Item = (&str, &[u8])> {
    message.headers().into_iter().flat_map(|h| h.iter()).filter_map(|h| Some((h.key, h.value?)))
}

/// `headers` and the trace context of a record published on `trace`'s behalf.
pub fn with_trace(headers: OwnedHeaders, trace: &RecordTrace) -> OwnedHeaders {
    trace
        .headers()
        .iter()
        .fold(headers, |headers, (name, value)| headers.insert(Header { key: name, value: Some(value.as_str()) }))
}
