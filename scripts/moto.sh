#!/usr/bin/env bash
# Start or stop a local moto server (the AWS emulator from PyPI) for the EC2 provider's and the DynamoDB store's
# tests, with the AWS CLI (also from PyPI) beside it for the tests that run the seed's `aws dynamodb` commands.
#
#   scripts/moto.sh start   create/reuse a Python venv, install moto and the AWS CLI if missing, start
#                           moto_server in the background, wait until it answers, print the export line for the
#                           tests (the endpoint, the AWS CLI's path, throwaway AWS credentials and region)
#   scripts/moto.sh stop    stop the server started by `start` (same port)
#   scripts/moto.sh status  say whether it is running
#
# Environment:
#   GHR_MOTO_PORT   port on 127.0.0.1 (default 5055)
#   GHR_MOTO_VENV   Python venv to use or create (default: .venv in the repository root)
#   GHR_MOTO_SPEC   pip requirement to install (default: moto[server]>=5,<6)
#   GHR_AWSCLI_SPEC pip requirement of the AWS CLI (default: awscli>=1.30,<2)
#   PYTHON          interpreter used to create the venv (default: python3)
#
# Typical use:  eval "$(scripts/moto.sh start)" && cargo test -p ghr-cloud-ec2
set -euo pipefail

readonly STARTUP_TIMEOUT_SECS=60
readonly STOP_TIMEOUT_SECS=10

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
port="${GHR_MOTO_PORT:-5055}"
venv="${GHR_MOTO_VENV:-$repo_root/.venv}"
spec="${GHR_MOTO_SPEC:-moto[server]>=5,<6}"
awscli_spec="${GHR_AWSCLI_SPEC:-awscli>=1.30,<2}"
python="${PYTHON:-python3}"
pid_file="$venv/moto-$port.pid"
log_file="$venv/moto-$port.log"
url="http://127.0.0.1:$port"

# Progress goes to stderr so that stdout carries only the export line (usable with eval).
say() { printf 'moto.sh: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}
# shellcheck source=scripts/lib/venv.sh
source "$repo_root/scripts/lib/venv.sh"

answers() { curl --silent --fail --max-time 2 --output /dev/null "$url/moto-api/"; }

running_pid() {
    [[ -f "$pid_file" ]] || return 1
    local pid
    pid="$(cat "$pid_file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

ensure_venv() {
    venv_install "$venv/bin/moto_server" "$spec"
    venv_install "$venv/bin/aws" "$awscli_spec"
}

start() {
    command -v curl >/dev/null || die "curl is needed to check that moto answers"
    local pid
    if pid="$(running_pid)"; then
        answers || die "moto (pid $pid) is running but $url/moto-api/ does not answer; see $log_file"
        say "moto already running (pid $pid) on $url"
        ensure_venv
        exports
        return 0
    fi
    if answers; then
        die "something else already answers on $url; stop it or set GHR_MOTO_PORT"
    fi
    ensure_venv
    say "starting moto (one request at a time) on $url (log: $log_file)"
    # moto_serial.py: moto's server, one request at a time (stock moto_server is not atomic under concurrent
    # requests, which would make every race test meaningless; see the script).
    nohup "$venv/bin/python" "$repo_root/scripts/moto_serial.py" 127.0.0.1 "$port" >"$log_file" 2>&1 </dev/null &
    pid=$!
    printf '%s\n' "$pid" >"$pid_file"
    local deadline=$((SECONDS + STARTUP_TIMEOUT_SECS))
    until answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$pid_file"
            die "moto_server exited during startup; last lines of $log_file:
$(tail -n 20 "$log_file")"
        fi
        if ((SECONDS >= deadline)); then
            kill "$pid" 2>/dev/null || true
            rm -f "$pid_file"
            die "moto_server did not answer on $url within ${STARTUP_TIMEOUT_SECS}s; see $log_file"
        fi
        sleep 0.2
    done
    say "moto ready (pid $pid)"
    exports
}

# What the tests need: the endpoint, the AWS CLI (GHR_TEST_AWS_CLI), and throwaway credentials and a region for the
# SDK's and the AWS CLI's default chains (moto accepts any; a shell that evals this line talks to moto, not to a real
# account).
exports() {
    printf 'export GHR_TEST_MOTO_ENDPOINT=%s GHR_TEST_AWS_CLI=%q AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1\n' "$url" "$venv/bin/aws"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$pid_file"
        say "moto is not running on port $port (no live pid in $pid_file)"
        return 0
    fi
    kill "$pid"
    local deadline=$((SECONDS + STOP_TIMEOUT_SECS))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            say "moto (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT_SECS}s; sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    rm -f "$pid_file"
    say "moto stopped (pid $pid)"
}

status() {
    local pid
    if pid="$(running_pid)" && answers; then
        say "moto running (pid $pid) on $url"
    else
        say "moto not running on $url"
        return 1
    fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
    say "usage: $0 start|stop|status"
    exit 2
    ;;
esac
