//! Tenants on SQLite: create (idempotent), get, case-insensitive lookup by login, list, update.

use super::codec::{self, Columns, backend};
use ghr_core::Timestamp;
use ghr_core::ids::{AccountId, InstallationId, OrgName, TierName};
use ghr_core::ports::StoreError;
use ghr_core::tenant::{NewTenant, Tenant, TenantMetadata, TenantStatus, TenantUpdate};
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteRow;

const OP_CREATE: &str = "tenant_create";
const OP_GET: &str = "tenant_get";
const OP_FIND: &str = "tenant_find_by_org";
const OP_LIST: &str = "tenant_list";
const OP_UPDATE: &str = "tenant_update";

/// The columns of a tenant row, as a literal so queries stay `&'static str` (see [`tenant_from_row`]).
macro_rules! tenant_columns {
    () => {
        "installation_id, org_name, org_type, status, tier, max_runners, \
         github_account_id, sender_login, sender_id, created_at, updated_at"
    };
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
    .await
    .map_err(backend(OP_CREATE))?;
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
    .await
    .map_err(backend(OP_UPDATE))?;
    row.map(|row| tenant_from_row(OP_UPDATE, &row)).transpose()
}

/// Decode a row selected with [`tenant_columns`].
pub(super) fn tenant_from_row(op: &'static str, row: &SqliteRow) -> Result<Tenant, StoreError> {
    let c = Columns::new(op, row);
    Ok(Tenant {
        installation_id: InstallationId(c.unsigned("installation_id")?),
        org_name: OrgName::new(c.text("org_name")?),
        org_type: c.parse("org_type")?,
        status: c.parse("status")?,
        tier: TierName::new(c.text("tier")?),
        max_runners: c.u32("max_runners")?,
        created_at: c.timestamp("created_at")?,
        updated_at: c.timestamp("updated_at")?,
        metadata: TenantMetadata {
            github_account_id: c.unsigned_opt("github_account_id")?.map(AccountId),
            sender_login: c.text_opt("sender_login")?,
            sender_id: c.unsigned_opt("sender_id")?.map(AccountId),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_literals_match_the_domain_strings() {
        // `find_by_org` ranks deleted tenants last with this literal.
        assert_eq!(TenantStatus::Deleted.as_str(), "deleted");
    }

    #[test]
    fn login_key_is_lower_case() {
        assert_eq!(org_key(&OrgName::from("AcMe-Corp")), "acme-corp");
    }
}
