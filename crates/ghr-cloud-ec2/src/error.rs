//! EC2 call failures ([`Ec2ApiError`]) and their classification by error code ([`classify`]).

use std::error::Error as StdError;
use std::fmt;

/// Error codes meaning "no capacity for this attempt": the next instance type, subnet or purchase
/// option may still work.
pub const CAPACITY_ERROR_CODES: &[&str] = &[
    "InsufficientInstanceCapacity",
    "InsufficientHostCapacity",
    "InsufficientCapacity",
    "MaxSpotInstanceCountExceeded",
    "SpotMaxPriceTooLow",
    // The instance type is not offered in the subnet's availability zone.
    "Unsupported",
    "InstanceLimitExceeded",
    "VcpuLimitExceeded",
];
/// Error codes meaning "slow down": API throttling.
pub const THROTTLE_ERROR_CODES: &[&str] = &["RequestLimitExceeded", "Throttling", "ThrottlingException"];
/// Error codes meaning "no such instance" (for terminate: already gone).
pub const NOT_FOUND_ERROR_CODES: &[&str] = &["InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"];
/// Error codes (besides every `Invalid*` code) meaning the configuration or credentials cannot work.
pub const CONFIG_ERROR_CODES: &[&str] = &[
    "AuthFailure",
    "UnauthorizedOperation",
    "AccessDenied",
    "AccessDeniedException",
    "Blocked",
    "OptInRequired",
    "PendingVerification",
    "MissingParameter",
    "UnknownParameter",
    "ValidationError",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "NoSuchEntity",
];
const CONFIG_ERROR_PREFIX: &str = "Invalid";

/// What an EC2 error code means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// No capacity (or quota) for this attempt; try the next one.
    Capacity,
    /// API throttling; retry later.
    Throttled,
    /// The instance does not exist.
    NotFound,
    /// Bad AMI, subnet, template, permissions...: retrying the same request cannot help.
    Config,
    /// Anything else (service or transport failure).
    Failed,
}

/// Classify an EC2 error code; `None` (no code: timeout, connection failure) is [`ErrorClass::Failed`].
pub fn classify(code: Option<&str>) -> ErrorClass {
    let Some(code) = code else { return ErrorClass::Failed };
    if CAPACITY_ERROR_CODES.contains(&code) {
        ErrorClass::Capacity
    } else if THROTTLE_ERROR_CODES.contains(&code) {
        ErrorClass::Throttled
    } else if NOT_FOUND_ERROR_CODES.contains(&code) {
        ErrorClass::NotFound
    } else if CONFIG_ERROR_CODES.contains(&code) || code.starts_with(CONFIG_ERROR_PREFIX) {
        ErrorClass::Config
    } else {
        ErrorClass::Failed
    }
}

/// A failed EC2 API call: which operation, and EC2's error code and message when it answered.
#[derive(Debug)]
pub struct Ec2ApiError {
    pub operation: &'static str,
    /// EC2's error code (`InsufficientInstanceCapacity`, ...); `None` when EC2 did not answer.
    pub code: Option<String>,
    pub message: Option<String>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl Ec2ApiError {
    /// An error EC2 answered with (also what tests inject).
    pub fn service(operation: &'static str, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { operation, code: Some(code.into()), message: Some(message.into()), source: None }
    }

    /// An error from the SDK, keeping EC2's code and message when there are some.
    pub fn from_sdk(
        operation: &'static str,
        code: Option<&str>,
        message: Option<&str>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self {
            operation,
            code: code.map(str::to_owned),
            message: message.map(str::to_owned),
            source: Some(Box::new(source)),
        }
    }

    /// A call that succeeded but answered something unusable.
    pub fn unexpected(operation: &'static str, message: impl Into<String>) -> Self {
        Self { operation, code: None, message: Some(message.into()), source: None }
    }

    pub fn class(&self) -> ErrorClass {
        classify(self.code.as_deref())
    }

    /// This error and its causes on one line, for logs and [`ghr_core::ports::ProviderError`] texts.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        if self.code.is_none() {
            let mut cause = self.source();
            while let Some(err) = cause {
                text.push_str(": ");
                text.push_str(&err.to_string());
                cause = err.source();
            }
        }
        text
    }
}

impl fmt::Display for Ec2ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EC2 {} failed", self.operation)?;
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => write!(f, " with {code}: {message}"),
            (Some(code), None) => write!(f, " with {code}"),
            (None, Some(message)) => write!(f, ": {message}"),
            (None, None) => Ok(()),
        }
    }
}

impl StdError for Ec2ApiError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|err| err as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_error_codes() {
        let cases = [
            (Some("InsufficientInstanceCapacity"), ErrorClass::Capacity),
            (Some("InsufficientHostCapacity"), ErrorClass::Capacity),
            (Some("InsufficientCapacity"), ErrorClass::Capacity),
            (Some("MaxSpotInstanceCountExceeded"), ErrorClass::Capacity),
            (Some("SpotMaxPriceTooLow"), ErrorClass::Capacity),
            (Some("Unsupported"), ErrorClass::Capacity),
            (Some("InstanceLimitExceeded"), ErrorClass::Capacity),
            (Some("VcpuLimitExceeded"), ErrorClass::Capacity),
            (Some("RequestLimitExceeded"), ErrorClass::Throttled),
            (Some("InvalidInstanceID.NotFound"), ErrorClass::NotFound),
            (Some("InvalidInstanceID.Malformed"), ErrorClass::NotFound),
            (Some("InvalidAMIID.NotFound"), ErrorClass::Config),
            (Some("InvalidAMIID.Malformed"), ErrorClass::Config),
            (Some("InvalidSubnetID.NotFound"), ErrorClass::Config),
            (Some("InvalidGroup.NotFound"), ErrorClass::Config),
            (Some("InvalidLaunchTemplateName.NotFoundException"), ErrorClass::Config),
            (Some("InvalidParameterValue"), ErrorClass::Config),
            (Some("UnauthorizedOperation"), ErrorClass::Config),
            (Some("AuthFailure"), ErrorClass::Config),
            (Some("InternalError"), ErrorClass::Failed),
            (Some("ServiceUnavailable"), ErrorClass::Failed),
            (Some("IdempotentParameterMismatch"), ErrorClass::Failed),
            (None, ErrorClass::Failed),
        ];
        for (code, class) in cases {
            assert_eq!(classify(code), class, "{code:?}");
        }
    }

    #[test]
    fn displays_operation_code_and_message() {
        let err = Ec2ApiError::service("RunInstances", "InsufficientInstanceCapacity", "none left in eu-west-1a");
        assert_eq!(
            err.to_string(),
            "EC2 RunInstances failed with InsufficientInstanceCapacity: none left in eu-west-1a"
        );
        assert_eq!(err.class(), ErrorClass::Capacity);
        assert_eq!(err.chain(), err.to_string());
    }

    #[test]
    fn chains_causes_of_transport_failures() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let err = Ec2ApiError::from_sdk("DescribeInstances", None, None, io);
        assert_eq!(err.chain(), "EC2 DescribeInstances failed: connection refused");
        assert!(err.source().is_some());
        assert_eq!(err.class(), ErrorClass::Failed);
    }
}
