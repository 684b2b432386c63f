//! Kafka clients with the settings RELIABILITY.md asks for, and topic creation.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::{kafka_passthrough, KafkaArgs};

/// Larger than any message we accept, so that a too-large input still fits in the DLQ as it was.
const PRODUCER_MAX_MESSAGE_BYTES: &str = "33554432";

/// The base settings every client shares: brokers and the `KAFKA_OPT_*` passthrough.
pub fn client_config(args: &KafkaArgs) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &args.brokers);
    for (name, value) in kafka_passthrough() {
        config.set(name, value);
    }
    config
}

/// An idempotent producer (acks=all, ordered retries), compressed, that keeps
/// retrying for `delivery.timeout.ms` before a delivery report says it failed.
pub fn producer(args: &KafkaArgs) -> Result<FutureProducer, KafkaError> {
    client_config(args)
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("message.max.bytes", PRODUCER_MAX_MESSAGE_BYTES)
        .set("delivery.timeout.ms", "30000")
        .create()
}

/// Creates the topics that are missing. A broker that forbids it gives an error naming the topic.
pub async fn ensure_topics(args: &KafkaArgs, topics: &[&str]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(args).create()?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, args.topic_partitions, TopicReplication::Fixed(args.topic_replication)))
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
