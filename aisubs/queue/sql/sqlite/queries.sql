-- Named queries that differ on SQLite (the rest: sql/common/queries.sql). Parameters use
-- :name; times are INTEGER epoch microseconds; JSON is TEXT read with json_each.
-- sql/postgres/queries.sql defines the same names.

-- name: get_job_for_update
-- BEGIN IMMEDIATE already holds the write lock.
SELECT * FROM jobs WHERE id = :id;

-- name: claim_jobs
-- :tokens is a JSON object {job id: fresh lease token}.
UPDATE jobs SET state = 'running',
                lease_token = (SELECT value FROM json_each(:tokens) WHERE key = jobs.id),
                lease_expires_at = :lease_expires_at, worker_instance = :worker_instance,
                attempts = attempts + 1, started_at = :now, updated_at = :now,
                progress_stage = NULL, progress_fraction = NULL
WHERE id IN (SELECT key FROM json_each(:tokens)) AND state = 'queued'
RETURNING *;

-- name: insert_claim_events
INSERT INTO job_events (job_id, at, kind, attempt, worker_instance, detail)
SELECT j.id, :now, 'claimed', j.attempts, j.worker_instance, '{}'
FROM json_each(:tokens) AS t JOIN jobs AS j ON j.id = t.key AND j.lease_token = t.value;

-- name: advance_fair_clock
INSERT INTO fair_clock (priority, vtime) VALUES (:priority, :vtime)
ON CONFLICT (priority) DO UPDATE SET vtime = max(vtime, excluded.vtime);

-- name: expired_leases
SELECT * FROM jobs WHERE state = 'running' AND lease_expires_at < :now
ORDER BY lease_expires_at LIMIT :limit;

-- name: list_jobs
SELECT * FROM jobs
WHERE owner = :owner AND state IN (SELECT value FROM json_each(:states)) AND seq < :before_seq
ORDER BY seq DESC LIMIT :limit;

-- name: stats_finished
SELECT
    (SELECT COUNT(*) FROM jobs WHERE state = 'succeeded' AND finished_at >= :since) AS completed,
    (SELECT COUNT(*) FROM jobs WHERE state = 'failed' AND finished_at >= :since) AS failed,
    (SELECT AVG(finished_at - started_at) / 1e6 FROM jobs
     WHERE state = 'succeeded' AND finished_at >= :since) AS avg_processing_time,
    (SELECT COUNT(*) FROM job_events WHERE at >= :since AND kind = 'claimed') AS claims;

-- name: stats_errors
SELECT COALESCE(json_extract(detail, '$.stage'), 'unknown') AS stage, COUNT(*) AS n
FROM job_events WHERE at >= :since AND kind IN ('retried', 'failed')  -- one per failed attempt
GROUP BY 1;
