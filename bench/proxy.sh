#!/usr/bin/env bash
# Proxy throughput: one origin, measured straight, through nginx and through the rampart
# gateway, in one run on this machine. Prints a table with ratios to nginx (the peer), the
# open-loop view from `rampart load` (failed requests and p99 at a fixed rate) and the
# gateway's resident memory idle and under load.
#
# Usage (from anywhere):   bash bench/proxy.sh
# Environment knobs:
#   BENCH_PORT_BASE  first of 4 loopback ports used (default 28180)
#   WRK_SECS         wrk duration per target, seconds (default 10)
#   LOAD_RATE        rampart load rate, req/s (default 5000)
#   LOAD_SECS        rampart load duration, seconds (default 10)
#   QUIET_WAIT       seconds to wait at most for an idle machine before measuring (default 60)
#   FLEET_ONLY=path  write the gateway's fleet (for an origin on BENCH_PORT_BASE) there and stop
#   PERF=1           also record a CPU profile of the gateway under wrk (needs perf), into
#                    target/proxy-perf.txt (call graphs) and target/proxy-perf-flat.txt
#
# Pinning on a 2-core machine (documented in docs/BENCHMARKS.md): the origin and the client
# (wrk or rampart load) share core 0; the proxy under test (nginx with 1 worker, or the
# gateway, whose runtime then has 1 worker thread) has core 1 to itself. Everything binds
# 127.0.0.1 only. Every step has a timeout; the measuring part takes about 3 min once built.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PORT_BASE="${BENCH_PORT_BASE:-28180}"
ORIGIN_PORT=$PORT_BASE
NGINX_PORT=$((PORT_BASE + 1))
GW_PORT=$((PORT_BASE + 2))
GW_ADMIN_PORT=$((PORT_BASE + 3))
WRK_SECS="${WRK_SECS:-10}"
LOAD_RATE="${LOAD_RATE:-5000}"
LOAD_SECS="${LOAD_SECS:-10}"
CORE_SERVER=0 # origin and client
CORE_PROXY=1  # nginx or the gateway
HOST_HDR="bench.example.com"
# Minted by `rampart apikey new` (prod refuses other keys); it protects nothing but the bench.
API_KEY="rk_sPBUORDTwpa1eRctnXQlWQQEIXpgPpmzZcBEWJ4plmH_0GU8ET"
TENANT="acme"
PATH_Q="/api/v1/items/42?expand=owner"

log() { echo "[proxy.sh] $*" >&2; }

# --- tools ---------------------------------------------------------------------------------
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v pgrep >/dev/null 2>&1 || need+=(procps)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq || true
    timeout 300 apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
if [ "$(nproc)" -lt 2 ]; then
    log "needs 2 cores for the pinning (has $(nproc))"
    exit 1
fi

log "cargo build --release"
cargo build --release -q -p rampart-cli
RAMPART="$ROOT/target/release/rampart"

for p in $ORIGIN_PORT $NGINX_PORT $GW_PORT $GW_ADMIN_PORT; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        log "port $p is in use; set BENCH_PORT_BASE"
        exit 1
    fi
done

# --- cleanup -------------------------------------------------------------------------------
TMP="$(mktemp -d /tmp/rampart-proxy-bench.XXXXXX)"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    [ -n "${KEEP_TMP:-}" ] && log "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_http() { # url, seconds
    local i
    for i in $(seq 1 $(($2 * 10))); do
        if curl -s -o /dev/null --max-time 1 "$1" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "timed out waiting for $1"
    return 1
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# --- origin --------------------------------------------------------------------------------
taskset -c $CORE_SERVER "$RAMPART" demo-upstream --name origin \
    --listen "127.0.0.1:$ORIGIN_PORT" >"$TMP/origin.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$ORIGIN_PORT/healthz" 10

