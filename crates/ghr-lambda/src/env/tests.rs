//! Table tests of the functions' environment.

use super::*;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

const SMALL_QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/acme-small-builds";
const LARGE_QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/acme-large-builds";
const TEARDOWN_QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/acme-teardown";
const EVENTS_QUEUE: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/acme-tenant-events";
const APP_KEY_PARAMETER: &str = "/acme/github-app-key";
const WEBHOOK_PARAMETER: &str = "/acme/webhook-secret";

/// GHR_CONFIG_JSON as the Terraform module renders it, for two tiers.
fn config() -> Value {
    json!({
        "environment": "acme",
        "store": {"url": "dynamodb://acme?region=us-east-1"},
        "tenants": {"default_tier": "small", "global_max_runners": null},
        "tiers": [
            {"name": "small", "labels": ["self-hosted", "linux", "x64", "small"], "instance_types": ["t3.small"],
             "max_runners": 2, "runner_os": "linux", "runner_architecture": "x64", "price_per_hour": null},
            {"name": "large", "labels": ["self-hosted", "linux", "arm64", "large"], "instance_types": ["c7g.xlarge"],
             "max_runners": 5, "runner_os": "linux", "runner_architecture": "arm64", "price_per_hour": 0.15}
        ],
        "provider": {"kind": "ec2", "ec2": {
            "region": "us-east-1", "ami_id": "ami-0123456789abcdef0", "subnets": ["subnet-1"],
            "security_groups": ["sg-1"], "iam_instance_profile": "acme-runner", "capacity": "on_demand"
        }},
        "github": {"app_id": 123456},
        "reconciler": {"orphan_grace_seconds": 300}
    })
}

/// A valid environment for `function`.
fn valid(function: Function) -> BTreeMap<&'static str, String> {
    let mut vars = BTreeMap::from([
        (ENV_FUNCTION, function.as_str().to_owned()),
        (ENV_CONFIG, config().to_string()),
        (ENV_TIER_QUEUES, json!({"small": SMALL_QUEUE, "large": LARGE_QUEUE}).to_string()),
        (ENV_TEARDOWN_QUEUE, TEARDOWN_QUEUE.to_owned()),
        (ENV_TENANT_EVENTS_QUEUE, EVENTS_QUEUE.to_owned()),
        (ENV_FUNCTION_TIMEOUT, "60".to_owned()),
    ]);
    match function {
        Function::Webhook => vars.insert(ENV_WEBHOOK_SECRET_PARAMETER, WEBHOOK_PARAMETER.to_owned()),
        _ => vars.insert(ENV_APP_KEY_PARAMETER, APP_KEY_PARAMETER.to_owned()),
    };
    if function == Function::ScaleUp {
        vars.insert(ENV_TIER, "large".to_owned());
    }
    vars
}

fn read(vars: &BTreeMap<&'static str, String>) -> Result<LambdaEnv, EnvError> {
    LambdaEnv::from_lookup(&|name| vars.get(name).cloned())
}

/// `config()` with `pointer` (a JSON pointer) set to `value`.
fn config_with(pointer: &str, value: Value) -> String {
    let mut config = config();
    *config.pointer_mut(pointer).unwrap_or_else(|| panic!("no {pointer} in the test config")) = value;
    config.to_string()
}

#[test]
fn a_valid_environment_is_read_for_every_function() {
    for function in Function::ALL {
        let env = read(&valid(function)).unwrap_or_else(|e| panic!("{}: {e}", function.as_str()));
        assert_eq!(env.function, function);
        assert_eq!(Function::from_name(function.as_str()), Some(function));
        assert_eq!(
            env.queues,
            QueueUrls {
                tiers: [
                    (TierName::from("small"), SMALL_QUEUE.to_owned()),
                    (TierName::from("large"), LARGE_QUEUE.to_owned())
                ]
                .into(),
                default_tier: TierName::from("small"),
                teardown: TEARDOWN_QUEUE.into(),
                tenant_events: EVENTS_QUEUE.into(),
            }
        );
        assert_eq!(env.timeout, Duration::from_secs(60));
        assert_eq!(env.config.catalog.names(), vec!["small", "large"]);
        assert_eq!(env.tier, (function == Function::ScaleUp).then(|| TierName::from("large")));
        let (key, webhook) =
            (env.secrets.app_key_parameter.as_deref(), env.secrets.webhook_secret_parameter.as_deref());
        match function {
            Function::Webhook => assert_eq!((key, webhook), (None, Some(WEBHOOK_PARAMETER))),
            _ => assert_eq!((key, webhook), (Some(APP_KEY_PARAMETER), None)),
        }
    }
}

