-- calibration 003: held-out validation studies (`adt validate`). One row per study; its summary rows
-- (per split, strategy and form size) and its per-form records hang off validation_id.
CREATE TABLE validations (
    validation_id        VARCHAR PRIMARY KEY,
    seq                  INTEGER NOT NULL,      -- creation order: "latest" is the highest
    created_at           VARCHAR NOT NULL,
    snapshot_id          VARCHAR NOT NULL,      -- Bank.snapshot_id() of the responses validated
    settings             VARCHAR NOT NULL,      -- JSON: splits, strategies, sizes, forms, seed, folds, ...
    calibration_settings VARCHAR NOT NULL,      -- JSON: the calibration options every fold used
    n_models             INTEGER NOT NULL,
    n_forms              INTEGER NOT NULL,
    seconds              DOUBLE
);

CREATE TABLE validation_summary (
    validation_id      VARCHAR NOT NULL,
    split              VARCHAR NOT NULL,
    strategy           VARCHAR NOT NULL,
    form_size          INTEGER NOT NULL,
    n_models           INTEGER NOT NULL,
    n_intervals        INTEGER NOT NULL,
    mae_pred           DOUBLE,
    mae_raw            DOUBLE,
    mae_regression     DOUBLE,
    coverage           DOUBLE,
    coverage_lo        DOUBLE,
    coverage_hi        DOUBLE,
    mean_width         DOUBLE,
    mean_width_wilson  DOUBLE,
    kendall_tau        DOUBLE,
    share_extrapolated DOUBLE,
    PRIMARY KEY (validation_id, split, strategy, form_size)
);

CREATE TABLE validation_forms (
    validation_id VARCHAR NOT NULL,
    split         VARCHAR NOT NULL,
    fold          INTEGER NOT NULL,
    model         VARCHAR NOT NULL,
    strategy      VARCHAR NOT NULL,
    form_size     INTEGER NOT NULL,
    form          INTEGER NOT NULL,      -- the form's index among this model's disjoint forms
    seed          BIGINT,
    item_ids      VARCHAR[] NOT NULL,    -- the form's items in order (as drawn)
    n_answered    INTEGER NOT NULL,      -- form items the model had answered (the rest were dropped)
    truth         DOUBLE,
    n_truth_items INTEGER,
    pred_acc      DOUBLE,
    pred_lo       DOUBLE,
    pred_hi       DOUBLE,
    raw_acc       DOUBLE,
    wilson_lo     DOUBLE,
    wilson_hi     DOUBLE,
    regression    DOUBLE,
    extra         VARCHAR,               -- JSON: further keys of the estimate (extrapolated, sources, ...)
    PRIMARY KEY (validation_id, split, model, strategy, form_size, form)
);
