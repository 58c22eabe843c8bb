//! Parses realistic webhook payloads (shaped like GitHub's documented examples) end to end:
//! signature first, then `parse_event`.

use chrono::{TimeZone, Utc};
use ghr_core::event::{InstallationAction, WebhookEvent, WorkflowJobAction};
use ghr_core::ids::{AccountId, GithubRunnerId, InstallationId, JobId, OrgName};
use ghr_core::tenant::OrgType;
use ghr_github::webhook::{parse_event, sign, verify_signature};
use secrecy::SecretString;
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("fixture {} unreadable: {err}", path.display()))
}

/// Verify as the server would, then parse.
fn deliver(event: &str, name: &str) -> WebhookEvent {
    let secret = SecretString::from("fixture-secret".to_owned());
    let body = fixture(name);
    verify_signature(&secret, &body, Some(&sign(&secret, &body))).unwrap();
    parse_event(event, &body).unwrap_or_else(|err| panic!("{name}: {err}"))
}

fn at(h: u32, m: u32, s: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, h, m, s).unwrap()
}

#[test]
fn workflow_job_queued() {
    let WebhookEvent::WorkflowJob { action, installation_id, job } =
        deliver("workflow_job", "workflow_job_queued.json")
    else {
        panic!("not a workflow job");
    };
    assert_eq!(action, WorkflowJobAction::Queued);
    assert_eq!(installation_id, Some(InstallationId(31415926)));
    assert_eq!(job.id, JobId(29679449));
    assert_eq!(job.run_id, 2832853555);
    assert_eq!(job.repository, "acme-corp/widgets");
    assert_eq!(job.labels, vec!["self-hosted", "linux", "x64", "ghr-small"]);
    assert_eq!((job.runner_id, job.runner_name, job.conclusion), (None, None, None));
    assert_eq!(job.created_at, Some(at(10, 15, 2)));
    assert_eq!(job.completed_at, None);
}

#[test]
fn workflow_job_in_progress() {
    let WebhookEvent::WorkflowJob { action, job, .. } = deliver("workflow_job", "workflow_job_in_progress.json") else {
        panic!("not a workflow job");
    };
    assert_eq!(action, WorkflowJobAction::InProgress);
    assert_eq!(job.runner_id, Some(GithubRunnerId(17)));
    assert_eq!(job.runner_name.as_deref(), Some("ghr-prod-31415926-small-12"));
    assert_eq!(job.started_at, Some(at(10, 15, 40)));
    assert_eq!(job.conclusion, None);
}

#[test]
fn workflow_job_completed() {
    let WebhookEvent::WorkflowJob { action, job, .. } = deliver("workflow_job", "workflow_job_completed.json") else {
        panic!("not a workflow job");
    };
    assert_eq!(action, WorkflowJobAction::Completed);
    assert_eq!(job.conclusion.as_deref(), Some("success"));
    assert_eq!(job.completed_at, Some(at(10, 17, 3)));
    assert_eq!(job.runner_name.as_deref(), Some("ghr-prod-31415926-small-12"));
}

#[test]
fn installation_created_for_an_organization() {
    let WebhookEvent::Installation { action, installation_id, account, sender } =
        deliver("installation", "installation_created_org.json")
    else {
        panic!("not an installation event");
    };
    assert_eq!(action, InstallationAction::Created);
    assert_eq!(installation_id, InstallationId(31415926));
    assert_eq!(account.login, OrgName::from("acme-corp"));
    assert_eq!(account.id, AccountId(90012345));
    assert_eq!(account.kind, OrgType::Organization);
    let sender = sender.expect("sender");
    assert_eq!((sender.login.as_str(), sender.id), ("acme-admin", AccountId(70000001)));
}

#[test]
fn installation_created_for_a_user() {
    let WebhookEvent::Installation { action, installation_id, account, .. } =
        deliver("installation", "installation_created_user.json")
    else {
        panic!("not an installation event");
    };
    assert_eq!(action, InstallationAction::Created);
    assert_eq!(installation_id, InstallationId(27182818));
    assert_eq!(account.login, OrgName::from("octocat"));
    assert_eq!(account.kind, OrgType::User);
}

#[test]
fn installation_lifecycle_actions() {
    for (file, want) in [
        ("installation_deleted.json", InstallationAction::Deleted),
        ("installation_suspend.json", InstallationAction::Suspend),
        ("installation_unsuspend.json", InstallationAction::Unsuspend),
    ] {
        match deliver("installation", file) {
            WebhookEvent::Installation { action, installation_id, .. } => {
                assert_eq!(action, want, "{file}");
                assert_eq!(installation_id, InstallationId(31415926));
            }
            other => panic!("{file}: unexpected {other:?}"),
        }
    }
}

#[test]
fn installation_target_renamed() {
    assert_eq!(
        deliver("installation_target", "installation_target_renamed.json"),
        WebhookEvent::InstallationTargetRenamed {
            installation_id: InstallationId(31415926),
            new_login: OrgName::from("acme-industries"),
        }
    );
}

#[test]
fn ping_and_unknown_events() {
    assert_eq!(deliver("ping", "ping.json"), WebhookEvent::Ping);
    assert_eq!(
        deliver("push", "push.json"),
        WebhookEvent::Ignored { event: "push".into(), reason: ghr_core::event::IGNORED_EVENT_TYPE }
    );
}

#[test]
fn a_fixture_parsed_as_the_wrong_event_names_the_missing_field() {
    let err = parse_event("workflow_job", &fixture("installation_created_org.json")).unwrap_err();
    assert_eq!(err.to_string(), "workflow_job missing");
    let err = parse_event("installation", &fixture("workflow_job_queued.json")).unwrap_err();
    assert_eq!(err.to_string(), "installation.account missing");
}

#[test]
fn a_tampered_fixture_fails_verification() {
    let secret = SecretString::from("fixture-secret".to_owned());
    let body = fixture("workflow_job_queued.json");
    let signature = sign(&secret, &body);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert!(verify_signature(&secret, &tampered, Some(&signature)).is_err());
}

#[test]
fn an_enterprise_installation_is_acknowledged_and_ignored() {
    assert_eq!(
        deliver("installation", "installation_created_enterprise.json"),
        WebhookEvent::Ignored { event: "installation".into(), reason: ghr_core::event::IGNORED_ENTERPRISE }
    );
}
