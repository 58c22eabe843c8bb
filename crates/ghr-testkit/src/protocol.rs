//! The emulator-only wire protocol between the emulated runner and the emulator (`/_emulator/...`),
//! and the content of the emulator's `encoded_jit_config`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use std::fmt;

/// `POST`: consume the JIT credential and open a session.
pub const CONNECT_PATH: &str = "/_emulator/runner/connect";
/// `POST`: long-poll for a job.
pub const ACQUIRE_PATH: &str = "/_emulator/runner/acquire";
/// `POST`: keep a session alive while a job runs.
pub const HEARTBEAT_PATH: &str = "/_emulator/runner/heartbeat";
/// `POST`: report a job's completion.
pub const COMPLETE_PATH: &str = "/_emulator/runner/complete";

/// A secret string on the wire (runner credential, session): serialised as is, never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// What the emulator's `encoded_jit_config` decodes to (base64 of this JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JitConfigPayload {
    /// The emulator's base URL.
    pub url: String,
    pub runner_id: u64,
    pub runner_name: String,
    /// The one-time credential; a second connection with it is refused.
    pub credential: Secret,
}

impl JitConfigPayload {
    /// Base64 of the JSON, as GitHub's `encoded_jit_config` is base64.
    pub fn encode(&self) -> String {
        // Serialising a struct of strings and integers cannot fail.
        STANDARD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decode an `encoded_jit_config`; surrounding whitespace (a trailing newline from stdin) is ignored.
    pub fn decode(encoded: &str) -> Result<Self, JitConfigError> {
        let bytes = STANDARD.decode(encoded.trim()).map_err(|source| JitConfigError::Base64 { source })?;
        serde_json::from_slice(&bytes).map_err(|source| JitConfigError::Json { source })
    }
}

/// The JIT config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JitConfigError {
    #[error("the JIT config is not base64")]
    Base64 {
        #[source]
        source: base64::DecodeError,
    },
    #[error("the JIT config is not the emulator's JSON")]
    Json {
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectRequest {
    pub runner_id: u64,
    pub credential: Secret,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectResponse {
    pub session: Secret,
    pub runner_id: u64,
    pub runner_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AcquireRequest {
    pub session: Secret,
    /// How long to hold the request open when no job fits (the emulator caps it).
    pub wait_ms: u64,
}

/// A job assigned to the runner (200 from acquire). No job yet: 204. Registration removed: 410.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignedJob {
    pub job_id: u64,
    pub run_id: u64,
    /// `owner/name`.
    pub repository: String,
    pub labels: Vec<String>,
    /// How long the job "runs".
    pub duration_ms: u64,
    /// The conclusion the job was planned to end with.
    pub conclusion: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub session: Secret,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompleteRequest {
    pub session: Secret,
    pub job_id: u64,
    pub conclusion: String,
}

/// The job's final conclusion (it differs from the reported one when the job was cancelled meanwhile).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompleteResponse {
    pub conclusion: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jit_config_round_trips_and_tolerates_a_trailing_newline() {
        let config = JitConfigPayload {
            url: "http://127.0.0.1:1".to_owned(),
            runner_id: 5,
            runner_name: "r".to_owned(),
            credential: Secret::new("c"),
        };
        assert!(!format!("{config:?}").contains("\"c\""), "Debug hides the credential");
        let encoded = format!("{}\n", config.encode());
        assert_eq!(JitConfigPayload::decode(&encoded).unwrap(), config);
        assert!(matches!(JitConfigPayload::decode("not base64!"), Err(JitConfigError::Base64 { .. })));
        let not_json = STANDARD.encode(b"[1,2]");
        assert!(matches!(JitConfigPayload::decode(&not_json), Err(JitConfigError::Json { .. })));
    }
}
