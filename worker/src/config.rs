//! `bertstream-worker` settings: every one a flag with an environment variable.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use model::DeviceSpec;

/// A value that must never reach a log line (passwords, tokens).
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

#[derive(Args, Debug, Clone)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated. Extra librdkafka settings pass
    /// through environment variables `KAFKA_OPT_<NAME>` (e.g.
    /// `KAFKA_OPT_SASL_MECHANISM=PLAIN` sets `sasl.mechanism`), for SASL/TLS.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic of `ReviewV1` messages to classify.
    #[arg(long, env = "INPUT_TOPIC", default_value = "reviews")]
    pub input_topic: String,
    /// Topic that receives one `ClassificationV1` per review.
    #[arg(long, env = "OUTPUT_TOPIC", default_value = "reviews.classified")]
    pub output_topic: String,
    /// Dead-letter topic: malformed input, with the reason in its headers.
    #[arg(long, env = "DLQ_TOPIC", default_value = "reviews.dlq")]
    pub dlq_topic: String,
    /// Consumer group: workers sharing it split the input partitions.
    #[arg(long, env = "GROUP_ID", default_value = "bertstream")]
    pub group_id: String,
    /// Partitions for topics the worker creates when they are missing.
    #[arg(long, env = "TOPIC_PARTITIONS", default_value_t = 8)]
    pub topic_partitions: i32,
    /// Replication factor for topics the worker creates (1 for a single broker).
    #[arg(long, env = "TOPIC_REPLICATION", default_value_t = 1)]
    pub topic_replication: i32,
}

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model directory (config.json, model.safetensors, tokenizer.json or vocab.txt).
    #[arg(long, env = "MODEL_DIR")]
    pub model_dir: PathBuf,
    /// Where the model runs: auto (first GPU, else CPU), cpu, cuda or cuda:N.
    #[arg(long, env = "DEVICE", default_value = "auto")]
    pub device: DeviceSpec,
    /// Half precision on CUDA: about twice the throughput, scores differ in the 3rd decimal.
    #[arg(long, env = "FP16")]
    pub fp16: bool,
    /// libtorch intra-op threads on CPU (default: one per core).
    #[arg(long, env = "TORCH_THREADS")]
    pub torch_threads: Option<usize>,
    /// Longest input in tokens; longer texts are truncated (default: the model's).
    #[arg(long, env = "MAX_SEQ_LEN")]
    pub max_seq_len: Option<usize>,
}

#[derive(Args, Debug, Clone)]
pub struct BatchArgs {
    /// Most texts in one model batch.
    #[arg(long, env = "MAX_BATCH_SIZE", default_value_t = 64)]
    pub max_batch_size: usize,
    /// Most padded tokens (texts x longest text) in one batch: bounds memory and
    /// latency; under backlog batches fill up to it.
    #[arg(long, env = "MAX_BATCH_TOKENS", default_value_t = 8192)]
    pub max_batch_tokens: usize,
    /// Longest a text waits for its batch to fill while the model is busy, in
    /// milliseconds. When the model is idle a batch starts at once.
    #[arg(long, env = "MAX_WAIT_MS", default_value_t = 20)]
    pub max_wait_ms: u64,
    /// Messages held in memory between Kafka and the model; when full, the
    /// input partitions pause until it drains.
    #[arg(long, env = "QUEUE_CAPACITY", default_value_t = 4096)]
    pub queue_capacity: usize,
    /// Largest accepted message value in bytes; bigger ones go to the DLQ.
    #[arg(long, env = "MAX_MESSAGE_BYTES", default_value_t = 1 << 20)]
    pub max_message_bytes: usize,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub batch: BatchArgs,
    #[command(flatten)]
    pub http: crate::http::HttpArgs,
    /// Postgres URL for the results table (never logged).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Secret,
    /// Address of the HTTP API, web page, health checks and metrics.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// On SIGTERM/SIGINT, how long to drain in-flight batches before giving up, in seconds.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,
}

impl BatchArgs {
    pub fn max_wait(&self) -> Duration {
        Duration::from_millis(self.max_wait_ms)
    }
}

/// librdkafka settings from `KAFKA_OPT_<NAME>` variables: `KAFKA_OPT_SASL_USERNAME` -> `sasl.username`.
pub fn kafka_passthrough() -> Vec<(String, String)> {
    std::env::vars()
        .filter_map(|(k, v)| k.strip_prefix("KAFKA_OPT_").map(|name| (name.to_ascii_lowercase().replace('_', "."), v)))
        .collect()
}
