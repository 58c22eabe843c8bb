//! Contracts of tenants, webhook deliveries and checkpoints.

use super::fixtures::{Found, at, new_tenant, ok};
use ghr_core::ids::{DeliveryId, InstallationId, OrgName, TierName};
use ghr_core::ports::{DeliveryRecord, Store, StoreError};
use ghr_core::tenant::{OrgNameTaken, OrgType, TenantStatus, TenantUpdate};
use std::sync::Arc;

/// Creating a tenant twice keeps the first record and reports `false` the second time.
pub async fn tenant_create_is_idempotent(store: Arc<dyn Store>) {
    let first = new_tenant(10, "Acme", TenantStatus::Active, "small", 2);
    let (created, inserted) = ok(store.tenant_create(first.clone(), at(1)).await, "tenant_create");
    assert!(inserted, "the first tenant_create must report an insert");
    assert_eq!(created.installation_id, InstallationId(10));
    assert_eq!(created.org_name, OrgName::from("Acme"), "the login keeps its case");
    assert_eq!(created.org_type, OrgType::Organization);
    assert_eq!(created.status, TenantStatus::Active);
    assert_eq!(created.tier, TierName::from("small"));
    assert_eq!(created.max_runners, 2);
    assert_eq!(created.metadata, first.metadata, "metadata must round-trip");
    assert_eq!((created.created_at, created.updated_at), (at(1), at(1)), "timestamps come from `now`");

    let mut second = new_tenant(10, "Other", TenantStatus::Pending, "large", 9);
    second.org_type = OrgType::User;
    let (again, inserted) = ok(store.tenant_create(second, at(2)).await, "tenant_create (again)");
    assert!(!inserted, "a second tenant_create for the installation must report `false`");
    assert_eq!(again, created, "a second tenant_create must return the existing tenant unchanged");
    assert_eq!(ok(store.tenant_get(InstallationId(10)).await, "tenant_get"), Some(created));
    assert_eq!(ok(store.tenant_get(InstallationId(11)).await, "tenant_get"), None, "unknown tenant");
}

/// Updates change only the given fields and stamp `updated_at`; a rename moves the login lookup.
pub async fn tenant_update_applies_given_fields(store: Arc<dyn Store>) {
    let id = InstallationId(20);
    let original =
        ok(store.tenant_create(new_tenant(20, "Acme", TenantStatus::Pending, "small", 2), at(0)).await, "").0;

    let update = TenantUpdate { status: Some(TenantStatus::Active), ..TenantUpdate::default() };
    let active = ok(store.tenant_update(id, update, at(10)).await, "tenant_update(status)")
        .found("tenant_update of an existing tenant");
    assert_eq!(active.status, TenantStatus::Active);
    assert_eq!(active.updated_at, at(10), "tenant_update must stamp updated_at");
    assert_eq!(active.created_at, original.created_at, "created_at never changes");
    assert_eq!((active.tier.clone(), active.max_runners), (original.tier.clone(), original.max_runners));

    let update = TenantUpdate { tier: Some("large".into()), max_runners: Some(7), ..TenantUpdate::default() };
    let upgraded = ok(store.tenant_update(id, update, at(20)).await, "tenant_update(tier)").found("tenant_update");
    assert_eq!((upgraded.tier.as_str(), upgraded.max_runners), ("large", 7));
    assert_eq!(upgraded.status, TenantStatus::Active, "status must stay as it was");
    assert_eq!(upgraded.org_name, original.org_name, "org name must stay as it was");

    let update = TenantUpdate { org_name: Some("Acme-Renamed".into()), ..TenantUpdate::default() };
    let renamed = ok(store.tenant_update(id, update, at(30)).await, "tenant_update(org)").found("tenant_update");
    assert_eq!(renamed.org_name.as_str(), "Acme-Renamed");
    assert_eq!(renamed.metadata, original.metadata, "metadata must stay as it was");
    let found = ok(store.tenant_find_by_org(&"acme-renamed".into()).await, "tenant_find_by_org");
    assert_eq!(found, Some(renamed.clone()), "a renamed tenant is found by its new login");
    let old = ok(store.tenant_find_by_org(&"acme".into()).await, "tenant_find_by_org");
    assert_eq!(old, None, "a renamed tenant is no longer found by its old login");

    let touched = ok(store.tenant_update(id, TenantUpdate::default(), at(40)).await, "").found("tenant_update");
    assert_eq!(touched.updated_at, at(40), "an empty update still stamps updated_at");
    assert_eq!(ok(store.tenant_get(id).await, "tenant_get"), Some(touched), "tenant_get sees the update");

    let missing = ok(store.tenant_update(InstallationId(21), TenantUpdate::default(), at(50)).await, "");
    assert_eq!(missing, None, "tenant_update of an unknown tenant returns None");
    assert_eq!(ok(store.tenant_get(InstallationId(21)).await, "tenant_get"), None, "and creates nothing");
}

