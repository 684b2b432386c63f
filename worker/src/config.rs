//! `bertstream-worker` settings: every one a flag with an environment variable.
//! The bottom of the crate: it imports nothing else of it.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use model::{DeviceSpec, Dtype, LoadOptions};

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
    /// Review queue: results whose top score is under REVIEW_BELOW are also
    /// published to this topic, for people to check. Empty: no review queue.
    #[arg(long, env = "REVIEW_TOPIC", default_value = "")]
    pub review_topic: String,
    /// The review queue's threshold on the top score, 0 to 1.
    #[arg(long, env = "REVIEW_BELOW", default_value_t = 0.6)]
    pub review_below: f32,
}

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model directory (config.json, model.safetensors, tokenizer.json or vocab.txt).
    #[arg(long, env = "MODEL_DIR")]
    pub model_dir: PathBuf,
    /// Where the model runs: auto (first GPU, else CPU), cpu, cuda or cuda:N.
    #[arg(long, env = "DEVICE", default_value = "auto")]
    pub device: DeviceSpec,
    /// Weights and activations: fp32, fp16 (CUDA only: about twice the
    /// throughput, scores differ in the 3rd decimal) or bf16 (CUDA, and CPUs
    /// with bf16 units; scores differ in the 2nd decimal).
    #[arg(long, env = "DTYPE", default_value = "fp32")]
    pub dtype: Dtype,
    /// The same as DTYPE=fp16 (the older setting).
    #[arg(long, env = "FP16", conflicts_with = "dtype")]
    pub fp16: bool,
    /// libtorch intra-op threads on CPU (default: one per core).
    #[arg(long, env = "TORCH_THREADS")]
    pub torch_threads: Option<usize>,
    /// Longest input in tokens; longer texts are truncated (default: the model's).
    #[arg(long, env = "MAX_SEQ_LEN")]
    pub max_seq_len: Option<usize>,
    /// A candidate model that also scores a sample of the stream; its results
    /// go to the `predictions` table only (compare with /v1/models/compare,
    /// promote with POST /v1/admin/models/promote). Costs a second model's memory.
    #[arg(long, env = "SHADOW_MODEL_DIR")]
    pub shadow_model_dir: Option<PathBuf>,
    /// Share of the stream's reviews the shadow scores, 0 to 1, chosen by
    /// review id. Under backlog the shadow yields to keep to this share of model time.
    #[arg(long, env = "SHADOW_SAMPLE", default_value_t = 1.0)]
    pub shadow_sample: f64,
}

impl ModelArgs {
    /// How to load the primary and the shadow.
    pub fn load_options(&self) -> LoadOptions {
        let dtype = if self.fp16 { Dtype::Fp16 } else { self.dtype };
        LoadOptions { device: self.device, dtype, max_seq_len: self.max_seq_len }
    }
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
    /// Share of model batches HTTP requests may take while stream messages
    /// wait, above 0 and at most 1. HTTP goes first within it and takes every
    /// batch when the stream has no backlog. Lower keeps the stream moving
    /// under an HTTP flood (the requests over it wait, then get 503); higher
    /// answers callers sooner at the stream's expense.
    #[arg(long, env = "HTTP_SHARE", default_value_t = 0.5, value_parser = share)]
    pub http_share: f64,
    /// Messages held in memory between Kafka and the model; when full, the
    /// input partitions pause until it drains.
    #[arg(long, env = "QUEUE_CAPACITY", default_value_t = 4096)]
    pub queue_capacity: usize,
    /// Bytes of input held in memory, from Kafka to durable results (the
    /// messages, their texts and tokens, dead letters on their way); when
    /// reached, the input partitions pause until it drains. Bounds memory
    /// when messages are large, as QUEUE_CAPACITY does when they are small.
    #[arg(long, env = "QUEUE_MAX_BYTES", default_value_t = 128 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub queue_max_bytes: u64,
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
    pub http: HttpArgs,
    /// Postgres URL for the results table (never logged).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Secret,
    /// Address of the HTTP API, web page, health checks and metrics.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// On SIGTERM/SIGINT, how long to drain in-flight batches before giving up, in seconds.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 30)]
    pub shutdown_timeout_secs: u64,
    /// How long start-up waits for Postgres before exiting 1, in seconds; 0
    /// waits as long as it takes, as a running worker rides out an outage.
    /// Set it when an orchestrator should restart a worker that cannot start.
    #[arg(long, env = "STARTUP_TIMEOUT_SECS", default_value_t = 0)]
    pub startup_timeout_secs: u64,
    /// `/readyz` answers 503 when batches have waited this long, in seconds,
    /// without any becoming durable (the sinks are stuck while Postgres and
    /// the brokers still answer their probes).
    #[arg(long, env = "SINK_STALL_SECS", default_value_t = 60)]
    pub sink_stall_secs: u64,
}

