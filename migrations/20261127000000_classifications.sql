-- One row per review id: the stream's results, written by batched upsert.
CREATE TABLE IF NOT EXISTS classifications (
    review_id        text PRIMARY KEY,
    text             text        NOT NULL,
    label            text        NOT NULL,
    score            real        NOT NULL,
    scores           jsonb       NOT NULL,
    model            text        NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    -- the Kafka message timestamp (when it was published)
    published_at     timestamptz,
    -- when the worker read it, and when its batch left the model
    received_at      timestamptz NOT NULL,
    classified_at    timestamptz NOT NULL,
    -- timings: waiting for a batch, the batch's model time, and its size
    queue_ms         real        NOT NULL,
    model_ms         real        NOT NULL,
    batch_size       integer     NOT NULL,
    -- the review's other fields (source, created_at, ...)
    fields           jsonb       NOT NULL DEFAULT '{}'
);

-- "latest", and "latest by label", newest first with a stable tie-break for keyset pagination
CREATE INDEX IF NOT EXISTS classifications_latest ON classifications (classified_at DESC, review_id DESC);
CREATE INDEX IF NOT EXISTS classifications_latest_by_label ON classifications (label, classified_at DESC, review_id DESC);
