#!/usr/bin/env bash
# Containment of a failing rollout: a control plane, 3 gateways in 2 cells (gw-a1, gw-a2 in
# cell a; gw-b1 in cell b), 2 echo upstreams and one open-loop client (`rampart load`) per
# gateway. ~CHANGE_AT s into the run a 100%-failing candidate (flag `edge-static-enabled`
# flipped to true: every non-probe request gets the static 503) starts at 1% of every cell.
# Measured from the system itself: detection (rollout decisions), rollback propagation (each
# gateway's admin /cohorts `snapshot`, polled every 20 ms) and the failed requests the load
# clients saw, against a 10 s warm-up load on the same fleet (the peer) and the goals
# (detection to all ACKs < 5 s; failed < 0.05% of requests served).
#
# Usage (from anywhere):   bash bench/containment.sh
# Environment knobs:
#   BENCH_PORT_BASE  first of 12 loopback ports used (default 28300)
#   RATE             req/s per gateway, one load client each (default 1000)
#   RUN_SECS         length of the measured load, seconds (default 60)
#   CHANGE_AT        seconds into the load when the change is applied (default 15)
#   WARM_SECS        warm-up load (the peer), seconds (default 10)
#   CONNS            connections per load client (default 50)
#   ERR_MIN_SAMPLES  the stages' error_rate gate min_samples (default 20, the control plane's)
#   KEEP_TMP=1       keep the work directory (logs, JSON)
# Everything binds 127.0.0.1; every wait has a timeout; about 2 min once built.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PB="${BENCH_PORT_BASE:-28300}"
RATE="${RATE:-1000}" RUN_SECS="${RUN_SECS:-60}" CHANGE_AT="${CHANGE_AT:-15}"
WARM_SECS="${WARM_SECS:-10}" CONNS="${CONNS:-50}" ERR_MIN="${ERR_MIN_SAMPLES:-20}"
CTL_PORT=$PB UP1=$((PB + 1)) UP2=$((PB + 2))
GWS=(gw-a1 gw-a2 gw-b1)
declare -A CELL=([gw-a1]=a [gw-a2]=a [gw-b1]=b)
declare -A PPORT=([gw-a1]=$((PB + 3)) [gw-a2]=$((PB + 4)) [gw-b1]=$((PB + 5)))
declare -A APORT=([gw-a1]=$((PB + 6)) [gw-a2]=$((PB + 7)) [gw-b1]=$((PB + 8)))
GUARD_MIN=20 # the gateways' default local guard: 20 requests, 50% errors, 10 s window

