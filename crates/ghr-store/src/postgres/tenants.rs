//! Tenants on PostgreSQL: create (idempotent), get, case-insensitive lookup by login, list, update. Logins are
//! unique among tenants that are not deleted (the partial unique index `tenants_live_org_unique`); a write
//! that would break that fails with [`OrgNameTaken`] as its source and changes nothing.
//!
//! Several replicas may create or update the same tenant at once. A create is one `INSERT ... ON CONFLICT DO
//! NOTHING` with no conflict target, so it yields to a committed (or waits for an in-flight) row that holds
//! either the installation id or the live login, instead of failing the transaction; the tenant is then read
//! back, so every caller gets the one row and only the inserting one reports `true`. An update locks the row
//! first (`SELECT ... FOR UPDATE`) and applies the change under a savepoint, so a rename or reactivation
//! that collides with another replica's concurrent write is reported as [`OrgNameTaken`], not as a failed
//! transaction.

use crate::codec::{self, Columns, backend};
pub(super) use crate::rows::tenant_columns;
pub(super) use crate::rows::tenant_from_row;
use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, OrgName, TierName};
use ghr_core::ports::StoreError;
use ghr_core::tenant::{NewTenant, OrgNameTaken, Tenant, TenantStatus, TenantUpdate};
use sqlx::{Connection, PgConnection, PgExecutor, PgPool};

pub(super) const OP_CREATE: &str = "tenant_create";
pub(super) const OP_UPDATE: &str = "tenant_update";
const OP_GET: &str = "tenant_get";
const OP_FIND: &str = "tenant_find_by_org";
const OP_LIST: &str = "tenant_list";
const OP_IDS_AFTER: &str = "tenant_ids_after";

/// The unique index of live tenants' logins, as PostgreSQL names it in a violation.
const ORG_UNIQUE_INDEX: &str = "tenants_live_org_unique";

/// Whether `error` is the violation of the unique index on live tenants' logins.
fn is_org_taken(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.is_unique_violation() && db.constraint() == Some(ORG_UNIQUE_INDEX),
        _ => false,
    }
}

/// The error of a write refused because `org` is taken: names the live tenant holding it when it can be read.
async fn org_taken(conn: &mut PgConnection, op: &'static str, org: &OrgName) -> StoreError {
    let holder =
        find_by_org_with(conn, org, OP_FIND).await.ok().flatten().filter(|t| t.status != TenantStatus::Deleted);
    StoreError::Backend {
        op,
        source: Box::new(OrgNameTaken { org_name: org.clone(), holder: holder.map(|t| t.installation_id) }),
    }
}

/// The key of the case-insensitive login lookup.
fn org_key(org: &OrgName) -> String {
    org.as_str().to_lowercase()
}

/// Runs in the caller's write transaction (`Writer::run`).
pub(super) async fn create(
    conn: &mut PgConnection,
    tenant: NewTenant,
    now: Timestamp,
) -> Result<(Tenant, bool), StoreError> {
    let installation = codec::id(OP_CREATE, "installation id", tenant.installation_id.0)?;
    let metadata = &tenant.metadata;
    // No conflict target: a row holding this installation id or this live login makes the insert a no-op
    // (waiting for an uncommitted one to commit or roll back) rather than an error that aborts the transaction.
    let inserted = sqlx::query(concat!(
        "INSERT INTO tenants (installation_id, org_name, org_name_lower, org_type, status, tier, max_runners, \
             github_account_id, sender_login, sender_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT DO NOTHING RETURNING ",
        tenant_columns!()
    ))
    .bind(installation)
    .bind(tenant.org_name.as_str())
    .bind(org_key(&tenant.org_name))
    .bind(tenant.org_type.as_str())
    .bind(tenant.status.as_str())
    .bind(tenant.tier.as_str())
    .bind(i64::from(tenant.max_runners))
    .bind(codec::id_opt(OP_CREATE, "github account id", metadata.github_account_id.map(|a| a.0))?)
    .bind(metadata.sender_login.as_deref())
    .bind(codec::id_opt(OP_CREATE, "sender id", metadata.sender_id.map(|a| a.0))?)
    .bind(codec::ts(now))
    .bind(codec::ts(now))
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend(OP_CREATE))?;
    if let Some(row) = inserted {
        return Ok((tenant_from_row(OP_CREATE, &row)?, true));
    }
    // Under READ COMMITTED this statement sees rows committed by the replica the insert yielded to. The
    // installation exists already (the idempotent repeat; tenants are never deleted), else the login is taken.
    match get_with(&mut *conn, tenant.installation_id, OP_CREATE).await? {
        Some(existing) => Ok((existing, false)),
        None => Err(org_taken(conn, OP_CREATE, &tenant.org_name).await),
    }
}

pub(super) async fn get(pool: &PgPool, id: InstallationId) -> Result<Option<Tenant>, StoreError> {
    get_with(pool, id, OP_GET).await
}

async fn get_with<'e>(
    executor: impl PgExecutor<'e>,
    id: InstallationId,
    op: &'static str,
) -> Result<Option<Tenant>, StoreError> {
    let Ok(key) = i64::try_from(id.0) else {
        // No stored tenant can have an id beyond the column's range.
        return Ok(None);
    };
    let row = sqlx::query(concat!("SELECT ", tenant_columns!(), " FROM tenants WHERE installation_id = $1"))
        .bind(key)
        .fetch_optional(executor)
        .await
        .map_err(backend(op))?;
    row.map(|row| tenant_from_row(op, &row)).transpose()
}

