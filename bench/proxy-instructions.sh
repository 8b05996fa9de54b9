#!/usr/bin/env bash
# Instructions the gateway spends per proxied request, counted by callgrind (so machine noise
# does not move them), for one or more rampart binaries: the same request and fleet as
# bench/proxy.sh (route with CIDR/tenant deny, API-key auth, rate limit, header rules).
#
# Usage (from anywhere):  bash bench/proxy-instructions.sh [rampart binary ...]
#   (default: target/release/rampart, built by bench/proxy.sh's FLEET_ONLY step)
# For each binary, the gateway runs under `valgrind --tool=callgrind` twice for WINDOW seconds:
# idle, then under `wrk -t1 -c4` on loopback. Instructions per request =
# (loaded total - idle total) / requests wrk completed; startup and timers cancel out.
# Knobs: BENCH_PORT_BASE (default 28380), WINDOW (seconds, default 15), KEEP=dir (keep each
# loaded run's callgrind output there, for callgrind_annotate).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PORT_BASE="${BENCH_PORT_BASE:-28380}"
WINDOW="${WINDOW:-15}"
ORIGIN=$PORT_BASE GW=$((PORT_BASE + 2)) ADMIN=$((PORT_BASE + 3))
TMP="$(mktemp -d /tmp/rampart-instr.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 1
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
log() { echo "[proxy-instructions.sh] $*" >&2; }
wait_http() { for _ in $(seq 1 $(($2 * 10))); do curl -s -o /dev/null --max-time 1 "$1" && return 0; sleep 0.1; done; log "timed out: $1"; return 1; }

FLEET_ONLY="$TMP/fleet.yaml" BENCH_PORT_BASE=$PORT_BASE bash bench/proxy.sh
[ $# -gt 0 ] || set -- "$ROOT/target/release/rampart"
HOST=bench.example.com KEY=$(sed -n 's/^API_KEY="\(.*\)"$/\1/p' bench/proxy.sh) PATH_Q="/api/v1/items/42?expand=owner"

# total instructions of one gateway run; $2 = "load" to drive wrk meanwhile (prints requests)
run() {
    local bin=$1 mode=$2 out="$TMP/cg.$RANDOM" requests=0
    "$bin" demo-upstream --name origin --listen "127.0.0.1:$ORIGIN" >/dev/null 2>&1 &
    local origin=$!
    PIDS+=($origin)
    wait_http "http://127.0.0.1:$ORIGIN/healthz" 10
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" gateway --config "$TMP/fleet.yaml" \
        --cell bench-1 --id gw-bench --listen "127.0.0.1:$GW" --admin "127.0.0.1:$ADMIN" \
        --data-dir "$TMP/gw.$RANDOM" >"$TMP/gw.log" 2>&1 &
    local gw=$!
    PIDS+=($gw)
    wait_http "http://127.0.0.1:$ADMIN/healthz" 120
    if [ "$mode" = load ]; then
        requests=$(wrk -t1 -c4 -d"${WINDOW}s" -H "Host: $HOST" -H "x-api-key: $KEY" -H "x-tenant-id: acme" \
            "http://127.0.0.1:$GW$PATH_Q" | awk '/requests in/ {print $1}')
    else
        sleep "$WINDOW"
    fi
    kill -TERM "$gw"; wait "$gw" 2>/dev/null || true
    kill -TERM "$origin"; wait "$origin" 2>/dev/null || true
    local total
    total=$(awk '/^(summary|totals):/ {print $2; exit}' "$out")
    if [ -n "${KEEP:-}" ] && [ "$mode" = load ]; then cp "$out" "$KEEP/callgrind.$(basename "$bin").$RANDOM"; fi
    echo "$total $requests"
}

printf '| binary | idle Ir | loaded Ir | requests | Ir per request |\n|---|---:|---:|---:|---:|\n'
for bin in "$@"; do
    log "$bin: idle"
    read -r idle _ < <(run "$bin" idle)
    log "$bin: under wrk"
    read -r loaded requests < <(run "$bin" load)
    per=$(( (loaded - idle) / requests ))
    printf '| %s | %s | %s | %s | %s |\n' "$bin" "$idle" "$loaded" "$requests" "$per"
done