# --- nginx: the same policy chain, as far as nginx can say it ------------------------------
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/client_body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_requests 1000000;

    # a minted API key is longer than map's default bucket holds (set before any map)
    map_hash_bucket_size 128;
    # access: CIDR and tenant rules
    geo \$bad_cidr { default 0; 203.0.113.0/24 1; 198.51.100.0/24 1; }
    map \$http_x_tenant_id \$bad_tenant { default 0; banned-corp 1; evil-inc 1; }
    # api-key auth (nginx compares the key in clear; rampart hashes it with SHA-256)
    map \$http_x_api_key \$key_ok { default 0; "$API_KEY" 1; }
    # rate limit per tenant, high enough never to refuse
    limit_req_zone \$http_x_tenant_id zone=tenant:1m rate=1000000r/s;

    upstream origin {
        server 127.0.0.1:$ORIGIN_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            if (\$bad_cidr) { return 403; }
            if (\$bad_tenant) { return 403; }
            if (\$key_ok = 0) { return 401; }
            limit_req zone=tenant burst=1000000 nodelay;
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Rampart-Edge 1;
            proxy_set_header X-Debug "";
            proxy_hide_header Server;
            add_header Strict-Transport-Security "max-age=31536000" always;
            add_header X-Content-Type-Options nosniff always;
        }
    }
}
EOF
timeout 10 "$NGINX" -t -q -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" 2>"$TMP/nginx/test.log" \
    || { cat "$TMP/nginx/test.log" >&2; exit 1; }
taskset -c $CORE_PROXY "$NGINX" -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" \
    >"$TMP/nginx/out.log" 2>&1 &
NGINX_PID=$!
PIDS+=($NGINX_PID)

# --- the gateway ---------------------------------------------------------------------------
KEY_SHA=$(printf '%s' "$API_KEY" | sha256sum | cut -d' ' -f1)
decoys=""
for i in $(seq 1 20); do
    decoys+="          - { id: decoy-$i, sha256: $(printf 'decoy-%s' "$i" | sha256sum | cut -d' ' -f1), format: rampart_v1, tenant: t$i }"$'\n'
done
# The header edits are the example fleet's `security-headers` policy, as it stands there.
security_headers=$(sed -n '/^  - id: security-headers$/,/^        remove: \[server\]$/p' examples/fleet.yaml)
if [ "$(printf '%s\n' "$security_headers" | wc -l)" -ne 11 ]; then
    log "examples/fleet.yaml has no 11-line security-headers policy"
    exit 1
fi
cat >"$TMP/fleet.yaml" <<EOF
environment: prod
settings:
  tenant_header: x-tenant-id
products:
  - name: bench
    description: The proxy benchmark's product
upstreams:
  - name: origin
    endpoints: ["127.0.0.1:$ORIGIN_PORT"]
    timeouts: { connect_ms: 500, read_ms: 10000, total_ms: 15000 }
policies:
  - id: block-abusers
    access:
      default: allow
      deny_status: 403
      rules:
        - action: deny
          cidrs: ["203.0.113.0/24", "198.51.100.0/24", "2001:db8:bad::/48"]
        - action: deny
          tenants: [banned-corp, evil-inc]
  - id: bench-api-key
    auth:
      api_key:
        header: x-api-key
        keys:
          - { id: bench-client, sha256: $KEY_SHA, format: rampart_v1, tenant: $TENANT }
$decoys  - id: bench-rate-limit
    rate_limit: { per_second: 1000000, burst: 1000000, key: tenant }
$security_headers
routes:
  - id: bench-api
    product: bench
    match:
      host: $HOST_HDR
      path: { prefix: /api/ }
    upstream: origin
    policies: [block-abusers, bench-api-key, bench-rate-limit, security-headers]
EOF
timeout 10 "$RAMPART" validate -f "$TMP/fleet.yaml" >&2
if [ -n "${FLEET_ONLY:-}" ]; then # bench/proxy-instructions.sh wants only the fleet
    cp "$TMP/fleet.yaml" "$FLEET_ONLY"
    exit 0
fi
taskset -c $CORE_PROXY "$RAMPART" gateway --config "$TMP/fleet.yaml" --cell bench-1 --id gw-bench \
    --listen "127.0.0.1:$GW_PORT" --admin "127.0.0.1:$GW_ADMIN_PORT" \
    --data-dir "$TMP/gw-data" >"$TMP/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=($GW_PID)

wait_http "http://127.0.0.1:$NGINX_PORT/" 10
wait_http "http://127.0.0.1:$GW_ADMIN_PORT/healthz" 20
NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1 || true)

