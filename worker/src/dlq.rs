//! The dead-letter topic: a malformed message goes there as it was (key,
//! value, timestamp), with headers saying why and where it came from, and
//! the trace context of the message.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::trace_context::{RecordTrace, SPANS};
use schemas::{dlq_headers as h, Poison};

use crate::kafka::{self, is_permanent};
use crate::metrics::Metrics;
use crate::retry::{Backoff, Fatal, Permanent};

#[derive(Clone)]
pub struct DeadLetters {
    pub producer: FutureProducer,
    pub topic: String,
    pub metrics: Arc<Metrics>,
    pub fatal: Fatal,
}

impl DeadLetters {
    /// Publishes until the broker acknowledges it; the offset waits meanwhile.
    /// A refusal no retry mends (the record is over the topic's limit, the
    /// worker may not write the topic) is reported to [`Fatal`] and returned:
    /// the message's offset must then not be stored.
    pub async fn send(&self, message: &OwnedMessage, reason: &Poison, trace: &RecordTrace) -> Result<(), Permanent> {
        trace.span.record("otel.status_code", "error");
        let _span = tracing::trace_span!(target: SPANS, parent: &trace.span, "dead_letter", error.kind = reason.kind());
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let text = reason.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header { key: h::ERROR_KIND, value: Some(reason.kind()) })
            .insert(Header { key: h::ERROR_MESSAGE, value: Some(text.as_str()) })
            .insert(Header { key: h::SOURCE_TOPIC, value: Some(message.topic()) })
            .insert(Header { key: h::SOURCE_PARTITION, value: Some(partition.as_str()) })
            .insert(Header { key: h::SOURCE_OFFSET, value: Some(offset.as_str()) });
        let headers = kafka::with_trace(headers, trace);
        let mut backoff = Backoff::new();
        loop {
            let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&self.topic).headers(headers.clone());
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(value) = message.payload() {
                record = record.payload(value);
            }
            if let Some(ms) = message.timestamp().to_millis() {
                record = record.timestamp(ms);
            }
            match self.producer.send(record, Duration::from_secs(5)).await {
                Ok(_) => break,
                Err((e, _)) if is_permanent(&e) => {
                    let at = format!("{}:{}:{}", message.topic(), partition, offset);
                    return Err(self
                        .fatal
                        .report(format!("the DLQ topic `{}` refuses the record of {at}: {e}", self.topic)));
                }
                Err((e, _)) => {
                    self.metrics.sink_retries.with_label_values(&["dlq"]).inc();
                    tracing::warn!(error = %e, "dead-letter publish failed; retrying");
                    backoff.wait().await;
                }
            }
        }
        self.metrics.dlq.with_label_values(&[reason.kind()]).inc();
        tracing::info!(kind = reason.kind(), partition, offset, "sent to the DLQ");
        Ok(())
    }
}
