//! Table tests of config parsing and validation.

use super::*;
use ghr_core::entitlement::TierAccess;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "ghr.toml", &|_| None)
}

#[test]
fn empty_file_gives_seed_defaults() {
    let config = parse("").unwrap();
    assert_eq!(config.catalog.names(), ["small", "medium", "large"]);
    assert_eq!(config.raw.tenants.default_tier, "small");
    assert_eq!(config.raw.server.max_body_bytes, 25 * 1024 * 1024, "GitHub sends payloads of up to 25 MB");
    assert!(config.webhook_secret.is_none());
}

#[test]
fn custom_tiers_need_no_code_change() {
    let text = r#"
        [tenants]
        default_tier = "starter"
        tier_access = "any"

        [[tiers]]
        name = "starter"
        labels = ["self-hosted", "linux", "x64", "starter"]
        instance_types = ["t3.small"]
        max_runners = 1

        [[tiers]]
        name = "pro"
        labels = ["self-hosted", "linux", "x64", "pro"]
        instance_types = ["m5.xlarge", "c5.xlarge"]
        max_runners = 20
        price_per_hour = 0.25

        [[tiers]]
        name = "arm64-medium"
        labels = ["self-hosted", "linux", "arm64", "medium"]
        instance_types = ["t4g.large", "m6g.large"]
        max_runners = 5
        runner_architecture = "arm64"
    "#;
    let config = parse(text).unwrap();
    assert_eq!(config.catalog.names(), ["starter", "pro", "arm64-medium"]);
    assert_eq!(config.catalog.get(&"arm64-medium".into()).unwrap().runner_architecture, "arm64");
    assert_eq!(config.raw.tenants.tier_access, TierAccess::Any);
}

