-- Counts of `classifications` by label, kept by statement-level triggers, so
-- that /v1/stats costs the same at 10 rows and at 100 million. One counter
-- update per label per statement (a batch's upsert is one statement); labels
-- are taken in order so that concurrent batches lock the counters alike.
CREATE TABLE IF NOT EXISTS label_counts (
    label text PRIMARY KEY,
    n bigint NOT NULL
);

INSERT INTO label_counts (label, n)
SELECT label, count(*) FROM classifications GROUP BY label
ON CONFLICT (label) DO UPDATE SET n = EXCLUDED.n;

CREATE OR REPLACE FUNCTION label_counts_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO label_counts (label, n)
    SELECT label, sum(d) FROM (
        SELECT label, 1 AS d FROM new_rows
        UNION ALL SELECT label, -1 FROM old_rows
    ) AS changes
    GROUP BY label HAVING sum(d) <> 0 ORDER BY label
    ON CONFLICT (label) DO UPDATE SET n = label_counts.n + EXCLUDED.n;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION label_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO label_counts (label, n)
    SELECT label, count(*) FROM new_rows GROUP BY label ORDER BY label
    ON CONFLICT (label) DO UPDATE SET n = label_counts.n + EXCLUDED.n;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION label_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO label_counts (label, n)
    SELECT label, -count(*) FROM old_rows GROUP BY label ORDER BY label
    ON CONFLICT (label) DO UPDATE SET n = label_counts.n + EXCLUDED.n;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS label_counts_on_insert ON classifications;
CREATE TRIGGER label_counts_on_insert AFTER INSERT ON classifications
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION label_counts_insert();
DROP TRIGGER IF EXISTS label_counts_on_update ON classifications;
CREATE TRIGGER label_counts_on_update AFTER UPDATE ON classifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION label_counts_add();
DROP TRIGGER IF EXISTS label_counts_on_delete ON classifications;
CREATE TRIGGER label_counts_on_delete AFTER DELETE ON classifications
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION label_counts_delete();
