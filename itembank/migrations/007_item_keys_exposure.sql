-- itembank 007: integer item keys, tags keyed by them, and a derived per-item exposure table.
-- Items get a BIGINT key (assigned at insert: one more than the largest so far). item_tags is keyed by it
-- instead of repeating the 23-character text id on every tag row (3-5 rows an item: a ninth of a 5.5 M-item
-- bank), and the reads that join tags to items (stats --by, tag filters) join integers. The snapshot digest
-- still covers tags by item id (Bank.snapshot_id joins them back), so snapshot ids do not change.
ALTER TABLE items ADD COLUMN item_key BIGINT;
UPDATE items SET item_key = rowid + 1;
-- Every column but item_id carried over (a column another migration added survives), in item-key order.
CREATE TABLE item_tags_by_key AS
    SELECT i.item_key, t.* EXCLUDE (item_id) FROM item_tags t JOIN items i USING (item_id) ORDER BY i.item_key;
DROP TABLE item_tags;
ALTER TABLE item_tags_by_key RENAME TO item_tags;
ALTER TABLE item_tags ALTER COLUMN item_key SET NOT NULL;
ALTER TABLE item_tags ALTER COLUMN key SET NOT NULL;
ALTER TABLE item_tags ALTER COLUMN value SET NOT NULL;
-- Exposure per exposed item, derived from responses x runs and publications x form_items (the rule is
-- Bank's EXPOSURE_SQL; the bank fills this table right after this migration and keeps it in the transactions
-- that add responses or publications): read by every live stats/draw/items call instead of aggregating
-- every response each time. Rebuildable; not part of the snapshot.
CREATE TABLE item_exposure (
    item_key          BIGINT NOT NULL,
    runs              BIGINT NOT NULL,
    runs_first_round  INTEGER,
    runs_last_round   INTEGER,
    runs_first_at     VARCHAR,
    runs_last_at      VARCHAR,
    pubs              BIGINT NOT NULL,
    pubs_first_round  INTEGER,
    pubs_last_round   INTEGER,
    pubs_first_at     VARCHAR,
    pubs_last_at      VARCHAR
);
