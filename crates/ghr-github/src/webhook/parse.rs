//! Turns a verified delivery (`X-GitHub-Event` plus raw JSON body) into a domain [`WebhookEvent`].

use super::payload::{
    ActionOnly, InstallationPayload, InstallationTargetPayload, RawAccount, RawSender, RawWorkflowJob,
    WorkflowJobPayload,
};
use ghr_core::event::{
    Account, IGNORED_ENTERPRISE, IGNORED_EVENT_TYPE, IGNORED_RENAME_WITHOUT_NAME, IGNORED_TARGET_ACTION,
    InstallationAction, Sender, WebhookEvent, WorkflowJob, WorkflowJobAction,
};
use ghr_core::ids::{AccountId, GithubRunnerId, InstallationId, JobId, OrgName};
use ghr_core::input::{InvalidInput, check_github_id, check_reported_login};
use ghr_core::tenant::OrgType;
use ghr_core::text::clip;
use serde::de::DeserializeOwned;

/// Event names (`X-GitHub-Event`) ghr acts on.
pub const EVENT_INSTALLATION: &str = "installation";
pub const EVENT_INSTALLATION_TARGET: &str = "installation_target";
pub const EVENT_WORKFLOW_JOB: &str = "workflow_job";
pub const EVENT_PING: &str = "ping";

/// The `type` GitHub gives an enterprise account (the enterprise shape of `installation.account` usually
/// carries no `type` and no `login`, only `slug` and `name`).
const ACCOUNT_TYPE_ENTERPRISE: &str = "Enterprise";

/// Why a delivery of a known event could not be turned into a [`WebhookEvent`]. Messages never quote more
/// than a clipped piece of the payload.
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

impl From<InvalidInput> for ParseError {
    fn from(error: InvalidInput) -> Self {
        ParseError::Invalid { field: error.field, reason: error.reason }
    }
}

/// A parsed delivery: the domain event and the payload's `action` (for the delivery record), from one decode
/// of the body.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedDelivery {
    pub event: WebhookEvent,
    /// The payload's `action` field, when it has one.
    pub action: Option<String>,
}

/// Parse a delivery. `event` is the `X-GitHub-Event` header; events ghr does not act on become
/// [`WebhookEvent::Ignored`] without their body being read.
pub fn parse_event(event: &str, body: &[u8]) -> Result<WebhookEvent, ParseError> {
    match event {
        EVENT_INSTALLATION | EVENT_INSTALLATION_TARGET | EVENT_WORKFLOW_JOB | EVENT_PING => {
            parse_delivery(event, body).map(|parsed| parsed.event)
        }
        other => Ok(WebhookEvent::Ignored { event: other.to_owned(), reason: IGNORED_EVENT_TYPE }),
    }
}

/// Parse a delivery into its event and its `action`, decoding the body once. The body of an event ghr does
/// not act on is read for its `action` only, best effort (such a delivery is acknowledged whatever it holds);
/// a `ping` is not read.
pub fn parse_delivery(event: &str, body: &[u8]) -> Result<ParsedDelivery, ParseError> {
    match event {
        EVENT_INSTALLATION => {
            let payload: InstallationPayload = decode(event, body)?;
            let action = payload.action.clone();
            Ok(ParsedDelivery { event: parse_installation(payload)?, action })
        }
        EVENT_INSTALLATION_TARGET => {
            let payload: InstallationTargetPayload = decode(event, body)?;
            let action = payload.action.clone();
            Ok(ParsedDelivery { event: parse_installation_target(payload)?, action })
        }
        EVENT_WORKFLOW_JOB => {
            let payload: WorkflowJobPayload = decode(event, body)?;
            let action = payload.action.clone();
            Ok(ParsedDelivery { event: parse_workflow_job(payload)?, action })
        }
        EVENT_PING => Ok(ParsedDelivery { event: WebhookEvent::Ping, action: None }),
        other => Ok(ParsedDelivery {
            event: WebhookEvent::Ignored { event: other.to_owned(), reason: IGNORED_EVENT_TYPE },
            action: serde_json::from_slice::<ActionOnly>(body).ok().and_then(|payload| payload.action),
        }),
    }
}

