//! `Client` against the running server answers exactly like `LocalAdmin` on the server's store, errors
//! included, and reports an unreachable server or a wrong token as such.

use crate::support::{ADMIN_TOKEN, Harness, fleet};
use chrono::{Duration, Utc};
use ghr_api::{
    Admin, ApiError, Client, JobStatus, JobsQuery, NewTenantRequest, OrgType, Reason, RunnerStates, RunnersQuery,
    SetTierRequest, TenantAction, TenantStatus, TenantsQuery, UsageQuery,
};
use secrecy::SecretString;
use std::fmt::Debug;

/// Whether both answers agree; errors agree when their status and message do.
#[track_caller]
fn same<T: PartialEq + Debug>(what: &str, remote: Result<T, ApiError>, local: Result<T, ApiError>) -> bool {
    match (remote, local) {
        (Ok(remote), Ok(local)) => {
            assert_eq!(remote, local, "{what}");
            true
        }
        (Err(remote), Err(local)) => {
            assert_eq!((remote.status(), remote.to_string()), (local.status(), local.to_string()), "{what}");
            false
        }
        (remote, local) => panic!("{what}: remote answered {remote:?}, local answered {local:?}"),
    }
}

fn runners(tenant: Option<&str>, tier: Option<&str>, state: Option<RunnerStates>) -> RunnersQuery {
    RunnersQuery { tenant: tenant.map(Into::into), tier: tier.map(Into::into), state, ..RunnersQuery::default() }
}

fn jobs(tenant: Option<&str>, status: Option<JobStatus>, reason: Option<Reason>, limit: Option<u32>) -> JobsQuery {
    JobsQuery { tenant: tenant.map(Into::into), status, reason, limit, cursor: None }
}

fn tenants(status: Option<TenantStatus>) -> TenantsQuery {
    TenantsQuery { status, ..TenantsQuery::default() }
}

