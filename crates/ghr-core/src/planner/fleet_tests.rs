//! Table tests of the fleet plan and the GitHub checks: one row per rule the reconciler applies.

use super::DemandKey;
use super::checks::{
    busy_runner_checks, ghost_registrations, next_page, queued_poll_due, registration_scopes, stale_job_checks,
};
use super::fixtures::*;
use super::fleet::{
    FleetAction, FleetRecords, FleetSettings, FleetSnapshot, NEVER_LAUNCHED, NEVER_RECORDED, TenantTeardown, plan_fleet,
};
use crate::ids::{GithubRunnerId, InstallationId, InstanceId, JobId, RunnerName};
use crate::job::JobStatus;
use crate::ports::{GithubRunner, Instance, RunnerScope};
use crate::runner::{Runner, RunnerState::*};
use crate::tenant::{Tenant, TenantStatus};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

const GRACE: i64 = 300;
const BOOTSTRAP: i64 = 600;
const MAX_RUNTIME: i64 = 3600;

fn settings(terminate_suspended: bool) -> FleetSettings {
    let s = |secs: i64| Duration::from_secs(secs as u64);
    FleetSettings {
        orphan_grace: s(GRACE),
        bootstrap_timeout: s(BOOTSTRAP),
        max_runtime: s(MAX_RUNTIME),
        terminate_suspended,
    }
}

