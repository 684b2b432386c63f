-- How far each backfill job has got, so that one killed part-way resumes
-- where it stopped. A topic job has a row per input partition (its range,
-- fixed at the first run, and the next offset to score); a job over the
-- stored rows has one row, `part` -1, with the last review id it scored.
CREATE TABLE IF NOT EXISTS backfill_progress (
    job         text        NOT NULL,
    part        integer     NOT NULL,
    next_offset bigint,
    end_offset  bigint,
    after_id    text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job, part)
);
