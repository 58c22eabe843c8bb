#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (`.ci/run` calls this script).
#
# 1. formatting and lints (clippy -D warnings) of every crate with every feature (the EC2 provider, the DynamoDB
#    store, `ghr --features ec2,dynamodb`, `ghr-sim --features dynamodb`);
# 2. the architecture invariant: ghr-core depends on no runtime, database, HTTP client or cloud SDK;
# 3. every test of the default workspace members (nextest), the deterministic simulation (GHR_SIM_SEEDS seeds,
#    default 1000, on SQLite; GHR_SIM_PG_SEEDS seeds, default 50, plus 8 long ones, on PostgreSQL; a failure prints the command that
#    replays its seed), then doc tests. The PostgreSQL store's tests (its conformance suite, replicas) run on the
#    server GHR_TEST_POSTGRES_URL names; without it this script starts a throwaway one from the machine's own
#    PostgreSQL binaries (scripts/postgres.sh) and stops it at the end. They fail, never skip, without a server;
# 4. the DynamoDB store's tests (its conformance suite) and the seed README's `aws dynamodb` commands against
#    `ghr serve`, then the simulation on DynamoDB (GHR_SIM_DYNAMODB_SEEDS seeds, default 15), all on the moto AWS
#    emulator, which this script installs (with the AWS CLI) and starts itself before the tests;
# 5. the EC2 provider's tests against moto;
# 6. the serverless functions (ghr-lambda) end to end on moto through a Lambda runtime API stand-in, and the
#    Terraform module's offline checks (scripts/terraform-check.sh: terraform fmt, checkov, structure tests).
#
# Environment: GHR_TEST_SKIP_EC2=1 skips steps 4, 5 and 6 and builds the default members only, without features: no
# AWS SDK is compiled (a fast inner loop; CI never sets it).
#
# Disk: every build below uses one package selection (`$scope`), so cargo resolves one feature set and builds each
# dependency once; incremental compilation is off (a one-shot build only pays for it). A fresh run's target/ is
# printed at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
if [[ "${GHR_TEST_SKIP_EC2:-0}" == "1" ]]; then
    scope=()                # the default members only: no AWS SDK
else
    scope=(--workspace --all-features)  # the AWS crates and the features that use them, in one feature set
fi

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy (${scope[*]:-default members})"
cargo clippy "${scope[@]}" --all-targets -- -D warnings
df -h . | tail -n 1 | awk '{print "disk: " $4 " free after the lints"}'

step "architecture: ghr-core does no IO"
forbidden='^(tokio|sqlx|sqlx-.*|reqwest|hyper|axum|aws-.*|libsqlite3-sys|mio) v'
if cargo tree -p ghr-core -e normal --prefix none | grep -E "$forbidden"; then
    echo "ghr-core must not depend on the crates above (see ARCHITECTURE.md, 'Invariants')" >&2
    exit 1
fi
echo "ok: ghr-core depends on no runtime, database, HTTP client or cloud SDK"

step "tidy: every Rust file says what it owns (a //! first line) and stays readable (<= 700 lines)"
tidy_failed=0
while IFS= read -r file; do
    if ! head -n 1 "$file" | grep -q '^//!'; then
        echo "$file: start it with a //! line saying what the module owns" >&2
        tidy_failed=1
    fi
    if [ "$(wc -l < "$file")" -gt 700 ]; then
        echo "$file: over 700 lines; split it by resource or task" >&2
        tidy_failed=1
    fi
done < <(git ls-files 'crates/*.rs')
[ "$tidy_failed" = 0 ] || exit 1
echo "ok"

cleanup() {
    [[ -n "${started_postgres:-}" ]] && scripts/postgres.sh stop >/dev/null 2>&1
    [[ -n "${started_moto:-}" ]] && scripts/moto.sh stop >/dev/null 2>&1
    true
}
trap cleanup EXIT
if [[ -z "${GHR_TEST_POSTGRES_URL:-}" ]]; then
    step "PostgreSQL for the PostgreSQL store's tests (scripts/postgres.sh)"
    eval "$(scripts/postgres.sh start)"
    # Stop it at the end only if this run started it (one that was already running belongs to someone else).
    [[ "${GHR_TEST_POSTGRES_STARTED:-0}" == 1 ]] && started_postgres=1
fi
export GHR_TEST_POSTGRES_URL
if [[ "${GHR_TEST_SKIP_EC2:-0}" != "1" ]]; then
    step "moto (AWS emulator) and the AWS CLI for the DynamoDB and EC2 tests (scripts/moto.sh)"
    eval "$(scripts/moto.sh start)"
    started_moto=1
fi

