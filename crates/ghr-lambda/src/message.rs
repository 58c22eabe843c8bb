//! The SQS message body of a work item: versioned JSON, small, and never a secret.
//!
//! ```json
//! {"v":1,"work":"dispatch","tenant":12345678,"tier":"small","attempt":0}
//! {"v":1,"work":"dispatch"}                                     (a full pass)
//! {"v":1,"work":"teardown_runner","runner":"ghr-main-12345678-small-3","cause":"job_completed"}
//! {"v":1,"work":"teardown_tenant","tenant":12345678,"cause":"tenant_deleted"}
//! ```
//!
//! A body that does not decode is a *poison* message: the consumer reports it failed every time, so SQS moves
//! it to the queue's dead-letter queue after `maxReceiveCount` receives. Nothing else is ever reported failed
//! for good (see the handlers).
//!
//! Decoding is strict: an unknown version, kind, cause or field, a missing field, a tenant id that is not a
//! positive integer, an empty runner or tier name, or a body over [`MAX_BODY_BYTES`] is poison. The one
//! leniency: a dispatch without `attempt` is a fresh wake-up (attempt 0), which is how a full pass is written.

use ghr_core::ids::{InstallationId, RunnerName, TierName};
use ghr_engine::queue::Work;
use ghr_engine::teardown::TeardownCause;
use serde::{Deserialize, Serialize};

/// The message format's version (`"v"`).
pub const MESSAGE_VERSION: u32 = 1;
/// The largest body a consumer reads. Every body ghr writes is a few dozen bytes; anything this large was
/// not written by ghr.
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// The `"work"` tag of each kind.
const KIND_DISPATCH: &str = "dispatch";
const KIND_TEARDOWN_RUNNER: &str = "teardown_runner";
const KIND_TEARDOWN_TENANT: &str = "teardown_tenant";
const KINDS: [&str; 3] = [KIND_DISPATCH, KIND_TEARDOWN_RUNNER, KIND_TEARDOWN_TENANT];

/// Why a message body is not a work item (the message is poison).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a ghr work message: {0}")]
pub struct PoisonMessage(pub String);