# Both proxies must answer the benchmark request with 200 before anything is measured.
# "Host" capitalised: wrk adds its own Host header unless it sees exactly this spelling.
H=(-H "Host: $HOST_HDR" -H "x-api-key: $API_KEY" -H "x-tenant-id: $TENANT")
for port in $ORIGIN_PORT $NGINX_PORT $GW_PORT; do
    code=$(curl -s -o "$TMP/probe.out" -w '%{http_code}' --max-time 5 "${H[@]}" \
        "http://127.0.0.1:$port$PATH_Q" || true)
    if [ "$code" != 200 ]; then
        log "127.0.0.1:$port answered $code to the benchmark request:"
        cat "$TMP/probe.out" >&2 || true
        tail -20 "$TMP/gateway.log" >&2
        exit 1
    fi
done
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "host: $HOST_HDR" \
    -H "x-api-key: wrong" "http://127.0.0.1:$GW_PORT$PATH_Q" || true)
[ "$code" = 401 ] || [ "$code" = 403 ] || { log "the gateway let a wrong key through ($code)"; exit 1; }

# The machine may be shared: wait (at most QUIET_WAIT s, default 60) for a 2-second window in
# which it is at least 85% idle before measuring, and say whether one came.
idle_pct() { # busy-vs-idle over 2 s from /proc/stat
    local a b
    read -r -a a < <(head -1 /proc/stat)
    sleep 2
    read -r -a b < <(head -1 /proc/stat)
    local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
    for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
    echo $(( total > 0 ? 100 * idle / total : 0 ))
}
QUIET="no (machine busy; figures are noisier)"
deadline=$(( $(date +%s) + ${QUIET_WAIT:-60} ))
while :; do
    idle=$(idle_pct)
    if [ "$idle" -ge 85 ]; then QUIET="yes (${idle}% idle)"; break; fi
    [ "$(date +%s)" -ge "$deadline" ] && break
    log "machine only ${idle}% idle; waiting"
done
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
GW_RSS_IDLE=$(rss_kb $GW_PID)
NGINX_RSS_IDLE=$(( $(rss_kb $NGINX_PID) + $(rss_kb "${NGINX_WORKER:-0}") ))

# --- wrk -----------------------------------------------------------------------------------
to_ms() { # wrk's "1.23ms" / "850.00us" / "1.02s" -> ms
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else { printf "nan" } }'
}

run_wrk() { # name port secs
    taskset -c $CORE_SERVER timeout $(($3 + 20)) wrk -t1 -c50 -d"$3s" --latency "${H[@]}" \
        "http://127.0.0.1:$2$PATH_Q" >"$TMP/wrk-$1.txt" 2>&1
}

sample_rss() { # pid outfile: VmRSS every 200 ms while the file $TMP/sampling exists
    local max=0 v
    while [ -e "$TMP/sampling" ]; do
        v=$(rss_kb "$1")
        [ "$v" -gt "$max" ] && max=$v
        sleep 0.2
    done
    echo "$max" >"$2"
}

port_of() {
    case $1 in
        origin) echo $ORIGIN_PORT ;;
        nginx) echo $NGINX_PORT ;;
        rampart) echo $GW_PORT ;;
    esac
}
# Two rounds in A-B-C-C-B-A order, so a drift in the machine's background load (it is shared)
# weighs on every target alike; each figure is the mean of its two rounds.
ORDER="origin:1 nginx:1 rampart:1 rampart:2 nginx:2 origin:2"