log() { echo "[containment.sh] $(date +%T.%3N) $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { date +%s%3N; }

need=()
for t in jq curl; do command -v $t >/dev/null 2>&1 || need+=($t); done
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq || true
    timeout 300 apt-get install -y -qq "${need[@]}" >/dev/null
fi
log "cargo build --release"
cargo build --release -q -p rampart-cli
R="$ROOT/target/release/rampart"
for p in $(seq "$PB" $((PB + 8))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then die "port $p is in use; set BENCH_PORT_BASE"; fi
done

TMP="$(mktemp -d /tmp/rampart-containment.XXXXXX)"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    [ -n "${KEEP_TMP:-}" ] && log "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() { # description, seconds, command...
    local what=$1 secs=$2 i; shift 2
    for i in $(seq 1 $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "timed out after ${secs}s waiting for $what"
}
CTL="http://127.0.0.1:$CTL_PORT"
rp() { timeout 20 "$R" "$@" --server "$CTL" --token "$ADMIN" --json; }

# --- control plane -------------------------------------------------------------------------
STAGE_GATES="[{deadline_secs: 120, check: {error_rate: {alpha: 0.01, min_effect: 0.05, min_samples: $ERR_MIN}}},
              {deadline_secs: 120, check: {latency_p99: {max_ratio: 1.5}}},
              {deadline_secs: 120, check: {traffic_floor: {min_ratio: 0.5}}},
              {deadline_secs: 120, check: no_nack},
              {deadline_secs: 120, check: no_local_guard_trip}]"
cat >"$TMP/control.yaml" <<EOF
rules:
  staging:
    low: { approvals: 0 }
    medium: { approvals: 0 }
    high: { approvals: 0 }
    critical: { approvals: 0 }
rollouts:
  staging:
    soak_secs: { low: 30, medium: 30, high: 30, critical: 30 }
    policy_soak_secs: { low: 30, medium: 30, high: 30, critical: 30 }
    min_samples: 100
    impact: { enabled: false }
    plans:
      medium:
        - { name: one-percent, scope: { percent: 1 }, shadow: false, min_soak_secs: 30, min_samples: 100,
            gates: $STAGE_GATES }
        - { name: all, scope: { percent: 100 }, shadow: false, min_soak_secs: 30, min_samples: 100,
            gates: $STAGE_GATES }
EOF
"$R" control --db "sqlite://$TMP/control.db" --listen "127.0.0.1:$CTL_PORT" --config "$TMP/control.yaml" \
    --bootstrap-token-file "$TMP/admin.token" >"$TMP/control.log" 2>&1 &
PIDS+=($!)
wait_for "the control plane" 20 grep -q 'listening on' "$TMP/control.log"
ADMIN="$(cat "$TMP/admin.token")"
declare -A GWTOK
for g in "${GWS[@]}"; do
    GWTOK[$g]=$(curl -sf --max-time 5 -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' \
        -d "{\"name\":\"$g\",\"kind\":\"gateway\"}" "$CTL/v1/tokens" | jq -er .secret) || die "token for $g"
done

# --- the fleet -----------------------------------------------------------------------------
for u in $UP1 $UP2; do
    "$R" demo-upstream --name "shop-$u" --listen "127.0.0.1:$u" >"$TMP/upstream-$u.log" 2>&1 &
    PIDS+=($!)
done
flag_enabled() { # default value
    cat <<EOF
name: edge-static-enabled
type: bool
default: $1
risk: medium
owner: team-edge
description: Serve the static edge answer instead of the app.
rules:
  - { name: probe, when: [{ attribute: tenant, op: in, values: [probe] }], value: true }
EOF
}
cat >"$TMP/fleet.yaml" <<EOF
environment: staging
settings: { tenant_header: x-tenant-id, trusted_proxies: ["127.0.0.0/8"], tenant: { from_trusted_proxy: true } }
products: [{ name: shop, description: The shop }]
upstreams:
  - { name: shop-app, endpoints: ["127.0.0.1:$UP1", "127.0.0.1:$UP2"] }
flags:
  - $(flag_enabled false | sed '2,$s/^/    /')
  - name: edge-static-status
    type: int
    schema: { type: integer, enum: [200, 503] }
    default: 503
    risk: medium
    owner: team-edge
    rules:
      - { name: probe, when: [{ attribute: tenant, op: in, values: [probe] }], value: 200 }
policies:
  - id: shop-edge
    enabled: { flag: edge-static-enabled }
    static_response: { status: { flag: edge-static-status }, body: "edge says no" }
routes:
  - { id: shop-all, product: shop, match: { host: shop.test, path: { prefix: / } }, upstream: shop-app, policies: [shop-edge] }
EOF
timeout 10 "$R" validate -f "$TMP/fleet.yaml" >&2 || die "the fleet does not validate"
cid=$(rp apply -f "$TMP/fleet.yaml" --env staging | tee "$TMP/apply-fleet.json" | jq -er '.id // .change.id') \
    || die "apply of the fleet: $(cat "$TMP/apply-fleet.json")"
rp change apply "$cid" >"$TMP/apply-fleet-2.json" || die "change apply $cid: $(cat "$TMP/apply-fleet-2.json")"
for g in "${GWS[@]}"; do
    "$R" gateway --id "$g" --cell "${CELL[$g]}" --listen "127.0.0.1:${PPORT[$g]}" \
        --admin "127.0.0.1:${APORT[$g]}" --data-dir "$TMP/data-$g" --control "$CTL" \
        --control-token "${GWTOK[$g]}" --env staging >"$TMP/$g.log" 2>&1 &
    PIDS+=($!)
done
gw_ok() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 -H 'host: shop.test' -H "x-tenant-id: $2" \
    "http://127.0.0.1:${PPORT[$1]}/x")" = "$3" ]; }
for g in "${GWS[@]}"; do
    wait_for "$g to serve 200" 30 gw_ok "$g" t1 200
    wait_for "$g to serve the probe 200 static" 5 gw_ok "$g" probe 200
done
snap() { curl -sf --max-time 1 "http://127.0.0.1:${APORT[$1]}/cohorts" | jq -r '.snapshot // empty'; }
BASE_HASH=$(snap gw-a1)
log "fleet up, snapshot $BASE_HASH"

load() { # gateway secs tag
    timeout $(($2 + 30)) "$R" load --url "http://127.0.0.1:${PPORT[$1]}/cart" --rate "$RATE" --duration "$2" \
        --connections "$CONNS" --timeout-ms 2000 -H host:shop.test --vary x-tenant-id:100000 --json \
        >"$TMP/load-$3-$1.json" 2>"$TMP/load-$3-$1.err"
}
sum_loads() { # tag -> "scheduled sent ok http_err failed"
    jq -s -r '[(map(.scheduled)|add), (map(.sent)|add), (map(.ok)|add),
        (map(.http_errors["4xx"]+.http_errors["5xx"]+.http_errors.other)|add), (map(.failed)|add)] | @tsv' \
        "$TMP"/load-"$1"-*.json
}

