//! Tenant operations shared by webhook intake, the CLI and the admin API.
//!
//! Changing a tenant's tier re-derives `max_runners` from the catalog unless an explicit limit is given.
//! Status changes follow `TenantStatus::can_become`; a reinstall (`installation.created` for a deleted
//! tenant) is the only way back from `deleted`.
//!
//! Logins are unique among tenants that are not deleted (the store enforces it). When GitHub installs the App
//! for a login a live tenant of another installation holds, that tenant is stale — an org has at most one
//! installation of an App, so its `deleted` delivery was lost — and is marked deleted (the reconciler tears
//! its runners down) so the new installation is onboarded. An operator's add is refused instead.

use crate::error::{EngineError, StoreContext};
use crate::settings::EngineSettings;
use ghr_config::Onboarding;
use ghr_core::clock::{Clock, SystemClock};
use ghr_core::event::{Account, Sender};
use ghr_core::ids::{InstallationId, OrgName, TierName};
use ghr_core::ports::Store;
use ghr_core::tenant::{NewTenant, OrgNameTaken, Tenant, TenantMetadata, TenantStatus, TenantUpdate};
use ghr_core::text::Clipped;
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
    /// Stamps every change (tests and the simulation own time).
    clock: Arc<dyn Clock>,
}

impl TenantService {
    /// A service on the system clock.
    pub fn new(store: Arc<dyn Store>, settings: Arc<EngineSettings>) -> Self {
        Self { store, settings, clock: Arc::new(SystemClock) }
    }

    /// The same service reading another clock (the engine's `Ports::clock`).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
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

    /// Handle `installation.created`: GitHub's word wins, so a stale live tenant holding the login is
    /// retired first (see the module documentation).
    pub async fn onboard(
        &self,
        installation_id: InstallationId,
        account: &Account,
        sender: Option<&Sender>,
        tier: Option<TierName>,
    ) -> Result<Onboarded, EngineError> {
        self.retire_stale_holder(installation_id, &account.login).await?;
        self.onboard_unchecked(installation_id, account, sender, tier).await
    }

    /// An operator's `tenants add`: a login held by another live tenant is refused (the store's
    /// [`OrgNameTaken`] is the error's source), since only GitHub can say which installation is current.
    pub async fn add(
        &self,
        installation_id: InstallationId,
        account: &Account,
        tier: Option<TierName>,
    ) -> Result<Onboarded, EngineError> {
        self.onboard_unchecked(installation_id, account, None, tier).await
    }

    /// Mark deleted a live tenant of another installation that holds `login`.
    async fn retire_stale_holder(&self, installation_id: InstallationId, login: &OrgName) -> Result<(), EngineError> {
        let holder = self.store.tenant_find_by_org(login).await.doing("finding a tenant by org")?;
        let Some(stale) = holder.filter(|t| t.installation_id != installation_id && t.status != TenantStatus::Deleted)
        else {
            return Ok(());
        };
        tracing::warn!(
            org = %Clipped(login.as_str()),
            stale_installation_id = %stale.installation_id,
            %installation_id,
            "the login was installed again under a new installation; the old installation's uninstall was \
             missed, so its tenant is marked deleted and its runners are torn down"
        );
        self.mark_deleted(stale.installation_id).await?;
        Ok(())
    }

    async fn onboard_unchecked(
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
        let (tenant, created) = self.store.tenant_create(new, self.clock.now()).await.doing("creating a tenant")?;
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
                .tenant_update(installation_id, update, self.clock.now())
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
            .tenant_update(id, update, self.clock.now())
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
            .tenant_update(id, update, self.clock.now())
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
            .tenant_update(id, update, self.clock.now())
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
        self.store.tenant_update(id, update, self.clock.now()).await.doing("marking a tenant deleted")
    }

    /// Track an org rename (`installation_target.renamed`). A new login that another live tenant holds is
    /// not applied (None, with a warning): that tenant's login is stale, but it may still be installed under
    /// a name ghr missed, so neither tenant is changed and the operator is told.
    pub async fn rename(&self, id: InstallationId, login: OrgName) -> Result<Option<Tenant>, EngineError> {
        let update = TenantUpdate { org_name: Some(login), ..TenantUpdate::default() };
        match self.store.tenant_update(id, update, self.clock.now()).await {
            Err(error) if OrgNameTaken::find_in(&error).is_some() => {
                let taken = OrgNameTaken::find_in(&error).map(ToString::to_string).unwrap_or_default();
                tracing::warn!(installation_id = %id, conflict = %Clipped(&taken), "rename not applied");
                Ok(None)
            }
            result => result.doing("renaming a tenant"),
        }
    }
}
