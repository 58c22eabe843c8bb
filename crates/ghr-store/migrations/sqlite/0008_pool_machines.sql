-- Warm-pool machines: tenant-neutral runner machines, from launch to retirement. The agent's bootstrap secret is
-- kept only as its SHA-256. A machine is bound to at most one runner, ever.
CREATE TABLE pool_machines (
    id            TEXT    PRIMARY KEY NOT NULL,
    tier          TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('starting', 'ready', 'bound', 'delivered', 'retired')),
    instance_id   TEXT,
    secret_hash   TEXT    NOT NULL,
    runner_name   TEXT,
    created_at    INTEGER NOT NULL,
    ready_at      INTEGER,
    bound_at      INTEGER,
    delivered_at  INTEGER,
    retired_at    INTEGER,
    retire_reason TEXT
) STRICT, WITHOUT ROWID;

-- The claim: the longest-ready machine of a tier.
CREATE INDEX pool_machines_claim ON pool_machines (tier, state, ready_at, id);
-- Listing: machines not retired, and retired ones by retirement time (usage reports, pruning).
CREATE INDEX pool_machines_retired ON pool_machines (state, retired_at);
CREATE UNIQUE INDEX pool_machines_runner ON pool_machines (runner_name) WHERE runner_name IS NOT NULL;
