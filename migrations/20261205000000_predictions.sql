-- Every model's result side by side, one row per (review, model): what the
-- primary served, what a shadow model would have said, what a backfill
-- re-scored. `classifications` stays the served result alone.
CREATE TABLE IF NOT EXISTS predictions (
    review_id        text        NOT NULL,
    model            text        NOT NULL,
    -- primary, shadow or backfill
    role             text        NOT NULL,
    label            text        NOT NULL,
    score            real        NOT NULL,
    scores           jsonb       NOT NULL,
    -- the message scored: two models compare only on the same message
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    classified_at    timestamptz NOT NULL,
    PRIMARY KEY (review_id, model)
);

-- compare: one model's rows in time order, joined by review id
CREATE INDEX IF NOT EXISTS predictions_by_model ON predictions (model, classified_at);