struct Case {
    name: &'static str,
    tenants: Vec<Tenant>,
    live: Vec<Runner>,
    /// None: the provider could not be listed.
    instances: Option<Vec<Instance>>,
    demand: Vec<(u64, &'static str, u32)>,
    in_flight: Vec<&'static str>,
    /// Instances of unretired pool machines.
    pool_instances: Vec<&'static str>,
    terminate_suspended: bool,
    expected: Vec<FleetAction>,
}

impl Default for Case {
    fn default() -> Self {
        Self {
            name: "",
            tenants: vec![tenant(1, "large", 10)],
            live: Vec::new(),
            instances: Some(Vec::new()),
            demand: Vec::new(),
            in_flight: Vec::new(),
            pool_instances: Vec::new(),
            terminate_suspended: false,
            expected: Vec::new(),
        }
    }
}

fn name(runner: &Runner) -> RunnerName {
    runner.name.clone()
}

fn instance_id(runner: &Runner) -> InstanceId {
    runner.instance_id.clone().expect("a launched runner")
}

/// A busy runner of tenant `installation`, launched a minute ago, whose instance runs.
fn busy(seq: u64, installation: u64) -> Runner {
    launched(runner(seq, installation, "small", Busy, ago(60)), ago(60))
}

fn idle(seq: u64, created_ago: i64, registered_ago: i64) -> Runner {
    registered(launched(runner(seq, 1, "small", Idle, ago(created_ago)), ago(created_ago)), ago(registered_ago))
}

fn cases() -> Vec<Case> {
    let b1 = busy(1, 1);
    let b2 = busy(2, 2);
    let b3 = busy(3, 3);
    let unlaunched_old = runner(4, 1, "small", Requested, ago(GRACE + 1));
    let unlaunched_busy = runner(5, 1, "small", Busy, ago(GRACE + 1));
    let unlaunched_young = runner(6, 1, "small", Requested, ago(GRACE - 1));
    let vanished = launched(runner(7, 1, "small", Busy, ago(GRACE + 1)), ago(GRACE + 1));
    let vanishing_young = launched(runner(8, 1, "small", Busy, ago(GRACE - 1)), ago(GRACE - 1));
    let finished = launched(runner(9, 1, "small", Finished, ago(60)), ago(60));
    let ancient = launched(runner(10, 1, "small", Busy, ago(MAX_RUNTIME)), ago(MAX_RUNTIME));
    let booting = launched(runner(11, 1, "small", Launching, ago(BOOTSTRAP - 1)), ago(BOOTSTRAP - 1));
    let stuck = launched(runner(12, 1, "small", Launching, ago(BOOTSTRAP)), ago(BOOTSTRAP));
    let (old_idle, new_idle, young_idle) = (idle(13, 1000, GRACE), idle(14, 900, GRACE), idle(15, 800, GRACE - 1));
    let ancient_finished = launched(runner(16, 1, "small", Finished, ago(MAX_RUNTIME)), ago(MAX_RUNTIME));
    vec![
        Case {
            name: "deleted, unknown and (under terminate) suspended tenants are torn down, and only that",
            tenants: vec![
                with_status(tenant(1, "large", 5), TenantStatus::Deleted),
                with_status(tenant(2, "large", 5), TenantStatus::Suspended),
            ],
            live: vec![b1.clone(), b2.clone(), b3.clone(), finished.clone()],
            instances: Some(vec![instance_of(&b1), instance_of(&b2), instance_of(&b3)]),
            terminate_suspended: true,
            expected: vec![
                FleetAction::TearDownTenant { installation_id: InstallationId(1), why: TenantTeardown::Deleted },
                FleetAction::TearDownTenant { installation_id: InstallationId(2), why: TenantTeardown::Suspended },
                FleetAction::TearDownTenant { installation_id: InstallationId(3), why: TenantTeardown::Deleted },
            ],
            ..Case::default()
        },
        Case {
            name: "a suspended tenant keeps its runners under on_suspend = keep",
            tenants: vec![with_status(tenant(1, "large", 5), TenantStatus::Suspended)],
            live: vec![b1.clone()],
            instances: Some(vec![instance_of(&b1)]),
            ..Case::default()
        },
        Case {
            name: "instances no live runner owns are terminated after the grace (or at once when undated)",
            live: vec![b1.clone()],
            instances: Some(vec![
                instance_of(&b1),
                stray_instance("i-old", Some("ghr-test-1-small-99"), Some(ago(GRACE))),
                stray_instance("i-young", None, Some(ago(GRACE - 1))),
                stray_instance("i-undated", None, None),
                // Carries a live runner's name, but the runner recorded another instance.
                stray_instance("i-twin", Some(b1.name.as_str()), Some(ago(GRACE))),
            ]),
            expected: vec![
                FleetAction::TerminateOrphan {
                    instance: InstanceId::new("i-old"),
                    runner: Some(RunnerName::new("ghr-test-1-small-99")),
                },
                FleetAction::TerminateOrphan { instance: InstanceId::new("i-undated"), runner: None },
                FleetAction::TerminateOrphan { instance: InstanceId::new("i-twin"), runner: Some(name(&b1)) },
            ],
            ..Case::default()
        },
        Case {
            name: "a vanished instance releases its runner after the grace",
            live: vec![vanished.clone(), vanishing_young.clone()],
            expected: vec![FleetAction::ReleaseVanished { runner: name(&vanished), instance: instance_id(&vanished) }],
            ..Case::default()
        },
        Case {
            name: "no instance rule runs when the provider could not be listed",
            live: vec![vanished.clone(), unlaunched_old.clone()],
            instances: None,
            ..Case::default()
        },
        Case {
            name: "pool machines are the pool keeper's: an old unowned pool instance is no orphan, a stray one is",
            instances: Some(vec![
                stray_instance("i-pool", None, Some(ago(GRACE * 10))),
                stray_instance("i-stray", None, Some(ago(GRACE * 10))),
            ]),
            pool_instances: vec!["i-pool"],
            expected: vec![FleetAction::TerminateOrphan { instance: InstanceId::new("i-stray"), runner: None }],
            ..Case::default()
        },
        Case {
            name: "crashed launches: in flight left alone, started adopted, never started released after the grace",
            live: vec![
                unlaunched_old.clone(),
                unlaunched_busy.clone(),
                unlaunched_young.clone(),
                runner(17, 1, "small", Requested, ago(GRACE + 5)),
                runner(18, 1, "small", Requested, ago(GRACE + 5)),
            ],
            instances: Some(vec![stray_instance("i-adopt", Some("ghr-test-1-small-17"), Some(ago(5)))]),
            in_flight: vec!["ghr-test-1-small-18"],
            expected: vec![
                FleetAction::ReleaseUnlaunched { runner: name(&unlaunched_old), to: Failed, error: NEVER_LAUNCHED },
                FleetAction::ReleaseUnlaunched {
                    runner: name(&unlaunched_busy),
                    to: Terminated,
                    error: NEVER_RECORDED,
                },
                FleetAction::AdoptInstance {
                    runner: RunnerName::new("ghr-test-1-small-17"),
                    instance: InstanceId::new("i-adopt"),
                    launched_at: Some(ago(5)),
                },
            ],
            ..Case::default()
        },
        Case {
            name: "finished runners have their teardown retried, before the maximum runtime applies",
            live: vec![finished.clone(), ancient_finished.clone()],
            instances: Some(vec![instance_of(&finished), instance_of(&ancient_finished)]),
            expected: vec![
                FleetAction::RetryTeardown { runner: name(&finished) },
                FleetAction::RetryTeardown { runner: name(&ancient_finished) },
            ],
            ..Case::default()
        },
        Case {
            name: "a runner past the maximum runtime is terminated, busy or not",
            live: vec![ancient.clone(), b1.clone()],
            instances: Some(vec![instance_of(&ancient), instance_of(&b1)]),
            expected: vec![FleetAction::MaxRuntime { runner: name(&ancient) }],
            ..Case::default()
        },
        Case {
            name: "launching runners are checked for registration; past the bootstrap timeout they may go",
            live: vec![booting.clone(), stuck.clone()],
            instances: Some(vec![instance_of(&booting), instance_of(&stuck)]),
            demand: vec![(1, "small", 2)],
            expected: vec![
                FleetAction::CheckRegistration { runner: name(&booting), bootstrap_expired: false },
                FleetAction::CheckRegistration { runner: name(&stuck), bootstrap_expired: true },
            ],
            ..Case::default()
        },
        Case {
            name: "surplus idle runners beyond demand go, newest first, once registered past the grace",
            live: vec![old_idle.clone(), new_idle.clone(), young_idle.clone()],
            instances: Some(vec![instance_of(&old_idle), instance_of(&new_idle), instance_of(&young_idle)]),
            demand: vec![(1, "small", 1)],
            expected: vec![FleetAction::TerminateSurplus { runner: name(&new_idle) }],
            ..Case::default()
        },
        Case {
            name: "demand of another key does not keep an idle runner",
            live: vec![old_idle.clone()],
            instances: Some(vec![instance_of(&old_idle)]),
            demand: vec![(1, "medium", 3), (2, "small", 3)],
            expected: vec![FleetAction::TerminateSurplus { runner: name(&old_idle) }],
            ..Case::default()
        },
        Case {
            name: "a runner released this pass does not cover demand (the idle one is kept for it)",
            live: vec![vanished_unbound(), old_idle.clone()],
            instances: Some(vec![instance_of(&old_idle)]),
            demand: vec![(1, "small", 1)],
            expected: vec![FleetAction::ReleaseVanished {
                runner: name(&vanished_unbound()),
                instance: instance_id(&vanished_unbound()),
            }],
            ..Case::default()
        },
    ]
}

/// An idle runner created before every other, whose instance vanished.
fn vanished_unbound() -> Runner {
    registered(launched(runner(19, 1, "small", Idle, ago(2000)), ago(GRACE)), ago(GRACE))
}

#[test]
fn fleet_table() {
    for case in cases() {
        let snapshot = FleetSnapshot {
            records: FleetRecords {
                live: case.live,
                tenants: case.tenants.into_iter().map(|t| (t.installation_id, t)).collect(),
                demand: case
                    .demand
                    .into_iter()
                    .map(|(id, tier, n)| {
                        (DemandKey { installation_id: InstallationId(id), tier: tier.into(), scope_repo: None }, n)
                    })
                    .collect(),
                stale_jobs: Vec::new(),
            },
            instances: case.instances,
            in_flight: case.in_flight.into_iter().map(RunnerName::new).collect::<BTreeSet<_>>(),
            pool_instances: case.pool_instances.into_iter().map(InstanceId::new).collect(),
        };
        let actions = plan_fleet(&snapshot, &settings(case.terminate_suspended), now());
        assert_eq!(actions, case.expected, "{}", case.name);
    }
}

#[test]
fn stale_jobs_are_checked_least_recently_first_for_active_tenants_only() {
    let stale = Duration::from_secs(600);
    let tenants: BTreeMap<InstallationId, Tenant> =
        [tenant(1, "large", 5), with_status(tenant(2, "large", 5), TenantStatus::Suspended)]
            .into_iter()
            .map(|t| (t.installation_id, t))
            .collect();
    let queued_young = job(1, 1, "small", 86_400 - 599);
    let queued_old = job(2, 1, "small", 86_400 - 600);
    let suspended = job(3, 2, "small", 0);
    let mut running = job(4, 1, "small", 0);
    running.status = JobStatus::InProgress;
    running.started_at = Some(ago(700));
    let mut hosted = running.clone();
    hosted.job_id = JobId(5);
    hosted.tier = None;
    let checked_lately = job(6, 1, "small", 0);
    let checked_long_ago = job(7, 1, "small", 0);
    let jobs = vec![queued_young, queued_old, suspended, running, hosted, checked_lately, checked_long_ago];
    let last_checked = HashMap::from([(JobId(6), ago(599)), (JobId(7), ago(601))]);
    let due: Vec<u64> =
        stale_job_checks(&jobs, &tenants, &last_checked, stale, now(), 10).iter().map(|j| j.job_id.0).collect();
    assert_eq!(due, vec![2, 4, 7], "never checked first (in snapshot order), then the least recently checked");
    let limited: Vec<u64> =
        stale_job_checks(&jobs, &tenants, &last_checked, stale, now(), 2).iter().map(|j| j.job_id.0).collect();
    assert_eq!(limited, vec![2, 4], "at most the per-pass limit");
}

#[test]
fn queued_poll_takes_the_least_recently_polled_and_spares_low_rate_limits() {
    let every = Duration::from_secs(600);
    let ids: Vec<InstallationId> = (1..=5).map(InstallationId).collect();
    let polled =
        HashMap::from([(InstallationId(1), ago(600)), (InstallationId(2), ago(599)), (InstallationId(3), ago(5_000))]);
    let remaining = BTreeMap::from([(InstallationId(4), 999), (InstallationId(5), 1_000)]);
    let plan = queued_poll_due(&ids, &polled, &remaining, every, now(), 10, 1_000);
    assert_eq!(plan.poll, vec![InstallationId(5), InstallationId(3), InstallationId(1)], "never polled, then oldest");
    assert_eq!(plan.low_rate_limit, vec![InstallationId(4)], "tenant 2 was polled within the interval");
    let limited = queued_poll_due(&ids, &polled, &remaining, every, now(), 2, 1_000);
    assert_eq!((limited.poll, limited.low_rate_limit), (vec![InstallationId(5)], vec![InstallationId(4)]));
}

#[test]
fn busy_runners_without_a_known_job_are_checked_once_stale() {
    let stale = Duration::from_secs(600);
    let mut unknown_job = busy(1, 1);
    unknown_job.job_started_at = Some(ago(600));
    let mut known_job = unknown_job.clone();
    known_job.job_id = Some(JobId(7));
    let mut recent = unknown_job.clone();
    recent.job_started_at = Some(ago(599));
    let live = vec![unknown_job.clone(), known_job, recent];
    let checked: Vec<&RunnerName> = busy_runner_checks(&live, now(), stale).into_iter().map(|r| &r.name).collect();
    assert_eq!(checked, vec![&unknown_job.name]);
}

#[test]
fn ghost_registrations_are_offline_idle_and_unowned_registrations_of_this_deployment() {
    let live = vec![busy(1, 1)];
    let registration = |id: u64, name: &str, online: bool, busy: bool| GithubRunner {
        id: GithubRunnerId(id),
        name: name.into(),
        online,
        busy,
        labels: Vec::new(),
    };
    let registrations = vec![
        registration(1, "ghr-test-1-small-50", false, false),
        registration(2, "ghr-test-1-small-51", true, false),
        registration(3, "ghr-test-1-small-52", false, true),
        registration(4, live[0].name.as_str(), false, false),
        registration(5, "ghr-prod-1-small-53", false, false),
        registration(6, "someone-elses-runner", false, false),
    ];
    assert_eq!(ghost_registrations(&registrations, &live, "test"), vec![GithubRunnerId(1)]);
}

#[test]
fn registration_scopes_are_those_of_active_tenants() {
    let mut repo_runner = busy(2, 2);
    repo_runner.scope_repo = Some("me/app".into());
    let live = vec![busy(5, 1), busy(1, 1), busy(3, 1), repo_runner, busy(4, 3), busy(6, 1)];
    let tenants: BTreeMap<InstallationId, Tenant> = [
        tenant(1, "large", 5),
        personal(tenant(2, "large", 5)),
        with_status(tenant(3, "large", 5), TenantStatus::Suspended),
    ]
    .into_iter()
    .map(|t| (t.installation_id, t))
    .collect();
    let scopes = registration_scopes(&live, &tenants);
    assert_eq!(
        scopes,
        vec![
            (InstallationId(1), RunnerScope::Org("org1".into())),
            (InstallationId(2), RunnerScope::Repo("me/app".into())),
        ]
    );
}

#[test]
fn walks_visit_every_item_once_per_round_and_wrap() {
    let items = [1, 3, 5, 7, 9];
    let table: [(Option<i32>, usize, &[i32]); 7] = [
        (None, 2, &[1, 3]),
        (Some(3), 2, &[5, 7]),
        (Some(7), 2, &[9, 1]),
        (Some(4), 3, &[5, 7, 9]),
        (Some(9), 2, &[1, 3]),
        (Some(1), 10, &[3, 5, 7, 9, 1]),
        (None, 0, &[]),
    ];
    for (after, limit, expected) in table {
        assert_eq!(next_page(&items, after.as_ref(), limit), expected, "after {after:?}, limit {limit}");
    }
    assert_eq!(next_page::<i32>(&[], Some(&3), 5), Vec::<i32>::new(), "nothing to walk");
}
