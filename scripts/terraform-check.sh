#!/usr/bin/env bash
# Check the Terraform under deploy/terraform as far as a machine without the aws provider allows:
#
# 1. `terraform fmt -check -recursive` (no provider needed);
# 2. the provider-free module that renders GHR_CONFIG_JSON (deploy/terraform/modules/multi-tenant-runner/modules/
#    ghr-config): `terraform init -backend=false`, `validate` and `test` (plan-only runs, no cloud);
#    the module's own variables.tf (provider-free) with `terraform test` on its validations (tests/variables);
#    then GHR_CONFIG_JSON and ghr.toml rendered for the seed's settings, compared with deploy/terraform/tests/fixtures;
# 3. checkov's static policies (`--skip-download`: no network), with the justified skips below;
# 4. the structure test (deploy/terraform/tests/test_structure.py): the .tf files parsed with python-hcl2 against
#    the seed's inputs and outputs, the DynamoDB layout in crates/ghr-store-dynamodb/src/tables.rs, the functions'
#    environment contract in crates/ghr-lambda/src/env.rs, queues with DLQs, and IAM; the schema test
#    (deploy/terraform/tests/test_schema.py): what `terraform validate` would check — argument and block names,
#    required arguments, attribute and variable references — against the aws provider's schema as extracted from
#    the npm package @cdktf/provider-aws into deploy/terraform/tests/aws-schema.json; and the cleanup test
#    (deploy/terraform/tests/test_cleanup.py): the destroy-time runner cleanup script, run with the AWS CLI against
#    a moto server the test starts on a free port.
#
# What it cannot check (the aws provider cannot be fetched offline): `terraform validate` itself (types, and the
# provider's own validation of values), `terraform plan`/`apply`. See deploy/terraform/README.md.
#
# Environment:
#   GHR_MOTO_VENV   Python venv to use or create (default: .venv in the repository root, as scripts/moto.sh)
#   GHR_MOTO_SPEC   pip requirement of moto (default: moto[server]>=5,<6)
#   GHR_AWSCLI_SPEC pip requirement of the AWS CLI (default: awscli>=1.30,<2)
#   PYTHON          interpreter used to create the venv (default: python3)
#   GHR_TF_UPDATE_FIXTURES=1  rewrite deploy/terraform/tests/fixtures from what Terraform renders (review the diff)
#
# Exits non-zero on the first failing step.
set -euo pipefail

readonly CHECKOV_SPEC="checkov>=3.3,<4"
readonly HCL2_SPEC="python-hcl2==8.1.4"
# The same moto and AWS CLI as scripts/moto.sh.
moto_spec="${GHR_MOTO_SPEC:-moto[server]>=5,<6}"
awscli_spec="${GHR_AWSCLI_SPEC:-awscli>=1.30,<2}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${GHR_MOTO_VENV:-$repo_root/.venv}"
python="${PYTHON:-python3}"
tf_dir="deploy/terraform"
module_dir="$tf_dir/modules/multi-tenant-runner"
config_module="$module_dir/modules/ghr-config"
variables_tests="$tf_dir/tests/variables"
render_dir="$tf_dir/tests/render"
fixtures_dir="$tf_dir/tests/fixtures"
# checkov depends on bc-python-hcl2, which installs the same `hcl2` package name as python-hcl2 (in an older
# output format): python-hcl2 goes into its own directory of the venv, first on PYTHONPATH for the structure test.
hcl2_dir="$venv/python-hcl2"

