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

use crate::error::ProduceError;

/// Environment variables with this prefix become librdkafka settings.
pub const ENV_PREFIX: &str = "KAFKA_OPT_";

/// How long the start-up check waits for the brokers.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Our defaults; any of them can be overridden through `KAFKA_OPT_*`.
const DEFAULTS: &[(&str, &str)] = &[
    ("client.id", "bertstream-produce"),
    ("enable.idempotence", "true"),
    ("acks", "all"),
    // lz4: cheap on CPU, and text compresses well.
    ("compression.type", "lz4"),
    // A few ms of batching costs nothing visible and raises throughput a lot.
    ("linger.ms", "5"),
];

/// `KAFKA_OPT_SASL_USERNAME=x` -> `("sasl.username", "x")`, sorted by name.
/// Variables that are not valid Unicode are ignored.
pub fn env_options() -> Vec<(String, String)> {
    options_from(std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))))
}

pub fn options_from(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut options: Vec<(String, String)> = vars
        .into_iter()
        .filter_map(|(key, value)| {
            let name = key.strip_prefix(ENV_PREFIX)?;
            (!name.is_empty()).then(|| (name.to_ascii_lowercase().replace('_', "."), value))
        })
        .collect();
    options.sort();
    options
}

/// Whether a setting's value must never be printed.
pub fn is_secret(name: &str) -> bool {
    ["password", "secret", "token", "jaas", "key", "credential", "oauthbearer.config"].iter().any(|s| name.contains(s))
}

/// Replaces the value of every secret setting in `text` by `***`.
pub fn redact(text: &str, options: &[(String, String)]) -> String {
    options
        .iter()
        .filter(|(name, value)| is_secret(name) && !value.is_empty())
        .fold(text.to_owned(), |text, (_, value)| text.replace(value.as_str(), "***"))
}

pub fn config(brokers: &str, options: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (name, value) in DEFAULTS {
        config.set(*name, *value);
    }
    for (name, value) in options {
        config.set(name, value);
    }
    config
}

/// Creates the producer. Logs which settings came from the environment, never their values.
pub fn producer(brokers: &str, options: &[(String, String)]) -> Result<FutureProducer, ProduceError> {
    let names: Vec<&str> = options.iter().map(|(n, _)| n.as_str()).collect();
    tracing::debug!(brokers, ?names, "creating the Kafka producer");
    config(brokers, options)
        .create()
        .map_err(|e| ProduceError::Kafka(redact(&format!("cannot create the producer: {e}"), options)))
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

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn env_names_become_dotted_lower_case() {
        let got = options_from(vars(&[
            ("KAFKA_OPT_SASL_USERNAME", "me"),
            ("KAFKA_OPT_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_OPT_", "ignored"),
            ("KAFKA_BROKERS", "ignored"),
            ("PATH", "/bin"),
        ]));
        assert_eq!(got, vars(&[("sasl.username", "me"), ("security.protocol", "SASL_SSL")]));
    }

    #[test]
    fn env_options_override_defaults() {
        let config = config("b:9092", &vars(&[("compression.type", "zstd")]));
        assert_eq!(config.get("compression.type"), Some("zstd"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("bootstrap.servers"), Some("b:9092"));
    }

    #[test]
    fn secrets_are_redacted() {
        let options = vars(&[("sasl.password", "hunter2"), ("sasl.username", "alice"), ("ssl.key.password", "k3y")]);
        assert!(
            is_secret("sasl.password") && is_secret("sasl.oauthbearer.client.secret") && !is_secret("sasl.username")
        );
        let text = redact("Invalid value \"hunter2\" for sasl.password; k3y; user alice", &options);
        assert_eq!(text, "Invalid value \"***\" for sasl.password; ***; user alice");
    }

    #[test]
    fn a_bad_setting_is_reported_without_its_value() {
        let options = vars(&[("sasl.password", "hunter2"), ("linger.ms", "hunter2")]);
        let err = producer("127.0.0.1:1", &options).err().expect("linger.ms is not a number").to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
