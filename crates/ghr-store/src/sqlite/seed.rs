//! Bulk seeding for benchmarks (feature `bench`): hundreds of thousands of tenants, runners and jobs written
//! by SQL in a few large transactions instead of one `Store` call each, so a scale benchmark sets up in
//! seconds. Rows are what the `Store` methods would have written; triggers keep the counts as usual.

use super::SqliteStore;
use crate::codec::{self, backend};
use ghr_core::Timestamp;
use ghr_core::ids::InstallationId;
use ghr_core::job::JobStatus;
use ghr_core::ports::StoreError;
use ghr_core::reason::Reason;

const OP_SEED: &str = "bench_seed";
/// Rows per seeding transaction: large enough to amortise the commit, small enough to keep the log modest.
const ROWS_PER_TRANSACTION: u64 = 100_000;

/// A range of consecutive installation ids.
#[derive(Debug, Clone, Copy)]
pub struct Installations {
    pub first: u64,
    pub count: u64,
}

impl Installations {
    /// The `n`th installation, round robin.
    pub fn nth(&self, n: u64) -> InstallationId {
        InstallationId(self.first + n % self.count.max(1))
    }
}

/// Jobs to seed: `count` ids from `first_job`, spread round robin over `installations`.
#[derive(Debug, Clone)]
pub struct JobSeed {
    pub first_job: u64,
    pub count: u64,
    pub installations: Installations,
    pub tier: String,
    pub status: JobStatus,
    pub wait_reason: Option<Reason>,
    /// Runner names `<prefix><installation>` are recorded on in-progress jobs when set.
    pub runner_prefix: Option<String>,
}

impl SqliteStore {
    /// Active organisation tenants on plan `tier`, each allowed `max_runners`.
    pub async fn seed_tenants(
        &self,
        installations: Installations,
        tier: &str,
        max_runners: u32,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let sql = "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?2) \
             INSERT INTO tenants (installation_id, org_name, org_name_lower, org_type, status, tier, max_runners, \
                 github_account_id, sender_login, sender_id, created_at, updated_at) \
             SELECT ?1 + i, 'bench-' || (?1 + i), 'bench-' || (?1 + i), 'Organization', 'active', ?3, ?4, \
                 ?1 + i, NULL, NULL, ?5, ?5 FROM seq";
        self.seed_in_chunks(installations.count, |start, n| {
            sqlx::query(sql)
                .bind(to_i64(installations.first + start))
                .bind(to_i64(n))
                .bind(tier.to_owned())
                .bind(i64::from(max_runners))
                .bind(codec::ts(now))
        })
        .await
    }

    /// One busy runner per installation, named `<prefix><installation>`, bound to job `first_job + n`, its
    /// instance `i-<name>` and GitHub runner id the installation id.
    pub async fn seed_busy_runners(
        &self,
        installations: Installations,
        tier: &str,
        prefix: &str,
        first_job: u64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let sql = "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?2) \
             INSERT INTO runners (name, installation_id, tier, tenant_tier, scope_repo, state, instance_id, \
                 github_runner_id, intended_job, job_id, created_at, launched_at, registered_at, job_started_at, \
                 updated_at) \
             SELECT ?3 || (?1 + i), ?1 + i, ?4, ?4, NULL, 'busy', 'i-' || ?3 || (?1 + i), ?1 + i, NULL, ?5 + i, \
                 ?6, ?6, ?6, ?6, ?6 FROM seq";
        self.seed_in_chunks(installations.count, |start, n| {
            sqlx::query(sql)
                .bind(to_i64(installations.first + start))
                .bind(to_i64(n))
                .bind(prefix.to_owned())
                .bind(tier.to_owned())
                .bind(to_i64(first_job + start))
                .bind(codec::ts(now))
        })
        .await
    }

    /// Jobs as [`JobSeed`] says, all first seen (and last updated) at `now`.
    pub async fn seed_jobs(&self, seed: &JobSeed, now: Timestamp) -> Result<(), StoreError> {
        let sql = "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?2) \
             INSERT INTO jobs (job_id, installation_id, repository, labels, tier, status, conclusion, runner_name, \
                 wait_reason, received_at, queued_at, started_at, completed_at, updated_at) \
             SELECT ?1 + i, ?3 + ((?1 - ?9 + i) % ?4), 'bench/app', '[\"self-hosted\",\"' || ?5 || '\"]', ?5, ?6, \
                 CASE WHEN ?6 = 'completed' THEN 'success' END, \
                 CASE WHEN ?8 IS NOT NULL THEN ?8 || (?3 + ((?1 - ?9 + i) % ?4)) END, ?7, ?10, ?10, \
                 CASE WHEN ?6 <> 'queued' THEN ?10 END, CASE WHEN ?6 = 'completed' THEN ?10 END, ?10 FROM seq";
        let installations = seed.installations;
        self.seed_in_chunks(seed.count, |start, n| {
            sqlx::query(sql)
                .bind(to_i64(seed.first_job + start))
                .bind(to_i64(n))
                .bind(to_i64(installations.first))
                .bind(to_i64(installations.count.max(1)))
                .bind(seed.tier.clone())
                .bind(seed.status.as_str())
                .bind(seed.wait_reason.map(Reason::code))
                .bind(seed.runner_prefix.clone())
                .bind(to_i64(seed.first_job))
                .bind(codec::ts(now))
        })
        .await
    }

    /// Mark every job of `installation` completed at `now` (a benchmark clears what it delivered).
    pub async fn seed_complete_jobs_of(&self, installation: InstallationId, now: Timestamp) -> Result<(), StoreError> {
        let (key, at) = (to_i64(installation.0), codec::ts(now));
        self.writer
            .run(OP_SEED, move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE jobs SET status = 'completed', conclusion = 'success', wait_reason = NULL, \
                         completed_at = ?2, updated_at = ?2 WHERE installation_id = ?1 AND status <> 'completed'",
                    )
                    .bind(key)
                    .bind(at)
                    .execute(&mut *conn)
                    .await
                    .map_err(backend(OP_SEED))?;
                    Ok(())
                })
            })
            .await
    }

    async fn seed_in_chunks<'q, F>(&self, total: u64, statement: F) -> Result<(), StoreError>
    where
        F: Fn(u64, u64) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    {
        let mut start = 0;
        while start < total {
            let n = ROWS_PER_TRANSACTION.min(total - start);
            let query = statement(start, n);
            let mut tx = self.pool.begin_with(super::write::BEGIN_WRITE).await.map_err(backend(OP_SEED))?;
            query.execute(&mut *tx).await.map_err(backend(OP_SEED))?;
            tx.commit().await.map_err(backend(OP_SEED))?;
            start += n;
        }
        Ok(())
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