# --- warm-up: the peer ---------------------------------------------------------------------
log "warm-up load ${RATE}/s x ${#GWS[@]} gateways for ${WARM_SECS}s"
lp=(); for g in "${GWS[@]}"; do load "$g" "$WARM_SECS" warm & lp+=($!); done
for p in "${lp[@]}"; do wait "$p" || die "warm-up load failed"; done
IFS=$'\t' read -r W_SCHED W_SENT W_OK W_HTTP W_FAIL < <(sum_loads warm)

# --- the run -------------------------------------------------------------------------------
log "load ${RATE}/s x ${#GWS[@]} gateways for ${RUN_SECS}s; the change at +${CHANGE_AT}s"
T0=$(now_ms)
lp=(); for g in "${GWS[@]}"; do load "$g" "$RUN_SECS" run & lp+=($!); PIDS+=($!); done
cat >"$TMP/change.yaml" <<EOF
reason: "bench: the erroneous default (100%-failing candidate)"
declared_impact: { changed_percent: 0 }
edits:
  - upsert:
      flag:
$(flag_enabled true | sed 's/^/        /')
EOF
sleep "$CHANGE_AT"
chg=$(rp change submit -f "$TMP/change.yaml" --env staging | tee "$TMP/submit.json" | jq -er '.id // .change.id') \
    || die "change submit: $(cat "$TMP/submit.json")"
rp change apply "$chg" >"$TMP/apply.json" || die "change apply: $(cat "$TMP/apply.json")"
T_APPLY=$(now_ms)
RID=$(jq -er '.rollout_id' "$TMP/apply.json") || die "no rollout_id in $(cat "$TMP/apply.json")"
log "change $chg applied, rollout $RID"

# Wait (bounded by the end of the load) for the rollout to end, then for every gateway to run
# the rollback's snapshot.
deadline=$((T0 + RUN_SECS * 1000))
state=""
while [ "$(now_ms)" -lt "$deadline" ]; do
    rp rollout show "$RID" >"$TMP/rollout.json" 2>/dev/null || true
    state=$(jq -r '[.decisions[]?.action] | map(select(. == "rolled_back" or . == "completed")) | .[0] // empty' "$TMP/rollout.json" 2>/dev/null || true)
    [ -n "$state" ] && break
    sleep 0.1
done
[ "$state" = rolled_back ] || { jq . "$TMP/rollout.json" >&2 || true; die "the rollout was not rolled back before the load ended (state: ${state:-running})"; }
TO_HASH=$(jq -er '[.decisions[] | select(.action == "rolled_back")][0].evidence.to_hash' "$TMP/rollout.json") \
    || { jq '.decisions' "$TMP/rollout.json" >&2; die "no to_hash in the rolled_back decision"; }
