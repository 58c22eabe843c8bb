//! The tenant item: the seed's attributes (reference §2.1) plus ghr's counters, encoded and decoded.
//!
//! Items the seed's tenant manager wrote carry every attribute; items an operator put by hand (the seed's
//! troubleshooting `put-item`) lack `org_type`, `metadata` and ghr's counters. They decode with the seed's
//! defaults (`Organization`, no metadata); absent counters read as 0 wherever they are used.

use crate::error::corrupt;
use crate::item::{Item, Reader, iso, n, s};
use crate::tables::tenant::{
    CREATED_AT, INSTALLATION_ID, LIVE_RUNNERS, LIVE_VERSION, MAX_RUNNERS, METADATA, ORG_NAME, ORG_TYPE, STATUS, TIER,
    UPDATED_AT,
};
use aws_sdk_dynamodb::types::AttributeValue;
use ghr_core::Timestamp;
use ghr_core::ids::{AccountId, InstallationId, OrgName, TierName};
use ghr_core::ports::StoreError;
use ghr_core::tenant::{NewTenant, OrgType, Tenant, TenantMetadata, TenantStatus};
use std::collections::HashMap;

/// Keys of the `metadata` map, as the seed's tenant manager writes them.
pub(crate) mod metadata {
    pub const GITHUB_ACCOUNT_ID: &str = "github_account_id";
    pub const SENDER_LOGIN: &str = "sender_login";
    pub const SENDER_ID: &str = "sender_id";
}

/// The org type of items that do not say (the seed's hand-made `put-item` omits it; the seed's own default).
pub(crate) const DEFAULT_ORG_TYPE: OrgType = OrgType::Organization;

/// The key of a tenant's item.
pub(crate) fn key(id: InstallationId) -> Item {
    [(INSTALLATION_ID.to_owned(), n(id.0))].into()
}

/// The key of the case-insensitive login lookup (GitHub logins are unique case-insensitively).
pub(crate) fn org_key(org: &OrgName) -> String {
    org.as_str().to_lowercase()
}

/// Decode a tenant item as the seed writes it (or as an operator's hand-made `put-item` leaves it).
pub(crate) fn tenant_from_item(op: &'static str, item: &Item) -> Result<Tenant, StoreError> {
    let read = Reader::new(op, item);
    let org_type = match read.opt_s(ORG_TYPE)? {
        None => DEFAULT_ORG_TYPE,
        Some(text) => text.parse().map_err(|e| corrupt(op, format!("attribute {ORG_TYPE}: {e}")))?,
    };
    let status: TenantStatus = read.s(STATUS)?.parse().map_err(|e| corrupt(op, format!("attribute {STATUS}: {e}")))?;
    let created_at = read.iso(CREATED_AT)?;
    Ok(Tenant {
        installation_id: InstallationId(read.u64(INSTALLATION_ID)?),
        org_name: OrgName::from(read.s(ORG_NAME)?),
        org_type,
        status,
        tier: TierName::from(read.s(TIER)?),
        max_runners: read.u32(MAX_RUNNERS)?,
        created_at,
        // A hand-made item without `updated_at` was last updated when it was made.
        updated_at: read.opt_iso(UPDATED_AT)?.unwrap_or(created_at),
        metadata: match read.opt_map(METADATA)? {
            None => TenantMetadata::default(),
            Some(map) => metadata_from_map(op, map)?,
        },
    })
}

fn metadata_from_map(op: &'static str, map: &HashMap<String, AttributeValue>) -> Result<TenantMetadata, StoreError> {
    let read = Reader::new(op, map);
    Ok(TenantMetadata {
        github_account_id: read.opt_u64(metadata::GITHUB_ACCOUNT_ID)?.map(AccountId),
        sender_login: read.opt_s(metadata::SENDER_LOGIN)?.map(str::to_owned),
        sender_id: read.opt_u64(metadata::SENDER_ID)?.map(AccountId),
    })
}

