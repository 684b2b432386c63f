//! Traces across the Kafka hops (docs/deploy.md, "Tracing"): an input's
//! `traceparent` continues on its output, review and DLQ records, and the
//! spans of the producer and the worker reach an OTLP receiver.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use bertstream_tests::*;

const STEADY: Duration = Duration::from_secs(180);

/// The trace id and parent span id of a record's `traceparent`, which must be well formed.
fn traceparent(record: &Record) -> (String, String) {
    let key = record.key_str();
    let value = record.headers.get("traceparent").unwrap_or_else(|| panic!("{key}: no traceparent"));
    parse_traceparent(value).unwrap_or_else(|| panic!("{key}: malformed traceparent {value}"))
}

fn find<'a>(records: &'a [Record], key: &str) -> &'a Record {
    records.iter().find(|r| r.key_str() == key).unwrap_or_else(|| panic!("no record {key}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inputs_trace_continues_on_its_output_review_and_dlq_records() {
    let topics = Topics::create(1).await;
    let db = fresh_database().await;
    let (trace_a, trace_b) = ("4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c");
    let parent_a = format!("00-{trace_a}-00f067aa0ba902b7-01");
    let parent_b = format!("00-{trace_b}-b7ad6b7169203331-01");
    let poison = (Some(b"poison".to_vec()), Some(b"{not json".to_vec()));
    publish_with_headers(
        &topics.input,
        &[
            (review("traced", "手机很好"), vec![("traceparent", parent_a.as_str()), ("tracestate", "vendor=1")]),
            (poison, vec![("traceparent", parent_b.as_str())]),
            (review("untraced", "物流很快"), vec![]),
            (review("malformed", "一般般吧"), vec![("traceparent", "00-not-a-trace-01")]),
        ],
    )
    .await;

    // Every result goes to the review topic as well (no top score reaches 1).
    let review_topic = format!("{}.review", topics.input);
    let mut worker = Worker::start(&topics, &db, &[("REVIEW_TOPIC", &review_topic), ("REVIEW_BELOW", "1")]);
    wait_until(STEADY, "three rows", || async { stored_count(&db).await == 3 }).await;
    wait_until(STEADY, "the poison in the DLQ", || async { !read_all(&topics.dlq).is_empty() }).await;
    let ledger = stop_and_audit([&mut worker], &topics, &db).await;

    let traced = find(&ledger.output, "traced");
    assert_eq!(traceparent(traced).0, trace_a);
    assert_eq!(traced.headers.get("tracestate").map(String::as_str), Some("vendor=1"));
    assert_eq!(traceparent(find(&read_all(&review_topic), "traced")).0, trace_a, "the review topic's record");
    assert_eq!(ledger.dlq.len(), 1, "a malformed traceparent is no reason for the DLQ");
    assert_eq!(traceparent(find(&ledger.dlq, "poison")).0, trace_b);
    // Without a valid traceparent a message starts a trace of its own.
    let fresh = [traceparent(find(&ledger.output, "untraced")).0, traceparent(find(&ledger.output, "malformed")).0];
    assert_ne!(fresh[0], fresh[1]);
    for trace in fresh {
        assert!(trace != trace_a && trace != trace_b, "{trace}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_of_the_producer_and_the_worker_reach_an_otlp_receiver() {
    let receiver = OtlpReceiver::start().await;
    let otel = [("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "100")];
    let topics = Topics::create(1).await;
    let db = fresh_database().await;

    // The producer starts a trace a record, and exports its spans before it exits.
    let mut producer = Command::new(producer_binary())
        .args(["--topic", &topics.input, "--format", "jsonl"])
        .env("KAFKA_BROKERS", brokers())
        .envs(otel)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bertstream-produce");
    let lines = (0..3).map(|i| format!("{{\"id\":\"p-{i}\",\"text\":\"{}\"}}\n", sample_text(i))).collect::<String>();
    producer.stdin.take().expect("stdin").write_all(lines.as_bytes()).expect("write stdin");
    let produced = producer.wait_with_output().expect("wait");
    assert!(produced.status.success(), "{}", String::from_utf8_lossy(&produced.stderr));
    let published: Vec<(String, String)> = read_all(&topics.input).iter().map(traceparent).collect();
    assert_eq!(published.len(), 3);
    let spans = receiver.spans();
    for (trace, span) in &published {
        assert!(
            spans.iter().any(|s| s.service == "bertstream-produce"
                && s.name == "publish_review"
                && (&s.trace_id, &s.span_id) == (trace, span)),
            "the producer's span {trace}-{span} was not received: {spans:?}"
        );
    }

    let mut worker = Worker::start(&topics, &db, &otel);
    wait_until(STEADY, "three rows", || async { stored_count(&db).await == 3 }).await;
    let worker_spans = ["process_review", "model_forward", "sink_write"];
    wait_until(STEADY, "the worker's spans of each trace", || async {
        let spans = receiver.spans();
        published.iter().all(|(trace, _)| {
            worker_spans.iter().all(|name| {
                spans.iter().any(|s| s.service == "bertstream-worker" && s.name == *name && &s.trace_id == trace)
            })
        })
    })
    .await;
    let ledger = stop_and_audit([&mut worker], &topics, &db).await;

    // producer's span ─► process_review ─► model_forward, sink_write; the output record's parent is process_review.
    let spans = receiver.spans();
    assert_eq!(ledger.output.len(), 3);
    for record in &ledger.output {
        let (trace, parent) = traceparent(record);
        let (_, producer_span) =
            published.iter().find(|(t, _)| *t == trace).expect("the output is in a producer's trace");
        let process = spans
            .iter()
            .find(|s| s.name == "process_review" && s.span_id == parent)
            .unwrap_or_else(|| panic!("{}: its parent span {parent} is not the worker's", record.key_str()));
        assert_eq!((&process.trace_id, &process.parent_span_id), (&trace, producer_span));
        for name in ["model_forward", "sink_write"] {
            assert!(
                spans.iter().any(|s| s.name == name && s.parent_span_id == process.span_id && s.trace_id == trace),
                "{}: no {name} span under process_review",
                record.key_str()
            );
        }
    }
}
