-- calibration 004: content priors (calibration/content_prior.py) stored with the calibration that fitted them:
-- for every non-retired bank item the calibration does not calibrate, its predicted 2PL a, b and their SDs.
-- The sampler's information objectives (pool_frame), whole-bank predictions and online calibration's
-- per-item priors read them.
CREATE TABLE calibration_content_prior (
    calibration_id VARCHAR NOT NULL,
    item_id        VARCHAR NOT NULL,
    a              DOUBLE NOT NULL,   -- exp(predicted log a): the prior's median discrimination
    b              DOUBLE NOT NULL,   -- predicted difficulty
    log_a_sd       DOUBLE NOT NULL,   -- SD of log a (out-of-fold RMSE of the content model, or the variants' spread)
    b_sd           DOUBLE NOT NULL,
    from_parent    BOOLEAN NOT NULL,  -- a variant: its parent's parameters
    PRIMARY KEY (calibration_id, item_id)
);
