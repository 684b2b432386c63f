//! The Kafka producer: settings, pass-through of `KAFKA_OPT_*` variables, and
//! a start-up check that the brokers and the topic are there.
//!
//! Delivery: idempotent (`enable.idempotence=true`, `acks=all`), so librdkafka's
//! retries never duplicate or reorder a message within a partition; the caller
//! waits for every delivery report before exiting.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, Producer};

use schemas::KafkaOptions;

use crate::error::ProduceError;

/// How long the start-up check waits for the brokers.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Our defaults; any of them can be overridden through `KAFKA_OPT_*`.
const DEFAULTS: &[(&str, &str)] = &[
    ("client.id", "bertstream-produce"),
    // lz4: cheap on CPU, and text compresses well.
    ("compression.type", "lz4"),
    // A few ms of batching costs nothing visible and raises throughput a lot.
    ("linger.ms", "5"),
];

/// What "never duplicated or reordered" rests on: no `KAFKA_OPT_*` changes these.
const PINNED: &[(&str, &str)] = &[("enable.idempotence", "true"), ("acks", "all")];

pub fn config(brokers: &str, options: &KafkaOptions) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (name, value) in options.settings(brokers, DEFAULTS, PINNED) {
        config.set(name, value);
    }
    config
}

/// Creates the producer. Logs which settings came from the environment, never their values.
pub fn producer(brokers: &str, options: &KafkaOptions) -> Result<FutureProducer, ProduceError> {
    tracing::debug!(brokers, ?options, "creating the Kafka producer");
    for name in options.overridden(PINNED) {
        tracing::warn!(setting = name, "KAFKA_OPT_* cannot change this setting; ignored");
    }
    config(brokers, options)
        .create()
        .map_err(|e| ProduceError::Kafka(options.redact(&format!("cannot create the producer: {e}"))))
}

/// Fails fast when the brokers cannot be reached or the topic does not exist
/// (rather than after librdkafka's 5-minute delivery timeout). Returns the
/// topic's partition count (0 when it is being created).
pub async fn check_topic(producer: &FutureProducer, brokers: &str, topic: &str) -> Result<usize, ProduceError> {
    let (producer, brokers, topic) = (producer.clone(), brokers.to_owned(), topic.to_owned());
    let check = tokio::task::spawn_blocking(move || {
        // A topic the broker is still creating answers "unknown" for a moment.
        for attempt in 0..5 {
            let metadata = producer
                .client()
                .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
                .map_err(|e| ProduceError::Kafka(format!("cannot reach the brokers at {brokers}: {e}")))?;
            let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else { continue };
            match found.error().map(RDKafkaErrorCode::from) {
                // Being created: it will have a leader in a moment.
                None | Some(RDKafkaErrorCode::LeaderNotAvailable) => return Ok(found.partitions().len()),
                Some(RDKafkaErrorCode::UnknownTopicOrPartition) if attempt < 4 => {
                    std::thread::sleep(Duration::from_millis(500))
                }
                Some(RDKafkaErrorCode::UnknownTopicOrPartition) => break,
                Some(code) => return Err(ProduceError::Kafka(format!("cannot publish to topic `{topic}`: {code}"))),
            }
        }
        Err(ProduceError::Kafka(format!(
            "topic `{topic}` does not exist at {brokers} (and the broker does not create topics automatically)"
        )))
    });
    check.await.map_err(|e| ProduceError::Kafka(format!("metadata check failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> KafkaOptions {
        KafkaOptions::from_vars(pairs.iter().map(|(k, v)| (format!("KAFKA_OPT_{k}"), v.to_string())))
    }

    #[test]
    fn env_options_override_defaults_but_not_idempotence() {
        let config = config("b:9092", &options(&[("COMPRESSION_TYPE", "zstd"), ("ACKS", "1")]));
        assert_eq!(config.get("compression.type"), Some("zstd"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("bootstrap.servers"), Some("b:9092"));
    }

    #[test]
    fn a_bad_setting_is_reported_without_its_value() {
        let options = options(&[("SASL_PASSWORD", "hunter2"), ("LINGER_MS", "hunter2")]);
        let err = producer("127.0.0.1:1", &options).err().expect("linger.ms is not a number").to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
