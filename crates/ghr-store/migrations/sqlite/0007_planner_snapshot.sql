-- The planner's snapshot reads: a tenant's queue (FIFO), the jobs of a tenant without headroom that carry no
-- wait reason yet (new, or covered by a runner), and the in-progress jobs checked for staleness. Each read
-- costs what it returns, not the size of the jobs table.
CREATE INDEX jobs_queued_by_tenant ON jobs (installation_id, received_at, job_id)
    WHERE status = 'queued' AND tier IS NOT NULL;
CREATE INDEX jobs_unreasoned_by_tenant ON jobs (installation_id, received_at, job_id)
    WHERE status = 'queued' AND tier IS NOT NULL AND wait_reason IS NULL;
CREATE INDEX jobs_in_progress ON jobs (started_at) WHERE status = 'in_progress';
