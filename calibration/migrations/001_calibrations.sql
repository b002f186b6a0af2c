-- calibration 001: versioned calibrations. One row per calibration; its items, the runs it used, its
-- latent distribution and the abilities of the models in its data hang off calibration_id.
CREATE TABLE calibrations (
    calibration_id        VARCHAR PRIMARY KEY,
    seq                   INTEGER NOT NULL,      -- creation order: "latest" is the highest
    method                VARCHAR NOT NULL,      -- mml | pyirt
    irt_model             VARCHAR NOT NULL,      -- 1pl | 2pl | 3pl | 4pl
    settings              VARCHAR NOT NULL,      -- JSON: the fitter's settings, selection, linking
    seed                  BIGINT,
    snapshot_id           VARCHAR NOT NULL,      -- Bank.snapshot_id() of the data it was fitted on
    head_n_events         BIGINT NOT NULL,       -- history head recorded with Bank.record_head
    head_hash             VARCHAR NOT NULL,
    filters               VARCHAR NOT NULL,      -- JSON: the --filter slice of items
    link_method           VARCHAR,               -- fixed | stocking_lord | NULL (own scale)
    anchor_calibration_id VARCHAR,
    loglik                DOUBLE,
    aic                   DOUBLE,
    bic                   DOUBLE,
    n_params              INTEGER,
    n_iter                INTEGER NOT NULL,
    converged             BOOLEAN NOT NULL,
    n_models              INTEGER NOT NULL,
    n_items               INTEGER NOT NULL,
    n_calibrated          INTEGER NOT NULL,
    n_obs                 BIGINT NOT NULL,
    created_at            VARCHAR NOT NULL
);

CREATE TABLE calibration_items (
    calibration_id VARCHAR NOT NULL,
    item_id        VARCHAR NOT NULL,
    a              DOUBLE,
    b              DOUBLE,
    c              DOUBLE,
    d              DOUBLE,
    se_a           DOUBLE,
    se_b           DOUBLE,
    se_c           DOUBLE,
    se_d           DOUBLE,
    status         VARCHAR NOT NULL,  -- calibrated | fixed (anchor) | unanswered | all_correct | all_wrong
    n_responses    INTEGER,           -- responses the fit saw (NULL when not recorded)
    PRIMARY KEY (calibration_id, item_id)
);

CREATE TABLE calibration_runs (
    calibration_id VARCHAR NOT NULL,
    run_id         VARCHAR NOT NULL,
    n_responses    BIGINT NOT NULL,
    PRIMARY KEY (calibration_id, run_id)
);

CREATE TABLE calibration_latent (
    calibration_id VARCHAR NOT NULL,
    k              INTEGER NOT NULL,
    point          DOUBLE NOT NULL,
    weight         DOUBLE NOT NULL,
    PRIMARY KEY (calibration_id, k)
);

CREATE TABLE calibration_abilities (
    calibration_id VARCHAR NOT NULL,
    model          VARCHAR NOT NULL,
    theta          DOUBLE,
    se             DOUBLE,
    n_responses    INTEGER,
    PRIMARY KEY (calibration_id, model)
);
