//! The API's enumerations, spelled on the wire (and on the command line) in `snake_case` (account types as GitHub
//! spells them).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A value that is not one of an enumeration's spellings; the message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}: expected one of {expected}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
        #[cfg_attr(feature = "clap", value(rename_all = "snake_case"))]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(value: &str) -> Result<Self, UnknownValue> {
                $name::ALL.iter().copied().find(|v| v.as_str() == value).ok_or_else(|| UnknownValue {
                    what: $what,
                    value: value.to_owned(),
                    expected: $name::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "),
                })
            }
        }
    };
}

wire_enum! {
    /// Lifecycle status of a tenant.
    TenantStatus ("tenant status") {
        /// Installed, awaiting operator approval.
        Pending => "pending",
        /// Served.
        Active => "active",
        /// No new runners.
        Suspended => "suspended",
        /// Uninstalled; kept for accounting.
        Deleted => "deleted",
    }
}

wire_enum! {
    /// The kind of GitHub account that installed the App, spelled as GitHub spells it.
    OrgType ("account type") {
        /// Runners registered at organisation level.
        #[serde(rename = "Organization")]
        Organization => "Organization",
        /// A personal account: runners registered at repository level.
        #[serde(rename = "User")]
        User => "User",
    }
}

wire_enum! {
    /// GitHub's status of a workflow job.
    JobStatus ("job status") {
        /// Waiting for a runner.
        Queued => "queued",
        /// Running on a runner.
        InProgress => "in_progress",
        /// Done.
        Completed => "completed",
    }
}

wire_enum! {
    /// Why a job is not running yet.
    Reason ("wait reason") {
        /// The labels fit no configured tier: not ghr's to serve.
        NoMatchingTier => "no_matching_tier",
        /// A tier fits, but the tenant's plan does not include it.
        TierNotEntitled => "tier_not_entitled",
        /// The tenant runs max_runners runners already.
        TenantAtLimit => "tenant_at_limit",
        /// The deployment-wide cap on live runners is reached.
        GlobalCap => "global_cap",
        /// The tenant is suspended.
        TenantSuspended => "tenant_suspended",
        /// The tenant awaits approval.
        TenantPending => "tenant_pending",
        /// The tenant uninstalled the App.
        TenantDeleted => "tenant_deleted",
        /// No tenant is known for the job's installation.
        UnknownTenant => "unknown_tenant",
        /// The runner provider failed to launch; retried.
        ProviderError => "provider_error",
        /// GitHub failed a call needed to start a runner; retried.
        GithubError => "github_error",
        /// GitHub no longer reports the job as queued.
        NoLongerQueued => "no_longer_queued",
    }
}

wire_enum! {
    /// A runner's state.
    RunnerState ("runner state") {
        /// A slot is reserved.
        Requested => "requested",
        /// Being launched.
        Launching => "launching",
        /// Registered, waiting for a job.
        Idle => "idle",
        /// Running a job.
        Busy => "busy",
        /// Job done; being torn down.
        Finished => "finished",
        /// Gone; the slot is free.
        Terminated => "terminated",
        /// Launch failed; the slot is free.
        Failed => "failed",
    }
}

wire_enum! {
    /// Which runners a listing selects: every live one (those holding a slot), every one, or one state.
    RunnerStates ("runner state filter") {
        /// Every state that holds a slot (default).
        Live => "live",
        /// Every runner, terminated and failed ones included.
        All => "all",
        /// A slot is reserved.
        Requested => "requested",
        /// Being launched.
        Launching => "launching",
        /// Registered, waiting for a job.
        Idle => "idle",
        /// Running a job.
        Busy => "busy",
        /// Job done; being torn down.
        Finished => "finished",
        /// Gone; the slot is free.
        Terminated => "terminated",
        /// Launch failed; the slot is free.
        Failed => "failed",
    }
}

impl RunnerStates {
    /// The runner states this filter selects.
    pub fn states(self) -> Vec<RunnerState> {
        use RunnerState as S;
        match self {
            RunnerStates::Live => vec![S::Requested, S::Launching, S::Idle, S::Busy, S::Finished],
            RunnerStates::All => RunnerState::ALL.to_vec(),
            RunnerStates::Requested => vec![S::Requested],
            RunnerStates::Launching => vec![S::Launching],
            RunnerStates::Idle => vec![S::Idle],
            RunnerStates::Busy => vec![S::Busy],
            RunnerStates::Finished => vec![S::Finished],
            RunnerStates::Terminated => vec![S::Terminated],
            RunnerStates::Failed => vec![S::Failed],
        }
    }
}

wire_enum! {
    /// An operator's action on a tenant (`POST /api/v1/tenants/{tenant}/{action}`).
    TenantAction ("tenant action") {
        /// Stop starting runners.
        Suspend => "suspend",
        /// Serve again.
        Resume => "resume",
        /// Activate a pending tenant.
        Approve => "approve",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_name<T: Serialize>(value: T) -> String {
        serde_json::to_value(value).unwrap().as_str().unwrap().to_owned()
    }

    #[test]
    fn the_wire_spelling_is_the_serde_spelling_and_parses_back() {
        fn check<T: Serialize + FromStr<Err = UnknownValue> + Copy + PartialEq + fmt::Debug + fmt::Display>(all: &[T]) {
            for value in all {
                assert_eq!(serde_name(*value), value.to_string());
                assert_eq!(value.to_string().parse::<T>().unwrap(), *value);
            }
        }
        check(TenantStatus::ALL);
        check(OrgType::ALL);
        check(JobStatus::ALL);
        check(Reason::ALL);
        check(RunnerState::ALL);
        check(RunnerStates::ALL);
        check(TenantAction::ALL);
    }

    #[test]
    fn unknown_values_list_the_valid_ones() {
        let error = "running".parse::<JobStatus>().unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"unknown job status "running": expected one of queued, in_progress, completed"#
        );
    }

    #[test]
    fn org_types_are_spelled_as_github_spells_them() {
        assert_eq!(serde_name(OrgType::Organization), "Organization");
        assert_eq!("User".parse::<OrgType>().unwrap(), OrgType::User);
    }

    #[test]
    fn live_is_every_state_that_holds_a_slot() {
        let live = RunnerStates::Live.states();
        assert!(!live.contains(&RunnerState::Terminated) && !live.contains(&RunnerState::Failed));
        assert_eq!(RunnerStates::All.states().len(), RunnerState::ALL.len());
    }
}
