-- calibration 002: what prediction needs of a calibration (calibration/predictive.py), built when the
-- calibration is stored: empirical-Bayes discriminations with refitted difficulties, posterior-predictive
-- curves for items every calibration model got right or wrong, the SDs parameter draws use, the
-- model-level misfit and the calibration models' ability range.
CREATE TABLE calibration_predictive (
    calibration_id VARCHAR PRIMARY KEY,
    misfit_sd      DOUBLE NOT NULL,   -- RMS of (accuracy - expected accuracy) over the calibration models
    theta_lo       DOUBLE,            -- the calibration models' lowest and highest EAP ability
    theta_hi       DOUBLE,
    se_source      VARCHAR NOT NULL,  -- louis | fisher | none
    shrinkage      VARCHAR NOT NULL   -- JSON: mean_log_a, tau2_log_a, mean_keep ({} when a was not shrunk)
);

CREATE TABLE calibration_predictive_items (
    calibration_id VARCHAR NOT NULL,
    item_id        VARCHAR NOT NULL,
    a              DOUBLE,            -- NULL where the item cannot be predicted (nobody answered it)
    b              DOUBLE,
    c              DOUBLE,
    d              DOUBLE,
    se_a           DOUBLE NOT NULL,
    se_b           DOUBLE NOT NULL,
    basis          VARCHAR NOT NULL,  -- calibrated | fixed | all_correct | all_wrong | unanswered
    PRIMARY KEY (calibration_id, item_id)
);
