-- Named queries of the SQLite job store (`-- name: x` starts a query). Parameters use :name.
-- Times are INTEGER epoch microseconds. Same names and parameters as sql/postgres/queries.sql.

-- name: get_job
SELECT * FROM jobs WHERE id = :id;

-- name: get_job_for_update
SELECT * FROM jobs WHERE id = :id;

-- name: get_by_idempotency
SELECT * FROM jobs WHERE owner = :owner AND idempotency_key = :idempotency_key;

-- name: count_queued
SELECT
    (SELECT COUNT(*) FROM jobs WHERE owner = :owner AND state = 'queued') AS owner_queued,
    (SELECT COUNT(*) FROM jobs WHERE state = 'queued') AS total_queued;

-- name: insert_job
INSERT INTO jobs (id, owner, source, options, priority, state, attempts, max_attempts,
                  not_before, audio_duration_s, created_at, updated_at, idempotency_key,
                  request_hash)
VALUES (:id, :owner, :source, :options, :priority, 'queued', 0, :max_attempts,
        :now, :audio_duration_s, :now, :now, :idempotency_key, :request_hash)
RETURNING *;

-- name: insert_event
INSERT INTO job_events (job_id, at, kind, attempt, worker_instance, detail)
SELECT id, :now, :kind, attempts, COALESCE(:worker_instance, worker_instance), :detail
FROM jobs WHERE id = :job_id;

-- name: claim_candidates
-- The ORDER KEY (priority DESC, owner_running, created_at, seq) over claimable jobs; the
-- store re-ranks these rows as the batch takes jobs (see SqlJobStore.claim).
SELECT id, owner, owner_running, priority, created_at, seq FROM queued_in_order
WHERE not_before <= :now AND owner_running < :max_running
ORDER BY priority DESC, owner_running, created_at, seq
LIMIT :limit OFFSET :offset;

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

-- name: heartbeat
UPDATE jobs SET lease_expires_at = :lease_expires_at, updated_at = :now,
                progress_stage = COALESCE(:stage, progress_stage),
                progress_fraction = COALESCE(:fraction, progress_fraction)
WHERE id = :id AND state = 'running' AND lease_token = :lease_token
RETURNING *;

-- name: set_progress
UPDATE jobs SET progress_stage = :stage, progress_fraction = :fraction, updated_at = :now
WHERE id = :id AND state = 'running' AND lease_token = :lease_token;

-- name: complete_job
UPDATE jobs SET state = 'succeeded', lease_token = NULL, lease_expires_at = NULL,
                finished_at = :now, updated_at = :now, result = :result,
                compute_seconds = :compute_seconds,
                audio_duration_s = COALESCE(:audio_duration_s, audio_duration_s),
                progress_stage = 'done', progress_fraction = 1.0,
                error_code = NULL, error_message = NULL, error_retryable = NULL,
                error_stage = NULL
WHERE id = :id AND state = 'running' AND lease_token = :lease_token
RETURNING *;

-- name: get_running
SELECT * FROM jobs WHERE id = :id AND state = 'running' AND lease_token = :lease_token;

-- name: retry_job
UPDATE jobs SET state = 'queued', lease_token = NULL, lease_expires_at = NULL,
                not_before = :not_before, updated_at = :now,
                error_code = :error_code, error_message = :error_message,
                error_retryable = :error_retryable, error_stage = :error_stage
WHERE id = :id AND state = 'running' AND lease_token = :lease_token
RETURNING *;

-- name: fail_job
UPDATE jobs SET state = 'failed', lease_token = NULL, lease_expires_at = NULL,
                finished_at = :now, updated_at = :now,
                error_code = :error_code, error_message = :error_message,
                error_retryable = :error_retryable, error_stage = :error_stage
WHERE id = :id AND state = 'running' AND lease_token = :lease_token
RETURNING *;

-- name: expired_leases
SELECT * FROM jobs WHERE state = 'running' AND lease_expires_at < :now
ORDER BY lease_expires_at LIMIT :limit;

-- name: cancel_job
UPDATE jobs SET state = 'cancelled', lease_token = NULL, lease_expires_at = NULL,
                finished_at = :now, updated_at = :now
WHERE id = :id AND state = :expected_state
RETURNING *;

-- name: delete_events
DELETE FROM job_events WHERE job_id = :id;

-- name: delete_job
DELETE FROM jobs WHERE id = :id;

-- name: list_jobs
SELECT * FROM jobs
WHERE owner = :owner AND state IN (SELECT value FROM json_each(:states)) AND seq < :before_seq
ORDER BY seq DESC LIMIT :limit;

-- name: list_events
SELECT * FROM job_events WHERE job_id = :job_id ORDER BY id;

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
            FROM queued_in_order WHERE id = :id)
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
    ORDER BY finished_at DESC LIMIT 100);

-- name: speed
SELECT SUM(compute_seconds) AS compute, SUM(audio_duration_s) AS audio FROM (
    SELECT compute_seconds, audio_duration_s FROM jobs
    WHERE state = 'succeeded' AND compute_seconds IS NOT NULL AND audio_duration_s > 0
    ORDER BY finished_at DESC LIMIT :limit);

-- name: stats_depth
SELECT priority, COUNT(*) AS n FROM jobs WHERE state = 'queued' GROUP BY priority;

-- name: stats_running
SELECT (SELECT COUNT(*) FROM jobs WHERE state = 'running') AS running,
       (SELECT MIN(created_at) FROM jobs WHERE state = 'queued') AS oldest_created_at,
       (SELECT MIN(lease_expires_at) FROM jobs WHERE state = 'running') AS earliest_lease_expiry;

-- name: stats_finished
SELECT
    (SELECT COUNT(*) FROM jobs WHERE state = 'succeeded' AND finished_at >= :since) AS completed,
    (SELECT COUNT(*) FROM jobs WHERE state = 'failed' AND finished_at >= :since) AS failed,
    (SELECT AVG(finished_at - started_at) / 1e6 FROM jobs
     WHERE state = 'succeeded' AND finished_at >= :since) AS avg_processing_time,
    (SELECT COUNT(*) FROM job_events WHERE at >= :since AND kind = 'claimed') AS claims;

-- name: stats_errors
SELECT COALESCE(json_extract(detail, '$.stage'), 'unknown') AS stage, COUNT(*) AS n
FROM job_events WHERE at >= :since AND kind IN ('retried', 'failed')  -- one of these per failed attempt
GROUP BY 1;

-- name: insert_metric
INSERT INTO queue_metrics (id, timestamp, queue_depth, active_workers, avg_processing_time,
                           jobs_completed_hour)
VALUES (:id, :timestamp, :queue_depth, :active_workers, :avg_processing_time,
        :jobs_completed_hour)
RETURNING *;

-- name: list_metrics
SELECT * FROM queue_metrics WHERE timestamp >= :since ORDER BY timestamp, id;

-- name: prune_metrics
DELETE FROM queue_metrics WHERE timestamp < :before;

-- name: insert_api_key
INSERT INTO api_keys (key_id, owner, key_hash, max_priority, created_at)
VALUES (:key_id, :owner, :key_hash, :max_priority, :now);

-- name: api_key_by_hash
SELECT * FROM api_keys WHERE key_hash = :key_hash;

-- name: get_api_key
SELECT * FROM api_keys WHERE key_id = :key_id;

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, :now) WHERE key_id = :key_id;

-- name: list_api_keys
SELECT * FROM api_keys WHERE owner = :owner ORDER BY created_at, key_id;
