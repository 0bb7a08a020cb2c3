-- AI-Subs job queue, SQLite schema version 1 (tracked with PRAGMA user_version).
-- Times are INTEGER microseconds since the Unix epoch (UTC, exact round trip); ids are UUID
-- text; JSON is TEXT.
-- Keep in step with supabase/migrations (same tables, columns, states and indexes).

CREATE TABLE jobs (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order, FIFO tie-break
    id                TEXT    NOT NULL UNIQUE,
    owner             TEXT    NOT NULL CHECK (owner <> ''),
    source            TEXT    NOT NULL CHECK (source <> ''),
    options           TEXT    NOT NULL DEFAULT '{}',
    priority          INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 10),
    state             TEXT    NOT NULL DEFAULT 'queued'
                      CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts          INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts      INTEGER NOT NULL CHECK (max_attempts >= 1),
    not_before        INTEGER NOT NULL,
    lease_token       TEXT,
    lease_expires_at  INTEGER,
    worker_instance   TEXT,
    progress_stage    TEXT,
    progress_fraction REAL CHECK (progress_fraction BETWEEN 0 AND 1),
    error_code        TEXT,
    error_message     TEXT,
    error_retryable   INTEGER,
    error_stage       TEXT,
    audio_duration_s  REAL CHECK (audio_duration_s >= 0),
    compute_seconds   REAL CHECK (compute_seconds >= 0),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    idempotency_key   TEXT,
    request_hash      TEXT    NOT NULL,
    result            TEXT    NOT NULL DEFAULT '{}',
    CHECK (attempts <= max_attempts),
    CHECK ((state = 'running') = (lease_token IS NOT NULL))
);

CREATE UNIQUE INDEX jobs_owner_idempotency ON jobs (owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Claim order and position: (priority DESC, created_at, seq) inside a state.
-- audio_duration_s rides along so position() sums the audio ahead from the index alone.
CREATE INDEX jobs_queue_order ON jobs (state, priority DESC, created_at, seq, audio_duration_s);
CREATE INDEX jobs_owner_state ON jobs (owner, state, priority, created_at, seq, audio_duration_s);
CREATE INDEX jobs_owner_seq ON jobs (owner, seq DESC);
CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_state_finished ON jobs (state, finished_at);

-- Running jobs per owner, kept by triggers on every state change so claim and position
-- join a small table instead of counting running jobs each time.
CREATE TABLE owner_load (
    owner   TEXT    PRIMARY KEY,
    running INTEGER NOT NULL DEFAULT 0 CHECK (running >= 0)
) WITHOUT ROWID;

CREATE TRIGGER jobs_running_insert AFTER INSERT ON jobs WHEN NEW.state = 'running'
BEGIN
    INSERT INTO owner_load (owner, running) VALUES (NEW.owner, 1)
    ON CONFLICT (owner) DO UPDATE SET running = running + 1;
END;

CREATE TRIGGER jobs_running_start AFTER UPDATE OF state ON jobs
WHEN NEW.state = 'running' AND OLD.state <> 'running'
BEGIN
    INSERT INTO owner_load (owner, running) VALUES (NEW.owner, 1)
    ON CONFLICT (owner) DO UPDATE SET running = running + 1;
END;

CREATE TRIGGER jobs_running_stop AFTER UPDATE OF state ON jobs
WHEN OLD.state = 'running' AND NEW.state <> 'running'
BEGIN
    UPDATE owner_load SET running = running - 1 WHERE owner = OLD.owner;
END;

CREATE TRIGGER jobs_running_delete AFTER DELETE ON jobs WHEN OLD.state = 'running'
BEGIN
    UPDATE owner_load SET running = running - 1 WHERE owner = OLD.owner;
END;

-- The claim ORDER KEY's inputs (see aisubs/queue/store.py): every queued job with the number
-- of running jobs of its owner. Claim and position both read this view.
CREATE VIEW queued_in_order AS
SELECT j.*, COALESCE(o.running, 0) AS owner_running
FROM jobs AS j
LEFT JOIN owner_load AS o ON o.owner = j.owner
WHERE j.state = 'queued';

CREATE TABLE job_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at              INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    attempt         INTEGER NOT NULL,
    worker_instance TEXT,
    detail          TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX job_events_job ON job_events (job_id, id);
CREATE INDEX job_events_at_kind ON job_events (at, kind);

CREATE TABLE queue_metrics (
    id                  TEXT    PRIMARY KEY,
    timestamp           INTEGER NOT NULL,
    queue_depth         INTEGER NOT NULL,
    active_workers      INTEGER NOT NULL,
    avg_processing_time REAL,
    jobs_completed_hour INTEGER NOT NULL
);
CREATE INDEX queue_metrics_timestamp ON queue_metrics (timestamp);

CREATE TABLE api_keys (
    key_id       TEXT    PRIMARY KEY,
    owner        TEXT    NOT NULL CHECK (owner <> ''),
    key_hash     TEXT    NOT NULL UNIQUE,  -- sha256 hex of the key; the key itself is never stored
    max_priority INTEGER NOT NULL CHECK (max_priority BETWEEN 1 AND 10),
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX api_keys_owner ON api_keys (owner, created_at);