declare -A RPS P99 ERRS SPREAD
INVALID=""
echo 0 >"$TMP/rss-max-rampart"
echo 0 >"$TMP/rss-max-nginx"
for step in $ORDER; do
    target=${step%:*} round=${step#*:}
    port=$(port_of "$target")
    if [ "$round" = 1 ]; then
        log "wrk warm-up -> $target"
        run_wrk "$target-warm" "$port" 2
    fi
    log "wrk ${WRK_SECS}s -> $target (round $round)"
    touch "$TMP/sampling"
    case $target in
        rampart) sample_rss $GW_PID "$TMP/rss-$target-$round" & ;;
        nginx) sample_rss "${NGINX_WORKER:-0}" "$TMP/rss-$target-$round" & ;;
        *) sample_rss 0 "$TMP/rss-$target-$round" & ;;
    esac
    sampler=$!
    run_wrk "$target-$round" "$port" "$WRK_SECS"
    rm -f "$TMP/sampling"
    wait $sampler
    m=$(cat "$TMP/rss-$target-$round")
    [ "$target" != origin ] && [ "$m" -gt "$(cat "$TMP/rss-max-$target")" ] && echo "$m" >"$TMP/rss-max-$target"
    f="$TMP/wrk-$target-$round.txt"
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$f")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$f")
    sock=$(grep -o 'Socket errors:.*' "$f" || true)
    if [ "${non2xx:-0}" != 0 ] || [ -n "$sock" ] || [ -z "$rps" ]; then
        INVALID+=" $target(round $round)"
        ERRS[$target]+="r$round: non2xx=${non2xx:-0}${sock:+ ($sock)} "
    fi
    if [ "$round" = 1 ]; then
        RPS[$target]=$rps P99[$target]=$p99 SPREAD[$target]="$(printf '%.0f' "$rps") @ $p99"
    else
        SPREAD[$target]+=", $(printf '%.0f' "$rps") @ $p99"
        RPS[$target]=$(awk -v a="${RPS[$target]}" -v b="$rps" 'BEGIN { printf "%.1f", (a + b) / 2 }')
        P99[$target]=$(awk -v a="${P99[$target]}" -v b="$p99" 'BEGIN { printf "%.3f", (a + b) / 2 }')
    fi
done
GW_RSS_LOAD=$(cat "$TMP/rss-max-rampart")
NGINX_RSS_LOAD=$(( $(cat "$TMP/rss-max-nginx") + $(rss_kb $NGINX_PID) ))

