//! Inbound webhooks: signature verification and parsing of the payloads ghr acts on. Pure, no IO.

mod parse;
mod payload;
mod signature;

pub use parse::{
    EVENT_INSTALLATION, EVENT_INSTALLATION_TARGET, EVENT_PING, EVENT_WORKFLOW_JOB, ParseError, ParsedDelivery,
    parse_delivery, parse_event,
};
pub use signature::{SIGNATURE_HEADER, SIGNATURE_PREFIX, SignatureError, sign, verify_signature};

/// The header naming the event type of a delivery.
pub const EVENT_HEADER: &str = "X-GitHub-Event";
/// The header carrying the GUID of a delivery.
pub const DELIVERY_HEADER: &str = "X-GitHub-Delivery";
