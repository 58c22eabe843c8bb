-- Schema of ghr's PostgreSQL store, for several `ghr serve` replicas sharing one database.
--
-- It mirrors the SQLite schema column for column (so `ghr store copy` moves rows as they are):
-- timestamps are BIGINT milliseconds since the Unix epoch (UTC); enums are their stable snake_case
-- strings (an unknown string read back is reported as corrupt data); GitHub ids are BIGINT.
--
-- Concurrency: every read-modify-write runs in a READ COMMITTED transaction that first locks the rows its
-- decision depends on (`SELECT ... FOR UPDATE`): a job row for an observation, a tenant row for a
-- reservation, plus the one `reserve_lock` row when a deployment-wide cap is configured. A transaction the
-- server aborts (deadlock, serialization failure) is retried whole by the store.

CREATE TABLE tenants (
    installation_id   BIGINT  PRIMARY KEY,
    org_name          TEXT    NOT NULL,
    -- Lower-cased login: GitHub logins are case-insensitive.
    org_name_lower    TEXT    NOT NULL,
    org_type          TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    tier              TEXT    NOT NULL,
    max_runners       BIGINT  NOT NULL CHECK (max_runners >= 0),
    github_account_id BIGINT,
    sender_login      TEXT,
    sender_id         BIGINT,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL
);

CREATE INDEX tenants_by_org ON tenants (org_name_lower);
CREATE INDEX tenants_by_status ON tenants (status, installation_id);
-- Org names are unique (case-insensitively) among tenants that are not deleted.
CREATE UNIQUE INDEX tenants_live_org_unique ON tenants (org_name_lower) WHERE status <> 'deleted';

CREATE TABLE webhook_deliveries (
    delivery_id     TEXT    PRIMARY KEY,
    event           TEXT    NOT NULL,
    action          TEXT,
    installation_id BIGINT,
    received_at     BIGINT  NOT NULL
);

CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (received_at);

-- Workflow jobs. No foreign key to tenants: jobs of unknown installations are recorded too.
CREATE TABLE jobs (
    job_id          BIGINT  PRIMARY KEY,
    installation_id BIGINT  NOT NULL,
    repository      TEXT    NOT NULL,
    -- JSON array of the job's runs-on labels (as text, like SQLite's, so rows copy unchanged).
    labels          TEXT    NOT NULL,
    tier            TEXT,
    status          TEXT    NOT NULL,
    conclusion      TEXT,
    runner_name     TEXT,
    wait_reason     TEXT,
    received_at     BIGINT  NOT NULL,
    queued_at       BIGINT,
    started_at      BIGINT,
    completed_at    BIGINT,
    updated_at      BIGINT  NOT NULL
);

CREATE INDEX jobs_wanting_runner ON jobs (received_at, job_id) WHERE status = 'queued' AND tier IS NOT NULL;
CREATE INDEX jobs_queued_demand ON jobs (installation_id, tier, repository) WHERE status = 'queued';
CREATE INDEX jobs_by_installation ON jobs (installation_id, received_at, job_id);
CREATE INDEX jobs_by_time ON jobs (received_at, job_id);
CREATE INDEX jobs_by_status ON jobs (status, received_at, job_id);
CREATE INDEX jobs_by_installation_status ON jobs (installation_id, status, received_at, job_id);
CREATE INDEX jobs_by_wait_reason ON jobs (wait_reason, received_at, job_id) WHERE wait_reason IS NOT NULL;
CREATE INDEX jobs_by_installation_wait_reason ON jobs (installation_id, wait_reason, received_at, job_id)
    WHERE wait_reason IS NOT NULL;
CREATE INDEX jobs_completed_by_update ON jobs (updated_at) WHERE status = 'completed';
CREATE INDEX jobs_queued_by_tenant ON jobs (installation_id, received_at, job_id)
    WHERE status = 'queued' AND tier IS NOT NULL;
CREATE INDEX jobs_queued_by_tenant_reason ON jobs (installation_id, wait_reason, received_at, job_id)
    WHERE status = 'queued' AND tier IS NOT NULL;
CREATE INDEX jobs_in_progress ON jobs (started_at) WHERE status = 'in_progress';

CREATE TABLE job_events (
    id     BIGSERIAL PRIMARY KEY,
    job_id BIGINT  NOT NULL,
    at     BIGINT  NOT NULL,
    kind   TEXT    NOT NULL,
    detail TEXT    NOT NULL
);

CREATE INDEX job_events_by_job ON job_events (job_id, at, id);