#[test]
fn defaults_and_alternatives_are_accepted() {
    // No timeout: the seed's 60 s; surrounding blanks are ignored.
    let mut vars = valid(Function::ScaleDown);
    vars.remove(ENV_FUNCTION_TIMEOUT);
    vars.insert(ENV_FUNCTION, "  scale-down\n".into());
    assert_eq!(read(&vars).unwrap().timeout, DEFAULT_FUNCTION_TIMEOUT);
    // The longest Lambda timeout, with an orphan grace longer than it.
    let mut vars = valid(Function::ScaleUp);
    vars.insert(ENV_FUNCTION_TIMEOUT, "900".into());
    vars.insert(ENV_CONFIG, config_with("/reconciler/orphan_grace_seconds", json!(901)));
    assert_eq!(read(&vars).unwrap().timeout, Duration::from_secs(900));
    // The webhook needs no App id; secrets may come from the environment itself.
    let mut vars = valid(Function::Webhook);
    vars.remove(ENV_WEBHOOK_SECRET_PARAMETER);
    vars.insert(ghr_config::ENV_WEBHOOK_SECRET, "s3cret".into());
    vars.insert(ENV_CONFIG, config_with("/github/app_id", Value::Null));
    let env = read(&vars).unwrap();
    assert_eq!(env.secrets.webhook_secret_env.map(|s| s.expose_secret().to_owned()).as_deref(), Some("s3cret"));
    let mut vars = valid(Function::TenantManager);
    vars.remove(ENV_APP_KEY_PARAMETER);
    vars.insert(ghr_config::ENV_PRIVATE_KEY, "-----BEGIN RSA PRIVATE KEY-----".into());
    assert!(read(&vars).unwrap().secrets.app_key_env.is_some());
    // A webhook secret in the configuration itself counts too (as it does for `ghr serve`).
    let mut vars = valid(Function::Webhook);
    vars.remove(ENV_WEBHOOK_SECRET_PARAMETER);
    vars.insert(ENV_CONFIG, config_with("/github", json!({"webhook_secret": "in-config"})));
    let env = read(&vars).unwrap();
    assert_eq!(env.secrets.webhook_secret_env.map(|s| s.expose_secret().to_owned()).as_deref(), Some("in-config"));
}