fn decode<T: DeserializeOwned>(event: &str, body: &[u8]) -> Result<T, ParseError> {
    serde_json::from_slice(body).map_err(|source| ParseError::Json { event: event.to_owned(), source })
}

fn required<T>(value: Option<T>, field: &'static str) -> Result<T, ParseError> {
    value.ok_or(ParseError::Missing(field))
}

/// A required GitHub id that the store can hold.
fn github_id(value: Option<u64>, field: &'static str) -> Result<u64, ParseError> {
    Ok(check_github_id(field, required(value, field)?)?)
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
    let installation_id = InstallationId(github_id(installation.id, "installation.id")?);
    let raw_account = required(installation.account, "installation.account")?;
    let sender = payload.sender.map(parse_sender).transpose()?.flatten();
    if is_enterprise(&raw_account) {
        // GitHub delivers the jobs of an enterprise's organisations under each organisation's own
        // installation; the enterprise installation itself has nothing to run.
        if let Some(id) = raw_account.id {
            check_github_id("installation.account.id", id)?;
        }
        return Ok(WebhookEvent::Ignored { event: EVENT_INSTALLATION.to_owned(), reason: IGNORED_ENTERPRISE });
    }
    let account = parse_account(raw_account)?;
    Ok(WebhookEvent::Installation { action, installation_id, account, sender })
}

/// The enterprise shape of an account: `{id, slug, name, ...}` without `login`, or an explicit
/// `type: "Enterprise"`.
fn is_enterprise(raw: &RawAccount) -> bool {
    raw.kind.as_deref() == Some(ACCOUNT_TYPE_ENTERPRISE) || (raw.login.is_none() && raw.slug.is_some())
}

fn parse_account(raw: RawAccount) -> Result<Account, ParseError> {
    let login = required(raw.login, "installation.account.login")?;
    check_reported_login("installation.account.login", &login)?;
    let id = github_id(raw.id, "installation.account.id")?;
    let kind_text = required(raw.kind, "installation.account.type")?;
    let kind = kind_text.parse::<OrgType>().map_err(|_| ParseError::Invalid {
        field: "installation.account.type",
        reason: format!("unknown account type {:?} (expected Organization, User or Enterprise)", clip(&kind_text)),
    })?;
    Ok(Account { login: OrgName::new(login), id: AccountId(id), kind })
}

/// The sender is informational: an incomplete one is dropped rather than failing the delivery, but one whose
/// id or login the store cannot hold is refused like any other field.
fn parse_sender(raw: RawSender) -> Result<Option<Sender>, ParseError> {
    let (Some(login), Some(id)) = (raw.login, raw.id) else {
        return Ok(None);
    };
    check_reported_login("sender.login", &login)?;
    Ok(Some(Sender { login, id: AccountId(check_github_id("sender.id", id)?) }))
}

fn parse_installation_target(payload: InstallationTargetPayload) -> Result<WebhookEvent, ParseError> {
    let action = required(payload.action, "installation_target action")?;
    if action != "renamed" {
        return Ok(WebhookEvent::Ignored {
            event: EVENT_INSTALLATION_TARGET.to_owned(),
            reason: IGNORED_TARGET_ACTION,
        });
    }
    let installation = required(payload.installation, "installation")?;
    let installation_id = InstallationId(github_id(installation.id, "installation.id")?);
    // GitHub's schema makes `account.login` optional: an enterprise target has a `slug` and a `name`.
    let new_name = payload.account.and_then(|account| {
        [("account.login", account.login), ("account.slug", account.slug), ("account.name", account.name)]
            .into_iter()
            .find_map(|(field, value)| value.filter(|v| !v.is_empty()).map(|v| (field, v)))
    });
    let Some((field, new_login)) = new_name else {
        return Ok(WebhookEvent::Ignored {
            event: EVENT_INSTALLATION_TARGET.to_owned(),
            reason: IGNORED_RENAME_WITHOUT_NAME,
        });
    };
    check_reported_login(field, &new_login)?;
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
    let installation_id = match payload.installation.and_then(|installation| installation.id) {
        Some(id) => Some(InstallationId(check_github_id("installation.id", id)?)),
        None => None,
    };
    Ok(WebhookEvent::WorkflowJob { action, installation_id, job: workflow_job(raw, repository)? })
}

