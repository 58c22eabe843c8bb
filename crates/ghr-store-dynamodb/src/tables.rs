//! The tables, their keys and indexes, and what creates and checks them (`ghr store init`, opening a store).
//!
//! | Table | Key | Indexes | Holds |
//! |---|---|---|---|
//! | `<p>-tenants` | `installation_id` N | `status-index` (`status`), `org-name-index` (`org_name`) | the seed's registry, plus `live_runners`, `live_version`, `live_recent` (reservations of the last minutes) |
//! | `<p>-jobs` | `job_id` N | `open-index` (`open_tenant` N, `open_order` S), sparse | jobs with their timeline (`timeline` L) |
//! | `<p>-runners` | `runner_name` S | `live-index` (`live_tenant` N, `live_order` S), sparse | runners (kept: the usage record) |
//! | `<p>-deliveries` | `delivery_id` S | none | webhook deliveries (dedupe) |
//! | `<p>-state` | `pk` S | none | org-name claims, job-status counters, the global live count, checkpoints, leases |
//!
//! Every table is on-demand (PAY_PER_REQUEST); `<p>-jobs` and `<p>-deliveries` expire items through the TTL
//! attribute `expires_at`. Index projections are ALL, so a query never goes back to the table.

use crate::error::OpenError;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TableDescription, TableStatus, Tag, TimeToLiveSpecification,
};
use std::time::Duration;

/// TTL attribute (epoch seconds) of the tables that expire items.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// Attribute and index names of `<p>-tenants` (the seed's, plus ghr's counters).
pub mod tenant {
    pub const INSTALLATION_ID: &str = "installation_id";
    pub const ORG_NAME: &str = "org_name";
    pub const ORG_TYPE: &str = "org_type";
    pub const STATUS: &str = "status";
    pub const TIER: &str = "tier";
    pub const MAX_RUNNERS: &str = "max_runners";
    pub const CREATED_AT: &str = "created_at";
    pub const UPDATED_AT: &str = "updated_at";
    pub const METADATA: &str = "metadata";
    /// ghr's: live runners of the tenant (all tiers), changed in the same transaction as the runner records.
    pub const LIVE_RUNNERS: &str = "live_runners";
    /// ghr's: bumped by every change of `live_runners`; reservations and repairs write on the version they read.
    pub const LIVE_VERSION: &str = "live_version";
    pub const STATUS_INDEX: &str = "status-index";
    pub const ORG_NAME_INDEX: &str = "org-name-index";
}

/// Attribute and index names of `<p>-jobs`.
pub mod job {
    pub const JOB_ID: &str = "job_id";
    /// Sparse index: present (the installation id) only while the job is open (queued or in progress) and
    /// matched to a tier.
    pub const OPEN_TENANT: &str = "open_tenant";
    /// `q#<queued order>` while queued, `r#<started order>` while in progress (see `job_item`).
    pub const OPEN_ORDER: &str = "open_order";
    pub const OPEN_INDEX: &str = "open-index";
    pub const TIMELINE: &str = "timeline";
    /// Entries a job's `timeline` keeps at most, so that an item stays far below DynamoDB's 400 KB: past it the
    /// first entry and the newest are kept, with one [`TIMELINE_TRIMMED_KIND`] entry counting the dropped ones.
    pub const TIMELINE_CAP: usize = 100;
    /// Bytes of detail a timeline entry keeps at most (longer details are cut, marked with `…`).
    pub const TIMELINE_DETAIL_MAX_BYTES: usize = 1024;
    /// Kind of the timeline entry that stands for the entries dropped past [`TIMELINE_CAP`].
    pub const TIMELINE_TRIMMED_KIND: &str = "timeline_trimmed";
}

/// Attribute and index names of `<p>-runners`.
pub mod runner {
    pub const RUNNER_NAME: &str = "runner_name";
    /// Sparse index: present (the installation id) only while the runner is live.
    pub const LIVE_TENANT: &str = "live_tenant";
    /// `<tier>#<created ms>#<name>` (see `runner_item`).
    pub const LIVE_ORDER: &str = "live_order";
    pub const LIVE_INDEX: &str = "live-index";
}

/// Attribute names of `<p>-deliveries`.
pub mod delivery {
    pub const DELIVERY_ID: &str = "delivery_id";
}

/// Attribute names and key prefixes of `<p>-state`.
pub mod state {
    pub const PK: &str = "pk";
    /// `org#<lower-case login>` → the installation that holds the name (`installation_id` N).
    pub const ORG_CLAIM: &str = "org#";
    /// `jobs#<status>#<shard>` → `count` N.
    pub const JOB_COUNT: &str = "jobs#";
    /// The deployment's live runners → `count` N, `version` N.
    pub const LIVE_RUNNERS: &str = "runners#live";
    /// `checkpoint#<name>` → `value` S.
    pub const CHECKPOINT: &str = "checkpoint#";
    /// `lease#<name>` → `holder` S, `expires_at_ms` N.
    pub const LEASE: &str = "lease#";
    pub const COUNT: &str = "count";
    pub const VERSION: &str = "version";
}

