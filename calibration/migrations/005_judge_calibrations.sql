-- calibration 005: judge calibrations (`adt judge validate`): each judge's agreement with gold/human labels
-- (calibration/judges/stats.py), the panel's out-of-fold agreement, and the rater model fitted on every label,
-- which `adt judge run` combines later verdicts with. Stored once, never changed; the latest is what a report shows.
CREATE TABLE judge_calibrations (
    judge_calibration_id VARCHAR PRIMARY KEY,
    seq                  INTEGER NOT NULL,      -- creation order: "latest" is the highest
    created_at           VARCHAR NOT NULL,
    gold_source          VARCHAR NOT NULL,      -- the --gold file and its sha256
    verdicts_source      VARCHAR NOT NULL,      -- "bank" or the --verdicts file and its sha256
    settings             VARCHAR NOT NULL,      -- JSON: judges, folds, seed, rater-model options
    n_cases              INTEGER NOT NULL,      -- cases with a verdict
    n_gold               INTEGER NOT NULL,      -- of them with a gold label
    n_classes            INTEGER NOT NULL,      -- the gold's grid
    panel                VARCHAR NOT NULL,      -- JSON: out-of-fold panel, majority vote, best judge, reliability
    rater_model          VARCHAR NOT NULL       -- JSON: RaterModel.to_dict() (fitted on every gold label)
);

CREATE TABLE judge_calibration_stats (
    judge_calibration_id VARCHAR NOT NULL,
    rater                VARCHAR NOT NULL,      -- judge name (judge[template] where one judge had several)
    n_cases              INTEGER NOT NULL,
    n_calls              INTEGER NOT NULL,
    n_unparseable        INTEGER NOT NULL,
    n_gold               INTEGER NOT NULL,
    acc DOUBLE, acc_lo DOUBLE, acc_hi DOUBLE,
    acc_ab DOUBLE, acc_ab_lo DOUBLE, acc_ab_hi DOUBLE,
    acc_ba DOUBLE, acc_ba_lo DOUBLE, acc_ba_hi DOUBLE,
    kappa DOUBLE, kappa_lo DOUBLE, kappa_hi DOUBLE,
    kappa_weights        VARCHAR NOT NULL,      -- none | quadratic
    spearman DOUBLE, spearman_lo DOUBLE, spearman_hi DOUBLE,
    consistency DOUBLE, consistency_lo DOUBLE, consistency_hi DOUBLE,
    n_both_orders        INTEGER NOT NULL,
    first_pref DOUBLE, first_pref_lo DOUBLE, first_pref_hi DOUBLE,
    tie_rate DOUBLE,
    longer_pref DOUBLE, longer_pref_lo DOUBLE, longer_pref_hi DOUBLE,
    gold_longer DOUBLE, gold_longer_lo DOUBLE, gold_longer_hi DOUBLE,
    PRIMARY KEY (judge_calibration_id, rater)
);
