"""Extract the aws provider's schema for the resource and data types deploy/terraform uses, for test_schema.py.

`terraform validate` needs the aws provider, which cannot be fetched offline. The npm package @cdktf/provider-aws
is generated from that provider's schema and carries it in its `.jsii` file (every resource's arguments, nested
blocks, required flags and attributes). This script reads it and writes the part this repository uses:

    npm pack @cdktf/provider-aws@21.22.1 && tar xzf cdktf-provider-aws-21.22.1.tgz package/.jsii
    python3 deploy/terraform/tests/extract_aws_schema.py package/.jsii > deploy/terraform/tests/aws-schema.json

Rerun it after using a new resource or data type (test_schema.py names what is missing).
"""

import json
import re
import sys
from pathlib import Path

TF = Path(__file__).resolve().parents[1]
DOC_LINK = re.compile(
    r"\{@link https://registry\.terraform\.io/providers/hashicorp/aws/([\d.]+)/docs/(resources|data-sources)/\w+ (aws_\w+)\}"
)
ARGUMENT_LINK = re.compile(r"\{@link https://registry\.terraform\.io/providers/hashicorp/aws/[\d.]+/docs/[\w-]+/\w+#(\w+) ")


def used_types():
    """(kind, type) of every aws resource and data block under deploy/terraform."""
    found = set()
    for path in TF.rglob("*.tf"):
        for kind, name in re.findall(r'(?m)^(resource|data) "(aws_\w+)"', path.read_text()):
            found.add(("resources" if kind == "resource" else "data-sources", name))
    return found


def snake(camel):
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", camel).lower()


def struct_of(type_ref):
    """The struct a property's type names (a nested block), or None for a plain attribute."""
    if "fqn" in type_ref:
        return type_ref["fqn"]
    if "union" in type_ref:
        for member in type_ref["union"]["types"]:
            found = struct_of(member)
            if found and found != "cdktf.IResolvable":
                return found
    if "collection" in type_ref and type_ref["collection"]["kind"] == "array":
        return struct_of(type_ref["collection"]["elementtype"])
    return None


def main(jsii_path):
    jsii = json.loads(Path(jsii_path).read_text())
    types = jsii["types"]
    classes, provider_version = {}, None
    for fqn, spec in types.items():
        match = DOC_LINK.search(spec.get("docs", {}).get("summary", "")) if spec.get("kind") == "class" else None
        if match:
            provider_version = match.group(1)
            classes[(match.group(2), match.group(3))] = fqn

    structs = {}

    def describe(struct_fqn):
        if struct_fqn in structs:
            return
        structs[struct_fqn] = None  # cycle guard
        arguments = {}
        for prop in types[struct_fqn].get("properties", []):
            link = ARGUMENT_LINK.search(prop.get("docs", {}).get("remarks", ""))
            name = link.group(1) if link else snake(prop["name"])
            nested = struct_of(prop["type"])
            if nested and nested.startswith("cdktf."):
                nested = None
            if nested:
                describe(nested)
            arguments[name] = {"required": not prop.get("optional", False), "block": nested}
        structs[struct_fqn] = arguments

    schema = {"source": f"@cdktf/provider-aws {jsii['version']}", "provider_version": provider_version, "types": {}}
    missing = []
    for kind, name in sorted(used_types()):
        fqn = classes.get((kind, name))
        if fqn is None:
            missing.append(name)
            continue
        config = f"{fqn}Config"
        describe(config)
        attributes = sorted(
            {snake(p["name"]) for p in types[fqn].get("properties", []) if not p["name"].endswith("Input")}
            - {"tf_resource_type"}
        )
        schema["types"][f"{kind}/{name}"] = {"config": config, "attributes": attributes}
    schema["structs"] = {fqn: args for fqn, args in sorted(structs.items())}
    if missing:
        sys.exit(f"not in {jsii_path}: {', '.join(missing)}")
    write(schema)


def write(schema):
    """JSON with one line per type and per struct (reviewable diffs, a small file)."""
    one_line = lambda value: json.dumps(value, sort_keys=True, separators=(",", ":"))  # noqa: E731
    out = sys.stdout
    out.write("{\n")
    out.write(f' "provider_version": {json.dumps(schema["provider_version"])},\n')
    out.write(f' "source": {json.dumps(schema["source"])},\n')
    for section in ("types", "structs"):
        entries = sorted(schema[section].items())
        out.write(f' "{section}": {{\n')
        for i, (key, value) in enumerate(entries):
            comma = "," if i + 1 < len(entries) else ""
            out.write(f"  {json.dumps(key)}: {one_line(value)}{comma}\n")
        out.write(" }" + ("," if section == "types" else "") + "\n")
    out.write("}\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} PATH/.jsii > deploy/terraform/tests/aws-schema.json")
    main(sys.argv[1])