/// `bertstream-worker backfill`: re-score a range of the input topic, or the
/// stored rows, with a chosen model, beside the running workers.
#[derive(Args, Debug, Clone)]
pub struct BackfillArgs {
    /// The model directory to score with.
    #[arg(long)]
    pub model: PathBuf,
    /// Where to start in the input topic: an offset for every partition
    /// (`0`), or per partition (`0:1200,1:900`). Default: the earliest retained.
    #[arg(long, conflicts_with_all = ["from_time", "from_table"])]
    pub from_offset: Option<String>,
    /// Where to stop (exclusive), as `--from-offset`. Default: each partition's end when the job first ran.
    #[arg(long, conflicts_with_all = ["to_time", "from_table"])]
    pub to_offset: Option<String>,
    /// Start at the first message published at or after this time (RFC 3339, e.g. 2026-12-01T00:00:00Z).
    #[arg(long, conflicts_with = "from_table")]
    pub from_time: Option<chrono::DateTime<chrono::Utc>>,
    /// Stop before the first message published at or after this time.
    #[arg(long, conflicts_with = "from_table")]
    pub to_time: Option<chrono::DateTime<chrono::Utc>>,
    /// Re-score the stored results (`classifications`) instead of the topic:
    /// for when the topic's retention has passed.
    #[arg(long)]
    pub from_table: bool,
    /// Also make the new results the served ones (`classifications`), unless
    /// a newer message of the review is stored. The output topic is not written.
    #[arg(long)]
    pub promote_results: bool,
    /// Most reviews scored per second (0: as fast as the model goes). Keeps the
    /// live workers' share of a shared GPU or database.
    #[arg(long, default_value_t = 100)]
    pub rate: u32,
    /// Texts per model batch.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Name of the job, for resuming after an interruption. Default: made
    /// from the model and the range, so running the same command again resumes.
    #[arg(long)]
    pub job: Option<String>,
    /// Where the model runs: auto, cpu, cuda or cuda:N.
    #[arg(long, env = "DEVICE", default_value = "auto")]
    pub device: DeviceSpec,
    /// libtorch intra-op threads on CPU (default: one per core).
    #[arg(long, env = "TORCH_THREADS")]
    pub torch_threads: Option<usize>,
    /// Longest input in tokens (default: the model's).
    #[arg(long, env = "MAX_SEQ_LEN")]
    pub max_seq_len: Option<usize>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Postgres URL (never logged).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Secret,
}

/// `bertstream-worker bench`: the in-process path on a file of texts.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// The texts, one a line.
    #[arg(long)]
    pub texts: PathBuf,
    /// Reviews to time, cycling through the texts (default: each text once).
    #[arg(long)]
    pub reviews: Option<usize>,
    /// Reviews run before timing (CUDA picks its kernels on the first batches of each shape).
    #[arg(long, default_value_t = 1024)]
    pub warmup: usize,
    /// Texts sent one at a time, each waited for, for the latency of one text.
    #[arg(long, default_value_t = 200)]
    pub latency_samples: usize,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub batch: BatchArgs,
}

impl RunArgs {
    pub fn startup_timeout(&self) -> Option<Duration> {
        (self.startup_timeout_secs > 0).then(|| Duration::from_secs(self.startup_timeout_secs))
    }
}

/// Parses a share: a number above 0 and at most 1.
fn share(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(share) if share > 0.0 && share <= 1.0 => Ok(share),
        _ => Err(format!("`{s}` is not a share; use a number above 0 and at most 1, e.g. 0.5")),
    }
}

impl BatchArgs {
    pub fn max_wait(&self) -> Duration {
        Duration::from_millis(self.max_wait_ms)
    }

