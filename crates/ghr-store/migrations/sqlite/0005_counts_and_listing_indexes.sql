-- Work in proportion to change, not to table size.
--
-- 1. Counts kept in the same transactions as the rows they count. The gauges read jobs per status and
--    tenants per status every few seconds; a GROUP BY over a million jobs (or a hundred thousand tenants)
--    costs a scan of an index as large as the table each time, while a trigger costs one small UPDATE per
--    insert, status change or delete. The triggers run inside the statement that fires them, so a count
--    commits (or rolls back) with its row: a reader never sees one without the other. Writes to `jobs` and
--    `tenants` must not use REPLACE conflict resolution (`INSERT OR REPLACE`, `REPLACE INTO`): its implicit
--    delete fires no trigger, so the count would drift. Upserts (`ON CONFLICT ... DO UPDATE`) are fine.
-- 2. Indexes that make every job listing (newest first, by tenant, status and/or wait reason, with a limit)
--    a range scan in index order: no full scan, no sort.
-- 3. A partial index over completed jobs by last update: retention deletes in small batches, each found
--    by a range scan instead of a search through every completed job.
-- 4. A partial index over live runners only, so the runners gauge groups the live runners without
--    reading the (ever growing) terminated ones, which stay as the usage record.

CREATE TABLE job_status_counts (
    status TEXT    PRIMARY KEY NOT NULL,
    n      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO job_status_counts (status, n) SELECT status, COUNT(*) FROM jobs GROUP BY status;

CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_status_counts (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER jobs_count_status AFTER UPDATE OF status ON jobs
WHEN OLD.status IS NOT NEW.status
BEGIN
    UPDATE job_status_counts SET n = n - 1 WHERE status = OLD.status;
    INSERT INTO job_status_counts (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs
BEGIN
    UPDATE job_status_counts SET n = n - 1 WHERE status = OLD.status;
END;

CREATE TABLE tenant_status_counts (
    status TEXT    PRIMARY KEY NOT NULL,
    n      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO tenant_status_counts (status, n) SELECT status, COUNT(*) FROM tenants GROUP BY status;

CREATE TRIGGER tenants_count_insert AFTER INSERT ON tenants
BEGIN
    INSERT INTO tenant_status_counts (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER tenants_count_status AFTER UPDATE OF status ON tenants
WHEN OLD.status IS NOT NEW.status
BEGIN
    UPDATE tenant_status_counts SET n = n - 1 WHERE status = OLD.status;
    INSERT INTO tenant_status_counts (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER tenants_count_delete AFTER DELETE ON tenants
BEGIN
    UPDATE tenant_status_counts SET n = n - 1 WHERE status = OLD.status;
END;

-- Job listings, newest first (the job id is the rowid, so it ends every index entry and breaks ties).
-- By tenant alone: `jobs_by_installation` (0001); unfiltered: `jobs_by_time` (0001).
CREATE INDEX jobs_by_status ON jobs (status, received_at);
CREATE INDEX jobs_by_installation_status ON jobs (installation_id, status, received_at);
-- Only queued jobs carry a wait reason, so these stay as small as the waiting queue.
CREATE INDEX jobs_by_wait_reason ON jobs (wait_reason, received_at) WHERE wait_reason IS NOT NULL;
CREATE INDEX jobs_by_installation_wait_reason ON jobs (installation_id, wait_reason, received_at)
    WHERE wait_reason IS NOT NULL;

-- Retention: completed jobs by last update, so each bounded prune batch reads only what it deletes.
CREATE INDEX jobs_completed_by_update ON jobs (updated_at) WHERE status = 'completed';

-- Live runners per (tenant, tier, state). The WHERE clause must stay identical to the one of the query
-- in `runners.rs` (`LIVE_STATES_SQL`) for SQLite to use the index.
CREATE INDEX runners_live_series ON runners (installation_id, tier, state)
    WHERE state IN ('requested', 'launching', 'idle', 'busy', 'finished');
