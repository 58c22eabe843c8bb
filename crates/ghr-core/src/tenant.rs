//! Tenants: one per GitHub App installation, with the same fields as the reference's registry.

use crate::Timestamp;
use crate::ids::{AccountId, InstallationId, OrgName, TierName};
use crate::input::InvalidInput;
use crate::text::clip;
use serde::{Deserialize, Serialize};
use std::error::Error;
use std::fmt;
use std::str::FromStr;

/// The kind of GitHub account that installed the App.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrgType {
    /// An organisation: runners are registered at org level.
    Organization,
    /// A personal account: runners are registered at repository level (GitHub has no user-level runners).
    User,
}

impl OrgType {
    pub fn as_str(self) -> &'static str {
        match self {
            OrgType::Organization => "Organization",
            OrgType::User => "User",
        }
    }
}

impl FromStr for OrgType {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Organization" => Ok(OrgType::Organization),
            "User" => Ok(OrgType::User),
            other => Err(UnknownValue { kind: "org type", value: other.to_owned(), expected: "Organization, User" }),
        }
    }
}

/// Lifecycle status of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    /// Installed, awaiting operator approval (only with `onboarding = "approval"`).
    Pending,
    /// Served.
    Active,
    /// No new runners (installation suspended, or an operator's decision).
    Suspended,
    /// Uninstalled; kept for accounting, never served again unless reinstalled.
    Deleted,
}

impl TenantStatus {
    pub const ALL: [TenantStatus; 4] =
        [TenantStatus::Pending, TenantStatus::Active, TenantStatus::Suspended, TenantStatus::Deleted];

    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Pending => "pending",
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
            TenantStatus::Deleted => "deleted",
        }
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TenantStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TenantStatus::ALL.into_iter().find(|status| status.as_str() == s).ok_or_else(|| UnknownValue {
            kind: "tenant status",
            value: s.to_owned(),
            expected: "pending, active, suspended, deleted",
        })
    }
}

/// A string that is not one of the allowed values of an enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?} (expected one of: {expected})")]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// The largest concurrent-runner limit a tenant may have. Ten thousand is an order of magnitude above any
/// plan sold today, so no real limit is refused, while a slip such as 4,294,967,295 (effectively "no
/// limit") is.
pub const MAX_RUNNERS_LIMIT: u32 = 10_000;

/// A tenant's `max_runners` must be in `1..=MAX_RUNNERS_LIMIT`.
pub fn check_max_runners(value: u32) -> Result<u32, InvalidInput> {
    if (1..=MAX_RUNNERS_LIMIT).contains(&value) {
        Ok(value)
    } else {
        Err(InvalidInput::new("max_runners", format!("{value} is out of range (expected 1 to {MAX_RUNNERS_LIMIT})")))
    }
}

/// A write would give a second tenant that is not deleted the login of another one. GitHub logins are
/// unique (case-insensitively), so the store refuses it and writes nothing; a store reports it as the
/// source of its error so that callers can find it with [`OrgNameTaken::find_in`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct OrgNameTaken {
    /// The login that was asked for.
    pub org_name: OrgName,
    /// The tenant that holds it, when the store could tell.
    pub holder: Option<InstallationId>,
}

impl fmt::Display for OrgNameTaken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "org name {:?} is already used by ", clip(self.org_name.as_str()))?;
        match self.holder {
            Some(holder) => write!(f, "tenant {holder}")?,
            None => f.write_str("another tenant")?,
        }
        f.write_str(
            "; org names are unique (case-insensitively) among tenants that are not deleted: check the \
             installation id, or manage the existing tenant",
        )
    }
}

impl OrgNameTaken {
    /// The conflict anywhere in `error`'s chain of sources.
    pub fn find_in<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a OrgNameTaken> {
        let mut current = Some(error);
        while let Some(error) = current {
            if let Some(taken) = error.downcast_ref::<OrgNameTaken>() {
                return Some(taken);
            }
            current = error.source();
        }
        None
    }
}

/// Who installed the App, as GitHub reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantMetadata {
    pub github_account_id: Option<AccountId>,
    pub sender_login: Option<String>,
    pub sender_id: Option<AccountId>,
}

/// A customer: one GitHub App installation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub installation_id: InstallationId,
    pub org_name: OrgName,
    pub org_type: OrgType,
    pub status: TenantStatus,
    /// The tenant's plan: a tier name of the catalog.
    pub tier: TierName,
    /// Concurrent-runner limit across all tiers.
    pub max_runners: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub metadata: TenantMetadata,
}

/// What is needed to create a tenant; the store fills in timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTenant {
    pub installation_id: InstallationId,
    pub org_name: OrgName,
    pub org_type: OrgType,
    pub status: TenantStatus,
    pub tier: TierName,
    pub max_runners: u32,
    pub metadata: TenantMetadata,
}

/// A change to a tenant. `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantUpdate {
    pub status: Option<TenantStatus>,
    pub tier: Option<TierName>,
    pub max_runners: Option<u32>,
    pub org_name: Option<OrgName>,
}

impl TenantStatus {
    /// Whether an operator or GitHub event may move a tenant from `self` to `next`.
    ///
    /// `deleted` is final except through a fresh `installation.created` (a reinstall), which the
    /// store handles as a reactivation, not through this rule.
    pub fn can_become(self, next: TenantStatus) -> bool {
        use TenantStatus::*;
        match (self, next) {
            (a, b) if a == b => true,
            (Deleted, _) => false,
            (_, Deleted) => true,
            (Pending, Active) | (Pending, Suspended) => true,
            (Active, Suspended) | (Suspended, Active) => true,
            (Active, Pending) | (Suspended, Pending) => false,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_transitions() {
        use TenantStatus::*;
        let table = [
            (Pending, Active, true),
            (Active, Suspended, true),
            (Suspended, Active, true),
            (Active, Deleted, true),
            (Deleted, Active, false),
            (Deleted, Suspended, false),
            (Active, Pending, false),
            (Active, Active, true),
        ];
        for (from, to, allowed) in table {
            assert_eq!(from.can_become(to), allowed, "{from} -> {to}");
        }
    }

    #[test]
    fn max_runners_are_bounded() {
        for (value, ok) in
            [(0, false), (1, true), (MAX_RUNNERS_LIMIT, true), (MAX_RUNNERS_LIMIT + 1, false), (u32::MAX, false)]
        {
            assert_eq!(check_max_runners(value).is_ok(), ok, "{value}");
        }
    }

    #[test]
    fn a_taken_org_name_is_found_in_an_error_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("store failed")]
        struct Outer(#[source] OrgNameTaken);
        let taken = OrgNameTaken { org_name: OrgName::from("acme"), holder: Some(InstallationId(7)) };
        let outer = Outer(taken.clone());
        assert_eq!(OrgNameTaken::find_in(&outer), Some(&taken));
        assert!(taken.to_string().contains("already used by tenant 7"), "{taken}");
        let other = std::io::Error::other("unrelated");
        assert_eq!(OrgNameTaken::find_in(&other), None);
    }

    #[test]
    fn parse_status_and_type() {
        assert_eq!("active".parse::<TenantStatus>().unwrap(), TenantStatus::Active);
        let err = "activ".parse::<TenantStatus>().unwrap_err();
        assert!(err.to_string().contains("expected one of"));
        assert_eq!("User".parse::<OrgType>().unwrap(), OrgType::User);
    }
}
