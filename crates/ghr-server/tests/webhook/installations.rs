//! The tenant lifecycle driven by `installation` and `installation_target` deliveries: onboarding (automatic
//! or pending approval), suspend and unsuspend, uninstall and reinstall, renames, and personal accounts
//! whose runners are registered per repository.

use crate::support::fleet::runner_where;
use crate::support::webhooks::{
    JobSource, account, assert_applied, assert_ignored, deliver, installation, renamed, tenant, tenants,
};
use crate::support::{Harness, SMALL};
use ghr_config::Onboarding;
use ghr_core::ids::{AccountId, InstallationId, JobId, OrgName};
use ghr_core::runner::RunnerState;
use ghr_core::tenant::{OrgType, TenantStatus};
use ghr_testkit::github::RunnerScopeInfo;

const ACME: InstallationId = InstallationId(7201);

async fn status_of(h: &Harness, id: InstallationId) -> TenantStatus {
    tenant(h, id).await.unwrap_or_else(|| panic!("no tenant {id}")).status
}

#[tokio::test]
async fn installation_events_move_the_tenant_through_its_lifecycle() {
    let h = Harness::start().await;
    let acme = account("acme", 601, OrgType::Organization);
    assert_applied(&deliver(&h, &installation("created", ACME, &acme)).await, "tenant created");
    let created = tenant(&h, ACME).await.expect("the tenant");
    assert_eq!((created.org_name.as_str(), created.org_type), ("acme", OrgType::Organization));
    assert_eq!((created.status, created.tier.as_str(), created.max_runners), (TenantStatus::Active, "small", 2));
    assert_eq!(created.metadata.github_account_id, Some(AccountId(601)));
    assert_eq!(created.metadata.sender_login.as_deref(), Some("octocat"));

    // `created` again under another GUID: one tenant, unchanged.
    assert_ignored(&deliver(&h, &installation("created", ACME, &acme)).await, "tenant already exists");
    assert_eq!(tenants(&h).await, vec![created]);

    assert_applied(&deliver(&h, &installation("suspend", ACME, &acme)).await, "tenant suspended");
    assert_eq!(status_of(&h, ACME).await, TenantStatus::Suspended);
    assert_applied(&deliver(&h, &installation("unsuspend", ACME, &acme)).await, "tenant resumed");
    assert_eq!(status_of(&h, ACME).await, TenantStatus::Active);
    assert_applied(&deliver(&h, &installation("deleted", ACME, &acme)).await, "tenant deleted");
    assert_eq!(status_of(&h, ACME).await, TenantStatus::Deleted);
    // Late events for an uninstalled tenant do not revive it.
    for action in ["suspend", "unsuspend"] {
        let answer = deliver(&h, &installation(action, ACME, &acme)).await;
        assert!((200..300).contains(&answer.status), "{action}: {}", answer.text);
        assert_eq!(status_of(&h, ACME).await, TenantStatus::Deleted, "after {action}");
    }

    // A reinstall (a fresh `created`) reactivates the same tenant, under the login it has now.
    let renamed_account = account("acme-labs", 601, OrgType::Organization);
    assert_applied(&deliver(&h, &installation("created", ACME, &renamed_account)).await, "tenant created");
    let reinstalled = tenant(&h, ACME).await.expect("the tenant");
    assert_eq!((reinstalled.status, reinstalled.org_name.as_str()), (TenantStatus::Active, "acme-labs"));
    assert_eq!(tenants(&h).await.len(), 1);
}

/// GitHub gives a reinstalled App a new installation id: the org becomes a new tenant, and its login finds it.
#[tokio::test]
async fn a_reinstall_under_a_new_installation_id_is_a_new_active_tenant() {
    let h = Harness::start().await;
    let acme = account("acme", 605, OrgType::Organization);
    assert_applied(&deliver(&h, &installation("created", ACME, &acme)).await, "tenant created");
    assert_applied(&deliver(&h, &installation("deleted", ACME, &acme)).await, "tenant deleted");
    let again = InstallationId(7202);
    assert_applied(&deliver(&h, &installation("created", again, &acme)).await, "tenant created");
    assert_eq!((status_of(&h, ACME).await, status_of(&h, again).await), (TenantStatus::Deleted, TenantStatus::Active));
    let shown = h.get("/api/v1/tenants/acme").await.expect(200);
    assert_eq!(shown["installation_id"].as_u64(), Some(again.0), "the login names the live installation");
}

#[tokio::test]
async fn events_for_unknown_installations_create_no_tenant() {
    let h = Harness::start().await;
    let stranger = account("stranger", 602, OrgType::Organization);
    for action in ["suspend", "unsuspend", "deleted"] {
        let answer = deliver(&h, &installation(action, InstallationId(7299), &stranger)).await;
        assert!((200..300).contains(&answer.status), "{action}: {}", answer.text);
    }
    let answer = deliver(&h, &renamed(InstallationId(7299), &stranger, "old-stranger")).await;
    assert!((200..300).contains(&answer.status), "rename: {}", answer.text);
    assert_eq!(tenants(&h).await, vec![]);
}

#[tokio::test]
async fn with_approval_onboarding_a_new_or_reinstalled_tenant_is_pending() {
    let h = Harness::start_with(|s| s.onboarding = Onboarding::Approval).await;
    let acme = account("acme", 603, OrgType::Organization);
    assert_applied(&deliver(&h, &installation("created", ACME, &acme)).await, "tenant created");
    assert_eq!(status_of(&h, ACME).await, TenantStatus::Pending);
    // `unsuspend` is not an approval.
    deliver(&h, &installation("unsuspend", ACME, &acme)).await;
    assert_eq!(status_of(&h, ACME).await, TenantStatus::Pending);
    assert_applied(&deliver(&h, &installation("deleted", ACME, &acme)).await, "tenant deleted");
    assert_applied(&deliver(&h, &installation("created", ACME, &acme)).await, "tenant created");
    assert_eq!(status_of(&h, ACME).await, TenantStatus::Pending, "a reinstall needs approval again");
}

