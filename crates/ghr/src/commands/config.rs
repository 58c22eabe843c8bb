//! `ghr config check`.

use crate::table;
use ghr_config::{Config, StoreKind, StoreSection, redact_url};

pub fn check(config: &Config) -> String {
    let rows: Vec<Vec<String>> = config
        .catalog
        .tiers()
        .iter()
        .map(|t| {
            vec![
                t.name.to_string(),
                t.labels.join(","),
                t.instance_types.join(","),
                t.max_runners.to_string(),
                format!("{}/{}", t.runner_os, t.runner_architecture),
                format!("{:.4}", t.price_per_hour),
                t.priority.to_string(),
            ]
        })
        .collect();
    let raw = &config.raw;
    let mut out = format!("{}: OK\n\n", config.source);
    out.push_str(&table::render(
        &["TIER", "LABELS", "INSTANCE TYPES", "MAX RUNNERS", "OS/ARCH", "PRICE/H", "PRIORITY"],
        &rows,
    ));
    out.push_str(&format!(
        "\nenvironment={}  default_tier={}  onboarding={:?}  tier_access={:?}  global_max_runners={}  provider={:?}\n",
        raw.environment,
        raw.tenants.default_tier,
        raw.tenants.onboarding,
        raw.tenants.tier_access,
        raw.tenants.global_max_runners.map(|n| n.to_string()).unwrap_or_else(|| "none".into()),
        raw.provider.kind,
    ));
    out.push_str(&store_line(&raw.store));
    out.push_str(&format!(
        "webhook secret: {}   admin token: {}\n",
        if config.webhook_secret.is_some() { "set" } else { "NOT SET (ghr serve refuses to start)" },
        if config.admin_token.is_some() { "set" } else { "not set (admin API answers 401)" },
    ));
    out
}

/// `store: postgres postgres://ghr:***@db/ghr  pool: max 10, min 1, acquire timeout 30s`.
fn store_line(store: &StoreSection) -> String {
    let url = redact_url(&store.url);
    match store.kind() {
        StoreKind::Sqlite => {
            format!("store: sqlite {url} (created and migrated by ghr serve at start; one ghr serve)\n")
        }
        StoreKind::Postgres => format!(
            "store: postgres {url}  pool: max_connections={} min_connections={} acquire_timeout={}s (schema: ghr store \
             migrate)\n",
            store.pool.max_connections, store.pool.min_connections, store.pool.acquire_timeout_seconds
        ),
        StoreKind::DynamoDb => {
            let ttl = match store.retention_days {
                0 => "none (retention_days = 0 keeps everything)".to_owned(),
                days => format!("{} days", crate::wiring::dynamodb_ttl(days).as_secs() / 86_400),
            };
            format!("store: dynamodb {url}  TTL of completed jobs and deliveries: {ttl} (tables: ghr store init)\n")
        }
    }
}
