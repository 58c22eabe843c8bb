//! The PostgreSQL store: several `ghr serve` replicas on one database.
//!
//! Every read-modify-write runs in a transaction that locks the rows its decision depends on (see
//! `write.rs`), so each method is atomic across tasks and across replicas. Wake-ups cross replicas through
//! `LISTEN/NOTIFY` (see `wake.rs` and the triggers of the first migration); leases on singleton work are
//! rows judged by the database's clock (`leases.rs`). Opening never changes the schema (`schema.rs`).

mod checkpoints;
mod counts;
mod deliveries;
mod health;
mod intake;
mod jobs;
mod leases;
mod pool;
mod reserve;
mod retention;
mod runners;
mod schema;
mod snapshot;
mod tenants;
mod usage;
mod wake;
mod write;

pub use schema::{Migrated, SchemaMismatch};

use crate::codec::{self, backend};
use async_trait::async_trait;
use ghr_core::Timestamp;
use ghr_core::cost::UsageRow;
use ghr_core::ids::{DeliveryId, InstallationId, JobId, OrgName, RunnerName};
use ghr_core::intake::{JobIntake, JobIntakeOutcome};
use ghr_core::job::{Job, JobChange, JobEvent, JobObservation, JobStatus};
use ghr_core::planner::dispatch::DemandSnapshot;
use ghr_core::planner::fleet::{FleetRecords, StaleQuery};
use ghr_core::ports::{
    DeliveryRecord, DemandQuery, JobFilter, LeaseRequest, LeaseState, Pruned, Reservation, ReserveRequest,
    RunnerFilter, RunnerSeries, RunnerUpdate, Store, StoreError, WakeFeed,
};
use ghr_core::reason::Reason;
use ghr_core::runner::Runner;
use ghr_core::tenant::{NewTenant, Tenant, TenantStatus, TenantUpdate};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;
use write::Writer;

/// The schema a store lives in when its URL names none.
pub const DEFAULT_SCHEMA: &str = "public";
/// The URL query parameter that names the schema (`postgres://host/db?schema=ghr_prod`): several
/// deployments can share one database, each in its own schema.
pub const SCHEMA_PARAM: &str = "schema";
/// The prefix of every store's `application_name` (the rest is unique per store instance); it names the
/// writer in wake-ups and in `pg_stat_activity`.
const APPLICATION_NAME_PREFIX: &str = "ghr";

/// Connections the wake feed holds (its `LISTEN` connection comes from the pool and stays out of it).
const WAKE_FEED_CONNECTIONS: u32 = 1;

/// Pool settings of a PostgreSQL store (`[store.pool]` in `ghr.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSettings {
    /// Connections this process opens at most (the listener of wake-ups holds one more).
    pub max_connections: u32,
    /// Connections kept open while idle.
    pub min_connections: u32,
    /// How long an operation waits for a free connection before it fails.
    pub acquire_timeout: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        Self { max_connections: 10, min_connections: 1, acquire_timeout: Duration::from_secs(30) }
    }
}

/// Where a PostgreSQL store lives, parsed from its URL.
#[derive(Debug, Clone)]
pub struct PgLocation {
    options: PgConnectOptions,
    /// The URL without its password, for messages.
    described: String,
    schema: String,
}

/// The URL does not name a PostgreSQL database ghr can use.
#[derive(Debug, thiserror::Error)]
#[error("{url} is not a usable PostgreSQL URL (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?schema=NAME]): {why}")]
pub struct BadUrl {
    url: String,
    why: String,
}