declare -A ACK
pend=${#GWS[@]}
while [ "$pend" -gt 0 ] && [ "$(now_ms)" -lt $((deadline + 10000)) ]; do
    for g in "${GWS[@]}"; do
        [ -n "${ACK[$g]:-}" ] && continue
        [ "$(snap "$g")" = "$TO_HASH" ] && ACK[$g]=$(now_ms) && pend=$((pend - 1))
    done
    sleep 0.02
done
[ "$pend" -eq 0 ] || die "not every gateway ran the rollback snapshot $TO_HASH: $(for g in "${GWS[@]}"; do echo -n "$g=$(snap "$g") "; done)"
T_ALL=0; for g in "${GWS[@]}"; do [ "${ACK[$g]}" -gt "$T_ALL" ] && T_ALL=${ACK[$g]}; done

log "waiting for the load clients"
for p in "${lp[@]}"; do wait "$p" || die "a load client failed: $(cat "$TMP"/load-run-*.err)"; done
rp rollout show "$RID" >"$TMP/rollout.json"
rp fleet --env staging >"$TMP/fleet.json" || true
IFS=$'\t' read -r SCHED SENT OK HTTP FAIL < <(sum_loads run)

# --- report --------------------------------------------------------------------------------
T_START=$(jq -er '[.decisions[] | select(.action == "started")][0].at_ms' "$TMP/rollout.json")
T_DETECT=$(jq -er '[.decisions[] | select(.action == "rolled_back")][0].at_ms' "$TMP/rollout.json")
WHY=$(jq -r '[.decisions[] | select(.action == "rolled_back")][0].evidence | "\(.reason); returned to \(.returned_to)"' "$TMP/rollout.json")
BAD=$((HTTP + FAIL)) W_BAD=$((W_HTTP + W_FAIL))
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", (b > 0 ? 100 * a / b : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a (peer 0)" }'; }
SHARE=$(pct $BAD "$SCHED") W_SHARE=$(pct $W_BAD "$W_SCHED")
D2A=$((T_ALL - T_DETECT))
BOUND=$((${#GWS[@]} * (GUARD_MIN + CONNS)))
echo
echo "## containment: 100%-failing candidate at 1% of every cell, ${#GWS[@]} gateways x ${RATE} req/s, ${RUN_SECS}s run"
echo "date: $(date -u '+%F %T UTC'); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $("$R" --version)"
echo "knobs: RATE=$RATE RUN_SECS=$RUN_SECS CHANGE_AT=$CHANGE_AT WARM_SECS=$WARM_SECS CONNS=$CONNS ERR_MIN_SAMPLES=$ERR_MIN; local guard: default (20 req, 50%, 10 s)"
echo "rollback reason: $WHY"
echo "baseline hash $BASE_HASH; rollback hash $TO_HASH ($([ "$TO_HASH" = "$BASE_HASH" ] && echo equal || echo DIFFERENT))"
echo
printf '| %-40s | %12s | %-10s | %s |\n' figure value goal "value÷goal"
printf '|------------------------------------------|-------------:|------------|------------|\n'
printf '| %-40s | %9d ms | %-10s | %s |\n' "rollout started - apply returned" $((T_START - T_APPLY)) "" ""
printf '| %-40s | %9d ms | %-10s | %s |\n' "detection (started -> rolled_back)" $((T_DETECT - T_START)) "" ""
for g in "${GWS[@]}"; do
    printf '| %-40s | %9d ms | %-10s | %s |\n' "rolled_back -> $g runs ${TO_HASH:0:12}" $((ACK[$g] - T_DETECT)) "" ""
done
printf '| %-40s | %9d ms | %-10s | %s |\n' "detection to all gateways on rollback" $D2A "< 5000 ms" "$(ratio $D2A 5000)"
printf '| %-40s | %12s | %-10s | %s |\n' "run: failed / scheduled" "$BAD / $SCHED" "" ""
printf '| %-40s | %10s %% | %-10s | %s |\n' "run: failed share" "$SHARE" "< 0.05 %" "$(ratio "$SHARE" 0.05)"
printf '| %-40s | %10s %% | %-10s | %s |\n' "peer: warm-up failed share ($W_BAD / $W_SCHED)" "$W_SHARE" "" "run÷peer $(ratio "$SHARE" "$W_SHARE")"
printf '| %-40s | %12s | %-10s | %s |\n' "failed vs bound sum(guard_min + conns)" "$BAD / $BOUND" "" "$(ratio $BAD $BOUND)"
echo
echo "(failed per gateway: $(for g in "${GWS[@]}"; do echo -n "$g $(jq '.http_errors["4xx"]+.http_errors["5xx"]+.http_errors.other+.failed' "$TMP/load-run-$g.json") "; done))"
echo "(run: sent $SENT, ok $OK, http errors $HTTP, failed (connect/io/timeout) $FAIL; warm-up: sent $W_SENT, ok $W_OK)"
echo "fleet at the end: $(jq -c '[.gateways[]? | {id, snapshot: (.snapshot // .active // .hash)}]' "$TMP/fleet.json" 2>/dev/null | cut -c1-400)"