/// Several installations can share a login (an uninstall followed by a reinstall creates a new
/// installation). Prefer a tenant that is not deleted, then the newest installation.
pub(super) async fn find_by_org(pool: &PgPool, org: &OrgName) -> Result<Option<Tenant>, StoreError> {
    find_by_org_with(pool, org, OP_FIND).await
}

async fn find_by_org_with<'e>(
    executor: impl PgExecutor<'e>,
    org: &OrgName,
    op: &'static str,
) -> Result<Option<Tenant>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        tenant_columns!(),
        " FROM tenants WHERE org_name_lower = $1 ORDER BY status = 'deleted', installation_id DESC LIMIT 1"
    ))
    .bind(org_key(org))
    .fetch_optional(executor)
    .await
    .map_err(backend(op))?;
    row.map(|row| tenant_from_row(op, &row)).transpose()
}

pub(super) async fn list(pool: &PgPool, status: Option<TenantStatus>) -> Result<Vec<Tenant>, StoreError> {
    let rows = match status {
        None => {
            sqlx::query(concat!("SELECT ", tenant_columns!(), " FROM tenants ORDER BY installation_id"))
                .fetch_all(pool)
                .await
        }
        Some(status) => {
            sqlx::query(concat!(
                "SELECT ",
                tenant_columns!(),
                " FROM tenants WHERE status = $1 ORDER BY installation_id"
            ))
            .bind(status.as_str())
            .fetch_all(pool)
            .await
        }
    }
    .map_err(backend(OP_LIST))?;
    rows.iter().map(|row| tenant_from_row(OP_LIST, row)).collect()
}

/// A page of tenant ids with one status, in installation order (the `(status, installation_id)` index).
pub(super) async fn ids_after(
    pool: &PgPool,
    status: TenantStatus,
    after: Option<InstallationId>,
    limit: u32,
) -> Result<Vec<InstallationId>, StoreError> {
    let after = match after {
        Some(cursor) => Some(codec::id(OP_IDS_AFTER, "installation_id", cursor.0)?),
        None => None,
    };
    let rows = sqlx::query(
        "SELECT installation_id FROM tenants WHERE status = $1 AND installation_id > $2 \
         ORDER BY installation_id LIMIT $3",
    )
    .bind(status.as_str())
    .bind(after.unwrap_or(-1))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(backend(OP_IDS_AFTER))?;
    rows.iter().map(|row| Ok(InstallationId(Columns::new(OP_IDS_AFTER, row).unsigned("installation_id")?))).collect()
}

/// Runs in the caller's write transaction: the row is locked, then only the given fields change,
/// `updated_at` is stamped and the login key follows a rename.
pub(super) async fn update(
    conn: &mut PgConnection,
    id: InstallationId,
    update: TenantUpdate,
    now: Timestamp,
) -> Result<Option<Tenant>, StoreError> {
    let Ok(key) = i64::try_from(id.0) else {
        return Ok(None);
    };
    let current: Option<String> =
        sqlx::query_scalar("SELECT org_name FROM tenants WHERE installation_id = $1 FOR UPDATE")
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend(OP_UPDATE))?;
    let Some(current) = current else {
        return Ok(None);
    };
    // A unique violation aborts the whole transaction in PostgreSQL: the savepoint keeps it usable, so the
    // holder of the login can still be read for the error.
    let mut savepoint = conn.begin().await.map_err(backend(OP_UPDATE))?;
    let row = sqlx::query(concat!(
        "UPDATE tenants SET status = COALESCE($1, status), tier = COALESCE($2, tier), \
             max_runners = COALESCE($3, max_runners), org_name = COALESCE($4, org_name), \
             org_name_lower = COALESCE($5, org_name_lower), updated_at = $6 \
         WHERE installation_id = $7 RETURNING ",
        tenant_columns!()
    ))
    .bind(update.status.map(TenantStatus::as_str))
    .bind(update.tier.as_ref().map(TierName::as_str))
    .bind(update.max_runners.map(i64::from))
    .bind(update.org_name.as_ref().map(OrgName::as_str))
    .bind(update.org_name.as_ref().map(org_key))
    .bind(codec::ts(now))
    .bind(key)
    .fetch_one(&mut *savepoint)
    .await;
    match row {
        Ok(row) => {
            savepoint.commit().await.map_err(backend(OP_UPDATE))?;
            tenant_from_row(OP_UPDATE, &row).map(Some)
        }
        Err(error) if is_org_taken(&error) => {
            savepoint.rollback().await.map_err(backend(OP_UPDATE))?;
            // A reactivation or a rename onto a login a live tenant holds: either way the login is the conflict.
            let org = update.org_name.unwrap_or_else(|| OrgName::from(current.as_str()));
            Err(org_taken(conn, OP_UPDATE, &org).await)
        }
        Err(error) => Err(backend(OP_UPDATE)(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_literals_match_the_domain_strings() {
        // `find_by_org` ranks deleted tenants last with this literal, and the unique index excludes them by it.
        assert_eq!(TenantStatus::Deleted.as_str(), "deleted");
        let schema = include_str!("../../migrations/postgres/0001_init.sql");
        assert!(
            schema.contains(&format!("CREATE UNIQUE INDEX {ORG_UNIQUE_INDEX} ON tenants (org_name_lower)")),
            "the index name the violation is recognised by"
        );
    }

    #[test]
    fn login_key_is_lower_case() {
        assert_eq!(org_key(&OrgName::from("AcMe-Corp")), "acme-corp");
    }
}
