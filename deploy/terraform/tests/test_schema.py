"""What `terraform validate` would check, offline: argument names, nested blocks, required arguments, references.

The aws provider cannot be fetched here, so its schema comes from tests/aws-schema.json, extracted from the npm package
@cdktf/provider-aws (generated from the aws provider's schema; see extract_aws_schema.py). For the module, its
provider-free ghr-config submodule and the example, every aws resource and data block must use only arguments and
blocks of its type, set every required one, and reference only attributes that exist; every `var.`, `local.`,
`module.` and resource reference must name something declared; module calls must pass only declared variables and
every variable without a default.
"""

import json
import re
import unittest
from pathlib import Path

import hcl2

TF = Path(__file__).resolve().parents[1]
MODULE = TF / "modules" / "multi-tenant-runner"
CONFIG_MODULE = MODULE / "modules" / "ghr-config"
EXAMPLE = TF / "examples" / "multi-tenant-runner"
SCHEMA = json.loads((Path(__file__).resolve().parent / "aws-schema.json").read_text())

# Terraform's own arguments of every resource and data block.
META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}
# Types outside the aws provider: Terraform's built-in terraform_data and the random provider (not in the schema).
OTHER_TYPES = {
    "terraform_data": {"input", "triggers_replace"},
    "random_password": {"length", "special"},
    "random_id": {"byte_length"},
}
OTHER_ATTRIBUTES = {"terraform_data": {"id", "output", "input"}, "random_password": {"result"}, "random_id": {"hex"}}


def unquote(text):
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            return json.loads(text)
        except ValueError:
            return text[1:-1]
    return text


def norm(value):
    """Strip python-hcl2 8's quotes and position keys, keeping its block marker."""
    if isinstance(value, dict):
        return {
            unquote(k): norm(v)
            for k, v in value.items()
            if k == "__is_block__" or not (k.startswith("__") and k.endswith("__"))
        }
    if isinstance(value, list):
        return [norm(v) for v in value]
    if isinstance(value, str):
        return unquote(value)
    return value


def is_blocks(value):
    return isinstance(value, list) and value and all(isinstance(v, dict) and v.get("__is_block__") for v in value)


