"""Structure test of deploy/terraform, offline (the aws provider cannot be fetched, so `terraform validate` cannot run).

The .tf files are parsed with python-hcl2 (8.x) and checked against:
- the seed's interface: the example's inputs and outputs (the seed README's Inputs/Outputs tables), the module's
  variables, the seed's three tiers;
- ghr's DynamoDB layout, read from crates/ghr-store-dynamodb/src/tables.rs (its constants and `specs()`);
- the functions' environment contract, read from crates/ghr-lambda/src/env.rs;
- the design's rules: every work queue has a DLQ with a redrive policy and an alarm, every queue consumer reports
  partial batch failures, no IAM statement grants a wildcard action, TerminateInstances and launches are bound to
  the deployment's ghr:environment tag, launches must carry ghr:tenant_id and ghr:tenant_tier, the runner role has
  no permission, and `terraform destroy` terminates the runners;
- ghr's image per tier architecture: every configured image reaches ghr (provider.ec2.ami_ids) and IAM's
  RunInstances, and every tier's runner_architecture must have one.

Run by scripts/terraform-check.sh (which installs python-hcl2 where checkov's own `hcl2` package does not shadow it).
"""

import json
import re
import tomllib
import unittest
from pathlib import Path

import hcl2

REPO = Path(__file__).resolve().parents[3]
TF = REPO / "deploy" / "terraform"
MODULE = TF / "modules" / "multi-tenant-runner"
CONFIG_MODULE = MODULE / "modules" / "ghr-config"
EXAMPLE = TF / "examples" / "multi-tenant-runner"
TABLES_RS = REPO / "crates" / "ghr-store-dynamodb" / "src" / "tables.rs"
ENV_RS = REPO / "crates" / "ghr-lambda" / "src" / "env.rs"
CONFIG_RS = [REPO / "crates" / "ghr-config" / "src" / name for name in ("model.rs", "cluster.rs")] + [
    REPO / "crates" / "ghr-core" / "src" / "entitlement.rs"  # TierAccess
]
FIXTURES = TF / "tests" / "fixtures"

# The seed README's Inputs and Outputs tables (examples/multi-tenant-runner).
SEED_EXAMPLE_INPUTS = {"aws_region", "environment", "github_app"}
SEED_OUTPUTS = {
    "queues",
    "runner_binaries",
    "runner_tiers",
    "runners",
    "tenant_table",
    "webhook_endpoint",
    "webhook_secret",
}
# ghr's outputs beside the seed's in the example.
EXAMPLE_EXTRA_OUTPUTS = {"ghr_toml"}
# The module's knobs the seed's users set (reference §1.3, with ghr's additions named in the design).
MODULE_VARIABLES = {
    "prefix",
    "github_app",
    "aws_region",
    "runner_tiers",
    "default_tenant_tier",
    "lambda_zip",
    "lambda_architecture",
    "lambda_timeout",
    "subnet_ids",
    "vpc_id",
    "ami_id",
    "max_receive_count",
    "schedule_expression",
    "onboarding",
    "global_max_runners",
    "tags",
}
# The seed's tier table (Runner Tiers).
SEED_TIERS = {
    "small": (["t3.medium"], 2, ["self-hosted", "linux", "x64", "small"]),
    "medium": (["t3.large", "m5.large"], 5, ["self-hosted", "linux", "x64", "medium"]),
    "large": (["t3.xlarge", "m5.xlarge"], 10, ["self-hosted", "linux", "x64", "large"]),
}
# Actions with no resource-level permissions: the only ones allowed on "*".
UNSCOPED_ACTIONS = {"ec2:DescribeInstances", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
RUNNER_TAGS = ("ghr:environment", "ghr:tenant_id", "ghr:tenant_tier")


# ---- HCL loading ------------------------------------------------------------------------------------------------


def _check_parser():
    probe = hcl2.loads('a = "x"\n')
    if probe.get("a") != '"x"':
        raise RuntimeError(
            "this test needs python-hcl2 8.x, but `hcl2` is another package (checkov's bc-python-hcl2?): "
            "run scripts/terraform-check.sh, which puts python-hcl2 first on PYTHONPATH"
        )


def _unquote(text):
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return json.loads(text)
        except ValueError:
            return text[1:-1]
    return text


def _norm(value):
    """python-hcl2 8 keeps string quotes and block markers: strip them."""
    if isinstance(value, dict):
        return {
            _unquote(k): _norm(v) for k, v in value.items() if not (k.startswith("__") and k.endswith("__"))
        }
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, str):
        return _unquote(value)
    return value


