-- itembank 006: batch-level history. A bulk write (an import chunk, a response batch) records ONE 'batch' event
-- whose payload counts and digests the rows it added (itembank.history.BATCH_TABLES); each row carries the seq of
-- the event that recorded it, so as-of views read `seq <= head` and `bank verify` re-digests each batch's rows.
-- Rows of an older bank point at the per-item event that recorded them (kept as they are: the chain, heads and
-- as-of answers do not change); a row no event recorded gets 0, which `bank verify` names.
-- item_aliases and responses lose their PRIMARY KEY: its index was a sixth of a million-item bank's file, and their
-- writers keep the keys unique themselves (Bank._write_chunk and importer._drop_conflicts: an external id names one
-- item; Bank._insert_responses: one response per run and item), as item_tags always did. Rebuilt, as DuckDB cannot
-- drop a key in place; the items key stays (items are looked up by id one at a time).
CREATE TABLE item_aliases_006 (
    source      VARCHAR NOT NULL,
    external_id VARCHAR NOT NULL,
    item_id     VARCHAR NOT NULL,
    seq         BIGINT
);
INSERT INTO item_aliases_006 SELECT source, external_id, item_id, NULL FROM item_aliases;
DROP TABLE item_aliases;
ALTER TABLE item_aliases_006 RENAME TO item_aliases;
CREATE TABLE responses_006 (
    run_id         VARCHAR NOT NULL,
    item_id        VARCHAR NOT NULL,
    score          DOUBLE NOT NULL,
    raw_output     VARCHAR,
    extracted      VARCHAR,
    template_id    VARCHAR,
    prompt_hash    VARCHAR,
    choice_logliks DOUBLE[],
    tokens_in      INTEGER,
    tokens_out     INTEGER,
    latency_s      DOUBLE,
    answered_at    VARCHAR NOT NULL,
    scored_by      VARCHAR DEFAULT 'rule',
    seq            BIGINT
);
INSERT INTO responses_006 SELECT run_id, item_id, score, raw_output, extracted, template_id, prompt_hash, choice_logliks,
    tokens_in, tokens_out, latency_s, answered_at, scored_by, NULL FROM responses;
DROP TABLE responses;
ALTER TABLE responses_006 RENAME TO responses;
ALTER TABLE items ADD COLUMN seq BIGINT;
ALTER TABLE item_tags ADD COLUMN seq BIGINT;
UPDATE items SET seq = e.seq FROM (
    SELECT item_id, min(seq) AS seq FROM events WHERE kind = 'created' GROUP BY item_id) e
WHERE items.item_id = e.item_id;
-- An alias: its 'aliased' event, else the event that created its item (aliases given with a new item).
UPDATE item_aliases SET seq = e.seq FROM (
    SELECT item_id, json_extract_string(payload, '$.source') AS source,
           json_extract_string(payload, '$.external_id') AS external_id, min(seq) AS seq
    FROM events WHERE kind = 'aliased' GROUP BY ALL) e
WHERE item_aliases.item_id = e.item_id AND item_aliases.source = e.source
  AND item_aliases.external_id = e.external_id;
UPDATE item_aliases SET seq = i.seq FROM items i WHERE item_aliases.seq IS NULL AND item_aliases.item_id = i.item_id;
-- A tag: the last 'tagged' event listing it (the old as-of rule took a tag off while any later one listed it),
-- else the event that created its item.
UPDATE item_tags SET seq = e.seq FROM (
    SELECT item_id, split_part(pair, '=', 1) AS key,
           CASE WHEN strpos(pair, '=') = 0 THEN '' ELSE substr(pair, strpos(pair, '=') + 1) END AS value,
           max(seq) AS seq
    FROM (SELECT item_id, seq, unnest(string_split(json_extract_string(payload, '$.tags'), ';')) AS pair
          FROM events WHERE kind = 'tagged') GROUP BY ALL) e
WHERE item_tags.item_id = e.item_id AND item_tags.key = e.key AND item_tags.value = e.value;
UPDATE item_tags SET seq = i.seq FROM items i WHERE item_tags.seq IS NULL AND item_tags.item_id = i.item_id;
UPDATE responses SET seq = e.seq FROM (
    SELECT ref AS run_id, item_id, min(seq) AS seq FROM events WHERE kind = 'answered' GROUP BY ALL) e
WHERE responses.run_id = e.run_id AND responses.item_id = e.item_id;
UPDATE items SET seq = 0 WHERE seq IS NULL;
UPDATE item_aliases SET seq = 0 WHERE seq IS NULL;
UPDATE item_tags SET seq = 0 WHERE seq IS NULL;
UPDATE responses SET seq = 0 WHERE seq IS NULL;