#[tokio::test]
async fn remote_admin_reads_like_local_admin() {
    let h = Harness::start().await;
    let f = fleet::build(&h).await;
    let (remote, local) = (h.remote(), h.local());
    // (successes, errors) compared, so the test cannot pass by comparing only one kind.
    let mut tally = (0, 0);
    let mut count = |agreed_ok: bool| if agreed_ok { tally.0 += 1 } else { tally.1 += 1 };

    for status in [None, Some(TenantStatus::Active), Some(TenantStatus::Suspended), Some(TenantStatus::Deleted)] {
        count(same(
            &format!("tenants {status:?}"),
            remote.tenants_list(tenants(status)).await,
            local.tenants_list(tenants(status)).await,
        ));
    }
    let acme = f.acme.to_string();
    for reference in [acme.as_str(), "acme", "ACME", "beta", "nobody", "a/b", "acme corp", "ünï"] {
        count(same(reference, remote.tenant_show(reference).await, local.tenant_show(reference).await));
    }
    for query in [
        runners(None, None, None),
        runners(None, None, Some(RunnerStates::All)),
        runners(None, None, Some(RunnerStates::Terminated)),
        runners(Some("Acme"), Some("small"), Some(RunnerStates::Live)),
        RunnersQuery { limit: Some(1), ..runners(None, None, Some(RunnerStates::All)) },
        RunnersQuery { cursor: Some("bogus".into()), ..runners(None, None, None) },
        runners(None, Some("huge"), None),
        runners(Some("nobody"), None, None),
    ] {
        let what = format!("{query:?}");
        count(same(&what, remote.runners_list(query.clone()).await, local.runners_list(query).await));
    }
    for query in [
        jobs(None, None, None, None),
        jobs(None, Some(JobStatus::Queued), None, None),
        jobs(Some("beta"), None, Some(Reason::TenantSuspended), None),
        jobs(None, None, None, Some(2)),
        jobs(None, None, None, Some(0)),
        jobs(None, None, None, Some(1001)),
        JobsQuery { cursor: Some("bogus".into()), ..jobs(None, None, None, None) },
        jobs(Some("nobody"), None, None, None),
    ] {
        let what = format!("{query:?}");
        count(same(&what, remote.jobs_list(query.clone()).await, local.jobs_list(query).await));
    }
    // Following the cursors: the same pages both ways, every job once.
    let (mut cursor, mut seen) = (None, Vec::new());
    loop {
        let query = JobsQuery { cursor: cursor.clone(), ..jobs(None, None, None, Some(2)) };
        let remote_page = remote.jobs_list(query.clone()).await.expect("a page");
        assert_eq!(remote_page, local.jobs_list(query).await.expect("a page"), "page after {cursor:?}");
        seen.extend(remote_page.items.iter().map(|j| j.job_id));
        match remote_page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let all = local.jobs_list(jobs(None, None, None, None)).await.expect("every job");
    assert_eq!(seen, all.items.iter().map(|j| j.job_id).collect::<Vec<_>>(), "pages of 2 cover every job once");
    assert!(all.next_cursor.is_none() && seen.len() > 2);
    for job in [f.starting, f.done, f.suspended, f.foreign, f.not_entitled, ghr_core::ids::JobId(424_242)] {
        let job = job.0;
        count(same(&format!("job {job}"), remote.job_show(job).await, local.job_show(job).await));
    }
    // A window that ends before the calls, so live runners count the same for both.
    let to = Utc::now();
    let from = to - Duration::days(1);
    for query in [
        UsageQuery { from: Some(from), to: Some(to), tenant: None },
        UsageQuery { from: Some(from), to: Some(to), tenant: Some("acme".into()) },
        UsageQuery { from: Some(to), to: Some(from), tenant: None },
        UsageQuery { from: Some(from), to: Some(to), tenant: Some("nobody".into()) },
    ] {
        let what = format!("{query:?}");
        count(same(&what, remote.usage(query.clone()).await, local.usage(query).await));
    }
    let window = UsageQuery { from: Some(from), to: Some(to), tenant: None };
    let csv = remote.usage_csv(window.clone()).await.expect("usage as CSV");
    let report = local.usage(window).await.expect("usage");
    assert!(!report.rows.is_empty());
    assert_eq!(csv, report.to_csv());
    assert!(tally.0 >= 15 && tally.1 >= 8, "compared (successes, errors) = {tally:?}");

    // The reconciler passes as soon as the server starts; a later pass replaces the report.
    let before = Utc::now();
    h.server.reconciler.pass(before).await;
    let status = remote.reconciler().await.expect("the reconciler status");
    assert!(status.last_pass_at.is_some_and(|at| at >= before), "the latest pass is reported");
    assert!(status.report.is_some_and(|r| r["errors"].is_array()));
}

#[tokio::test]
async fn remote_admin_changes_tenants_like_local_admin() {
    let h = Harness::start().await;
    let (remote, local) = (h.remote(), h.local());
    let request = |id: u64, login: &str, org_type: OrgType, tier: Option<&str>| NewTenantRequest {
        installation_id: id,
        org_name: login.into(),
        org_type,
        tier: tier.map(Into::into),
    };

    let gamma = request(9001, "gamma", OrgType::Organization, None);
    let added = remote.tenant_add(gamma.clone()).await.expect("adding over HTTP");
    assert_eq!(local.tenant_show("gamma").await.expect("the added tenant").tenant, added);
    same("duplicate", remote.tenant_add(gamma.clone()).await, local.tenant_add(gamma).await);
    let delta = local.tenant_add(request(9002, "delta", OrgType::User, Some("medium"))).await.expect("adding locally");
    assert_eq!(remote.tenant_show("DELTA").await.expect("the added tenant").tenant, delta);
    for bad in [request(9003, " ", OrgType::User, None), request(9003, "eps", OrgType::User, Some("huge"))] {
        same(&format!("{bad:?}"), remote.tenant_add(bad.clone()).await, local.tenant_add(bad).await);
    }

    let tier = |name: &str, max_runners: Option<u32>| SetTierRequest { tier: name.into(), max_runners };
    let changed = remote.tenant_set_tier("gamma", tier("medium", None)).await.expect("a new plan");
    assert_eq!((changed.tier.as_str(), changed.max_runners), ("medium", 5));
    assert_eq!(local.tenant_show("9001").await.expect("the tenant").tenant, changed);
    let changed = local.tenant_set_tier("delta", tier("large", Some(7))).await.expect("a new plan");
    assert_eq!(remote.tenant_show("delta").await.expect("the tenant").tenant, changed);
    for (reference, request) in
        [("gamma", tier("huge", None)), ("gamma", tier("small", Some(0))), ("nobody", tier("small", None))]
    {
        let what = format!("{reference} {request:?}");
        same(
            &what,
            remote.tenant_set_tier(reference, request.clone()).await,
            local.tenant_set_tier(reference, request).await,
        );
    }

    // The remote call changes the tenant; the local one repeats it on the new state, which changes nothing.
    for action in [TenantAction::Suspend, TenantAction::Suspend, TenantAction::Resume, TenantAction::Approve] {
        let what = format!("{action:?}");
        same(&what, remote.tenant_action("gamma", action).await, local.tenant_action("gamma", action).await);
        same(&what, remote.tenant_action("nobody", action).await, local.tenant_action("nobody", action).await);
    }
    let gamma = local.tenant_show("gamma").await.expect("the tenant").tenant;
    assert_eq!(gamma.status, TenantStatus::Active);
}

#[tokio::test]
async fn remote_admin_reports_an_unreachable_server_and_a_wrong_token() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("its address")
    };
    let remote = Client::new(&format!("http://{closed}"), SecretString::from(ADMIN_TOKEN)).expect("a client");
    let error = remote.tenants_list(TenantsQuery::default()).await.expect_err("nothing listens there");
    assert!(matches!(error, ApiError::Unavailable(_)), "{error:?}");
    assert!(error.to_string().contains(&format!("http://{closed}/api/v1/tenants")), "names the URL: {error}");

    let h = Harness::start().await;
    let wrong = Client::new(&h.base, SecretString::from("not-the-token")).expect("a client");
    let answers = [
        wrong.tenants_list(TenantsQuery::default()).await.map(|_| ()),
        wrong.tenant_show("acme").await.map(|_| ()),
        wrong.tenant_action("acme", TenantAction::Suspend).await.map(|_| ()),
        wrong.runners_list(RunnersQuery::default()).await.map(|_| ()),
        wrong.jobs_list(JobsQuery::default()).await.map(|_| ()),
        wrong.usage(UsageQuery::default()).await.map(|_| ()),
        wrong.reconciler().await.map(|_| ()),
    ];
    for answer in answers {
        assert!(matches!(answer, Err(ApiError::Unauthorized)), "{answer:?}");
    }

    // A base URL under which no ghr API is served: the server's own 404 body comes back.
    let elsewhere = Client::new(&format!("{}/elsewhere/", h.base), SecretString::from(ADMIN_TOKEN)).expect("a client");
    match elsewhere.tenants_list(TenantsQuery::default()).await {
        Err(ApiError::NotFound(message)) => assert_eq!(message, "no such route"),
        other => panic!("expected not found, got {other:?}"),
    }
}
