-- Named queries of the PostgreSQL job store (`-- name: x` starts a query). Parameters use
-- %(name)s. Same names and parameters as sql/sqlite/queries.sql.

-- name: get_job
SELECT * FROM jobs WHERE id = %(id)s;

-- name: get_job_for_update
SELECT * FROM jobs WHERE id = %(id)s FOR UPDATE;

-- name: get_by_idempotency
SELECT * FROM jobs WHERE owner = %(owner)s AND idempotency_key = %(idempotency_key)s;

-- name: count_queued
SELECT
    (SELECT COUNT(*) FROM jobs WHERE owner = %(owner)s AND state = 'queued') AS owner_queued,
    (SELECT COUNT(*) FROM jobs WHERE state = 'queued') AS total_queued;

-- name: insert_job
INSERT INTO jobs (id, owner, source, options, priority, state, attempts, max_attempts,
                  not_before, audio_duration_s, created_at, updated_at, idempotency_key,
                  request_hash)
VALUES (%(id)s, %(owner)s, %(source)s, %(options)s, %(priority)s, 'queued', 0, %(max_attempts)s,
        %(now)s, %(audio_duration_s)s, %(now)s, %(now)s, %(idempotency_key)s, %(request_hash)s)
RETURNING *;

-- name: insert_event
INSERT INTO job_events (job_id, at, kind, attempt, worker_instance, detail)
SELECT id, %(now)s, %(kind)s, attempts, COALESCE(%(worker_instance)s::text, worker_instance),
       %(detail)s
FROM jobs WHERE id = %(job_id)s;

-- name: claim_candidates
-- The ORDER KEY (priority DESC, owner_running, created_at, seq) over claimable jobs; the
-- store re-ranks these rows as the batch takes jobs (see SqlJobStore.claim).
SELECT id, owner, owner_running, priority, created_at, seq FROM queued_in_order
WHERE not_before <= %(now)s AND owner_running < %(max_running)s
ORDER BY priority DESC, owner_running, created_at, seq
LIMIT %(limit)s OFFSET %(offset)s;

-- name: claim_jobs
-- The tokens parameter is a JSON object {job id: fresh lease token}. Rows another transaction holds
-- (a cancel, a delete) are skipped, never waited for.
WITH c AS (SELECT key::uuid AS id, value AS token FROM jsonb_each_text(%(tokens)s)),
     locked AS (SELECT id FROM jobs WHERE id IN (SELECT id FROM c) AND state = 'queued'
                FOR UPDATE SKIP LOCKED)
UPDATE jobs AS j SET state = 'running', lease_token = c.token,
                     lease_expires_at = %(lease_expires_at)s,
                     worker_instance = %(worker_instance)s,
                     attempts = j.attempts + 1, started_at = %(now)s, updated_at = %(now)s,
                     progress_stage = NULL, progress_fraction = NULL
FROM locked, c
WHERE j.id = locked.id AND c.id = j.id
RETURNING j.*;

-- name: insert_claim_events
INSERT INTO job_events (job_id, at, kind, attempt, worker_instance, detail)
SELECT id, %(now)s, 'claimed', attempts, worker_instance, '{}'::jsonb FROM jobs
WHERE (id, lease_token) IN (SELECT key::uuid, value FROM jsonb_each_text(%(tokens)s));

-- name: heartbeat
UPDATE jobs SET lease_expires_at = %(lease_expires_at)s, updated_at = %(now)s,
                progress_stage = COALESCE(%(stage)s::text, progress_stage),
                progress_fraction = COALESCE(%(fraction)s::float8, progress_fraction)
WHERE id = %(id)s AND state = 'running' AND lease_token = %(lease_token)s
RETURNING *;

-- name: set_progress
UPDATE jobs SET progress_stage = %(stage)s, progress_fraction = %(fraction)s, updated_at = %(now)s
WHERE id = %(id)s AND state = 'running' AND lease_token = %(lease_token)s;

-- name: complete_job
UPDATE jobs SET state = 'succeeded', lease_token = NULL, lease_expires_at = NULL,
                finished_at = %(now)s, updated_at = %(now)s, result = %(result)s,
                compute_seconds = %(compute_seconds)s,
                audio_duration_s = COALESCE(%(audio_duration_s)s::float8, audio_duration_s),
                progress_stage = 'done', progress_fraction = 1.0,
                error_code = NULL, error_message = NULL, error_retryable = NULL,
                error_stage = NULL