/// Lists are ordered by installation id, and filter on status.
pub async fn tenant_list_filters_by_status(store: Arc<dyn Store>) {
    let statuses = [
        (35, TenantStatus::Active),
        (31, TenantStatus::Suspended),
        (39, TenantStatus::Active),
        (30, TenantStatus::Pending),
        (33, TenantStatus::Deleted),
        (32, TenantStatus::Active),
    ];
    for (id, status) in statuses {
        ok(store.tenant_create(new_tenant(id, &format!("org{id}"), status, "small", 1), at(0)).await, "");
    }
    let ids = |tenants: Vec<ghr_core::tenant::Tenant>| tenants.iter().map(|t| t.installation_id.0).collect::<Vec<_>>();
    assert_eq!(ids(ok(store.tenant_list(None).await, "tenant_list")), vec![30, 31, 32, 33, 35, 39]);
    let active = ok(store.tenant_list(Some(TenantStatus::Active)).await, "tenant_list(active)");
    assert!(active.iter().all(|t| t.status == TenantStatus::Active));
    assert_eq!(ids(active), vec![32, 35, 39], "active tenants in installation order");
    assert_eq!(ids(ok(store.tenant_list(Some(TenantStatus::Deleted)).await, "")), vec![33]);
    let suspend = TenantUpdate { status: Some(TenantStatus::Suspended), ..TenantUpdate::default() };
    ok(store.tenant_update(InstallationId(35), suspend, at(1)).await, "tenant_update");
    assert_eq!(ids(ok(store.tenant_list(Some(TenantStatus::Active)).await, "")), vec![32, 39], "list follows updates");

    // Pages of ids: installation order, strictly after the cursor, at most `limit`, one status.
    let page = |after: Option<u64>, limit| {
        let store = store.clone();
        async move {
            let ids = ok(store.tenant_ids_after(TenantStatus::Active, after.map(InstallationId), limit).await, "");
            ids.into_iter().map(|id| id.0).collect::<Vec<_>>()
        }
    };
    assert_eq!(page(None, 10).await, vec![32, 39], "the first page starts at the lowest id");
    assert_eq!(page(None, 1).await, vec![32], "at most `limit`");
    assert_eq!(page(Some(32), 1).await, vec![39], "strictly after the cursor");
    assert_eq!(page(Some(39), 5).await, Vec::<u64>::new(), "past the last id: empty");
    assert_eq!(page(Some(0), 0).await, Vec::<u64>::new(), "limit 0 reads nothing");
    let suspended = ok(store.tenant_ids_after(TenantStatus::Suspended, None, 10).await, "");
    assert_eq!(suspended, vec![InstallationId(31), InstallationId(35)], "filtered on the status asked for");
}