class Tf:
    """The top-level blocks of one directory's .tf files."""

    def __init__(self, directory):
        self.directory = directory
        self.resources, self.data, self.variables, self.outputs, self.locals, self.modules = {}, {}, {}, {}, {}, {}
        self.files = sorted(directory.glob("*.tf"))
        if not self.files:
            raise AssertionError(f"no .tf file in {directory}")
        for path in self.files:
            with path.open() as handle:
                doc = _norm(hcl2.load(handle))
            for kind, target in (("resource", self.resources), ("data", self.data)):
                for block in doc.get(kind, []):
                    for rtype, named in block.items():
                        for name, body in named.items():
                            target[(rtype, name)] = body
            for kind, target in (("variable", self.variables), ("output", self.outputs), ("module", self.modules)):
                for block in doc.get(kind, []):
                    target.update(block)
            for block in doc.get("locals", []):
                self.locals.update(block)

    def of_type(self, rtype):
        return {name: body for (t, name), body in self.resources.items() if t == rtype}

    def resolve(self, value):
        """A bare `${local.x}` becomes the local's value (recursively)."""
        while isinstance(value, str):
            match = re.fullmatch(r"\$\{local\.(\w+)\}", value)
            if not match:
                break
            value = self.locals[match.group(1)]
        return value


def blocks(body, name):
    found = body.get(name, [])
    return found if isinstance(found, list) else [found]


def statements(document):
    """A policy document's statements, with those of `dynamic "statement"` blocks."""
    found = list(blocks(document, "statement"))
    for dynamic in blocks(document, "dynamic"):
        for content in blocks(dynamic.get("statement", {}), "content"):
            found.append(content)
    return found


def as_list(value):
    return value if isinstance(value, list) else [value]


def text(value):
    return value if isinstance(value, str) else json.dumps(value)


_check_parser()
MOD = Tf(MODULE)
EX = Tf(EXAMPLE)
CFG = Tf(CONFIG_MODULE)


# ---- Rust sources -------------------------------------------------------------------------------------------------


def rust_tables():
    """Table suffix → spec, from tables.rs: hash key, indexes (keys, projection) and TTL."""
    source = TABLES_RS.read_text()
    consts = {}
    for module, body in re.findall(r"pub mod (\w+) \{\n(.*?)\n\}", source, re.S):
        for name, value in re.findall(r'pub const (\w+): &str = "([^"]*)";', body):
            consts[f"{module}::{name}"] = value
    projection_body = re.search(r"OPEN_INDEX_PROJECTION: &\[&str\] = &\[(.*?)\];", source, re.S)
    ttl_attribute = re.search(r'pub const TTL_ATTRIBUTE: &str = "([^"]*)";', source)
    fields = dict(re.findall(r'(\w+): format!\("\{prefix\}-(\w+)"\)', source))
    specs_body = re.search(r"fn specs\(&self\) -> Vec<TableSpec> \{(.*?)\n    \}\n", source, re.S)
    if not (projection_body and ttl_attribute and fields and specs_body):
        raise AssertionError("tables.rs changed shape: update rust_tables() in this test")
    projections = {"job::OPEN_INDEX_PROJECTION": re.findall(r'"([^"]+)"', projection_body.group(1))}

    def key(ref, kind):
        return (consts[ref], kind)

    tables = {}
    for chunk in specs_body.group(1).split("TableSpec {")[1:]:
        field = re.search(r"name: self\.(\w+)\.clone\(\)", chunk).group(1)
        hash_key = re.search(r"hash: \((\w+::\w+), ([NS])\)", chunk)
        indexes = {}
        for name, h, hk, rng, r, rk in re.findall(
            r"IndexSpec::all\(\s*(\w+::\w+),\s*\((\w+::\w+), ([NS])\),\s*(None|Some\(\((\w+::\w+), ([NS])\)\))\s*,?\s*\)",
            chunk,
        ):
            indexes[consts[name]] = (key(h, hk), key(r, rk) if rng != "None" else None, None)
        for name, h, hk, rng, r, rk, inc, inc_ref in re.findall(
            r"IndexSpec \{\s*name: (\w+::\w+),\s*hash: \((\w+::\w+), ([NS])\),\s*"
            r"range: (None|Some\(\((\w+::\w+), ([NS])\)\)),\s*include: (None|Some\((\w+::\w+)\)),\s*\}",
            chunk,
        ):
            include = projections[inc_ref] if inc != "None" else None
            indexes[consts[name]] = (key(h, hk), key(r, rk) if rng != "None" else None, include)
        ttl = re.search(r"ttl: (true|false)", chunk).group(1) == "true"
        tables[fields[field]] = {
            "hash": key(hash_key.group(1), hash_key.group(2)),
            "indexes": indexes,
            "ttl": ttl,
            "index_count": chunk.count("IndexSpec"),
        }
    if len(tables) != len(fields):
        raise AssertionError(f"parsed {sorted(tables)} from tables.rs, expected {sorted(fields.values())}")
    return tables, ttl_attribute.group(1)


