-- Initial schema of ghr's SQLite store.
--
-- Conventions: timestamps are INTEGER milliseconds since the Unix epoch (UTC); enums are stored as
-- their stable snake_case strings (an unknown string read back is reported as corrupt data);
-- GitHub ids are INTEGER. Tables are STRICT so a wrongly typed value is refused at write time.

-- One tenant per GitHub App installation.
CREATE TABLE tenants (
    installation_id   INTEGER PRIMARY KEY NOT NULL,
    org_name          TEXT    NOT NULL,
    -- Lower-cased login: GitHub logins are case-insensitive.
    org_name_lower    TEXT    NOT NULL,
    org_type          TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    tier              TEXT    NOT NULL,
    max_runners       INTEGER NOT NULL CHECK (max_runners >= 0),
    github_account_id INTEGER,
    sender_login      TEXT,
    sender_id         INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
) STRICT;

CREATE INDEX tenants_by_org ON tenants (org_name_lower);
-- (status, installation_id) also serves "list by status, ordered by installation id" without a sort.
CREATE INDEX tenants_by_status ON tenants (status, installation_id);

-- Webhook deliveries, recorded before they are acted on (deduplication on the delivery GUID).
CREATE TABLE webhook_deliveries (
    delivery_id     TEXT    PRIMARY KEY NOT NULL,
    event           TEXT    NOT NULL,
    action          TEXT,
    installation_id INTEGER,
    received_at     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (received_at);

-- Workflow jobs ghr has heard of. No foreign key to tenants: jobs of unknown installations are
-- recorded too (they wait with `unknown_tenant`).
CREATE TABLE jobs (
    job_id          INTEGER PRIMARY KEY NOT NULL,
    installation_id INTEGER NOT NULL,
    repository      TEXT    NOT NULL,
    -- JSON array of the job's runs-on labels.
    labels          TEXT    NOT NULL,
    tier            TEXT,
    status          TEXT    NOT NULL,
    conclusion      TEXT,
    runner_name     TEXT,
    wait_reason     TEXT,
    received_at     INTEGER NOT NULL,
    queued_at       INTEGER,
    started_at      INTEGER,
    completed_at    INTEGER,
    updated_at      INTEGER NOT NULL
) STRICT;

-- Partial indexes over the (few) queued jobs: the dispatcher's FIFO and the demand count of a reservation.
CREATE INDEX jobs_wanting_runner ON jobs (received_at, job_id) WHERE status = 'queued' AND tier IS NOT NULL;
CREATE INDEX jobs_queued_demand ON jobs (installation_id, tier, repository) WHERE status = 'queued';
-- Newest-first listings (the job id is the rowid, so it is part of every index entry).
CREATE INDEX jobs_by_installation ON jobs (installation_id, received_at);
CREATE INDEX jobs_by_time ON jobs (received_at);

-- Job timelines ("why is my job still waiting?").
CREATE TABLE job_events (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    at     INTEGER NOT NULL,
    kind   TEXT    NOT NULL,
    detail TEXT    NOT NULL
) STRICT;

CREATE INDEX job_events_by_job ON job_events (job_id, at, id);

-- Runner records: one per reserved slot. `seq` never repeats (AUTOINCREMENT), so names derived
-- from it are unique for the life of the database.
CREATE TABLE runners (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT    NOT NULL UNIQUE,
    installation_id  INTEGER NOT NULL REFERENCES tenants (installation_id),
    tier             TEXT    NOT NULL,
    tenant_tier      TEXT    NOT NULL,
    scope_repo       TEXT,
    state            TEXT    NOT NULL,
    instance_id      TEXT,
    github_runner_id INTEGER,
    intended_job     INTEGER,
    job_id           INTEGER,
    created_at       INTEGER NOT NULL,
    launched_at      INTEGER,
    registered_at    INTEGER,
    job_started_at   INTEGER,
    finished_at      INTEGER,
    terminated_at    INTEGER,
    last_error       TEXT,
    updated_at       INTEGER NOT NULL
) STRICT;

CREATE INDEX runners_by_installation_state ON runners (installation_id, state);
CREATE INDEX runners_by_state ON runners (state);
-- Usage reports: runners still live (NULL) or terminated after the start of the period.
CREATE INDEX runners_by_terminated ON runners (terminated_at);
