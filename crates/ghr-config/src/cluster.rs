//! `[cluster]`: several `ghr serve` replicas sharing one store, and the lease that lets one of them at a time
//! run the singleton work.

use serde::{Deserialize, Serialize};

/// Longest `cluster.replica_id`.
pub const REPLICA_ID_MAX_CHARS: usize = 128;
/// Default `cluster.lease_ttl_seconds`.
pub const DEFAULT_LEASE_TTL_SECONDS: u64 = 15;

/// `[cluster]`: replicas sharing the store. The holder of the reconciler lease (the leader) runs the singleton
/// work: the reconciler's pass with its missed-webhook scan, recovery poll and retention. Every replica takes
/// webhooks and dispatches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// This replica's name, unique among the replicas sharing the store (1-128 characters, no whitespace).
    /// Default: `<hostname>-<pid>`.
    pub replica_id: Option<String>,
    /// How long the reconciler lease lasts unless renewed: the longest a dead leader keeps the singleton work
    /// from the others. The leader renews it every third of this, so two renewals in a row may fail before
    /// it would run out, and it stops the work a safety margin before that. Default 15 s.
    pub lease_ttl_seconds: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self { replica_id: None, lease_ttl_seconds: DEFAULT_LEASE_TTL_SECONDS }
    }
}

impl ClusterSection {
    /// The first invalid key of the section and what is wrong with it.
    pub(crate) fn check(&self) -> Result<(), (&'static str, String)> {
        if self.lease_ttl_seconds == 0 {
            return Err((
                "cluster.lease_ttl_seconds",
                "must be at least 1 (the lease is renewed every third of it)".into(),
            ));
        }
        if let Some(id) = &self.replica_id
            && (id.is_empty()
                || id.chars().count() > REPLICA_ID_MAX_CHARS
                || id.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err((
                "cluster.replica_id",
                format!("{id:?} is not a valid replica name: use 1-{REPLICA_ID_MAX_CHARS} characters, no whitespace"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, ConfigError};

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "ghr.toml", &|_| None)
    }

    #[test]
    fn defaults_leave_the_replica_id_to_the_host_and_a_fifteen_second_lease() {
        let config = parse("").unwrap();
        assert_eq!(config.raw.cluster.replica_id, None);
        assert_eq!(config.raw.cluster.lease_ttl_seconds, super::DEFAULT_LEASE_TTL_SECONDS);
        let config = parse("[cluster]\nreplica_id = \"ghr-a.example\"\nlease_ttl_seconds = 3").unwrap();
        assert_eq!(config.raw.cluster.replica_id.as_deref(), Some("ghr-a.example"));
        assert_eq!(config.raw.cluster.lease_ttl_seconds, 3);
    }

    #[test]
    fn invalid_cluster_keys_are_named() {
        let long = format!("[cluster]\nreplica_id = \"{}\"", "r".repeat(super::REPLICA_ID_MAX_CHARS + 1));
        let table: &[(&str, &[&str])] = &[
            ("[cluster]\nlease_ttl_seconds = 0", &["cluster.lease_ttl_seconds", "at least 1"]),
            ("[cluster]\nreplica_id = \"\"", &["cluster.replica_id", "valid replica name"]),
            ("[cluster]\nreplica_id = \"a b\"", &["cluster.replica_id", "no whitespace"]),
            (&long, &["cluster.replica_id", "1-128"]),
            ("[cluster]\nleader = true", &["unknown field `leader`"]),
        ];
        for (text, fragments) in table {
            let message = match parse(text) {
                Ok(_) => panic!("{text:?} should be rejected"),
                Err(e) => e.to_string(),
            };
            for fragment in *fragments {
                assert!(message.contains(fragment), "{text:?}: {message:?} should mention {fragment:?}");
            }
        }
    }
}