# --- rampart load (open loop), same A-B-C-C-B-A order -------------------------------------
for step in $ORDER; do
    target=${step%:*} round=${step#*:}
    port=$(port_of "$target")
    log "rampart load ${LOAD_RATE}/s for ${LOAD_SECS}s -> $target (round $round)"
    taskset -c $CORE_SERVER timeout $((LOAD_SECS + 30)) "$RAMPART" load \
        --url "http://127.0.0.1:$port$PATH_Q" --rate "$LOAD_RATE" --duration "$LOAD_SECS" \
        --connections 50 --timeout-ms 2000 \
        --header "host: $HOST_HDR" --header "x-api-key: $API_KEY" --header "x-tenant-id: $TENANT" \
        --json >"$TMP/load-$target-$round.json"
done
declare -A OL
for target in origin nginx rampart; do
    # Counts add up over both rounds; latencies are the mean of the rounds' percentiles.
    OL[$target]=$(jq -s -r '
        def mean(f): (map(f) | add / length);
        [ (map(.sent) | add), (map(.ok) | add),
          (map(.http_errors["4xx"] + .http_errors["5xx"] + .http_errors.other) | add),
          (map(.failed) | add), (map(.connect_errors) | add), (map(.io_errors) | add),
          (map(.timeouts) | add), mean(.latency_ms.p50), mean(.latency_ms.p99),
          mean(.latency_ms.p999), (map(.latency_ms.max) | max), mean(.send_lag_ms.p99),
          (map(.latency_ms.p99 | tostring) | join(", ")) ] | @tsv' \
        "$TMP/load-$target-1.json" "$TMP/load-$target-2.json")
done

# --- optional profile ----------------------------------------------------------------------
if [ "${PERF:-0}" = 1 ] && command -v perf >/dev/null 2>&1; then
    log "perf record on the gateway during wrk"
    run_wrk rampart-perf $GW_PORT 8 &
    wrkpid=$!
    sleep 1
    timeout 30 perf record -q -g -p $GW_PID -o "$TMP/perf.data" -- sleep 6 >/dev/null 2>&1 || true
    wait $wrkpid || true
    perf report -i "$TMP/perf.data" --no-children --stdio 2>/dev/null | head -60 >"$ROOT/target/proxy-perf.txt" || true
    perf report -i "$TMP/perf.data" --no-children --stdio -g none --percent-limit 0.4 2>/dev/null \
        | cut -c1-200 | head -80 >"$ROOT/target/proxy-perf-flat.txt" || true
    log "profile written to target/proxy-perf.txt and target/proxy-perf-flat.txt"
fi

# --- report --------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }

echo
echo "## proxy throughput: wrk -t1 -c50 -d${WRK_SECS}s --latency (closed loop), mean of 2 rounds"
echo "quiet machine at start: $QUIET; load average before / after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "pinning: origin + client on core $CORE_SERVER, proxy on core $CORE_PROXY"
echo "$("$NGINX" -v 2>&1); $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); $("$RAMPART" --version)"
echo
printf '| %-8s | %10s | %9s | %12s | %10s | %s |\n' target "req/s" "p99 ms" "req/s÷nginx" "p99÷nginx" errors
printf '|----------|-----------:|----------:|-------------:|-----------:|--------|\n'
for t in origin nginx rampart; do
    printf '| %-8s | %10.0f | %9.3f | %12s | %10s | %s |\n' "$t" "${RPS[$t]}" "${P99[$t]}" \
        "$(ratio "${RPS[$t]}" "${RPS[nginx]}")" "$(ratio "${P99[$t]}" "${P99[nginx]}")" "${ERRS[$t]:-none}"
done
echo "(rounds, req/s @ p99 ms: origin ${SPREAD[origin]}; nginx ${SPREAD[nginx]}; rampart ${SPREAD[rampart]})"
echo
echo "## open loop: rampart load --rate $LOAD_RATE --duration $LOAD_SECS --connections 50, 2 rounds (counts summed, percentiles averaged)"
echo
printf '| %-8s | %6s | %6s | %5s | %6s | %-19s | %8s | %8s | %8s | %8s | %9s |\n' \
    target sent ok http failed "connect/io/timeout" "p50 ms" "p99 ms" "p99.9 ms" "max ms" "p99÷nginx"
printf '|----------|-------:|-------:|------:|-------:|---------------------|---------:|---------:|---------:|---------:|----------:|\n'
ngx_p99=$(cut -f9 <<<"${OL[nginx]}")
for t in origin nginx rampart; do
    IFS=$'\t' read -r sent ok http failed ce io to p50 p99 p999 max lag _ <<<"${OL[$t]}"
    printf '| %-8s | %6s | %6s | %5s | %6s | %-19s | %8.3f | %8.3f | %8.3f | %8.3f | %9s |\n' \
        "$t" "$sent" "$ok" "$http" "$failed" "$ce/$io/$to" "$p50" "$p99" "$p999" "$max" \
        "$(ratio "$p99" "$ngx_p99")"
done
echo "(p99 per round, ms: origin $(cut -f13 <<<"${OL[origin]}"); nginx $(cut -f13 <<<"${OL[nginx]}"); rampart $(cut -f13 <<<"${OL[rampart]}"))"
lag() { printf '%.3f' "$(cut -f12 <<<"${OL[$1]}")"; }
echo "(client send lag behind schedule, p99 ms: origin $(lag origin), nginx $(lag nginx), rampart $(lag rampart))"
echo
echo "## resident memory (VmRSS)"
echo
printf '| %-22s | %9s | %16s |\n' process "idle MiB" "under wrk (max)"
printf '|------------------------|----------:|-----------------:|\n'
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
printf '| %-22s | %9s | %16s |\n' "rampart gateway" "$(mib "$GW_RSS_IDLE")" "$(mib "$GW_RSS_LOAD")"
printf '| %-22s | %9s | %16s |\n' "nginx master+worker" "$(mib "$NGINX_RSS_IDLE")" "$(mib "$NGINX_RSS_LOAD")"
echo
meets_tput=$(awk -v a="${RPS[rampart]}" -v b="${RPS[nginx]}" 'BEGIN { print (a >= b) ? "yes" : "no" }')
meets_p99=$(awk -v a="${P99[rampart]}" -v b="${P99[nginx]}" 'BEGIN { print (a <= b) ? "yes" : "no" }')
echo "goal: throughput >= nginx: $meets_tput; p99 <= nginx: $meets_p99"
if [ -n "$INVALID" ]; then
    echo "INVALID: wrk saw errors or non-2xx answers from:$INVALID (its figures do not count)"
    exit 1
fi
