#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback, for the registry tests.
#
#   scripts/postgres.sh run -- CMD [ARGS...]   start a server, run CMD with
#                                              DATABUTLER_TEST_POSTGRES_URL set, always stop it
#   scripts/postgres.sh start                  start one; print the folder and the URL
#   scripts/postgres.sh stop DIR               stop the one whose folder is DIR and delete it
#
# If the server binaries (initdb, pg_ctl) are missing and we are root, Debian's `postgresql`
# package is installed first. The cluster lives in a temporary folder owned by the `postgres`
# user (PostgreSQL refuses to run as root), listens on 127.0.0.1 on a free port with trust
# authentication, and trades durability for speed (fsync off): it is for tests only.
#
# `run` without a server (not root and no binaries): CMD runs without the URL, so the
# PostgreSQL tests skip; with CI=true that is an error instead.
set -euo pipefail

PG_BIN=""
PG_USER="${DATABUTLER_PG_USER:-postgres}"
DB_NAME="databutler_test"

log() { echo "postgres.sh: $*" >&2; }

findBinaries() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        PG_BIN="$(dirname "$(readlink -f "$(command -v pg_ctl)")")"
        return 0
    fi
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            PG_BIN="$dir"
            return 0
        fi
    done
    return 1
}

installServer() {
    if [ "$(id -u)" != 0 ]; then
        log "PostgreSQL server binaries not found and not root: cannot install them."
        return 1
    fi
    log "installing the PostgreSQL server (apt-get)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
}

# Run a command as the server's user (ourselves unless we are root).
asServerUser() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

freePort() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Start a server; sets PG_DIR and PG_URL.
startServer() {
    # An install whose post-install step complains (e.g. about the default cluster it tries
    # to start) is still good enough if the binaries are there.
    findBinaries || { installServer || true; findBinaries; } || { log "no PostgreSQL server binaries"; return 1; }
    if [ "$(id -u)" = 0 ] && ! id "$PG_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER" || return 1
    fi
    PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/databutler-pg.XXXXXX")" || return 1
    chmod 700 "$PG_DIR"
    if [ "$(id -u)" = 0 ]; then chown "$PG_USER" "$PG_DIR" || return 1; fi
    local port superuser
    port="$(freePort)" || return 1
    superuser="$PG_USER"
    [ "$(id -u)" = 0 ] || superuser="$(id -un)"
    asServerUser "$PG_BIN/initdb" -D "$PG_DIR/data" -U "$superuser" -A trust -E UTF8 --locale=C --no-sync >"$PG_DIR/initdb.log" 2>&1 \
        || { cat "$PG_DIR/initdb.log" >&2; return 1; }
    asServerUser "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-h 127.0.0.1 -p $port -k $PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >&2 || { cat "$PG_DIR/server.log" >&2; return 1; }
    asServerUser "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U "$superuser" "$DB_NAME" || return 1
    PG_URL="postgresql+psycopg://$superuser@127.0.0.1:$port/$DB_NAME"
    log "PostgreSQL $("$PG_BIN/pg_ctl" --version | awk '{print $3}') running at $PG_URL (folder $PG_DIR)"
}

stopServer() {
    local dir="$1"
    [ -n "$dir" ] && [ -d "$dir" ] || return 0
    findBinaries || true
    if [ -f "$dir/data/postmaster.pid" ] && [ -n "$PG_BIN" ]; then
        asServerUser "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || log "could not stop the server in $dir"
    fi
    rm -rf "$dir"
    log "stopped and removed $dir"
}

case "${1:-}" in
    start)
        startServer
        echo "DATABUTLER_TEST_POSTGRES_DIR=$PG_DIR"
        echo "DATABUTLER_TEST_POSTGRES_URL=$PG_URL"
        ;;
    stop)
        stopServer "${2:?usage: postgres.sh stop DIR}"
        ;;
    run)
        shift
        [ "${1:-}" = "--" ] && shift
        [ $# -gt 0 ] || { log "usage: postgres.sh run -- CMD [ARGS...]"; exit 2; }
        PG_DIR=""
        trap 'stopServer "$PG_DIR"' EXIT
        trap 'exit 130' INT TERM
        if startServer; then
            export DATABUTLER_TEST_POSTGRES_URL="$PG_URL"
        elif [ "${CI:-}" = "true" ]; then
            log "could not start PostgreSQL, which CI requires."
            exit 1
        else
            log "could not start PostgreSQL; its tests will be skipped."
        fi
        status=0
        "$@" || status=$?
        exit "$status"
        ;;
    *)
        echo "usage: $0 run -- CMD [ARGS...] | start | stop DIR" >&2
        exit 2
        ;;
esac
