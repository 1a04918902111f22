#!/bin/sh
# Starts one camgate service: the container entrypoint, and ExecStart of the systemd units.
#
#   entrypoint.sh web [ARGS]    prepare the data directory, collect static files, run the web server
#   entrypoint.sh agent [ARGS]  wait until the web service has migrated, run the tunnel agent
#   entrypoint.sh CMD [ARGS]    any other camgate command, as is (backup, restore, shell, ...)
#
# Only `web` migrates. The agent waits for the schema instead of migrating too: two
# `migrate` runs racing on one SQLite file do not corrupt it (SQLite serialises the
# writes) but both can plan the same migration and the loser fails half-way with
# "table already exists", which turns every upgrade into a restart lottery.
#
# Settings come from the environment (see .env.example). These are read here only:
#   CAMGATE_WEB_HOST            address the web server listens on (default 0.0.0.0: the container's)
#   CAMGATE_WEB_PORT            its port (default 8000; nginx.conf expects 8000)
#   CAMGATE_WEB_TUNNEL_PORT     its port for the gateway's own tunnel, where no forwarded
#                               header is believed (default 8001; the agent's
#                               CAMGATE_GATEWAY_HTTP_PORT must name it)
#   CAMGATE_SCHEMA_WAIT_SECONDS how long the agent waits for the schema (default 300)
set -eu

say() { printf 'camgate-entrypoint: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

check_data_dir() {
    dir="${CAMGATE_DATA_DIR:-}"
    [ -n "$dir" ] || die "CAMGATE_DATA_DIR is not set; the data would land in a per-user directory that does not survive"
    mkdir -p "$dir" 2>/dev/null || true
    [ -d "$dir" ] && [ -w "$dir" ] || die "data directory $dir is not writable by uid $(id -u); fix the volume's ownership"
}

wait_for_schema() {
    limit="${CAMGATE_SCHEMA_WAIT_SECONDS:-300}"
    started=$(date +%s)
    # `migrate --check` exits non-zero while any migration is unapplied (or no
    # database exists yet); it only reads, so polling it is safe while web migrates.
    # --skip-checks: the system checks would import every view, a second of CPU a poll.
    until camgate migrate --check --skip-checks >/dev/null 2>&1; do
        waited=$(($(date +%s) - started))
        [ "$waited" -lt "$limit" ] || die "the database schema is still not up to date after ${waited} s; is the web service running?"
        [ -n "${announced:-}" ] || say "waiting for the web service to migrate the database"
        announced=yes
        sleep 1
    done
}

service="${1:-web}"
[ $# -eq 0 ] || shift

case "$service" in
    web)
        check_data_dir
        camgate prepare
        camgate collectstatic --noinput --verbosity 0
        exec camgate web --host "${CAMGATE_WEB_HOST:-0.0.0.0}" --port "${CAMGATE_WEB_PORT:-8000}" \
            --tunnel-port "${CAMGATE_WEB_TUNNEL_PORT:-8001}" --no-prepare "$@"
        ;;
    agent)
        check_data_dir
        wait_for_schema
        # The agent reconciles at start: every active camera's tunnel, and the gateway's own.
        exec camgate agent --no-prepare "$@"
        ;;
    *)
        exec camgate "$service" "$@"
        ;;
esac
