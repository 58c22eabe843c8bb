//! GitHub-side recovery that cannot lose a job: the failed-delivery scan and the queued-jobs poll.
//!
//! **Failed-delivery scan.** GitHub never redelivers on its own. Each pass reads the App's *failed*
//! deliveries (`status=failure`), newest first, following the cursor back to the newest attempt the last
//! complete scan had read (a checkpoint in the store, so a restart resumes) or to GitHub's retention
//! ([`DELIVERY_RETENTION`]), never past a delivery young enough to have been in flight ([`IN_FLIGHT_MARGIN`]);
//! every delivery that never reached ghr (its id is not recorded) is redelivered,
//! oldest first. A scan cut short by [`MAX_SCAN_PAGES`] keeps its cursor in the checkpoint and continues next
//! pass. Steady state costs one request per pass; an outage of N deliveries costs ⌈N/100⌉ pages and N
//! redelivery requests, once.
//!
//! **Queued-jobs poll.** When deliveries themselves are gone (older than GitHub's retention, or never
//! sent: GitHub sends nothing for a suspended installation), each active tenant's repositories are listed
//! every `queued_poll` and their queued jobs compared with ghr's records; a job ghr never heard of is
//! recorded as queued and served like any other. Cost per tenant and poll: ⌈R/100⌉ + 2R + U requests
//! (R repositories, U queued or running workflow runs), on the tenant's own installation rate limit; a tenant
//! whose remaining limit is below [`POLL_RATE_LIMIT_FLOOR`] is skipped. Each pass examines the next
//! [`POLL_TENANTS_PER_PASS`] active tenants of a walk in installation order (one page of ids read from the
//! store, never the whole table), so a pass costs the same at 10 tenants and at 100,000.

use super::{ReconcileReport, Reconciler};
use crate::error::{EngineError, ErrorChain, StoreContext};
use ghr_core::Timestamp;
use ghr_core::ids::InstallationId;
use ghr_core::job::{JobChange, JobEvent, JobObservation, JobStatus, event_kind};
use ghr_core::labels::match_tier;
use ghr_core::planner::checks::queued_poll_due;
use ghr_core::ports::{DeliveriesRequest, DeliveryStatusFilter, GithubJob};
use ghr_core::tenant::TenantStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The checkpoint of the failed-delivery scan.
pub const SCAN_CHECKPOINT: &str = "failed_delivery_scan";
/// How long GitHub keeps webhook deliveries: nothing older can be redelivered.
pub const DELIVERY_RETENTION: Duration = Duration::from_secs(3 * 24 * 3600);
/// How recent a delivery may be and still be in flight at GitHub (GitHub gives a receiver 10 s, and lists a
/// delivery once it has ended): the checkpoint never moves past a delivery younger than this, so one that
/// was still being attempted during a scan, and is listed later with a smaller id, is still read.
pub const IN_FLIGHT_MARGIN: Duration = Duration::from_secs(60);
/// Pages of failed deliveries read per pass at most (100 each); a longer backlog continues next pass.
pub const MAX_SCAN_PAGES: u32 = 50;
/// GitHub's largest page of deliveries.
const MAX_PAGE_SIZE: u32 = 100;
/// Active tenants examined (and polled when due) per reconciler pass.
pub const POLL_TENANTS_PER_PASS: usize = 10;
/// A tenant whose installation has fewer requests left in its rate-limit window is not polled this time.
pub const POLL_RATE_LIMIT_FLOOR: u64 = 1000;

/// What the scan persists between passes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ScanCheckpoint {
    /// The newest attempt id a complete scan has read: later scans stop there.
    scanned_up_to: Option<u64>,
    /// A scan cut short: where to continue, and the newest attempt id it started from.
    resume: Option<Resume>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Resume {
    cursor: String,
    newest: u64,
}

