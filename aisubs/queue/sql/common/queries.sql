-- Named queries both dialects run as written (`-- name: x` starts a query). Parameters are
-- written :name; the PostgreSQL loader turns them into %(name)s. Queries that really differ
-- between the dialects live in sql/<dialect>/queries.sql under the same kind of name.
-- Portable SQL only here: CAST(... AS TEXT / DOUBLE PRECISION) instead of ::casts, row
-- values, no FOR UPDATE, no JSON functions.

-- ============================================================== jobs
-- name: get_job
SELECT * FROM jobs WHERE id = :id;

-- name: get_by_idempotency
SELECT * FROM jobs WHERE owner = :owner AND idempotency_key = :idempotency_key;

-- name: count_queued
SELECT
    (SELECT COUNT(*) FROM jobs WHERE owner = :owner AND state = 'queued') AS owner_queued,
    (SELECT COUNT(*) FROM jobs WHERE state = 'queued') AS total_queued;

-- name: insert_job
-- The new job's fair_tag (aisubs.queue.claiming): the priority's virtual time, or one past
-- the owner's last waiting or running tag there, whichever is later.
-- One MAX per state, not state IN (...): each is a single lookup at the end of jobs_owner_state.
INSERT INTO jobs (id, owner, source, options, priority, state, attempts, max_attempts,
                  not_before, audio_duration_s, created_at, updated_at, idempotency_key,
                  request_hash, fair_tag)
VALUES (:id, :owner, :source, :options, :priority, 'queued', 0, :max_attempts,
        :now, :audio_duration_s, :now, :now, :idempotency_key, :request_hash,
        (SELECT COALESCE(MAX(t), 0) FROM (
            SELECT vtime AS t FROM fair_clock WHERE priority = :priority
            UNION ALL
            SELECT MAX(fair_tag) + 1 FROM jobs
            WHERE owner = :owner AND state = 'queued' AND priority = :priority
            UNION ALL
            SELECT MAX(fair_tag) + 1 FROM jobs
            WHERE owner = :owner AND state = 'running' AND priority = :priority) AS tags))
RETURNING *;

-- name: insert_event
INSERT INTO job_events (job_id, at, kind, attempt, worker_instance, detail)
SELECT id, :now, :kind, attempts, COALESCE(CAST(:worker_instance AS TEXT), worker_instance),
       :detail
FROM jobs WHERE id = :job_id;

-- name: insert_fenced_event
-- An event written by the worker holding the lease: nothing is written for a stale lease.
INSERT INTO job_events (job_id, at, kind, attempt, worker_instance, detail)
SELECT id, :now, :kind, attempts, worker_instance, :detail
FROM jobs WHERE id = :job_id AND state = 'running' AND lease_token = :lease_token;

-- name: claim_candidates
-- Claimable jobs in claim order, read lazily (one statement, one snapshot): owners at
-- their running cap and retries still waiting are left out here; owners reaching the cap
-- within the batch are skipped by the caller (aisubs.queue.claiming).
SELECT j.id, j.owner, j.priority, j.fair_tag, COALESCE(o.running, 0) AS owner_running
FROM jobs AS j LEFT JOIN owner_load AS o ON o.owner = j.owner
WHERE j.state = 'queued' AND j.not_before <= :now AND COALESCE(o.running, 0) < :max_running
ORDER BY j.priority DESC, j.fair_tag, j.seq;

-- name: heartbeat
UPDATE jobs SET lease_expires_at = :lease_expires_at, updated_at = :now,
                progress_stage = COALESCE(CAST(:stage AS TEXT), progress_stage),
                progress_fraction = COALESCE(CAST(:fraction AS DOUBLE PRECISION),
                                             progress_fraction)
WHERE id = :id AND state = 'running' AND lease_token = :lease_token
RETURNING *;

-- name: set_progress
UPDATE jobs SET progress_stage = :stage, progress_fraction = :fraction, updated_at = :now
WHERE id = :id AND state = 'running' AND lease_token = :lease_token;

-- name: complete_job
UPDATE jobs SET state = 'succeeded', lease_token = NULL, lease_expires_at = NULL,
                finished_at = :now, updated_at = :now, result = :result,
                compute_seconds = :compute_seconds,
                audio_duration_s = COALESCE(CAST(:audio_duration_s AS DOUBLE PRECISION),
                                            audio_duration_s),
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

