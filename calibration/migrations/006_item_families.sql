-- calibration 006: parameters of item families other than the 4PL (calibration.irt.ItemModel), keyed by the
-- family's columns(): the many-facet graded response model (irt_model 'grm') stores a, b1..b{K-1} per item
-- here (K - 1 = the item's non-null b columns) and its raters' severities. calibration_items keeps the
-- family's 2PL view (a, b = mean threshold) for the consumers that read a, b. A 4PL calibration writes none.
CREATE TABLE calibration_item_columns (
    calibration_id VARCHAR NOT NULL,
    item_id        VARCHAR NOT NULL,
    name           VARCHAR NOT NULL,   -- a column of the family's columns(): a, b1, b2, ...
    value          DOUBLE NOT NULL,
    se             DOUBLE,
    PRIMARY KEY (calibration_id, item_id, name)
);

CREATE TABLE calibration_raters (
    calibration_id VARCHAR NOT NULL,
    rater_id       VARCHAR NOT NULL,   -- a judge's name, or human:<reviewer>
    severity       DOUBLE NOT NULL,    -- shifts every threshold it scores; sum to zero over the raters
    se             DOUBLE,
    n_responses    BIGINT NOT NULL,
    PRIMARY KEY (calibration_id, rater_id)
);
