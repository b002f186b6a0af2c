-- itembank 003: item stages (adtbase.lifecycle) and pretest items on forms.
-- A bank from before stages: items with a calibrated difficulty are operational, the rest pretest.
-- Retirement stays in review_state (stored forms rebuild from it); the items frame shows it as a stage.
ALTER TABLE items ADD COLUMN stage VARCHAR DEFAULT 'pretest';
ALTER TABLE items ADD COLUMN rest_until_round INTEGER;
UPDATE items SET stage = 'operational' WHERE item_id IN (SELECT item_id FROM item_difficulty);
-- Which items of a form are pretest items (administered, never scored).
ALTER TABLE form_items ADD COLUMN pretest BOOLEAN DEFAULT false;
-- How many pretest-stage items stand in as operational items on a young bank's form.
ALTER TABLE forms ADD COLUMN n_stand_in INTEGER DEFAULT 0;