WHERE id = %(id)s AND state = 'running' AND lease_token = %(lease_token)s
RETURNING *;

-- name: get_running
SELECT * FROM jobs WHERE id = %(id)s AND state = 'running' AND lease_token = %(lease_token)s;

-- name: retry_job
UPDATE jobs SET state = 'queued', lease_token = NULL, lease_expires_at = NULL,
                not_before = %(not_before)s, updated_at = %(now)s,
                error_code = %(error_code)s, error_message = %(error_message)s,
                error_retryable = %(error_retryable)s, error_stage = %(error_stage)s
WHERE id = %(id)s AND state = 'running' AND lease_token = %(lease_token)s
RETURNING *;

-- name: fail_job
UPDATE jobs SET state = 'failed', lease_token = NULL, lease_expires_at = NULL,
                finished_at = %(now)s, updated_at = %(now)s,
                error_code = %(error_code)s, error_message = %(error_message)s,
                error_retryable = %(error_retryable)s, error_stage = %(error_stage)s
WHERE id = %(id)s AND state = 'running' AND lease_token = %(lease_token)s
RETURNING *;

-- name: expired_leases
SELECT * FROM jobs WHERE state = 'running' AND lease_expires_at < %(now)s
ORDER BY lease_expires_at LIMIT %(limit)s
FOR UPDATE SKIP LOCKED;

-- name: cancel_job
UPDATE jobs SET state = 'cancelled', lease_token = NULL, lease_expires_at = NULL,
                finished_at = %(now)s, updated_at = %(now)s
WHERE id = %(id)s AND state = %(expected_state)s::job_state
RETURNING *;

-- name: delete_events
DELETE FROM job_events WHERE job_id = %(id)s;

-- name: delete_job
DELETE FROM jobs WHERE id = %(id)s;

-- name: list_jobs
SELECT * FROM jobs
WHERE owner = %(owner)s AND state = ANY(%(states)s::job_state[]) AND seq < %(before_seq)s
ORDER BY seq DESC LIMIT %(limit)s;

-- name: list_events
SELECT * FROM job_events WHERE job_id = %(job_id)s ORDER BY id;

