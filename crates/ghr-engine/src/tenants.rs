//! Tenant operations shared by webhook intake, the CLI and the admin API.
//!
//! Changing a tenant's tier re-derives `max_runners` from the catalog unless an explicit limit is given.
//! Status changes follow `TenantStatus::can_become`; a reinstall (`installation.created` for a deleted
//! tenant) is the only way back from `deleted`.

use crate::error::{EngineError, StoreContext};
use crate::settings::EngineSettings;
use chrono::Utc;
use ghr_config::Onboarding;
use ghr_core::event::{Account, Sender};
use ghr_core::ids::{InstallationId, OrgName, TierName};
use ghr_core::ports::Store;
use ghr_core::tenant::{NewTenant, Tenant, TenantMetadata, TenantStatus, TenantUpdate};
use std::sync::Arc;

/// What onboarding did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Onboarded {
    Created(Tenant),
    /// A deleted tenant installed the App again.
    Reinstalled(Tenant),
    /// A duplicate `created`: nothing changed.
    AlreadyKnown(Tenant),
}

#[derive(Clone)]
pub struct TenantService {
    store: Arc<dyn Store>,
    settings: Arc<EngineSettings>,
}

impl TenantService {
    pub fn new(store: Arc<dyn Store>, settings: Arc<EngineSettings>) -> Self {
        Self { store, settings }
    }

    fn initial_status(&self) -> TenantStatus {
        match self.settings.onboarding {
            Onboarding::Automatic => TenantStatus::Active,
            Onboarding::Approval => TenantStatus::Pending,
        }
    }

    fn limit_of(&self, tier: &TierName) -> Result<u32, EngineError> {
        self.settings.catalog.require(tier).map(|t| t.max_runners).map_err(EngineError::UnknownTier)
    }

    /// Handle `installation.created` (or an operator's `tenants add`).
    pub async fn onboard(
        &self,
        installation_id: InstallationId,
        account: &Account,
        sender: Option<&Sender>,
        tier: Option<TierName>,
    ) -> Result<Onboarded, EngineError> {
        let tier = tier.unwrap_or_else(|| self.settings.default_tier.clone());
        let max_runners = self.limit_of(&tier)?;
        let new = NewTenant {
            installation_id,
            org_name: account.login.clone(),
            org_type: account.kind,
            status: self.initial_status(),
            tier,
            max_runners,
            metadata: TenantMetadata {
                github_account_id: Some(account.id),
                sender_login: sender.map(|s| s.login.clone()),
                sender_id: sender.map(|s| s.id),
            },
        };
        let (tenant, created) = self.store.tenant_create(new, Utc::now()).await.doing("creating a tenant")?;
        if created {
            return Ok(Onboarded::Created(tenant));
        }
        if tenant.status == TenantStatus::Deleted {
            let update = TenantUpdate {
                status: Some(self.initial_status()),
                org_name: Some(account.login.clone()),
                ..TenantUpdate::default()
            };
            let tenant = self
                .store
                .tenant_update(installation_id, update, Utc::now())
                .await
                .doing("reactivating a reinstalled tenant")?
                .ok_or(EngineError::UnknownTenant(installation_id))?;
            return Ok(Onboarded::Reinstalled(tenant));
        }
        Ok(Onboarded::AlreadyKnown(tenant))
    }

    pub async fn get(&self, id: InstallationId) -> Result<Tenant, EngineError> {
        self.store.tenant_get(id).await.doing("reading a tenant")?.ok_or(EngineError::UnknownTenant(id))
    }

    /// Resolve an installation id or an org login.
    pub async fn resolve(&self, reference: &str) -> Result<Tenant, EngineError> {
        if let Ok(id) = reference.parse::<InstallationId>()
            && let Some(tenant) = self.store.tenant_get(id).await.doing("reading a tenant")?
        {
            return Ok(tenant);
        }
        self.store
            .tenant_find_by_org(&OrgName::from(reference))
            .await
            .doing("finding a tenant by org")?
            .ok_or_else(|| EngineError::UnknownTenantRef(reference.to_owned()))
    }