impl PgLocation {
    /// Parse `postgres://...` or `postgresql://...`, with an optional `schema` query parameter (a plain
    /// identifier: letters, digits and `_`, not starting with a digit).
    pub fn parse(url: &str) -> Result<Self, BadUrl> {
        let bad = |why: String| BadUrl { url: redact(url), why };
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut schema = DEFAULT_SCHEMA.to_owned();
        let mut kept = Vec::new();
        let mut named = false;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some((SCHEMA_PARAM, _)) if named => {
                    return Err(bad(format!("`{SCHEMA_PARAM}` is given more than once: name one schema")));
                }
                Some((SCHEMA_PARAM, value)) => {
                    schema = value.to_owned();
                    named = true;
                }
                _ => kept.push(pair),
            }
        }
        if let Err(why) = check_schema_name(&schema) {
            return Err(bad(why));
        }
        let rebuilt = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        let options = PgConnectOptions::from_str(&rebuilt).map_err(|e| bad(e.to_string()))?;
        Ok(Self { options, described: redact(url), schema })
    }

    /// The schema the store's tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The same database, another schema (tests: a fresh schema per store).
    pub fn with_schema(mut self, schema: &str) -> Result<Self, BadUrl> {
        if let Err(why) = check_schema_name(schema) {
            return Err(BadUrl { url: self.described, why });
        }
        schema.clone_into(&mut self.schema);
        Ok(self)
    }

    fn label(&self) -> String {
        if self.schema == DEFAULT_SCHEMA { String::new() } else { format!(" (schema {})", self.schema) }
    }
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres_url(url: &str) -> bool {
    let url = url.trim_start();
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// A schema name ghr accepts: a lower-case identifier (PostgreSQL folds unquoted names to lower case, so
/// `GHR` and `ghr` would name one schema in some statements and two in others), at most 63 bytes, and not one of
/// PostgreSQL's own schemas.
fn check_schema_name(name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !plain {
        return Err(format!(
            "schema {name:?} is not a plain lower-case identifier (a-z, 0-9 and _, not starting with a digit, at \
             most 63 characters)"
        ));
    }
    if name.starts_with("pg_") || name == "information_schema" {
        return Err(format!("schema {name:?} is one of PostgreSQL's own: name a schema of ghr's"));
    }
    Ok(())
}

/// The URL with its password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((userinfo, host)) = rest.split_once('@') else { return url.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// [`Store`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    writer: Writer,
    location: PgLocation,
    /// This store's `application_name`: the origin of its wake-ups.
    origin: String,
}

impl PgStore {
    /// Open the store at `url`, refusing a schema that is missing, older or newer than this ghr's
    /// ([`SchemaMismatch`]): `ghr store migrate` ([`PgStore::migrate`]) creates and upgrades it.
    pub async fn open(url: &str, settings: &PgSettings) -> Result<Self, StoreError> {
        let location = PgLocation::parse(url).map_err(|e| StoreError::Backend { op: "open", source: Box::new(e) })?;
        Self::open_at(location, settings).await
    }

    /// [`PgStore::open`] on a parsed location.
    pub async fn open_at(location: PgLocation, settings: &PgSettings) -> Result<Self, StoreError> {
        let store = Self::connect(location, settings).await?;
        schema::check(&store.pool, &store.location.described, &store.location.label()).await?;
        Ok(store)
    }

    /// Create the schema if needed and migrate it to this ghr's version, then open the store.
    pub async fn migrate(location: PgLocation, settings: &PgSettings) -> Result<(Self, Migrated), StoreError> {
        let store = Self::connect(location, settings).await?;
        // The schema name is a checked plain identifier (`PgLocation::parse`).
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{}\"", store.location.schema);
        sqlx::query(sqlx::AssertSqlSafe(create)).execute(&store.pool).await.map_err(backend("migrate"))?;
        let migrated = schema::migrate(&store.pool, &store.location.described, &store.location.label()).await?;
        Ok((store, migrated))
    }

    async fn connect(location: PgLocation, settings: &PgSettings) -> Result<Self, StoreError> {
        let origin = format!("{APPLICATION_NAME_PREFIX}-{}-{}", std::process::id(), unique_suffix());
        let options =
            location.options.clone().application_name(&origin).options([("search_path", location.schema.as_str())]);
        let pool = PgPoolOptions::new()
            // The wake feed's listener holds one pooled connection for the store's life, on top of the work's.
            .max_connections(settings.max_connections.saturating_add(WAKE_FEED_CONNECTIONS))
            .min_connections(settings.min_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Backend {
                op: "open",
                source: Box::new(OpenFailed { database: location.described.clone(), source }),
            })?;
        tracing::debug!(database = %location.described, schema = %location.schema, "PostgreSQL store open");
        Ok(Self { writer: Writer::new(pool.clone()), pool, location, origin })
    }

    /// The database as named in messages (without its password) and the schema.
    pub fn describe(&self) -> String {
        format!("{}{}", self.location.described, self.location.label())
    }

    /// The pool (tests and `ghr store copy` read and write rows directly).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Close every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Connecting failed; says which database.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to the PostgreSQL database {database}")]
struct OpenFailed {
    database: String,
    #[source]
    source: sqlx::Error,
}

