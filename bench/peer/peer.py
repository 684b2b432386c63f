"""The Python peer: what a competent user writes instead of bertstream.

A confluent-kafka consumer with manual commits reads ReviewV1 JSON in batches,
a transformers AutoModelForSequenceClassification classifies each batch under
torch.inference_mode(), psycopg upserts the results into the same
`classifications` table (migrations/*.sql) with executemany, the results go
to the output topic as ClassificationV1, and only then are the offsets
committed (at-least-once, like bertstream).

    python bench/peer/peer.py        # settings from the same environment variables as the worker

KAFKA_BROKERS, INPUT_TOPIC, OUTPUT_TOPIC, GROUP_ID, DATABASE_URL, MODEL_DIR,
TORCH_THREADS (default: all cores), MAX_BATCH_SIZE (64), MAX_WAIT_MS (20),
MAX_SEQ_LEN (the model directory's bertstream.json). Stops on SIGTERM/SIGINT.
"""
import hashlib
import json
import os
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import torch
from confluent_kafka import Consumer, Producer
from transformers import AutoModelForSequenceClassification, AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]

UPSERT = """
INSERT INTO classifications (review_id, text, label, score, scores, model, source_topic,
    source_partition, source_offset, published_at, received_at, classified_at,
    queue_ms, model_ms, batch_size, fields)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (review_id) DO UPDATE SET
    text = EXCLUDED.text, label = EXCLUDED.label, score = EXCLUDED.score,
    scores = EXCLUDED.scores, model = EXCLUDED.model, source_topic = EXCLUDED.source_topic,
    source_partition = EXCLUDED.source_partition, source_offset = EXCLUDED.source_offset,
    published_at = EXCLUDED.published_at, received_at = EXCLUDED.received_at,
    classified_at = EXCLUDED.classified_at, queue_ms = EXCLUDED.queue_ms,
    model_ms = EXCLUDED.model_ms, batch_size = EXCLUDED.batch_size, fields = EXCLUDED.fields
"""


def model_id(model_dir: Path) -> str:
    # As bertstream computes it: the n-gram head, when there is one, is hashed too
    # (this peer does not apply the head: benchmark models have none).
    files = [model_dir / "model.safetensors", model_dir / "ngram_head.safetensors"]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files if f.exists())).hexdigest()
    return f"{model_dir.resolve().name}@{digest[:12]}"


def main() -> None:
    env = os.environ.get
    model_dir = Path(env("MODEL_DIR"))
    threads = int(env("TORCH_THREADS") or os.cpu_count())
    batch_size = int(env("MAX_BATCH_SIZE", "64"))
    wait = int(env("MAX_WAIT_MS", "20")) / 1000
    meta = model_dir / "bertstream.json"
    max_len = int(env("MAX_SEQ_LEN") or (json.loads(meta.read_text())["max_seq_len"] if meta.exists() else 512))
    output_topic = env("OUTPUT_TOPIC", "reviews.classified")

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    mid = model_id(model_dir)

    db = psycopg.connect(env("DATABASE_URL"), autocommit=True)
    for sql in sorted((ROOT / "migrations").glob("*.sql")):
        db.execute(sql.read_text())
    brokers = env("KAFKA_BROKERS", "127.0.0.1:9092")
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": env("GROUP_ID", "peer"),
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([env("INPUT_TOPIC", "reviews")])
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "linger.ms": 5})

    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"peer: model {mid}, {threads} threads, batches of {batch_size}", file=sys.stderr, flush=True)

    while running:
        messages = consumer.consume(num_messages=batch_size, timeout=wait)
        received_at = datetime.now(timezone.utc)
        reviews = []
        for m in messages:
            if m.error():
                print(f"peer: kafka error {m.error()}", file=sys.stderr)
                continue
            try:
                review = json.loads(m.value())
                rid, text = str(review.pop("id")), review.pop("text")
            except (ValueError, KeyError):
                continue  # a real peer would dead-letter it; the benchmark sends none
            reviews.append((m, rid, text, review))
        if not reviews:
            continue

        started = time.perf_counter()
        with torch.inference_mode():
            encoded = tokenizer([r[2] for r in reviews], padding=True, truncation=True, max_length=max_len, return_tensors="pt")
            probabilities = model(**encoded).logits.softmax(-1).tolist()
        model_ms = (time.perf_counter() - started) * 1000
        classified_at = datetime.now(timezone.utc)

        rows, records = [], []
        for (m, rid, text, extra), p in zip(reviews, probabilities):
            best = max(range(len(p)), key=p.__getitem__)
            scores = dict(zip(labels, p))
            ts_type, ts_ms = m.timestamp()
            published_at = datetime.fromtimestamp(ts_ms / 1000, timezone.utc) if ts_ms > 0 else None
            rows.append((rid, text, labels[best], p[best], json.dumps(scores), mid, m.topic(), m.partition(),
                         m.offset(), published_at, received_at, classified_at,
                         0.0, model_ms, len(reviews), json.dumps(extra)))
            records.append((rid, json.dumps({
                "id": rid, "label": labels[best], "score": p[best], "scores": scores, "model": mid,
                "source": {"topic": m.topic(), "partition": m.partition(), "offset": m.offset()},
                "classified_at": classified_at.isoformat(),
            })))
        with db.transaction(), db.cursor() as cur:
            cur.executemany(UPSERT, rows)
        for key, value in records:
            producer.produce(output_topic, key=key, value=value)
        producer.flush()
        consumer.commit(asynchronous=False)

    consumer.close()
    producer.flush()


if __name__ == "__main__":
    main()
