-- Warm-pool machines: tenant-neutral runner machines, from launch to retirement (mirrors SQLite's 0008). The
-- agent's bootstrap secret is kept only as its SHA-256. A machine is bound to at most one runner, ever.
CREATE TABLE pool_machines (
    id            TEXT    PRIMARY KEY,
    tier          TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('starting', 'ready', 'bound', 'delivered', 'retired')),
    instance_id   TEXT,
    secret_hash   TEXT    NOT NULL,
    runner_name   TEXT,
    created_at    BIGINT  NOT NULL,
    ready_at      BIGINT,
    bound_at      BIGINT,
    delivered_at  BIGINT,
    retired_at    BIGINT,
    retire_reason TEXT
);

-- The claim: the longest-ready machine of a tier.
CREATE INDEX pool_machines_claim ON pool_machines (tier, ready_at, id) WHERE state = 'ready';
-- Listing: machines not retired, and retired ones by retirement time (usage reports, pruning).
CREATE INDEX pool_machines_retired ON pool_machines (retired_at) WHERE state = 'retired';
CREATE UNIQUE INDEX pool_machines_runner ON pool_machines (runner_name) WHERE runner_name IS NOT NULL;
