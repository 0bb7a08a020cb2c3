-- AI-Subs durable job queue (PostgreSQL / Supabase).
-- Applied by the Supabase CLI (`supabase db push`) or by aisubs.queue.postgres_store at start
-- (tracked in aisubs_schema_migrations). Objects are created in the first schema of the
-- search_path. Keep in step with aisubs/queue/sql/sqlite/migrations (same columns, states).

DO $$
BEGIN
    CREATE TYPE job_state AS ENUM ('queued', 'running', 'succeeded', 'failed', 'cancelled');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE TABLE IF NOT EXISTS jobs (
    seq               bigint GENERATED ALWAYS AS IDENTITY UNIQUE,  -- FIFO tie-break
    id                uuid PRIMARY KEY,
    owner             text NOT NULL CHECK (owner <> ''),
    source            text NOT NULL CHECK (source <> ''),
    options           jsonb NOT NULL DEFAULT '{}'::jsonb,
    priority          smallint NOT NULL CHECK (priority BETWEEN 1 AND 10),
    state             job_state NOT NULL DEFAULT 'queued',
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts      integer NOT NULL CHECK (max_attempts >= 1),
    not_before        timestamptz NOT NULL,
    lease_token       text,
    lease_expires_at  timestamptz,
    worker_instance   text,
    progress_stage    text,
    progress_fraction double precision CHECK (progress_fraction BETWEEN 0 AND 1),
    error_code        text,
    error_message     text,
    error_retryable   boolean,
    error_stage       text,
    audio_duration_s  double precision CHECK (audio_duration_s >= 0),
    compute_seconds   double precision CHECK (compute_seconds >= 0),
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    started_at        timestamptz,
    finished_at       timestamptz,
    idempotency_key   text,
    request_hash      text NOT NULL,
    result            jsonb NOT NULL DEFAULT '{}'::jsonb,
    CHECK (attempts <= max_attempts),
    CHECK ((state = 'running') = (lease_token IS NOT NULL))
);

CREATE UNIQUE INDEX IF NOT EXISTS jobs_owner_idempotency ON jobs (owner, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Claim order and position: (priority DESC, created_at, seq) inside a state.
-- audio_duration_s rides along so position() sums the audio ahead from the index alone.
CREATE INDEX IF NOT EXISTS jobs_queue_order ON jobs (state, priority DESC, created_at, seq)
    INCLUDE (audio_duration_s, owner);
CREATE INDEX IF NOT EXISTS jobs_owner_state ON jobs (owner, state, priority, created_at, seq)
    INCLUDE (audio_duration_s);
CREATE INDEX IF NOT EXISTS jobs_owner_seq ON jobs (owner, seq DESC);
CREATE INDEX IF NOT EXISTS jobs_running_lease ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS jobs_state_finished ON jobs (state, finished_at);

-- Running jobs per owner, kept by a trigger on every state change so claim and position
-- join a small table instead of counting running jobs each time.
CREATE TABLE IF NOT EXISTS owner_load (
    owner   text PRIMARY KEY,
    running integer NOT NULL DEFAULT 0 CHECK (running >= 0)
);

CREATE OR REPLACE FUNCTION jobs_track_owner_load() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.state = 'running'
       AND (TG_OP = 'DELETE' OR NEW.state <> 'running') THEN
        UPDATE owner_load SET running = running - 1 WHERE owner = OLD.owner;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.state = 'running'
       AND (TG_OP = 'INSERT' OR OLD.state <> 'running') THEN
        INSERT INTO owner_load (owner, running) VALUES (NEW.owner, 1)
        ON CONFLICT (owner) DO UPDATE SET running = owner_load.running + 1;
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS jobs_owner_load ON jobs;
CREATE TRIGGER jobs_owner_load AFTER INSERT OR DELETE OR UPDATE OF state ON jobs
    FOR EACH ROW EXECUTE FUNCTION jobs_track_owner_load();

-- The claim ORDER KEY's inputs (see aisubs/queue/store.py): every queued job with the number
-- of running jobs of its owner. Claim and position both read this view.
CREATE OR REPLACE VIEW queued_in_order AS
SELECT j.*, COALESCE(o.running, 0) AS owner_running
FROM jobs AS j
LEFT JOIN owner_load AS o ON o.owner = j.owner
WHERE j.state = 'queued';

CREATE TABLE IF NOT EXISTS job_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id          uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at              timestamptz NOT NULL,
    kind            text NOT NULL,
    attempt         integer NOT NULL,
    worker_instance text,
    detail          jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS job_events_job ON job_events (job_id, id);
CREATE INDEX IF NOT EXISTS job_events_at_kind ON job_events (at, kind);

CREATE TABLE IF NOT EXISTS queue_metrics (
    id                  uuid PRIMARY KEY,
    timestamp           timestamptz NOT NULL,
    queue_depth         integer NOT NULL,
    active_workers      integer NOT NULL,
    avg_processing_time double precision,
    jobs_completed_hour integer NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_metrics_timestamp ON queue_metrics (timestamp);

CREATE TABLE IF NOT EXISTS api_keys (
    key_id       text PRIMARY KEY,
    owner        text NOT NULL CHECK (owner <> ''),
    key_hash     text NOT NULL UNIQUE,  -- sha256 hex of the key; the key itself is never stored
    max_priority smallint NOT NULL CHECK (max_priority BETWEEN 1 AND 10),
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX IF NOT EXISTS api_keys_owner ON api_keys (owner, created_at);

-- ---------------------------------------------------------------- Supabase access
-- On Supabase the `auth` schema, auth.uid(), auth.jwt() and the `authenticated` role exist;
-- on a bare PostgreSQL they do not, so create minimal stand-ins (reading the same
-- request.jwt.* settings PostgREST sets) only when missing. Never replace Supabase's own.
DO $$
BEGIN
    CREATE ROLE authenticated NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

CREATE SCHEMA IF NOT EXISTS auth;

DO $$
BEGIN
    IF to_regprocedure('auth.jwt()') IS NULL THEN
        CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS
        $f$ SELECT coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb $f$;
    END IF;
    IF to_regprocedure('auth.uid()') IS NULL THEN
        CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS
        $f$ SELECT CASE WHEN auth.jwt() ->> 'sub' ~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'
                        THEN (auth.jwt() ->> 'sub')::uuid END $f$;
    END IF;
EXCEPTION WHEN duplicate_function OR unique_violation THEN NULL;
END $$;

GRANT USAGE ON SCHEMA auth TO authenticated;

-- A signed-in user may read (only) their own jobs and their history, e.g. through Supabase
-- Realtime; every write goes through the service, which connects as the table owner.
ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE queue_metrics ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE owner_load ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS jobs_select_own ON jobs;
CREATE POLICY jobs_select_own ON jobs FOR SELECT TO authenticated
    USING (owner = coalesce(auth.uid()::text, auth.jwt() ->> 'sub'));

DROP POLICY IF EXISTS job_events_select_own ON job_events;
CREATE POLICY job_events_select_own ON job_events FOR SELECT TO authenticated
    USING (EXISTS (SELECT 1 FROM jobs AS j WHERE j.id = job_events.job_id
                   AND j.owner = coalesce(auth.uid()::text, auth.jwt() ->> 'sub')));

GRANT SELECT ON jobs, job_events TO authenticated;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'supabase_realtime') THEN
        ALTER PUBLICATION supabase_realtime ADD TABLE jobs;
    END IF;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