#[tokio::test]
async fn a_renamed_target_updates_the_org_name() {
    let h = Harness::start().await;
    let acme = account("acme", 604, OrgType::Organization);
    assert_applied(&deliver(&h, &installation("created", ACME, &acme)).await, "tenant created");
    let labs = account("acme-labs", 604, OrgType::Organization);
    assert_applied(&deliver(&h, &renamed(ACME, &labs, "acme")).await, "tenant renamed");

    assert_eq!(tenant(&h, ACME).await.expect("the tenant").org_name.as_str(), "acme-labs");
    let found = h.store.tenant_find_by_org(&OrgName::from("ACME-Labs")).await.expect("a lookup");
    assert_eq!(found.map(|t| t.installation_id), Some(ACME), "found by the new login, case-insensitively");
    assert_eq!(h.store.tenant_find_by_org(&OrgName::from("acme")).await.expect("a lookup"), None);
    let shown = h.get("/api/v1/tenants/acme-labs").await.expect(200);
    assert_eq!((shown["installation_id"].as_u64(), shown["org_name"].as_str()), (Some(ACME.0), Some("acme-labs")));
    h.get("/api/v1/tenants/acme").await.expect_error(404, "not_found");
}

#[tokio::test]
async fn a_personal_account_gets_repository_level_runners() {
    let h = Harness::start().await;
    // The emulator installs the App and delivers the signed `installation.created` to the server.
    let alice = h.github.install_user("alice").await.expect("installing on a personal account");
    let created = h.github.deliveries().into_iter().find(|d| d.installation_id == Some(alice)).expect("a delivery");
    assert_eq!((created.event.as_str(), created.status_code), ("installation", 202));
    let tenant = tenant(&h, alice).await.expect("the tenant");
    assert_eq!(
        (tenant.org_type, tenant.org_name.as_str(), tenant.status),
        (OrgType::User, "alice", TenantStatus::Active)
    );

    let source = JobSource::from_emulator(&h, alice, "dotfiles");
    let job = JobId(7_202_001);
    assert_applied(&deliver(&h, &source.delivery("queued", job, SMALL, None)).await, "queued");
    let runner = runner_where(&h, alice, "a runner launched for the job", |r| {
        r.state == RunnerState::Launching && r.intended_job == Some(job) && r.instance_id.is_some()
    })
    .await;
    assert_eq!(runner.scope_repo.as_deref(), Some("alice/dotfiles"), "{runner:?}");
    let launched: Vec<_> = h.provider.running().into_iter().map(|i| (i.runner_name, i.installation_id)).collect();
    assert_eq!(launched, vec![(Some(runner.name.clone()), Some(alice))]);
    let registration = h.github.runner_by_name(runner.name.as_str()).expect("a registration on GitHub");
    assert_eq!(registration.scope, RunnerScopeInfo::Repo("alice/dotfiles".into()));
}

/// An org has at most one installation of an App: `created` under a new id for a login a live tenant holds
/// means the old installation is gone (its `deleted` was lost). The old tenant is retired and its runners torn
/// down; the new one is onboarded and owns the login.
#[tokio::test]
async fn a_new_installation_of_a_live_login_retires_the_stale_tenant() {
    let h = Harness::start().await;
    let old = h.install("acme").await;
    h.queue(old, "app", SMALL).await;
    let runner = runner_where(&h, old, "a runner launched for the old installation", |r| {
        r.state == RunnerState::Launching && r.instance_id.is_some()
    })
    .await;

    let new = InstallationId(old.0 + 1000);
    let acme = account("ACME", 606, OrgType::Organization);
    assert_applied(&deliver(&h, &installation("created", new, &acme)).await, "tenant created");
    assert_eq!(status_of(&h, old).await, TenantStatus::Deleted, "the stale tenant is retired");
    assert_eq!(status_of(&h, new).await, TenantStatus::Active, "the onboarding is never dropped");
    let found = h.store.tenant_find_by_org(&OrgName::from("acme")).await.expect("a lookup");
    assert_eq!(found.map(|t| t.installation_id), Some(new));

    h.server.reconciler.pass(chrono::Utc::now()).await;
    let torn_down = runner_where(&h, old, "the stale tenant's runner terminated", |r| {
        r.name == runner.name && r.state == RunnerState::Terminated
    })
    .await;
    assert_eq!(torn_down.installation_id, old);
    assert!(h.provider.running().iter().all(|i| i.installation_id != Some(old)), "no instance of the old tenant");
}

/// A rename onto a login another live tenant holds changes neither tenant (a warning says why).
#[tokio::test]
async fn a_rename_onto_a_live_login_is_not_applied() {
    let h = Harness::start().await;
    let acme = account("acme", 607, OrgType::Organization);
    let beta_id = InstallationId(7203);
    assert_applied(&deliver(&h, &installation("created", ACME, &acme)).await, "tenant created");
    let beta = account("beta", 608, OrgType::Organization);
    assert_applied(&deliver(&h, &installation("created", beta_id, &beta)).await, "tenant created");
    let answer = deliver(&h, &renamed(beta_id, &account("Acme", 608, OrgType::Organization), "beta")).await;
    assert!((200..300).contains(&answer.status), "{}", answer.text);
    assert_eq!(tenant(&h, beta_id).await.expect("beta").org_name.as_str(), "beta");
    assert_eq!(tenant(&h, ACME).await.expect("acme").org_name.as_str(), "acme");
}