# The deterministic simulation runs as its own step so that its seed count is printed.
sim_seeds="${GHR_SIM_SEEDS:-1000}"
sim_pg_seeds="${GHR_SIM_PG_SEEDS:-50}"
sim_dynamodb_seeds="${GHR_SIM_DYNAMODB_SEEDS:-15}"
# The tests that need moto: they run in their own steps below.
moto_tests='package(ghr-store-dynamodb) or package(ghr-cloud-ec2) or package(ghr-lambda) or (package(ghr) and binary(dynamodb_seed_cli))'
if command -v cargo-nextest >/dev/null 2>&1 || cargo nextest --version >/dev/null 2>&1; then
    step "tests (nextest)"
    cargo nextest run "${scope[@]}" --no-fail-fast -E "not package(ghr-sim) and not ($moto_tests)"
    step "deterministic simulation: ${sim_seeds} seeds, 24 long seeds of 600 steps, the scripted race and outage scenarios"
    GHR_SIM_SEEDS="$sim_seeds" cargo nextest run "${scope[@]}" -E 'package(ghr-sim)' --no-fail-fast --success-output final
    step "deterministic simulation on PostgreSQL: ${sim_pg_seeds} seeds, 8 long seeds, the scenarios"
    GHR_SIM_STORE=postgres GHR_SIM_SEEDS="$sim_pg_seeds" GHR_SIM_LONG_SEEDS=4 \
        cargo nextest run "${scope[@]}" -E 'package(ghr-sim)' --no-fail-fast --success-output final
else
    step "tests (cargo test; cargo-nextest not installed)"
    GHR_SIM_SEEDS="$sim_seeds" cargo test --no-fail-fast
    GHR_SIM_STORE=postgres GHR_SIM_SEEDS="$sim_pg_seeds" GHR_SIM_LONG_SEEDS=4 cargo test -p ghr-sim --no-fail-fast
fi
echo "simulation: ${sim_seeds} seeds on SQLite and ${sim_pg_seeds} on PostgreSQL passed (replay one: cargo run -p ghr-sim -- --seed N --trace)"

if [[ "${GHR_TEST_SKIP_EC2:-0}" != "1" ]]; then
    if cargo nextest --version >/dev/null 2>&1; then
        step "DynamoDB store on moto: its tests (conformance suite), the seed README's aws dynamodb commands"
        cargo nextest run "${scope[@]}" --no-fail-fast \
            -E 'package(ghr-store-dynamodb) or (package(ghr) and binary(dynamodb_seed_cli))'
        # moto serves one request at a time, in milliseconds: a seed takes 7 to 20 s (SQLite: a fraction of a
        # second), so the default runs in about 2 minutes; the 1,200-job outage scenario would take over 10.
        step "deterministic simulation on DynamoDB (moto): ${sim_dynamodb_seeds} seeds (~2 min), no long seeds, the scenarios but the 1,200-job outage"
        GHR_SIM_STORE=dynamodb GHR_SIM_SEEDS="$sim_dynamodb_seeds" GHR_SIM_LONG_SEEDS=0 \
            cargo nextest run "${scope[@]}" --no-fail-fast --success-output final \
            -E 'package(ghr-sim) and not test(an_outage_under_a_steady_load_loses_no_job)'
    else
        step "DynamoDB store on moto (cargo test): its tests, the seed's commands, ${sim_dynamodb_seeds} simulation seeds"
        cargo test -p ghr-store-dynamodb --no-fail-fast
        cargo test -p ghr --features dynamodb --test dynamodb_seed_cli --no-fail-fast
        GHR_SIM_STORE=dynamodb GHR_SIM_SEEDS="$sim_dynamodb_seeds" GHR_SIM_LONG_SEEDS=0 \
            cargo test -p ghr-sim --features dynamodb --no-fail-fast -- --skip an_outage_under_a_steady_load_loses_no_job
    fi
    echo "simulation: ${sim_dynamodb_seeds} seeds on DynamoDB (moto) passed (replay one: GHR_SIM_STORE=dynamodb cargo run -p ghr-sim --features dynamodb -- --seed N --trace)"
fi

step "doc tests"
cargo test "${scope[@]}" --doc

if [[ "${GHR_TEST_SKIP_EC2:-0}" != "1" ]]; then
    step "EC2 provider: tests against moto"
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run "${scope[@]}" -E 'package(ghr-cloud-ec2)' --no-fail-fast
    else
        cargo test -p ghr-cloud-ec2 --no-fail-fast
    fi
    step "serverless functions (ghr-lambda) on moto: through the Lambda runtime API, with the GitHub emulator"
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run "${scope[@]}" -E 'package(ghr-lambda)' --no-fail-fast
    else
        cargo test -p ghr-lambda --no-fail-fast
    fi
    step "Terraform module and example: the offline checks (scripts/terraform-check.sh)"
    scripts/terraform-check.sh
fi

du -sh target 2>/dev/null | awk '{print "disk: target/ holds " $1}'
df -h . | tail -n 1 | awk '{print "disk: " $4 " free"}'
step "all checks passed"
