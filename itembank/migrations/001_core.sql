-- itembank 001: the bank's entities. Items are keyed by a content hash; every (source, external id)
-- is an alias. Runs, responses, forms and publications live here because exposure is defined by them.
CREATE TABLE sources (
    name              VARCHAR PRIMARY KEY,
    version           VARCHAR,
    license           VARCHAR,
    first_imported_at VARCHAR NOT NULL
);

CREATE TABLE import_batches (
    batch_id    VARCHAR PRIMARY KEY,
    source      VARCHAR NOT NULL,
    files       VARCHAR NOT NULL,
    n_rows      BIGINT NOT NULL,
    n_new_items BIGINT NOT NULL,
    created_at  VARCHAR NOT NULL
);

CREATE TABLE items (
    item_id          VARCHAR PRIMARY KEY,
    question         VARCHAR NOT NULL,
    choices          VARCHAR[],
    answer           VARCHAR,
    item_type        VARCHAR NOT NULL,
    language         VARCHAR NOT NULL,
    content_hash     VARCHAR NOT NULL,
    source           VARCHAR NOT NULL,
    source_version   VARCHAR,
    license          VARCHAR,
    origin           VARCHAR NOT NULL,
    generator        VARCHAR,
    generator_params VARCHAR,
    parent_item_id   VARCHAR,
    review_state     VARCHAR NOT NULL,
    declared_band    VARCHAR,
    import_batch     VARCHAR NOT NULL,
    created_at       VARCHAR NOT NULL,
    retired_reason   VARCHAR
);

CREATE TABLE item_aliases (
    source      VARCHAR NOT NULL,
    external_id VARCHAR NOT NULL,
    item_id     VARCHAR NOT NULL,
    PRIMARY KEY (source, external_id)
);

-- Many-valued tags; uniqueness of (item_id, key, value) is kept by the importer (an index on
-- millions of rows would cost more than it guards).
CREATE TABLE item_tags (
    item_id VARCHAR NOT NULL,
    key     VARCHAR NOT NULL,
    value   VARCHAR NOT NULL
);

CREATE TABLE taxonomy_keys (
    key         VARCHAR PRIMARY KEY,
    closed      BOOLEAN NOT NULL,
    description VARCHAR
);

CREATE TABLE taxonomy_values (
    key   VARCHAR NOT NULL,
    value VARCHAR NOT NULL,
    PRIMARY KEY (key, value)
);

CREATE TABLE models (
    name         VARCHAR PRIMARY KEY,
    family       VARCHAR,
    size         VARCHAR,
    release_date VARCHAR,
    created_at   VARCHAR NOT NULL
);

CREATE TABLE rounds (
    round_no  INTEGER PRIMARY KEY,
    opened_at VARCHAR NOT NULL,
    note      VARCHAR
);

CREATE TABLE forms (
    name           VARCHAR PRIMARY KEY,
    spec           VARCHAR NOT NULL,
    strategy       VARCHAR NOT NULL,
    seed           BIGINT,
    snapshot_id    VARCHAR NOT NULL,
    calibration_id VARCHAR,
    objectives     VARCHAR,
    content_hash   VARCHAR NOT NULL,
    n_items        INTEGER NOT NULL,
    n_uncalibrated INTEGER NOT NULL,
    created_at     VARCHAR NOT NULL
);

CREATE TABLE form_items (
    form_name VARCHAR NOT NULL,
    position  INTEGER NOT NULL,
    item_id   VARCHAR NOT NULL,
    PRIMARY KEY (form_name, position)
);

CREATE TABLE publications (
    form_name    VARCHAR NOT NULL,
    round_no     INTEGER NOT NULL,
    published_at VARCHAR NOT NULL,
    PRIMARY KEY (form_name, round_no)
);

CREATE TABLE runs (
    run_id      VARCHAR PRIMARY KEY,
    model       VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,      -- form | import | cat
    form_name   VARCHAR,
    source      VARCHAR,
    round_no    INTEGER,
    backend     VARCHAR,
    config      VARCHAR,
    status      VARCHAR NOT NULL,      -- running | finished | failed
    created_at  VARCHAR NOT NULL,
    finished_at VARCHAR
);

-- One response per (run, item): the key is what keeps a resumed or re-ingested run from counting
-- an exposure twice.
CREATE TABLE responses (
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
    PRIMARY KEY (run_id, item_id)
);

-- The latest calibrated difficulty per item, pushed by the calibration room through Bank's API;
-- difficulty bands are cut from it.
CREATE TABLE item_difficulty (
    item_id        VARCHAR PRIMARY KEY,
    calibration_id VARCHAR NOT NULL,
    b              DOUBLE NOT NULL
);

CREATE TABLE settings (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

-- Append-only, hash-chained history: hash = sha256(prev_hash | seq | ts | kind | item_id | ref | payload).
CREATE TABLE events (
    seq       BIGINT NOT NULL,
    ts        VARCHAR NOT NULL,
    kind      VARCHAR NOT NULL,
    item_id   VARCHAR,
    ref       VARCHAR,
    payload   VARCHAR NOT NULL,
    prev_hash VARCHAR NOT NULL,
    hash      VARCHAR NOT NULL
);

-- Heads of the chain recorded whenever a snapshot id was handed out (forms, calibrations, exports).
CREATE TABLE history_heads (
    n_events    BIGINT NOT NULL,
    head_hash   VARCHAR NOT NULL,
    purpose     VARCHAR NOT NULL,
    recorded_at VARCHAR NOT NULL
);
