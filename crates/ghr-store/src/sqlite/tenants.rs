//! Tenants on SQLite: create (idempotent), get, case-insensitive lookup by login, list, update. Logins are
//! unique among tenants that are not deleted (index `tenants_live_org_unique`, migration 0004); a write that
//! would break that fails with [`OrgNameTaken`] as its source and changes nothing.

use crate::codec::{self, Columns, backend};
pub(super) use crate::rows::tenant_columns;
pub(super) use crate::rows::tenant_from_row;
use ghr_core::Timestamp;
use ghr_core::ids::{InstallationId, OrgName, TierName};
use ghr_core::ports::StoreError;
use ghr_core::tenant::{NewTenant, OrgNameTaken, Tenant, TenantStatus, TenantUpdate};
use sqlx::SqlitePool;

const OP_CREATE: &str = "tenant_create";
const OP_GET: &str = "tenant_get";
const OP_FIND: &str = "tenant_find_by_org";
const OP_LIST: &str = "tenant_list";
const OP_IDS_AFTER: &str = "tenant_ids_after";
const OP_UPDATE: &str = "tenant_update";

/// The column the unique index of live tenants' logins covers, as SQLite names it in a violation.
const ORG_UNIQUE_COLUMN: &str = "tenants.org_name_lower";

/// Whether `error` is the violation of the unique index on live tenants' logins.
fn is_org_taken(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.is_unique_violation() && db.message().contains(ORG_UNIQUE_COLUMN),
        _ => false,
    }
}

/// The error of a write refused because `org` is taken: names the tenant holding it when it can be read.
async fn org_taken(pool: &SqlitePool, op: &'static str, org: &OrgName) -> StoreError {
    let holder = find_by_org(pool, org).await.ok().flatten().filter(|t| t.status != TenantStatus::Deleted);
    StoreError::Backend {
        op,
        source: Box::new(OrgNameTaken { org_name: org.clone(), holder: holder.map(|t| t.installation_id) }),
    }
}

/// The key of the case-insensitive login lookup.
fn org_key(org: &OrgName) -> String {
    org.as_str().to_lowercase()
}

pub(super) async fn create(pool: &SqlitePool, tenant: NewTenant, now: Timestamp) -> Result<(Tenant, bool), StoreError> {
    let installation = codec::id(OP_CREATE, "installation id", tenant.installation_id.0)?;
    let metadata = &tenant.metadata;
    let inserted = sqlx::query(concat!(
        "INSERT INTO tenants (installation_id, org_name, org_name_lower, org_type, status, tier, max_runners, \
             github_account_id, sender_login, sender_id, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (installation_id) DO NOTHING RETURNING ",
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
    .fetch_optional(pool)
    .await;
    let inserted = match inserted {
        Ok(row) => row,
        // The installation may exist already (then this is the idempotent repeat), else the login is taken.
        Err(error) if is_org_taken(&error) => match get_with_op(pool, tenant.installation_id, OP_CREATE).await? {
            Some(existing) => return Ok((existing, false)),
            None => return Err(org_taken(pool, OP_CREATE, &tenant.org_name).await),
        },
        Err(error) => return Err(backend(OP_CREATE)(error)),
    };
    if let Some(row) = inserted {
        return Ok((tenant_from_row(OP_CREATE, &row)?, true));
    }
    // The installation exists already. Tenants are never deleted, so it is still there.
    let existing = get_with_op(pool, tenant.installation_id, OP_CREATE).await?.ok_or_else(|| {
        codec::corrupt(OP_CREATE, format!("tenant {} conflicts on insert but cannot be read", tenant.installation_id))
    })?;
    Ok((existing, false))
}

pub(super) async fn get(pool: &SqlitePool, id: InstallationId) -> Result<Option<Tenant>, StoreError> {
    get_with_op(pool, id, OP_GET).await
}

async fn get_with_op(pool: &SqlitePool, id: InstallationId, op: &'static str) -> Result<Option<Tenant>, StoreError> {
    let Ok(key) = i64::try_from(id.0) else {
        // No stored tenant can have an id beyond the column's range.
        return Ok(None);
    };
    let row = sqlx::query(concat!("SELECT ", tenant_columns!(), " FROM tenants WHERE installation_id = ?"))
        .bind(key)
        .fetch_optional(pool)
        .await
        .map_err(backend(op))?;
    row.map(|row| tenant_from_row(op, &row)).transpose()
}

/// Several installations can share a login (an uninstall followed by a reinstall creates a new
/// installation). Prefer a tenant that is not deleted, then the newest installation.
pub(super) async fn find_by_org(pool: &SqlitePool, org: &OrgName) -> Result<Option<Tenant>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        tenant_columns!(),
        " FROM tenants WHERE org_name_lower = ? ORDER BY status = 'deleted', installation_id DESC LIMIT 1"
    ))
    .bind(org_key(org))
    .fetch_optional(pool)
    .await
    .map_err(backend(OP_FIND))?;
    row.map(|row| tenant_from_row(OP_FIND, &row)).transpose()
}