fn workflow_job(raw: RawWorkflowJob, repository: String) -> Result<WorkflowJob, ParseError> {
    Ok(WorkflowJob {
        id: JobId(github_id(raw.id, "workflow_job.id")?),
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
            "account": {"login": "big", "id": 9, "type": "Mannequin"}}});
        let err = parse_json("installation", body).unwrap_err();
        assert!(matches!(err, ParseError::Invalid { field: "installation.account.type", .. }), "{err}");
    }

    fn installation_body(account: serde_json::Value) -> serde_json::Value {
        json!({"action": "created", "installation": {"id": 77, "account": account},
               "sender": {"login": "octocat", "id": 5}})
    }

    #[test]
    fn enterprise_installations_are_ignored_not_refused() {
        let enterprise = [
            // The enterprise shape of the schema: no login, no type.
            json!({"id": 9, "slug": "big-corp", "name": "Big Corp", "node_id": "E_1"}),
            // An account that says it is an enterprise.
            json!({"login": "big-corp", "id": 9, "type": "Enterprise"}),
        ];
        for account in enterprise {
            for action in ["created", "deleted", "suspend"] {
                let mut body = installation_body(account.clone());
                body["action"] = json!(action);
                assert_eq!(
                    parse_json("installation", body).unwrap(),
                    WebhookEvent::Ignored { event: "installation".into(), reason: IGNORED_ENTERPRISE },
                    "{action} {account}"
                );
            }
        }
        // Ids are still checked: an enterprise installation with an impossible id is refused.
        let mut body = installation_body(json!({"id": 9, "slug": "big-corp", "name": "Big Corp"}));
        body["installation"]["id"] = json!(u64::MAX);
        let err = parse_json("installation", body).unwrap_err();
        assert!(matches!(err, ParseError::Invalid { field: "installation.id", .. }), "{err}");
    }

    #[test]
    fn ids_the_store_cannot_hold_are_invalid_and_named() {
        let too_big = json!(ghr_core::input::GITHUB_ID_MAX + 1);
        let org = json!({"login": "acme", "id": 9, "type": "Organization"});
        let cases: Vec<(&str, serde_json::Value, &str, &str)> = vec![
            ("workflow_job", job_body(), "/workflow_job/id", "workflow_job.id"),
            ("workflow_job", job_body(), "/installation/id", "installation.id"),
            ("installation", installation_body(org.clone()), "/installation/id", "installation.id"),
            ("installation", installation_body(org.clone()), "/installation/account/id", "installation.account.id"),
            ("installation", installation_body(org.clone()), "/sender/id", "sender.id"),
            (
                "installation_target",
                json!({"action": "renamed", "installation": {"id": 1}, "account": {"login": "x"}}),
                "/installation/id",
                "installation.id",
            ),
        ];
        for (event, mut body, pointer, field) in cases {
            for value in [too_big.clone(), json!(u64::MAX), json!(0)] {
                *body.pointer_mut(pointer).unwrap() = value.clone();
                match parse_json(event, body.clone()) {
                    Err(ParseError::Invalid { field: named, .. }) => assert_eq!(named, field, "{pointer} = {value}"),
                    other => panic!("{pointer} = {value}: {other:?}"),
                }
            }
        }
        let mut body = job_body();
        body["workflow_job"]["id"] = json!(ghr_core::input::GITHUB_ID_MAX);
        assert!(parse_json("workflow_job", body).is_ok(), "the largest storable id is accepted");
    }

    #[test]
    fn logins_the_store_should_not_hold_are_invalid_with_a_short_message() {
        let huge = "a".repeat(300 * 1024);
        for (pointer, field) in
            [("/installation/account/login", "installation.account.login"), ("/sender/login", "sender.login")]
        {
            for bad in [huge.as_str(), "../etc", "nul\0", "line\r\nbreak"] {
                let mut body = installation_body(json!({"login": "acme", "id": 9, "type": "Organization"}));
                *body.pointer_mut(pointer).unwrap() = json!(bad);
                let err = parse_json("installation", body).unwrap_err();
                assert!(matches!(err, ParseError::Invalid { field: named, .. } if named == field), "{err}");
                assert!(err.to_string().len() < 512, "{} bytes", err.to_string().len());
            }
        }
    }

    #[test]
    fn a_rename_takes_the_new_name_from_wherever_the_schema_puts_it() {
        let renamed = |account: serde_json::Value| {
            parse_json(
                "installation_target",
                json!({"action": "renamed", "installation": {"id": 5}, "account": account}),
            )
        };
        let cases = [
            (json!({"login": "acme-labs", "id": 1}), "acme-labs"),
            (json!({"login": "acme-labs", "slug": "other"}), "acme-labs"),
            (json!({"slug": "big-corp", "name": "Big Corp", "id": 2}), "big-corp"),
            (json!({"name": "bigcorp", "id": 2}), "bigcorp"),
            (json!({"login": "", "slug": "big-corp"}), "big-corp"),
        ];
        for (account, want) in cases {
            assert_eq!(
                renamed(account.clone()).unwrap(),
                WebhookEvent::InstallationTargetRenamed { installation_id: InstallationId(5), new_login: want.into() },
                "{account}"
            );
        }
        let ignored =
            WebhookEvent::Ignored { event: "installation_target".into(), reason: IGNORED_RENAME_WITHOUT_NAME };
        assert_eq!(renamed(json!({"id": 3})).unwrap(), ignored);
        assert_eq!(renamed(json!(null)).unwrap(), ignored);
        let no_account = json!({"action": "renamed", "installation": {"id": 5}});
        assert_eq!(parse_json("installation_target", no_account).unwrap(), ignored);
        let err = renamed(json!({"slug": "has space/slash"})).unwrap_err();
        assert!(matches!(err, ParseError::Invalid { field: "account.slug", .. }), "{err}");
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
    fn one_decode_yields_the_event_and_its_action() {
        let mut body = job_body();
        body["action"] = json!("in_progress");
        let parsed = parse_delivery("workflow_job", body.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.action.as_deref(), Some("in_progress"));
        assert_eq!(parsed.event, parse_json("workflow_job", body).unwrap());
        let installation = installation_body(json!({"login": "acme", "id": 9, "type": "Organization"}));
        let parsed = parse_delivery("installation", installation.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.action.as_deref(), Some("created"));
        let parsed = parse_delivery("push", br#"{"action": "edited", "ref": "main"}"#).unwrap();
        assert_eq!(parsed.action.as_deref(), Some("edited"), "unused events keep their action");
        assert_eq!(parse_delivery("push", b"not json").unwrap().action, None, "best effort for unused events");
        assert_eq!(
            parse_delivery("ping", b"{\"zen\": \"x\"}").unwrap(),
            ParsedDelivery { event: WebhookEvent::Ping, action: None }
        );
        assert!(parse_delivery("workflow_job", b"{").is_err());
    }

    #[test]
    fn ping_and_unknown_events_do_not_read_the_body() {
        assert_eq!(parse_event("ping", b"not json").unwrap(), WebhookEvent::Ping);
        assert_eq!(
            parse_event("push", b"not json").unwrap(),
            WebhookEvent::Ignored { event: "push".into(), reason: IGNORED_EVENT_TYPE }
        );
    }

    #[test]
    fn installation_target_other_actions_are_ignored() {
        let body = json!({"action": "something_new", "installation": {"id": 1}});
        assert_eq!(
            parse_json("installation_target", body).unwrap(),
            WebhookEvent::Ignored { event: "installation_target".into(), reason: IGNORED_TARGET_ACTION }
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
