-- itembank 004: judge calls (issue 15) and who scored each response.
-- scored_by: 'rule' (a text rule, as every response before), 'judge:pending' (a judge-scored answer awaiting
-- verdicts: its score 0 is a placeholder, never read as a score), 'panel' (the judges' combined verdict),
-- 'human' (a human's score stands).
ALTER TABLE responses ADD COLUMN scored_by VARCHAR DEFAULT 'rule';
-- One row per judge call (adtbase.verdicts: the verdict coding). Keyed so that storing a call twice adds
-- nothing (a resumed judge run). run_id '' is external data (item_id the pair id).
CREATE TABLE judgments (
    run_id      VARCHAR NOT NULL,
    item_id     VARCHAR NOT NULL,
    model       VARCHAR NOT NULL,      -- the candidate's model ('' for external data)
    judge       VARCHAR NOT NULL,      -- as configured; 'human:<reviewer>' for a human
    judge_model VARCHAR NOT NULL,      -- what the judge backend served ('' for humans)
    template_id VARCHAR NOT NULL,      -- judge-<kind>-<lang>@<version>; 'human' for humans
    "order"     VARCHAR NOT NULL,      -- 'ab' candidate shown first, 'ba' second, '' pointwise
    prompt_hash VARCHAR,
    raw_output  VARCHAR,
    verdict     DOUBLE,                -- in [0, 1], candidate's terms; NULL when unparseable or failed
    level       INTEGER,
    n_levels    INTEGER NOT NULL,
    problem     VARCHAR,               -- why verdict is NULL
    judged_at   VARCHAR NOT NULL,
    PRIMARY KEY (run_id, item_id, judge, template_id, "order")
);