/// The table names of one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub prefix: String,
    pub tenants: String,
    pub jobs: String,
    pub runners: String,
    pub deliveries: String,
    pub state: String,
}

impl Tables {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            tenants: format!("{prefix}-tenants"),
            jobs: format!("{prefix}-jobs"),
            runners: format!("{prefix}-runners"),
            deliveries: format!("{prefix}-deliveries"),
            state: format!("{prefix}-state"),
        }
    }

    fn specs(&self) -> Vec<TableSpec> {
        use ScalarAttributeType::{N, S};
        vec![
            TableSpec {
                name: self.tenants.clone(),
                component: "tenant-registry",
                hash: (tenant::INSTALLATION_ID, N),
                indexes: vec![
                    (tenant::STATUS_INDEX, (tenant::STATUS, S), None),
                    (tenant::ORG_NAME_INDEX, (tenant::ORG_NAME, S), None),
                ],
                ttl: false,
            },
            TableSpec {
                name: self.jobs.clone(),
                component: "jobs",
                hash: (job::JOB_ID, N),
                indexes: vec![(job::OPEN_INDEX, (job::OPEN_TENANT, N), Some((job::OPEN_ORDER, S)))],
                ttl: true,
            },
            TableSpec {
                name: self.runners.clone(),
                component: "runners",
                hash: (runner::RUNNER_NAME, S),
                indexes: vec![(runner::LIVE_INDEX, (runner::LIVE_TENANT, N), Some((runner::LIVE_ORDER, S)))],
                ttl: false,
            },
            TableSpec {
                name: self.deliveries.clone(),
                component: "deliveries",
                hash: (delivery::DELIVERY_ID, S),
                indexes: vec![],
                ttl: true,
            },
            TableSpec {
                name: self.state.clone(),
                component: "state",
                hash: (state::PK, S),
                indexes: vec![],
                ttl: false,
            },
        ]
    }
}

type KeyAttr = (&'static str, ScalarAttributeType);

struct TableSpec {
    name: String,
    component: &'static str,
    hash: KeyAttr,
    indexes: Vec<(&'static str, KeyAttr, Option<KeyAttr>)>,
    ttl: bool,
}

/// What `ghr store init` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitOutcome {
    /// Tables created by this call.
    pub created: Vec<String>,
    /// Tables that were there already (an existing seed tenant table is kept, items and all).
    pub existing: Vec<String>,
}

/// How long `init` waits for a new table to become ACTIVE.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);
const ACTIVE_POLL: Duration = Duration::from_millis(500);

/// Create the tables that are missing (on-demand capacity, TTL on), keep those that exist after checking their
/// keys and indexes. Idempotent.
pub async fn init_tables(client: &Client, tables: &Tables) -> Result<InitOutcome, OpenError> {
    let mut outcome = InitOutcome::default();
    for spec in tables.specs() {
        match describe(client, &spec.name).await? {
            Some(existing) => {
                check(&spec, &existing)?;
                outcome.existing.push(spec.name.clone());
            }
            None => {
                create(client, &spec, &tables.prefix).await?;
                outcome.created.push(spec.name.clone());
            }
        }
        wait_active(client, &spec.name).await?;
        if spec.ttl {
            enable_ttl(client, &spec.name).await?;
        }
    }
    Ok(outcome)
}

/// Check that every table exists with ghr's keys and indexes (opening a store).
pub async fn verify(client: &Client, tables: &Tables) -> Result<(), OpenError> {
    let mut missing = Vec::new();
    for spec in tables.specs() {
        match describe(client, &spec.name).await? {
            Some(existing) => check(&spec, &existing)?,
            None => missing.push(spec.name.clone()),
        }
    }
    if missing.is_empty() { Ok(()) } else { Err(OpenError::MissingTables { prefix: tables.prefix.clone(), missing }) }
}

fn backend<E, R>(doing: String) -> impl FnOnce(SdkError<E, R>) -> OpenError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    move |error| OpenError::Backend { doing, message: DisplayErrorContext(&error).to_string() }
}

async fn describe(client: &Client, name: &str) -> Result<Option<TableDescription>, OpenError> {
    match client.describe_table().table_name(name).send().await {
        Ok(answer) => Ok(answer.table),
        Err(error) if matches!(error.as_service_error(), Some(DescribeTableError::ResourceNotFoundException(_))) => {
            Ok(None)
        }
        Err(error) => Err(backend(format!("DescribeTable {name}"))(error)),
    }
}

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build().expect("name and type are set")
}