/// Logins are matched case-insensitively; a live tenant wins over a deleted one of the same login.
pub async fn tenant_find_by_org_ignores_case(store: Arc<dyn Store>) {
    ok(store.tenant_create(new_tenant(40, "OctoCat", TenantStatus::Active, "small", 1), at(0)).await, "");
    ok(store.tenant_create(new_tenant(41, "other", TenantStatus::Active, "small", 1), at(0)).await, "");
    for query in ["octocat", "OCTOCAT", "OctoCat"] {
        let found = ok(store.tenant_find_by_org(&query.into()).await, "tenant_find_by_org")
            .unwrap_or_else(|| panic!("tenant_find_by_org({query:?}) must find login OctoCat"));
        assert_eq!(found.installation_id, InstallationId(40), "{query}");
        assert_eq!(found.org_name.as_str(), "OctoCat", "the stored login keeps its case");
    }
    assert_eq!(ok(store.tenant_find_by_org(&"octo".into()).await, ""), None, "no prefix matching");

    // An uninstall then reinstall: the old installation is deleted, a new one serves the login.
    ok(store.tenant_create(new_tenant(50, "Phoenix", TenantStatus::Active, "small", 1), at(0)).await, "");
    let delete = TenantUpdate { status: Some(TenantStatus::Deleted), ..TenantUpdate::default() };
    ok(store.tenant_update(InstallationId(50), delete, at(1)).await, "tenant_update");
    ok(store.tenant_create(new_tenant(45, "phoenix", TenantStatus::Active, "small", 1), at(2)).await, "");
    let found = ok(store.tenant_find_by_org(&"PHOENIX".into()).await, "").map(|t| t.installation_id);
    assert_eq!(found, Some(InstallationId(45)), "the live installation of a login wins over a deleted one");
}