say() { printf 'terraform-check: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}
# shellcheck source=scripts/lib/venv.sh
source "$repo_root/scripts/lib/venv.sh"

# The CLI configuration named by the environment may not exist here; terraform needs none.
export TF_CLI_CONFIG_FILE=/dev/null TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1

cd "$repo_root"
command -v terraform >/dev/null || die "terraform not found; install Terraform >= 1.9"

say "terraform fmt -check -recursive $tf_dir"
terraform fmt -check -recursive -diff "$tf_dir" || die "unformatted files above: run terraform fmt -recursive $tf_dir"

say "terraform validate + test of $config_module (provider-free)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
export TF_DATA_DIR="$scratch/tf-data"
terraform -chdir="$config_module" init -backend=false -input=false -no-color >"$scratch/init.log" 2>&1 ||
    die "terraform init of $config_module failed: $(cat "$scratch/init.log")"
rm -f "$config_module/.terraform.lock.hcl"
terraform -chdir="$config_module" validate -no-color
terraform -chdir="$config_module" test -no-color

# The module's own variables.tf needs no provider: its validations run offline beside tests/variables.
say "terraform test of $module_dir/variables.tf ($variables_tests)"
variables_root="$scratch/variables"
mkdir -p "$variables_root/tests"
cp "$module_dir/variables.tf" "$variables_root/"
cp "$variables_tests"/*.tftest.hcl "$variables_root/tests/"
export TF_DATA_DIR="$scratch/variables-data"
terraform -chdir="$variables_root" init -backend=false -input=false -no-color >"$scratch/init.log" 2>&1 ||
    die "terraform init of the module's variables failed: $(cat "$scratch/init.log")"
terraform -chdir="$variables_root" validate -no-color
terraform -chdir="$variables_root" test -no-color

# GHR_CONFIG_JSON and ghr.toml as the module renders them for the seed example's settings, against the fixtures the
# structure test checks against ghr-config's model (and the Rust side may parse). GHR_TF_UPDATE_FIXTURES=1
# rewrites the fixtures after a deliberate change (review the diff).
say "render GHR_CONFIG_JSON and ghr.toml ($render_dir) and compare with $fixtures_dir"
export TF_DATA_DIR="$scratch/render-data"
terraform -chdir="$render_dir" init -backend=false -input=false -no-color >"$scratch/init.log" 2>&1 ||
    die "terraform init of $render_dir failed: $(cat "$scratch/init.log")"
terraform -chdir="$render_dir" apply -auto-approve -input=false -no-color -state="$scratch/render.tfstate" >"$scratch/apply.log" 2>&1 ||
    die "rendering failed: $(cat "$scratch/apply.log")"
terraform -chdir="$render_dir" output -no-color -state="$scratch/render.tfstate" -raw ghr_config_json >"$scratch/ghr-config.json"
echo >>"$scratch/ghr-config.json"
terraform -chdir="$render_dir" output -no-color -state="$scratch/render.tfstate" -raw ghr_toml >"$scratch/ghr.toml"
unset TF_DATA_DIR
for pair in "ghr-config.json:ghr-config.seed.json" "ghr.toml:ghr.seed.toml"; do
    rendered="$scratch/${pair%%:*}"
    fixture="$fixtures_dir/${pair##*:}"
    if [[ "${GHR_TF_UPDATE_FIXTURES:-0}" == "1" ]]; then
        cp "$rendered" "$fixture"
    else
        diff -u "$fixture" "$rendered" ||
            die "$fixture differs from what Terraform renders (above); after checking, rerun with GHR_TF_UPDATE_FIXTURES=1"
    fi
done

venv_install "$venv/bin/checkov" "$CHECKOV_SPEC"
venv_install "$venv/bin/moto_server" "$moto_spec"
venv_install "$venv/bin/aws" "$awscli_spec"
# With its own dependencies (lark, regex): the directory is complete on its own.
venv_install "$hcl2_dir/hcl2/__init__.py" "$HCL2_SPEC" --target "$hcl2_dir"

# Skipped checkov checks, each for a reason that holds for this design:
skips=(
    # Customer-managed KMS keys: every store is encrypted with AWS-managed keys (DynamoDB SSE, SQS SSE, SSM
    # SecureString with aws/ssm, CloudWatch Logs' default encryption). A CMK is an account-wide decision (cost,
    # key policy, who may decrypt) that the module leaves out, as the seed did.
    CKV_AWS_119 # DynamoDB tables encrypted with a CMK
    CKV_AWS_337 # SSM parameters encrypted with a CMK
    CKV_AWS_158 # CloudWatch log groups encrypted with a CMK
    CKV_AWS_173 # Lambda environment encrypted with a CMK: it holds no secret (the secrets are SSM parameter names)
    # Lambda settings that do not fit these functions:
    CKV_AWS_117 # Lambda in a VPC: the functions call GitHub and AWS APIs and listen on nothing; a VPC would add a NAT
    CKV_AWS_116 # Lambda DLQ for async invocations: only the schedule invokes asynchronously, and a missed tick is
    #             replaced by the next one; the queue-fed invocations are synchronous and their queues have DLQs
    CKV_AWS_115 # reserved concurrency: it is taken from the account's pool (a new account cannot reserve any), and
    #             limits are enforced by the store's transactional admission, not by Lambda concurrency
    CKV_AWS_272 # code signing: the zip is built from source by the operator (scripts/lambda-build.sh)
    CKV_AWS_309 # API route authorizer: GitHub cannot authenticate to API Gateway; the webhook function verifies
    #             every delivery's HMAC signature (X-Hub-Signature-256) before reading it
    CKV2_AWS_5 # security group unattached: the functions attach it to every runner at launch (not in Terraform state)
    CKV2_AWS_11 # VPC flow logs (example network only): a per-account choice with its own cost
)
skip_list="$(IFS=,; printf '%s' "${skips[*]}")"
say "checkov -d $tf_dir (skipping ${#skips[@]} checks, see the script)"
"$venv/bin/checkov" -d "$tf_dir" --framework terraform --quiet --compact --skip-download \
    --skip-check "$skip_list" || die "checkov found the failures above"

say "structure and cleanup tests ($tf_dir/tests)"
PYTHONPATH="$hcl2_dir${PYTHONPATH:+:$PYTHONPATH}" "$venv/bin/python" -m unittest discover -v -s "$tf_dir/tests" -p "test_*.py" ||
    die "the tests above failed"

say "all checks passed"