-- Runner records: one per reserved slot. `seq` never repeats, so names derived from it are unique for the
-- life of the database.
CREATE TABLE runners (
    seq              BIGSERIAL PRIMARY KEY,
    name             TEXT    NOT NULL UNIQUE,
    installation_id  BIGINT  NOT NULL REFERENCES tenants (installation_id),
    tier             TEXT    NOT NULL,
    tenant_tier      TEXT    NOT NULL,
    scope_repo       TEXT,
    state            TEXT    NOT NULL,
    instance_id      TEXT,
    github_runner_id BIGINT,
    intended_job     BIGINT,
    job_id           BIGINT,
    created_at       BIGINT  NOT NULL,
    launched_at      BIGINT,
    registered_at    BIGINT,
    job_started_at   BIGINT,
    finished_at      BIGINT,
    terminated_at    BIGINT,
    last_error       TEXT,
    updated_at       BIGINT  NOT NULL
);

CREATE INDEX runners_by_installation_state ON runners (installation_id, state);
CREATE INDEX runners_by_state ON runners (state);
CREATE INDEX runners_by_terminated ON runners (terminated_at);
CREATE INDEX runners_live_series ON runners (installation_id, tier, state)
    WHERE state IN ('requested', 'launching', 'idle', 'busy', 'finished');

CREATE TABLE checkpoints (
    name       TEXT   PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One row the write check (`Store::check_writable`) updates.
CREATE TABLE store_health (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    probes BIGINT  NOT NULL
);
INSERT INTO store_health (id, probes) VALUES (1, 0);

-- The row every reservation under a deployment-wide cap locks first: it serialises those reservations
-- across replicas, so the cap holds cluster-wide. (Reservations without a cap lock only their tenant.)
CREATE TABLE reserve_lock (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);
INSERT INTO reserve_lock (id) VALUES (1);

-- Leases on singleton work, held by one replica at a time; expiry is judged by the database's clock.
CREATE TABLE leases (
    name        TEXT   PRIMARY KEY,
    holder      TEXT   NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- Counts kept in the same transactions as the rows they count (see the SQLite migration 0005).
CREATE TABLE job_status_counts (
    status TEXT   PRIMARY KEY,
    n      BIGINT NOT NULL
);

CREATE TABLE tenant_status_counts (
    status TEXT   PRIMARY KEY,
    n      BIGINT NOT NULL
);

CREATE FUNCTION ghr_count_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        EXECUTE format('UPDATE %I SET n = n - 1 WHERE status = $1', TG_ARGV[0]) USING OLD.status;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        EXECUTE format(
            'INSERT INTO %I AS c (status, n) VALUES ($1, 1) ON CONFLICT (status) DO UPDATE SET n = c.n + 1',
            TG_ARGV[0]
        ) USING NEW.status;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_count_insert_delete AFTER INSERT OR DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION ghr_count_status('job_status_counts');
CREATE TRIGGER jobs_count_status AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION ghr_count_status('job_status_counts');
CREATE TRIGGER tenants_count_insert_delete AFTER INSERT OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION ghr_count_status('tenant_status_counts');
CREATE TRIGGER tenants_count_status AFTER UPDATE OF status ON tenants
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION ghr_count_status('tenant_status_counts');

-- Wake-ups across replicas. A change that may let a waiting job start (a job queued for a tier, a live
-- runner gone, a tenant's limit, plan or status changed) notifies `ghr_wake_<schema>` when its transaction
-- commits, with `<origin>:<installation id>` as payload; `origin` is the writer's application_name, so a
-- replica skips its own changes (its engine woke itself already). Operators' own SQL updates wake too.
CREATE FUNCTION ghr_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        'ghr_wake_' || current_schema(),
        current_setting('application_name') || ':' || NEW.installation_id
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_wake AFTER INSERT OR UPDATE OF status, tier ON jobs
    FOR EACH ROW WHEN (NEW.status = 'queued' AND NEW.tier IS NOT NULL)
    EXECUTE FUNCTION ghr_wake();
CREATE TRIGGER runners_wake AFTER UPDATE OF state ON runners
    FOR EACH ROW WHEN (
        OLD.state IN ('requested', 'launching', 'idle', 'busy', 'finished')
        AND NEW.state NOT IN ('requested', 'launching', 'idle', 'busy', 'finished')
    )
    EXECUTE FUNCTION ghr_wake();
CREATE TRIGGER tenants_wake_insert AFTER INSERT ON tenants
    FOR EACH ROW EXECUTE FUNCTION ghr_wake();
-- `UPDATE OF` fires whenever a column is named in SET, changed or not: wake only on a real change.
CREATE TRIGGER tenants_wake_update AFTER UPDATE OF status, tier, max_runners ON tenants
    FOR EACH ROW WHEN (
        OLD.status IS DISTINCT FROM NEW.status
        OR OLD.tier IS DISTINCT FROM NEW.tier
        OR OLD.max_runners IS DISTINCT FROM NEW.max_runners
    )
    EXECUTE FUNCTION ghr_wake();
