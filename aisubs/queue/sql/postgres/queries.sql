-- Named queries that differ on PostgreSQL (the rest: sql/common/queries.sql, whose :name
-- parameters become %(name)s). Same names as sql/sqlite/queries.sql.

-- name: get_job_for_update
SELECT * FROM jobs WHERE id = :id FOR UPDATE;

-- name: claim_jobs
-- :tokens is a JSON object {job id: fresh lease token}. Rows another transaction holds
-- (a cancel, a delete) are skipped, never waited for.
WITH c AS (SELECT key::uuid AS id, value AS token FROM jsonb_each_text(:tokens)),
     locked AS (SELECT id FROM jobs WHERE id IN (SELECT id FROM c) AND state = 'queued'
                FOR UPDATE SKIP LOCKED)
UPDATE jobs AS j SET state = 'running', lease_token = c.token,
                     lease_expires_at = :lease_expires_at,
                     worker_instance = :worker_instance,
                     attempts = j.attempts + 1, started_at = :now, updated_at = :now,
                     progress_stage = NULL, progress_fraction = NULL
FROM locked, c
WHERE j.id = locked.id AND c.id = j.id
RETURNING j.*;

-- name: insert_claim_events
INSERT INTO job_events (job_id, at, kind, attempt, worker_instance, detail)
SELECT id, :now, 'claimed', attempts, worker_instance, '{}'::jsonb FROM jobs
WHERE (id, lease_token) IN (SELECT key::uuid, value FROM jsonb_each_text(:tokens));

-- name: advance_fair_clock
INSERT INTO fair_clock (priority, vtime) VALUES (:priority, :vtime)
ON CONFLICT (priority) DO UPDATE SET vtime = GREATEST(fair_clock.vtime, EXCLUDED.vtime);

-- name: expired_leases
SELECT * FROM jobs WHERE state = 'running' AND lease_expires_at < :now
ORDER BY lease_expires_at LIMIT :limit
FOR UPDATE SKIP LOCKED;

-- name: list_jobs
SELECT * FROM jobs
WHERE owner = :owner AND state = ANY(CAST(:states AS job_state[])) AND seq < :before_seq
ORDER BY seq DESC LIMIT :limit;

-- name: stats_finished
SELECT
    (SELECT COUNT(*) FROM jobs WHERE state = 'succeeded' AND finished_at >= :since) AS completed,
    (SELECT COUNT(*) FROM jobs WHERE state = 'failed' AND finished_at >= :since) AS failed,
    (SELECT AVG(extract(epoch FROM finished_at - started_at)) FROM jobs
     WHERE state = 'succeeded' AND finished_at >= :since) AS avg_processing_time,
    (SELECT COUNT(*) FROM job_events WHERE at >= :since AND kind = 'claimed') AS claims;

-- name: stats_errors
SELECT COALESCE(detail ->> 'stage', 'unknown') AS stage, COUNT(*) AS n
FROM job_events WHERE at >= :since AND kind IN ('retried', 'failed')  -- one per failed attempt
GROUP BY 1;