impl Reconciler {
    /// Redeliver every failed delivery that never reached ghr, reading back to the last scan.
    pub(super) async fn missed_webhooks(
        &self,
        now: Timestamp,
        report: &mut ReconcileReport,
    ) -> Result<(), EngineError> {
        if self.settings.redelivery_scan == 0 {
            return Ok(());
        }
        let store = &self.ports.store;
        let saved = store.checkpoint_get(SCAN_CHECKPOINT).await.doing("reading the delivery-scan checkpoint")?;
        let checkpoint: ScanCheckpoint = saved.and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default();
        let oldest = now - chrono::Duration::from_std(DELIVERY_RETENTION).unwrap_or(chrono::Duration::MAX);
        let settled_before = now - chrono::Duration::from_std(IN_FLIGHT_MARGIN).unwrap_or(chrono::Duration::MAX);
        let (mut cursor, mut newest) = match &checkpoint.resume {
            Some(resume) => (Some(resume.cursor.clone()), Some(resume.newest)),
            None => (None, None),
        };
        // Failed attempts not yet known to have reached ghr, by delivery guid: the newest attempt's id.
        let mut failed: BTreeMap<String, u64> = BTreeMap::new();
        let mut complete = false;
        for _ in 0..MAX_SCAN_PAGES {
            let request = DeliveriesRequest {
                status: Some(DeliveryStatusFilter::Failure),
                per_page: self.settings.redelivery_scan.min(MAX_PAGE_SIZE),
                cursor: cursor.clone(),
            };
            let page = self
                .ports
                .github
                .list_deliveries_page(&request)
                .await
                .map_err(|source| EngineError::Github { doing: "listing failed webhook deliveries", source })?;
            let mut reached = false;
            for delivery in &page.deliveries {
                if delivery.delivered_at <= settled_before {
                    newest = Some(newest.map_or(delivery.id, |n| n.max(delivery.id)));
                }
                if checkpoint.scanned_up_to.is_some_and(|up_to| delivery.id <= up_to) || delivery.delivered_at < oldest
                {
                    reached = true;
                    break;
                }
                let latest = failed.entry(delivery.guid.to_string()).or_insert(delivery.id);
                *latest = (*latest).max(delivery.id);
            }
            cursor = page.next_cursor;
            if reached || cursor.is_none() {
                complete = true;
                break;
            }
        }
        let mut all_requested = true;
        // Oldest first: a job's `queued` before its `in_progress`.
        let mut attempts: Vec<(u64, String)> = failed.into_iter().map(|(guid, id)| (id, guid)).collect();
        attempts.sort();
        for (attempt, guid) in attempts {
            if store.delivery_seen(&guid.as_str().into()).await.doing("checking a delivery id")? {
                continue;
            }
            let first_request = self.redelivered.lock().map(|mut set| set.insert(attempt)).unwrap_or(false);
            if !first_request {
                continue;
            }
            match self.ports.github.redeliver(attempt).await {
                Ok(()) => {
                    tracing::info!(%guid, attempt, "requested redelivery of a webhook that never reached ghr");
                    report.redeliveries_requested += 1;
                }
                Err(error) => {
                    all_requested = false;
                    if let Ok(mut set) = self.redelivered.lock() {
                        set.remove(&attempt);
                    }
                    tracing::warn!(%guid, error = %ErrorChain(&error), "redelivery request failed; retrying next pass");
                }
            }
        }
        let next = match (complete, all_requested) {
            (true, true) => ScanCheckpoint { scanned_up_to: newest.max(checkpoint.scanned_up_to), resume: None },
            // A redelivery request failed: read the same span again next pass.
            (_, false) => checkpoint.clone(),
            (false, true) => ScanCheckpoint {
                scanned_up_to: checkpoint.scanned_up_to,
                resume: cursor.zip(newest).map(|(cursor, newest)| Resume { cursor, newest }),
            },
        };
        if next != checkpoint {
            let text = serde_json::to_string(&next).unwrap_or_default();
            store.checkpoint_set(SCAN_CHECKPOINT, &text, now).await.doing("saving the delivery-scan checkpoint")?;
        }
        Ok(())
    }