#[test]
fn errors_name_file_key_and_fix() {
    let table: &[(&str, &[&str])] = &[
        ("[server]\nlisten_on = 1", &["ghr.toml", "unknown field `listen_on`"]),
        ("bogus = true", &["ghr.toml", "unknown field `bogus`"]),
        ("[tenants]\ndefault_tier = \"huge\"", &["tenants.default_tier", "\"huge\"", "small, medium, large"]),
        ("[tenants]\nonboarding = \"sometimes\"", &["ghr.toml", "unknown variant `sometimes`"]),
        ("[tenants]\nglobal_max_runners = 0", &["tenants.global_max_runners"]),
        ("environment = \"a b\"", &["environment", "valid deployment name"]),
        ("[server]\nwebhook_path = \"hook\"", &["server.webhook_path", "start with '/'"]),
        (
            "[[tiers]]\nname = \"x\"\nlabels = []\ninstance_types = [\"t3.small\"]\nmax_runners = 1",
            &["tiers", "no labels"],
        ),
        (
            "[[tiers]]\nname = \"x\"\nlabels = [\"a\"]\ninstance_types = [\"t3.small\"]\nmax_runners = 0",
            &["max_runners = 0"],
        ),
        ("[[tiers]]\nname = \"x\"\nlabels = [\"a\"]\nmax_runners = 1", &["missing field `instance_types`"]),
        (
            "[[tiers]]\nname = \"x\"\nlabels = [\"a\"]\ninstance_types = [\"t3.small\"]\nmax_runners = 4294967295",
            &["tiers.max_runners", "4294967295", "10000"],
        ),
        ("[provider]\nkind = \"ec2\"", &["provider.ec2.subnets"]),
        ("[provider.process]\ncommand = []", &["provider.process.command"]),
        ("[store]\nurl = \"mysql://db/ghr\"", &["store.url", "mysql://", "postgres://", "dynamodb://"]),
        ("[store]\nurl = \"\"", &["store.url", "sqlite://PATH"]),
        ("[store.pool]\nmax_connections = 0", &["store.pool.max_connections", "at least 1"]),
        ("[store.pool]\nmin_connections = 20", &["store.pool.min_connections", "max_connections = 10"]),
        ("[store.pool]\nacquire_timeout_seconds = 0", &["store.pool.acquire_timeout_seconds"]),
        ("[store.pool]\nmax_conections = 5", &["unknown field `max_conections`"]),
        (
            "[[tiers]]\nname = \"small\"\nlabels = [\"a\"]\ninstance_types = [\"t3.small\"]\nmax_runners = 1\nwarm_pool = { size = 1001 }",
            &["tiers.warm_pool.size", "\"small\"", "1000"],
        ),
        (
            "[[tiers]]\nname = \"small\"\nlabels = [\"a\"]\ninstance_types = [\"t3.small\"]\nmax_runners = 1\nwarm_pool = { size = 1, max_idle_seconds = 0 }",
            &["tiers.warm_pool.max_idle_seconds", "1 to 86400"],
        ),
        (
            "[[tiers]]\nname = \"small\"\nlabels = [\"a\"]\ninstance_types = [\"t3.small\"]\nmax_runners = 1\nwarm_pool = { size = 1, sise = 2 }",
            &["unknown field `sise`"],
        ),
        (
            "[[tiers]]\nname = \"small\"\nlabels = [\"a\"]\ninstance_types = [\"t3.small\"]\nmax_runners = 1\nwarm_pool = { size = 1, schedule = [{ from = \"25:00\", to = \"06:00\", size = 0 }] }",
            &["tiers.warm_pool.schedule", "\"25:00\"", "HH:MM"],
        ),
        ("[agent]\nurl = \"ftp://x\"", &["agent.url", "http://"]),
        ("[agent]\nurl = \"http://u:p@x\"", &["agent.url", "credentials"]),
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

#[test]
fn warm_pools_are_per_tier_and_absent_means_none() {
    assert!(parse("").unwrap().pools.is_empty(), "no warm_pool: every runner starts cold, as before");
    let config = parse(
        r#"
        [[tiers]]
        name = "small"
        labels = ["small"]
        instance_types = ["t3.small"]
        max_runners = 2
        warm_pool = { size = 3, schedule = [{ from = "22:00", to = "06:00", size = 1 }] }

        [[tiers]]
        name = "large"
        labels = ["large"]
        instance_types = ["t3.large"]
        max_runners = 2
    "#,
    )
    .unwrap();
    let small = &config.pools[&"small".into()];
    assert_eq!((small.size, small.schedule.len()), (3, 1));
    assert_eq!(small.max_idle, ghr_core::pool::DEFAULT_MAX_IDLE);
    assert!(!config.pools.contains_key(&"large".into()));
    let effective = toml::to_string(&config.effective()).unwrap();
    let again = parse(&effective).unwrap();
    assert_eq!(again.pools, config.pools, "config check's output keeps the pools:\n{effective}");
}

#[test]
fn secrets_come_from_the_environment_first() {
    let env = |name: &str| match name {
        ENV_WEBHOOK_SECRET => Some("from-env".to_owned()),
        ENV_ADMIN_TOKEN => Some("admin-env".to_owned()),
        _ => None,
    };
    let config = Config::parse("[github]\nwebhook_secret = \"from-file\"", "ghr.toml", &env).unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(config.webhook_secret.unwrap().expose_secret(), "from-env");
    assert_eq!(config.admin_token.unwrap().expose_secret(), "admin-env");
    let config = parse("[github]\nwebhook_secret = \"from-file\"").unwrap();
    assert_eq!(config.webhook_secret.unwrap().expose_secret(), "from-file");
}

#[test]
fn secrets_never_serialize() {
    let config = parse("[github]\nwebhook_secret = \"s3cret\"\n[admin]\ntoken = \"t0ken\"").unwrap();
    let rendered = toml::to_string(&config.raw).unwrap();
    assert!(!rendered.contains("s3cret") && !rendered.contains("t0ken"), "{rendered}");
}

#[test]
fn missing_private_key_says_how_to_provide_it() {
    let err = parse("").unwrap().private_key_pem(&|_| None).unwrap_err();
    assert!(err.to_string().contains(ENV_PRIVATE_KEY), "{err}");
}

#[test]
fn debug_output_redacts_secrets() {
    let config = parse("[github]\nwebhook_secret = \"s3cret\"\n[admin]\ntoken = \"t0ken\"").unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("s3cret") && !debug.contains("t0ken"), "{debug}");
}

/// The documented example file stays valid and equal to the built-in defaults where it shows them.
#[test]
fn example_file_is_valid_and_matches_defaults() {
    let text = include_str!("../../../ghr.example.toml");
    let mut example = parse(text).unwrap();
    let builtin = Config::builtin();
    assert_eq!(example.catalog, builtin.catalog);
    // The example spells the default tiers out; everything else must equal the defaults.
    example.raw.tiers.clear();
    assert_eq!(toml::to_string(&example.raw).unwrap(), toml::to_string(&builtin.raw).unwrap());
}

#[test]
fn store_urls_pick_a_backend_and_hide_passwords() {
    let config =
        parse("[store]\nurl = \"postgresql://ghr:pw@db:5432/ghr?schema=prod\"\n[store.pool]\nmax_connections = 4\n")
            .unwrap();
    assert_eq!(config.raw.store.kind(), StoreKind::Postgres);
    assert_eq!(config.raw.store.pool.max_connections, 4);
    assert_eq!(redact_url(&config.raw.store.url), "postgresql://ghr:***@db:5432/ghr?schema=prod");
    assert_eq!(redact_url("postgres://ghr@db/ghr"), "postgres://ghr@db/ghr");
    for sqlite in ["sqlite://ghr.db", "data/ghr.db", "sqlite::memory:"] {
        assert_eq!(parse(&format!("[store]\nurl = \"{sqlite}\"")).unwrap().raw.store.kind(), StoreKind::Sqlite);
    }
    let dynamo = parse("[store]\nurl = \"dynamodb://ghr-prod?region=eu-west-1\"").unwrap();
    assert_eq!(dynamo.raw.store.kind(), StoreKind::DynamoDb);
    assert_eq!(StoreKind::DynamoDb.as_str(), "dynamodb");
}

#[test]
fn a_json_document_is_checked_like_the_file_and_nulls_mean_defaults() {
    let json = r#"{
        "environment": "my-saas",
        "store": {"url": "dynamodb://my-saas?region=us-east-1", "retention_days": null},
        "tenants": {"default_tier": "starter", "global_max_runners": null},
        "tiers": [
            {"name": "starter", "labels": ["self-hosted", "linux", "x64", "starter"], "instance_types": ["t3.small"],
             "max_runners": 1, "runner_os": "linux", "runner_architecture": "x64"},
            {"name": "arm64-medium", "labels": ["self-hosted", "linux", "arm64", "medium"],
             "instance_types": ["t4g.large"], "max_runners": 5, "runner_architecture": "arm64"}
        ]
    }"#;
    let config = Config::parse_json(json, "GHR_CONFIG", &|_| None).unwrap();
    assert_eq!(config.raw.environment, "my-saas");
    assert_eq!(config.catalog.names(), vec!["starter", "arm64-medium"]);
    assert_eq!(config.raw.store.retention_days, StoreSection::default().retention_days);

    let wrong_tier = json.replace(r#""default_tier": "starter""#, r#""default_tier": "gold""#);
    let error = Config::parse_json(&wrong_tier, "GHR_CONFIG", &|_| None).unwrap_err().to_string();
    assert!(error.starts_with("GHR_CONFIG: key `tenants.default_tier`"), "{error}");
    let unknown = json.replace(r#""environment""#, r#""enviroment""#);
    let error = Config::parse_json(&unknown, "GHR_CONFIG", &|_| None).unwrap_err().to_string();
    assert!(error.contains("unknown field `enviroment`"), "{error}");
    for not_an_object in ["[]", "\"x\"", "{", ""] {
        assert!(matches!(Config::parse_json(not_an_object, "GHR_CONFIG", &|_| None), Err(ConfigError::Syntax { .. })));
    }
}

#[test]
fn every_ec2_tier_needs_an_image_for_its_architecture() {
    let base = r#"
[provider]
kind = "ec2"
[provider.ec2]
subnets = ["subnet-a"]
ami_id = "ami-x64"
[[tiers]]
name = "small"
labels = ["self-hosted", "small"]
instance_types = ["t3.medium"]
max_runners = 2
[[tiers]]
name = "arm64-medium"
labels = ["self-hosted", "arm64", "medium"]
instance_types = ["t4g.large"]
max_runners = 5
runner_architecture = "arm64"
"#;
    // `ami_id` serves every architecture (an operator's multi-arch image or a single-arch deployment).
    assert!(Config::parse(base, "ghr.toml", &|_| None).is_ok());
    let per_arch = base.replace(r#"ami_id = "ami-x64""#, r#"ami_ids = { x64 = "ami-x64" }"#);
    let error = Config::parse(&per_arch, "ghr.toml", &|_| None).unwrap_err().to_string();
    assert_eq!(
        error,
        "ghr.toml: key `provider.ec2.ami_ids`: tier \"arm64-medium\" runs on arm64: set provider.ec2.ami_ids.arm64 \
         (or provider.ec2.ami_id, or a launch_template)"
    );
    let both = per_arch.replace(r#"{ x64 = "ami-x64" }"#, r#"{ x64 = "ami-x64", arm64 = "ami-arm" }"#);
    let config = Config::parse(&both, "ghr.toml", &|_| None).unwrap();
    assert_eq!(config.raw.provider.ec2.ami_ids["arm64"], "ami-arm");
}

#[test]
fn a_json_file_is_loaded_as_json_and_a_toml_file_as_toml() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("lambda.json");
    std::fs::write(&json, r#"{"environment": "from-json", "tenants": {"default_tier": "medium"}}"#).unwrap();
    let config = Config::load(&json).unwrap();
    assert_eq!((config.raw.environment.as_str(), config.raw.tenants.default_tier.as_str()), ("from-json", "medium"));
    let toml = dir.path().join("ghr.toml");
    std::fs::write(&toml, "environment = \"from-toml\"\n").unwrap();
    assert_eq!(Config::load(&toml).unwrap().raw.environment, "from-toml");
    std::fs::write(&json, "environment = \"toml-in-a-json-file\"\n").unwrap();
    assert!(matches!(Config::load(&json), Err(ConfigError::Syntax { .. })));
}

/// `Config::effective` (what `ghr config check` prints) is a valid file that reads back to the same settings,
/// for the built-in defaults, the documented example and a file that changes a little of everything.
#[test]
fn effective_settings_round_trip_through_the_parser() {
    let custom = "environment = \"prod\"\n[tenants]\nonboarding = \"approval\"\ntier_access = \"any\"\n\
                  default_tier = \"big\"\nglobal_max_runners = 40\non_suspend = \"terminate\"\n\
                  [store]\nurl = \"postgres://ghr:pw@db/ghr\"\n[provider.process]\ncommand = [\"./run.sh\", \"-v\"]\n\
                  [[tiers]]\nname = \"big\"\nlabels = [\"self-hosted\", \"big\"]\ninstance_types = [\"c7g.large\"]\n\
                  max_runners = 3\nrunner_architecture = \"arm64\"\nprice_per_hour = 0.25\npriority = 7\n\
                  [github]\nwebhook_secret = \"s3cret\"\n";
    for config in [Config::builtin(), parse(include_str!("../../../ghr.example.toml")).unwrap(), parse(custom).unwrap()]
    {
        let rendered = toml::to_string(&config.effective()).unwrap();
        let again = Config::parse(&rendered, "effective", &|_| None).unwrap_or_else(|e| panic!("{e}\n{rendered}"));
        assert_eq!(again.catalog, config.catalog, "{rendered}");
        assert_eq!(toml::to_string(&again.effective()).unwrap(), rendered);
        assert!(!rendered.contains("s3cret") && !rendered.contains(":pw@"), "no secret is printed: {rendered}");
    }
    let custom = toml::to_string(&parse(custom).unwrap().effective()).unwrap();
    for line in
        ["onboarding = \"approval\"", "tier_access = \"any\"", "on_suspend = \"terminate\"", "kind = \"process\""]
    {
        assert!(custom.contains(line), "serde's spellings, as the file takes them: {line}\n{custom}");
    }
}