pub(super) async fn list(pool: &SqlitePool, status: Option<TenantStatus>) -> Result<Vec<Tenant>, StoreError> {
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
                " FROM tenants WHERE status = ? ORDER BY installation_id"
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
    pool: &SqlitePool,
    status: TenantStatus,
    after: Option<InstallationId>,
    limit: u32,
) -> Result<Vec<InstallationId>, StoreError> {
    let after = match after {
        Some(cursor) => Some(codec::id(OP_IDS_AFTER, "installation_id", cursor.0)?),
        None => None,
    };
    let rows = sqlx::query(
        "SELECT installation_id FROM tenants WHERE status = ? AND installation_id > ? ORDER BY installation_id LIMIT ?",
    )
    .bind(status.as_str())
    .bind(after.unwrap_or(-1))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(backend(OP_IDS_AFTER))?;
    rows.iter().map(|row| Ok(InstallationId(Columns::new(OP_IDS_AFTER, row).unsigned("installation_id")?))).collect()
}

/// One statement: only the given fields change, `updated_at` is stamped, the login key follows a rename.
pub(super) async fn update(
    pool: &SqlitePool,
    id: InstallationId,
    update: TenantUpdate,
    now: Timestamp,
) -> Result<Option<Tenant>, StoreError> {
    let Ok(key) = i64::try_from(id.0) else {
        return Ok(None);
    };
    let row = sqlx::query(concat!(
        "UPDATE tenants SET status = COALESCE(?, status), tier = COALESCE(?, tier), \
             max_runners = COALESCE(?, max_runners), org_name = COALESCE(?, org_name), \
             org_name_lower = COALESCE(?, org_name_lower), updated_at = ? \
         WHERE installation_id = ? RETURNING ",
        tenant_columns!()
    ))
    .bind(update.status.map(TenantStatus::as_str))
    .bind(update.tier.as_ref().map(TierName::as_str))
    .bind(update.max_runners.map(i64::from))
    .bind(update.org_name.as_ref().map(OrgName::as_str))
    .bind(update.org_name.as_ref().map(org_key))
    .bind(codec::ts(now))
    .bind(key)
    .fetch_optional(pool)
    .await;
    let row = match row {
        Ok(row) => row,
        Err(error) if is_org_taken(&error) => {
            // A reactivation or a rename onto a login a live tenant holds: either way the login is the conflict.
            let org = match update.org_name {
                Some(org) => org,
                None => {
                    get_with_op(pool, id, OP_UPDATE).await?.map(|t| t.org_name).unwrap_or_else(|| OrgName::from(""))
                }
            };
            return Err(org_taken(pool, OP_UPDATE, &org).await);
        }
        Err(error) => return Err(backend(OP_UPDATE)(error)),
    };
    row.map(|row| tenant_from_row(OP_UPDATE, &row)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_literals_match_the_domain_strings() {
        // `find_by_org` ranks deleted tenants last with this literal.
        assert_eq!(TenantStatus::Deleted.as_str(), "deleted");
    }

    /// Databases written before migration 0004 may hold two live tenants with one login; the migration
    /// keeps the one GitHub reported (a real account id), then the newest, and retires the others.
    #[tokio::test]
    async fn migration_0004_retires_duplicate_live_logins_then_enforces_uniqueness() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .expect("an in-memory database");
        sqlx::raw_sql(include_str!("../../migrations/sqlite/0001_init.sql")).execute(&pool).await.expect("0001");
        let rows: &[(i64, &str, &str, Option<i64>)] = &[
            (1, "acme", "active", Some(501)), // onboarded by GitHub: kept
            (2, "ACME", "active", Some(0)),   // added by hand later: retired
            (3, "beta", "suspended", None),   // older of two hand-added: retired
            (4, "Beta", "active", None),      // newest: kept
            (5, "gamma", "deleted", Some(9)), // deleted: untouched
            (6, "gamma", "active", Some(10)), // alone among live ones: kept
        ];
        for (id, org, status, account) in rows {
            sqlx::query(
                "INSERT INTO tenants (installation_id, org_name, org_name_lower, org_type, status, tier, max_runners, \
                     github_account_id, created_at, updated_at) VALUES (?, ?, ?, 'Organization', ?, 'small', 1, ?, 0, 0)",
            )
            .bind(id)
            .bind(org)
            .bind(org.to_lowercase())
            .bind(status)
            .bind(account)
            .execute(&pool)
            .await
            .expect("a pre-0004 row");
        }
        sqlx::raw_sql(include_str!("../../migrations/sqlite/0004_tenant_org_unique.sql"))
            .execute(&pool)
            .await
            .expect("0004 applies over duplicates");
        let statuses: Vec<(i64, String)> =
            sqlx::query_as("SELECT installation_id, status FROM tenants ORDER BY installation_id")
                .fetch_all(&pool)
                .await
                .expect("the tenants");
        let want = [(1, "active"), (2, "deleted"), (3, "deleted"), (4, "active"), (5, "deleted"), (6, "active")];
        assert_eq!(statuses, want.map(|(id, s)| (id, s.to_owned())).to_vec());
        let clash = sqlx::query("UPDATE tenants SET status = 'active' WHERE installation_id = 2").execute(&pool).await;
        assert!(clash.as_ref().is_err_and(is_org_taken), "the index enforces uniqueness: {clash:?}");
    }

    #[test]
    fn login_key_is_lower_case() {
        assert_eq!(org_key(&OrgName::from("AcMe-Corp")), "acme-corp");
    }
}