def rust_env():
    """The environment variable names of env.rs, and the function names."""
    source = ENV_RS.read_text()
    names = dict(re.findall(r'pub const (ENV_\w+): &str = "(GHR_[A-Z_]+)";', source))
    functions = set(re.findall(r'Function::\w+ => "([a-z-]+)"', source))
    if not names or len(functions) != 4:
        raise AssertionError("env.rs changed shape: update rust_env() in this test")
    return names, functions


def rust_config_model():
    """ghr-config's serde model: struct name → {field: type}, enum name → accepted (snake_case) values."""
    structs, enums = {}, {}
    for path in CONFIG_RS:
        source = path.read_text()
        for name, body in re.findall(r"pub struct (\w+) \{\n(.*?)\n\}", source, re.S):
            structs[name] = dict(re.findall(r"(?m)^\s*pub (\w+): ([^\n]+?),\s*$", body))
        for name, body in re.findall(r"pub enum (\w+) \{\n(.*?)\n\}", source, re.S):
            variants = re.findall(r"(?m)^\s*([A-Z]\w*),\s*$", body)
            enums[name] = {re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", v).lower() for v in variants}
    if "RawConfig" not in structs or "TierSection" not in structs:
        raise AssertionError("ghr-config's model changed shape: update rust_config_model() in this test")
    return structs, enums


# ---- tests ----------------------------------------------------------------------------------------------------------


class SeedInterface(unittest.TestCase):
    def test_module_has_the_seeds_variables(self):
        missing = MODULE_VARIABLES - set(MOD.variables)
        self.assertFalse(missing, f"module variables missing: {sorted(missing)}")
        for name, body in MOD.variables.items():
            self.assertTrue(body.get("description"), f"variable {name} has no description")

    def test_variable_shapes_and_defaults(self):
        github_app = MOD.variables["github_app"]["type"]
        for field in ("id", "key_base64"):
            self.assertIn(field, github_app, "github_app is {id, key_base64}")
        tiers_type = MOD.variables["runner_tiers"]["type"]
        for field in ("runner_os", "runner_architecture", "instance_types", "max_runners", "labels", "price_per_hour"):
            self.assertIn(field, tiers_type, f"runner_tiers objects carry {field}")
        self.assertIn("optional(number)", tiers_type.split("price_per_hour")[1][:40], "price_per_hour is optional")
        self.assertEqual(MOD.variables["lambda_timeout"]["default"], 60)
        self.assertEqual(MOD.variables["max_receive_count"]["default"], 5)
        self.assertEqual(MOD.variables["schedule_expression"]["default"], "rate(1 minute)")
        self.assertIn("x64", MOD.variables["ami_id"]["type"])
        self.assertIn("arm64", MOD.variables["ami_id"]["type"])

    def test_default_tier_is_validated_against_the_tier_map(self):
        conditions = [v["condition"] for v in blocks(MOD.variables["default_tenant_tier"], "validation")]
        self.assertTrue(
            any(re.search(r"contains\(keys\(var\.runner_tiers\),\s*var\.default_tenant_tier\)", c) for c in conditions),
            "default_tenant_tier must be validated as a key of runner_tiers (no list of tier names)",
        )

    def test_default_tiers_are_the_seeds(self):
        self.assert_seed_tiers(MOD.variables["runner_tiers"]["default"], "module default")
        self.assert_seed_tiers(EX.resolve(EX.modules["runners"]["runner_tiers"]), "example")

    def assert_seed_tiers(self, tiers, where):
        self.assertEqual(set(tiers), set(SEED_TIERS), f"{where}: the seed's tiers")
        for name, (types, max_runners, labels) in SEED_TIERS.items():
            tier = tiers[name]
            self.assertEqual(
                (tier["instance_types"], tier["max_runners"], tier["labels"]), (types, max_runners, labels), name
            )
            self.assertEqual((tier["runner_os"], tier["runner_architecture"]), ("linux", "x64"), name)

    def test_example_inputs_and_outputs_are_the_seeds(self):
        self.assertEqual(set(EX.variables), SEED_EXAMPLE_INPUTS)
        self.assertEqual(EX.variables["aws_region"].get("default"), "us-east-1")
        self.assertIsNone(EX.variables["environment"].get("default", "missing"))
        self.assertEqual(set(EX.outputs), SEED_OUTPUTS | EXAMPLE_EXTRA_OUTPUTS)
        for name in SEED_OUTPUTS | EXAMPLE_EXTRA_OUTPUTS:
            self.assertEqual(EX.outputs[name]["value"], "${module.runners.%s}" % name, f"output {name} passes through")
        self.assertTrue(EX.outputs["webhook_secret"].get("sensitive"), "webhook_secret is sensitive")

    def test_module_outputs(self):
        missing = SEED_OUTPUTS - set(MOD.outputs)
        self.assertFalse(missing, f"module outputs missing: {sorted(missing)}")
        self.assertTrue(MOD.outputs["webhook_secret"].get("sensitive"))
        self.assertTrue(MOD.outputs["webhook_endpoint"]["value"].endswith("/webhook"))

    def test_example_tfvars_sample(self):
        sample = (EXAMPLE / "terraform.tfvars.example").read_text()
        for name in SEED_EXAMPLE_INPUTS:
            self.assertRegex(sample, rf"(?m)^{name}\s*=", f"terraform.tfvars.example sets {name}")

    def test_every_tf_file_says_what_it_is(self):
        for directory in (MODULE, CONFIG_MODULE, EXAMPLE):
            for path in directory.glob("*.tf"):
                self.assertTrue(path.read_text().startswith("#"), f"{path.name} starts with a comment line")


class Tables(unittest.TestCase):
    def test_tables_match_tables_rs(self):
        specs, ttl_attribute = rust_tables()
        tables = MOD.of_type("aws_dynamodb_table")
        by_suffix = {}
        for name, body in tables.items():
            match = re.fullmatch(r"\$\{var\.prefix\}-(\w+)", body["name"])
            self.assertTrue(match, f"table {name} is named <prefix>-<table>")
            by_suffix[match.group(1)] = (name, body)
        self.assertEqual(set(by_suffix), set(specs), "the five tables of tables.rs, no other")
        for suffix, spec in specs.items():
            name, body = by_suffix[suffix]
            with self.subTest(table=suffix):
                self.assertEqual(len(spec["indexes"]), spec["index_count"], "every IndexSpec of tables.rs parsed")
                self.assertEqual(body["billing_mode"], "PAY_PER_REQUEST")
                self.assertEqual(body["hash_key"], spec["hash"][0])
                self.assertNotIn("range_key", body, "tables.rs keys every table on a hash key alone")
                expected_attributes = {spec["hash"]}
                for hash_key, range_key, _ in spec["indexes"].values():
                    expected_attributes.add(hash_key)
                    if range_key:
                        expected_attributes.add(range_key)
                attributes = {(a["name"], a["type"]) for a in blocks(body, "attribute")}
                self.assertEqual(attributes, expected_attributes, "attribute definitions (keys only)")
                gsis = {g["name"]: g for g in blocks(body, "global_secondary_index")}
                self.assertEqual(set(gsis), set(spec["indexes"]))
                for index, (hash_key, range_key, include) in spec["indexes"].items():
                    gsi = gsis[index]
                    self.assertEqual(gsi["hash_key"], hash_key[0], index)
                    self.assertEqual(gsi.get("range_key"), range_key[0] if range_key else None, index)
                    if include is None:
                        self.assertEqual(gsi["projection_type"], "ALL", index)
                    else:
                        self.assertEqual(gsi["projection_type"], "INCLUDE", index)
                        self.assertEqual(MOD.resolve(gsi["non_key_attributes"]), include, f"{index} projection")
                ttl = blocks(body, "ttl")
                if spec["ttl"]:
                    self.assertEqual(len(ttl), 1, "TTL on")
                    self.assertIs(ttl[0]["enabled"], True)
                    self.assertEqual(MOD.resolve(ttl[0]["attribute_name"]), ttl_attribute)
                else:
                    self.assertFalse([t for t in ttl if t.get("enabled")], "no TTL on this table")
                self.assertIs(blocks(body, "point_in_time_recovery")[0]["enabled"], True, "PITR")
                self.assertIs(blocks(body, "server_side_encryption")[0]["enabled"], True, "SSE")


class Queues(unittest.TestCase):
    def test_every_work_queue_has_a_dlq_redrive_and_alarm(self):
        queues = MOD.of_type("aws_sqs_queue")
        dlqs = {name for name, body in queues.items() if body["name"].endswith("-dlq")}
        work = set(queues) - dlqs
        self.assertTrue(work and dlqs)
        for name in work:
            body = queues[name]
            with self.subTest(queue=name):
                policy = body.get("redrive_policy", "")
                target = re.search(r"deadLetterTargetArn\s*=\s*aws_sqs_queue\.(\w+)\[each\.key\]\.arn", policy)
                self.assertTrue(target, "redrive_policy names the queue's own DLQ")
                self.assertIn(target.group(1), dlqs)
                self.assertEqual(queues[target.group(1)]["for_each"], body["for_each"], "one DLQ per queue")
                self.assertEqual(queues[target.group(1)]["name"], "${each.value}-dlq")
                self.assertRegex(policy, r"maxReceiveCount\s*=\s*var\.max_receive_count")
                self.assertEqual(
                    MOD.resolve(body["visibility_timeout_seconds"]), "${var.lambda_timeout + 30}", "timeout + 30 s"
                )
        for name, body in queues.items():
            self.assertIs(body.get("sqs_managed_sse_enabled"), True, f"{name}: SSE")
        alarms = MOD.of_type("aws_cloudwatch_metric_alarm")
        for dlq in dlqs:
            matching = [
                a
                for a in alarms.values()
                if a.get("for_each") == queues[dlq]["for_each"]
                and a["metric_name"] == "ApproximateNumberOfMessagesVisible"
                and f"aws_sqs_queue.{dlq}[each.key].name" in text(a["dimensions"])
            ]
            self.assertTrue(matching, f"an alarm on every {dlq} queue")
            alarm = matching[0]
            self.assertEqual((alarm["comparison_operator"], alarm["threshold"]), ("GreaterThanThreshold", 0))

    def test_queue_names(self):
        names = text(MOD.locals["queue_names"])
        for pattern in ("${var.prefix}-${tier}-builds", "${var.prefix}-teardown", "${var.prefix}-tenant-events"):
            self.assertIn(pattern, names)

    def test_consumers_report_partial_batch_failures(self):
        mappings = MOD.of_type("aws_lambda_event_source_mapping")
        self.assertEqual(len(mappings), 3, "tenant-events, teardown and one per tier")
        for name, body in mappings.items():
            self.assertEqual(body["function_response_types"], ["ReportBatchItemFailures"], name)
            self.assertEqual(MOD.resolve(body["batch_size"]), 10, name)


class Functions(unittest.TestCase):
    def env_keys(self, expression):
        found, pending, seen = set(), [text(expression)], set()
        while pending:
            current = pending.pop()
            found.update(re.findall(r"\b(GHR_[A-Z_]+)\s*=", current))
            for local in re.findall(r"local\.(env_\w+)", current):
                if local not in seen:
                    seen.add(local)
                    value = MOD.locals[local]
                    if isinstance(value, dict):
                        found.update(value)
                    pending.append(text(value))
        return found

    def function_of(self, expression):
        expanded = text(expression)
        for local in re.findall(r"local\.(env_\w+)", expanded):
            expanded += text(MOD.locals[local])
        roles = set(re.findall(r'GHR_FUNCTION\s*=\s*"([a-z-]+)"', expanded))
        self.assertEqual(len(roles), 1, f"one GHR_FUNCTION in {expression}")
        return roles.pop()

    def test_every_function_gets_the_contracts_environment(self):
        names, functions = rust_env()
        every = set(names.values())
        only = {
            "GHR_TIER": {"scale-up"},
            "GHR_APP_KEY_PARAMETER": {"tenant-manager", "scale-up", "scale-down"},
            "GHR_WEBHOOK_SECRET_PARAMETER": {"webhook"},
        }
        seen = set()
        for name, body in MOD.of_type("aws_lambda_function").items():
            with self.subTest(function=name):
                variables = blocks(body, "environment")[0]["variables"]
                role = self.function_of(variables)
                seen.add(role)
                keys = self.env_keys(variables)
                expected = {v for v in every if role in only.get(v, functions)}
                self.assertEqual(keys, expected, f"{role}: the variables of env.rs it needs, and no secret it does not")
                self.assertEqual(MOD.resolve(body["runtime"]), "provided.al2023")
                self.assertEqual(MOD.resolve(body["handler"]), "bootstrap")
                self.assertEqual(body["timeout"], "${var.lambda_timeout}")
                self.assertEqual(body["filename"], "${var.lambda_zip}")
                self.assertIn("terraform_data.runner_cleanup", text(body.get("depends_on")), "destroyed before cleanup")
                if role == "scale-up":
                    self.assertEqual(body["for_each"], "${local.scale_up_names}")
        self.assertEqual(seen, functions, "one Lambda per role of env.rs")

    def test_function_names_are_the_seeds(self):
        names = MOD.locals["function_names"]
        self.assertEqual(names["webhook"], "${var.prefix}-webhook")
        self.assertEqual(names["tenant-manager"], "${var.prefix}-tenant-manager")
        self.assertEqual(names["scale-down"], "${var.prefix}-scale-down")
        self.assertIn("${var.prefix}-${tier}-scale-up", text(MOD.locals["scale_up_names"]))
        groups = MOD.of_type("aws_cloudwatch_log_group")
        self.assertTrue(any(g["name"] == "/aws/lambda/${each.value}" for g in groups.values()), "log groups")

    def test_config_renders_from_the_variables(self):
        self.assertEqual(MOD.locals["env_common"]["GHR_CONFIG_JSON"], "${module.ghr_config.json}")
        ghr_config = MOD.modules["ghr_config"]
        for name in ("runner_tiers", "default_tenant_tier", "onboarding", "global_max_runners"):
            self.assertEqual(ghr_config[name], "${var.%s}" % name, f"{name} flows into GHR_CONFIG_JSON")
        rendered = text(CFG.locals["config"])
        self.assertIn("dynamodb://${var.environment}?region=${var.aws_region}", rendered)
        self.assertIn("local.tiers", rendered)

    def test_webhook_api_and_schedule(self):
        (api,) = MOD.of_type("aws_apigatewayv2_api").values()
        self.assertEqual(api["name"], "${var.prefix}-github-action-webhook")
        (route,) = MOD.of_type("aws_apigatewayv2_route").values()
        self.assertEqual(route["route_key"], "POST /webhook")
        (integration,) = MOD.of_type("aws_apigatewayv2_integration").values()
        self.assertEqual(integration["payload_format_version"], "2.0")
        (rule,) = MOD.of_type("aws_cloudwatch_event_rule").values()
        self.assertEqual(rule["schedule_expression"], "${var.schedule_expression}")
        (target,) = MOD.of_type("aws_cloudwatch_event_target").values()
        self.assertEqual(target["arn"], "${aws_lambda_function.scale_down.arn}")


class Iam(unittest.TestCase):
    documents = {name: body for (t, name), body in MOD.data.items() if t == "aws_iam_policy_document"}

    def all_statements(self):
        for name, document in self.documents.items():
            for statement in statements(document):
                yield name, statement

    def test_no_statement_grants_a_wildcard_action(self):
        for name, statement in self.all_statements():
            self.assertNotIn("not_actions", statement, name)
            for action in as_list(statement.get("actions", [])):
                self.assertNotIn("*", action, f"{name}: {action}")
            if statement.get("effect", "Allow") == "Allow" and "*" in as_list(statement.get("resources", [])):
                self.assertTrue(
                    set(as_list(statement["actions"])) <= UNSCOPED_ACTIONS,
                    f"{name}: only actions without resource-level permissions on '*', not {statement['actions']}",
                )

    def test_every_role_policy_comes_from_a_checked_document(self):
        for name, body in MOD.of_type("aws_iam_role_policy").items():
            self.assertRegex(body["policy"], r"^\$\{data\.aws_iam_policy_document\.\w+(\[each\.key\])?\.json\}$", name)
        self.assertFalse(MOD.of_type("aws_iam_policy"), "no free-standing policy")
        self.assertFalse(MOD.of_type("aws_iam_role_policy_attachment"), "no managed policy attached to any role")

    def conditions(self, statement):
        return {(c["test"], c["variable"]): c["values"] for c in blocks(statement, "condition")}

    def test_terminate_is_bound_to_the_deployment(self):
        found = 0
        for name, statement in self.all_statements():
            if "ec2:TerminateInstances" in as_list(statement.get("actions", [])):
                found += 1
                self.assertEqual(
                    self.conditions(statement).get(("StringEquals", "aws:ResourceTag/ghr:environment")),
                    ["${var.prefix}"],
                    f"{name}: TerminateInstances only on instances tagged ghr:environment=<prefix>",
                )
        self.assertTrue(found)

    def test_launches_must_carry_the_runner_tags(self):
        # Terraform does not tag runners (the functions do, per runner): IAM refuses a launch without the tags.
        found = 0
        for name, statement in self.all_statements():
            actions = as_list(statement.get("actions", []))
            resources = text(MOD.resolve(statement.get("resources")))
            if "ec2:RunInstances" in actions and ":instance/*" in resources:
                found += 1
                conditions = self.conditions(statement)
                self.assertEqual(conditions.get(("StringEquals", "aws:RequestTag/ghr:environment")), ["${var.prefix}"])
                for tag in RUNNER_TAGS[1:]:
                    self.assertEqual(conditions.get(("Null", f"aws:RequestTag/{tag}")), ["false"], f"{name}: {tag}")
            if "ec2:RunInstances" in actions:
                self.assertEqual(actions, ["ec2:RunInstances"], name)
            if "ec2:CreateTags" in actions:
                self.assertEqual(
                    self.conditions(statement).get(("StringEquals", "ec2:CreateAction")), ["RunInstances"], name
                )
            if "iam:PassRole" in actions:
                self.assertEqual(statement["resources"], ["${aws_iam_role.runner.arn}"], name)
        self.assertTrue(found)
        self.assertNotIn("tag_specifications", MOD.of_type("aws_launch_template")["runner"], "tags come per runner")

    def test_webhook_has_no_app_key_and_no_ec2(self):
        webhook = text(self.documents["webhook"])
        for forbidden in ("ec2:", "iam:PassRole", "aws_ssm_parameter.app_key"):
            self.assertNotIn(forbidden, webhook)
        ssm = [s for _, s in [("webhook", s) for s in statements(self.documents["webhook"])] if "ssm:" in text(s)]
        self.assertEqual([s["resources"] for s in ssm], [["${aws_ssm_parameter.webhook_secret.arn}"]])
        control = text(self.documents["control"])
        self.assertNotIn("aws_ssm_parameter.webhook_secret", control)

    def test_runner_role_has_no_permission(self):
        roles = text(MOD.of_type("aws_iam_role_policy"))
        self.assertNotIn("aws_iam_role.runner", roles)
        self.assertNotIn("inline_policy", MOD.of_type("aws_iam_role")["runner"])
        for name, statement in self.all_statements():
            for action in as_list(statement.get("actions", [])):
                self.assertFalse(action.startswith("ec2:DescribeTags"), f"{name}: no ec2:DescribeTags")

    def test_launch_template_is_imdsv2_only(self):
        template = MOD.of_type("aws_launch_template")["runner"]
        metadata = blocks(template, "metadata_options")[0]
        self.assertEqual(metadata["http_tokens"], "required")
        self.assertEqual(metadata["http_put_response_hop_limit"], 1)
        self.assertEqual(template["instance_initiated_shutdown_behavior"], "terminate")
        self.assertEqual(MOD.locals["tags"], '${merge(var.tags, {"ghr:environment" = var.prefix})}')


class RenderedConfig(unittest.TestCase):
    """The GHR_CONFIG_JSON and ghr.toml Terraform renders (fixtures kept equal to it by scripts/terraform-check.sh) are
    accepted by ghr-config's model: every key is a field (it denies unknown fields), every enum value a variant."""

    structs, enums = rust_config_model()

    def check(self, value, rust_type, where):
        rust_type = rust_type.strip().removeprefix("crate::")
        if value is None:
            return  # ghr drops nulls: the key's default
        option = re.fullmatch(r"Option<(.+)>", rust_type)
        if option:
            return self.check(value, option.group(1), where)
        btree = re.fullmatch(r"(?:std::collections::)?BTreeMap<String, (.+)>", rust_type)
        if btree:
            self.assertIsInstance(value, dict, where)
            for key, item in value.items():
                self.assertIsInstance(key, str, where)
                self.check(item, btree.group(1), f"{where}.{key}")
            return
        vec = re.fullmatch(r"Vec<(.+)>", rust_type)
        if vec:
            self.assertIsInstance(value, list, where)
            for i, item in enumerate(value):
                self.check(item, vec.group(1), f"{where}[{i}]")
            return
        if rust_type in self.structs:
            self.assertIsInstance(value, dict, where)
            fields = self.structs[rust_type]
            for key, item in value.items():
                self.assertIn(key, fields, f"{where}.{key} is not a key of {rust_type}")
                self.check(item, fields[key], f"{where}.{key}")
        elif rust_type in self.enums:
            self.assertIn(value, self.enums[rust_type], f"{where}: {value!r} is not a {rust_type}")
        elif rust_type in ("u64", "u32", "usize", "i32", "i64"):
            self.assertIsInstance(value, int, where)
        elif rust_type == "f64":
            self.assertIsInstance(value, (int, float), where)
        elif rust_type == "bool":
            self.assertIsInstance(value, bool, where)
        elif rust_type in ("String", "PathBuf", "SecretString"):
            self.assertIsInstance(value, str, where)
        else:
            self.fail(f"{where}: unknown type {rust_type} in ghr-config's model (update this test)")

    def test_rendered_config_fits_ghr_configs_model(self):
        rendered = json.loads((FIXTURES / "ghr-config.seed.json").read_text())
        self.check(rendered, "RawConfig", "GHR_CONFIG_JSON")
        self.assertEqual([t["name"] for t in rendered["tiers"]], ["small", "medium", "large"], "plan order")
        self.assertGreater(rendered["reconciler"]["orphan_grace_seconds"], 60, "grace outlasts the timeout")
        self.assertLess(len(json.dumps(rendered)), 3000, "room beside the other variables in Lambda's 4 KB")
        ec2 = rendered["provider"]["ec2"]
        self.assertEqual(ec2["ami_ids"], {"x64": "ami-0123456789abcdef0"}, "the image of each configured architecture")
        self.assertNotIn("ami_id", ec2, "no single AMI: ghr picks each tier's by its runner_architecture")
        for tier in rendered["tiers"]:
            self.assertIn(tier["runner_architecture"], ec2["ami_ids"], f"tier {tier['name']} has its image")

    def test_rendered_toml_fits_the_model_and_matches(self):
        toml = tomllib.loads((FIXTURES / "ghr.seed.toml").read_text())
        self.check(toml, "RawConfig", "ghr.toml")
        rendered = json.loads((FIXTURES / "ghr-config.seed.json").read_text())
        drop_nulls = lambda tier: {k: v for k, v in tier.items() if v is not None}  # noqa: E731
        self.assertEqual(toml["tiers"], [drop_nulls(t) for t in rendered["tiers"]], "same tiers as GHR_CONFIG_JSON")
        self.assertEqual(toml["store"], rendered["store"])
        ec2 = {k: v for k, v in rendered["provider"]["ec2"].items() if v is not None}
        self.assertEqual(toml["provider"], {"kind": "ec2", "ec2": ec2}, "same EC2 provider and images as GHR_CONFIG_JSON")
        text_toml = (FIXTURES / "ghr.seed.toml").read_text()
        self.assertIn('\nami_ids = { x64 = "ami-0123456789abcdef0" }\n', text_toml, "images as an inline table")


class Images(unittest.TestCase):
    """Every configured architecture's image reaches ghr (provider.ec2.ami_ids), and every tier has one."""

    def test_module_passes_every_configured_image(self):
        self.assertEqual(MOD.modules["ghr_config"]["ami_ids"], "${local.runner_ami_ids}")
        ami_ids = MOD.locals["runner_ami_ids"]
        self.assertIn("for arch, ami in var.ami_id", ami_ids, "built from every entry of var.ami_id")
        self.assertIn("if", ami_ids, "null entries are left out")
        self.assertEqual(CFG.locals["config"]["provider"]["ec2"]["ami_ids"], "${var.ami_ids}")
        self.assertNotIn("ami_id", CFG.locals["config"]["provider"]["ec2"], "no single-AMI choice")
        self.assertIn("ami_ids", CFG.locals["toml_lines"], "ghr.toml carries the images too")
        everything = "".join(path.read_text() for path in MOD.files)
        for gone in ("runner_ami_id ", "runner_ami_id\n", "runner_architectures", "one_architecture_for_every_tier"):
            self.assertNotIn(gone, everything, "the single-AMI choice and its mixed-architecture warning are gone")

    def test_every_tiers_architecture_needs_its_image(self):
        for tf, variable, key in ((MOD, "ami_id", "ami_id"), (CFG, "ami_ids", "ami_ids")):
            validations = blocks(tf.variables[variable], "validation")
            checked = [v for v in validations if "runner_architecture" in v["condition"]]
            self.assertTrue(checked, f"{variable} is validated against every tier's runner_architecture")
            message = checked[0]["error_message"]
            self.assertIn("tier", message, f"{variable}: the error names the tier")
            self.assertIn("set %s.${tier.runner_architecture}" % key, message, f"{variable}: and the key to set")

    def test_launches_may_use_every_configured_image(self):
        inputs = text(MOD.locals["launch_input_arns"])
        self.assertIn("for ami in values(local.runner_ami_ids)", inputs, "RunInstances on every configured image")
        self.assertIn("::image/${ami}", inputs)
        template = MOD.of_type("aws_launch_template")["runner"]
        self.assertEqual(template["image_id"], '${try(local.runner_ami_ids["x64"], local.runner_ami_ids["arm64"])}')
        runners = (MODULE / "runners.tf").read_text()
        self.assertIn("ghr overrides it on every launch", runners, "the template's image is only a default")

    def test_outputs_show_each_tiers_image(self):
        runners = text(MOD.outputs["runners"]["value"])
        self.assertIn("local.runner_ami_ids[var.runner_tiers[tier].runner_architecture]", runners)
        self.assertEqual(MOD.outputs["runner_binaries"]["value"]["ami_ids"], "${local.runner_ami_ids}")

    def test_example_finds_an_image_per_tier_architecture(self):
        runner_ami = EX.data[("aws_ami", "runner")]
        self.assertIn("local.runner_architectures", text(runner_ami["for_each"]), "only the architectures in use")
        self.assertEqual(set(EX.locals["runner_ami_names"]), {"x64", "arm64"})
        ami_id = EX.modules["runners"]["ami_id"]
        self.assertEqual(set(ami_id), {"x64", "arm64"})
        for arch, value in ami_id.items():
            self.assertIn('data.aws_ami.runner["%s"].id' % arch, value, f"example ami_id.{arch}")
        self.assertIn("runner_architecture", EX.locals["runner_architectures"])


class CleanUp(unittest.TestCase):
    def test_destroy_terminates_the_runners(self):
        (cleanup,) = MOD.of_type("terraform_data").values()
        (provisioner,) = blocks(cleanup, "provisioner")
        local_exec = provisioner["local-exec"]
        self.assertIn(local_exec["when"], ("destroy", "${destroy}"))
        self.assertIn("terminate-runners.sh", text(cleanup["input"]))
        script = (MODULE / "scripts" / "terminate-runners.sh").read_text()
        for needed in ("Name=tag:ghr:environment,Values=$GHR_PREFIX", "terminate-instances", "wait instance-terminated"):
            self.assertIn(needed, script)
        depends = text(cleanup.get("depends_on"))
        for resource in ("aws_security_group.runner", "aws_launch_template.runner", "aws_iam_instance_profile.runner"):
            self.assertIn(resource, depends, "runners go before what they use")


if __name__ == "__main__":
    unittest.main()