    /// What the source accepts as a review.
    pub fn parse_limits(&self) -> schemas::ParseLimits {
        schemas::ParseLimits { max_bytes: self.max_message_bytes, ..schemas::ParseLimits::default() }
    }
}

#[derive(Args, Debug, Clone)]
pub struct HttpArgs {
    /// Requests per second each client may make to the API (sustained rate);
    /// 0 turns rate limiting off. A client is its bearer token when API_TOKENS
    /// is set, else its address (an IPv6 client by its /64).
    #[arg(long, env = "RATE_LIMIT_PER_SEC", default_value_t = 20)]
    pub rate_limit_per_sec: u32,
    /// Requests a client may make at once above the sustained rate.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 40)]
    pub rate_limit_burst: u32,
    /// Clients the rate limiter remembers at most; past it, new clients share
    /// one bucket until idle ones are forgotten (memory stays bounded).
    #[arg(long, env = "RATE_LIMIT_MAX_CLIENTS", default_value_t = 100_000)]
    pub rate_limit_max_clients: usize,
    /// Bearer tokens accepted by the API, comma-separated (never logged). When
    /// empty the API is open; the page, health checks and metrics always are.
    #[arg(long, env = "API_TOKENS", default_value = "", hide_env_values = true)]
    pub api_tokens: Secret,
    /// Bearer tokens for the admin endpoints (model swap and promote),
    /// comma-separated, never logged; API tokens do not open them. When empty
    /// the admin endpoints answer 403.
    #[arg(long, env = "ADMIN_TOKENS", default_value = "", hide_env_values = true)]
    pub admin_tokens: Secret,
    /// Proxies whose X-Forwarded-For is believed, comma-separated IPs or CIDRs
    /// (e.g. `10.0.0.0/8,127.0.0.1`). Empty: the peer address is the client.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Origins allowed to call the API from a browser (CORS), comma-separated,
    /// e.g. `https://app.example.com`. Empty: same-origin only.
    #[arg(long, env = "CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
    /// Largest request body in bytes; bigger ones get 413 before being read whole.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    /// Most texts in one request (413 above).
    #[arg(long, env = "MAX_TEXTS_PER_REQUEST", default_value_t = 64)]
    pub max_texts_per_request: usize,
    /// Longest text in characters (413 above); the model reads only its first
    /// MAX_SEQ_LEN tokens anyway.
    #[arg(long, env = "MAX_TEXT_CHARS", default_value_t = 10_000)]
    pub max_text_chars: usize,
    /// Longest an API request may take, body upload included, in milliseconds (then 503).
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Longest a client may take to send a request's headers, in milliseconds;
    /// then its connection is closed (an idle keep-alive connection's too).
    #[arg(long, env = "HEADER_TIMEOUT_MS", default_value_t = 30_000)]
    pub header_timeout_ms: u64,
    /// API requests served at once; more get 503 at once instead of queueing.
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 128)]
    pub max_concurrent_requests: usize,
}

impl HttpArgs {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    /// The configured API tokens, blanks dropped.
    pub fn tokens(&self) -> Vec<String> {
        split_list(self.api_tokens.expose())
    }

    pub fn admin_tokens(&self) -> Vec<String> {
        split_list(self.admin_tokens.expose())
    }

    pub fn origins(&self) -> Vec<String> {
        split_list(&self.cors_origins)
    }
}

pub fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect()
}

impl Default for HttpArgs {
    /// The documented defaults (tests and embedders start from these).
    fn default() -> Self {
        Self {
            rate_limit_per_sec: 20,
            rate_limit_burst: 40,
            rate_limit_max_clients: 100_000,
            api_tokens: Secret(String::new()),
            admin_tokens: Secret(String::new()),
            trusted_proxies: String::new(),
            cors_origins: String::new(),
            max_body_bytes: 256 * 1024,
            max_texts_per_request: 64,
            max_text_chars: 10_000,
            request_timeout_ms: 10_000,
            header_timeout_ms: 30_000,
            max_concurrent_requests: 128,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_above_0_and_at_most_1() {
        assert_eq!(share("0.5"), Ok(0.5));
        assert_eq!(share("1"), Ok(1.0));
        for bad in ["0", "-0.1", "1.5", "NaN", "half"] {
            assert!(share(bad).is_err(), "{bad}");
        }
    }
}