/// Distinguishes store instances of one process (and processes that reuse a pid).
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{nanos:08x}{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[async_trait]
impl Store for PgStore {
    async fn check_writable(&self) -> Result<(), StoreError> {
        self.writer.run(health::OP_CHECK_WRITABLE, |conn| Box::pin(health::touch(conn))).await
    }

    async fn tenant_create(&self, tenant: NewTenant, now: Timestamp) -> Result<(Tenant, bool), StoreError> {
        self.writer
            .run(tenants::OP_CREATE, move |conn| {
                let tenant = tenant.clone();
                Box::pin(async move { tenants::create(conn, tenant, now).await })
            })
            .await
    }

    async fn tenant_get(&self, id: InstallationId) -> Result<Option<Tenant>, StoreError> {
        tenants::get(&self.pool, id).await
    }

    async fn tenant_find_by_org(&self, org: &OrgName) -> Result<Option<Tenant>, StoreError> {
        tenants::find_by_org(&self.pool, org).await
    }

    async fn tenant_list(&self, status: Option<TenantStatus>) -> Result<Vec<Tenant>, StoreError> {
        tenants::list(&self.pool, status).await
    }

    async fn tenant_ids_after(
        &self,
        status: TenantStatus,
        after: Option<InstallationId>,
        limit: u32,
    ) -> Result<Vec<InstallationId>, StoreError> {
        tenants::ids_after(&self.pool, status, after, limit).await
    }

    async fn tenant_counts(&self) -> Result<BTreeMap<TenantStatus, u64>, StoreError> {
        counts::tenants(&self.pool).await
    }

    async fn tenant_update(
        &self,
        id: InstallationId,
        update: TenantUpdate,
        now: Timestamp,
    ) -> Result<Option<Tenant>, StoreError> {
        self.writer
            .run(tenants::OP_UPDATE, move |conn| {
                let update = update.clone();
                Box::pin(async move { tenants::update(conn, id, update, now).await })
            })
            .await
    }

    async fn delivery_record(&self, delivery: &DeliveryRecord) -> Result<bool, StoreError> {
        self.writer
            .run(deliveries::OP_RECORD, move |conn| {
                let delivery = delivery.clone();
                Box::pin(async move { deliveries::record(conn, &delivery).await })
            })
            .await
    }

    async fn delivery_seen(&self, id: &DeliveryId) -> Result<bool, StoreError> {
        deliveries::seen(&self.pool, id).await
    }

    async fn job_observe(&self, observation: JobObservation) -> Result<JobChange, StoreError> {
        self.writer
            .run(jobs::OP_OBSERVE, move |conn| {
                let observation = observation.clone();
                Box::pin(jobs::observe(conn, observation))
            })
            .await
    }

    async fn job_get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        jobs::get(&self.pool, id).await
    }

    async fn job_list(&self, filter: JobFilter) -> Result<Vec<Job>, StoreError> {
        jobs::list(&self.pool, filter).await
    }

    async fn job_list_wanting_runner(&self) -> Result<Vec<Job>, StoreError> {
        jobs::list_wanting_runner(&self.pool).await
    }

    async fn job_counts(&self) -> Result<BTreeMap<JobStatus, u64>, StoreError> {
        counts::jobs(&self.pool).await
    }

    async fn job_waiting_counts(
        &self,
        installation: Option<InstallationId>,
    ) -> Result<BTreeMap<Option<Reason>, u64>, StoreError> {
        counts::waiting(&self.pool, installation).await
    }

    async fn job_set_wait_reason(&self, id: JobId, reason: Option<Reason>, at: Timestamp) -> Result<(), StoreError> {
        self.writer
            .run(jobs::OP_SET_WAIT_REASON, move |conn| Box::pin(jobs::set_wait_reason(conn, id, reason, at)))
            .await
    }

    async fn job_event_append(&self, event: JobEvent) -> Result<(), StoreError> {
        self.writer
            .run(jobs::OP_APPEND, move |conn| {
                let event = event.clone();
                Box::pin(async move { jobs::append_event(conn, &event).await })
            })
            .await
    }

    async fn job_timeline(&self, id: JobId) -> Result<Vec<JobEvent>, StoreError> {
        jobs::timeline(&self.pool, id).await
    }

    async fn runner_reserve(&self, request: ReserveRequest) -> Result<Reservation, StoreError> {
        self.writer
            .run(reserve::OP, move |conn| {
                let request = request.clone();
                Box::pin(async move { reserve::reserve(conn, &request).await })
            })
            .await
    }

    async fn runner_update(&self, name: &RunnerName, update: RunnerUpdate) -> Result<Option<Runner>, StoreError> {
        self.writer
            .run(runners::OP_UPDATE, move |conn| {
                let (name, update) = (name.clone(), update.clone());
                Box::pin(async move { runners::update(conn, &name, update).await })
            })
            .await
    }

    async fn runner_get(&self, name: &RunnerName) -> Result<Option<Runner>, StoreError> {
        runners::get(&self.pool, name).await
    }

    async fn runner_list(&self, filter: RunnerFilter) -> Result<Vec<Runner>, StoreError> {
        runners::list(&self.pool, filter).await
    }

    async fn runner_live_counts(&self) -> Result<BTreeMap<InstallationId, u32>, StoreError> {
        runners::live_counts(&self.pool).await
    }

    async fn runner_live_series(&self) -> Result<RunnerSeries, StoreError> {
        counts::live_series(&self.pool).await
    }

    async fn prune(&self, before: Timestamp) -> Result<Pruned, StoreError> {
        retention::prune(&self.writer, codec::ts(before)).await
    }

    async fn usage(&self, from: Timestamp, to: Timestamp, now: Timestamp) -> Result<Vec<UsageRow>, StoreError> {
        usage::usage(&self.pool, from, to, now).await
    }

    async fn checkpoint_get(&self, name: &str) -> Result<Option<String>, StoreError> {
        checkpoints::get(&self.pool, name).await
    }

    async fn checkpoint_set(&self, name: &str, value: &str, now: Timestamp) -> Result<(), StoreError> {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.writer
            .run(checkpoints::OP_SET, move |conn| {
                let (name, value) = (name.clone(), value.clone());
                Box::pin(async move { checkpoints::set(conn, &name, &value, now).await })
            })
            .await
    }

    async fn intake_jobs(&self, batch: Vec<JobIntake>) -> Vec<Result<JobIntakeOutcome, StoreError>> {
        intake::intake(&self.writer, batch).await
    }

    async fn demand_snapshot(&self, query: DemandQuery) -> Result<DemandSnapshot, StoreError> {
        snapshot::demand(&self.pool, query).await
    }

    async fn fleet_records(&self, stale: StaleQuery) -> Result<FleetRecords, StoreError> {
        snapshot::fleet(&self.pool, stale).await
    }

    async fn job_set_wait_reasons(
        &self,
        reasons: Vec<(JobId, Option<Reason>)>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        if reasons.is_empty() {
            return Ok(());
        }
        self.writer
            .run(jobs::OP_SET_WAIT_REASON, move |conn| {
                let reasons = reasons.clone();
                Box::pin(async move { jobs::set_wait_reasons(conn, &reasons, at).await })
            })
            .await
    }

    async fn lease_acquire(&self, request: LeaseRequest) -> Result<LeaseState, StoreError> {
        self.writer
            .run(leases::OP_ACQUIRE, move |conn| {
                let request = request.clone();
                Box::pin(async move { leases::acquire(conn, &request).await })
            })
            .await
    }

    async fn lease_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.writer
            .run(leases::OP_RELEASE, move |conn| {
                let (name, holder) = (name.clone(), holder.clone());
                Box::pin(async move { leases::release(conn, &name, &holder).await })
            })
            .await
    }

    async fn wake_feed(&self) -> Result<Option<Box<dyn WakeFeed>>, StoreError> {
        let feed = wake::PgWakeFeed::listen(&self.pool, &self.location.schema, &self.origin).await?;
        Ok(Some(Box::new(feed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_an_optional_schema() {
        let location = PgLocation::parse("postgres://ghr:secret@db.internal:5432/ghr?schema=prod_1").unwrap();
        assert_eq!(location.schema(), "prod_1");
        assert!(!location.described.contains("secret"), "{}", location.described);
        assert_eq!(PgLocation::parse("postgresql://localhost/ghr").unwrap().schema(), DEFAULT_SCHEMA);
        for refused in ["a;drop", "Mixed", "GHR", "information_schema", "pg_catalog", "1st", ""] {
            let url = format!("postgres://localhost/ghr?schema={refused}");
            assert!(PgLocation::parse(&url).is_err(), "{url} should be refused");
        }
        let twice = PgLocation::parse("postgres://localhost/ghr?schema=ghr&schema=public").unwrap_err().to_string();
        assert!(twice.contains("more than once"), "{twice}");
        assert_eq!(PgLocation::parse("postgres://localhost/ghr?schema=ghr_prod_2").unwrap().schema(), "ghr_prod_2");
        assert!(is_postgres_url("postgres://x/y") && !is_postgres_url("sqlite://ghr.db"));
    }
}