-- name: cancel_job
UPDATE jobs SET state = 'cancelled', lease_token = NULL, lease_expires_at = NULL,
                finished_at = :now, updated_at = :now
WHERE id = :id AND state = :expected_state
RETURNING *;

-- name: delete_events
DELETE FROM job_events WHERE job_id = :id;

-- name: delete_job
DELETE FROM jobs WHERE id = :id;

-- name: list_events
SELECT * FROM job_events WHERE job_id = :job_id ORDER BY id;

-- ============================================================== position and ETA
-- name: position_ahead
-- Queued jobs ahead of one job by the claim order (priority DESC, fair_tag, seq), split so
-- that each part is an index range count: all jobs ahead (higher priority, then same
-- priority and earlier), and of those the ones that cannot be claimed now: owners at their
-- running cap, and (of other owners) retries waiting for their not_before. The unary plus
-- keeps the planner on the (small) partial index of waiting retries for that last part.
SELECT 'ahead' AS part, COUNT(*) AS n, COUNT(audio_duration_s) AS known,
       COALESCE(SUM(audio_duration_s), 0.0) AS audio
FROM jobs WHERE state = 'queued' AND priority > :priority
UNION ALL
SELECT 'ahead', COUNT(*), COUNT(audio_duration_s), COALESCE(SUM(audio_duration_s), 0.0)
FROM jobs WHERE state = 'queued' AND priority = :priority
  AND (fair_tag, seq) < (:fair_tag, :seq)
UNION ALL
SELECT 'capped', COUNT(*), COUNT(j.audio_duration_s), COALESCE(SUM(j.audio_duration_s), 0.0)
FROM owner_load AS o CROSS JOIN jobs AS j
WHERE o.running >= :max_running AND j.owner = o.owner AND j.state = 'queued'
  AND (j.priority > :priority OR (j.priority = :priority
                                  AND (j.fair_tag, j.seq) < (:fair_tag, :seq)))
UNION ALL
SELECT 'held', COUNT(*), COUNT(j.audio_duration_s), COALESCE(SUM(j.audio_duration_s), 0.0)
FROM jobs AS j
WHERE j.state = 'queued' AND j.not_before > :now
  AND (+j.priority > :priority OR (+j.priority = :priority
                                   AND (+j.fair_tag, +j.seq) < (:fair_tag, :seq)))
  AND NOT EXISTS (SELECT 1 FROM owner_load AS o
                  WHERE o.owner = j.owner AND o.running >= :max_running);

-- name: position_blocked_totals
-- For a job that cannot be claimed now: every claimable job goes first.
SELECT 'queued' AS part, COUNT(*) AS n, COUNT(audio_duration_s) AS known,
       COALESCE(SUM(audio_duration_s), 0.0) AS audio
FROM jobs WHERE state = 'queued'
UNION ALL
SELECT 'capped', COUNT(*), COUNT(j.audio_duration_s), COALESCE(SUM(j.audio_duration_s), 0.0)
FROM owner_load AS o CROSS JOIN jobs AS j
WHERE o.running >= :max_running AND j.owner = o.owner AND j.state = 'queued'
UNION ALL
SELECT 'held', COUNT(*), COUNT(j.audio_duration_s), COALESCE(SUM(j.audio_duration_s), 0.0)
FROM jobs AS j
WHERE j.state = 'queued' AND j.not_before > :now
  AND NOT EXISTS (SELECT 1 FROM owner_load AS o
                  WHERE o.owner = j.owner AND o.running >= :max_running);

-- name: owner_running
SELECT running FROM owner_load WHERE owner = :owner;

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
    ORDER BY finished_at DESC LIMIT :limit) AS t;

-- ============================================================== operators
-- name: stats_depth
SELECT priority, COUNT(*) AS n FROM jobs WHERE state = 'queued' GROUP BY priority;

-- name: stats_running
SELECT (SELECT COUNT(*) FROM jobs WHERE state = 'running') AS running,
       (SELECT MIN(created_at) FROM jobs WHERE state = 'queued') AS oldest_created_at,
       (SELECT MIN(lease_expires_at) FROM jobs WHERE state = 'running') AS earliest_lease_expiry;

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

-- ============================================================== API keys
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