/// A delivery id is recorded once; a redelivery reports `false` and changes nothing.
pub async fn delivery_record_deduplicates(store: Arc<dyn Store>) {
    let delivery = DeliveryRecord {
        delivery_id: DeliveryId::from("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        event: "workflow_job".to_owned(),
        action: Some("queued".to_owned()),
        installation_id: Some(InstallationId(60)),
        received_at: at(0),
    };
    assert!(!ok(store.delivery_seen(&delivery.delivery_id).await, "delivery_seen"), "not seen before recording");
    assert!(ok(store.delivery_record(&delivery).await, "delivery_record"), "first record must report `true`");
    assert!(ok(store.delivery_seen(&delivery.delivery_id).await, "delivery_seen"), "seen after recording");
    let redelivery = DeliveryRecord { received_at: at(60), action: None, ..delivery.clone() };
    assert!(!ok(store.delivery_record(&redelivery).await, "delivery_record"), "a redelivery must report `false`");

    let bare = DeliveryRecord {
        delivery_id: DeliveryId::from("ping-1"),
        event: "ping".to_owned(),
        action: None,
        installation_id: None,
        received_at: at(1),
    };
    assert!(ok(store.delivery_record(&bare).await, "delivery_record"), "optional fields may be absent");
    assert!(!ok(store.delivery_seen(&DeliveryId::from("ping-2")).await, ""), "other ids stay unseen");
}

/// The conflict `result` must be: a login taken by another tenant that is not deleted.
fn expect_taken<T: std::fmt::Debug>(result: Result<T, StoreError>, org: &str, holder: u64, what: &str) {
    let error = match result {
        Ok(value) => panic!("{what} must fail: login {org:?} is taken by tenant {holder}, got {value:?}"),
        Err(error) => error,
    };
    let taken = OrgNameTaken::find_in(&error)
        .unwrap_or_else(|| panic!("{what} must fail with OrgNameTaken in its source chain, got {error:?}"));
    assert!(taken.org_name.as_str().eq_ignore_ascii_case(org), "{what}: {taken:?}");
    assert!(taken.holder.is_none_or(|h| h == InstallationId(holder)), "{what}: the holder is {holder}: {taken:?}");
}

/// Logins are unique (case-insensitively) among tenants that are not deleted: a create, a rename or a
/// reactivation onto a taken login fails with [`OrgNameTaken`] and writes nothing; deleted tenants hold no
/// login, and a tenant may change the case of its own.
pub async fn tenant_org_name_is_unique_among_live_tenants(store: Arc<dyn Store>) {
    let acme = ok(store.tenant_create(new_tenant(70, "Acme", TenantStatus::Active, "small", 2), at(0)).await, "").0;
    ok(store.tenant_create(new_tenant(72, "beta", TenantStatus::Suspended, "small", 2), at(0)).await, "");

    let clash = store.tenant_create(new_tenant(71, "ACME", TenantStatus::Active, "small", 2), at(1)).await;
    expect_taken(clash, "acme", 70, "tenant_create of a taken login");
    assert_eq!(ok(store.tenant_get(InstallationId(71)).await, "tenant_get"), None, "nothing was created");
    assert_eq!(
        ok(store.tenant_find_by_org(&"acme".into()).await, "tenant_find_by_org"),
        Some(acme.clone()),
        "the login still finds its tenant"
    );
    // Creating an existing installation again stays idempotent, whatever login it names.
    let (again, inserted) =
        ok(store.tenant_create(new_tenant(72, "acme", TenantStatus::Active, "small", 2), at(1)).await, "");
    assert!(!inserted && again.org_name.as_str() == "beta", "an existing installation is returned unchanged");

    let rename = TenantUpdate { org_name: Some("aCmE".into()), ..TenantUpdate::default() };
    expect_taken(
        store.tenant_update(InstallationId(72), rename, at(2)).await,
        "acme",
        70,
        "a rename onto a taken login",
    );
    let beta = ok(store.tenant_get(InstallationId(72)).await, "tenant_get").found("tenant 72");
    assert_eq!((beta.org_name.as_str(), beta.updated_at), ("beta", at(0)), "a refused rename writes nothing");

    let own_case = TenantUpdate { org_name: Some("ACME".into()), ..TenantUpdate::default() };
    let recased = ok(store.tenant_update(InstallationId(70), own_case, at(3)).await, "").found("tenant 70");
    assert_eq!(recased.org_name.as_str(), "ACME", "a tenant may change the case of its own login");

    // A deleted tenant holds no login: the login can be onboarded under a new installation...
    let delete = TenantUpdate { status: Some(TenantStatus::Deleted), ..TenantUpdate::default() };
    ok(store.tenant_update(InstallationId(70), delete, at(4)).await, "tenant_update(deleted)");
    let (successor, inserted) =
        ok(store.tenant_create(new_tenant(73, "acme", TenantStatus::Active, "small", 2), at(5)).await, "");
    assert!(inserted && successor.status == TenantStatus::Active, "a deleted tenant's login is free");
    // ...and the deleted one cannot come back under it while the new one lives.
    let revive = TenantUpdate { status: Some(TenantStatus::Active), ..TenantUpdate::default() };
    expect_taken(
        store.tenant_update(InstallationId(70), revive, at(6)).await,
        "acme",
        73,
        "reactivating onto a taken login",
    );
    let old = ok(store.tenant_get(InstallationId(70)).await, "tenant_get").found("tenant 70");
    assert_eq!(old.status, TenantStatus::Deleted, "a refused reactivation writes nothing");
}

/// Checkpoints read back what was last written, per name; an unknown name has none.
pub async fn checkpoints_keep_the_last_value(store: Arc<dyn Store>) {
    let store = store.as_ref();
    assert_eq!(ok(store.checkpoint_get("scan").await, "checkpoint_get"), None, "never written");
    ok(store.checkpoint_set("scan", "{\"up_to\":1}", at(1)).await, "checkpoint_set");
    ok(store.checkpoint_set("other", "x", at(2)).await, "checkpoint_set");
    ok(store.checkpoint_set("scan", "{\"up_to\":2}", at(3)).await, "checkpoint_set");
    assert_eq!(ok(store.checkpoint_get("scan").await, "checkpoint_get").as_deref(), Some("{\"up_to\":2}"));
    assert_eq!(ok(store.checkpoint_get("other").await, "checkpoint_get").as_deref(), Some("x"));
}
