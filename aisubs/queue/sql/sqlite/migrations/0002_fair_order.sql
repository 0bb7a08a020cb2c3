-- Round-robin fairness within a priority (see supabase/migrations/*_fair_order.sql for the
-- rule): a fair_tag per job fixed at submission, claims in (priority DESC, fair_tag, seq).

ALTER TABLE jobs ADD COLUMN fair_tag INTEGER NOT NULL DEFAULT 0;

UPDATE jobs SET fair_tag = (
    SELECT r.tag FROM (
        SELECT id, row_number() OVER (PARTITION BY owner, priority ORDER BY created_at, seq) - 1
               AS tag
        FROM jobs WHERE state = 'queued') AS r
    WHERE r.id = jobs.id)
WHERE state = 'queued';

CREATE TABLE fair_clock (
    priority INTEGER PRIMARY KEY CHECK (priority BETWEEN 1 AND 10),
    vtime    INTEGER NOT NULL DEFAULT 0
);

DROP VIEW queued_in_order;
DROP INDEX jobs_queue_order;
DROP INDEX jobs_owner_state;
CREATE INDEX jobs_queue_order ON jobs (state, priority DESC, fair_tag, seq, audio_duration_s);
CREATE INDEX jobs_owner_state ON jobs (owner, state, priority, fair_tag, seq, audio_duration_s);
-- (state, not_before): the planner, without statistics, then prefers it for waiting retries.
CREATE INDEX jobs_queued_not_before ON jobs (state, not_before);