-- name: position
-- Jobs ahead of the given job by the ORDER KEY (priority DESC, owner_running, created_at, seq),
-- i.e. exactly the rows claim_candidates would return before it, ignoring not_before and the
-- running cap. Written as index range counts instead of one scan of the whole queue:
--   higher priority  +  same priority and earlier
--   - earlier ones whose owner has MORE running jobs (they sort after this job)
--   + later ones whose owner has FEWER running jobs (they sort before it; only when the
--     job's owner has running jobs: all later ones, minus those of owners with as many).
-- Only owners with running jobs (owner_load) need a per-owner look-up. CROSS JOIN fixes the
-- join order for SQLite (its planner may otherwise scan all queued jobs first).
WITH me AS (SELECT priority, owner_running AS r, created_at, seq
            FROM queued_in_order WHERE id = %(id)s)
SELECT COALESCE(SUM(sign * n), 0) AS jobs_ahead,
       COALESCE(SUM(sign * audio), 0.0) AS audio_ahead_known,
       COALESCE(SUM(sign * (n - known)), 0) AS audio_ahead_unknown
FROM (
    SELECT 1 AS sign, COUNT(*) AS n, COUNT(j.audio_duration_s) AS known,
           COALESCE(SUM(j.audio_duration_s), 0.0) AS audio
    FROM me CROSS JOIN jobs AS j
    WHERE j.state = 'queued' AND j.priority > me.priority
    UNION ALL
    SELECT 1, COUNT(*), COUNT(j.audio_duration_s), COALESCE(SUM(j.audio_duration_s), 0.0)
    FROM me CROSS JOIN jobs AS j
    WHERE j.state = 'queued' AND j.priority = me.priority
      AND (j.created_at, j.seq) < (me.created_at, me.seq)
    UNION ALL
    SELECT -1, COUNT(*), COUNT(j.audio_duration_s), COALESCE(SUM(j.audio_duration_s), 0.0)
    FROM me CROSS JOIN owner_load AS o CROSS JOIN jobs AS j
    WHERE o.running > me.r AND j.owner = o.owner
      AND j.state = 'queued' AND j.priority = me.priority
      AND (j.created_at, j.seq) < (me.created_at, me.seq)
    UNION ALL
    SELECT 1, COUNT(*), COUNT(j.audio_duration_s), COALESCE(SUM(j.audio_duration_s), 0.0)
    FROM me CROSS JOIN jobs AS j
    WHERE me.r > 0 AND j.state = 'queued' AND j.priority = me.priority
      AND (j.created_at, j.seq) > (me.created_at, me.seq)
    UNION ALL
    SELECT -1, COUNT(*), COUNT(j.audio_duration_s), COALESCE(SUM(j.audio_duration_s), 0.0)
    FROM me CROSS JOIN owner_load AS o CROSS JOIN jobs AS j
    WHERE me.r > 0 AND o.running >= me.r AND j.owner = o.owner
      AND j.state = 'queued' AND j.priority = me.priority
      AND (j.created_at, j.seq) > (me.created_at, me.seq)
) AS parts;

-- name: running_remaining
SELECT COALESCE(SUM(audio_duration_s * (1.0 - COALESCE(progress_fraction, 0.0))), 0.0)
           AS audio_remaining_known,
       COUNT(*) - COUNT(audio_duration_s) AS unknown
FROM jobs WHERE state = 'running';

-- name: typical_audio
SELECT AVG(audio_duration_s) AS avg_audio FROM (
    SELECT audio_duration_s FROM jobs
    WHERE state = 'succeeded' AND audio_duration_s IS NOT NULL
    ORDER BY finished_at DESC LIMIT 100) AS t;

-- name: speed
SELECT SUM(compute_seconds) AS compute, SUM(audio_duration_s) AS audio FROM (
    SELECT compute_seconds, audio_duration_s FROM jobs
    WHERE state = 'succeeded' AND compute_seconds IS NOT NULL AND audio_duration_s > 0
    ORDER BY finished_at DESC LIMIT %(limit)s) AS t;

-- name: stats_depth
SELECT priority, COUNT(*) AS n FROM jobs WHERE state = 'queued' GROUP BY priority;

-- name: stats_running
SELECT (SELECT COUNT(*) FROM jobs WHERE state = 'running') AS running,
       (SELECT MIN(created_at) FROM jobs WHERE state = 'queued') AS oldest_created_at,
       (SELECT MIN(lease_expires_at) FROM jobs WHERE state = 'running') AS earliest_lease_expiry;

-- name: stats_finished
SELECT
    (SELECT COUNT(*) FROM jobs WHERE state = 'succeeded' AND finished_at >= %(since)s) AS completed,
    (SELECT COUNT(*) FROM jobs WHERE state = 'failed' AND finished_at >= %(since)s) AS failed,
    (SELECT AVG(extract(epoch FROM finished_at - started_at)) FROM jobs
     WHERE state = 'succeeded' AND finished_at >= %(since)s) AS avg_processing_time,
    (SELECT COUNT(*) FROM job_events WHERE at >= %(since)s AND kind = 'claimed') AS claims;

-- name: stats_errors
SELECT COALESCE(detail ->> 'stage', 'unknown') AS stage, COUNT(*) AS n
FROM job_events WHERE at >= %(since)s AND kind IN ('retried', 'failed')  -- one of these per failed attempt
GROUP BY 1;

-- name: insert_metric
INSERT INTO queue_metrics (id, timestamp, queue_depth, active_workers, avg_processing_time,
                           jobs_completed_hour)
VALUES (%(id)s, %(timestamp)s, %(queue_depth)s, %(active_workers)s, %(avg_processing_time)s,
        %(jobs_completed_hour)s)
RETURNING *;

-- name: list_metrics
SELECT * FROM queue_metrics WHERE timestamp >= %(since)s ORDER BY timestamp, id;

-- name: prune_metrics
DELETE FROM queue_metrics WHERE timestamp < %(before)s;

-- name: insert_api_key
INSERT INTO api_keys (key_id, owner, key_hash, max_priority, created_at)
VALUES (%(key_id)s, %(owner)s, %(key_hash)s, %(max_priority)s, %(now)s);

-- name: api_key_by_hash
SELECT * FROM api_keys WHERE key_hash = %(key_hash)s;

-- name: get_api_key
SELECT * FROM api_keys WHERE key_id = %(key_id)s;

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, %(now)s) WHERE key_id = %(key_id)s;

-- name: list_api_keys
SELECT * FROM api_keys WHERE owner = %(owner)s ORDER BY created_at, key_id;
