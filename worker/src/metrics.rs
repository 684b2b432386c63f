//! Prometheus metrics, all prefixed `bertstream_`, durations in seconds.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use prometheus::{
    exponential_buckets, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// What the last lag figures were, for `/v1/stats`.
    lag: Mutex<Lag>,
    pub messages_in: IntCounter,
    pub messages_out: IntCounter,
    pub dlq: IntCounterVec,
    pub batch_size: Histogram,
    pub batch_tokens: Histogram,
    pub model_seconds: Histogram,
    pub sink_seconds: HistogramVec,
    pub end_to_end_seconds: Histogram,
    pub queue_depth: IntGauge,
    pub queue_bytes: IntGauge,
    pub consumer_lag: IntGauge,
    pub partition_lag: IntGaugeVec,
    pub drain_seconds: Gauge,
    pub sink_retries: IntCounterVec,
    pub http_requests: IntCounterVec,
    pub http_abandoned: IntCounter,
    pub model_info: IntGaugeVec,
    pub model_changes: IntCounterVec,
    pub shadow_scored: IntCounter,
    pub shadow_skipped: IntCounter,
    pub shadow_agreement: Gauge,
    pub label_share: GaugeVec,
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid histogram")
}

fn seconds_buckets() -> Vec<f64> {
    exponential_buckets(0.001, 2.0, 16).expect("valid buckets")
}

impl Metrics {
    pub fn new() -> Self {
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid counter");
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter")
        };
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid gauge");
        let metrics = Self {
            registry: Registry::new(),
            messages_in: counter("bertstream_messages_in_total", "Messages read from the input topic"),
            messages_out: counter("bertstream_messages_out_total", "Results stored in Postgres and published"),
            dlq: counter_vec("bertstream_dlq_total", "Messages sent to the dead-letter topic, by reason", &["reason"]),
            batch_size: histogram(
                "bertstream_batch_size",
                "Texts per model batch",
                exponential_buckets(1.0, 2.0, 10).expect("buckets"),
            ),
            batch_tokens: histogram(
                "bertstream_batch_tokens",
                "Padded tokens per model batch",
                exponential_buckets(16.0, 2.0, 12).expect("buckets"),
            ),
            model_seconds: histogram("bertstream_model_seconds", "Model time per batch", seconds_buckets()),
            sink_seconds: HistogramVec::new(
                HistogramOpts::new("bertstream_sink_seconds", "Time to make a batch durable, by sink")
                    .buckets(seconds_buckets()),
                &["sink"],
            )
            .expect("valid histogram"),
            end_to_end_seconds: histogram(
                "bertstream_end_to_end_seconds",
                "From the message timestamp to its result being durable",
                seconds_buckets(),
            ),
            queue_depth: gauge("bertstream_queue_depth", "Messages read but not yet in a model batch"),
            queue_bytes: gauge(
                "bertstream_queue_bytes",
                "Bytes of input held, from Kafka to durable results (QUEUE_MAX_BYTES)",
            ),
            consumer_lag: gauge("bertstream_consumer_lag", "Messages behind the end of the assigned input partitions"),
            partition_lag: IntGaugeVec::new(
                Opts::new("bertstream_partition_lag", "Messages behind the end of each assigned input partition"),
                &["partition"],
            )
            .expect("valid gauge"),
            drain_seconds: Gauge::new(
                "bertstream_drain_seconds",
                "Time to work off the lag at the recent rate of results (+Inf when none are being made)",
            )
            .expect("valid gauge"),
            lag: Mutex::default(),
            sink_retries: counter_vec("bertstream_sink_retries_total", "Sink writes retried after an error", &["sink"]),
            http_requests: counter_vec(
                "bertstream_http_requests_total",
                "HTTP requests by route and status",
                &["route", "status"],
            ),
            http_abandoned: counter(
                "bertstream_http_abandoned_total",
                "HTTP texts dropped before the model because their caller had gone (timed out or disconnected)",
            ),
            model_info: IntGaugeVec::new(
                Opts::new("bertstream_model_info", "1 for each loaded model, by role (primary, shadow)"),
                &["role", "model"],
            )
            .expect("valid gauge"),
            model_changes: counter_vec(
                "bertstream_model_changes_total",
                "Model changes (swap, promote) by result (ok, refused)",
                &["change", "result"],
            ),
            shadow_scored: counter("bertstream_shadow_scored_total", "Stream reviews the shadow model scored"),
            shadow_skipped: counter(
                "bertstream_shadow_skipped_total",
                "Sampled stream reviews the shadow skipped, yielding to the primary under backlog",
            ),
            shadow_agreement: Gauge::new(
                "bertstream_shadow_agreement",
                "Share of the shadow's last 1000 results whose label equals the primary's",
            )
            .expect("valid gauge"),
            label_share: GaugeVec::new(
                Opts::new("bertstream_label_share", "Share of each label in a model's last 1000 stream results"),
                &["role", "label"],
            )
            .expect("valid gauge"),
        };
        let r = &metrics.registry;
        for c in [
            &metrics.messages_in,
            &metrics.messages_out,
            &metrics.http_abandoned,
            &metrics.shadow_scored,
            &metrics.shadow_skipped,
        ] {
            r.register(Box::new(c.clone())).expect("register");
        }
        for c in [&metrics.dlq, &metrics.sink_retries, &metrics.http_requests, &metrics.model_changes] {
            r.register(Box::new(c.clone())).expect("register");
        }
        for h in [&metrics.batch_size, &metrics.batch_tokens, &metrics.model_seconds, &metrics.end_to_end_seconds] {
            r.register(Box::new(h.clone())).expect("register");
        }
        r.register(Box::new(metrics.sink_seconds.clone())).expect("register");
        for g in [&metrics.queue_depth, &metrics.queue_bytes, &metrics.consumer_lag] {
            r.register(Box::new(g.clone())).expect("register");
        }
        r.register(Box::new(metrics.model_info.clone())).expect("register");
        r.register(Box::new(metrics.partition_lag.clone())).expect("register");
        r.register(Box::new(metrics.drain_seconds.clone())).expect("register");
        r.register(Box::new(metrics.shadow_agreement.clone())).expect("register");
        r.register(Box::new(metrics.label_share.clone())).expect("register");
        metrics
    }

    /// Records the assigned partitions' lag and `rate`, the recent results
    /// per second: the gauges and what `/v1/stats` shows.
    pub fn set_lag(&self, partitions: BTreeMap<i32, i64>, rate: f64) {
        let total: i64 = partitions.values().sum();
        let drain = match total {
            0 => 0.0,
            _ if rate > 0.0 => total as f64 / rate,
            _ => f64::INFINITY,
        };
        self.consumer_lag.set(total);
        self.partition_lag.reset();
        for (partition, lag) in &partitions {
            self.partition_lag.with_label_values(&[&partition.to_string()]).set(*lag);
        }
        self.drain_seconds.set(drain);
        *self.lag.lock().unwrap_or_else(PoisonError::into_inner) = Lag { partitions, drain_seconds: drain };
    }

    pub fn lag(&self) -> Lag {
        self.lag.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        TextEncoder::new().encode_to_string(&self.registry.gather()).unwrap_or_default()
    }
}

/// The consumer's lag as the last statistics gave it.
#[derive(Debug, Clone, Default)]
pub struct Lag {
    /// Messages behind the end, by assigned input partition.
    pub partitions: BTreeMap<i32, i64>,
    /// Lag over the recent rate of results; infinite when no results come.
    pub drain_seconds: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
