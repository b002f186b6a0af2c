-- itembank 008: the distinct values each tag key has, derived from item_tags.
-- item_tags holds 3-5 rows an item (22 M at 5.5 M items); which values a key has (the bitsets `stats --by` sizes
-- before building them, the check that a filter value exists) was a scan of every row of the key. The writers of
-- item_tags add the pairs they write to this table in their transactions (Bank: note_tag_values); tags are never
-- deleted, so it holds exactly the distinct (key, value) pairs of item_tags. Rebuildable; not part of the snapshot.
CREATE TABLE tag_values (
    key    VARCHAR NOT NULL,
    value  VARCHAR NOT NULL
);
INSERT INTO tag_values SELECT DISTINCT key, value FROM item_tags ORDER BY key, value;