    /// Poll the next active tenants of the walk for queued jobs ghr never heard of.
    pub(super) async fn queued_jobs_poll(
        &self,
        now: Timestamp,
        report: &mut ReconcileReport,
    ) -> Result<(), EngineError> {
        let Some(every) = self.settings.queued_poll else { return Ok(()) };
        let active = self.next_poll_page().await?;
        let remaining: BTreeMap<InstallationId, u64> = self.ports.github.usage().remaining.into_iter().collect();
        let plan = {
            let polled = self.polled.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            queued_poll_due(&active, &polled, &remaining, every, now, POLL_TENANTS_PER_PASS, POLL_RATE_LIMIT_FLOOR)
        };
        for installation in plan.low_rate_limit {
            tracing::info!(%installation, "queued-jobs poll skipped: the installation's rate limit is low");
        }
        for installation in plan.poll {
            self.polled.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(installation, now);
            match self.poll_tenant(installation, now).await {
                Ok(found) => report.queued_jobs_found += found,
                Err(error) => {
                    tracing::warn!(%installation, error = %ErrorChain(&error), "queued-jobs poll failed; next poll retries")
                }
            }
        }
        Ok(())
    }

    /// The next [`POLL_TENANTS_PER_PASS`] active tenants in installation order after the walk's cursor,
    /// wrapping to the first at the end: a pass reads one page of ids, never the whole tenants table, and
    /// every active tenant is examined once per walk (those polled within `queued_poll` are skipped).
    async fn next_poll_page(&self) -> Result<Vec<InstallationId>, EngineError> {
        let store = &self.ports.store;
        let limit = POLL_TENANTS_PER_PASS as u32;
        let after = *self.poll_cursor.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut page = store.tenant_ids_after(TenantStatus::Active, after, limit).await.doing("listing tenants")?;
        if page.len() < POLL_TENANTS_PER_PASS && after.is_some() {
            let rest = limit - page.len() as u32;
            let first = store.tenant_ids_after(TenantStatus::Active, None, rest).await.doing("listing tenants")?;
            page.extend(first.into_iter().filter(|id| after.is_some_and(|cursor| *id <= cursor)));
        }
        *self.poll_cursor.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = page.last().copied();
        Ok(page)
    }

    async fn poll_tenant(&self, installation: InstallationId, now: Timestamp) -> Result<usize, EngineError> {
        let github = |source| EngineError::Github { doing: "polling a tenant's queued jobs", source };
        let repositories = self.ports.github.list_installation_repositories(installation).await.map_err(github)?;
        let mut found = 0;
        for repository in repositories {
            for job in self.ports.github.list_queued_jobs(installation, &repository).await.map_err(github)? {
                if self.record_polled_job(installation, &repository, job, now).await? {
                    found += 1;
                }
            }
        }
        Ok(found)
    }

    /// Record a queued job found by the poll; true when ghr had never heard of it.
    async fn record_polled_job(
        &self,
        installation: InstallationId,
        repository: &str,
        job: GithubJob,
        now: Timestamp,
    ) -> Result<bool, EngineError> {
        let tier = match_tier(&self.settings.catalog, &job.labels).map(|t| t.name.clone());
        if tier.is_none() {
            // Not ours (GitHub-hosted or another system's runners): nothing to serve.
            return Ok(false);
        }
        let observation = JobObservation {
            job_id: job.id,
            installation_id: installation,
            repository: repository.to_owned(),
            labels: job.labels,
            tier,
            status: JobStatus::Queued,
            conclusion: None,
            runner_name: None,
            queued_at: job.created_at,
            started_at: None,
            completed_at: None,
            observed_at: now,
        };
        let change = self.ports.store.job_observe(observation).await.doing("recording a polled job")?;
        if change != JobChange::Created {
            return Ok(false);
        }
        tracing::warn!(job_id = %job.id, %installation, "found a queued job whose webhook never arrived");
        let event = JobEvent {
            job_id: job.id,
            at: now,
            kind: event_kind::FOUND_BY_POLL.into(),
            detail: "its webhook never arrived; found by the queued-jobs poll".into(),
        };
        self.ports.store.job_event_append(event).await.doing("appending to a job timeline")?;
        self.dispatcher_wake.tenant(installation);
        Ok(true)
    }
}
