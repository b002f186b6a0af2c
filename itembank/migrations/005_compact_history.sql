-- itembank 005: the history stores each event's hash once. prev_hash repeated the previous event's hash (64
-- bytes an event: a ninth of a million-item bank); the chain rule is unchanged (hash = sha256(previous hash |
-- seq | ts | kind | item_id | ref | payload)) and `bank verify` reads the previous hash from the previous event,
-- so heads and snapshot ids stay as they were. Exports still carry a prev_hash column (itembank.snapshot).
ALTER TABLE events DROP COLUMN prev_hash;
