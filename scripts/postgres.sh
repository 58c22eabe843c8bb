#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL server (the machine's own binaries) for the PostgreSQL store's tests.
#
#   scripts/postgres.sh start   initdb a cluster in a scratch directory (once), start it on 127.0.0.1, wait
#                               until it answers, print the export line for the tests
#   scripts/postgres.sh stop    stop the server `start` started and remove its directory (a server that was
#                               already running when `start` was called is left alone: it prints
#                               GHR_TEST_POSTGRES_STARTED=1 only when it started one)
#   scripts/postgres.sh status  say whether it is running
#
# `initdb` refuses to run as root, so as root the cluster is created and run by the `postgres` user (or the
# user GHR_PG_USER names). Trust authentication on loopback only: this server is for tests.
#
# Environment:
#   GHR_PG_PORT   port on 127.0.0.1 (default 55432)
#   GHR_PG_DIR    cluster directory (default: /tmp/ghr-test-postgres-$GHR_PG_PORT)
#   GHR_PG_USER   system user that owns the cluster when this script runs as root (default: postgres)
#
# Typical use:  eval "$(scripts/postgres.sh start)" && cargo nextest run -p ghr-store postgres
set -euo pipefail

readonly STARTUP_TIMEOUT_SECS=60
port="${GHR_PG_PORT:-55432}"
dir="${GHR_PG_DIR:-/tmp/ghr-test-postgres-$port}"
owner="${GHR_PG_USER:-postgres}"
url="postgres://postgres@127.0.0.1:$port/postgres"

say() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# Run a PostgreSQL binary as the cluster's owner.
as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        id "$owner" >/dev/null 2>&1 || die "initdb refuses root and there is no user '$owner'; create one or set GHR_PG_USER"
        # su resets PATH; keep the caller's so the same binaries run.
        su "$owner" -s /bin/sh -c "PATH='$PATH' $(printf '%q ' "$@")"
    else
        "$@"
    fi
}

answers() { as_owner pg_ctl -D "$dir" status >/dev/null 2>&1; }

start() {
    command -v initdb >/dev/null || die "initdb not found: install PostgreSQL (the server binaries) or put them on PATH"
    if [[ -f "$dir/PG_VERSION" ]] && answers; then
        say "PostgreSQL already running in $dir on port $port"
        printf 'export GHR_TEST_POSTGRES_URL=%s\n' "$url"
        printf 'export GHR_TEST_POSTGRES_STARTED=0\n'
        return 0
    fi
    if [[ ! -f "$dir/PG_VERSION" ]]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        [[ "$(id -u)" == 0 ]] && chown "$owner" "$dir"
        chmod 700 "$dir"
        say "creating a cluster in $dir"
        as_owner initdb -D "$dir" -A trust -U postgres --no-sync >"$dir.initdb.log" 2>&1 ||
            die "initdb failed; see $dir.initdb.log"
    fi
    say "starting PostgreSQL on 127.0.0.1:$port (log: $dir/server.log)"
    # fsync off: a test server needs no durability across a crash of this machine, and it halves the time
    # of write-heavy tests. max_connections covers every test's pool running at once.
    as_owner pg_ctl -D "$dir" -l "$dir/server.log" -w -t "$STARTUP_TIMEOUT_SECS" \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
        start >&2 || die "PostgreSQL did not start; see $dir/server.log"
    printf 'export GHR_TEST_POSTGRES_URL=%s\n' "$url"
    printf 'export GHR_TEST_POSTGRES_STARTED=1\n'
}

stop() {
    if [[ -f "$dir/PG_VERSION" ]]; then
        as_owner pg_ctl -D "$dir" -m fast -w stop >&2 || true
        rm -rf "$dir" "$dir.initdb.log"
        say "stopped and removed $dir"
    else
        say "no cluster in $dir"
    fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status)
    if [[ -f "$dir/PG_VERSION" ]] && answers; then say "running in $dir on port $port"; else say "not running"; exit 1; fi
    ;;
*) die "usage: scripts/postgres.sh start|stop|status" ;;
esac
