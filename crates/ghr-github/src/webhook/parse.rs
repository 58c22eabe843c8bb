//! Turns a verified delivery (`X-GitHub-Event` plus raw JSON body) into a domain [`WebhookEvent`].

use super::payload::{
    InstallationPayload, InstallationTargetPayload, RawAccount, RawSender, RawWorkflowJob, WorkflowJobPayload,
};
use ghr_core::event::{Account, InstallationAction, Sender, WebhookEvent, WorkflowJob, WorkflowJobAction};
use ghr_core::ids::{AccountId, GithubRunnerId, InstallationId, JobId, OrgName};
use ghr_core::tenant::OrgType;
use serde::de::DeserializeOwned;

/// Event names (`X-GitHub-Event`) ghr acts on.
pub const EVENT_INSTALLATION: &str = "installation";
pub const EVENT_INSTALLATION_TARGET: &str = "installation_target";
pub const EVENT_WORKFLOW_JOB: &str = "workflow_job";
pub const EVENT_PING: &str = "ping";

/// Why a delivery of a known event could not be turned into a [`WebhookEvent`].
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("{event} payload is not valid JSON of the expected shape")]
    Json {
        event: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0} missing")]
    Missing(&'static str),
    #[error("{field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// Parse a delivery. `event` is the `X-GitHub-Event` header; events ghr does not act on become
/// [`WebhookEvent::Ignored`] without their body being read.
pub fn parse_event(event: &str, body: &[u8]) -> Result<WebhookEvent, ParseError> {
    match event {
        EVENT_INSTALLATION => parse_installation(decode(event, body)?),
        EVENT_INSTALLATION_TARGET => parse_installation_target(decode(event, body)?),
        EVENT_WORKFLOW_JOB => parse_workflow_job(decode(event, body)?),
        EVENT_PING => Ok(WebhookEvent::Ping),
        other => Ok(WebhookEvent::Ignored { event: other.to_owned() }),
    }
}

fn decode<T: DeserializeOwned>(event: &str, body: &[u8]) -> Result<T, ParseError> {
    serde_json::from_slice(body).map_err(|source| ParseError::Json { event: event.to_owned(), source })
}

fn required<T>(value: Option<T>, field: &'static str) -> Result<T, ParseError> {
    value.ok_or(ParseError::Missing(field))
}

fn parse_installation(payload: InstallationPayload) -> Result<WebhookEvent, ParseError> {
    let action = match required(payload.action, "installation action")?.as_str() {
        "created" => InstallationAction::Created,
        "deleted" => InstallationAction::Deleted,
        "suspend" => InstallationAction::Suspend,
        "unsuspend" => InstallationAction::Unsuspend,
        "new_permissions_accepted" => InstallationAction::NewPermissionsAccepted,
        other => InstallationAction::Other(other.to_owned()),
    };
    let installation = required(payload.installation, "installation")?;
    let installation_id = InstallationId(required(installation.id, "installation.id")?);
    let account = parse_account(required(installation.account, "installation.account")?)?;
    Ok(WebhookEvent::Installation { action, installation_id, account, sender: payload.sender.and_then(parse_sender) })
}

fn parse_account(raw: RawAccount) -> Result<Account, ParseError> {
    let login = required(raw.login, "installation.account.login")?;
    let id = required(raw.id, "installation.account.id")?;
    let kind_text = required(raw.kind, "installation.account.type")?;
    let kind = kind_text
        .parse::<OrgType>()
        .map_err(|err| ParseError::Invalid { field: "installation.account.type", reason: err.to_string() })?;
    Ok(Account { login: OrgName::new(login), id: AccountId(id), kind })
}

/// The sender is informational: an incomplete one is dropped rather than failing the delivery.
fn parse_sender(raw: RawSender) -> Option<Sender> {
    Some(Sender { login: raw.login?, id: AccountId(raw.id?) })
}

fn parse_installation_target(payload: InstallationTargetPayload) -> Result<WebhookEvent, ParseError> {
    let action = required(payload.action, "installation_target action")?;
    if action != "renamed" {
        return Ok(WebhookEvent::Ignored { event: EVENT_INSTALLATION_TARGET.to_owned() });
    }
    let installation = required(payload.installation, "installation")?;
    let installation_id = InstallationId(required(installation.id, "installation.id")?);
    let account = required(payload.account, "account")?;
    let new_login = required(account.login, "account.login")?;
    Ok(WebhookEvent::InstallationTargetRenamed { installation_id, new_login: OrgName::new(new_login) })
}

fn parse_workflow_job(payload: WorkflowJobPayload) -> Result<WebhookEvent, ParseError> {
    let action = match required(payload.action, "workflow_job action")?.as_str() {
        "queued" => WorkflowJobAction::Queued,
        "waiting" => WorkflowJobAction::Waiting,
        "in_progress" => WorkflowJobAction::InProgress,
        "completed" => WorkflowJobAction::Completed,
        other => WorkflowJobAction::Other(other.to_owned()),
    };
    let raw = required(payload.workflow_job, "workflow_job")?;
    let repository = required(payload.repository, "repository")?;
    let repository = required(repository.full_name, "repository.full_name")?;
    // Repository webhooks (not App deliveries) carry no installation.
    let installation_id = payload.installation.and_then(|installation| installation.id).map(InstallationId);
    Ok(WebhookEvent::WorkflowJob { action, installation_id, job: workflow_job(raw, repository)? })
}

fn workflow_job(raw: RawWorkflowJob, repository: String) -> Result<WorkflowJob, ParseError> {
    Ok(WorkflowJob {
        id: JobId(required(raw.id, "workflow_job.id")?),
        run_id: required(raw.run_id, "workflow_job.run_id")?,
        repository,
        labels: required(raw.labels, "workflow_job.labels")?,
        conclusion: raw.conclusion,
        // GitHub sends null before a runner is assigned; treat 0 and "" the same way.
        runner_id: raw.runner_id.filter(|id| *id != 0).map(GithubRunnerId),
        runner_name: raw.runner_name.filter(|name| !name.is_empty()),
        created_at: raw.created_at,
        started_at: raw.started_at,
        completed_at: raw.completed_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_json(event: &str, body: serde_json::Value) -> Result<WebhookEvent, ParseError> {
        parse_event(event, body.to_string().as_bytes())
    }

    fn job_body() -> serde_json::Value {
        json!({
            "action": "queued",
            "workflow_job": {"id": 7, "run_id": 3, "labels": ["self-hosted", "small"], "runner_id": null,
                             "runner_name": null, "conclusion": null, "created_at": "2026-01-02T03:04:05Z",
                             "started_at": "2026-01-02T03:04:05Z", "completed_at": null},
            "repository": {"full_name": "acme/app"},
            "installation": {"id": 42}
        })
    }

    #[test]
    fn missing_required_fields_are_named() {
        let cases: &[(&str, &str, &str)] = &[
            ("workflow_job", "/workflow_job/id", "workflow_job.id missing"),
            ("workflow_job", "/workflow_job/run_id", "workflow_job.run_id missing"),
            ("workflow_job", "/workflow_job/labels", "workflow_job.labels missing"),
            ("workflow_job", "/repository/full_name", "repository.full_name missing"),
            ("workflow_job", "/action", "workflow_job action missing"),
        ];
        for (event, pointer, want) in cases {
            let mut body = job_body();
            let (parent, leaf) = pointer.rsplit_once('/').unwrap();
            let target = if parent.is_empty() { &mut body } else { body.pointer_mut(parent).unwrap() };
            target.as_object_mut().unwrap().remove(leaf);
            let err = parse_json(event, body).unwrap_err();
            assert_eq!(err.to_string(), *want, "removing {pointer}");
        }
    }

    #[test]
    fn null_is_the_same_as_missing_for_required_fields() {
        let mut body = job_body();
        body["workflow_job"]["id"] = serde_json::Value::Null;
        assert_eq!(parse_json("workflow_job", body).unwrap_err().to_string(), "workflow_job.id missing");
    }

    #[test]
    fn wrong_types_and_bad_json_are_json_errors() {
        let mut body = job_body();
        body["workflow_job"]["id"] = json!("seven");
        assert!(matches!(parse_json("workflow_job", body), Err(ParseError::Json { .. })));
        let err = parse_event("installation", b"{not json").unwrap_err();
        assert!(matches!(&err, ParseError::Json { event, .. } if event == "installation"));
        assert!(matches!(parse_event("workflow_job", b""), Err(ParseError::Json { .. })));
    }

    #[test]
    fn unknown_account_type_is_invalid() {
        let body = json!({"action": "created", "installation": {"id": 1,
            "account": {"login": "big", "id": 9, "type": "Enterprise"}}});
        let err = parse_json("installation", body).unwrap_err();
        assert!(matches!(err, ParseError::Invalid { field: "installation.account.type", .. }), "{err}");
    }

    #[test]
    fn installation_without_account_is_refused() {
        let body = json!({"action": "created", "installation": {"id": 1}});
        assert_eq!(parse_json("installation", body).unwrap_err().to_string(), "installation.account missing");
    }

    #[test]
    fn workflow_job_actions_map_and_unknown_ones_are_kept() {
        for (text, want) in [
            ("queued", WorkflowJobAction::Queued),
            ("waiting", WorkflowJobAction::Waiting),
            ("in_progress", WorkflowJobAction::InProgress),
            ("completed", WorkflowJobAction::Completed),
            ("requested", WorkflowJobAction::Other("requested".into())),
        ] {
            let mut body = job_body();
            body["action"] = json!(text);
            match parse_json("workflow_job", body).unwrap() {
                WebhookEvent::WorkflowJob { action, .. } => assert_eq!(action, want),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn workflow_job_without_installation_and_with_empty_runner() {
        let mut body = job_body();
        body.as_object_mut().unwrap().remove("installation");
        body["workflow_job"]["runner_name"] = json!("");
        body["workflow_job"]["runner_id"] = json!(0);
        match parse_json("workflow_job", body).unwrap() {
            WebhookEvent::WorkflowJob { installation_id, job, .. } => {
                assert_eq!(installation_id, None);
                assert_eq!(job.runner_id, None);
                assert_eq!(job.runner_name, None);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn ping_and_unknown_events_do_not_read_the_body() {
        assert_eq!(parse_event("ping", b"not json").unwrap(), WebhookEvent::Ping);
        assert_eq!(parse_event("push", b"not json").unwrap(), WebhookEvent::Ignored { event: "push".into() });
    }

    #[test]
    fn installation_target_other_actions_are_ignored() {
        let body = json!({"action": "something_new", "installation": {"id": 1}});
        assert_eq!(
            parse_json("installation_target", body).unwrap(),
            WebhookEvent::Ignored { event: "installation_target".into() }
        );
    }

    #[test]
    fn incomplete_sender_is_dropped() {
        let body = json!({"action": "deleted", "installation": {"id": 1,
            "account": {"login": "octo", "id": 9, "type": "User"}}, "sender": {"login": "octo"}});
        match parse_json("installation", body).unwrap() {
            WebhookEvent::Installation { sender, .. } => assert_eq!(sender, None),
            other => panic!("unexpected {other:?}"),
        }
    }
}
