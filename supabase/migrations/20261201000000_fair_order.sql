-- Round-robin fairness within a priority (start-time fair queueing), replacing the
-- "owner's running jobs" term of the claim order, which degenerated to FIFO with few slots.
--
-- Every job gets a fair_tag when it is queued: max(the priority's virtual time, the owner's
-- last queued or running tag at that priority + 1). Claims take jobs in
--     (priority DESC, fair_tag, seq)
-- and raise the priority's virtual time (fair_clock) to the tags they take. So an owner's
-- k-th waiting job sorts into round k: owners take turns, and an owner who was not served
-- recently starts at the current round instead of behind another owner's backlog.
-- The key is fixed at submission, so queue position is a plain index range count.

ALTER TABLE jobs ADD COLUMN IF NOT EXISTS fair_tag bigint NOT NULL DEFAULT 0;

UPDATE jobs AS j SET fair_tag = r.tag
FROM (SELECT id, row_number() OVER (PARTITION BY owner, priority ORDER BY created_at, seq) - 1
             AS tag
      FROM jobs WHERE state = 'queued') AS r
WHERE j.id = r.id;

CREATE TABLE IF NOT EXISTS fair_clock (
    priority smallint PRIMARY KEY CHECK (priority BETWEEN 1 AND 10),
    vtime    bigint NOT NULL DEFAULT 0
);

DROP VIEW IF EXISTS queued_in_order;
DROP INDEX IF EXISTS jobs_queue_order;
DROP INDEX IF EXISTS jobs_owner_state;
CREATE INDEX IF NOT EXISTS jobs_queue_order ON jobs (state, priority DESC, fair_tag, seq)
    INCLUDE (audio_duration_s, owner, not_before);
CREATE INDEX IF NOT EXISTS jobs_owner_state ON jobs (owner, state, priority, fair_tag, seq)
    INCLUDE (audio_duration_s, not_before);
-- Retries waiting for their not_before (few): position() counts them apart.
CREATE INDEX IF NOT EXISTS jobs_queued_not_before ON jobs (not_before) WHERE state = 'queued';

ALTER TABLE fair_clock ENABLE ROW LEVEL SECURITY;