async fn create(client: &Client, spec: &TableSpec, prefix: &str) -> Result<(), OpenError> {
    let mut attributes = vec![spec.hash.clone()];
    for (_, hash, range) in &spec.indexes {
        attributes.push(hash.clone());
        attributes.extend(range.clone());
    }
    attributes.sort_by_key(|(name, _)| *name);
    attributes.dedup_by_key(|(name, _)| *name);
    let mut request = client
        .create_table()
        .table_name(&spec.name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(spec.hash.0, KeyType::Hash))
        .tags(Tag::builder().key("ghr:environment").value(prefix).build().expect("key and value are set"))
        .tags(Tag::builder().key("ghr:component").value(spec.component).build().expect("key and value are set"));
    for (name, kind) in attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder().attribute_name(name).attribute_type(kind).build().expect("set"),
        );
    }
    for (index, hash, range) in &spec.indexes {
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(*index)
            .key_schema(key(hash.0, KeyType::Hash))
            .projection(Projection::builder().projection_type(ProjectionType::All).build());
        if let Some(range) = range {
            gsi = gsi.key_schema(key(range.0, KeyType::Range));
        }
        request = request.global_secondary_indexes(gsi.build().expect("name, keys and projection are set"));
    }
    request.send().await.map_err(backend(format!("CreateTable {}", spec.name)))?;
    Ok(())
}

async fn wait_active(client: &Client, name: &str) -> Result<(), OpenError> {
    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let status = describe(client, name).await?.and_then(|t| t.table_status);
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(OpenError::Backend {
                doing: format!("waiting for table {name} to become ACTIVE"),
                message: format!("still {status:?} after {} s", ACTIVE_TIMEOUT.as_secs()),
            });
        }
        tokio::time::sleep(ACTIVE_POLL).await;
    }
}

async fn enable_ttl(client: &Client, name: &str) -> Result<(), OpenError> {
    let current = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(backend(format!("DescribeTimeToLive {name}")))?;
    let enabled = current
        .time_to_live_description
        .is_some_and(|d| d.attribute_name.as_deref() == Some(TTL_ATTRIBUTE) && d.time_to_live_status.is_some());
    if enabled {
        return Ok(());
    }
    let spec = TimeToLiveSpecification::builder().enabled(true).attribute_name(TTL_ATTRIBUTE).build().expect("set");
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(spec)
        .send()
        .await
        .map_err(backend(format!("UpdateTimeToLive {name}")))?;
    Ok(())
}

/// An existing table must have ghr's hash key and indexes (a table of someone else's under our name is refused).
fn check(spec: &TableSpec, table: &TableDescription) -> Result<(), OpenError> {
    let wrong = |reason: String| OpenError::WrongTable { table: spec.name.clone(), reason };
    let hash = table
        .key_schema()
        .iter()
        .find(|k| k.key_type == KeyType::Hash)
        .map(|k| k.attribute_name.as_str())
        .unwrap_or_default();
    if hash != spec.hash.0 || table.key_schema().len() != 1 {
        return Err(wrong(format!(
            "its key must be the hash key {} alone, found {:?}",
            spec.hash.0,
            table.key_schema()
        )));
    }
    for (index, hash, range) in &spec.indexes {
        let Some(found) = table.global_secondary_indexes().iter().find(|g| g.index_name() == Some(*index)) else {
            return Err(wrong(format!("the global secondary index {index} is missing")));
        };
        let keys: Vec<&str> = found.key_schema().iter().map(|k| k.attribute_name.as_str()).collect();
        let expected: Vec<&str> = std::iter::once(hash.0).chain(range.as_ref().map(|r| r.0)).collect();
        if keys != expected {
            return Err(wrong(format!("index {index} must be keyed on {expected:?}, found {keys:?}")));
        }
    }
    Ok(())
}

/// Runner counters' attributes and `<p>-state` keys (admission, releases and counter repair).
pub mod live {
    /// ghr's, on the tenant item: the latest release of one of the tenant's runners (epoch ms N, only grows).
    /// A reservation is dated no earlier, so runner records never show more live runners than were admitted.
    pub const TENANT_RELEASED_AT: &str = "live_released_at";
    /// ghr's, on the tenant item: when `live_runners` last changed (epoch ms N, the writer's clock); counter
    /// repair leaves a count alone until it has been still for a while (the `live-index` may lag behind).
    pub const TENANT_CHANGED_AT: &str = "live_changed_at";
    /// ghr's, on the tenant item: the tenant's latest reservations, `<created ms>#<runner name>` (L of S, oldest
    /// first, a few minutes' worth at most): read strongly consistent with the tenant, they cover what the
    /// `live-index` may not show yet.
    pub const TENANT_RECENT: &str = "live_recent";
    /// On `runners#live`: the latest release of any runner (epoch ms N, only grows).
    pub const RELEASED_AT: &str = "released_at";
    /// On `runners#live`: when `count` last changed (epoch ms N).
    pub const CHANGED_AT: &str = "changed_at";
    /// `<p>-state` key of the runner sequence (`count` N, bumped by ADD): runner names are derived from it, so it
    /// is unique per store and grows in creation order across tenants.
    pub const SEQ_KEY: &str = "runners#seq";
    /// `<p>-state` key of counter repair's walk over the tenant table (`after` N, the last installation checked).
    pub const REPAIR_CURSOR_KEY: &str = "repair#tenants";
    pub const REPAIR_AFTER: &str = "after";
}