    pub async fn list(&self, status: Option<TenantStatus>) -> Result<Vec<Tenant>, EngineError> {
        self.store.tenant_list(status).await.doing("listing tenants")
    }

    /// Move a tenant to another plan. `max_runners` follows the tier unless given.
    pub async fn set_tier(
        &self,
        id: InstallationId,
        tier: TierName,
        max_runners: Option<u32>,
    ) -> Result<Tenant, EngineError> {
        let derived = self.limit_of(&tier)?;
        let max_runners = match max_runners {
            Some(0) => return Err(EngineError::ZeroMaxRunners),
            Some(n) => n,
            None => derived,
        };
        let update = TenantUpdate { tier: Some(tier), max_runners: Some(max_runners), ..TenantUpdate::default() };
        self.store
            .tenant_update(id, update, Utc::now())
            .await
            .doing("changing a tenant's tier")?
            .ok_or(EngineError::UnknownTenant(id))
    }

    /// Change only the concurrent-runner limit.
    pub async fn set_max_runners(&self, id: InstallationId, max_runners: u32) -> Result<Tenant, EngineError> {
        if max_runners == 0 {
            return Err(EngineError::ZeroMaxRunners);
        }
        let update = TenantUpdate { max_runners: Some(max_runners), ..TenantUpdate::default() };
        self.store
            .tenant_update(id, update, Utc::now())
            .await
            .doing("changing max_runners")?
            .ok_or(EngineError::UnknownTenant(id))
    }

    /// Move a tenant to `status`, refusing transitions the lifecycle forbids.
    pub async fn set_status(&self, id: InstallationId, status: TenantStatus) -> Result<Tenant, EngineError> {
        let current = self.get(id).await?;
        if !current.status.can_become(status) {
            return Err(EngineError::InvalidTransition { id, from: current.status, to: status });
        }
        if current.status == status {
            return Ok(current);
        }
        let update = TenantUpdate { status: Some(status), ..TenantUpdate::default() };
        self.store
            .tenant_update(id, update, Utc::now())
            .await
            .doing("changing a tenant's status")?
            .ok_or(EngineError::UnknownTenant(id))
    }

    pub async fn suspend(&self, id: InstallationId) -> Result<Tenant, EngineError> {
        self.set_status(id, TenantStatus::Suspended).await
    }

    /// Serve a suspended tenant again. A pending tenant needs [`TenantService::approve`], not this.
    pub async fn resume(&self, id: InstallationId) -> Result<Tenant, EngineError> {
        let current = self.get(id).await?;
        if current.status == TenantStatus::Pending {
            return Err(EngineError::InvalidTransition { id, from: current.status, to: TenantStatus::Active });
        }
        self.set_status(id, TenantStatus::Active).await
    }

    /// Approve a pending tenant (`onboarding = "approval"`).
    pub async fn approve(&self, id: InstallationId) -> Result<Tenant, EngineError> {
        let current = self.get(id).await?;
        if current.status != TenantStatus::Pending {
            return Err(EngineError::InvalidTransition { id, from: current.status, to: TenantStatus::Active });
        }
        self.set_status(id, TenantStatus::Active).await
    }

    /// Mark a tenant deleted (uninstall). Unknown tenants are not an error (GitHub may send `deleted` for an
    /// installation whose `created` was never seen).
    pub async fn mark_deleted(&self, id: InstallationId) -> Result<Option<Tenant>, EngineError> {
        let update = TenantUpdate { status: Some(TenantStatus::Deleted), ..TenantUpdate::default() };
        self.store.tenant_update(id, update, Utc::now()).await.doing("marking a tenant deleted")
    }

    /// Track an org rename (`installation_target.renamed`).
    pub async fn rename(&self, id: InstallationId, login: OrgName) -> Result<Option<Tenant>, EngineError> {
        let update = TenantUpdate { org_name: Some(login), ..TenantUpdate::default() };
        self.store.tenant_update(id, update, Utc::now()).await.doing("renaming a tenant")
    }
}
