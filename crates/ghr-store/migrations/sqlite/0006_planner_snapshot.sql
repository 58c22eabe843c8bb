-- The planner's snapshot reads: a tenant's queue (FIFO); of a tenant without headroom, the jobs whose wait reason
-- is not the tenant's refusal (new, covered by a runner, or waiting for something else), found in the index
-- without reading the others; and the in-progress jobs checked for staleness. Each read costs what it returns
-- (or an index-only walk of one tenant's queue), not the size of the jobs table.
CREATE INDEX jobs_queued_by_tenant ON jobs (installation_id, received_at, job_id)
    WHERE status = 'queued' AND tier IS NOT NULL;
CREATE INDEX jobs_queued_by_tenant_reason ON jobs (installation_id, wait_reason, received_at, job_id)
    WHERE status = 'queued' AND tier IS NOT NULL;
CREATE INDEX jobs_in_progress ON jobs (started_at) WHERE status = 'in_progress';