/// `metadata` as the seed writes it: absent values left out (its `removeUndefinedValues`); no map at all when
/// nothing is known.
fn metadata_map(metadata: &TenantMetadata) -> Option<AttributeValue> {
    let mut map = HashMap::new();
    if let Some(id) = metadata.github_account_id {
        map.insert(metadata::GITHUB_ACCOUNT_ID.to_owned(), n(id.0));
    }
    if let Some(login) = &metadata.sender_login {
        map.insert(metadata::SENDER_LOGIN.to_owned(), s(login.clone()));
    }
    if let Some(id) = metadata.sender_id {
        map.insert(metadata::SENDER_ID.to_owned(), n(id.0));
    }
    (!map.is_empty()).then_some(AttributeValue::M(map))
}

/// The whole item of a new tenant: the seed's attributes with `created_at = updated_at = now`, and ghr's
/// counters at 0.
pub(crate) fn new_tenant_item(tenant: &NewTenant, now: Timestamp) -> Item {
    let mut item: Item = [
        (INSTALLATION_ID, n(tenant.installation_id.0)),
        (ORG_NAME, s(tenant.org_name.as_str())),
        (ORG_TYPE, s(tenant.org_type.as_str())),
        (STATUS, s(tenant.status.as_str())),
        (TIER, s(tenant.tier.as_str())),
        (MAX_RUNNERS, n(tenant.max_runners)),
        (CREATED_AT, s(iso(now))),
        (UPDATED_AT, s(iso(now))),
        (LIVE_RUNNERS, n(0)),
        (LIVE_VERSION, n(0)),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    if let Some(map) = metadata_map(&tenant.metadata) {
        item.insert(METADATA.to_owned(), map);
    }
    item
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn hand_made() -> Item {
        // The seed's troubleshooting `put-item`: no org_type, no metadata, no counters, times typed by hand.
        [
            (INSTALLATION_ID, n(12345678)),
            (ORG_NAME, s("acme")),
            (STATUS, s("active")),
            (TIER, s("small")),
            (MAX_RUNNERS, n(2)),
            (CREATED_AT, s("2024-01-01T00:00:00Z")),
            (UPDATED_AT, s("2024-01-02T00:00:00Z")),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    #[test]
    fn a_hand_made_item_decodes_with_the_seeds_defaults() {
        let tenant = tenant_from_item("tenant_get", &hand_made()).expect("decodes");
        assert_eq!(tenant.installation_id, InstallationId(12345678));
        assert_eq!(tenant.org_type, OrgType::Organization);
        assert_eq!(tenant.metadata, TenantMetadata::default());
        assert_eq!(tenant.created_at, Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap());
        assert_eq!(tenant.updated_at, Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).unwrap());
    }

    #[test]
    fn a_new_item_round_trips() {
        let new = NewTenant {
            installation_id: InstallationId(7),
            org_name: OrgName::from("Octo"),
            org_type: OrgType::User,
            status: TenantStatus::Pending,
            tier: TierName::from("large"),
            max_runners: 9,
            metadata: TenantMetadata {
                github_account_id: Some(AccountId(1)),
                sender_login: None,
                sender_id: Some(AccountId(3)),
            },
        };
        let now = Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap();
        let item = new_tenant_item(&new, now);
        assert_eq!(item.get(CREATED_AT), Some(&s("2026-05-01T12:00:00.000Z")));
        let tenant = tenant_from_item("tenant_create", &item).expect("decodes");
        assert_eq!(
            (tenant.org_type, tenant.status, tenant.max_runners, tenant.metadata),
            (new.org_type, new.status, new.max_runners, new.metadata)
        );
        let empty = NewTenant { metadata: TenantMetadata::default(), ..new };
        assert!(!new_tenant_item(&empty, now).contains_key(METADATA), "no empty metadata map");
    }

    #[test]
    fn unknown_values_are_corrupt_and_named() {
        for (name, value) in [(STATUS, s("Active")), (ORG_TYPE, s("Bot")), (MAX_RUNNERS, s("5"))] {
            let mut item = hand_made();
            item.insert(name.to_owned(), value);
            let error = tenant_from_item("tenant_list", &item).unwrap_err().to_string();
            assert!(error.contains(name), "{name}: {error}");
        }
    }
}