fn poison(message: impl Into<String>) -> PoisonMessage {
    PoisonMessage(message.into())
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DispatchBody {
    v: u32,
    work: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant: Option<i128>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attempt: Option<u32>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeardownRunnerBody {
    v: u32,
    work: String,
    runner: String,
    cause: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeardownTenantBody {
    v: u32,
    work: String,
    tenant: i128,
    cause: String,
}

/// The body of `work` (a delay travels as the message's `DelaySeconds`, not in the body).
pub fn encode(work: &Work) -> String {
    let v = MESSAGE_VERSION;
    let json = match work {
        Work::Dispatch { tenant, tier, attempt } => serde_json::to_string(&DispatchBody {
            v,
            work: KIND_DISPATCH.into(),
            tenant: tenant.map(|id| i128::from(id.0)),
            tier: tier.as_ref().map(|tier| tier.as_str().to_owned()),
            // A full pass is written `{"v":1,"work":"dispatch"}`; a tenant's wake-up always carries its attempt.
            attempt: (tenant.is_some() || *attempt != 0).then_some(*attempt),
        }),
        Work::TeardownRunner { runner, cause } => serde_json::to_string(&TeardownRunnerBody {
            v,
            work: KIND_TEARDOWN_RUNNER.into(),
            runner: runner.as_str().to_owned(),
            cause: cause.as_str().to_owned(),
        }),
        Work::TeardownTenant { tenant, cause } => serde_json::to_string(&TeardownTenantBody {
            v,
            work: KIND_TEARDOWN_TENANT.into(),
            tenant: i128::from(tenant.0),
            cause: cause.as_str().to_owned(),
        }),
    };
    // Serializing plain structs of strings and integers into a String cannot fail.
    json.unwrap_or_else(|error| unreachable!("a work message always serializes: {error}"))
}

/// The work item a body carries.
pub fn decode(body: &str) -> Result<Work, PoisonMessage> {
    if body.len() > MAX_BODY_BYTES {
        return Err(poison(format!("the body is {} bytes, over the {MAX_BODY_BYTES}-byte limit", body.len())));
    }
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| poison(format!("the body is not a JSON object: {e}")))?;
    let Some(object) = value.as_object() else {
        return Err(poison(format!("the body is not a JSON object but {value}")));
    };
    // The version and the kind are read first, so that a wrong one is named as such.
    match object.get("v") {
        None => return Err(poison("missing field `v` (the message version)")),
        Some(v) if v.as_u64() != Some(u64::from(MESSAGE_VERSION)) => {
            return Err(poison(format!("version {v} is not {MESSAGE_VERSION}, the one this function reads")));
        }
        Some(_) => {}
    }
    let kind = match object.get("work") {
        None => return Err(poison("missing field `work` (the kind of work)")),
        Some(serde_json::Value::String(kind)) => kind.clone(),
        Some(other) => return Err(poison(format!("field `work` is {other}, not a string"))),
    };
    let fields = |e: serde_json::Error| poison(format!("{kind} message: {e}"));
    match kind.as_str() {
        KIND_DISPATCH => {
            let body: DispatchBody = serde_json::from_value(value).map_err(fields)?;
            let tenant = body.tenant.map(tenant_id).transpose()?;
            let tier = body.tier.as_deref().map(tier_name).transpose()?;
            Ok(Work::Dispatch { tenant, tier, attempt: body.attempt.unwrap_or(0) })
        }
        KIND_TEARDOWN_RUNNER => {
            let body: TeardownRunnerBody = serde_json::from_value(value).map_err(fields)?;
            if body.runner.trim().is_empty() {
                return Err(poison("teardown_runner message: the runner name is empty"));
            }
            Ok(Work::TeardownRunner { runner: RunnerName::new(body.runner), cause: cause(&body.cause)? })
        }
        KIND_TEARDOWN_TENANT => {
            let body: TeardownTenantBody = serde_json::from_value(value).map_err(fields)?;
            Ok(Work::TeardownTenant { tenant: tenant_id(body.tenant)?, cause: cause(&body.cause)? })
        }
        other => Err(poison(format!("unknown kind of work {other:?}: expected one of {}", KINDS.join(", ")))),
    }
}

fn tenant_id(raw: i128) -> Result<InstallationId, PoisonMessage> {
    u64::try_from(raw)
        .ok()
        .filter(|id| *id > 0)
        .map(InstallationId)
        .ok_or_else(|| poison(format!("tenant {raw} is not a positive installation id")))
}

fn tier_name(raw: &str) -> Result<TierName, PoisonMessage> {
    if raw.trim().is_empty() {
        return Err(poison("dispatch message: the tier name is empty"));
    }
    Ok(TierName::from(raw))
}

fn cause(raw: &str) -> Result<TeardownCause, PoisonMessage> {
    TeardownCause::from_name(raw).ok_or_else(|| {
        let known = TeardownCause::ALL.map(TeardownCause::as_str).join(", ");
        poison(format!("unknown teardown cause {raw:?}: expected one of {known}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner(name: &str) -> RunnerName {
        RunnerName::new(name)
    }

    #[test]
    fn the_documented_bodies_are_what_encode_writes() {
        let cases = [
            (
                Work::dispatch(InstallationId(12345678), Some(TierName::from("small"))),
                r#"{"v":1,"work":"dispatch","tenant":12345678,"tier":"small","attempt":0}"#,
            ),
            (Work::Dispatch { tenant: None, tier: None, attempt: 0 }, r#"{"v":1,"work":"dispatch"}"#),
            (
                Work::TeardownRunner {
                    runner: runner("ghr-main-12345678-small-3"),
                    cause: TeardownCause::JobCompleted,
                },
                r#"{"v":1,"work":"teardown_runner","runner":"ghr-main-12345678-small-3","cause":"job_completed"}"#,
            ),
            (
                Work::TeardownTenant { tenant: InstallationId(12345678), cause: TeardownCause::TenantDeleted },
                r#"{"v":1,"work":"teardown_tenant","tenant":12345678,"cause":"tenant_deleted"}"#,
            ),
        ];
        for (work, body) in cases {
            assert_eq!(encode(&work), body, "{work:?}");
            assert_eq!(decode(body), Ok(work));
        }
    }

    #[test]
    fn every_variant_and_cause_round_trips() {
        let mut items = vec![
            Work::dispatch(InstallationId(1), None),
            Work::dispatch(InstallationId(u64::MAX), Some(TierName::from("large-arm64"))),
            Work::Dispatch { tenant: Some(InstallationId(7)), tier: Some(TierName::from("small")), attempt: 9 },
            Work::Dispatch { tenant: None, tier: None, attempt: 0 },
            Work::Dispatch { tenant: None, tier: Some(TierName::from("small")), attempt: 3 },
        ];
        for cause in TeardownCause::ALL {
            items.push(Work::TeardownRunner { runner: runner("ghr-main-3-small-1"), cause });
            items.push(Work::TeardownTenant { tenant: InstallationId(3), cause });
        }
        for work in items {
            let body = encode(&work);
            assert!(body.len() <= MAX_BODY_BYTES);
            assert_eq!(decode(&body), Ok(work), "{body}");
        }
    }

    #[test]
    fn a_dispatch_without_attempt_is_a_fresh_wake_up() {
        assert_eq!(decode(r#"{"v":1,"work":"dispatch","tenant":5}"#), Ok(Work::dispatch(InstallationId(5), None)));
    }

    #[test]
    fn every_malformed_body_is_poison_saying_what_is_wrong() {
        let long_runner =
            format!(r#"{{"v":1,"work":"teardown_runner","runner":"{}","cause":"orphan"}}"#, "r".repeat(9000));
        let cases: Vec<(String, &str)> = [
            ("", "not a JSON object"),
            ("[1]", "not a JSON object"),
            ("not json", "not a JSON object"),
            (r#"{"work":"dispatch"}"#, "missing field `v`"),
            (r#"{"v":2,"work":"dispatch"}"#, "version 2 is not 1"),
            (r#"{"v":"1","work":"dispatch"}"#, r#"version "1" is not 1"#),
            (r#"{"v":1}"#, "missing field `work`"),
            (r#"{"v":1,"work":7}"#, "field `work` is 7"),
            (r#"{"v":1,"work":"launch","tenant":1}"#, r#"unknown kind of work "launch""#),
            (r#"{"v":1,"work":"dispatch","tenant":1,"job":2}"#, "unknown field `job`"),
            (r#"{"v":1,"work":"dispatch","tenant":0}"#, "tenant 0 is not a positive installation id"),
            (r#"{"v":1,"work":"dispatch","tenant":-4}"#, "tenant -4 is not a positive installation id"),
            (r#"{"v":1,"work":"dispatch","tenant":"12"}"#, "dispatch message: invalid type"),
            (r#"{"v":1,"work":"dispatch","tenant":1,"tier":" "}"#, "the tier name is empty"),
            (r#"{"v":1,"work":"dispatch","tenant":1,"attempt":-1}"#, "dispatch message: invalid value"),
            (r#"{"v":1,"work":"teardown_runner","cause":"orphan"}"#, "missing field `runner`"),
            (r#"{"v":1,"work":"teardown_runner","runner":"r1"}"#, "missing field `cause`"),
            (r#"{"v":1,"work":"teardown_runner","runner":"","cause":"orphan"}"#, "the runner name is empty"),
            (
                r#"{"v":1,"work":"teardown_runner","runner":"r1","cause":"boredom"}"#,
                r#"unknown teardown cause "boredom""#,
            ),
            (r#"{"v":1,"work":"teardown_tenant","cause":"tenant_deleted"}"#, "missing field `tenant`"),
            (r#"{"v":1,"work":"teardown_tenant","tenant":0,"cause":"tenant_deleted"}"#, "tenant 0 is not a positive"),
            (
                r#"{"v":1,"work":"teardown_tenant","tenant":9,"cause":"tenant_deleted","runner":"x"}"#,
                "unknown field `runner`",
            ),
        ]
        .into_iter()
        .map(|(body, why)| (body.to_owned(), why))
        .chain([(long_runner, "over the 8192-byte limit")])
        .collect();
        for (body, why) in cases {
            let error = decode(&body).expect_err(&body);
            assert!(error.to_string().contains(why), "{body}: {error} (expected it to say {why:?})");
        }
    }
}