def strings(value):
    """Every string (expression or literal) in a parsed value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


class Directory:
    def __init__(self, path):
        self.path = path
        self.docs = []
        for file in sorted(path.glob("*.tf")):
            with file.open() as handle:
                self.docs.append((file.name, norm(hcl2.load(handle))))
        self.resources, self.data, self.variables, self.outputs, self.locals, self.modules = {}, {}, {}, {}, set(), {}
        for _, doc in self.docs:
            for block in doc.get("resource", []):
                for rtype, named in block.items():
                    if rtype == "__is_block__":
                        continue
                    for name, body in named.items():
                        if name != "__is_block__":
                            self.resources[(rtype, name)] = body
            for block in doc.get("data", []):
                for rtype, named in block.items():
                    if rtype == "__is_block__":
                        continue
                    for name, body in named.items():
                        if name != "__is_block__":
                            self.data[(rtype, name)] = body
            for kind, target in (("variable", self.variables), ("output", self.outputs), ("module", self.modules)):
                for block in doc.get(kind, []):
                    target.update({k: v for k, v in block.items() if k != "__is_block__"})
            for block in doc.get("locals", []):
                self.locals.update(k for k in block if k != "__is_block__")

    def all_strings(self):
        for _, doc in self.docs:
            yield from strings(doc)


DIRECTORIES = {path: Directory(path) for path in (MODULE, CONFIG_MODULE, EXAMPLE)}


class ProviderSchema(unittest.TestCase):
    def check_body(self, body, struct, where, top_level):
        arguments = SCHEMA["structs"][struct]
        dynamic_names = set()
        for dynamic in body.get("dynamic", []) if is_blocks(body.get("dynamic")) else []:
            for name, spec in dynamic.items():
                if name == "__is_block__":
                    continue
                dynamic_names.add(name)
                self.assertTrue(name in arguments, f"{where}: dynamic {name!r} is not a block of this type")
                self.assertTrue(arguments[name]["block"], f"{where}: {name!r} is an argument, not a block")
                for content in spec.get("content", []):
                    self.check_body(content, arguments[name]["block"], f"{where}.{name}", False)
        for key, value in body.items():
            if key in ("__is_block__", "dynamic") or (top_level and key in META_ARGUMENTS):
                continue
            self.assertTrue(key in arguments, f"{where}: {key!r} is not an argument of this type")
            nested = arguments[key]["block"]
            if is_blocks(value):
                self.assertTrue(nested, f"{where}: {key!r} is an argument, written as a block")
                for block in value:
                    self.check_body(block, nested, f"{where}.{key}", False)
            else:
                self.assertFalse(nested, f"{where}: {key!r} is a block, written as an argument")
        for name, spec in arguments.items():
            if spec["required"]:
                self.assertTrue(name in body or name in dynamic_names, f"{where}: required {name!r} is missing")

    def test_arguments_and_blocks_are_the_providers(self):
        for directory in DIRECTORIES.values():
            for kind, blocks in (("resources", directory.resources), ("data-sources", directory.data)):
                for (rtype, name), body in blocks.items():
                    where = f"{directory.path.name}: {rtype}.{name}"
                    with self.subTest(block=where):
                        if rtype in OTHER_TYPES:
                            extra = set(body) - OTHER_TYPES[rtype] - META_ARGUMENTS - {"__is_block__"}
                            self.assertFalse(extra, f"{where}: unexpected arguments {extra}")
                            continue
                        spec = SCHEMA["types"].get(f"{kind}/{rtype}")
                        self.assertIsNotNone(spec, f"{rtype} is not in aws-schema.json: rerun extract_aws_schema.py")
                        self.check_body(body, spec["config"], where, True)

    def test_references_name_what_exists(self):
        for directory in DIRECTORIES.values():
            text = "\n".join(directory.all_strings())
            where = directory.path.name
            for name in set(re.findall(r"\bvar\.(\w+)", text)):
                self.assertTrue(name in directory.variables, f"{where}: var.{name} is not declared")
            for name in set(re.findall(r"\blocal\.(\w+)", text)):
                self.assertTrue(name in directory.locals, f"{where}: local.{name} is not declared")
            for module, output in set(re.findall(r"\bmodule\.(\w+)\.(\w+)", text)):
                self.assertTrue(module in directory.modules, f"{where}: module.{module} is not declared")
                target = DIRECTORIES[(directory.path / directory.modules[module]["source"]).resolve()]
                self.assertTrue(output in target.outputs, f"{where}: module.{module} has no output {output}")
            for rtype, name, attribute in set(
                re.findall(r"(?<![\w.])((?:aws|random|terraform)_\w+)\.(\w+)(?:\[[^\]]*\])?\.(\w+)", text)
            ):
                self.assertTrue((rtype, name) in directory.resources, f"{where}: {rtype}.{name} is not declared")
                self.assert_attribute("resources", rtype, attribute, where)
            for rtype, name, attribute in set(re.findall(r"\bdata\.(aws_\w+)\.(\w+)(?:\[[^\]]*\])?\.(\w+)", text)):
                self.assertTrue((rtype, name) in directory.data, f"{where}: data.{rtype}.{name} is not declared")
                self.assert_attribute("data-sources", rtype, attribute, where)

    def assert_attribute(self, kind, rtype, attribute, where):
        if rtype in OTHER_ATTRIBUTES:
            known = OTHER_ATTRIBUTES[rtype]
        else:
            known = set(SCHEMA["types"][f"{kind}/{rtype}"]["attributes"])
        self.assertTrue(attribute in known, f"{where}: {rtype} has no attribute {attribute!r}")

    def test_module_calls_pass_declared_variables(self):
        for directory in DIRECTORIES.values():
            for name, call in directory.modules.items():
                target = DIRECTORIES[(directory.path / call["source"]).resolve()]
                passed = set(call) - {"source", "__is_block__", "depends_on", "providers", "count", "for_each"}
                self.assertFalse(passed - set(target.variables), f"module.{name}: undeclared inputs")
                required = {v for v, spec in target.variables.items() if "default" not in spec}
                self.assertFalse(required - passed, f"module.{name}: required inputs missing")


if __name__ == "__main__":
    unittest.main()
