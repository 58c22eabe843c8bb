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

use ghr_engine::queue::Work;

/// The message format's version (`"v"`).
pub const MESSAGE_VERSION: u32 = 1;

/// Why a message body is not a work item (the message is poison).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a ghr work message: {0}")]
pub struct PoisonMessage(pub String);

/// The body of `work` (a delay travels as the message's `DelaySeconds`, not in the body).
pub fn encode(work: &Work) -> String {
    let _ = work;
    unimplemented!("H1")
}

/// The work item a body carries.
pub fn decode(body: &str) -> Result<Work, PoisonMessage> {
    let _ = body;
    Err(PoisonMessage("unimplemented".into()))
}
