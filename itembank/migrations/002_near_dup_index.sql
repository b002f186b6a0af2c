-- itembank 002: the near-duplicate index (itembank/neardup.py). Derived data only: every row follows from
-- an item's question and choices, so a bank rebuilt from its items rebuilds it; items are never changed.
-- One row per indexed item (kept unique by neardup.index_items; an index on a million rows would cost
-- more than it guards, as item_tags). text_key finds exact copies of the compared text, question_key
-- equal questions (NULL for a question under neardup.MIN_QUESTION_CHARS: short generic stems).
CREATE TABLE near_dup_items (
    item_id      VARCHAR NOT NULL,
    text_key     BIGINT NOT NULL,
    question_key BIGINT,
    scheme       VARCHAR NOT NULL
);

-- MinHash LSH: one row per (item, band); items sharing a band_key are candidates, verified on the
-- Jaccard similarity of their shingle sets before they are reported.
CREATE TABLE near_dup_bands (
    band_key BIGINT NOT NULL,
    item_id  VARCHAR NOT NULL
);
