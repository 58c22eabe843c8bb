//! Newtypes for every identifier ghr handles, so that an installation id can never be passed where a job id is meant.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.trim().parse().map(Self)
            }
        }
    };
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
    };
}

numeric_id!(
    /// A GitHub App installation id. This is the tenant id.
    InstallationId
);
numeric_id!(
    /// A GitHub workflow job id (`workflow_job.id`).
    JobId
);
numeric_id!(
    /// The id GitHub gives a self-hosted runner registration (`runner.id` of the JIT answer).
    GithubRunnerId
);
numeric_id!(
    /// A GitHub account id (`installation.account.id`, `sender.id`).
    AccountId
);
numeric_id!(
    /// ghr's own sequence number of a runner record; the runner name is derived from it.
    RunnerSeq
);

string_id!(
    /// The unique name of a runner, shared by ghr, GitHub and the provider.
    RunnerName
);
string_id!(
    /// The id a provider gives a launched instance (EC2 instance id, or `proc-<pid>-...`).
    InstanceId
);
string_id!(
    /// `X-GitHub-Delivery`: the GUID of one webhook delivery.
    DeliveryId
);
string_id!(
    /// The name of a runner tier in the configured catalog (`small`, `arm64-medium`, ...).
    TierName
);
string_id!(
    /// An organisation or user login on GitHub.
    OrgName
);
string_id!(
    /// A warm-pool machine: a tenant-neutral runner machine waiting to be bound (`pool-<tier>-<random>`).
    MachineId
);

/// The prefix of every runner name ghr mints; the reconciler only touches registrations that carry it.
pub const RUNNER_NAME_PREFIX: &str = "ghr";

impl RunnerName {
    /// The deterministic, unique runner name for a runner record: `ghr-<installation>-<tier>-<seq>`.
    ///
    /// Unique because `seq` is unique per store; deterministic so a retried JIT call after a crash
    /// hits GitHub's 409 "already exists" instead of creating a second registration.
    pub fn derive(environment: &str, installation: InstallationId, tier: &TierName, seq: RunnerSeq) -> Self {
        Self(format!("{RUNNER_NAME_PREFIX}-{environment}-{installation}-{tier}-{seq}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_names_are_deterministic_and_distinct() {
        let small = TierName::from("small");
        let a = RunnerName::derive("prod", InstallationId(7), &small, RunnerSeq(1));
        let b = RunnerName::derive("prod", InstallationId(7), &small, RunnerSeq(2));
        assert_eq!(a.as_str(), "ghr-prod-7-small-1");
        assert_ne!(a, b);
        assert_eq!(a, RunnerName::derive("prod", InstallationId(7), &small, RunnerSeq(1)));
    }

    #[test]
    fn numeric_ids_parse_with_whitespace() {
        assert_eq!(" 42 ".parse::<InstallationId>().unwrap(), InstallationId(42));
        assert!("x".parse::<InstallationId>().is_err());
    }
}