/// One wrong environment: the function's valid one with `changes` (None removes the variable), and the start
/// of the error it must give.
struct Case {
    function: Function,
    changes: Vec<(&'static str, Option<String>)>,
    error: &'static str,
    /// Whether the error is `ghr config check`'s own ([`EnvError::Config`]).
    config_check: bool,
}

fn case(function: Function, changes: &[(&'static str, Option<&str>)], error: &'static str) -> Case {
    let changes = changes.iter().map(|(k, v)| (*k, v.map(str::to_owned))).collect();
    Case { function, changes, error, config_check: false }
}

/// A configuration the functions refuse (`ghr config check` accepts it).
fn config_case(function: Function, config: String, error: &'static str) -> Case {
    Case { function, changes: vec![(ENV_CONFIG, Some(config))], error, config_check: false }
}

/// A configuration `ghr config check` refuses, with its message.
fn checked(function: Function, config: &str, error: &'static str) -> Case {
    Case { function, changes: vec![(ENV_CONFIG, Some(config.to_owned()))], error, config_check: true }
}

#[test]
fn every_wrong_environment_names_the_variable_and_the_fix() {
    use Function::*;
    let only_small = json!({"small": SMALL_QUEUE}).to_string();
    let blank_large = json!({"small": SMALL_QUEUE, "large": " "}).to_string();
    let extra = json!({"small": SMALL_QUEUE, "large": LARGE_QUEUE, "medium": LARGE_QUEUE}).to_string();
    let sqlite = config_with("/store/url", json!("sqlite://ghr.db"));
    let process = config_with("/provider", json!({"kind": "process", "process": {"command": ["./run.sh"]}}));
    let mut cases = vec![
        case(
            ScaleUp,
            &[(ENV_FUNCTION, None)],
            "GHR_FUNCTION: not set: use one of webhook, tenant-manager, scale-up, scale-down",
        ),
        case(ScaleUp, &[(ENV_FUNCTION, Some(" "))], "GHR_FUNCTION: not set"),
        case(
            ScaleUp,
            &[(ENV_FUNCTION, Some("scale_up"))],
            "GHR_FUNCTION: \"scale_up\" is not a function: use one of webhook,",
        ),
        case(Webhook, &[(ENV_CONFIG, None)], "GHR_CONFIG_JSON: not set: give ghr's configuration as a JSON object"),
        checked(Webhook, "{", "GHR_CONFIG_JSON: EOF while parsing"),
        checked(Webhook, "[]", "GHR_CONFIG_JSON: expected a JSON object of ghr.toml's keys"),
        checked(
            ScaleDown,
            &config().to_string().replace("environment", "enviroment"),
            "GHR_CONFIG_JSON: unknown field `enviroment`",
        ),
        checked(
            ScaleDown,
            &config_with("/tenants/default_tier", json!("gold")),
            "GHR_CONFIG_JSON: key `tenants.default_tier`: tier \"gold\" is not in the catalog",
        ),
        checked(
            ScaleDown,
            &config_with("/tiers/1/max_runners", json!(0)),
            "GHR_CONFIG_JSON: key `tiers`: tier \"large\" has max_runners = 0: use a positive limit",
        ),
        checked(
            ScaleDown,
            &config_with("/environment", json!("a b")),
            "GHR_CONFIG_JSON: key `environment`: \"a b\" is not a valid deployment name",
        ),
        checked(
            ScaleDown,
            &config_with("/provider/ec2/subnets", json!([])),
            "GHR_CONFIG_JSON: key `provider.ec2.subnets`: list at least one subnet id",
        ),
        config_case(Webhook, sqlite, "GHR_CONFIG_JSON: key `store.url`: the functions keep their state in DynamoDB"),
        config_case(ScaleUp, process, "GHR_CONFIG_JSON: key `provider.kind`: the functions launch EC2 runners"),
        config_case(
            TenantManager,
            config_with("/github/app_id", Value::Null),
            "GHR_CONFIG_JSON: key `github.app_id`: set the GitHub App id",
        ),
        case(
            ScaleUp,
            &[(ENV_TIER_QUEUES, None)],
            "GHR_TIER_QUEUES: not set: give a JSON object of tier name → queue URL",
        ),
        case(
            ScaleUp,
            &[(ENV_TIER_QUEUES, Some("[\"small\"]"))],
            "GHR_TIER_QUEUES: not a JSON object of tier name → queue URL",
        ),
        case(
            ScaleUp,
            &[(ENV_TIER_QUEUES, Some(&only_small))],
            "GHR_TIER_QUEUES: no queue for tier \"large\": every tier of the catalog needs one",
        ),
        case(ScaleUp, &[(ENV_TIER_QUEUES, Some(&blank_large))], "GHR_TIER_QUEUES: no queue for tier \"large\""),
        case(
            Webhook,
            &[(ENV_TIER_QUEUES, Some(&extra))],
            "GHR_TIER_QUEUES: tier \"medium\" is not in the catalog (small, large)",
        ),
        case(Webhook, &[(ENV_TEARDOWN_QUEUE, None)], "GHR_TEARDOWN_QUEUE_URL: not set: give the queue URL"),
        case(Webhook, &[(ENV_TENANT_EVENTS_QUEUE, None)], "GHR_TENANT_EVENTS_QUEUE_URL: not set: give the queue URL"),
        case(
            ScaleUp,
            &[(ENV_TIER, None)],
            "GHR_TIER: not set: name the tier whose queue this scale-up function consumes",
        ),
        case(
            ScaleUp,
            &[(ENV_TIER, Some("gold"))],
            "GHR_TIER: \"gold\" is not a tier of the catalog: use one of small, large",
        ),
        case(
            Webhook,
            &[(ENV_WEBHOOK_SECRET_PARAMETER, None)],
            "GHR_WEBHOOK_SECRET_PARAMETER: not set: name the SSM parameter holding the webhook secret (or set GHR_WEBHOOK_SECRET)",
        ),
    ];
    for timeout in ["0", "901", "sixty", "-5", "1.5"] {
        cases.push(case(ScaleDown, &[(ENV_FUNCTION_TIMEOUT, Some(timeout))], "GHR_FUNCTION_TIMEOUT_SECONDS: "));
    }
    cases.push(case(
        ScaleDown,
        &[(ENV_FUNCTION_TIMEOUT, Some("300"))],
        "GHR_CONFIG_JSON: key `reconciler.orphan_grace_seconds`: 300 is not longer than the function timeout (300s)",
    ));
    let default_grace = config_with("/reconciler", json!({}));
    cases.push(case(
        ScaleUp,
        &[(ENV_CONFIG, Some(&default_grace)), (ENV_FUNCTION_TIMEOUT, Some("120"))],
        "GHR_CONFIG_JSON: key `reconciler.orphan_grace_seconds`: 120 is not longer than the function timeout (120s)",
    ));
    for function in [TenantManager, ScaleUp, ScaleDown] {
        cases.push(case(function, &[(ENV_APP_KEY_PARAMETER, None)], "GHR_APP_KEY_PARAMETER: not set: name the SSM parameter holding the App private key (or set GHR_GITHUB_PRIVATE_KEY)"));
    }
    for Case { function, changes, error: expected, config_check } in cases {
        let mut vars = valid(function);
        for (name, value) in &changes {
            match value {
                Some(value) => vars.insert(name, value.clone()),
                None => vars.remove(name),
            };
        }
        let error = match read(&vars) {
            Ok(_) => panic!("{} with {changes:?}: accepted, expected {expected:?}", function.as_str()),
            Err(error) => error,
        };
        let message = error.to_string();
        assert!(
            message.starts_with(expected),
            "{} with {changes:?}:\n  got      {message}\n  expected {expected}",
            function.as_str()
        );
        assert_eq!(matches!(error, EnvError::Config(_)), config_check, "{message}: from `ghr config check`?");
    }
}

#[test]
fn a_bad_timeout_says_what_is_allowed() {
    let mut vars = valid(Function::ScaleDown);
    vars.insert(ENV_FUNCTION_TIMEOUT, "901".into());
    let message = read(&vars).unwrap_err().to_string();
    assert_eq!(message, "GHR_FUNCTION_TIMEOUT_SECONDS: \"901\": give the Lambda timeout, 1 to 900 seconds");
}

/// The configuration the Terraform module renders for the seed's example (a fixture `scripts/terraform-check.sh`
/// keeps equal to the rendering) is one the functions accept, with the seed's tiers in plan order.
#[test]
fn the_terraform_modules_rendering_of_the_seed_example_starts_every_function() {
    const RENDERED: &str = include_str!("../../../../deploy/terraform/tests/fixtures/ghr-config.seed.json");
    let rendered: Value = serde_json::from_str(RENDERED).unwrap();
    let tiers: Vec<String> =
        rendered["tiers"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect();
    let queues: serde_json::Map<String, Value> =
        tiers.iter().map(|t| (t.clone(), Value::from(format!("https://sqs.example/{t}")))).collect();
    for function in Function::ALL {
        let mut vars = valid(function);
        vars.insert(ENV_CONFIG, RENDERED.to_owned());
        vars.insert(ENV_TIER_QUEUES, Value::Object(queues.clone()).to_string());
        vars.insert(ENV_TIER, tiers[0].clone());
        vars.insert(ENV_FUNCTION_TIMEOUT, "60".to_owned());
        let env = LambdaEnv::from_lookup(&|name| vars.get(name).cloned())
            .unwrap_or_else(|error| panic!("{}: {error}", function.as_str()));
        assert_eq!(env.config.catalog.names(), vec!["small", "medium", "large"], "the seed's plan order");
        assert_eq!(env.config.raw.environment, "my-saas");
    }
}

/// The `ghr.toml` the module renders for the CLI (the `ghr_toml` output) is the same configuration as the functions'.
#[test]
fn the_terraform_modules_ghr_toml_matches_the_functions_configuration() {
    const TOML: &str = include_str!("../../../../deploy/terraform/tests/fixtures/ghr.seed.toml");
    const JSON: &str = include_str!("../../../../deploy/terraform/tests/fixtures/ghr-config.seed.json");
    let toml = Config::parse(TOML, "ghr.toml", &|_| None).unwrap();
    let json = Config::parse_json(JSON, CONFIG_SOURCE, &|_| None).unwrap();
    assert_eq!(toml.catalog.names(), json.catalog.names());
    assert_eq!(toml.raw.store.url, json.raw.store.url);
    assert_eq!(toml.raw.provider.ec2.ami_ids, json.raw.provider.ec2.ami_ids);
    assert_eq!(toml.raw.environment, json.raw.environment);
}
